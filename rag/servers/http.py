"""`rag serve`: an OpenAI-compatible HTTP API and a small web chat over the indexes in one folder.

Routes: `POST /v1/chat/completions` (OpenAI's format, streamed as server-sent events or not; the
last user message is the question, earlier ones the conversation), `GET /v1/models` (the indexes
under --index-dir: `model` names the index), `POST /v1/search`, `GET /health`, and the page at `/`.

Invariants: every blocking `Index` call runs in the threadpool, so one slow request never holds
up the others; an Index (and its model) is opened once per name and kept for the process; with an
API key, every route checks it (a bearer token, or HTTP Basic's password so a browser can open
the page), and the key is never logged or echoed; every error is OpenAI-style JSON
`{"error": {"message", "type", "code"}}` with one line of text, never a traceback. Passages are
named by their path relative to the ingested folder, never by where the files live.

Starlette and uvicorn are imported inside the functions that build and run the app.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import logging
import threading
import time
import uuid
from base64 import b64decode
from contextlib import asynccontextmanager
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from rag.config import Settings
from rag.errors import ConfigError, IndexMissing, RagError
from rag.types import Answer, Source
from rag.servers.wire import (ApiError, Limits, answer_extras, api_error, check_question, completion_chunk, error_body,
                      filters_of, index_names_of, mode_of, parse_messages, passage, read_json, source_record,
                      strict_of, top_k_of)

if TYPE_CHECKING:
    from rag.index import Index
    from rag.answer.llm import LLM

log = logging.getLogger("rag.servers.http")
WEB = Path(__file__).parent / "web"


def sources_text(sources: list[Source]) -> str:
    """The "Sources:" block for clients that drop unknown fields; named by label, never by absolute path."""
    from rag.answer.sources import sources_block

    return sources_block([replace(s, file="") for s in sources]) if sources else ""


# -- the indexes ------------------------------------------------------------------------------


class Indexes:
    """The indexes under one folder, each opened on first use and kept (model loaded once) for the process."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.default = settings.index
        self._open: dict[str, tuple[Index, LLM | None]] = {}
        self._lock = threading.Lock()

    def names(self) -> list[str]:
        from rag.index import Index

        return Index.names(self.settings.index_dir)

    def get(self, name: str) -> tuple[Index, LLM | None]:
        """The open index called `name` and its LLM (None: extractive answers); unknown is a 404."""
        from rag.index import Index

        with self._lock:
            if name in self._open:
                return self._open[name]
            if name not in self.names():
                known = ", ".join(self.names()) or "none yet: run `rag ingest PATH`"
                raise ApiError(404, f"no index named {name!r} in {self.settings.index_dir} (indexes: {known})",
                               code="model_not_found")
            # each index asks in the model it was built with: one server answers for indexes of several
            index = Index.open(replace(self.settings, index=name), own_model=True)
            self._open[name] = (index, index.llm())
            return self._open[name]

    def close(self) -> None:
        with self._lock:
            for index, _ in self._open.values():
                index.close()
            self._open.clear()


# -- the app ------------------------------------------------------------------------------------


