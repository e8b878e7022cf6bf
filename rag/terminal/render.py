"""Terminal rendering shared by the commands: paths, sources, passages, answers, ingest progress.

Everything here writes to stderr except what is the product itself (answers, listings, --json),
which the CLI prints to stdout. Every string that came from a document, the LLM or a file name
passes through `rag.safety.safe` here before it is shown; `--json` output never comes here.
rich is imported only when it draws (the progress bar, an answer rendered as Markdown).
"""

from __future__ import annotations

import re
import sys
import time
from typing import TYPE_CHECKING, Iterable, Iterator, TextIO

import click

from rag import markup
from rag.safety import safe, safe_pieces
from rag.answer.sources import display_path, heading, location
from rag.errors import unread_message
from rag.types import Change, Hit, IndexCheck, IndexStatus, IngestReport, Removal, StoredDocument

if TYPE_CHECKING:
    from rich.console import Console

    from rag.types import Hit

PASSAGE_CHARS = 400  # a passage shown under its source: clipped at a line, never mid-word
PASSAGE_LINES = 12


def passage(text: str, max_chars: int = PASSAGE_CHARS, max_lines: int = PASSAGE_LINES, plain: bool = False) -> str:
    """A passage as shown under its source: markup as text (unless `plain`), lines kept, clipped."""
    return markup.clip_lines(_shown(text, plain), max_chars, max_lines)


def _shown(text: str, plain: bool) -> str:
    # safe() first so a control inside markup cannot hide it from plain(), and last because
    # plain() decodes entities (&#x202e;)
    return safe(text) if plain else safe(markup.plain(safe(text)))


def indent(text: str, prefix: str = "    ") -> str:
    return "\n".join(prefix + line if line else "" for line in text.split("\n"))


def hit_block(n: int, hit: Hit, plain: bool = False) -> str:
    """One retrieved passage for chat `/sources`: where it is, its scores, then its text indented."""
    where = f"{safe(hit.index)}: " if hit.index else ""  # several indexes searched together
    head = (f"[{n}] {where}{location(hit.path, hit.page, hit.page_kind)}{heading(hit.heading)}  "
            f"score {hit.score:.2f}  similarity {hit.similarity:.2f}")
    return head + "\n" + indent(passage(hit.text, plain=plain))


def answer_text(text: str, plain: bool = False) -> str:
    """An answer that is not rendered as Markdown (extractive, or not on a terminal), made safe.

    Without `plain` (the --plain flag), document markup is shown as text (roles, directives,
    emphasis, entities); with it, only terminal controls are removed.
    """
    return _shown(text, plain)


def document_line(doc: StoredDocument) -> str:
    """One row of `rag ls`."""
    shown_pages = f"{doc.pages} {doc.page_kind}s, " if doc.pages else ""
    return f"{safe(display_path(doc.path))}\t{shown_pages}{doc.chunks} chunks\t{safe(doc.title)}"


def show_answer(pieces: Iterable[str], streamed: bool, plain: bool = False, out: TextIO | None = None) -> str:
    """Print an answer to `out` (stdout) and return its raw text, without a final newline.

    `streamed` is an LLM answer: on a terminal, and unless `plain`, rendered as Markdown as it
    arrives; otherwise its safe raw text is printed as it comes. Anything else (extractive, not
    covered) arrives whole and is printed with `answer_text`.
    """
    if not streamed:
        text = "".join(pieces)
        click.echo(answer_text(text, plain=plain), nl=False, file=out)
        return text
    target = out or sys.stdout
    if plain or not target.isatty():
        return _stream_raw(pieces, out)
    from rich.console import Console

    return stream_markdown(pieces, Console(file=target) if out is not None else None)


def recorded(pieces: Iterable[str], into: list[str]) -> Iterator[str]:
    """`pieces`, each also appended to `into` (what arrived survives a Ctrl-C)."""
    for piece in pieces:
        into.append(piece)
        yield piece


def safe_stream(pieces: Iterable[str]) -> Iterator[str]:
    """Streamed text (an LLM answer) made safe piece by piece, sequences split across pieces included."""
    return safe_pieces(pieces)


LIVE_LINES = 8  # rendered lines kept live at the bottom; lines above them are printed for good
RENDER_EVERY_S = 0.08  # re-render at most this often while streaming (Markdown parsing is not free)


def _import_rich() -> None:
    import rich.console  # noqa: F401
    import rich.live  # noqa: F401
    import rich.markdown  # noqa: F401
    import rich.syntax  # noqa: F401


