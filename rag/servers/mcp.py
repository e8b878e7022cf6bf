"""`rag mcp`: a Model Context Protocol server over stdio (the official `mcp` SDK) for one index.

Tools: `search`, `ask`, `list_documents`, `index_status`. One `Index` serves the process: the
model and vectors load once (in the background as the server starts), every call runs in the
SDK's worker threads under the Index's lock, and each search picks up what an ingest committed
since the last one. Invariants: stdout carries nothing but protocol messages (the SDK points fd 1
at stderr while it serves; logs go to stderr); a bad argument or a RagError becomes an MCP error
result (`isError`) with one line, never a crashed server; passages are named by their path
relative to the ingested folder; every line the client sends gets an answer: the SDK's stdio
transport drops a line it cannot parse without a reply (the client waits forever), so
`ParseErrorReplies` answers it with JSON-RPC's parse error (-32700) or invalid request (-32600),
and a message that only a lone surrogate kept from parsing is made safe and served.
"""

# No `from __future__ import annotations`: the SDK reads the tools' annotations at run time to
# build their JSON schemas, and postponed (string) annotations of local aliases cannot be resolved.
import logging
import threading
from contextlib import asynccontextmanager
from dataclasses import asdict
from typing import TYPE_CHECKING, Annotated, Any, Optional, Sequence

from pydantic import Field  # already loaded by the SDK; the schemas' constraints come from it

from rag.config import MAX_TOP_K, version
from rag.errors import RagError
from rag.servers.wire import (ApiError, Limits, check_question, document_record, filters_of, index_names_of, passage,
                              safe_json, safe_text, source_record)
from rag.types import Mode

if TYPE_CHECKING:
    from rag.index import Index

log = logging.getLogger("rag.mcp")
MAX_QUESTION_CHARS = Limits().max_question_chars

INSTRUCTIONS = """Search and ask questions about the user's own documents, indexed locally by `rag`.
Use `search` to find passages (each with its file path, page and heading), `ask` for a cited answer,
`list_documents` to see what is indexed and `index_status` for its size and model."""

Query = Annotated[str, Field(description="What to look for, in natural language or keywords.", min_length=1,
                             max_length=MAX_QUESTION_CHARS)]
Question = Annotated[str, Field(description="The question, as the user would ask it.", min_length=1,
                                max_length=MAX_QUESTION_CHARS)]
TopK = Annotated[int, Field(description=f"How many passages to return (1-{MAX_TOP_K}).", ge=1, le=MAX_TOP_K)]
Strict = Annotated[bool | None,
                   Field(description="Leave out sentences of a written answer that no passage supports "
                                     "(default: the server's setting, RAG_STRICT; else they are marked [unsupported]).")]
SearchMode = Annotated[Mode,
                       Field(description="hybrid (default): meaning and keywords fused; dense: meaning only; "
                                         "keyword: BM25 over the words")]

Paths = Annotated[Optional[list[str]],
                  Field(description="Only documents matching these gitignore-style globs, relative to the ingested "
                                    "folder as list_documents shows paths (e.g. ['api/**', '*.pdf', '!drafts/']).")]
Types = Annotated[Optional[list[str]], Field(description="Only these document types, by extension (e.g. ['pdf', 'md']).")]
Since = Annotated[Optional[str], Field(description="Only documents modified at or after this date: 2025-01-31, "
                                                   "2025-01-31T18:00, or 7d / 36h / 2w for that long ago.")]
Before = Annotated[Optional[str], Field(description="Only documents modified before this date (same forms).")]
Pages = Annotated[Optional[str], Field(description="Only these pages ('12' or '12-20') of the one document the "
                                                   "other filters name.")]
Indexes = Annotated[Optional[list[str]],
                    Field(description="Which of the served indexes to search (default: all of them, together).")]

EXTRACTIVE_NOTE = ("extractive answer: no LLM is configured for rag (set OPENAI_API_KEY or OPENAI_BASE_URL), "
                   "so these are the most relevant sentences from the passages, cited")


