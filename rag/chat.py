"""The chat loop: a conversation over the same retrieval and generation as `rag ask`.

Each turn condenses the new message and recent history into a standalone question (through the
LLM when there is one, else by carrying the previous question along when the new one leans on
it), retrieves with it, and answers with the recent conversation in context. History is bounded
(HISTORY_TURNS turns, each answer clipped), so a long session never outgrows the model's context.
Ctrl-C stops the current answer and returns to the prompt; Ctrl-D or /exit leaves.
"""

from __future__ import annotations

import re
import sys
import time
from dataclasses import dataclass, field
from typing import Callable, TextIO

from rag.config import MODES, Mode, Settings
from rag.errors import RagError
from rag.generate import CONDENSE_PROMPT, LLM, build_answer, stream_answer
from rag.display import safe
from rag.render import display_path, hit_block, recorded, show_answer, sources_block
from rag.retrieve import STOPWORDS, WORD, Retrieval, Retriever

HISTORY_TURNS = 6
TURN_CHARS = 1500
HISTORY_FILE = "chat_history"
# Words that point back at an earlier turn; a message using them needs that turn to be understood.
REFERRING = re.compile(
    r"\b(it|its|it's|this|that|these|those|they|them|their|there|he|she|him|her|his|one|ones|"
    r"same|above|previous|former|latter|else|more|also|instead)\b",
    re.I,
)

HELP = """Ask a question, or:
  /sources        the passages behind the last answer
  /reset          forget the conversation
  /k N            passages to retrieve per question
  /mode M         retrieval: hybrid, dense or keyword
  /help           this text
  /exit           leave (or Ctrl-D); Ctrl-C stops an answer"""


@dataclass
class Turn:
    question: str
    standalone: str
    answer: str


@dataclass
class Conversation:
    turns: list[Turn] = field(default_factory=list)

    def recent(self) -> list[Turn]:
        return self.turns[-HISTORY_TURNS:]

    def messages(self) -> list[dict]:
        """Recent turns as chat messages (questions and clipped answers, no passages)."""
        out: list[dict] = []
        for turn in self.recent():
            out.append({"role": "user", "content": turn.question})
            out.append({"role": "assistant", "content": _clip(turn.answer)})
        return out

    def standalone(self, question: str, llm: LLM | None) -> str:
        if not self.turns:
            return question
        if llm is not None:
            transcript = "\n".join(
                f"User: {t.question}\nAssistant: {_clip(t.answer, 400)}" for t in self.recent()
            )
            rewritten = llm.complete([
                {"role": "system", "content": CONDENSE_PROMPT},
                {"role": "user", "content": f"Conversation:\n{transcript}\n\nLast message: {question}"},
            ])
            return rewritten or question
        content_words = [w for w in WORD.findall(question) if w.lower() not in STOPWORDS]
        if REFERRING.search(question) or len(content_words) <= 1:
            return f"{self.turns[-1].standalone} {question}"
        return question

    def add(self, turn: Turn) -> None:
        self.turns.append(turn)
        del self.turns[: -HISTORY_TURNS * 2]  # keep memory bounded too


def _clip(text: str, limit: int = TURN_CHARS) -> str:
    return text if len(text) <= limit else text[:limit].rsplit(" ", 1)[0] + " ..."


