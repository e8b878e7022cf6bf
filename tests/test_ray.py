"""`rag ingest --ray` against a real Ray cluster on this machine: the same index as a local run,
a worker killed mid-run, a driver killed mid-run, an unreachable cluster, workers that cannot
ingest, and bounded work in flight.

One cluster (a head with 2 CPUs, so two single-CPU workers) is started for the whole module by a
holder process and torn down after; every test joins it as a driver, as a user's `rag` would.
The Ray tests are marked slow, and skip only when Ray is not installed (`make install` installs rag[ray]).
"""

from __future__ import annotations

import importlib.util
import os
import secrets
import signal
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ingest.chunk import ChunkSettings
from ingest.pipeline import BATCH_CHUNKS, SilentProgress, run_ingest
from rag import __version__
from rag.config import Settings
from rag.index import Index
from rag.storage.store import Store
from tests.helpers import (INDEX, clean_env, committed_chunks, error_lines, ingest_and_kill_after_the_first_commit,
                           make_corpus, make_notes, write_hostile)

needs_ray = pytest.mark.skipif(importlib.util.find_spec("ray") is None, reason="Ray is not installed (rag[ray])")
MODEL_ID = "sentence-transformers/all-MiniLM-L6-v2"

HOLDER = """
import logging, sys
import ray
ctx = ray.init(num_cpus=2, include_dashboard=False, object_store_memory=128 * 2**20,
               logging_level=logging.ERROR, log_to_driver=False)
print(ctx.address_info["gcs_address"], flush=True)
sys.stdin.read()  # until the test module closes our stdin
ray.shutdown()
"""


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """The GCS address of a 2-CPU Ray cluster held by a child process for this module."""
    if importlib.util.find_spec("ray") is None:
        pytest.skip("Ray is not installed (rag[ray])")
    # a token of our own: the drivers (this process, and the `rag` processes it starts) share it
    env = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(16), "RAY_memory_monitor_refresh_ms": "0",
           "RAY_USAGE_STATS_ENABLED": "0"}
    saved = {key: os.environ.get(key) for key in env}
    os.environ.update(env)
    log = tmp_path_factory.mktemp("ray") / "holder.log"
    with open(log, "w") as errors:
        holder = subprocess.Popen([sys.executable, "-c", HOLDER], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=errors, text=True, env={**os.environ})
    try:
        address = _read_line(holder, timeout=240)
        assert address, f"the Ray head did not start: {log.read_text()[-2000:]}"
        yield address
    finally:
        holder.stdin.close()
        try:
            holder.wait(timeout=60)
        except subprocess.TimeoutExpired:
            holder.kill()  # its Ray processes die with it (Ray ties them to their parent)
            holder.wait()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _read_line(proc: subprocess.Popen, timeout: float) -> str:
    import selectors

    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        if not sel.select(timeout):
            return ""
    return proc.stdout.readline().strip()


def spec(**changes):
    from ingest.distributed import WorkerSpec

    values = {"model_id": MODEL_ID, "runtime": "torch", "rag_version": __version__,
              "chunking": ChunkSettings()}
    return WorkerSpec(**{**values, **changes})


SMALL = ChunkSettings(48, 0)  # short chunks embed fast: for tests about files, not about chunking


def expected_chunks(folder: Path, embedder, chunking: ChunkSettings) -> dict[str, int]:
    """Chunks per document an uninterrupted ingest stores (the same loader and chunker, no model)."""
    from ingest.chunk import chunk_sections
    from ingest.formats import loader_for

    counts = {}
    for path in sorted(folder.iterdir()):
        title, sections, _ = loader_for(path)(path, path.read_bytes())
        counts[str(path)] = len(chunk_sections(title, sections, embedder.token_offsets, embedder.max_tokens, chunking))
    return counts


