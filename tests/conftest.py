"""Shared fixtures: the bundled model (loaded once), a small real corpus, a loopback LLM server."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["TOKENIZERS_PARALLELISM"] = "false"

from rag.config import ENV_KEYS  # noqa: E402
from tests.browser import browser_page, chromium  # noqa: E402,F401  (one browser for the whole session)
from tests.llm_server import FakeLLM  # noqa: E402
from tests.pdfs import write_pdf  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
RAG = Path(sys.executable).parent / "rag"
# Settings a test must not inherit from the developer's shell or .env
CLEAN_KEYS = ENV_KEYS


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


CORPUS = {
    "cooking.md": """# Kitchen notes

## Bread

Sourdough bread needs a starter that is fed with flour and water every day. Bake the loaf at
250 degrees Celsius for forty minutes, with steam for the first twenty. Let the loaf cool on a
rack for an hour before slicing it, or the crumb turns gummy.

## Soup

A good vegetable stock simmers onions, carrots and celery for an hour before it is strained.
Season it only at the end, because the liquid reduces and concentrates the salt. Freeze what
is left in small portions.
""",
    "astronomy.txt": """The planet Mars has two small moons, Phobos and Deimos.

Jupiter is the largest planet in the solar system and has a Great Red Spot, a storm larger than Earth.

A light-year is the distance light travels in one year, about 9.46 trillion kilometres.
""",
    "errors.rst": """Error codes
===========

Overview
--------

The service returns error code ZX-4411 when the upload quota is exhausted for the day.
The quota resets at midnight in the account's home time zone, and the response says when.
Paid accounts can raise the quota from the billing page.

Retry policy
------------

Clients should retry with exponential backoff, starting at one second and doubling each time.
Give up after five attempts and show the person using the client what went wrong. Never
retry a request that was rejected as malformed.
""",
    "garden.html": """<html><head><title>Garden guide</title><style>body { color: red }</style>
<script>var secret = "javascript should never be indexed";</script></head>
<body><h1>Garden guide</h1><h2>Tomatoes</h2><p>Tomatoes need six hours of sun and deep watering twice a week. Stake them early, before the
stems get heavy with fruit, and pinch out the side shoots. Mulch keeps the soil evenly moist in a
dry summer.</p>
<h2>Roses</h2><p>Prune roses in late winter, just above an outward-facing bud. Cut away dead and crossing
canes first, then shorten the rest by about a third. Feed them with compost once the new leaves
open in spring.</p></body></html>
""",
}


def make_corpus(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in CORPUS.items():
        (folder / name).write_text(text, encoding="utf-8")
    write_pdf(
        folder / "manual.pdf",
        [
            ["Installation", "Unpack the archive and run the installer as an administrator."],
            ["Troubleshooting", "If the fan makes a grinding noise, replace the bearing kit BK-7."],
        ],
        title="Widget manual",
    )
    return folder


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


def run_rag(*args: str, cwd: Path, env: dict | None = None, input: str | None = None, timeout: float = 120):
    """The installed `rag` command in a subprocess, as a user runs it."""
    full_env = {k: v for k, v in os.environ.items() if k not in CLEAN_KEYS}
    full_env.update(env or {})
    return subprocess.run([str(RAG), *args], cwd=cwd, env=full_env, input=input, capture_output=True,
                          text=True, timeout=timeout)


@pytest.fixture
def rag_cli():
    return run_rag


def copy_index(source: Path, dest: Path) -> Path:
    shutil.copytree(source, dest)
    return dest