def create_app(settings: Settings, api_key: str | None = None, limits: Limits = Limits()):
    """The ASGI app over the indexes in `settings.index_dir`; `settings.index` answers requests naming none."""
    from starlette.applications import Starlette
    from starlette.concurrency import run_in_threadpool
    from starlette.exceptions import HTTPException
    from starlette.responses import FileResponse, JSONResponse, StreamingResponse
    from starlette.routing import Route

    indexes = Indexes(settings)

    def error_response(error: ApiError) -> JSONResponse:
        return JSONResponse(error_body(error.message, error.type, error.code), status_code=error.status)

    def json_route(handler):
        async def route(request):
            try:
                return await handler(request)
            except Exception as exc:  # only ours: api_error re-raises the rest (a real bug -> 500)
                error = api_error(exc)
                if error.status >= 500:  # the operator's to fix (a full disk, a damaged index): say so in the log
                    log.error("rag serve: %s %s: %s", request.method, request.url.path, error.message)
                return error_response(error)
        return route

    async def health(request):
        return JSONResponse({"status": "ok", "default_index": indexes.default, "indexes": indexes.names(),
                             "strict": settings.strict})

    async def models(request):
        data = []
        for name in indexes.names():
            created = int((settings.index_dir / name).stat().st_mtime)
            data.append({"id": name, "object": "model", "created": created, "owned_by": "rag"})
        return JSONResponse({"object": "list", "data": data})

    async def search(request):
        body = await read_json(request, limits)
        query = check_question(body.get("query"), limits, what="query")
        top_k, mode, filters = top_k_of(body, settings.top_k), mode_of(body), filters_of(body)
        names = index_names_of(body, str(body.get("model") or indexes.default))
        (index, _), *others = [await run_in_threadpool(indexes.get, name) for name in names]
        retrieval = await run_in_threadpool(partial(index.search, query, top_k=top_k, mode=mode, filters=filters,
                                                    also=[other for other, _ in others]))
        return JSONResponse({
            "index": names[0] if len(names) == 1 else names, "query": query, "mode": mode,
            "below_cutoff": retrieval.below_cutoff, "cutoff_reason": retrieval.cutoff_reason,
            "no_match": retrieval.no_match, "seconds": round(retrieval.seconds, 4),
            "hits": [passage(n, h) for n, h in enumerate(retrieval.hits, start=1)],
        })

    async def chat_completions(request):
        from rag.answer.generate import sources_of

        body = await read_json(request, limits)
        question, history = parse_messages(body.get("messages"), limits)
        top_k, mode, filters = top_k_of(body, settings.top_k), mode_of(body), filters_of(body)
        names = index_names_of(body, str(body.get("model") or indexes.default), key="model")
        name = "+".join(names)
        with_block = body.get("sources_in_content", True) is not False  # the web page shows sources itself
        # the passages found, sent before the answer is written (errors then come in the stream)
        progress = body.get("progress") is True
        strict = strict_of(body)
        (index, llm), *others = [await run_in_threadpool(indexes.get, each) for each in names]
        stream = await run_in_threadpool(partial(index.answer, question, llm=llm, history=history, top_k=top_k,
                                                 mode=mode, filters=filters, also=[other for other, _ in others],
                                                 strict=strict))
        cid, created = f"chatcmpl-{uuid.uuid4().hex[:24]}", int(time.time())

        def content_of(answer: Answer) -> str:
            block = sources_text(answer.sources) if with_block else ""
            return answer.answer + (f"\n\n{block}" if block else "")

        if not body.get("stream"):
            answer = await run_in_threadpool(stream.result)
            return JSONResponse({
                "id": cid, "object": "chat.completion", "created": created, "model": name,
                "choices": [{"index": 0, "finish_reason": "stop",
                             "message": {"role": "assistant", "content": content_of(answer)}}],
                "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
                **answer_extras(answer),
            })

        pieces = iter(stream)
        # The first piece before the response starts: an upstream failure is still a proper status.
        first = None if progress else await run_in_threadpool(next, pieces, None)

        async def events():
            finished = False
            try:
                found = {"sources": [source_record(s) for s in sources_of(stream.retrieval)],
                         "answer_mode": stream.mode} if progress else {}
                yield completion_chunk(cid, created, name, {"role": "assistant", "content": ""}, **found)
                piece = await run_in_threadpool(next, pieces, None) if progress else first
                while piece is not None:
                    yield completion_chunk(cid, created, name, {"content": piece})
                    piece = await run_in_threadpool(next, pieces, None)
                finished = True
                answer = stream.result()
                block = sources_text(answer.sources) if with_block else ""
                if block:
                    yield completion_chunk(cid, created, name, {"content": f"\n\n{block}"})
                yield completion_chunk(cid, created, name, {}, "stop", **answer_extras(answer))
                yield "data: [DONE]\n\n"
            except RagError as exc:  # the upstream failed half-way: say so in the stream, as OpenAI does
                finished = True
                error = api_error(exc)
                yield f"data: {json.dumps(error_body(error.message, error.type, error.code))}\n\n"
            finally:
                if not finished:  # the client went away: close the LLM's stream too
                    try:
                        stream.stop()
                    except ValueError:
                        pass  # still running in a worker thread; it ends with its generator

        return StreamingResponse(events(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})

    async def page(request):
        return FileResponse(WEB / "index.html", media_type="text/html")

    async def script(request):
        return FileResponse(WEB / "app.js", media_type="text/javascript")

    async def http_error(request, exc: HTTPException):
        message = {404: f"no route {request.url.path}", 405: f"{request.method} is not allowed on {request.url.path}"}
        return error_response(ApiError(exc.status_code, message.get(exc.status_code, str(exc.detail)),
                                       code="not_found" if exc.status_code == 404 else None))

    async def server_error(request, exc: Exception):
        log.error("internal error on %s %s: %s: %s", request.method, request.url.path, type(exc).__name__, exc)
        return error_response(ApiError(500, "internal server error (see the server's log)", type="server_error"))

    routes = [
        Route("/", page, methods=["GET"]),
        Route("/app.js", script, methods=["GET"]),
        Route("/health", health, methods=["GET"]),
        Route("/v1/models", models, methods=["GET"]),
        Route("/v1/search", json_route(search), methods=["POST"]),
        Route("/v1/chat/completions", json_route(chat_completions), methods=["POST"]),
    ]
    @asynccontextmanager
    async def lifespan(app):
        yield
        indexes.close()

    app = Starlette(routes=routes, exception_handlers={HTTPException: http_error, Exception: server_error},
                    lifespan=lifespan)
    app.state.indexes = indexes
    return BearerAuth(app, api_key) if api_key else LoopbackOnly(app)