def stored(root: Path) -> dict:
    """Everything an index holds that a reader sees, keyed so that row ids do not matter."""
    db = sqlite3.connect(root / "rag.sqlite")
    try:
        docs = {row[0]: row[1:] for row in db.execute(
            "SELECT path, content_hash, title, pages, chunks, parser, page_kind FROM documents")}
        chunks = {(path, ordinal): (text, page, heading, start, end, np.frombuffer(blob, dtype=np.float32))
                  for path, ordinal, text, page, heading, start, end, blob in db.execute(
                      "SELECT d.path, c.ordinal, c.text, c.page, c.heading, c.char_start, c.char_end, c.embedding "
                      "FROM chunks c JOIN documents d ON d.id = c.document_id")}
        fts = sorted(db.execute("SELECT f.text, f.heading, f.title FROM chunks_fts f"))
        meta = dict(db.execute("SELECT key, value FROM meta WHERE key IN "
                               "('embed_model', 'embed_runtime', 'dim', 'chunk_tokens', 'overlap_tokens')"))
        rows = db.execute("SELECT COUNT(*) FROM chunks").fetchone()[0]
    finally:
        db.close()
    return {"docs": docs, "chunks": chunks, "fts": fts, "meta": meta, "rows": rows}


class Recorder(SilentProgress):
    def __init__(self):
        self.notices: list[str] = []
        self.busy: list[tuple[int, int]] = []
        self.failures: list[tuple[str, str]] = []

    def workers(self, busy: int, total: int) -> None:
        self.busy.append((busy, total))

    def notice(self, message: str) -> None:
        self.notices.append(message)

    def failure(self, path: str, reason: str) -> None:
        self.failures.append((Path(path).name, reason))


def many_files(folder: Path, count: int, paragraphs: int = 1) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for n in range(count):
        body = "\n\n".join(f"Entry {n}.{p}: the lighthouse keeper logged the tide, the wind and {p} ships passing "
                           f"the harbour wall before dawn, as the log of station {n} requires. " * 6
                           for p in range(paragraphs))
        (folder / f"log-{n:03d}.md").write_text(f"# Station {n}\n\n{body}\n")
    return folder


# -- same result as a local run --------------------------------------------------------------------


@pytest.mark.slow  # a Ray cluster: workers load the model
@needs_ray
def test_ray_ingest_stores_what_a_local_ingest_stores(cluster, tmp_path, embedder):
    folder = make_corpus(tmp_path / "corpus")
    bad, _ = write_hostile(folder, "truncated pdf")
    local = Store.open(tmp_path / "local", create=True)
    expected = run_ingest([folder], local, embedder, ChunkSettings())
    local.close()

    # the local run above used the torch `embedder` fixture: the same runtime on the workers
    with Index.open(Settings(index_dir=tmp_path / "indexes", embed_backend="torch"), create=True) as index:
        report = index.ingest([folder], ray_address=cluster)

    assert (report.added, report.chunks) == (expected.added, expected.chunks) == (5, report.chunks)
    assert [(f.path, f.reason) for f in report.failures] == [(f.path, f.reason) for f in expected.failures]
    assert [Path(f.path).name for f in report.failures] == [Path(bad).name]
    ours, theirs = stored(tmp_path / INDEX), stored(tmp_path / "local")
    assert ours["docs"] == theirs["docs"]
    assert ours["meta"] == theirs["meta"]
    assert ours["fts"] == theirs["fts"]
    assert ours["chunks"].keys() == theirs["chunks"].keys()
    for key, (*fields, vector) in ours["chunks"].items():
        *local_fields, local_vector = theirs["chunks"][key]
        assert fields == local_fields, key
        assert np.allclose(vector, local_vector, atol=1e-5), key


@pytest.mark.slow  # a Ray cluster: workers load the model
@needs_ray
def test_a_ray_reingest_of_an_unchanged_corpus_starts_no_worker(cluster, tmp_path, embedder):
    from ingest.distributed import RayReader

    folder = make_notes(tmp_path / "notes")
    store = Store.open(tmp_path / "index", create=True)
    run_ingest([folder], store, embedder, ChunkSettings())

    with RayReader.connect(cluster, spec()) as reader:
        again = run_ingest([folder], store, embedder, ChunkSettings(), reader=reader)

    assert (again.unchanged, again.chunks, reader.stats.workers) == (3, 0, 0)


