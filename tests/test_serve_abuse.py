"""`rag serve` and `rag mcp` shed abuse (issue 30, the degraded cases): strict JSON in, bounded
depth, every string safe to encode, slow and surplus connections let go, a damaged index a clean
503, and every line an MCP client sends answered. uvicorn on 127.0.0.1 in a thread, raw sockets
for what no well-behaved client sends, and a real `rag mcp` subprocess."""

from __future__ import annotations

import json
import select
import socket
import subprocess
import threading
import time
from pathlib import Path

import httpx2 as httpx
import pytest

from rag.config import load_settings
from rag.servers.wire import Limits
from tests.helpers import RAG, clean_env as server_env, copy_index, damage_table

LIMITS = Limits(header_seconds=1.0, body_seconds=1.0, max_connections=4)
WAIT = 30  # seconds a test waits for what a bound says should happen within a second or two


class Server:
    def __init__(self, root: Path, limits: Limits = LIMITS):
        from rag.servers.http import bound_port, create_app, make_server

        settings = load_settings({"index_dir": root / "indexes"}, environ={}, dotenv_path=root / "no.env")
        self.server = make_server(create_app(settings, limits=limits), "127.0.0.1", 0, access_log=False,
                                  limits=limits)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 120
        while not self.server.started:
            assert self.thread.is_alive() and time.monotonic() < deadline, "the server did not start"
            time.sleep(0.05)
        self.port = bound_port(self.server)
        self.url = f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)

    def post(self, path: str, body: bytes | str, content_type: str = "application/json") -> httpx.Response:
        return httpx.post(self.url + path, content=body, headers={"content-type": content_type}, timeout=120)

    def connect(self) -> socket.socket:
        sock = socket.create_connection(("127.0.0.1", self.port))
        sock.settimeout(WAIT)
        return sock


@pytest.fixture(scope="module")
def server(built_index, tmp_path_factory, embedder):
    root = tmp_path_factory.mktemp("serve-abuse")
    copy_index(built_index / "indexes", root / "indexes")
    running = Server(root)
    yield running
    running.stop()