class LoopbackOnly:
    """ASGI middleware for a server without a key: only requests addressed to a loopback name.

    A web page on another site cannot then reach the server through a name that resolves to
    127.0.0.1 (DNS rebinding), and the server cannot be reached by another address by mistake.
    """

    def __init__(self, app):
        self.app = app
        self.state = app.state

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            host = dict(scope["headers"]).get(b"host", b"").decode("latin-1")
            name = host.rsplit("]", 1)[0].lstrip("[") if host.startswith("[") else host.rsplit(":", 1)[0]
            if not is_loopback(name):
                from starlette.responses import JSONResponse

                body = error_body(f"this server answers only requests addressed to 127.0.0.1 or localhost (got "
                                  f"{host[:100]!r}): give it an --api-key to serve other names", "invalid_request_error")
                await JSONResponse(body, status_code=403)(scope, receive, send)
                return
        await self.app(scope, receive, send)


class BearerAuth:
    """ASGI middleware: every HTTP request carries the key, as a bearer token or a Basic password."""

    def __init__(self, app, api_key: str):
        self.app = app
        self.api_key = api_key.encode()
        self.state = getattr(app, "state", None)

    def authorized(self, header: bytes) -> bool:
        scheme, _, value = header.partition(b" ")
        given = value.strip()
        if scheme.lower() == b"basic":  # a browser asks for it once and then sends it on every fetch
            try:
                given = b64decode(given, validate=True).partition(b":")[2]
            except ValueError:
                return False
        elif scheme.lower() != b"bearer":
            return False
        return hmac.compare_digest(given, self.api_key)

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            header = dict(scope["headers"]).get(b"authorization", b"")
            if not self.authorized(header):
                from starlette.responses import JSONResponse

                body = error_body("missing or wrong API key: send `Authorization: Bearer KEY`",
                                  "invalid_request_error", "invalid_api_key")
                response = JSONResponse(body, status_code=401, headers={"WWW-Authenticate": 'Basic realm="rag"'})
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


# -- running ------------------------------------------------------------------------------------


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name: it may resolve anywhere


def check_exposure(host: str, api_key: str | None) -> None:
    if not is_loopback(host) and not api_key:
        raise ConfigError(f"binding to {host} exposes your documents to the network: set --api-key or "
                          f"RAG_API_KEY (or bind to 127.0.0.1)")


def log_config() -> dict:
    """uvicorn's logging, with its access log on stderr too (stdout is the product's, and a server has none)."""
    from uvicorn.config import LOGGING_CONFIG

    config = json.loads(json.dumps(LOGGING_CONFIG))
    config["handlers"]["access"]["stream"] = "ext://sys.stderr"
    return config


def make_server(app, host: str = "127.0.0.1", port: int = 8000, access_log: bool = True, limits: Limits = Limits()):
    """A uvicorn server for `app` (port 0: any free port; read it from `bound_port` once started),
    shedding slow and surplus connections (rag.servers.connections)."""
    import uvicorn

    from rag.servers.connections import connection_cap, guarded_protocol

    config = uvicorn.Config(app, host=host, port=port, log_config=log_config(), access_log=access_log,
                            timeout_graceful_shutdown=5, http=guarded_protocol(limits),
                            limit_concurrency=connection_cap(limits), timeout_keep_alive=5,
                            h11_max_incomplete_event_size=16 * 1024)
    return uvicorn.Server(config)


def bound_port(server) -> int:
    return server.servers[0].sockets[0].getsockname()[1]


def warm_up(app) -> None:
    """Open the default index and load its model now, so the first request does not wait for it."""
    indexes: Indexes = app.state.indexes
    if not indexes.names():
        raise IndexMissing(f"no index in {indexes.settings.index_dir}: run `rag ingest PATH` first")
    if indexes.default in indexes.names():
        indexes.get(indexes.default)[0].warm_up()


def serve(settings: Settings, host: str = "127.0.0.1", port: int = 8000, api_key: str | None = None,
          limits: Limits = Limits(), watch: bool = False, poll: bool = False) -> None:
    """Run the server until Ctrl-C (what `rag serve` calls); `watch` keeps every index fresh with
    the folders it was built from (rag.watch), committing batch by batch while it answers."""
    check_exposure(host, api_key)
    import sys

    app = create_app(settings, api_key=api_key, limits=limits)
    warm_up(app)
    names = app.state.indexes.names()
    if watch:
        from dataclasses import replace

        from rag.watch.watcher import keep_fresh

        for name in names:
            keep_fresh(replace(settings, index=name), poll=poll, log=lambda line, n=name: sys.stderr.write(
                f"rag serve: {n}: {line}\n"))
    shown = f"[{host}]" if ":" in host else host
    sys.stderr.write(f"rag serve: {len(names)} index(es) in {settings.index_dir} ({', '.join(names)}); web chat at "
                     f"http://{shown}:{port}/, OpenAI base URL http://{shown}:{port}/v1"
                     f"{', API key required' if api_key else ''}\n")
    make_server(app, host, port, limits=limits).run()