# -- faults ----------------------------------------------------------------------------------------


class KillOneWorker(Recorder):
    """Kills the first worker (SIGKILL to its process) once the first file has come back."""

    def __init__(self):
        super().__init__()
        self.reader = None
        self.killed: int | None = None

    def workers(self, busy: int, total: int) -> None:
        super().workers(busy, total)
        if self.killed is None and self.reader.stats.files >= 1:
            self.killed = self.reader.workers[0].pid
            os.kill(self.killed, signal.SIGKILL)


@pytest.mark.slow  # a Ray cluster: workers load the model
@needs_ray
def test_a_worker_killed_mid_run_loses_and_duplicates_nothing(cluster, tmp_path, embedder):
    from ingest.distributed import RayReader

    folder = many_files(tmp_path / "logs", 16)
    store = Store.open(tmp_path / "index", create=True)
    progress = KillOneWorker()

    with RayReader.connect(cluster, spec(chunking=SMALL)) as reader:
        progress.reader = reader
        report = run_ingest([folder], store, embedder, SMALL, progress=progress, reader=reader)

    assert progress.killed is not None
    assert report.ok and report.added == 16, report.failures
    assert [who.endswith(f"(pid {progress.killed})") for who in reader.stats.lost_workers] == [True]
    assert any("died" in line and f"pid {progress.killed}" in line for line in progress.notices), progress.notices
    assert reader.stats.resubmitted >= 1
    index = stored(tmp_path / "index")
    assert index["rows"] == len(index["chunks"]) == len(index["fts"]) == report.chunks  # no duplicate chunk
    assert sorted(Path(p).name for p in index["docs"]) == sorted(p.name for p in folder.iterdir())
    assert all(doc[3] == sum(1 for (path, _) in index["chunks"] if path == p) for p, doc in index["docs"].items())


@pytest.mark.slow  # a Ray cluster: workers load the model
@needs_ray
def test_workers_with_another_rag_version_are_refused_naming_their_node(cluster, tmp_path):
    from ingest.distributed import RayReader, RayUnavailable

    folder = make_notes(tmp_path / "notes")
    store = Store.open(tmp_path / "index", create=True)

    with RayReader.connect(cluster, spec(rag_version="0.0.1"), workers=1) as reader:
        with pytest.raises(RayUnavailable) as caught:
            run_ingest([folder], store, reader=reader, embedder=_NoModel(), chunking=ChunkSettings())

    assert str(caught.value).startswith(f"Ray worker on {socket.gethostname()} (")
    assert f"rag {__version__} is installed there, the driver runs 0.0.1" in str(caught.value)
    assert store.chunk_count() == 0


@pytest.mark.slow  # a Ray cluster: workers load the model
@needs_ray
def test_workers_that_lack_the_model_are_refused_naming_their_node(cluster, tmp_path):
    from ingest.distributed import RayReader, RayUnavailable

    folder = make_notes(tmp_path / "notes")
    store = Store.open(tmp_path / "index", create=True)
    missing = str(tmp_path / "no-such-model")

    with RayReader.connect(cluster, spec(model_id=missing), workers=1) as reader:
        with pytest.raises(RayUnavailable) as caught:
            run_ingest([folder], store, reader=reader, embedder=_NoModel(missing), chunking=ChunkSettings())

    assert str(caught.value).startswith(f"Ray worker on {socket.gethostname()} (")
    assert "cannot load embedding model" in str(caught.value)


class _NoModel:
    """A driver-side embedder that must never be asked to embed: the workers do that."""

    def __init__(self, model_id: str = MODEL_ID):
        self.id = model_id
        self.runtime = "torch"  # what the driver records and checks; it never loads the model

    def __getattr__(self, name):
        raise AssertionError(f"the driver touched the model ({name})")


