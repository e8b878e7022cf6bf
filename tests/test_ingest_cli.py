"""`rag ingest`, `status`, `ls` and `rm` end to end: the installed command in a subprocess, as a
user runs it (in process where a subprocess buys nothing). Each subprocess that embeds pays for
loading the model, so there are few of them."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from ingest.chunk import ChunkSettings, chunk_sections
from ingest.formats import loader_for
from ingest.pipeline import BATCH_CHUNKS, run_ingest
from rag.storage.store import Store
from rag.terminal.cli import main
from tests.helpers import (HOSTILE, INDEX, error_lines, ingest_and_kill_after_the_first_commit, make_corpus,
                           make_notes, run_rag, write_hostile)


def build_index(root: Path, embedder) -> Path:
    """The notes corpus under root/notes, indexed in process into root/indexes/default."""
    from rag import Index, Settings

    folder = make_notes(root / "notes")
    with Index.open(Settings(index_dir=(root / INDEX).parent, index=(root / INDEX).name, embed_backend="torch"),
                    create=True) as idx:
        assert idx.ingest([folder]).ok  # calibrates the cut-off too, as `rag ingest` does
    return folder


# -- usage errors: refused before anything is loaded or created --------------------------------


def test_unsupported_file_named_on_the_command_line_is_a_usage_error(tmp_path, rag_cli):
    (tmp_path / "budget.xlsx").write_bytes(b"PK\x03\x04 not a document rag reads")

    result = rag_cli("ingest", "budget.xlsx", cwd=tmp_path)

    assert result.returncode == 2
    [line] = error_lines(result.stderr)
    assert "budget.xlsx: unsupported file type .xlsx" in line
    assert not (tmp_path / "indexes").exists()


def test_nonexistent_path_is_a_usage_error(tmp_path, rag_cli):
    result = rag_cli("ingest", "no-such-folder", cwd=tmp_path)

    assert result.returncode == 2
    [line] = error_lines(result.stderr)
    assert "no-such-folder does not exist" in line


# -- one ingest of a folder with bad files in it -----------------------------------------------


@pytest.fixture(scope="module")
def hostile_run(tmp_path_factory):
    """`rag ingest corpus` where the corpus also holds one file of every hostile kind."""
    root = tmp_path_factory.mktemp("hostile")
    folder = make_corpus(root / "corpus")
    bad = dict(write_hostile(folder, kind) for kind in HOSTILE)
    result = run_rag("ingest", "corpus", cwd=root)
    return root, bad, result


def test_ingest_with_bad_files_exits_1(hostile_run):
    _, _, result = hostile_run

    assert result.returncode == 1, result.stderr


def test_each_bad_file_is_named_on_stderr_with_its_reason(hostile_run):
    _, bad, result = hostile_run

    for path, reason in bad.items():
        assert any(f"corpus/{path.name}: {reason}" in line for line in result.stderr.splitlines()), (path, result.stderr)


def test_summary_line_counts_added_and_failed_files(hostile_run):
    _, bad, result = hostile_run

    assert f"indexes/default: 5 added, 0 updated, 0 unchanged, 0 removed, {len(bad)} failed" in result.stderr


def test_the_last_line_counts_the_failed_files_and_says_the_rest_are_indexed(hostile_run):
    _, bad, result = hostile_run

    assert result.stderr.splitlines()[-1] == (
        f"Error: could not index {len(bad)} of {len(bad) + 5} files (named above); the rest are in the index")


def test_nothing_but_the_product_goes_to_stdout(hostile_run):
    _, _, result = hostile_run

    assert result.stdout == ""


def test_good_files_are_indexed_despite_the_bad_ones(hostile_run):
    root, _, _ = hostile_run

    listing = run_rag("ls", "--json", cwd=root)

    assert listing.returncode == 0, listing.stderr
    assert sorted(Path(d["path"]).name for d in json.loads(listing.stdout)) == sorted(
        ["astronomy.txt", "cooking.md", "errors.rst", "garden.html", "manual.pdf"]
    )


def test_ls_lists_each_document_with_its_chunks_and_title(hostile_run):
    root, _, _ = hostile_run

    listing = run_rag("ls", cwd=root)

    assert listing.returncode == 0, listing.stderr
    lines = listing.stdout.splitlines()
    assert len(lines) == 5
    assert any(line.startswith("corpus/manual.pdf\t2 pages, ") and line.endswith("\tWidget manual") for line in lines)


def test_status_json_reports_what_the_index_holds(hostile_run):
    root, _, _ = hostile_run

    status = run_rag("status", "--json", cwd=root)

    assert status.returncode == 0, status.stderr
    info = json.loads(status.stdout)
    assert info["documents"] == 5
    assert info["chunks"] > 5
    assert (info["model"], info["dim"]) == ("sentence-transformers/all-MiniLM-L6-v2", 384)
    assert info["size_bytes"] > 0
    assert info["outdated_documents"] == 0


def test_status_says_when_documents_were_read_by_an_older_rag(hostile_run, tmp_path):
    root, _, _ = hostile_run
    shutil.copytree(root / "indexes", tmp_path / "indexes")  # the shared index stays as it is
    db = sqlite3.connect(tmp_path / "indexes" / "default" / "rag.sqlite")
    with db:
        db.execute("UPDATE documents SET parser = 1 WHERE id IN (SELECT id FROM documents LIMIT 2)")
    db.close()

    status = run_rag("status", cwd=tmp_path)

    assert status.returncode == 0, status.stderr
    assert "hint: 2 document(s) were read by an older version of rag" in status.stderr


def test_reingest_of_unchanged_files_never_loads_the_model(tmp_path, embedder):
    build_index(tmp_path, embedder)
    code = (
        "import sys\nfrom click.testing import CliRunner\nfrom rag.terminal.cli import main\n"
        "result = CliRunner().invoke(main, ['ingest', 'notes'])\n"
        "print(result.exit_code, [m for m in ('torch', 'sentence_transformers', 'faiss') if m in sys.modules])\n"
        "print(result.stderr.strip())"
    )

    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True)

    assert out.stdout.splitlines()[0] == "0 []", out.stdout + out.stderr
    assert "0 added, 0 updated, 3 unchanged" in out.stdout


# -- rm ----------------------------------------------------------------------------------------


def test_rm_removes_a_document(tmp_path, rag_cli, embedder):
    build_index(tmp_path, embedder)

    result = rag_cli("rm", "notes/bread.md", cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == "removed notes/bread.md"
    listing = rag_cli("ls", "--json", cwd=tmp_path)
    assert sorted(Path(d["path"]).name for d in json.loads(listing.stdout)) == ["manual.pdf", "moons.txt"]


def test_rm_of_a_path_not_in_the_index_is_an_error(tmp_path, rag_cli, embedder):
    build_index(tmp_path, embedder)

    result = rag_cli("rm", "notes/never-ingested.md", cwd=tmp_path)

    assert result.returncode == 1
    assert error_lines(result.stderr) == ["Error: not in the index: notes/never-ingested.md (see `rag ls`)"]


# -- refusals ----------------------------------------------------------------------------------


def test_second_ingest_is_refused_while_another_holds_the_lock(tmp_path, rag_cli, embedder):
    build_index(tmp_path, embedder)
    store = Store.open(tmp_path / INDEX)

    with store.writer_lock():
        result = rag_cli("ingest", "notes", cwd=tmp_path)

    assert result.returncode == 1
    assert error_lines(result.stderr) == [
        f"Error: another ingest (pid {os.getpid()}) is writing to indexes/default: "
        "wait for it to finish, then run this again"
    ]


def test_ask_refuses_an_index_built_with_another_model(tmp_path, rag_cli, embedder):
    build_index(tmp_path, embedder)
    with sqlite3.connect(tmp_path / INDEX / "rag.sqlite") as db:
        db.execute("UPDATE meta SET value = 'sentence-transformers/paraphrase-MiniLM-L3-v2' WHERE key = 'embed_model'")

    result = rag_cli("ask", "--no-llm", "what does sourdough need?", cwd=tmp_path)

    assert result.returncode == 1
    [line] = error_lines(result.stderr)
    assert "built with sentence-transformers/paraphrase-MiniLM-L3-v2" in line


# -- kill -9 in the middle of an ingest --------------------------------------------------------

TOPICS = ["harbor", "glacier", "lantern", "orchard", "compass", "falcon", "meadow", "tunnel"]


def make_many_notes(folder: Path, files: int) -> Path:
    """One short note per file, so each is one chunk and a batch of them embeds quickly."""
    folder.mkdir(parents=True)
    for n in range(files):
        topic = TOPICS[n % len(TOPICS)]
        (folder / f"note-{n:03d}.md").write_text(f"# {topic.title()} {n}\n\nThe {topic} keeper logged entry {n} at dawn.\n")
    return folder


def clean_run_counts(folder: Path, embedder) -> dict[str, int]:
    """Chunks per document that one uninterrupted ingest stores (the same loader and chunker)."""
    counts = {}
    for path in sorted(folder.iterdir()):
        title, sections, _ = loader_for(path)(path, path.read_bytes())
        chunks = chunk_sections(title, sections, embedder.token_offsets, embedder.max_tokens, ChunkSettings())
        counts[str(path)] = len(chunks)
    return counts


@pytest.mark.slow
def test_kill_9_mid_ingest_leaves_an_index_that_answers_and_completes(tmp_path, rag_cli, embedder):
    folder = make_many_notes(tmp_path / "many", BATCH_CHUNKS + 20)
    expected = clean_run_counts(folder, embedder)

    # torch, as the `embedder` fixture the resume below uses
    ingest_and_kill_after_the_first_commit(tmp_path, folder, "--embed-backend", "torch")

    status = rag_cli("status", "--json", cwd=tmp_path)
    assert status.returncode == 0, status.stderr
    committed = json.loads(status.stdout)["chunks"]
    assert 0 < committed < sum(expected.values())
    answer = rag_cli("ask", "--no-llm", "what did the harbor keeper log?", cwd=tmp_path)
    assert answer.returncode == 0, answer.stderr
    assert "many/note-" in answer.stdout

    store = Store.open(tmp_path / INDEX)
    report = run_ingest([folder], store, embedder, ChunkSettings())

    assert report.ok, report.failures
    assert report.chunks == sum(expected.values()) - committed  # committed work is kept, not redone
    assert {d.path: d.chunks for d in store.documents()} == expected


# -- ingest --json -----------------------------------------------------------------------------


def test_ingest_json_reports_every_failure_with_its_reason(tmp_path):
    notes = make_notes(tmp_path / "notes")
    (notes / "broken.pdf").write_bytes(b"%PDF-1.4 not really")

    result = CliRunner().invoke(main, ["ingest", str(notes), "--json", "--index-dir", str(tmp_path / "ix")])

    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert report["added"] == 3 and report["failed"] == 1
    assert report["failures"][0]["path"] == str(notes / "broken.pdf")
    assert report["failures"][0]["reason"].startswith("unreadable PDF")

