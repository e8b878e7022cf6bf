"""A damaged or full index says so in one line, and a damaged vector file is never searched
(issue 30, cases 1, 3 and 4). The real `rag` commands in process (CliRunner) over copies of the
shared index, and the real command in a subprocess on a tiny tmpfs for the full disk."""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from rag.terminal.cli import main
from tests.helpers import CLEAN_KEYS, RAG, copy_index, damage_table, make_corpus

MOONS = "How many moons does Mars have?"


@pytest.fixture
def root(built_index, tmp_path, monkeypatch, embedder) -> Path:
    """A copy of the shared index in ./indexes/default, the working folder; `embedder` loads the
    model once for the session, so the commands' own loads are quick."""
    copy_index(built_index / "indexes", tmp_path / "indexes")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def rag(*args: str):
    return CliRunner().invoke(main, list(args), env={})


def assert_one_error_line(result, *fragments: str) -> str:
    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


# -- a damaged SQLite page ----------------------------------------------------------------------


def test_a_question_on_a_damaged_index_is_one_line_naming_it_and_what_to_do(root):
    damage_table(root / "indexes" / "default" / "rag.sqlite", "chunks")

    result = rag("ask", MOONS, "--no-llm")

    assert_one_error_line(result, "the index at indexes/default is damaged (database disk image is malformed)",
                          "run `rag status --check`", "delete that folder and ingest again")


def test_removing_a_document_from_a_damaged_index_is_one_line_naming_it(root, built_index):
    damage_table(root / "indexes" / "default" / "rag.sqlite", "sqlite_autoindex_documents_1")  # paths, sorted

    result = rag("rm", str(built_index / "corpus" / "astronomy.txt"))

    assert_one_error_line(result, "the index at indexes/default is damaged (database disk image is malformed)")


def test_status_check_finds_the_damage_and_says_what_to_do(root, built_index):
    damage_table(root / "indexes" / "default" / "rag.sqlite", "chunks")

    result = rag("status", "--check")

    assert result.exit_code == 1, result.output
    assert "database     damaged: " in result.stdout
    corpus = built_index / "corpus"
    assert result.stderr.splitlines() == [
        f"Error: rag.sqlite at indexes/default is damaged, so its documents cannot be trusted: delete that folder "
        f"and ingest again (rag ingest {corpus})"]


def test_status_check_on_a_sound_index_says_every_part_is_ok(root):
    result = rag("status", "--check", "--json")

    assert result.exit_code == 0, result.output
    check = json.loads(result.stdout)["check"]
    assert (check["database"], check["keyword_index"], check["ok"]) == ("ok", "ok", True)
    assert check["vectors"].startswith("ok (") and check["repaired"] == []


# -- a vector file changed on disk -----------------------------------------------------------------


def reverse_rows(path: Path, db: Path) -> None:
    """Put the vector file's float rows in reverse order: the same bytes, the same size."""
    with sqlite3.connect(db) as conn:
        first = conn.execute("SELECT embedding FROM chunks ORDER BY id LIMIT 1").fetchone()[0]
        count = conn.execute("SELECT COUNT(*) FROM chunks").fetchone()[0]
    data = bytearray(path.read_bytes())
    at, row = data.find(first), len(first)
    assert at > 0
    rows = [bytes(data[at + i * row : at + (i + 1) * row]) for i in range(count)]
    data[at : at + count * row] = b"".join(reversed(rows))
    path.write_bytes(bytes(data))


def test_a_vector_file_with_its_rows_reordered_is_rebuilt_and_the_answer_is_right(root):
    index = root / "indexes" / "default"
    reverse_rows(index / "vectors.faiss", index / "rag.sqlite")

    result = rag("ask", MOONS, "--no-llm", "--mode", "dense", "--json")

    assert result.exit_code == 0, result.output
    assert Path(json.loads(result.stdout)["sources"][0]["path"]).name == "astronomy.txt"
    assert result.stderr.splitlines()[0] == (
        "rag: indexes/default/vectors.faiss does not match its checksum (its vectors were changed or damaged on "
        "disk): rebuilt from rag.sqlite (no re-embedding)")
    assert rag("status", "--check").exit_code == 0  # the rebuilt file was saved


def test_status_check_rebuilds_a_damaged_vector_file_and_says_so(root):
    index = root / "indexes" / "default"
    reverse_rows(index / "vectors.faiss", index / "rag.sqlite")

    result = rag("status", "--check")

    assert result.exit_code == 0, result.output
    assert "vectors      vectors.faiss does not match its checksum" in result.stdout
    assert "repaired     vectors.faiss: rebuilt from rag.sqlite" in result.stdout
    assert "vectors      ok (" in rag("status", "--check").stdout


# -- a full disk -----------------------------------------------------------------------------------


def test_a_full_disk_during_a_commit_says_disk_full_and_keeps_what_was_committed(tmp_path, embedder):
    from rag.config import Settings
    from rag.errors import DiskFull
    from rag.index import Index

    make_corpus(tmp_path / "first")
    second = tmp_path / "second"
    second.mkdir()
    for n in range(40):
        (second / f"log{n}.txt").write_text(f"Entry {n}: the keeper logged the tide at dawn. " * 40)
    settings = Settings(index_dir=tmp_path / "indexes", embed_backend="torch")
    with Index.open(settings, create=True) as index:
        index.ingest([tmp_path / "first"])
        pages = index._db.conn.execute("PRAGMA page_count").fetchone()[0]
        # SQLite answers SQLITE_FULL ("database or disk is full") once the file reaches this size
        index._db.conn.execute(f"PRAGMA max_page_count = {pages + 8}")

        with pytest.raises(DiskFull) as raised:
            index.ingest([second])

    assert str(raised.value).startswith(f"disk full: no space left to write the index at {settings.index_path} ")
    assert "free some space on that disk" in str(raised.value)
    chain = []
    cause: BaseException | None = raised.value
    while cause is not None:
        chain.append(str(cause))
        cause = cause.__cause__ or cause.__context__
    assert not any("cannot rollback" in text for text in chain), chain
    with Index.open(settings) as index:
        assert index.status().documents == 5  # the first ingest is all there


def can_mount_tmpfs() -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(["unshare", "-rm", "sh", "-c", "mount -t tmpfs -o size=64k tmpfs /mnt"],
                           capture_output=True)
    return probe.returncode == 0


@pytest.mark.skipif(not can_mount_tmpfs(), reason="needs `unshare -rm` and tmpfs (user namespaces)")
def test_rag_ingest_on_a_full_filesystem_prints_one_line_that_says_disk_full(tmp_path):
    import os

    corpus = make_corpus(tmp_path / "corpus")
    for n in range(20):
        (corpus / f"log{n}.txt").write_text(f"Entry {n}: the keeper logged the tide at dawn. " * 30)
    mount = tmp_path / "small"
    mount.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in CLEAN_KEYS}
    script = (f"mount -t tmpfs -o size=160k tmpfs {mount} && "
              f"exec {RAG} ingest {corpus} --index-dir {mount}/indexes --embed-backend torch")
    result = subprocess.run(["unshare", "-rm", "sh", "-c", script], cwd=tmp_path, env=env, capture_output=True,
                            text=True, timeout=300)

    assert result.returncode == 1, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error")]
    assert len(errors) == 1 and errors[0].startswith("Error: disk full: no space left to write"), result.stderr
    assert "Traceback" not in result.stderr and "cannot rollback" not in result.stderr
