"""Settings: one frozen dataclass built once from flags > environment > .env > defaults.

This is the only module that reads os.environ. `.env` is read into a dict, never into the
process environment, and only when settings are built (never at import).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Mapping, get_args

from rag.errors import ConfigError
from rag.types import Mode

MODES: tuple[Mode, ...] = get_args(Mode)

DEFAULT_EMBED_MODEL = "all-MiniLM-L6-v2"
DEFAULT_LLM_MODEL = "gpt-4o-mini"
DEFAULT_INDEX_DIR = "indexes"
DEFAULT_INDEX = "default"
DEFAULT_TOP_K = 5
MAX_TOP_K = 100  # passages per question an interface accepts (-k, HTTP, MCP); more never fits a prompt
MAX_SEARCH_K = 1000  # what Index.search accepts (evaluation ranks 300 chunks a query); bounds every SQL query
# Cosine similarity below which no passage counts as relevant (see README, "The cut-off").
DEFAULT_MIN_SCORE = 0.2
NO_CUTOFF = 0.0  # a floor of 0 turns the "not covered" cut-off off (--min-score 0)
# Chunking (ingest.chunk.ChunkSettings), in the embedding model's tokens
DEFAULT_CHUNK_TOKENS = 200
DEFAULT_OVERLAP_TOKENS = 30
MIN_CHUNK_TOKENS = 32
# The conversation an answer sees (`rag chat`, and the history an HTTP client sends): the last
# HISTORY_TURNS questions with their answers, each message clipped to HISTORY_CHARS characters.
HISTORY_TURNS = 6
HISTORY_CHARS = 1500


@dataclass(frozen=True)
class Settings:
    index_dir: Path = Path(DEFAULT_INDEX_DIR)
    index: str = DEFAULT_INDEX
    embed_model: str = DEFAULT_EMBED_MODEL
    embed_backend: str = "auto"  # the embedding runtime for a new index (rag.embedding.embedder)
    llm_model: str = DEFAULT_LLM_MODEL
    api_key: str | None = None
    base_url: str | None = None
    top_k: int = DEFAULT_TOP_K
    min_score: float = DEFAULT_MIN_SCORE
    timeout: float = 60.0
    max_retries: int = 3  # the openai client's retries on 429/5xx, connection errors, timeouts
    temperature: float | None = None  # None: not sent, the server's default
    max_tokens: int | None = None  # None: not sent
    strict: bool = False  # leave out the sentences of a written answer that no passage supports
    query_threads: int = 1  # torch/FAISS threads for answering; see rag.index.limit_threads
    # the runtime questions embed through (rag.runtimes.query_runtime; an onnx-int8 index: its own): auto is
    # numpy-fp32 (no engine to start) for a command that asks once, onnx-fp32 for chat and the servers
    query_backend: str = "auto"
    rerank_model: str | None = None  # a local CrossEncoder folder re-scoring the top candidates (rag.retrieval.rerank)
    ray_address: str | None = None  # ingest on a Ray cluster: local, auto or HOST:PORT (ingest/distributed.py)
    # chat's readline history: the user's questions stay out of the index folder (which gets shared)
    history_file: Path = Path("~/.local/state/rag/chat_history").expanduser()

    @property
    def index_path(self) -> Path:
        return self.index_dir / self.index

    @property
    def llm_configured(self) -> bool:
        """An LLM is configured when there is a key (OpenAI) or an endpoint (local servers)."""
        return bool(self.api_key or self.base_url)

    def __repr__(self) -> str:  # never print the key, even in a debug dump
        shown = "set" if self.api_key else None
        return (
            f"Settings(index_path={self.index_path!s}, embed_model={self.embed_model!r}, "
            f"llm_model={self.llm_model!r}, base_url={self.base_url!r}, api_key={shown}, "
            f"top_k={self.top_k}, min_score={self.min_score})"
        )


def _text(name: str, raw: str) -> str:
    return raw


def _path(name: str, raw: str) -> Path:
    return Path(raw).expanduser()


def _int(name: str, raw: str) -> int:
    try:
        return int(raw)
    except ValueError as exc:
        raise ConfigError(f"{name}={raw!r} is not a whole number: fix it in the environment or .env") from exc


def _float(name: str, raw: str) -> float:
    try:
        return float(raw)
    except ValueError as exc:
        raise ConfigError(f"{name}={raw!r} is not a number: fix it in the environment or .env") from exc


def _bool(name: str, raw: str) -> bool:
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off", ""):
        return False
    raise ConfigError(f"{name}={raw!r} is not true or false (use 1 or 0): fix it in the environment or .env")


# Every setting read from the environment or .env: variable -> (Settings field, parser).
ENV: dict[str, tuple[str, Callable[[str, str], object]]] = {
    "RAG_INDEX_DIR": ("index_dir", _path),
    "RAG_INDEX": ("index", _text),
    "RAG_EMBED_MODEL": ("embed_model", _text),
    "RAG_EMBED_BACKEND": ("embed_backend", _text),
    "RAG_LLM_MODEL": ("llm_model", _text),
    "OPENAI_API_KEY": ("api_key", _text),
    "OPENAI_BASE_URL": ("base_url", _text),
    "RAG_TOP_K": ("top_k", _int),
    "RAG_MIN_SCORE": ("min_score", _float),
    "RAG_TIMEOUT": ("timeout", _float),
    "RAG_MAX_RETRIES": ("max_retries", _int),
    "RAG_TEMPERATURE": ("temperature", _float),
    "RAG_MAX_TOKENS": ("max_tokens", _int),
    "RAG_STRICT": ("strict", _bool),
    "RAG_QUERY_THREADS": ("query_threads", _int),
    "RAG_QUERY_BACKEND": ("query_backend", _text),
    "RAG_RERANK_MODEL": ("rerank_model", _text),
    "RAG_RAY_ADDRESS": ("ray_address", _text),
}
ENV_KEYS = tuple(ENV)


def read_dotenv(path: Path) -> dict[str, str]:
    if not path.is_file():
        return {}
    from dotenv import dotenv_values

    return {k: v for k, v in dotenv_values(path).items() if v is not None}


def load_settings(
    flags: Mapping[str, object] | None = None,
    environ: Mapping[str, str] | None = None,
    dotenv_path: Path | None = None,
) -> Settings:
    """Build settings; `flags` holds only the options the user actually gave (None = not given)."""
    environ = os.environ if environ is None else environ
    dotenv = read_dotenv(dotenv_path if dotenv_path is not None else Path(".env"))

    values: dict[str, object] = {}
    for key, (name, parse) in ENV.items():
        raw = environ.get(key) or dotenv.get(key)
        if raw:
            values[name] = parse(key, raw)
    state = environ.get("XDG_STATE_HOME")
    if state:
        values["history_file"] = Path(state).expanduser() / "rag" / "chat_history"
    for key, value in (flags or {}).items():
        if value is not None:
            values[key] = Path(value).expanduser() if key == "index_dir" else value

    try:
        settings = replace(Settings(), **values)
    except TypeError as exc:  # a flag name that is no setting: a programming error, said plainly
        raise ConfigError(f"unknown setting: {exc}") from exc
    _validate(settings)
    return settings


def model_cache_dir(environ: Mapping[str, str] | None = None) -> Path:
    """Where exported embedding models are cached: RAG_CACHE_DIR, else $XDG_CACHE_HOME/rag/models."""
    environ = os.environ if environ is None else environ
    if environ.get("RAG_CACHE_DIR"):
        return Path(environ["RAG_CACHE_DIR"]).expanduser()
    return Path(environ.get("XDG_CACHE_HOME") or Path.home() / ".cache").expanduser() / "rag" / "models"


def rerank_folder_problem(path: str | Path) -> str | None:
    """Why `path` cannot be a rerank model (None: it is a folder); the one check for settings and
    the reranker (rag.retrieval.rerank)."""
    if Path(path).expanduser().is_dir():
        return None
    return (f"rerank model {path} is not a folder: set --rerank-model/RAG_RERANK_MODEL to a local "
            f"sentence-transformers CrossEncoder folder, or leave it unset")


def for_many_questions(settings: Settings) -> Settings:
    """The settings of a process that answers many questions (chat, serve, mcp): an automatic
    question runtime becomes the fastest per question (QUERY_FP32_MANY) rather than to start."""
    from rag.runtimes import QUERY_FP32_MANY, is_auto

    return replace(settings, query_backend=QUERY_FP32_MANY) if is_auto(settings.query_backend) else settings


def _validate(settings: Settings) -> None:
    from rag.runtimes import check_query_backend, check_runtime_name

    check_runtime_name(settings.embed_backend)  # raises ConfigError naming the choices
    if not 1 <= settings.top_k <= MAX_TOP_K:
        raise ConfigError(f"top-k (-k, RAG_TOP_K) must be between 1 and {MAX_TOP_K} (got {settings.top_k})")
    if not -1.0 <= settings.min_score <= 1.0:
        raise ConfigError(
            f"min-score (--min-score, RAG_MIN_SCORE) is a cosine similarity between -1 and 1 (got {settings.min_score})"
        )
    if settings.timeout <= 0:
        raise ConfigError(f"RAG_TIMEOUT must be positive (got {settings.timeout})")
    if settings.max_retries < 0:
        raise ConfigError(f"RAG_MAX_RETRIES must be 0 or more (got {settings.max_retries})")
    if settings.max_tokens is not None and settings.max_tokens < 1:
        raise ConfigError(f"RAG_MAX_TOKENS must be at least 1 (got {settings.max_tokens})")
    if settings.temperature is not None and not 0 <= settings.temperature <= 2:
        raise ConfigError(f"RAG_TEMPERATURE must be between 0 and 2 (got {settings.temperature})")
    if settings.query_threads < 1:
        raise ConfigError(f"RAG_QUERY_THREADS must be at least 1 (got {settings.query_threads})")
    check_query_backend(settings.query_backend)
    if settings.rerank_model:
        problem = rerank_folder_problem(settings.rerank_model)
        if problem:
            raise ConfigError(problem)
    check_index_name(settings.index)


def check_index_name(name: str) -> None:
    """An index is a folder under the index folder, never a path that leaves it."""
    if not name or "/" in name or "\\" in name or name.startswith("."):
        raise ConfigError(f"index name {name!r} must be a plain folder name such as 'default'")


def version() -> str:
    """rag's version, from the installed package's metadata (pyproject.toml is the one source)."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed

    try:
        return installed("rag")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "0+unknown"
