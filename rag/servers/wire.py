"""The JSON that rag's servers speak: OpenAI-style requests parsed, passages and answers shaped, errors mapped.

`rag serve` (rag/servers/http.py) and `rag mcp` (rag/servers/mcp.py) send passages and sources in the
same shapes, named by their path relative to the ingested folder (never the absolute path). Every
error is an `ApiError`: a status and one line, sent as OpenAI's `{"error": {...}}`.
"""

from __future__ import annotations

import asyncio
import json
import re
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from rag.config import HISTORY_CHARS, HISTORY_TURNS, MAX_TOP_K, MODES
from rag.errors import ApiError, DiskFull, IndexBusy, IndexDamaged, IndexMissing, LLMError, RagError, StorageError
from rag.filters import Filters
from rag.types import Answer, Hit, Source, StoredDocument

if TYPE_CHECKING:
    from rag.answer.llm import Message

# Earlier turns passed on as history: as many as `rag chat` keeps, each clipped the same way.
HISTORY_MESSAGES = 2 * HISTORY_TURNS  # a question and its answer per turn
SOURCES_HEADINGS = ("\n\nSources:\n", "\n\nRetrieved passages:\n")
# JSON may carry "\ud800" alone, which no UTF-8 encoder (the tokenizer's, SQLite's, ours) accepts
LONE_SURROGATE = re.compile("[\ud800-\udfff]")


@dataclass(frozen=True)
class Limits:
    max_body_bytes: int = 1_000_000  # an OpenAI request with a long conversation fits easily
    max_question_chars: int = 4000  # a question, not a document: longer ones are a mistake or abuse
    max_json_depth: int = 32  # an OpenAI request nests 5 deep (messages, parts); deeper is abuse
    header_seconds: float = 10.0  # to send the request line and headers (rag.servers.connections)
    body_seconds: float = 30.0  # to send the body, once the headers are in
    max_connections: int = 512  # open at once; more are answered 503 and closed (file descriptors are finite)


def error_body(message: str, type: str, code: str | None = None) -> dict:
    return {"error": {"message": message, "type": type, "param": None, "code": code}}


def llm_status(exc: LLMError) -> int:
    """The status an upstream failure deserves here: the client's fault (400), wait (429), or ours (502/504)."""
    import openai

    cause = exc.__cause__
    if isinstance(cause, openai.RateLimitError):
        return 429
    if isinstance(cause, openai.BadRequestError):
        return 400  # the question and passages do not fit the model, or the server refused them
    if isinstance(cause, openai.APITimeoutError):
        return 504
    return 502  # a bad key, a wrong model name, an unreachable or failing server: the operator's to fix


def api_error(exc: Exception) -> ApiError:
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, LLMError):
        return ApiError(llm_status(exc), str(exc), type="upstream_error", code="llm_error")
    if isinstance(exc, IndexMissing):
        return ApiError(404, str(exc), code="model_not_found")
    if isinstance(exc, (StorageError, IndexBusy)):  # the index cannot serve now: ours to fix, not the client's
        code = ("disk_full" if isinstance(exc, DiskFull) else "index_damaged" if isinstance(exc, IndexDamaged)
                else "index_busy" if isinstance(exc, IndexBusy) else "index_unavailable")
        return ApiError(503, str(exc), type="server_error", code=code)
    if isinstance(exc, RagError):
        return ApiError(400, str(exc))
    raise exc


# -- the JSON shapes of passages and sources (MCP's tools send the same) ------------------------


def passage(rank: int, hit: Hit) -> dict:
    return {"rank": rank, "path": hit.label, "page": hit.page, "page_kind": hit.page_kind, "heading": list(hit.heading),
            "title": hit.title, "score": round(hit.score, 6), "similarity": round(hit.similarity, 6),
            "text": hit.text, **({"index": hit.index} if hit.index else {})}


def source_record(source: Source) -> dict:
    """A source as `rag ask --json` prints it, less `file`: the absolute path on this machine is
    nobody else's business."""
    record = asdict(source)
    del record["file"]
    return record