@pytest.mark.slow  # a Ray cluster: workers load the model
@needs_ray
def test_an_unreachable_cluster_is_one_line_and_exit_1_with_nothing_written(tmp_path, rag_cli):
    make_notes(tmp_path / "notes")
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]

    result = rag_cli("ingest", "notes", "--ray", f"127.0.0.1:{port}", cwd=tmp_path, timeout=60)

    assert result.returncode == 1
    assert error_lines(result.stderr) == [f"Error: cannot reach the Ray cluster at 127.0.0.1:{port}: "
                                          f"connection refused (is `ray start --head` running there?)"]
    assert not (tmp_path / "indexes").exists()


@pytest.mark.slow  # a Ray cluster: workers load the model
@needs_ray
def test_at_most_two_files_per_worker_are_in_flight(cluster, tmp_path):
    from ingest.distributed import IN_FLIGHT_PER_WORKER, RayReader

    folder = many_files(tmp_path / "logs", 12)
    pulled = 0
    most = 0

    def changed():
        nonlocal pulled
        from ingest.pipeline import Changed

        for path in sorted(folder.iterdir()):
            data = path.read_bytes()
            pulled += 1
            yield Changed(path, data, path.stat(), str(hash(data)), False)

    results = []
    with RayReader.connect(cluster, spec(chunking=SMALL), workers=2) as reader:
        for result in reader.read(changed(), Recorder()):
            most = max(most, pulled - len(results))
            results.append(result)
        workers = len(reader.workers)

    assert len(results) == 12 and workers == 2
    assert most <= IN_FLIGHT_PER_WORKER * workers


# -- kill -9 of the driver -------------------------------------------------------------------------


@pytest.mark.slow  # a Ray cluster: workers load the model
@needs_ray
def test_kill_9_of_a_ray_driver_keeps_what_was_committed_and_the_next_run_resumes(cluster, tmp_path, embedder):
    from ingest.distributed import IN_FLIGHT_PER_WORKER, RayReader

    folder = many_files(tmp_path / "logs", 12, paragraphs=10)  # ~50 short chunks each: few Ray calls
    expected = expected_chunks(folder, embedder, SMALL)
    total = sum(expected.values())
    # the driver blocks on the pipe once it has taken every file, with 2 per worker still out:
    # the files back by then must fill a batch, so that one is committed before the kill
    back_before_the_pipe = len(expected) - IN_FLIGHT_PER_WORKER * 2 + 1
    assert back_before_the_pipe * min(expected.values()) >= BATCH_CHUNKS
    ingest_and_kill_after_the_first_commit(tmp_path, folder, "--ray", cluster, "--embed-backend", "torch",
                                           "--chunk-tokens", str(SMALL.chunk_tokens), "--overlap-tokens", "0",
                                           within=300)
    committed = committed_chunks(tmp_path / INDEX / "rag.sqlite")
    assert 0 < committed < total

    store = Store.open(tmp_path / INDEX)
    with RayReader.connect(cluster, spec(chunking=SMALL)) as reader:
        report = run_ingest([folder], store, embedder, SMALL, reader=reader)

    assert report.ok, report.failures
    assert report.chunks == total - committed  # committed work is kept, not redone
    assert {d.path: d.chunks for d in store.documents()} == expected
    index = stored(tmp_path / INDEX)
    assert index["rows"] == len(index["fts"]) == total


# -- without Ray -----------------------------------------------------------------------------------


def test_a_local_ingest_never_imports_ray(tmp_path):
    make_notes(tmp_path / "notes")
    code = (
        "import sys\nfrom click.testing import CliRunner\nfrom rag.terminal.cli import main\n"
        "result = CliRunner().invoke(main, ['ingest', 'notes'])\n"
        "print(result.exit_code, 'ray' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, env=clean_env(),
                         timeout=300)

    assert out.stdout.splitlines()[:1] == ["0 False"], out.stdout + out.stderr