def build_server(index: "Index", also: Sequence["Index"] = ()):
    """The MCP server for `index` (and `also`, searched together with it), its tools registered."""
    from mcp.server.mcpserver import MCPServer
    from mcp.server.mcpserver.exceptions import ToolError

    llm = index.llm()
    served = {each.name: each for each in (index, *also)}

    def scope(indexes, path, type, modified_since, modified_before, pages):
        """(first index, the others, filters) for a call's arguments; a bad one is a ToolError."""
        try:
            filters = filters_of({"path": path, "type": type, "modified_since": modified_since,
                                  "modified_before": modified_before, "pages": pages})
            names = index_names_of({"indexes": indexes}, "") if indexes else list(served)
        except ApiError as exc:
            raise ToolError(exc.message) from exc
        unknown = [name for name in names if name not in served]
        if unknown:
            raise ToolError(f"no index {', '.join(unknown)} here: this server searches {', '.join(served)}")
        first, *others = [served[name] for name in names]
        return first, others, filters

    @asynccontextmanager
    async def lifespan(server):
        # load the model and vectors while the client initialises, not on its first call
        for each in served.values():
            threading.Thread(target=_warm_up, args=(each,), name="rag-warm-up", daemon=True).start()
        yield {}

    server = MCPServer("rag", version=version(), instructions=INSTRUCTIONS, lifespan=lifespan, log_level="WARNING")

    limits = Limits()

    def checked(text: str, what: str) -> str:
        try:
            return check_question(safe_text(text), limits, what)
        except ApiError as exc:
            raise ToolError(exc.message) from exc

    @server.tool(annotations=_read_only())
    def search(query: Query, k: TopK = 5, mode: SearchMode = "hybrid", path: Paths = None, type: Types = None,
               modified_since: Since = None, modified_before: Before = None, pages: Pages = None,
               indexes: Indexes = None) -> dict[str, Any]:
        """Search the indexed documents and return the best passages, best first.

        Each passage has `path` (relative to the folder that was ingested), `page` (PDF page, when
        there is one), `heading` (the section path: a list of headings, outermost first), `score` and `text`, and `index` when several
        indexes were searched. `below_cutoff` true means something was found but nothing relevant
        enough: the documents probably do not cover it (`cutoff_reason` says why). The filters
        (`path`, `type`, `modified_since`, `modified_before`, `pages`) narrow the search before it
        ranks; `no_match` says when they match no document (then nothing was searched).
        """
        query = checked(query, "query")
        first, others, filters = scope(indexes, path, type, modified_since, modified_before, pages)
        try:
            retrieval = first.search(query, top_k=k, mode=mode, filters=filters, also=others)
        except RagError as exc:
            raise ToolError(str(exc)) from exc
        return {"query": query, "mode": mode, "below_cutoff": retrieval.below_cutoff,
                "cutoff_reason": retrieval.cutoff_reason, "no_match": retrieval.no_match,
                "passages": [passage(n, h) for n, h in enumerate(retrieval.hits, start=1)]}

    @server.tool(annotations=_read_only())
    def ask(question: Question, k: TopK = 5, path: Paths = None, type: Types = None, modified_since: Since = None,
            modified_before: Before = None, pages: Pages = None, indexes: Indexes = None,
            strict: Strict = None) -> dict[str, Any]:
        """Answer a question from the indexed documents, citing passages as [1], [2]...

        `citations` lists the passages behind the numbers (path, page, heading as a list, text;
        `cited` marks those the answer uses). `mode` is "llm" when rag's configured LLM wrote the answer,
        "extractive" when no LLM is configured (the answer is then the most relevant sentences,
        quoted), or "none" when nothing in the index matched. The filters are search's; `no_match`
        says when they match no document. In a written answer every sentence that states a fact
        carries a citation rag checked against the passage; one that no passage supports is marked
        [unsupported] (`unsupported_sentences` counts them) or, with `strict`, left out
        (`dropped_sentences`).
        """
        first, others, filters = scope(indexes, path, type, modified_since, modified_before, pages)
        try:
            answer = first.answer(checked(question, "question"), llm=llm, top_k=k, filters=filters,
                                  also=others, strict=strict).result()
        except RagError as exc:
            raise ToolError(str(exc)) from exc
        result = {"answer": answer.answer, "mode": answer.mode, "model": answer.model,
                  "citations": [source_record(s) for s in answer.sources], "no_match": answer.no_match,
                  "unsupported_sentences": sum(s.supported is False for s in answer.sentences),
                  "dropped_sentences": answer.dropped_sentences}
        if answer.mode == "extractive":
            result["note"] = EXTRACTIVE_NOTE
        return result

    @server.tool(annotations=_read_only())
    def list_documents() -> dict[str, Any]:
        """List the indexed documents: path (relative to the ingested folder), title, pages, chunks."""
        try:
            documents = index.documents()
        except RagError as exc:
            raise ToolError(str(exc)) from exc
        return {"documents": [document_record(d) for d in documents]}

    @server.tool(annotations=_read_only())
    def index_status() -> dict[str, Any]:
        """Describe the index: documents, chunks, pages, embedding model, size, last ingest time."""
        try:
            return asdict(index.status())
        except RagError as exc:
            raise ToolError(str(exc)) from exc

    return server


