"""The library API (`rag.Index`) and the store defects the 47499ab review found, each with the
test that would have caught it."""

from __future__ import annotations

import json
import multiprocessing
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from rag import Index, load_settings
from rag.terminal.cli import main
from rag.config import Settings
from rag.errors import ModelNotFound, RagError
from rag.storage.migrations import STEPS, IndexTooNew, _check_names, migrate
from rag.storage.store import Store
from tests.conftest import ROOT, copy_index
from tests.test_ingest import make_notes

HEAVY = ("torch", "sentence_transformers", "transformers", "faiss", "openai", "numpy", "click", "ingest")


def test_importing_the_library_loads_nothing_heavy():
    code = f"import sys; from rag import Index, load_settings; print([m for m in {HEAVY!r} if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def readme_snippet() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    match = re.search(r"## Python API\n.*?```python\n(.*?)```", text, re.S)
    assert match, "README.md has no Python API snippet"
    return match.group(1)


def test_the_readme_python_snippet_ingests_searches_and_answers(tmp_path):
    snippet = readme_snippet()
    assert len(snippet.strip().splitlines()) <= 12
    (tmp_path / "sample-docs").mkdir()
    for name in ("embeddings.md", "chunking.rst"):
        (tmp_path / "sample-docs" / name).write_text((ROOT / "sample-docs" / name).read_text(encoding="utf-8"), encoding="utf-8")

    result = subprocess.run([sys.executable, "-c", snippet], cwd=tmp_path, capture_output=True, text=True,
                            timeout=300)

    assert result.returncode == 0, result.stderr
    assert "2 documents added" in result.stdout
    assert "384" in result.stdout  # the extractive answer quotes the dimension
    assert "sample-docs/embeddings.md" in result.stdout  # search hits and cited sources, relative to the folder


