"""One bad file never stops a run, nothing but regular files is opened, and a large file streams
through in batches (issue 30, cases 5, 6 and 8). Real model, SQLite and files in tmp_path."""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

import pytest

from ingest import pipeline
from ingest.chunk import ChunkSettings, chunk_sections
from ingest.pipeline import SilentProgress, run_ingest
from rag.storage.store import Store
from rag.types import Section
from tests.helpers import run_rag

GOOD = {"bread.md": "# Bread\n\nSourdough needs a starter that is fed every day.\n",
        "moons.txt": "Mars has two small moons, Phobos and Deimos.\n"}


@pytest.fixture
def store(tmp_path):
    store = Store.open(tmp_path / "indexes" / "default", create=True)
    yield store
    store.close()


def folder_with(tmp_path: Path, name: str, data: bytes) -> tuple[Path, Path]:
    folder = tmp_path / "docs"
    folder.mkdir()
    for good, text in GOOD.items():
        (folder / good).write_text(text)
    (folder / name).write_bytes(data)
    return folder, folder / name


def indexed(store: Store) -> list[str]:
    return [Path(d.path).name for d in store.documents()]


def notebook(cells: list, metadata: dict | None = None) -> bytes:
    return json.dumps({"nbformat": 4, "nbformat_minor": 5, "metadata": metadata or {}, "cells": cells}).encode()


def nested_mail(depth: int) -> bytes:
    """A message with `depth` multipart parts, each inside the one before."""
    parts = "".join(f'Content-Type: multipart/mixed; boundary="b{i}"\n\n--b{i}\n' for i in range(depth))
    closes = "".join(f"--b{i}--\n" for i in reversed(range(depth)))
    return (f"From: a@example.org\nSubject: deep\nMIME-Version: 1.0\n{parts}Content-Type: text/plain\n\nhello\n"
            f"{closes}").encode()


BAD_FILES = {
    "cells of numbers": ("numbers.ipynb", notebook([{"cell_type": "code", "source": [1, 2, 3]}]),
                         "not a valid notebook (the source of cell 1 is not text)"),
    "nested 100,000 deep": ("deep.ipynb", b"[" * 100_000 + b"]" * 100_000,
                            "not a valid notebook (its JSON nests too deeply)"),
    "3,000 nested parts": ("deep.eml", nested_mail(3000), "nested too deeply to read (RecursionError)"),
}


@pytest.mark.parametrize("kind", BAD_FILES)
def test_a_file_that_breaks_its_loader_is_reported_and_the_rest_is_indexed(tmp_path, store, embedder, kind):
    name, data, reason = BAD_FILES[kind]
    folder, bad = folder_with(tmp_path, name, data)

    report = run_ingest([folder], store, embedder, ChunkSettings())

    assert [(f.path, f.reason) for f in report.failures] == [(str(bad), reason)]
    assert indexed(store) == sorted(GOOD)


def test_a_notebook_whose_kernelspec_is_a_string_is_read(tmp_path, store, embedder):
    cells = [{"cell_type": "markdown", "source": "# Tides\n\nThe keeper logs the tides."}]
    folder, _ = folder_with(tmp_path, "tides.ipynb", notebook(cells, {"kernelspec": "python3"}))

    report = run_ingest([folder], store, embedder, ChunkSettings())

    assert report.ok, report.failures
    assert indexed(store) == sorted([*GOOD, "tides.ipynb"])


def test_any_exception_of_a_loader_is_that_files_failure_named(tmp_path, store, embedder, monkeypatch):
    from ingest import formats

    def broken(path, data):  # a bug in a reader, as the notebook and mail readers had
        raise AttributeError("'str' object has no attribute 'get'")

    monkeypatch.setitem(formats.LOADERS, ".rst", broken)
    folder, bad = folder_with(tmp_path, "guide.rst", b"Guide\n=====\n\ntext\n")

    report = run_ingest([folder], store, embedder, ChunkSettings())

    assert [(f.path, f.reason) for f in report.failures] == [
        (str(bad), "could not be read (AttributeError: 'str' object has no attribute 'get')")]
    assert indexed(store) == sorted(GOOD)


# -- only regular files are opened ------------------------------------------------------------


def test_a_fifo_named_on_the_command_line_is_refused_without_waiting_on_it(tmp_path):
    fifo = tmp_path / "p.txt"
    os.mkfifo(fifo)

    result = run_rag("ingest", str(fifo), "--index-dir", str(tmp_path / "indexes"), cwd=tmp_path, timeout=120)

    assert result.returncode == 1, result.stderr
    assert "failed: p.txt: not a regular file (a FIFO (named pipe)): name a file or a folder" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_device_named_on_the_command_line_is_refused_before_any_read():
    from ingest.discover import discover

    found = discover([Path("/dev/zero")])

    assert found.files == []
    assert found.problems == [(Path("/dev/zero"), "not a regular file (a character device): name a file or a folder")]


