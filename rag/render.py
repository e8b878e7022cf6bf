"""Terminal rendering shared by the commands: paths, sources, ingest progress.

Everything here writes to stderr except what is the product itself (answers, listings, --json),
which the CLI prints to stdout.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Sequence

import click

from rag.text import location as _location
from rag.types import Hit, IndexStatus, IngestReport, Removal, Source, StoredDocument


def display_path(path: str) -> str:
    """Relative to the working folder when inside it, else as stored."""
    try:
        rel = os.path.relpath(path)
    except ValueError:
        return path
    return path if rel.startswith("..") else rel


def location(path: str, page: int | None, page_kind: str = "page") -> str:
    """Where a passage is, as every command shows it: the path, and the page when there is one."""
    return _location(display_path(path), page, page_kind)


def format_source(source: Source) -> str:
    where = location(source.file or source.path, source.page, source.page_kind)
    heading = f" ({source.heading})" if source.heading else ""
    return f"[{source.rank}] {where}{heading}"


def sources_block(sources: Sequence[Source]) -> str:
    cited = [s for s in sources if s.cited] or list(sources)
    title = "Sources:" if any(s.cited for s in sources) else "Retrieved passages:"
    return "\n".join([title, *(format_source(s) for s in cited)])


def human_size(n: int) -> str:
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


def hit_lines(n: int, hit: Hit, width: int = 160) -> list[str]:
    """A retrieved passage as chat's /sources shows it: where, scores, then a snippet."""
    heading = f" ({hit.heading})" if hit.heading else ""
    flat = " ".join(hit.text.split())
    snippet = flat if len(flat) <= width else flat[:width].rsplit(" ", 1)[0] + " ..."
    return [
        f"[{n}] {location(hit.path, hit.page, hit.page_kind)}{heading}  score {hit.score:.2f}  "
        f"similarity {hit.similarity:.2f}",
        f"    {snippet}",
    ]


def status_table(status: IndexStatus) -> str:
    model = f"{status.model} ({status.dim} dimensions, {status.runtime})" if status.model else "none yet"
    chunking = (f"{status.chunk_tokens} tokens, {status.overlap_tokens} overlap"
                if status.chunk_tokens is not None else "not set yet")
    rows = [
        ("index", display_path(status.index)),
        ("documents", status.documents),
        ("chunks", status.chunks),
        ("model", model),
        ("chunking", chunking),
        ("size", human_size(status.size_bytes)),
        ("last ingest", status.last_ingest or "never"),
    ]
    return "\n".join(f"{name:<12} {value}" for name, value in rows)


def document_line(doc: StoredDocument) -> str:
    pages = f"{doc.pages} {doc.page_kind}s, " if doc.pages else ""
    return f"{display_path(doc.path)}\t{pages}{doc.chunks} chunks\t{doc.title}"


def ingest_summary(report: IngestReport) -> str:
    skipped = ""
    if report.skipped:
        kinds = ", ".join(f"{suffix} {count}" for suffix, count in
                          sorted(report.skipped_types.items(), key=lambda kv: (-kv[1], kv[0])))
        skipped = f", {report.skipped} skipped" + (f" ({kinds})" if kinds else " (other types)")
    return (
        f"{display_path(report.index)}: {report.added} added, {report.updated} updated, "
        f"{report.unchanged} unchanged, {report.removed} removed, {report.failed} failed{skipped}; "
        f"{report.chunks} chunks embedded in {report.seconds:.1f} s"
    )


def removal_lines(removal: Removal) -> list[str]:
    return [f"removed {display_path(path)}" for path in removal.removed]


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
        self.notice(f"failed: {display_path(path)}: {reason}")

    def notice(self, line: str) -> None:
        if self._bar is not None:
            self._bar.console.print(line, markup=False, highlight=False)
        else:
            err(line)

    def finish(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