def stream_markdown(pieces: Iterable[str], console: Console | None = None) -> str:
    """Print an answer as it streams; on a terminal rendered as Markdown (code highlighted) with
    rich.live. Returns the whole raw text. Off a terminal the safe raw text is printed as it comes.

    Only lines that can still change stay live at the bottom; the rest is printed once, so an answer
    longer than the screen scrolls normally. On Ctrl-C, what arrived stays on screen and
    KeyboardInterrupt propagates (wrap `pieces` to keep them).
    """
    received: list[str] = []
    if console is None and not sys.stdout.isatty():
        return _stream_raw(pieces)
    import threading

    # rich.markdown costs ~80 ms to import: do it while the LLM thinks about its first token.
    warm = threading.Thread(target=_import_rich, daemon=True)
    warm.start()
    stream = iter(safe_stream(recorded(pieces, received)))
    first = next(stream, None)
    warm.join()
    from rich.console import Console
    from rich.live import Live

    console = console or Console()
    if not console.is_terminal:
        for piece in _chain(first, stream):
            console.file.write(piece)
            console.file.flush()
        return "".join(received)
    text = ""
    shown = 0  # rendered lines already printed above the live area
    next_render = 0.0
    with Live(console=console, auto_refresh=False, transient=False) as live:
        for piece in _chain(first, stream):
            text += piece
            if time.perf_counter() < next_render:
                continue
            started = time.perf_counter()
            shown = _render(live, text, shown, final=False)
            # each render parses the whole answer: wait at least 4x its cost before the next one, so
            # a long answer spends at most a fifth of the time rendering, however fast it streams
            spent = time.perf_counter() - started
            next_render = started + max(RENDER_EVERY_S, 5 * spent)
        _render(live, text, shown, final=True)
    return "".join(received)


def _chain(first: str | None, rest: Iterator[str]) -> Iterator[str]:
    if first is not None:
        yield first
    yield from rest


def _stream_raw(pieces: Iterable[str], out: TextIO | None = None) -> str:
    received: list[str] = []
    for piece in safe_stream(recorded(pieces, received)):
        click.echo(piece, nl=False, file=out)
    return "".join(received)


class _Lines:
    """Already rendered lines, as a rich renderable; `settled` ones end in a newline (printed above
    the live area, the last of them must not share a line with it)."""

    def __init__(self, lines: list, settled: bool = False) -> None:
        self.lines = lines
        self.settled = settled

    def __rich_console__(self, console, options):
        from rich.segment import Segment

        for n, line in enumerate(self.lines):
            yield from line
            if self.settled or n < len(self.lines) - 1:
                yield Segment.line()


FENCE_LINE = re.compile(r"^[ \t]*(```|~~~)")
TRAILING_MARKS = re.compile(r"(?:\s*(?:\[\d{1,3}(?:\s*,\s*\d{1,3})*\]|\[unsupported\]))+\s*$")


def fenced_commands(text: str) -> str:
    """`text` for Markdown, with each run of lines typed at a prompt ("$ git clone ...", root's
    "# postfix reload", ">>> len(x)"; rag.answer.citations.COMMAND_LINE) in a code block, its
    citations after it. As Markdown, root's prompt is a heading, ">>>" a quote, and the lines of a
    run are joined into one paragraph line. Only what is shown changes, never the answer."""
    from rag.answer.citations import COMMAND_LINE, continues_command

    lines = text.split("\n")
    out: list[str] = []
    i, fenced = 0, False
    while i < len(lines):
        line = lines[i]
        if FENCE_LINE.match(line):
            fenced = not fenced
        if fenced or not COMMAND_LINE.match(line):
            out.append(line)
            i += 1
            continue
        run = [line]
        i += 1
        while i < len(lines) and lines[i].strip() and continues_command(run[-1], lines[i]):
            run.append(lines[i])
            i += 1
        marks = TRAILING_MARKS.search(run[-1])
        if marks:
            run[-1] = run[-1][:marks.start()]
        out += ["```", *run, "```"] + ([marks.group(0).strip()] if marks else [])
    return "\n".join(out)


def _render(live, text: str, shown: int, final: bool) -> int:
    from rich.markdown import Markdown

    console = live.console
    # hyperlinks off: a link from the LLM shows its address instead of hiding it behind the text
    lines = console.render_lines(Markdown(fenced_commands(text), hyperlinks=False), console.options, pad=False)
    settled = len(lines) if final else max(shown, len(lines) - LIVE_LINES)
    if settled > shown:
        live.console.print(_Lines(lines[shown:settled], settled=True), end="")
    live.update(_Lines(lines[settled:]), refresh=True)
    return settled


def human_size(n: int) -> str:
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


def status_table(status: IndexStatus) -> str:
    model = f"{status.model} ({status.dim} dimensions, {status.runtime})" if status.model else "none yet"
    chunking = (f"{status.chunk_tokens} tokens, {status.overlap_tokens} overlap"
                if status.chunk_tokens is not None else "not set yet")
    rows = [
        ("index", safe(display_path(status.index))),
        ("documents", status.documents),
        ("chunks", status.chunks),
        ("model", model),
        ("chunking", chunking),
        ("size", human_size(status.size_bytes)),
        ("last ingest", status.last_ingest or "never"),
    ]
    return "\n".join(f"{name:<12} {value}" for name, value in rows)


