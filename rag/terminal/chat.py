"""The chat loop: a conversation over the same retrieval and generation as `rag ask`.

Each turn condenses the new message and recent history into a standalone question (through the
LLM when there is one), retrieves with it, and answers with the recent conversation in context.
Without an LLM, a follow-up that leans on the conversation is rewritten from it
(rag.answer.followup: its own words first, the earlier question's carried behind them), the user
is told what was searched, and an answer that would repeat the last one word for word is not
printed again. History is bounded (HISTORY_TURNS turns, each answer clipped), so a long session
never outgrows the model's context. Ctrl-C stops the current answer and returns to the prompt;
Ctrl-D or /exit leaves.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable, TextIO

from rag.config import MODES
from rag.errors import RagError
from rag.answer.generate import AnswerStream
from rag.text import clip
from rag.safety import safe
from rag.answer.sources import display_path, one_line, sources_block
from rag.terminal.render import hit_block, show_answer
from rag.types import Answer, Mode, Retrieval

if TYPE_CHECKING:
    from rag.index import Index
    from rag.answer.llm import LLM, Message

HISTORY_TURNS = 6
TURN_CHARS = 1500

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

    def messages(self) -> list[Message]:
        """Recent turns as chat messages: each standalone question and its clipped answer."""
        out: list[Message] = []
        for turn in self.recent():
            out.append({"role": "user", "content": turn.standalone})
            out.append({"role": "assistant", "content": clip(turn.answer, TURN_CHARS)})
        return out

    def add(self, turn: Turn) -> None:
        self.turns.append(turn)
        del self.turns[: -HISTORY_TURNS * 2]  # keep memory bounded too


class Chat:
    def __init__(self, index: Index, llm: LLM | None, mode: Mode, out: TextIO, err: TextIO):
        self.index = index
        self.llm = llm
        self.top_k = index.settings.top_k
        self.mode: Mode = mode
        self.out = out
        self.err = err
        self.conversation = Conversation()
        self.last: Retrieval | None = None
        self.last_answer: Answer | None = None

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
            self.last_answer = None
            self.say("(conversation cleared)")
        elif name == "sources":
            self.show_sources()
        elif name == "k":
            if arg.isdigit() and 1 <= int(arg) <= 100:
                self.top_k = int(arg)
                self.say(f"(retrieving {self.top_k} passages per question)")
            else:
                self.warn("usage: /k N, with N a whole number from 1 to 100")
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
        citations = self.last_answer.citations if self.last_answer is not None else []
        for n, hit in enumerate(self.last.hits, start=1):
            self.say(hit_block(n, hit))
            checked = [c for c in citations if c.n == n]
            if any(not c.supported for c in checked):
                self.say(f"    [not verified] {one_line(next(c for c in checked if not c.supported).reason)}")
            elif checked and checked[0].quote:
                self.say(f'    cited for: "{one_line(checked[0].sentence)}"')

    def ask(self, question: str) -> None:
        if self.llm is None:
            self.ask_without_llm(question)
            return
        stream: AnswerStream = self.index.answer(
            question, llm=self.llm, history=self.conversation.messages(), top_k=self.top_k, mode=self.mode
        )
        self.last = stream.retrieval
        try:  # made safe; Markdown on a terminal; extractive markup shown as text
            show_answer(stream, streamed=stream.mode == "llm", out=self.out)
            self.out.flush()
        except KeyboardInterrupt:
            stream.stop()
        self.finish(question, stream, stream.result())

    def ask_without_llm(self, question: str) -> None:
        """An extractive answer; a follow-up is searched with the subject it leans on."""
        from rag.answer.followup import rewrite

        searched = rewrite(question, [t.standalone for t in self.conversation.recent()])
        if searched != question:
            self.warn(f"(searched for: {safe(searched)})")
        stream = self.index.answer(searched, top_k=self.top_k, mode=self.mode)
        self.last = stream.retrieval
        answer = stream.result()
        previous = self.conversation.turns[-1].answer if self.conversation.turns else None
        if answer.mode == "extractive" and answer.answer == previous:
            self.say("(The passages found for this question answer it with the same excerpts as above: "
                     "ask it in full words, or configure an LLM to answer from the conversation.)")
        else:
            show_answer([answer.answer], streamed=False, out=self.out)
            self.out.flush()
        self.finish(question, stream, answer)

    def finish(self, question: str, stream: AnswerStream, answer: Answer) -> None:
        self.last_answer = answer
        self.say("")
        if answer.stopped:
            self.warn("[stopped]")
        if answer.sources:
            self.say(sources_block(answer.sources, answer.citations, quotes=answer.mode == "llm"))
        self.say("")
        text = answer.answer + (" [stopped]" if answer.stopped else "")
        self.conversation.add(Turn(question, stream.question, text))


def _line_reader(interactive: bool, history_path: Path) -> Callable[[], str]:
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
        history_path.parent.mkdir(parents=True, exist_ok=True)
    except OSError:
        pass  # no history then; chatting still works
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


def run_chat(index: Index, mode: Mode = "hybrid", use_llm: bool = True) -> None:
    llm = index.llm() if use_llm else None
    chat = Chat(index, llm, mode, sys.stdout, sys.stderr)
    index.warm_up()  # the vector file and the model, before the first prompt, not after the first question
    interactive = sys.stdin.isatty()
    documents = len(index.documents())
    where = display_path(str(index.path))
    if llm is None:
        reason = "--no-llm" if not use_llm else "no LLM configured: set OPENAI_API_KEY or OPENAI_BASE_URL"
        chat.warn(f"rag chat over {documents} documents in {where}; extractive answers ({reason}).")
    else:
        chat.warn(f"rag chat over {documents} documents in {where}; model {llm.model} at {llm.where}.")
    if interactive:
        chat.warn("Type a question, /help for commands, Ctrl-D to leave.")
    read = _line_reader(interactive, index.settings.history_file)
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
