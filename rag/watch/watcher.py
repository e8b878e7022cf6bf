"""The watcher: one ingest at start, then one incremental ingest per debounced batch of changes.

Invariants:
- Every change reaches the index through `Index.ingest` of the watched paths: discovery, the
  `.ragignore` and hidden-file rules, renames (same bytes: chunks and vectors kept), the
  embedding cache, pruning and the batch transactions are exactly those of `rag ingest`. The
  event filter only decides whether a batch is worth an ingest; it never decides what is indexed.
- Nothing half-written is read: editors' temporary, swap and backup files and partial downloads
  never trigger a run, and before a run every changed file must keep its size and mtime for
  `settle_s` (a file still being written waits).
- One writer per index: while another process ingests, the watcher waits and tries again.
- A watched folder that disappears has its documents removed; when it comes back it is ingested
  again. The watcher wakes once a second to look (idle CPU stays near zero).
- `stop` (set by Ctrl-C or SIGTERM in the CLI, or by a server shutting down) ends the loop after
  the batch in flight; a run interrupted harder loses at most its uncommitted batch.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterable

from rag.errors import IndexBusy, RagError
from rag.types import IngestReport

if TYPE_CHECKING:
    from rag.config import Settings
    from rag.index import Index

# Editors and browsers write these next to the file they save: never a reason to ingest.
TEMP_SUFFIXES = (".swp", ".swx", ".swo", ".tmp", ".temp", ".part", ".partial", ".crdownload", ".download",
                 ".bak", ".orig", "~")
IGNORE_FILES = (".ragignore", ".gitignore")  # hidden, but they change what is indexed
DEBOUNCE_MS = 1600  # the longest a batch collects changes (watchfiles' debounce)
STEP_MS = 300  # a batch ends once no change arrived for this long
SETTLE_S = 0.3  # a changed file must keep its size and mtime this long before it is read
SETTLE_LIMIT_S = 60.0  # a file still growing after this is read anyway (a log that never stops)
TICK_MS = 1000  # how often an idle watcher wakes to check that its folders still exist
BUSY_RETRY_S = 1.0


@dataclass
class WatchStats:
    """What a watcher did, for the CLI's last line and the bench."""

    runs: int = 0  # ingests made (the first one included)
    batches: int = 0  # batches of events that led to an ingest
    events: int = 0  # file-system events seen (after filtering)
    seconds_ingesting: float = 0.0
    reports: list[IngestReport] = field(default_factory=list, repr=False)


def is_temporary(name: str) -> bool:
    """An editor's or a download's scratch file: vim's swap and 4913 probe, emacs' #autosave# and
    .#lock, backups ending in ~, .part/.crdownload downloads."""
    lower = name.lower()
    return (lower.endswith(TEMP_SUFFIXES) or name.startswith(".#") or name == "4913"
            or (name.startswith("#") and name.endswith("#")))