def reply_of(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (or WAIT passes)."""
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except (socket.timeout, ConnectionResetError):
        pass
    return data


def error_of(response: httpx.Response) -> dict:
    return response.json()["error"]


# -- what a request may carry ---------------------------------------------------------------------


def test_a_body_declared_as_text_is_refused_even_if_it_says_json(server):
    response = server.post("/v1/search", json.dumps({"query": "moons of Mars"}), "text/plain;json")

    assert response.status_code == 415
    assert error_of(response)["message"] == "send the body as JSON, with `Content-Type: application/json`"


def test_json_with_a_utf8_charset_is_accepted(server):
    response = server.post("/v1/search", json.dumps({"query": "moons of Mars"}), "application/json; charset=utf-8")

    assert response.status_code == 200, response.text


def test_a_body_nested_100000_deep_is_a_400(server):
    body = '{"query": "moons", "extra": ' + "[" * 100_000 + "]" * 100_000 + "}"

    response = server.post("/v1/search", body)

    assert response.status_code == 400
    assert error_of(response)["message"] == f"the request body nests deeper than {LIMITS.max_json_depth} levels"


def test_a_lone_surrogate_in_a_query_is_answered_not_a_500(server):
    response = server.post("/v1/search", '{"query": "\\ud800 How many moons does Mars have?"}')

    assert response.status_code == 200, response.text
    assert response.json()["query"] == "\ufffd How many moons does Mars have?"
    assert Path(response.json()["hits"][0]["path"]).name == "astronomy.txt"


def test_a_lone_surrogate_in_a_chat_message_is_answered_not_a_500(server):
    body = '{"messages": [{"role": "user", "content": "How many moons does Mars have? \\udfff"}]}'

    response = server.post("/v1/chat/completions", body)

    assert response.status_code == 200, response.text
    assert "Phobos" in response.json()["choices"][0]["message"]["content"]


# -- slow and surplus connections -----------------------------------------------------------------


def test_a_client_that_trickles_its_headers_is_answered_408_and_closed(server):
    sock = server.connect()
    sock.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # and never the blank line

    reply = reply_of(sock)

    assert reply.startswith(b"HTTP/1.1 408 Request Timeout\r\n"), reply[:200]
    sock.close()


def test_a_client_that_connects_and_sends_nothing_is_let_go(server):
    sock = server.connect()

    assert reply_of(sock).startswith(b"HTTP/1.1 408 "), "the idle connection was kept"
    sock.close()


def test_a_client_that_trickles_its_body_is_answered_408(server):
    sock = server.connect()
    sock.sendall(b"POST /v1/search HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                 b"Content-Length: 100\r\n\r\n{\"query\"")

    reply = reply_of(sock)

    assert reply.startswith(b"HTTP/1.1 408 "), reply[:200]
    assert b"the request body took over 1 s to arrive" in reply
    sock.close()


def test_connections_over_the_cap_are_answered_503_at_once_and_the_rest_still_work(server):
    held = [server.connect() for _ in range(LIMITS.max_connections)]  # idle: each takes a descriptor
    time.sleep(0.2)
    extra = server.connect()
    extra.settimeout(5)  # well inside the header deadline of the held ones... plus the machine's load

    reply = reply_of(extra)

    assert reply.startswith(b"HTTP/1.1 503 Service Unavailable\r\n"), reply[:200]
    for sock in held + [extra]:
        sock.close()
    time.sleep(0.5)
    assert httpx.get(server.url + "/health", timeout=60).status_code == 200


# -- a damaged index ------------------------------------------------------------------------------


def test_a_search_on_a_damaged_index_is_a_503_with_one_line_naming_it(built_index, tmp_path, embedder):
    copy_index(built_index / "indexes", tmp_path / "indexes")
    damage_table(tmp_path / "indexes" / "default" / "rag.sqlite", "chunks")
    damaged = Server(tmp_path)
    try:
        response = damaged.post("/v1/search", json.dumps({"query": "How many moons does Mars have?"}))
    finally:
        damaged.stop()

    assert response.status_code == 503
    error = error_of(response)
    assert (error["type"], error["code"]) == ("server_error", "index_damaged")
    assert error["message"].startswith(f"the index at {tmp_path / 'indexes' / 'default'} is damaged ")
    assert "\n" not in error["message"]


# -- rag mcp answers every line -------------------------------------------------------------------


def read_replies(proc: subprocess.Popen, wanted: set, deadline: float) -> list[dict]:
    """Protocol lines from the server until every id in `wanted` has its reply, or the deadline."""
    replies: list[dict] = []
    while wanted - {r.get("id") for r in replies} and time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            break
        line = proc.stdout.readline()
        if not line:
            break
        replies.append(json.loads(line))
    return replies


def test_rag_mcp_answers_every_line_it_cannot_parse_and_keeps_serving(built_index, tmp_path):
    lines = [
        json.dumps({"jsonrpc": "2.0", "id": 1, "method": "initialize",
                    "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                               "clientInfo": {"name": "test", "version": "1"}}}),
        json.dumps({"jsonrpc": "2.0", "method": "notifications/initialized"}),
        "{this is not json",
        json.dumps({"jsonrpc": "2.0", "id": 7, "method": 5}),
        # a lone surrogate: Python's JSON takes it, the SDK's parser does not
        '{"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {"name": "search", '
        '"arguments": {"query": "\\ud800 How many moons does Mars have?"}}}',
        json.dumps({"jsonrpc": "2.0", "id": 9, "method": "tools/list"}),
    ]
    proc = subprocess.Popen([str(RAG), "mcp", "--index-dir", str(built_index / "indexes")], cwd=tmp_path,
                            env=server_env(), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    try:
        proc.stdin.write("\n".join(lines) + "\n")
        proc.stdin.flush()
        replies = read_replies(proc, {1, 3, 7, 9, None}, time.monotonic() + 180)
    finally:
        proc.kill()
        proc.wait()
    by_id = {r.get("id"): r for r in replies}

    assert by_id.get(None, {}).get("error", {}).get("code") == -32700  # parse error, id unknown
    assert by_id.get(7, {}).get("error", {}).get("code") == -32600  # invalid request, id known
    search = json.loads(by_id[3]["result"]["content"][0]["text"])
    assert search["query"] == "\ufffd How many moons does Mars have?"
    assert Path(search["passages"][0]["path"]).name == "astronomy.txt"
    assert "tools" in by_id[9]["result"]
