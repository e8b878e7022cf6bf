"""The JSON that rag's servers speak: OpenAI-style requests parsed, passages and answers shaped, errors mapped.

`rag serve` (rag/servers/http.py) and `rag mcp` (rag/servers/mcp.py) send passages and sources in the
same shapes, named by their path relative to the ingested folder (never the absolute path). Every
error is an `ApiError`: a status and one line, sent as OpenAI's `{"error": {...}}`.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from rag.config import MAX_TOP_K, MODES
from rag.errors import IndexMissing, LLMError, RagError
from rag.types import Answer, Hit, Source, StoredDocument

if TYPE_CHECKING:
    from rag.answer.llm import Message

# Earlier turns passed on as history: as many as `rag chat` keeps, each clipped the same way.
HISTORY_MESSAGES = 12
HISTORY_CHARS = 1500
SOURCES_HEADINGS = ("\n\nSources:\n", "\n\nRetrieved passages:\n")


@dataclass(frozen=True)
class Limits:
    max_body_bytes: int = 1_000_000  # an OpenAI request with a long conversation fits easily
    max_question_chars: int = 4000  # a question, not a document: longer ones are a mistake or abuse


class ApiError(Exception):
    """An HTTP error answered as OpenAI-style JSON."""

    def __init__(self, status: int, message: str, type: str = "invalid_request_error", code: str | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.code = code


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
    if isinstance(exc, RagError):
        return ApiError(400, str(exc))
    raise exc


# -- the JSON shapes of passages and sources (MCP's tools send the same) ------------------------


def passage(rank: int, hit: Hit) -> dict:
    return {"rank": rank, "path": hit.label, "page": hit.page, "page_kind": hit.page_kind, "heading": hit.heading,
            "title": hit.title, "score": round(hit.score, 6), "similarity": round(hit.similarity, 6),
            "text": hit.text}


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
    if "json" not in request.headers.get("content-type", ""):
        # also what makes a cross-site form post need CORS's permission, which this server never gives
        raise ApiError(415, "send the body as JSON, with `Content-Type: application/json`")
    body = bytearray()
    async for chunk in request.stream():  # a chunked body without a length is counted as it comes
        body += chunk
        if len(body) > limits.max_body_bytes:
            raise ApiError(413, f"the request body is over the limit of {limits.max_body_bytes} bytes")
    try:
        data = json.loads(body)
    except ValueError:
        raise ApiError(400, "the request body is not valid JSON") from None
    if not isinstance(data, dict):
        raise ApiError(400, "the request body must be a JSON object")
    return data


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
            "question": answer.question, "sentences": [asdict(s) for s in answer.sentences],
            "dropped_sentences": answer.dropped_sentences}


def strict_of(body: dict) -> bool | None:
    """The request's `strict` (leave out unsupported sentences); None: the server's setting."""
    value = body.get("strict")
    if value is not None and not isinstance(value, bool):
        raise ApiError(400, "`strict` must be true or false")
    return value
