"""The library API, `rag.Index`, as a program using rag sees it: a light import, the README's
snippet, typed results whose JSON is their fields, and what opening, ingesting and searching
leave behind (nothing bound by a failed ingest, no process-wide thread settings, a recalibrated
cut-off)."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest
from click.testing import CliRunner

from rag import Index
from rag.config import Settings
from rag.errors import ModelNotFound
from rag.runtimes import auto_runtime
from rag.terminal.cli import main
from tests.helpers import ROOT, make_corpus, make_notes

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


def test_a_failed_first_ingest_does_not_bind_the_index_to_a_wrong_model(tmp_path):
    notes = make_notes(tmp_path / "notes")
    typo = Settings(index_dir=tmp_path / "indexes", embed_model="all-MiniLM-L6-v3-typo")
    with Index.open(typo, create=True) as index, pytest.raises(ModelNotFound):
        index.ingest([notes])

    with Index.open(Settings(index_dir=tmp_path / "indexes"), create=True) as index:
        report = index.ingest([notes])
        assert report.ok and report.added == 3
        assert index.status().model == "sentence-transformers/all-MiniLM-L6-v2"


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


def test_concurrent_questions_embed_side_by_side_and_find_what_one_at_a_time_finds(built_index):
    import threading

    questions = ["How long do I bake sourdough bread?", "How many moons does Mars have?"]
    with Index.open(Settings(index_dir=built_index / "indexes")) as index:
        alone = {q: [h.chunk_id for h in index.search(q).hits] for q in questions}
        searcher = index._searcher()
        embedder = searcher.embedder
        both_inside = threading.Barrier(2, timeout=20)  # broken unless two questions embed at once

        class Together:
            def __getattr__(self, name):
                return getattr(embedder, name)

            def embed_query(self, text):
                both_inside.wait()
                return embedder.embed_query(text)

        searcher.embedder = Together()
        found, failed = {}, []

        def ask(question):
            try:
                found[question] = [h.chunk_id for h in index.search(question).hits]
            except Exception as exc:  # noqa: BLE001 - reported below
                failed.append(exc)

        threads = [threading.Thread(target=ask, args=(q,)) for q in questions]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        searcher.embedder = embedder
    assert not failed, failed
    assert found == alone


def test_searching_leaves_the_process_thread_settings_alone(built_index):
    import faiss

    faiss.omp_set_num_threads(2)
    with Index.open(Settings(index_dir=built_index / "indexes")) as index:
        assert index.search("How long do I bake sourdough bread?").hits
    assert faiss.omp_get_max_threads() == 2  # only rag.index.limit_threads (the CLI's choice) changes it


# -- the query path needs no torch, ONNX Runtime or OpenVINO -------------------------------------------------------------------

ASK_AND_LIST_MODULES = """
import sys
from rag.terminal.cli import main
sys.argv = ["rag", "ask", "How many moons does Mars have?", "--no-llm", "--index-dir", sys.argv[1]]
try:
    main()
except SystemExit as exit:
    assert not exit.code, exit.code
print("LOADED", [m for m in ("torch", "sentence_transformers", "transformers", "onnxruntime", "openvino")
                 if m in sys.modules])
"""


def test_rag_ask_on_an_index_of_the_default_runtime_loads_no_torch(tmp_path):
    notes = make_notes(tmp_path / "notes")
    result = CliRunner().invoke(main, ["ingest", str(notes), "--index-dir", str(tmp_path / "ix")])
    assert result.exit_code == 0, result.output
    with Index.open(Settings(index_dir=tmp_path / "ix")) as index:
        assert index.status().runtime == auto_runtime()  # openvino-int8, -bf16 or -fp32, by the CPU (rag/runtimes.py)
        assert index._query_embedder().runtime == "numpy-fp32"  # and questions through numpy (no engine to load)

    asked = subprocess.run([sys.executable, "-c", ASK_AND_LIST_MODULES, str(tmp_path / "ix")], cwd=tmp_path,
                           capture_output=True, text=True, timeout=300)

    assert asked.returncode == 0, asked.stderr
    assert "Phobos" in asked.stdout
    assert asked.stdout.strip().endswith("LOADED []")


def test_an_ingest_that_changes_the_index_recalibrates_the_cut_off(tmp_path, embedder):
    from rag.retrieval.relevance import META_KEY, PROBES, Calibration

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