class Watcher:
    """Follows `paths` (folders or files) and keeps `index` up to date with them."""

    def __init__(
        self,
        index: Index,
        paths: Iterable[str | os.PathLike],
        *,
        poll: bool = False,
        on_report: Callable[[IngestReport], None] | None = None,
        on_notice: Callable[[str], None] | None = None,
        debounce_ms: int = DEBOUNCE_MS,
        step_ms: int = STEP_MS,
        settle_s: float = SETTLE_S,
    ):
        self.index = index
        self.paths = [Path(os.path.abspath(p)) for p in paths]
        self.poll = poll
        self.on_report = on_report or (lambda report: None)
        self.on_notice = on_notice or (lambda message: None)
        self.debounce_ms = debounce_ms
        self.step_ms = step_ms
        self.settle_s = settle_s
        self.stats = WatchStats()
        self.ingesting = False  # read by a signal handler: stop hard only while a run is in flight
        self._gone: set[Path] = set()  # watched paths found missing (their documents removed)

    # -- the loop ------------------------------------------------------------------------------

    def run(self, stop: threading.Event) -> WatchStats:
        """Ingest once, then follow the paths until `stop` is set."""
        import watchfiles

        self._check_roots()
        self._ingest(stop)
        # A change made between an ingest and the moment the watch is live would be missed: the
        # first tick of every new watch ingests once more (unchanged files cost a stat each).
        catch_up = True
        while not stop.is_set():
            present = [p for p in self.paths if p.exists()]
            if not present:
                stop.wait(TICK_MS / 1000)
                self._check_roots(stop)
                continue
            if any(p in self._gone for p in present):
                # back before a tick of its absence noticed it (deleted and re-created at once)
                self._check_roots(stop)
            restart = False
            for changes in watchfiles.watch(
                *present, watch_filter=self._relevant, debounce=self.debounce_ms, step=self.step_ms,
                stop_event=stop, rust_timeout=TICK_MS, yield_on_timeout=True, force_polling=self.poll or None,
                poll_delay_ms=TICK_MS // 2, raise_interrupt=False, ignore_permission_denied=True,
            ):
                if self._roots_changed(present):
                    restart = True  # a folder came or went: watch the new set (and catch up)
                if changes:
                    self.stats.events += len(changes)
                    self.stats.batches += 1
                    self._settle({Path(p) for _, p in changes}, stop)
                if changes or catch_up:
                    catch_up = False
                    self._ingest(stop)
                if restart or stop.is_set():
                    break
            if restart:
                self._check_roots(stop)
                catch_up = True
        return self.stats

    def _roots_changed(self, watched: list[Path]) -> bool:
        return [p for p in self.paths if p.exists()] != watched

    def _check_roots(self, stop: threading.Event | None = None) -> None:
        """Forget what was under a watched path that is gone; ingest one that came back."""
        came_back = False
        for path in self.paths:
            if path.exists():
                if path in self._gone:
                    self._gone.discard(path)
                    self.on_notice(f"{path} is back: reading it again")
                    came_back = True
            elif path not in self._gone:
                self._gone.add(path)
                self.on_notice(f"{path} is gone: its documents leave the index until it comes back")
                self._remove(path, stop)
        if came_back and stop is not None:
            self._ingest(stop)

    # -- what counts as a change ---------------------------------------------------------------

    def _relevant(self, change, path: str) -> bool:
        """Whether an event may change what is indexed; `Index.ingest` decides what actually is."""
        import watchfiles

        name = os.path.basename(path)
        if is_temporary(name):
            return False
        root = next((r for r in self.paths if path == str(r) or path.startswith(str(r) + os.sep)), None)
        if root is not None:
            inside = Path(path).relative_to(root).parts
            hidden = [part for part in inside if part.startswith(".")]
            if hidden and not (len(hidden) == 1 and inside[-1] in IGNORE_FILES):
                return False
        if change == watchfiles.Change.deleted or name in IGNORE_FILES:
            return True  # a deleted folder has no suffix to judge it by
        if os.path.isdir(path):
            return True
        return self.index.reads(path)

    def _settle(self, paths: set[Path], stop: threading.Event) -> None:
        """Wait until every changed file that exists keeps its size and mtime for settle_s."""
        def snapshot() -> dict[Path, tuple[int, int] | None]:
            out = {}
            for path in paths:
                try:
                    st = path.stat()
                    out[path] = (st.st_size, st.st_mtime_ns)
                except OSError:
                    out[path] = None
            return out

        started = time.monotonic()
        before = snapshot()
        while not stop.wait(self.settle_s):
            after = snapshot()
            if after == before or time.monotonic() - started > SETTLE_LIMIT_S:
                return
            before = after

    # -- writing ---------------------------------------------------------------------------------

    def _ingest(self, stop: threading.Event) -> None:
        present = [p for p in self.paths if p.exists()]
        if not present:
            return
        while True:
            self.ingesting = True
            started = time.perf_counter()
            try:
                report = self.index.ingest(present)
            except IndexBusy as exc:
                self.on_notice(f"waiting: {exc}")
                if stop.wait(BUSY_RETRY_S):
                    return
                continue
            except RagError as exc:
                self.on_notice(f"could not ingest: {exc}")
                return
            finally:
                self.ingesting = False
                self.stats.seconds_ingesting += time.perf_counter() - started
            self.stats.runs += 1
            self.stats.reports.append(report)
            self.on_report(report)
            return

    def _remove(self, path: Path, stop: threading.Event | None) -> None:
        while True:
            try:
                removal = self.index.remove([path])
            except IndexBusy as exc:
                self.on_notice(f"waiting: {exc}")
                if stop is not None and stop.wait(BUSY_RETRY_S):
                    return
                if stop is None:
                    time.sleep(BUSY_RETRY_S)
                continue
            except RagError as exc:
                self.on_notice(f"could not remove {path}: {exc}")
                return
            if removal.removed:
                self.on_report(IngestReport(index=str(self.index.path), removed=len(removal.removed),
                                            changes=[_removed(p) for p in removal.removed]))
            return


def _removed(path: str):
    from rag.types import Change

    return Change(path, "removed")


def watch_in_background(index: Index, paths: Iterable[str | os.PathLike], *, poll: bool = False,
                        on_report: Callable[[IngestReport], None] | None = None,
                        on_notice: Callable[[str], None] | None = None) -> tuple[threading.Thread, threading.Event]:
    """A watcher on its own thread (what `rag serve --watch` and `rag mcp --watch` run): returns
    the thread and the event that stops it. `index` should be the watcher's own Index (its own
    SQLite connection), so that searches on the server's never wait for an ingest."""
    stop = threading.Event()
    watcher = Watcher(index, paths, poll=poll, on_report=on_report, on_notice=on_notice)
    thread = threading.Thread(target=watcher.run, args=(stop,), name="rag-watch", daemon=True)
    thread.start()
    return thread, stop


def keep_fresh(settings: Settings, *, poll: bool = False, log: Callable[[str], None] = lambda line: None):
    """For a server: watch the folders the index at `settings` was built from, on a thread, with an
    Index of its own (its own SQLite connection: the server's searches never wait for an ingest
    and see each committed batch). Returns (thread, stop event), or None when the index records
    no folders yet."""
    from rag.index import Index

    index = Index.open(settings)
    roots = index.status().roots
    if not roots:
        log("nothing to watch: the index records no ingested folders")
        index.close()
        return None

    def report(ingest: IngestReport) -> None:
        for change in ingest.changes:
            log(f"{change.kind} {change.path}" + (f" (from {change.previous})" if change.previous else ""))
        for failure in ingest.failures:
            log(f"failed {failure.path}: {failure.reason}")

    log(f"watching {', '.join(roots)}" + (" (polling)" if poll else ""))
    return watch_in_background(index, roots, poll=poll, on_report=report, on_notice=log)
