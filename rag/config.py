"""Settings: one frozen dataclass built once from flags > environment > .env > defaults.

This is the only module that reads os.environ. `.env` is read into a dict, never into the
process environment, and only when settings are built (never at import).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal, Mapping

from rag.errors import ConfigError

Mode = Literal["hybrid", "dense", "keyword"]
MODES: tuple[Mode, ...] = ("hybrid", "dense", "keyword")

DEFAULT_EMBED_MODEL = "all-MiniLM-L6-v2"
DEFAULT_LLM_MODEL = "gpt-4o-mini"
DEFAULT_INDEX_DIR = "indexes"
DEFAULT_INDEX = "default"
DEFAULT_TOP_K = 5
# Cosine similarity below which no passage counts as relevant (see README, "The cut-off").
DEFAULT_MIN_SCORE = 0.2

ENV_KEYS = (
    "OPENAI_API_KEY",
    "OPENAI_BASE_URL",
    "RAG_LLM_MODEL",
    "RAG_EMBED_MODEL",
    "RAG_INDEX_DIR",
    "RAG_INDEX",
    "RAG_TOP_K",
    "RAG_MIN_SCORE",
    "RAG_TIMEOUT",
    "RAG_EMBED_BACKEND",
)


@dataclass(frozen=True)
class Settings:
    index_dir: Path = Path(DEFAULT_INDEX_DIR)
    index: str = DEFAULT_INDEX
    embed_model: str = DEFAULT_EMBED_MODEL
    llm_model: str = DEFAULT_LLM_MODEL
    api_key: str | None = None
    base_url: str | None = None
    top_k: int = DEFAULT_TOP_K
    min_score: float = DEFAULT_MIN_SCORE
    timeout: float = 60.0
    embed_backend: str = "auto"  # rag.runtimes: auto, torch, onnx-fp32, onnx-int8, openvino-fp32, openvino-int8

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

    def pick(key: str) -> str | None:
        value = environ.get(key)
        if value is None or value == "":
            value = dotenv.get(key)
        return value or None

    values: dict[str, object] = {}
    if v := pick("RAG_INDEX_DIR"):
        values["index_dir"] = Path(v).expanduser()
    if v := pick("RAG_INDEX"):
        values["index"] = v
    if v := pick("RAG_EMBED_MODEL"):
        values["embed_model"] = v
    if v := pick("RAG_LLM_MODEL"):
        values["llm_model"] = v
    if v := pick("OPENAI_API_KEY"):
        values["api_key"] = v
    if v := pick("OPENAI_BASE_URL"):
        values["base_url"] = v
    if v := pick("RAG_TOP_K"):
        values["top_k"] = _parse_int("RAG_TOP_K", v)
    if v := pick("RAG_MIN_SCORE"):
        values["min_score"] = _parse_float("RAG_MIN_SCORE", v)
    if v := pick("RAG_TIMEOUT"):
        values["timeout"] = _parse_float("RAG_TIMEOUT", v)
    if v := pick("RAG_EMBED_BACKEND"):
        values["embed_backend"] = v

    for key, value in (flags or {}).items():
        if value is not None:
            values[key] = Path(value).expanduser() if key == "index_dir" else value

    settings = replace(Settings(), **values)
    _validate(settings)
    return settings


def _parse_int(name: str, raw: str) -> int:
    try:
        return int(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a whole number: fix it in the environment or .env") from None


def _parse_float(name: str, raw: str) -> float:
    try:
        return float(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a number: fix it in the environment or .env") from None


def model_cache_dir(environ: Mapping[str, str] | None = None) -> Path:
    """Where exported embedding models are cached: RAG_CACHE_DIR, else $XDG_CACHE_HOME/rag/models."""
    environ = os.environ if environ is None else environ
    if environ.get("RAG_CACHE_DIR"):
        return Path(environ["RAG_CACHE_DIR"]).expanduser()
    return Path(environ.get("XDG_CACHE_HOME") or Path.home() / ".cache").expanduser() / "rag" / "models"


def _validate(settings: Settings) -> None:
    from rag.runtimes import parse_runtime

    parse_runtime(settings.embed_backend)  # raises ConfigError naming the choices
    if settings.top_k < 1:
        raise ConfigError(f"top-k (-k, RAG_TOP_K) must be at least 1 (got {settings.top_k})")
    if not -1.0 <= settings.min_score <= 1.0:
        raise ConfigError(
            f"min-score (--min-score, RAG_MIN_SCORE) is a cosine similarity between -1 and 1 (got {settings.min_score})"
        )
    if settings.timeout <= 0:
        raise ConfigError(f"RAG_TIMEOUT must be positive (got {settings.timeout})")
    name = settings.index
    if not name or "/" in name or "\\" in name or name.startswith("."):
        raise ConfigError(f"index name {name!r} must be a plain folder name such as 'default'")
