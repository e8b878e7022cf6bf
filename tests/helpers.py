"""What more than one test module needs and is not a fixture: the corpora, the installed `rag`
command, a clean environment for it, hostile files, and the steps of the kill -9 tests.

Test modules import from here (and from tests.pdfs, tests.llm_server, tests.browser), never from
each other or from conftest.py, which holds only fixtures.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest

from rag.config import ENV_KEYS
from tests.pdfs import encrypted_pdf, truncated_pdf, write_pdf

ROOT = Path(__file__).resolve().parent.parent
RAG = Path(sys.executable).parent / "rag"  # the installed command, as a user runs it
INDEX = Path("indexes") / "default"  # where `rag ingest` puts an index, relative to its working folder
# Settings a test must not inherit from the developer's shell or .env
CLEAN_KEYS = ENV_KEYS


def clean_env(**extra: str) -> dict[str, str]:
    """The environment for a `rag` subprocess: this one without any rag setting, plus `extra`."""
    env = {key: value for key, value in os.environ.items() if key not in CLEAN_KEYS}
    env.update(extra)
    return env


def run_rag(*args: str, cwd: Path, env: dict | None = None, input: str | None = None, timeout: float = 120):
    """The installed `rag` command in a subprocess, as a user runs it."""
    return subprocess.run([str(RAG), *args], cwd=cwd, env=clean_env(**(env or {})), input=input,
                          capture_output=True, text=True, timeout=timeout)


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("Error:")]


def copy_index(source: Path, dest: Path) -> Path:
    shutil.copytree(source, dest)
    return dest


# -- corpora -----------------------------------------------------------------------------------

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
    """CORPUS plus a two-page PDF: one file of each common format (five documents)."""
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


def make_notes(folder: Path) -> Path:
    """Three short documents: cheap to embed, for tests about what happens to files, not formats."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "bread.md").write_text("# Bread\n\nSourdough needs a starter that is fed every day.\n")
    (folder / "moons.txt").write_text("Mars has two small moons, Phobos and Deimos.\n")
    write_pdf(folder / "manual.pdf", [["If the fan grinds, replace the bearing kit BK-7."]], title="Widget manual")
    return folder


# A document the server tests ingest while they answer (tests/test_mcp.py, tests/test_serve.py)
NEW_DOC = "The lighthouse keeper Orla Quinlan writes the tide times in the harbour logbook at dawn.\n"


# -- hostile files -----------------------------------------------------------------------------

HOSTILE = ["corrupt pdf", "truncated pdf", "encrypted pdf", "empty pdf", "random bytes .txt", "empty .txt"]


def noise(size: int) -> bytes:
    """Random bytes, the same every run."""
    return random.Random(size).randbytes(size)


def write_hostile(folder: Path, kind: str) -> tuple[Path, str]:
    """Write one bad file of `kind`; return its path and the reason ingest should give."""
    if kind == "corrupt pdf":
        path, data, reason = folder / "corrupt.pdf", b"%PDF-1.4\n" + noise(2000), "unreadable PDF"
    elif kind == "truncated pdf":
        path, data, reason = folder / "truncated.pdf", truncated_pdf(), "unreadable PDF"
    elif kind == "encrypted pdf":
        path, data, reason = folder / "locked.pdf", encrypted_pdf(), "encrypted PDF: it needs a password"
    elif kind == "empty pdf":
        path, data, reason = folder / "empty.pdf", b"", "empty PDF (0 bytes)"
    elif kind == "random bytes .txt":
        path, data, reason = folder / "noise.txt", noise(3000), "binary content"
    elif kind == "empty .txt":
        path, data, reason = folder / "empty.txt", b"", "no text to index (empty file)"
    else:
        raise ValueError(kind)
    path.write_bytes(data)
    return path, reason


def file_modes_are_enforced() -> bool:
    """False for root (or any process with CAP_DAC_OVERRIDE): chmod 000 does not stop it reading."""
    with tempfile.TemporaryDirectory() as folder:
        probe = Path(folder) / "probe"
        probe.write_text("x")
        probe.chmod(0)
        try:
            probe.read_text()
        except PermissionError:
            return True
        return False


needs_file_modes = pytest.mark.skipif(not file_modes_are_enforced(), reason="this user reads files whatever their mode")


# -- kill -9 in the middle of an ingest (tests/test_ingest_cli.py, tests/test_ray.py) ------------


def committed_chunks(db: Path) -> int:
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1) as conn:
            return conn.execute("SELECT COUNT(*) FROM chunks").fetchone()[0]
    except sqlite3.Error:  # not created yet, or its tables not yet
        return 0