def document_record(document: StoredDocument) -> dict:
    """A document as `rag ls --json` prints it, with `path` relative to the ingested folder (its
    label) for the same reason."""
    return asdict(document) | {"path": document.label}


# -- parsing requests ---------------------------------------------------------------------------


async def read_json(request, limits: Limits) -> dict:
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > limits.max_body_bytes:
        raise ApiError(413, f"the request body is over the limit of {limits.max_body_bytes} bytes")
    check_content_type(request.headers.get("content-type", ""))
    body = bytearray()
    try:
        async with asyncio.timeout(limits.body_seconds):  # a client trickling its body is let go
            async for chunk in request.stream():  # a chunked body without a length is counted as it comes
                body += chunk
                if len(body) > limits.max_body_bytes:
                    raise ApiError(413, f"the request body is over the limit of {limits.max_body_bytes} bytes")
    except TimeoutError as exc:
        raise ApiError(408, f"the request body took over {limits.body_seconds:g} s to arrive") from exc
    return parse_json(bytes(body), limits)


def check_content_type(header: str) -> None:
    """Only `application/json` (in UTF-8): also what makes a cross-site form post need CORS's
    permission, which this server never gives. `text/plain;json` is not JSON."""
    media_type, _, parameters = header.partition(";")
    charset = next((value.strip().strip('"').lower() for name, _, value in
                    (p.partition("=") for p in parameters.split(";")) if name.strip().lower() == "charset"), "utf-8")
    if media_type.strip().lower() != "application/json" or charset not in ("utf-8", "utf8"):
        raise ApiError(415, "send the body as JSON, with `Content-Type: application/json`")


def parse_json(body: bytes, limits: Limits) -> dict:
    """A JSON object, at most `limits.max_json_depth` deep, with every string safe to encode."""
    try:
        data = json.loads(body)
    except RecursionError:  # the decoder's own guard, deep below any depth we accept
        raise ApiError(400, f"the request body nests deeper than {limits.max_json_depth} levels") from None
    except ValueError as exc:
        raise ApiError(400, "the request body is not valid JSON") from exc
    if not isinstance(data, dict):
        raise ApiError(400, "the request body must be a JSON object")
    return safe_json(data, limits.max_json_depth)


def safe_text(text: str) -> str:
    """`text` with every lone surrogate replaced by U+FFFD, so that it can always be encoded."""
    return LONE_SURROGATE.sub("\ufffd", text)


def safe_json(value: Any, max_depth: int) -> Any:
    """A parsed JSON value with its strings made safe; deeper than `max_depth` is a 400. Walked
    with an explicit stack: no recursion on input that someone else shaped."""
    root = [value]
    stack = [(root, 0, 0)]
    while stack:
        container, key, depth = stack.pop()
        item = container[key]
        if isinstance(item, str):
            container[key] = safe_text(item)
        elif isinstance(item, (dict, list)):
            if depth >= max_depth:
                raise ApiError(400, f"the request body nests deeper than {max_depth} levels")
            if isinstance(item, dict):
                if any(LONE_SURROGATE.search(k) for k in item):
                    item = {safe_text(k): v for k, v in item.items()}
                    container[key] = item
                stack.extend((item, k, depth + 1) for k in item)
            else:
                stack.extend((item, i, depth + 1) for i in range(len(item)))
    return root[0]