class Chat:
    def __init__(self, retriever: Retriever, llm: LLM | None, settings: Settings, mode: Mode,
                 out: TextIO, err: TextIO):
        self.retriever = retriever
        self.llm = llm
        self.top_k = settings.top_k
        self.min_score = settings.min_score
        self.mode: Mode = mode
        self.out = out
        self.err = err
        self.conversation = Conversation()
        self.last: Retrieval | None = None

    def say(self, text: str = "", end: str = "\n") -> None:
        self.out.write(text + end)
        self.out.flush()

    def warn(self, text: str) -> None:
        self.err.write(text + "\n")
        self.err.flush()

    def command(self, line: str) -> bool:
        """Run a slash command; False means leave the loop."""
        name, _, arg = line[1:].strip().partition(" ")
        arg = arg.strip()
        if name in ("exit", "quit", "q"):
            return False
        if name == "help":
            self.say(HELP)
        elif name == "reset":
            self.conversation = Conversation()
            self.last = None
            self.say("(conversation cleared)")
        elif name == "sources":
            self.show_sources()
        elif name == "k":
            if arg.isdigit() and int(arg) >= 1:
                self.top_k = int(arg)
                self.say(f"(retrieving {self.top_k} passages per question)")
            else:
                self.warn("usage: /k N, with N a whole number of at least 1")
        elif name == "mode":
            if arg in MODES:
                self.mode = arg  # type: ignore[assignment]
                self.say(f"(retrieval mode: {arg})")
            else:
                self.warn(f"usage: /mode {'|'.join(MODES)}")
        else:
            self.warn(f"unknown command /{name}: try /help")
        return True

    def show_sources(self) -> None:
        if self.last is None or not self.last.hits:
            self.say("(no passages yet: ask a question first)")
            return
        for n, hit in enumerate(self.last.hits, start=1):
            self.say(hit_block(n, hit))  # display branch: lines kept, markup as text, safe

    def ask(self, question: str) -> None:
        self.retriever.refresh()
        standalone = self.conversation.standalone(question, self.llm)
        retrieval = self.retriever.search(standalone, self.top_k, self.mode, self.min_score)
        self.last = retrieval
        started = time.perf_counter()
        pieces: list[str] = []
        stream = stream_answer(standalone, retrieval, self.llm, self.conversation.messages())
        try:  # display branch: made safe; Markdown on a terminal; extractive markup shown as text
            show_answer(recorded(stream, pieces), streamed=self.llm is not None and bool(retrieval.hits), out=self.out)
            self.out.flush()
        except KeyboardInterrupt:
            stream.close()
            self.say("")
            self.warn("[stopped]")
            pieces.append(" [stopped]")
        answer = build_answer(standalone, retrieval, "".join(pieces), self.llm, time.perf_counter() - started)
        self.say("")
        if answer.sources:
            self.say(sources_block(answer.sources))
        self.say("")
        self.conversation.add(Turn(question, standalone, answer.answer))


def _line_reader(interactive: bool, history_path) -> Callable[[], str]:
    if not interactive:
        def read() -> str:
            line = sys.stdin.readline()
            if not line:
                raise EOFError
            return line

        return read
    try:
        import readline
    except ImportError:  # no line editing on this platform; input() still works
        return lambda: input("you> ")
    readline.set_history_length(1000)
    try:
        readline.read_history_file(history_path)
    except OSError:
        pass

    def read() -> str:
        line = input("you> ")
        try:
            readline.write_history_file(history_path)
        except OSError:
            pass
        return line

    return read


def run_chat(settings: Settings, mode: Mode = "hybrid", use_llm: bool = True) -> None:
    retriever = Retriever.open(settings)
    llm = LLM(settings) if use_llm and settings.llm_configured else None
    chat = Chat(retriever, llm, settings, mode, sys.stdout, sys.stderr)
    interactive = sys.stdin.isatty()
    documents = len(retriever.store.documents())
    where = display_path(str(settings.index_path))
    if llm is None:
        reason = "--no-llm" if not use_llm else "no LLM configured: set OPENAI_API_KEY or OPENAI_BASE_URL"
        chat.warn(f"rag chat over {documents} documents in {where}; extractive answers ({reason}).")
    else:
        chat.warn(f"rag chat over {documents} documents in {where}; model {llm.model} at {llm.where}.")
    if interactive:
        chat.warn("Type a question, /help for commands, Ctrl-D to leave.")
    read = _line_reader(interactive, str(settings.index_path / HISTORY_FILE))
    while True:
        try:
            line = read().strip()
        except EOFError:
            if interactive:
                chat.say("")
            break
        except KeyboardInterrupt:
            chat.say("")
            continue
        if not line:
            continue
        if line.startswith("/"):
            if not chat.command(line):
                break
            continue
        try:
            chat.ask(line)
        except KeyboardInterrupt:
            chat.say("")
            chat.warn("[stopped]")
        except RagError as exc:
            chat.say("")
            chat.warn(f"Error: {safe(str(exc))}")  # display branch
