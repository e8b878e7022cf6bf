"""`rag watch` and the embedding cache: an index that keeps itself fresh and never embeds twice.

The watcher runs in a thread of the test process (the session's model, short debounce) except
where the process itself is the point (kill -9, SIGTERM, a manual ingest beside it). Nothing here
waits a fixed time for the watcher: each test polls the index until it shows what should happen,
with a generous timeout for a busy machine.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

from rag import Index, Settings
from rag.watch.watcher import Watcher, is_temporary
from tests.helpers import RAG, clean_env

TIMEOUT_S = 120  # a busy 2-core machine; only a failure ever waits this long

NOTES = {
    "kettle.md": "# Kettle\n\nThe kettle descales with white vinegar once a month.\n\n"
                 "## Safety\n\nNever run the kettle dry; the thermal fuse cuts power at 140 degrees.\n",
    "toaster.md": "# Toaster\n\nThe toaster's crumb tray slides out from the back.\n\n"
                  "## Settings\n\nSetting 4 browns sourdough evenly in about three minutes.\n",
}


def settings_for(root: Path) -> Settings:
    return Settings(index_dir=root / "indexes", embed_backend="torch")


def write_notes(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in NOTES.items():
        (folder / name).write_text(text, encoding="utf-8")
    return folder


def wait_for(condition, what: str, timeout: float = TIMEOUT_S):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


class Running:
    """A watcher on a thread, with every report and notice it made."""

    def __init__(self, index: Index, paths, **options):
        self.reports = []
        self.notices = []
        self.watcher = Watcher(index, paths, on_report=self.reports.append, on_notice=self.notices.append,
                               step_ms=100, settle_s=0.2, **options)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.watcher.run, args=(self.stop,), daemon=True)

    def __enter__(self):
        self.thread.start()
        wait_for(lambda: self.watcher.stats.runs >= 1, "the first ingest")
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join(TIMEOUT_S)
        assert not self.thread.is_alive()

    def changes(self):
        return [(c.kind, Path(c.path).name) for r in self.reports for c in r.changes]


def paths_in(index: Index) -> set[str]:
    return {Path(d.path).name for d in index.documents()}


@pytest.fixture
def notes(tmp_path, embedder):
    return write_notes(tmp_path / "notes")


def test_a_new_file_becomes_searchable_and_a_deleted_one_leaves(tmp_path, notes):
    with Index.open(settings_for(tmp_path), create=True) as index, Running(index, [notes]) as running:
        assert paths_in(index) == {"kettle.md", "toaster.md"}
        (notes / "blender.md").write_text("# Blender\n\nThe blender's jar is dishwasher safe.\n", encoding="utf-8")
        wait_for(lambda: "blender.md" in paths_in(index), "the new file")
        assert index.search("Can the blender jar go in the dishwasher?").hits[0].path.endswith("blender.md")
        (notes / "toaster.md").unlink()
        wait_for(lambda: "toaster.md" not in paths_in(index), "the deleted file to leave")
        assert ("removed", "toaster.md") in running.changes()


def test_an_atomic_save_indexes_the_new_text_and_never_the_temp_file(tmp_path, notes):
    with Index.open(settings_for(tmp_path), create=True) as index, Running(index, [notes]) as running:
        # how editors (and most save dialogs) write: a temp file beside it, renamed over the original
        temp = notes / ".kettle.md.swp"
        temp.write_text("half", encoding="utf-8")
        (notes / "4913").write_text("", encoding="utf-8")  # vim's write probe
        (notes / "kettle.md~").write_text(NOTES["kettle.md"], encoding="utf-8")  # a backup
        scratch = notes / "kettle.md.tmp"
        scratch.write_text(NOTES["kettle.md"] + "\nDescale twice a month in hard-water areas.\n", encoding="utf-8")
        os.replace(scratch, notes / "kettle.md")
        temp.unlink()
        wait_for(lambda: any(k == "updated" and n == "kettle.md" for k, n in running.changes()), "the saved file")
        assert paths_in(index) == {"kettle.md", "toaster.md"}
        hit = index.search("How often should I descale in hard water?").hits[0]
        assert "twice a month" in hit.text
        assert all(not is_temporary(n) and n != "4913" for _, n in running.changes())


def test_a_growing_download_is_read_once_complete(tmp_path, notes):
    with Index.open(settings_for(tmp_path), create=True) as index, Running(index, [notes]) as running:
        partial = notes / "manual.md.part"
        with partial.open("w", encoding="utf-8") as out:
            out.write("# Manual\n\n")
            for n in range(20):
                out.write(f"Step {n}: turn the dial to position {n}.\n")
                out.flush()
                time.sleep(0.02)
        assert "manual.md.part" not in paths_in(index)
        os.replace(partial, notes / "manual.md")
        wait_for(lambda: "manual.md" in paths_in(index), "the finished download")
        [doc] = [d for d in index.documents() if d.path.endswith("manual.md")]
        assert doc.size == (notes / "manual.md").stat().st_size  # the whole file, not a prefix
        assert all(n != "manual.md.part" for _, n in running.changes())


def test_a_file_written_slowly_in_place_is_read_only_when_it_stops_changing(tmp_path, notes):
    with Index.open(settings_for(tmp_path), create=True) as index, Running(index, [notes]) as running:
        slow = notes / "log.md"
        with slow.open("w", encoding="utf-8") as out:
            out.write("# Log\n\n")
            for n in range(8):
                out.write(f"Entry {n}: the pump ran for {n} minutes.\n")
                out.flush()
                time.sleep(0.12)  # slower than the batch step: events keep coming
        wait_for(lambda: "log.md" in paths_in(index), "the slow file")
        final = slow.stat().st_size
        wait_for(lambda: next(d.size for d in index.documents() if d.path.endswith("log.md")) == final,
                 "the complete file")
        sizes = [c for r in running.reports for c in r.changes if c.path.endswith("log.md")]
        assert sizes  # read, and every read after the first is an update of the same document


def test_ignored_and_hidden_files_are_left_out_exactly_as_ingest_leaves_them(tmp_path, notes):
    (notes / ".ragignore").write_text("drafts/\n", encoding="utf-8")
    with Index.open(settings_for(tmp_path), create=True) as index, Running(index, [notes]):
        (notes / "drafts").mkdir()
        (notes / "drafts" / "secret.md").write_text("# Secret\n\nThe safe code is 4411.\n", encoding="utf-8")
        (notes / ".hidden.md").write_text("# Hidden\n\nNothing to see.\n", encoding="utf-8")
        (notes / "visible.md").write_text("# Visible\n\nThe garage door opener runs on a 9 V battery.\n",
                                          encoding="utf-8")
        wait_for(lambda: "visible.md" in paths_in(index), "the visible file")
        assert paths_in(index) == {"kettle.md", "toaster.md", "visible.md"}
        # changing the ignore rules is a change too: the draft comes in
        (notes / ".ragignore").write_text("", encoding="utf-8")
        wait_for(lambda: "secret.md" in paths_in(index), "the no longer ignored file")
        assert ".hidden.md" not in paths_in(index)


def test_a_burst_of_files_becomes_a_few_ingests(tmp_path, notes):
    with Index.open(settings_for(tmp_path), create=True) as index, Running(index, [notes]) as running:
        runs_before = running.watcher.stats.runs
        burst = notes / "burst"
        burst.mkdir()
        for n in range(200):
            (burst / f"note{n:03}.md").write_text(f"# Note {n}\n\nReminder number {n} about the garden hose.\n",
                                                  encoding="utf-8")
        wait_for(lambda: len(paths_in(index)) == 202, "all 200 files")
        runs = running.watcher.stats.runs - runs_before
        assert 1 <= runs <= 10, runs  # batched, never one ingest per file


def test_a_watched_folder_deleted_and_recreated_is_followed_again(tmp_path, notes):
    import shutil

    with Index.open(settings_for(tmp_path), create=True) as index, Running(index, [notes]) as running:
        shutil.rmtree(notes)
        wait_for(lambda: not paths_in(index), "the documents of the deleted folder to leave")
        write_notes(notes)
        wait_for(lambda: paths_in(index) == {"kettle.md", "toaster.md"}, "the re-created folder")
        (notes / "after.md").write_text("# After\n\nThe watcher follows the new folder too.\n", encoding="utf-8")
        wait_for(lambda: "after.md" in paths_in(index), "a file in the re-created folder")
        assert any("is gone" in n for n in running.notices) and any("is back" in n for n in running.notices)


# -- nothing embedded twice (plain ingest) ---------------------------------------------------------


def long_document(paragraphs: int = 40) -> str:
    return "# Handbook\n\n" + "\n\n".join(
        f"## Section {n}\n\nParagraph {n} explains how appliance {n} is cleaned, stored and repaired, "
        f"with the part number KX-{1000 + n} and the warranty of {n % 5 + 1} years." for n in range(paragraphs))


def test_a_rename_a_move_a_copy_and_an_edit_embed_only_what_changed(tmp_path, embedder):
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "handbook.md").write_text(long_document(), encoding="utf-8")
    with Index.open(settings_for(tmp_path), create=True) as index:
        first = index.ingest([folder])
        total = first.chunks
        assert total > 10 and first.reused == 0

        os.replace(folder / "handbook.md", folder / "guide.md")
        renamed = index.ingest([folder])
        assert (renamed.renamed, renamed.added, renamed.removed, renamed.chunks) == (1, 0, 0, 0)

        (folder / "archive").mkdir()
        os.replace(folder / "guide.md", folder / "archive" / "guide.md")
        moved = index.ingest([folder])
        assert (moved.renamed, moved.chunks) == (1, 0)
        assert paths_in(index) == {"guide.md"}

        import shutil

        shutil.copy(folder / "archive" / "guide.md", folder / "guide.md")
        copied = index.ingest([folder])
        assert copied.added == 1 and copied.chunks == total and copied.reused == total  # nothing embedded

        text = (folder / "guide.md").read_text(encoding="utf-8")
        edited_text = text.replace("Paragraph 20 explains", "Paragraph 20, rewritten, explains")
        (folder / "guide.md").write_text(edited_text, encoding="utf-8")
        edited = index.ingest([folder])
        assert edited.updated == 1
        assert 1 <= edited.chunks - edited.reused <= 2  # the edited paragraph's chunk (and a neighbour)

        hits = index.search("Which part number does appliance 20 use?").hits
        assert any("KX-1020" in h.text for h in hits)
        assert index.search("rewritten paragraph 20").hits[0].path.endswith("docs/guide.md")


def test_a_ray_worker_skips_chunks_the_index_already_holds_and_the_driver_fills_them(tmp_path, embedder):
    """The worker's half of nothing-embedded-twice under --ray, without a cluster: rows it skips
    come back NaN, and the batch's commit fills them from SQLite."""
    import numpy as np

    from ingest.chunk import ChunkSettings
    from ingest.distributed import IngestWorker
    from ingest.pipeline import Batch, Pending, Segment, SilentProgress
    from rag.storage.store import Store
    from rag.text import text_key
    from rag.types import Chunk, Document, IngestReport

    store = Store.open(tmp_path / "index", create=True)
    texts = ["The kettle descales with vinegar.", "The toaster tray slides out.", "A brand new sentence."]
    chunks = [Chunk(i, t, (), None, 0, len(t), t) for i, t in enumerate(texts)]
    stored = embedder.embed_documents(texts[:2])
    with store.transaction():
        store.put_document(Document(path=tmp_path / "a.md", title="a", sections=[], content_hash="x", mtime=0,
                                    size=1, pages=None, parser=1), chunks[:2], stored)
    worker = IngestWorker.__new__(IngestWorker)
    worker.embedder = embedder
    vectors = worker._embed(texts, frozenset(text_key(t) for t in texts[:2]))
    assert np.isnan(vectors[:2]).all() and not np.isnan(vectors[2]).any()

    doc = Document(path=tmp_path / "b.md", title="b", sections=[], content_hash="y", mtime=0, size=1, pages=None,
                   parser=1)
    batch = Batch(store, embedder, ChunkSettings(), IngestReport(), SilentProgress())
    segment = Segment(Pending(doc, [], False), chunks, True, vectors)
    filled, fresh = batch._embeddings([segment], texts)
    assert fresh.tolist() == [False, False, True]
    np.testing.assert_allclose(filled[:2], stored, atol=1e-6)
    np.testing.assert_allclose(filled[2], vectors[2], atol=1e-6)
    store.close()


