"""Shared fixtures: the bundled model (loaded once), a small real corpus, a loopback LLM server, the
servers of `rag serve`, and a test session that keeps to itself.

Keeping to itself: before any test runs, every cache a test (or a `rag` it starts) may write goes
to one temporary folder for the session, removed at its end: exported models (RAG_CACHE_DIR; the
export tests share its one export per runtime), $XDG_CACHE_HOME, $XDG_CONFIG_HOME and
$XDG_DATA_HOME (Chromium, matplotlib), and chat history ($XDG_STATE_HOME, one per test). Nothing
lands in the user's home. Helpers that are not fixtures live in tests/helpers.py.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from tests.browser import browser_page, chromium  # noqa: F401  (one browser for the whole session)
from tests.helpers import CLEAN_KEYS, SERVER_KEY, copy_index, make_corpus, run_rag, start_server
from tests.llm_server import FakeLLM

OFFLINE = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}

# The variables pointed at the session's folder (the suite's own; a developer's values are put back)
SESSION_DIRS = {"RAG_CACHE_DIR": "models", "XDG_CACHE_HOME": "cache", "XDG_CONFIG_HOME": "config",
                "XDG_DATA_HOME": "data", "MPLCONFIGDIR": "matplotlib"}


def pytest_configure(config):
    # pytest_configure, not a fixture: the environment must be in place before the first test
    # imports a library that reads it, and is inherited by every `rag` subprocess
    session = Path(tempfile.mkdtemp(prefix="rag-tests-"))
    config.rag_session_dir = session
    config.rag_saved_env = {key: os.environ.get(key) for key in [*SESSION_DIRS, *OFFLINE]}
    for key, name in SESSION_DIRS.items():
        (session / name).mkdir()
        os.environ[key] = str(session / name)
    os.environ.update(OFFLINE)  # the bundled model only: nothing is fetched from a hub


def pytest_unconfigure(config):
    session = getattr(config, "rag_session_dir", None)
    if session is None:
        return
    for key, value in config.rag_saved_env.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    shutil.rmtree(session, ignore_errors=True)


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch, tmp_path):
    for key in CLEAN_KEYS:
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))  # chat history never lands in ~
    monkeypatch.chdir(tmp_path)  # no stray .env, and ./indexes lands in tmp_path


@pytest.fixture(scope="session")
def embedder():
    from rag.embedding.embedder import get_embedder

    # the process-wide instance: every Index in this test process shares the one loaded model
    return get_embedder("all-MiniLM-L6-v2", "torch")


@pytest.fixture
def corpus(tmp_path) -> Path:
    return make_corpus(tmp_path / "corpus")


@pytest.fixture(scope="session")
def built_index(tmp_path_factory, embedder):
    """A read-only index over the corpus, shared by retrieval and ask tests (do not modify)."""
    from ingest.chunk import ChunkSettings
    from ingest.pipeline import run_ingest
    from rag.storage.store import Store

    root = tmp_path_factory.mktemp("shared")
    folder = make_corpus(root / "corpus")
    store = Store.open(root / "indexes" / "default", create=True)
    report = run_ingest([folder], store, embedder, ChunkSettings())
    assert report.ok, report.failures
    store.close()
    # questions on this torch index embed through the query runtime: export it here, once, so that
    # no test's output depends on whether an earlier test already printed the one-time export line
    from rag.embedding.embedder import get_embedder
    from rag.runtimes import parse_runtime, query_runtime

    get_embedder("all-MiniLM-L6-v2", query_runtime(parse_runtime("torch")).name).embed_query("warm up")
    return root


@pytest.fixture(scope="session")
def llm_server():
    server = FakeLLM().start()
    yield server
    server.stop()


@pytest.fixture
def llm(llm_server):
    llm_server.reset()
    return llm_server


@pytest.fixture
def rag_cli():
    return run_rag


# -- `rag serve` for a test module, over copies of the shared index -------------------------------


@pytest.fixture(scope="module")
def plain(built_index, tmp_path_factory):
    """No key, no LLM (extractive answers); two indexes, `default` and `other`."""
    root = tmp_path_factory.mktemp("serve-plain")
    copy_index(built_index / "indexes", root / "indexes")
    copy_index(built_index / "indexes" / "default", root / "indexes" / "other")
    running = start_server(root)
    running.root = root
    yield running
    running.stop()


@pytest.fixture(scope="module")
def keyed(built_index, tmp_path_factory, llm_server):
    """An API key (SERVER_KEY), and the loopback fake LLM upstream."""
    root = tmp_path_factory.mktemp("serve-keyed")
    copy_index(built_index / "indexes", root / "indexes")
    running = start_server(root, api_key=SERVER_KEY, base_url=llm_server.url, llm_model="test-model")
    yield running
    running.stop()