def _text_of(content: Any) -> str:
    """Message content as a string: OpenAI allows a string or a list of parts ({"type": "text", "text": ...})."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(p["text"] for p in content if isinstance(p, dict) and p.get("type") == "text"
                         and isinstance(p.get("text"), str))
    if content is None:
        return ""
    raise ApiError(400, "a message's content must be a string or a list of text parts", code="invalid_messages")


def _without_sources(text: str) -> str:
    for heading in SOURCES_HEADINGS:
        text = text.split(heading, 1)[0]
    return text


def parse_messages(messages: Any, limits: Limits) -> tuple[str, list[Message]]:
    """The question (the last message, from the user) and the conversation before it.

    System messages are dropped: rag's own system prompt is what keeps the answer to the passages.
    Our own earlier replies come back with their Sources block, which is cut off again.
    """
    if not isinstance(messages, list) or not messages:
        raise ApiError(400, "`messages` must be a non-empty list of {role, content} objects", code="invalid_messages")
    parsed: list[Message] = []
    for message in messages:
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            raise ApiError(400, "every message needs a `role` and a `content`", code="invalid_messages")
        parsed.append({"role": message["role"], "content": _text_of(message.get("content"))})
    last = parsed[-1]
    if last["role"] != "user":
        raise ApiError(400, "the last message must be the user's question", code="invalid_messages")
    question = check_question(last["content"], limits)
    history = [{"role": m["role"], "content": _without_sources(m["content"])[:HISTORY_CHARS]}
               for m in parsed[:-1] if m["role"] in ("user", "assistant")]
    return question, history[-HISTORY_MESSAGES:]


def check_question(question: Any, limits: Limits, what: str = "question") -> str:
    if not isinstance(question, str) or not question.strip():
        raise ApiError(400, f"the {what} is empty")
    if len(question) > limits.max_question_chars:
        raise ApiError(400, f"the {what} is {len(question)} characters long; the limit is {limits.max_question_chars}: "
                            f"ask something shorter", code="question_too_long")
    return question


def top_k_of(body: dict, default: int) -> int:
    value = body.get("k", body.get("top_k", default))
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_TOP_K:
        raise ApiError(400, f"`k` must be a whole number from 1 to {MAX_TOP_K}")
    return value


def filters_of(body: dict) -> Filters | None:
    """The request's filters (rag.filters): `path` (a glob or a list), `type` ("pdf,md" or a list),
    `modified_since`, `modified_before` (dates) and `pages` ("3-7"); a bad one is a 400."""
    try:
        filters = Filters.build(paths=body.get("path"), types=body.get("type"),
                                modified_since=body.get("modified_since"), modified_before=body.get("modified_before"),
                                pages=body.get("pages"))
    except RagError as exc:
        raise ApiError(400, str(exc), code="invalid_filter") from None
    return None if filters.empty else filters


def index_names_of(body: dict, default: str, key: str = "index") -> list[str]:
    """The indexes a request names: `indexes` (a list), else `key` (a name or a list), else the default."""
    names = body.get("indexes") or body.get(key) or default
    names = [names] if isinstance(names, str) else names
    if not isinstance(names, list) or not names or not all(isinstance(n, str) and n for n in names):
        raise ApiError(400, "`indexes` must be a list of index names", code="invalid_index")
    return list(dict.fromkeys(names))


def mode_of(body: dict) -> str:
    mode = body.get("mode", "hybrid")
    if mode not in MODES:
        raise ApiError(400, f"`mode` must be one of {', '.join(MODES)}")
    return mode


# -- the app ------------------------------------------------------------------------------------


def completion_chunk(cid: str, created: int, model: str, delta: dict, finish: str | None = None, **extra) -> str:
    event = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": model,
             "choices": [{"index": 0, "delta": delta, "finish_reason": finish}], **extra}
    return f"data: {json.dumps(event, ensure_ascii=False)}\n\n"


def answer_extras(answer: Answer) -> dict:
    return {"sources": [source_record(s) for s in answer.sources], "answer_mode": answer.mode,
            "question": answer.question, **({"no_match": answer.no_match} if answer.no_match else {}),
            "sentences": [asdict(s) for s in answer.sentences], "dropped_sentences": answer.dropped_sentences}


def strict_of(body: dict) -> bool | None:
    """The request's `strict` (leave out unsupported sentences); None: the server's setting."""
    value = body.get("strict")
    if value is not None and not isinstance(value, bool):
        raise ApiError(400, "`strict` must be true or false")
    return value