def check_lines(report: IndexCheck) -> str:
    """What `rag status --check` found, one line per part."""
    rows = [("database", report.database), ("keywords", report.keyword_index), ("vectors", report.vectors)]
    rows += [("repaired", line) for line in report.repaired]
    return "\n".join(f"{name:<12} {safe(value)}" for name, value in rows)


def ingest_summary(report: IngestReport) -> str:
    skipped = ""
    if report.skipped:
        kinds = ", ".join(f"{suffix} {count}" for suffix, count in
                          sorted(report.skipped_types.items(), key=lambda kv: (-kv[1], kv[0])))
        skipped = f", {report.skipped} skipped" + (f" ({kinds})" if kinds else " (other types)")
    left_out = ""
    if report.left_out:
        reasons = ", ".join(f"{reason} {count}" for reason, count in
                            sorted(report.left_out.items(), key=lambda kv: (-kv[1], kv[0])))
        left_out = f", {sum(report.left_out.values())} left out ({reasons})"
    unread = f"; {unread_message(report.unread_pages)}" if report.unread_pages else ""
    renamed = f", {report.renamed} renamed" if report.renamed else ""
    reused = f" ({report.reused} reused, not embedded again)" if report.reused else ""
    return (
        f"{safe(display_path(report.index))}: {report.added} added, {report.updated} updated{renamed}, "
        f"{report.unchanged} unchanged, {report.removed} removed, {report.failed} failed{skipped}{left_out}; "
        f"{report.chunks - report.reused} chunks embedded{reused} in {report.seconds:.1f} s{unread}"
    )


def change_line(change: Change) -> str:
    """One line per document an ingest changed, as `rag watch` prints them."""
    path = safe(display_path(change.path))
    if change.kind == "renamed":
        return f"renamed {safe(display_path(change.previous))} -> {path} (nothing embedded)"
    if change.kind == "removed":
        return f"removed {path}"
    reused = change.chunks - change.embedded
    return f"{change.kind} {path}: {change.chunks} chunks" + (f", {reused} reused" if reused else "")




def removal_lines(removal: Removal) -> list[str]:
    return [f"removed {safe(display_path(path))}" for path in removal.removed]


def err(message: str) -> None:
    click.echo(message, err=True)


class TerminalProgress:
    """A live bar (files, chunks, chunks/s) on a terminal; a quiet line per few seconds otherwise."""

    def __init__(self, interactive: bool | None = None):
        self.interactive = sys.stderr.isatty() if interactive is None else interactive
        self.files_total = 0
        self.files = 0
        self.chunks = 0
        self.busy = ""  # "N/M workers busy" during a --ray ingest
        self.started = time.perf_counter()
        self.last_line = time.perf_counter()
        self._bar = None

    def start(self, files: int) -> None:
        self.files_total = files
        self.started = time.perf_counter()
        if self.interactive and files:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self._bar = Progress(
                TextColumn("files"), BarColumn(), MofNCompleteColumn(),
                TextColumn("{task.fields[chunks]} chunks  {task.fields[rate]} chunks/s{task.fields[busy]}"),
                TimeElapsedColumn(), console=Console(stderr=True), transient=True,
            )
            self._task = self._bar.add_task("ingest", total=files, chunks=0, rate="-", busy="")
            self._bar.start()

    def _update(self) -> None:
        elapsed = max(time.perf_counter() - self.started, 1e-9)
        rate = f"{self.chunks / elapsed:.0f}"
        if self._bar is not None:
            self._bar.update(self._task, completed=self.files, chunks=self.chunks, rate=rate, busy=self.busy)
        elif time.perf_counter() - self.last_line > 5:
            self.last_line = time.perf_counter()
            err(f"ingest: {self.files}/{self.files_total} files, {self.chunks} chunks, {rate} chunks/s{self.busy}")

    def file_done(self) -> None:
        self.files += 1
        self._update()

    def embedded(self, chunks: int) -> None:
        self.chunks += chunks
        self._update()

    def workers(self, busy: int, total: int) -> None:
        self.busy = f"  {busy}/{total} workers busy"
        self._update()

    def failure(self, path: str, reason: str) -> None:
        self.notice(f"failed: {safe(display_path(path))}: {safe(reason)}")

    def partly_read(self, path: str, reason: str) -> None:
        self.notice(f"partly read: {safe(display_path(path))}: {safe(reason)}")

    def notice(self, line: str) -> None:
        if self._bar is not None:
            self._bar.console.print(line, markup=False, highlight=False)
        else:
            err(line)

    def finish(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
