"""`rag mcp`: a Model Context Protocol server over stdio (the official `mcp` SDK) for one index.

Tools: `search`, `ask`, `list_documents`, `index_status`. One `Index` serves the process: the
model and vectors load once (in the background as the server starts), every call runs in the
SDK's worker threads under the Index's lock, and each search picks up what an ingest committed
since the last one. Invariants: stdout carries nothing but protocol messages (the SDK points fd 1
at stderr while it serves; logs go to stderr); a bad argument or a RagError becomes an MCP error
result (`isError`) with one line, never a crashed server; passages are named by their path
relative to the ingested folder.
"""

# No `from __future__ import annotations`: the SDK reads the tools' annotations at run time to
# build their JSON schemas, and postponed (string) annotations of local aliases cannot be resolved.
import logging
import threading
from contextlib import asynccontextmanager
from dataclasses import asdict
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import Field  # already loaded by the SDK; the schemas' constraints come from it

from rag.config import MAX_TOP_K, version
from rag.errors import RagError
from rag.servers.wire import ApiError, Limits, check_question, document_record, passage, source_record
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

EXTRACTIVE_NOTE = ("extractive answer: no LLM is configured for rag (set OPENAI_API_KEY or OPENAI_BASE_URL), "
                   "so these are the most relevant sentences from the passages, cited")


def build_server(index: "Index"):
    """The MCP server for `index`, its tools registered."""
    from mcp.server.mcpserver import MCPServer
    from mcp.server.mcpserver.exceptions import ToolError

    llm = index.llm()

    @asynccontextmanager
    async def lifespan(server):
        # load the model and vectors while the client initialises, not on its first call
        threading.Thread(target=_warm_up, args=(index,), name="rag-warm-up", daemon=True).start()
        yield {}

    server = MCPServer("rag", version=version(), instructions=INSTRUCTIONS, lifespan=lifespan, log_level="WARNING")

    limits = Limits()

    def checked(text: str, what: str) -> str:
        try:
            return check_question(text, limits, what)
        except ApiError as exc:
            raise ToolError(exc.message) from exc

    @server.tool(annotations=_read_only())
    def search(query: Query, k: TopK = 5, mode: SearchMode = "hybrid") -> dict[str, Any]:
        """Search the indexed documents and return the best passages, best first.

        Each passage has `path` (relative to the folder that was ingested), `page` (PDF page, when
        there is one), `heading` (the section path), `score` and `text`. `below_cutoff` true means
        something was found but nothing relevant enough: the documents probably do not cover it
        (`cutoff_reason` says why).
        """
        try:
            retrieval = index.search(checked(query, "query"), top_k=k, mode=mode)
        except RagError as exc:
            raise ToolError(str(exc)) from exc
        return {"query": query, "mode": mode, "below_cutoff": retrieval.below_cutoff,
                "cutoff_reason": retrieval.cutoff_reason,
                "passages": [passage(n, h) for n, h in enumerate(retrieval.hits, start=1)]}

    @server.tool(annotations=_read_only())
    def ask(question: Question, k: TopK = 5, strict: Strict = None) -> dict[str, Any]:
        """Answer a question from the indexed documents, citing passages as [1], [2]...

        `citations` lists the passages behind the numbers (path, page, heading, text; `cited` marks
        those the answer uses). `mode` is "llm" when rag's configured LLM wrote the answer,
        "extractive" when no LLM is configured (the answer is then the most relevant sentences,
        quoted), or "none" when nothing in the index matched. In a written answer every sentence
        that states a fact carries a citation rag checked against the passage; one that no passage
        supports is marked [unsupported] (`unsupported_sentences` counts them) or, with `strict`,
        left out (`dropped_sentences`).
        """
        try:
            answer = index.answer(checked(question, "question"), llm=llm, top_k=k, strict=strict).result()
        except RagError as exc:
            raise ToolError(str(exc)) from exc
        result = {"answer": answer.answer, "mode": answer.mode, "model": answer.model,
                  "citations": [source_record(s) for s in answer.sources],
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


def run_mcp(index: "Index") -> None:
    """Serve `index` over stdin/stdout until the client closes the connection (what `rag mcp` calls)."""
    build_server(index).run("stdio")