def _read_only():
    from mcp.types import ToolAnnotations

    return ToolAnnotations(read_only_hint=True, open_world_hint=False)


def _warm_up(index: "Index") -> None:
    try:
        index.warm_up()
    except RagError as exc:  # the first call reports it to the client too
        log.warning("rag: %s", exc)


def run_mcp(index: "Index", also: Sequence["Index"] = (), watch: bool = False, poll: bool = False) -> None:
    """Serve `index` (and `also`, searched together with it) over stdin/stdout until the client
    closes the connection (what `rag mcp` calls); `watch` keeps each fresh with the folders it was
    built from (rag.watch), logging to stderr."""
    import anyio

    if watch:
        from rag.watch.watcher import keep_fresh

        for each in (index, *also):
            keep_fresh(each.settings, poll=poll, log=lambda line: log.warning("rag mcp: %s", line))

    anyio.run(_serve_stdio, build_server(index, also))


async def _serve_stdio(server) -> None:
    """MCPServer.run_stdio_async, with the read side answering what it cannot parse."""
    from mcp.server.stdio import stdio_server

    lowlevel = server._lowlevel_server  # what run_stdio_async drives; the SDK offers no other seam
    async with stdio_server() as (read_stream, write_stream):
        await lowlevel.run(ParseErrorReplies(read_stream, write_stream), write_stream,
                           lowlevel.create_initialization_options())


def _reply_or_message(exc: Exception):
    """For a line the SDK could not parse: the message it still is (a lone surrogate made safe),
    or the JSON-RPC error to answer it with."""
    import json

    import mcp_types as types

    errors = exc.errors() if hasattr(exc, "errors") else []
    raw = next((e.get("input") for e in errors if e.get("type") == "json_invalid"), None)
    parsed = None
    if isinstance(raw, str):
        try:  # Python's parser takes "\ud800"; the SDK's does not
            parsed = safe_json(json.loads(raw), max_depth=Limits().max_json_depth)
        except (ValueError, RecursionError, ApiError):
            parsed = None
        if parsed is None:
            return types.JSONRPCError(jsonrpc="2.0", id=None, error=types.ErrorData(
                code=types.PARSE_ERROR, message="Parse error: the line is not valid JSON"))
        try:
            return types.jsonrpc_message_adapter.validate_python(parsed, by_name=False)
        except Exception:
            pass
    else:
        parsed = next((e.get("input") for e in errors if isinstance(e.get("input"), dict)), None)
    request_id = parsed.get("id") if isinstance(parsed, dict) else None
    if isinstance(request_id, bool) or not isinstance(request_id, (int, str)):
        request_id = None
    return types.JSONRPCError(jsonrpc="2.0", id=request_id, error=types.ErrorData(
        code=types.INVALID_REQUEST, message="Invalid Request: not a JSON-RPC 2.0 message"))


class ParseErrorReplies:
    """The read stream of the stdio transport, answering every line the SDK could not parse.

    The SDK's transport passes such a line on as an exception, which its dispatcher logs at debug
    level and drops: the client never hears back (reported upstream). Here the exception is
    turned into a reply on the write stream, or into the message it was when only a lone
    surrogate kept it from parsing. Everything else passes through untouched.
    """

    def __init__(self, inner, write_stream):
        self._inner = inner
        self._write = write_stream

    @property
    def last_context(self):  # the SDK restores the sender's context from it
        return getattr(self._inner, "last_context", None)

    async def receive(self):
        from mcp.shared.message import SessionMessage
        import mcp_types as types

        while True:
            item = await self._inner.receive()
            if not isinstance(item, Exception):
                return item
            outcome = _reply_or_message(item)
            if isinstance(outcome, types.JSONRPCError):
                log.warning("rag mcp: answered a line it could not read: %s", outcome.error.message)
                await self._write.send(SessionMessage(outcome))
                continue
            return SessionMessage(outcome)

    def __aiter__(self):
        return self

    async def __anext__(self):
        import anyio

        try:
            return await self.receive()
        except anyio.EndOfStream:
            raise StopAsyncIteration from None

    def close(self) -> None:
        self._inner.close()

    async def aclose(self) -> None:
        await self._inner.aclose()

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc) -> None:
        await self.aclose()