def test_a_file_swapped_for_a_fifo_after_discovery_is_refused_without_blocking(tmp_path):
    from ingest.pipeline import read_regular
    from rag.errors import LoadError

    fifo = tmp_path / "notes.txt"
    os.mkfifo(fifo)  # no writer: an ordinary open would wait forever

    with pytest.raises(LoadError, match=r"^not a regular file \(a FIFO"):
        read_regular(fifo)


# -- a large file is read, cut to size and committed in batches --------------------------------


def test_a_csv_with_a_200_kb_cell_is_read_not_refused():
    from ingest.formats.tabular import load_csv

    cell = "tide " * 40_000
    _, sections, _ = load_csv(Path("log.csv"), f"station,notes\nST-1,{cell}\nST-2,calm\n".encode())

    text = "\n".join(s.text for s in sections)
    assert " ".join(cell.split()) in text and "ST-2 | calm" in text


def test_a_one_word_line_of_megabytes_becomes_chunks_no_longer_than_the_window_allows(embedder):
    from ingest.chunk import MAX_CHARS_PER_TOKEN

    word = "x" * 1_000_000  # one [UNK] piece to the tokenizer, however long
    chunks = chunk_sections("log", [Section(text=word)], embedder.token_offsets, embedder.max_tokens,
                            ChunkSettings())

    assert max(len(c.text) for c in chunks) <= embedder.max_tokens * MAX_CHARS_PER_TOKEN
    assert "".join(c.text for c in chunks) == word


def long_text(sentences: int) -> str:
    return "\n\n".join(f"Entry {n}: the keeper of lighthouse {n} logged a tide of {n % 97} centimetres "
                       f"at dawn, and the lamp burned {n * 7 % 13} hours." for n in range(sentences))


class Watching(SilentProgress):
    """Records, at each commit, how many chunks of `path` another connection sees committed; stops
    the run (as a kill between two commits would) after `stop_after` commits."""

    def __init__(self, db: Path, path: Path, stop_after: int | None = None):
        self.db, self.path, self.stop_after = db, str(path), stop_after
        self.seen: list[int] = []

    def embedded(self, chunks: int) -> None:
        with sqlite3.connect(self.db) as reader:
            self.seen.append(reader.execute("SELECT COUNT(*) FROM chunks c JOIN documents d ON d.id = c.document_id "
                                            "WHERE d.path = ?", (self.path,)).fetchone()[0])
        if self.stop_after is not None and len(self.seen) >= self.stop_after:
            raise KeyboardInterrupt


@pytest.fixture
def small_batches(monkeypatch):
    monkeypatch.setattr(pipeline, "BATCH_CHUNKS", 16)
    monkeypatch.setattr(pipeline, "CHUNKS_AHEAD", 16, raising=False)
    return 16


def stored_chunks(store: Store, path: Path) -> list[tuple[int, str]]:
    rows = store.conn.execute("SELECT c.ordinal, c.text FROM chunks c JOIN documents d ON d.id = c.document_id "
                              "WHERE d.path = ? ORDER BY c.ordinal", (str(path),))
    return rows.fetchall()


def test_a_document_larger_than_a_batch_is_committed_batch_by_batch(tmp_path, store, embedder, small_batches):
    big = tmp_path / "log.txt"
    big.write_text(long_text(800))
    watching = Watching(store.root / "rag.sqlite", big)

    report = run_ingest([big], store, embedder, ChunkSettings(), progress=watching)

    total = report.chunks
    assert total > 4 * small_batches
    assert watching.seen == list(range(small_batches, total, small_batches)) + [total]  # visible as it goes
    assert [d.complete for d in store.documents()] == [True]


def test_an_ingest_stopped_mid_document_carries_on_from_its_last_commit(tmp_path, store, embedder, small_batches):
    big = tmp_path / "log.txt"
    big.write_text(long_text(800))
    reference = Store.open(tmp_path / "reference", create=True)
    total = run_ingest([big], reference, embedder, ChunkSettings()).chunks

    with pytest.raises(KeyboardInterrupt):
        run_ingest([big], store, embedder, ChunkSettings(), progress=Watching(store.root / "rag.sqlite", big, 2))
    (partial,) = store.documents()
    assert (partial.complete, partial.chunks) == (False, 2 * small_batches)  # nothing committed was lost

    report = run_ingest([big], store, embedder, ChunkSettings())

    assert report.chunks == total - 2 * small_batches  # only the rest is embedded
    assert stored_chunks(store, big) == stored_chunks(reference, big)
    assert [(d.complete, d.chunks) for d in store.documents()] == [(True, total)]
    reference.close()
