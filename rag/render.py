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

from rag.types import Source


def display_path(path: str) -> str:
    """Relative to the working folder when inside it, else as stored."""
    try:
        rel = os.path.relpath(path)
    except ValueError:
        return path
    return path if rel.startswith("..") else rel


def location(path: str, page: int | None) -> str:
    """Where a passage is, as every command shows it: the path, and the page when there is one."""
    return display_path(path) + (f", page {page}" if page else "")


def format_source(source: Source) -> str:
    where = location(source.path, source.page)
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


def err(message: str) -> None:
    click.echo(message, err=True)


class TerminalProgress:
    """A live bar (files, chunks, chunks/s) on a terminal; a quiet line per few seconds otherwise."""

    def __init__(self, interactive: bool | None = None):
        self.interactive = sys.stderr.isatty() if interactive is None else interactive
        self.files_total = 0
        self.files = 0
        self.chunks = 0
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
                TextColumn("{task.fields[chunks]} chunks  {task.fields[rate]} chunks/s"),
                TimeElapsedColumn(), console=Console(stderr=True), transient=True,
            )
            self._task = self._bar.add_task("ingest", total=files, chunks=0, rate="-")
            self._bar.start()

    def _update(self) -> None:
        elapsed = max(time.perf_counter() - self.started, 1e-9)
        rate = f"{self.chunks / elapsed:.0f}"
        if self._bar is not None:
            self._bar.update(self._task, completed=self.files, chunks=self.chunks, rate=rate)
        elif time.perf_counter() - self.last_line > 5:
            self.last_line = time.perf_counter()
            err(f"ingest: {self.files}/{self.files_total} files, {self.chunks} chunks, {rate} chunks/s")

    def file_done(self) -> None:
        self.files += 1
        self._update()

    def embedded(self, chunks: int) -> None:
        self.chunks += chunks
        self._update()

    def failure(self, path: str, reason: str) -> None:
        line = f"failed: {display_path(path)}: {reason}"
        if self._bar is not None:
            self._bar.console.print(line, markup=False, highlight=False)
        else:
            err(line)

    def finish(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
