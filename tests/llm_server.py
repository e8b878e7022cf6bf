"""A small OpenAI-compatible HTTP server on 127.0.0.1 for tests, run in a thread.

It speaks `POST /v1/chat/completions` (streaming as server-sent events, and not) and records
every request body, so tests can assert on the prompt that reached the server. Behaviour is
scripted per test: `reply` is the answer text, `fail_with` an HTTP status to return (with an
OpenAI-style error body), `fail_times` how many requests fail before it answers normally,
`delay` seconds to wait between streamed pieces, `stall` seconds to wait before answering at all
(a server busy with a long prompt), `gate` an Event the answer waits for (clear it to hold every
answer until the test sets it), `retry_after_ms` a Retry-After-Ms header on error responses
(the openai client honours it instead of its own 0.5-8 s backoff, which keeps retry tests fast),
and `stream_error` an error event sent after the streamed reply (as servers do when a stream
fails half-way). `last_piece_at` is when (time.monotonic) the last streamed piece was sent.
"""

from __future__ import annotations

import json
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def closed_port_url() -> str:
    """A base URL on 127.0.0.1 where nothing listens: connection refused, as for a server not started."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request, client_address):
        # a client that gave up (timeout, Ctrl-C) is part of the script, not a server failure
        if not isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            super().handle_error(request, client_address)


class FakeLLM:
    def __init__(self) -> None:
        self.script = 0  # bumped by reset(), so a request stalled past its test can tell
        self.requests: list[dict] = []
        self.headers: list[dict] = []
        self.reply = "The answer is in the passages [1]."
        self.fail_with: int | None = None
        self.fail_times: int | None = None  # None = always fail when fail_with is set
        self.error_message = "scripted failure"
        self.delay = 0.0
        self.stall = 0.0
        self.retry_after_ms: int | None = None
        self.stream_error: str | None = None
        self.known_models: set[str] | None = None  # None = any model name works
        self.last_piece_at: float | None = None
        self.gate = threading.Event()
        self.gate.set()
        self._server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/v1"

    def reset(self) -> None:
        self.script += 1
        self.requests.clear()
        self.headers.clear()
        self.reply = "The answer is in the passages [1]."
        self.fail_with = None
        self.fail_times = None
        self.error_message = "scripted failure"
        self.delay = 0.0
        self.stall = 0.0
        self.retry_after_ms = None
        self.stream_error = None
        self.known_models = None
        self.last_piece_at = None
        self.gate.set()  # a test that held its answers lets them go

    def start(self) -> "FakeLLM":
        llm = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # keep test output clean
                pass

            def _json(self, status: int, payload: dict) -> None:
                body = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                if status >= 400 and llm.retry_after_ms is not None:
                    self.send_header("Retry-After-Ms", str(llm.retry_after_ms))
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                if self.path.rstrip("/") == "/v1/models":
                    names = sorted(llm.known_models or {"test-model"})
                    self._json(200, {"object": "list", "data": [{"id": n, "object": "model"} for n in names]})
                else:
                    self._json(404, {"error": {"message": "not found"}})

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                llm.requests.append(body)
                llm.headers.append(dict(self.headers))
                if llm.stall:
                    script = llm.script
                    time.sleep(llm.stall)
                    if script != llm.script:  # the test that stalled us is over; do not act on the next one's
                        self.close_connection = True
                        return
                llm.gate.wait(120)
                if self.path.rstrip("/") != "/v1/chat/completions":
                    self._json(404, {"error": {"message": f"no route {self.path}"}})
                    return
                if llm.fail_with is not None and (llm.fail_times is None or llm.fail_times > 0):
                    if llm.fail_times is not None:
                        llm.fail_times -= 1
                    self._json(llm.fail_with, {"error": {"message": llm.error_message, "type": "test", "code": None}})
                    return
                if llm.known_models is not None and body.get("model") not in llm.known_models:
                    self._json(404, {"error": {"message": f"model {body.get('model')} not found", "code": "model_not_found"}})
                    return
                if body.get("stream"):
                    self._stream(body)
                else:
                    self._json(200, {
                        "id": "cmpl-test", "object": "chat.completion", "created": int(time.time()),
                        "model": body.get("model"),
                        "choices": [{"index": 0, "finish_reason": "stop",
                                     "message": {"role": "assistant", "content": llm.reply}}],
                        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
                    })

            def _stream(self, body: dict) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Cache-Control", "no-cache")
                self.send_header("Connection", "close")
                self.end_headers()
                words = llm.reply.split(" ")
                try:
                    for i, word in enumerate(words):
                        piece = word if i == 0 else " " + word
                        event = {"id": "cmpl-test", "object": "chat.completion.chunk", "created": int(time.time()),
                                 "model": body.get("model"),
                                 "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}]}
                        self.wfile.write(f"data: {json.dumps(event)}\n\n".encode())
                        self.wfile.flush()
                        llm.last_piece_at = time.monotonic()
                        if llm.delay:
                            time.sleep(llm.delay)
                    if llm.stream_error is not None:
                        error = {"error": {"message": llm.stream_error, "type": "server_error", "code": None}}
                        self.wfile.write(f"data: {json.dumps(error)}\n\n".encode())
                        self.wfile.flush()
                        self.close_connection = True
                        return
                    done = {"id": "cmpl-test", "object": "chat.completion.chunk", "created": int(time.time()),
                            "model": body.get("model"), "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
                    self.wfile.write(f"data: {json.dumps(done)}\n\ndata: [DONE]\n\n".encode())
                    self.wfile.flush()
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client stopped reading (Ctrl-C)
                self.close_connection = True

        self._server = _QuietServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server:
            self._server.shutdown()
            self._server.server_close()


if __name__ == "__main__":  # run by hand: python tests/llm_server.py
    server = FakeLLM().start()
    print(server.url, flush=True)
    threading.Event().wait()