def ingest_and_kill_after_the_first_commit(root: Path, folder: Path, *options: str, within: float = 120) -> None:
    """`rag ingest folder stall.txt [options]`, killed with SIGKILL once its first batch is committed.

    stall.txt is a named pipe that nobody writes to: reading it, last of all the files, blocks,
    so the second batch is still in flight whenever the kill lands.
    """
    stall = root / "stall.txt"
    os.mkfifo(stall)
    proc = subprocess.Popen([str(RAG), "ingest", str(folder), str(stall), *options], cwd=root, env=clean_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + within
    try:
        while committed_chunks(root / INDEX / "rag.sqlite") == 0:
            assert proc.poll() is None, f"ingest ended before it was killed: {proc.stderr.read()}"
            assert time.monotonic() < deadline, f"no batch committed within {within:.0f} s"
            time.sleep(0.02)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stderr.close()


# -- `rag serve` in a thread (tests/test_serve.py, tests/test_web.py) ----------------------------

SERVER_KEY = "test-key-7f3a9c2e51"
START_TIMEOUT = 180  # seconds for a server to load the model and listen, on a busy machine


class Running:
    """A uvicorn server for `app` in a thread, on a free 127.0.0.1 port."""

    def __init__(self, app):
        import threading

        from rag.servers.http import bound_port, make_server

        self.server = make_server(app, "127.0.0.1", 0, access_log=False)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + START_TIMEOUT
        while not self.server.started:
            assert self.thread.is_alive() and time.monotonic() < deadline, "the server did not start"
            time.sleep(0.05)
        self.url = f"http://127.0.0.1:{bound_port(self.server)}"

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)


def start_server(root: Path, api_key: str | None = None, **settings) -> Running:
    """`rag serve` over root/indexes, warmed up, with no retries and a short LLM timeout."""
    from rag.config import load_settings
    from rag.servers.http import create_app, warm_up

    flags = {"index_dir": root / "indexes", "max_retries": 0, "timeout": 20, **settings}
    app = create_app(load_settings(flags, environ={}, dotenv_path=root / "no.env"), api_key=api_key)
    warm_up(app)
    return Running(app)


# -- `rag mcp` in a subprocess, through the SDK's client (tests/test_mcp.py, tests/test_scope.py) ---

CALL_TIMEOUT = 120  # seconds for one tool call: the first one may wait for the model to load on a busy machine


class McpClient:
    """A synchronous face on an SDK ClientSession running in a blocking portal's event loop."""

    def __init__(self, portal, session):
        self.portal = portal
        self.session = session

    def tools(self) -> dict:
        result = self.portal.call(self.session.list_tools)
        return {tool.name: tool for tool in result.tools}

    def call(self, name: str, arguments: dict | None = None):
        return self.portal.call(lambda: self.session.call_tool(name, arguments or {},
                                                               read_timeout_seconds=CALL_TIMEOUT))

    def data(self, name: str, arguments: dict | None = None) -> dict:
        result = self.call(name, arguments)
        assert not result.is_error, result.content[0].text
        return json.loads(result.content[0].text)


@contextmanager
def mcp_client(args: list[str], cwd: Path, log_folder: Path, env: dict | None = None) -> Iterator[McpClient]:
    """`rag mcp ARGS` as a subprocess in `cwd` (with `env` added to a clean environment),
    initialised; its stderr goes to log_folder/stderr.txt."""
    from anyio.from_thread import start_blocking_portal
    from mcp import ClientSession, StdioServerParameters, stdio_client

    params = StdioServerParameters(command=str(RAG), args=["mcp", *args], env=clean_env(**(env or {})), cwd=str(cwd))
    with open(log_folder / "stderr.txt", "w+") as errlog, start_blocking_portal() as portal:
        with portal.wrap_async_context_manager(stdio_client(params, errlog=errlog)) as (read, write):
            with portal.wrap_async_context_manager(ClientSession(read, write)) as session:
                portal.call(session.initialize)
                yield McpClient(portal, session)


def damage_table(db: Path, table: str) -> None:
    """Overwrite most of the root page of `table` with noise, as a bad sector would."""
    import sqlite3

    import numpy as np

    with sqlite3.connect(db) as conn:
        page_size = conn.execute("PRAGMA page_size").fetchone()[0]
        (root_page,) = conn.execute("SELECT rootpage FROM sqlite_master WHERE name = ?", (table,)).fetchone()
    with open(db, "r+b") as handle:
        handle.seek((root_page - 1) * page_size + 16)
        handle.write(np.random.default_rng(7).bytes(page_size - 32))
