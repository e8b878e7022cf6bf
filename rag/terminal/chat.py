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
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence, TextIO

from rag.config import HISTORY_CHARS, HISTORY_TURNS, MAX_TOP_K, MODES, check_index_name
from rag.errors import RagError
from rag.answer.generate import AnswerStream
from rag.text import clip
from rag.safety import safe
from rag.answer.sources import display_path, one_line, sources_block
from rag.terminal.render import hit_block, show_answer
from rag.filters import Filters
from rag.types import Answer, Mode, Retrieval

if TYPE_CHECKING:
    from rag.index import Index
    from rag.answer.llm import LLM, Message


HELP = """Ask a question, or:
  /sources        the passages behind the last answer
  /reset          forget the conversation
  /k N            passages to retrieve per question
  /mode M         retrieval: hybrid, dense or keyword
  /path GLOB ...  only documents matching these globs ('notes/**', "my docs/*.pdf"); /path alone: all
  /index NAME ... search these indexes (together when several); /index alone lists them
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
            out.append({"role": "assistant", "content": clip(turn.answer, HISTORY_CHARS)})
        return out

    def add(self, turn: Turn) -> None:
        self.turns.append(turn)
        del self.turns[: -HISTORY_TURNS * 2]  # keep memory bounded too


class Chat:
    def __init__(self, index: Index, llm: LLM | None, mode: Mode, out: TextIO, err: TextIO,
                 filters: Filters | None = None, also: Sequence[Index] = ()):
        self.index = index
        self.llm = llm
        self.filters = filters  # the scope questions are asked in: /path changes it
        self.searched: list[Index] = [index, *also]  # /index changes it; the first answers
        self.opened: dict[str, Index] = {}  # indexes /index opened, closed when the chat ends
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
            if arg.isdigit() and 1 <= int(arg) <= MAX_TOP_K:
                self.top_k = int(arg)
                self.say(f"(retrieving {self.top_k} passages per question)")
            else:
                self.warn(f"usage: /k N, with N a whole number from 1 to {MAX_TOP_K}")
        elif name == "mode":
            if arg in MODES:
                self.mode = arg  # type: ignore[assignment]
                self.say(f"(retrieval mode: {arg})")
            else:
                self.warn(f"usage: /mode {'|'.join(MODES)}")
        elif name == "path":
            self.set_paths(arg)
        elif name == "index":
            self.set_indexes(arg)
        else:
            self.warn(f"unknown command /{name}: try /help")
        return True

    def prompt(self) -> str:
        """`you> `, or the scope when it is not the whole of one index: `you [a+b · notes/**]> `."""
        shown = []
        if len(self.searched) > 1 or self.searched[0] is not self.index:
            shown.append("+".join(index.name for index in self.searched))
        if self.filters is not None:
            only_paths = self.filters == Filters(paths=self.filters.paths)
            shown.append(" ".join(self.filters.paths) if only_paths else self.filters.describe())
        return f"you [{safe(' · '.join(shown))}]> " if shown else "you> "

    def set_paths(self, arg: str) -> None:
        import shlex

        try:
            globs = shlex.split(arg)
        except ValueError as exc:
            self.warn(f"usage: /path GLOB ... (quote a glob holding spaces: {exc})")
            return
        current = self.filters or Filters()
        try:
            self.filters = replace(current, paths=Filters.build(paths=globs).paths)
        except RagError as exc:
            self.warn(f"Error: {safe(str(exc))}")
            return
        if self.filters.empty:
            self.filters = None
        self.say(f"(searching {'only ' + ' '.join(globs) if globs else 'every document'})")

    def set_indexes(self, arg: str) -> None:
        from rag.index import Index

        names = arg.replace(",", " ").split()
        if not names:
            known = Index.names(self.index.settings.index_dir)
            searched = ", ".join(index.name for index in self.searched)
            self.say(f"(searching {searched}; indexes in {display_path(str(self.index.settings.index_dir))}: "
                     f"{', '.join(known) or 'none'})")
            return
        chosen = []
        try:
            for name in dict.fromkeys(names):
                if name == self.index.name:
                    chosen.append(self.index)
                elif name in self.opened:
                    chosen.append(self.opened[name])
                else:
                    check_index_name(name)
                    self.opened[name] = Index.open(replace(self.index.settings, index=name), own_model=True)
                    chosen.append(self.opened[name])
        except RagError as exc:
            self.warn(f"Error: {safe(str(exc))}")
            return
        self.searched = chosen
        self.say(f"(searching {', '.join(index.name for index in chosen)})")

    def close(self) -> None:
        for index in self.opened.values():
            index.close()
        self.opened.clear()

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
        first, *also = self.searched
        stream: AnswerStream = first.answer(
            question, llm=self.llm, history=self.conversation.messages(), top_k=self.top_k, mode=self.mode,
            filters=self.filters, also=also,
        )
        self.last = stream.retrieval
        if stream.retrieval.no_match:
            self.warn(f"{safe(stream.retrieval.no_match)}: nothing was searched (/path to change it)")
            return
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
        first, *also = self.searched
        stream = first.answer(searched, top_k=self.top_k, mode=self.mode, filters=self.filters, also=also)
        self.last = stream.retrieval
        if stream.retrieval.no_match:
            self.warn(f"{safe(stream.retrieval.no_match)}: nothing was searched (/path to change it)")
            return
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


def _line_reader(interactive: bool, history_path: Path) -> Callable[[str], str]:
    """read(prompt): a line typed at the prompt (no prompt when stdin is not a terminal)."""
    if not interactive:
        def read(prompt: str) -> str:
            line = sys.stdin.readline()
            if not line:
                raise EOFError
            return line

        return read
    try:
        import readline
    except ImportError:  # no line editing on this platform; input() still works
        return input
    readline.set_history_length(1000)
    try:
        history_path.parent.mkdir(parents=True, exist_ok=True)
    except OSError:
        pass  # no history then; chatting still works
    try:
        readline.read_history_file(history_path)
    except OSError:
        pass

    def read(prompt: str) -> str:
        line = input(prompt)
        try:
            readline.write_history_file(history_path)
        except OSError:
            pass
        return line

    return read


def run_chat(index: Index, mode: Mode = "hybrid", use_llm: bool = True, filters: Filters | None = None,
             also: Sequence[Index] = ()) -> None:
    llm = index.llm() if use_llm else None
    chat = Chat(index, llm, mode, sys.stdout, sys.stderr, filters=filters, also=also)
    try:
        _converse(chat, index, llm, use_llm)
    finally:
        chat.close()


def _converse(chat: Chat, index: Index, llm: LLM | None, use_llm: bool) -> None:
    for searched in chat.searched:  # the vector files and models, before the first prompt, not after the first question
        searched.warm_up()
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
            line = read(chat.prompt()).strip()
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
