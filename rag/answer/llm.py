"""The LLM client: any OpenAI-compatible Chat Completions endpoint, and the one error mapping.

Retries with exponential backoff on 429/5xx and connection errors are the openai client's own
(`max_retries`); every failure becomes one LLMError line that never contains the API key, with
the original exception chained as its cause (`rag --debug` shows it).
"""

from __future__ import annotations

import re
from contextlib import contextmanager
from typing import Iterator, TypedDict

from rag.config import Settings
from rag.errors import LLMError


class Message(TypedDict):
    role: str  # "system", "user" or "assistant"
    content: str


def redact(text: str, secret: str | None) -> str:
    if secret:
        text = text.replace(secret, "***")
        if len(secret) > 8:  # servers often echo a prefix or suffix of a wrong key
            text = text.replace(secret[:8], "***").replace(secret[-4:], "***")
    return text


class LLM:
    """A chat model behind an OpenAI-compatible endpoint."""

    def __init__(self, settings: Settings, max_retries: int | None = None):
        from openai import OpenAI

        self.settings = settings
        self.max_retries = settings.max_retries if max_retries is None else max_retries
        self.model = settings.llm_model
        self.where = settings.base_url or "https://api.openai.com/v1"
        # Local servers (Ollama, llama.cpp, vLLM) accept any key; the client insists on one.
        self.client = OpenAI(
            api_key=settings.api_key or "no-key",
            base_url=settings.base_url,
            timeout=settings.timeout,
            max_retries=self.max_retries,
        )

    @contextmanager
    def _errors(self) -> Iterator[None]:
        import openai

        key = self.settings.api_key
        try:
            yield
        except openai.AuthenticationError as exc:
            raise LLMError(f"the LLM server at {self.where} rejected the API key (401): check OPENAI_API_KEY") from exc
        except openai.PermissionDeniedError as exc:
            raise LLMError(f"the LLM server at {self.where} refused access (403): {redact(_message(exc), key)}") from exc
        except openai.NotFoundError as exc:
            if _about_model(exc):
                raise LLMError(
                    f"model {self.model!r} was not found at {self.where} (404): set RAG_LLM_MODEL or --model "
                    f"to a model the server has"
                ) from exc
            # Ollama at :11434 without /v1, a typo in the path: the server is there, the endpoint is not
            raise LLMError(
                f"there is no chat completions endpoint at {self.where} (404): check OPENAI_BASE_URL "
                f"(OpenAI-compatible servers usually end in /v1)"
            ) from exc
        except openai.RateLimitError as exc:
            raise LLMError(
                f"the LLM server at {self.where} is rate limiting (429) and {self.max_retries} retries did not help: "
                f"wait a little and try again"
            ) from exc
        except openai.BadRequestError as exc:
            text = _message(exc)
            if re.search(r"context|too long|maximum.*tokens|token limit", text, re.I):
                raise LLMError(
                    f"the passages and question do not fit in {self.model!r}'s context window: "
                    f"lower -k or use a model with a longer context"
                ) from exc
            raise LLMError(f"the LLM server at {self.where} refused the request (400): {redact(text, key)}") from exc
        except openai.APITimeoutError as exc:
            # the client retries timeouts too: say how long the user really waited
            tries = f" ({self.max_retries + 1} tries)" if self.max_retries else ""
            raise LLMError(
                f"the LLM server at {self.where} did not answer within {self.settings.timeout:g} s{tries}: "
                f"try again, or raise RAG_TIMEOUT"
            ) from exc
        except openai.APIConnectionError as exc:
            raise LLMError(
                f"cannot reach the LLM server at {self.where}: is it running? (set OPENAI_BASE_URL, "
                f"or use --no-llm)"
            ) from exc
        except openai.APIStatusError as exc:
            raise LLMError(
                f"the LLM server at {self.where} failed ({exc.status_code}) after {self.max_retries} retries: "
                f"{redact(_message(exc), key)}"
            ) from exc
        except openai.APIError as exc:  # an error event in the middle of a stream, a malformed reply
            raise LLMError(f"the LLM server at {self.where} failed: {redact(_message(exc), key)}") from exc

    def stream(self, messages: list[Message]) -> Iterator[str]:
        with self._errors():
            response = self.client.chat.completions.create(
                model=self.model, messages=messages, stream=True, **self._options()
            )
            try:
                for event in response:
                    if event.choices and event.choices[0].delta and event.choices[0].delta.content:
                        yield event.choices[0].delta.content
            finally:
                response.close()

    def _options(self) -> dict:
        # sent only when set: reasoning models (o3-mini, ...) reject any non-default temperature
        # and max_tokens with a 400
        options: dict = {}
        if self.settings.temperature is not None:
            options["temperature"] = self.settings.temperature
        if self.settings.max_tokens is not None:
            options["max_tokens"] = self.settings.max_tokens
        return options

    def complete(self, messages: list[Message]) -> str:
        with self._errors():
            response = self.client.chat.completions.create(model=self.model, messages=messages, **self._options())
        return (response.choices[0].message.content or "").strip() if response.choices else ""


def _about_model(exc) -> bool:
    body = getattr(exc, "body", None)
    inner = body.get("error", body) if isinstance(body, dict) else None
    code = inner.get("code") if isinstance(inner, dict) else None
    return code == "model_not_found" or "model" in _message(exc).lower()


def _message(exc) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and inner.get("message"):
            return str(inner["message"])[:300]
        if isinstance(inner, str):
            return inner[:300]
    return str(getattr(exc, "message", exc))[:300]