# -- the command: signals, kill -9, a manual ingest beside it, a server that follows --------------


def watch_process(tmp_path: Path, folder: Path, *extra: str) -> subprocess.Popen:
    env = clean_env()
    return subprocess.Popen([str(RAG), "watch", str(folder), "--embed-backend", "torch", "--json", *extra],
                            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def read_events(process: subprocess.Popen, until, timeout: float = TIMEOUT_S) -> list[dict]:
    """JSON lines from the watcher until `until(events)` holds (read on a thread: a silent watcher
    fails the test after `timeout` instead of hanging it)."""
    import queue

    lines: queue.Queue = queue.Queue()
    reader = getattr(process, "_lines", None)
    if reader is None:
        def pump() -> None:
            for line in process.stdout:
                lines.put(line)
            lines.put(None)

        process._lines = lines
        threading.Thread(target=pump, daemon=True).start()
    else:
        lines = reader
    events: list[dict] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
        except queue.Empty:
            break
        if line is None:
            break
        events.append(json.loads(line))
        if until(events):
            return events
    raise AssertionError(f"the watcher stopped or timed out; got {events}")


@pytest.mark.slow
def test_sigterm_stops_the_watcher_cleanly_and_keeps_what_it_committed(tmp_path, notes):
    process = watch_process(tmp_path, notes)
    try:
        read_events(process, lambda ev: sum(e["event"] == "added" for e in ev) == 2)
        (notes / "late.md").write_text("# Late\n\nThe late note mentions the porch light timer.\n", encoding="utf-8")
        read_events(process, lambda ev: any(e["event"] == "added" and e.get("path", "").endswith("late.md") for e in ev))
        process.send_signal(signal.SIGTERM)
        assert process.wait(TIMEOUT_S) == 0
        read_events(process, lambda ev: any("stopped after" in e.get("message", "") for e in ev))
    finally:
        process.kill()
    with Index.open(settings_for(tmp_path)) as index:
        assert paths_in(index) == {"kettle.md", "toaster.md", "late.md"}


@pytest.mark.slow
def test_a_watcher_killed_with_9_and_restarted_catches_up(tmp_path, notes):
    process = watch_process(tmp_path, notes)
    read_events(process, lambda ev: sum(e["event"] == "added" for e in ev) == 2)
    process.kill()
    process.wait()
    (notes / "while-down.md").write_text("# While down\n\nWritten while the watcher was dead.\n", encoding="utf-8")
    (notes / "toaster.md").unlink()
    restarted = watch_process(tmp_path, notes)
    try:
        events = read_events(restarted, lambda ev: any(e["event"] == "removed" for e in ev)
                             and any(e.get("path", "").endswith("while-down.md") for e in ev))
        assert not any(e["event"] == "added" and e.get("path", "").endswith("kettle.md") for e in events)  # kept
    finally:
        restarted.send_signal(signal.SIGTERM)
        restarted.wait(TIMEOUT_S)
    with Index.open(settings_for(tmp_path)) as index:
        assert paths_in(index) == {"kettle.md", "while-down.md"}


@pytest.mark.slow
def test_a_manual_ingest_beside_a_watcher_waits_its_turn_or_is_refused_in_one_line(tmp_path, notes):
    process = watch_process(tmp_path, notes)
    try:
        read_events(process, lambda ev: sum(e["event"] == "added" for e in ev) == 2)
        extra = tmp_path / "extra"
        write_notes(extra)
        env = clean_env()
        manual = subprocess.run([str(RAG), "ingest", str(extra), "--embed-backend", "torch"], cwd=tmp_path, env=env,
                                capture_output=True, text=True, timeout=TIMEOUT_S)
        if manual.returncode:  # the watcher held the lock at that moment
            assert manual.stderr.strip().splitlines()[-1].startswith("Error: another ingest"), manual.stderr
        (notes / "more.md").write_text("# More\n\nThe watcher still works after a manual ingest.\n", encoding="utf-8")
        read_events(process, lambda ev: any(e.get("path", "").endswith("more.md") for e in ev if "path" in e))
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(TIMEOUT_S)
    check = subprocess.run(["sqlite3", str(tmp_path / "indexes" / "default" / "rag.sqlite"), "PRAGMA integrity_check"],
                           capture_output=True, text=True)
    assert check.returncode != 0 or check.stdout.strip() == "ok"


@pytest.mark.slow
def test_serve_watch_answers_during_a_burst_and_sees_each_committed_batch(tmp_path, notes):
    import urllib.request

    from rag.servers.http import bound_port, create_app, make_server
    from rag.watch.watcher import keep_fresh

    settings = settings_for(tmp_path)
    with Index.open(settings, create=True) as index:
        index.ingest([notes])
    app = create_app(settings)
    server = make_server(app, "127.0.0.1", 0)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_for(lambda: server.started, "the server")
    fresh = keep_fresh(settings, log=lambda line: None)
    assert fresh is not None
    watch_thread, stop = fresh
    url = f"http://127.0.0.1:{bound_port(server)}/v1/search"
    try:
        burst = notes / "burst"
        burst.mkdir()
        for n in range(100):
            (burst / f"part{n:03}.md").write_text(f"# Part {n}\n\nSpare part {n} fits the lawn mower model LM-{n}.\n",
                                                  encoding="utf-8")
        seen = []
        deadline = time.monotonic() + TIMEOUT_S
        while time.monotonic() < deadline:
            request = urllib.request.Request(url, data=json.dumps({"query": "LM-99", "k": 5, "mode": "keyword"}).encode(),
                                             headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(request, timeout=60) as reply:
                assert reply.status == 200
                paths = [p["path"] for p in json.loads(reply.read())["hits"]]
            seen.append(paths)
            if any(p.endswith("part099.md") for p in paths):
                break
        assert any(p.endswith("part099.md") for p in seen[-1]), "the last file never became searchable"
    finally:
        stop.set()
        watch_thread.join(TIMEOUT_S)
        server.should_exit = True
        thread.join(TIMEOUT_S)