def test_status_and_documents_are_dataclasses_whose_json_is_their_fields(built_index):
    runner = CliRunner()
    index_dir = str(built_index / "indexes")

    status = json.loads(runner.invoke(main, ["status", "--json", "--index-dir", index_dir]).stdout)
    listing = json.loads(runner.invoke(main, ["ls", "--json", "--index-dir", index_dir]).stdout)

    with Index.open(Settings(index_dir=built_index / "indexes")) as index:
        from dataclasses import asdict

        assert status == json.loads(json.dumps(asdict(index.status())))
        assert listing == [json.loads(json.dumps(asdict(d))) for d in index.documents()]
    assert status["documents"] == 5 and status["model"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert {d["label"] for d in listing} >= {"corpus/cooking.md", "corpus/manual.pdf"}


def test_ingest_json_reports_every_failure_with_its_reason(tmp_path):
    notes = make_notes(tmp_path / "notes")
    (notes / "broken.pdf").write_bytes(b"%PDF-1.4 not really")

    result = CliRunner().invoke(main, ["ingest", str(notes), "--json", "--index-dir", str(tmp_path / "ix")])

    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert report["added"] == 3 and report["failed"] == 1
    assert report["failures"][0]["path"] == str(notes / "broken.pdf")
    assert report["failures"][0]["reason"].startswith("unreadable PDF")


# -- C2: a failed first ingest must not bind the index to the model it asked for ------------------

def test_a_failed_first_ingest_does_not_bind_the_index_to_a_wrong_model(tmp_path):
    notes = make_notes(tmp_path / "notes")
    typo = Settings(index_dir=tmp_path / "indexes", embed_model="all-MiniLM-L6-v3-typo")
    with Index.open(typo, create=True) as index, pytest.raises(ModelNotFound):
        index.ingest([notes])

    with Index.open(Settings(index_dir=tmp_path / "indexes"), create=True) as index:
        report = index.ingest([notes])
        assert report.ok and report.added == 3
        assert index.status().model == "sentence-transformers/all-MiniLM-L6-v2"


def test_an_invalid_overlap_leaves_no_empty_index_behind(tmp_path):
    notes = make_notes(tmp_path / "notes")

    result = CliRunner().invoke(main, ["ingest", str(notes), "--overlap-tokens", "250",
                                       "--index-dir", str(tmp_path / "ix")])

    assert result.exit_code == 1
    assert "must be at least 0 and smaller than the chunk size" in result.stderr
    assert not (tmp_path / "ix" / "default").exists()


# -- C3/C4: migrations -------------------------------------------------------------------------------

def _open_fresh(root: str, barrier) -> str:
    barrier.wait()
    try:
        Store.open(Path(root), create=True).close()
        return "ok"
    except Exception as exc:  # the test reports what went wrong in which process
        return f"{type(exc).__name__}: {exc}"


def test_processes_opening_a_fresh_index_at_once_all_succeed(tmp_path):
    ctx = multiprocessing.get_context("spawn")
    for attempt in range(3):
        root = tmp_path / f"fresh{attempt}"
        root.mkdir()
        with ctx.Manager() as manager:
            barrier = manager.Barrier(4)
            with ctx.Pool(4) as pool:
                results = pool.starmap(_open_fresh, [(str(root), barrier)] * 4)
        assert results == ["ok"] * 4
        conn = sqlite3.connect(root / "rag.sqlite")
        assert [r[0] for r in conn.execute("SELECT name FROM schema_migrations ORDER BY name")] == [n for n, _ in STEPS]
        conn.close()


def test_an_index_made_by_a_newer_rag_is_refused_with_a_clear_message(tmp_path):
    Store.open(tmp_path / "ix", create=True).close()
    conn = sqlite3.connect(tmp_path / "ix" / "rag.sqlite")
    conn.execute("INSERT INTO schema_migrations VALUES ('999_from_the_future', 0)")
    conn.commit()
    conn.close()

    with pytest.raises(IndexTooNew, match="made by a newer version of rag .*999_from_the_future.*upgrade rag"):
        Store.open(tmp_path / "ix")


def test_a_migration_step_may_hold_a_trigger_with_semicolons(tmp_path):
    def with_trigger(conn):
        conn.execute("CREATE TABLE t (x INTEGER)")
        conn.execute("CREATE TABLE log (x INTEGER)")
        conn.execute("CREATE TRIGGER t_log AFTER INSERT ON t BEGIN\n INSERT INTO log VALUES (new.x);\n"
                     " INSERT INTO log VALUES (new.x + 1);\nEND")

    conn = sqlite3.connect(tmp_path / "db", isolation_level=None)
    migrate(conn, "test", steps=[("001_trigger", with_trigger)])
    conn.execute("INSERT INTO t VALUES (1)")
    assert [r[0] for r in conn.execute("SELECT x FROM log")] == [1, 2]


def test_duplicate_migration_names_are_refused():
    with pytest.raises(ValueError, match="duplicate"):
        _check_names([("001", lambda c: None), ("001", lambda c: None)])


# -- C5: labels relative to the ingested folders, whatever the working folder -----------------------

def test_the_prompt_and_json_paths_do_not_depend_on_the_working_folder(built_index, tmp_path, llm, monkeypatch):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    llm.reply = "Bake it for forty minutes [1]."
    env = {"OPENAI_BASE_URL": llm.url, "RAG_LLM_MODEL": "test-model"}

    result = CliRunner().invoke(main, ["ask", "How long do I bake sourdough bread?", "--json",
                                       "--index-dir", str(built_index / "indexes")], env=env)

    assert result.exit_code == 0, result.output
    prompt = llm.requests[-1]["messages"][-1]["content"]
    assert 'source="corpus/cooking.md"' in prompt
    assert str(built_index) not in prompt
    sources = json.loads(result.stdout)["sources"]
    assert sources[0]["path"] == "corpus/cooking.md"
    assert sources[0]["file"] == str(built_index / "corpus" / "cooking.md")


# -- C6: no query binds one variable per id ---------------------------------------------------------

def test_looking_up_more_ids_than_sqlite_has_variables_works(tmp_path):
    with Store.open(tmp_path / "ix", create=True) as store:
        assert store.chunks(list(range(40_000))) == {}
        assert store.embeddings(list(range(40_000)), 384) == {}


# -- C7: the progress display is closed on errors -----------------------------------------------------

class RecordingProgress:
    def __init__(self):
        self.events: list[str] = []

    def start(self, files): self.events.append("start")
    def file_done(self): ...
    def embedded(self, chunks): ...
    def failure(self, path, reason): ...
    def finish(self): self.events.append("finish")


def test_the_progress_display_is_closed_when_the_ingest_fails(tmp_path):
    notes = make_notes(tmp_path / "notes")
    progress = RecordingProgress()
    settings = Settings(index_dir=tmp_path / "indexes", embed_model="no-such-model-here")

    with Index.open(settings, create=True) as index, pytest.raises(ModelNotFound):
        index.ingest([notes], progress=progress)

    assert progress.events == ["start", "finish"]


# -- S8, S6: eval has no cut-off flag; --debug shows the cause ---------------------------------------

def test_eval_has_no_min_score_flag_that_would_do_nothing(built_index, tmp_path):
    questions = tmp_path / "q.jsonl"
    questions.write_text('{"question": "bread", "sources": ["cooking.md"]}\n')

    result = CliRunner().invoke(main, ["eval", str(questions), "--min-score", "0.5",
                                       "--index-dir", str(built_index / "indexes")])

    assert result.exit_code == 2 and "No such option '--min-score'" in result.stderr


def test_debug_shows_the_cause_of_an_error(built_index, monkeypatch):
    from tests.llm_server import closed_port_url

    monkeypatch.chdir(built_index)
    env = {"OPENAI_BASE_URL": closed_port_url(), "RAG_MAX_RETRIES": "0"}

    result = CliRunner().invoke(main, ["--debug", "ask", "How long do I bake bread?"], env=env)

    assert isinstance(result.exception, RagError)
    assert result.exception.__cause__ is not None  # the openai error that explains it


# -- bounded memory per file --------------------------------------------------------------------------

CHUNK_BIG_FILE = """
import re, sys
from ingest.chunk import ChunkSettings, chunk_sections
from rag.embedding.embedder import Embedder
from rag.types import Section
embedder = Embedder("all-MiniLM-L6-v2", "torch")  # the engine the bug was found on
text = ("lorem ipsum dolor sit amet consectetur " * 420_000)  # 16 MB, one line
chunks = chunk_sections("big", [Section(text)], embedder.token_offsets, embedder.max_tokens, ChunkSettings())
# VmHWM, not ru_maxrss: Linux carries the parent's peak across fork and exec into ru_maxrss
peak_kb = int(re.search(r"VmHWM:\\s+(\\d+) kB", open("/proc/self/status").read()).group(1))
print(len(chunks), peak_kb // 1024)
"""


def test_one_huge_one_line_file_is_chunked_in_bounded_memory(tmp_path):
    # tokenizing a 15 MB one-line file whole reached 2.3 GB RSS; windows keep it flat
    result = subprocess.run([sys.executable, "-c", CHUNK_BIG_FILE], cwd=ROOT, capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stderr
    chunks, peak_mb = map(int, result.stdout.split())
    assert chunks > 10_000
    assert peak_mb < 1500, f"peak RSS {peak_mb} MB"


# -- C8: opening an index for questions pins no process-wide thread count -------------------------

def test_searching_leaves_the_process_thread_settings_alone(built_index):
    import faiss

    faiss.omp_set_num_threads(2)
    with Index.open(Settings(index_dir=built_index / "indexes")) as index:
        assert index.search("How long do I bake sourdough bread?").hits
    assert faiss.omp_get_max_threads() == 2  # only rag.index.limit_threads (the CLI's choice) changes it


# -- the query path needs no torch -------------------------------------------------------------------

ASK_AND_LIST_MODULES = """
import sys
from rag.terminal.cli import main
sys.argv = ["rag", "ask", "How many moons does Mars have?", "--no-llm", "--index-dir", sys.argv[1]]
try:
    main()
except SystemExit as exit:
    assert not exit.code, exit.code
print("LOADED", [m for m in ("torch", "sentence_transformers", "transformers") if m in sys.modules])
"""


def test_rag_ask_on_an_index_of_the_default_runtime_loads_no_torch(tmp_path):
    notes = make_notes(tmp_path / "notes")
    result = CliRunner().invoke(main, ["ingest", str(notes), "--index-dir", str(tmp_path / "ix")])
    assert result.exit_code == 0, result.output
    with Index.open(Settings(index_dir=tmp_path / "ix")) as index:
        assert index.status().runtime == "openvino-fp32"  # what auto means for an ingest (rag/runtimes.py)
        assert index._query_embedder().runtime == "onnx-fp32"  # and questions go through ONNX Runtime

    asked = subprocess.run([sys.executable, "-c", ASK_AND_LIST_MODULES, str(tmp_path / "ix")], cwd=tmp_path,
                           capture_output=True, text=True, timeout=300)

    assert asked.returncode == 0, asked.stderr
    assert "Phobos" in asked.stdout
    assert asked.stdout.strip().endswith("LOADED []")


def test_an_ingest_that_changes_the_index_recalibrates_the_cut_off(tmp_path, embedder):
    from rag import Index, Settings
    from rag.retrieval.relevance import META_KEY, PROBES, Calibration
    from tests.conftest import make_corpus

    folder = make_corpus(tmp_path / "corpus")
    settings = Settings(index_dir=tmp_path / "indexes", embed_backend="torch")
    with Index.open(settings, create=True) as idx:
        idx.ingest([folder])
        first = Calibration.from_json(idx._db.get_meta(META_KEY))
        assert first is not None and first.probes == len(PROBES)
        assert first.generation == idx._db.generation
        assert 0 < first.spread < first.median < 0.5  # everyday probes barely match kitchen notes and error codes
        assert idx._searcher().calibration == first  # the searching side reads the same

        idx.ingest([folder])  # unchanged: nothing to re-measure
        assert Calibration.from_json(idx._db.get_meta(META_KEY)) == first

        (folder / "travel.md").write_text("# Travel\n\nA flight from London to Sydney takes about a day, "
                                          "with one stop in Singapore or Dubai.\n", encoding="utf-8")
        idx.ingest([folder])
        second = Calibration.from_json(idx._db.get_meta(META_KEY))
        assert second.generation == idx._db.generation > first.generation
        assert second.median != first.median  # a probe asks about that flight
        assert idx._searcher().calibration == second
