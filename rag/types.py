"""The dataclasses that travel between pipeline stages; `--json` output is `asdict()` of them."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

# What a section's `page` number counts: Sources say "page 3", "slide 3" or "chapter 3".
PageKind = Literal["page", "slide", "chapter"]


@dataclass(frozen=True)
class Section:
    """A stretch of a document under one heading (or on one PDF page)."""

    text: str
    heading: tuple[str, ...] = ()
    page: int | None = None
    start: int = 0  # character offset of `text` within the document's full text


@dataclass(frozen=True)
class Document:
    path: Path
    title: str
    sections: list[Section]
    content_hash: str
    mtime: float
    size: int
    pages: int | None = None
    parser: int = 1  # ingest.pipeline.PARSER_VERSION of the loaders and chunker that read it
    page_kind: PageKind = "page"


@dataclass(frozen=True)
class Chunk:
    ordinal: int
    text: str
    heading: tuple[str, ...]
    page: int | None
    char_start: int
    char_end: int
    embed_text: str  # what the model reads: title and heading path, then the text


@dataclass
class Hit:
    chunk_id: int
    path: str
    page: int | None
    heading: str
    text: str
    title: str
    score: float  # fused score in hybrid mode, cosine in dense, BM25 (higher is better) in keyword
    similarity: float  # cosine between question and chunk; what the relevance cut-off reads
    dense_rank: int | None = None
    keyword_rank: int | None = None


@dataclass
class Source:
    rank: int
    path: str
    page: int | None
    heading: str
    score: float
    text: str
    cited: bool = False


@dataclass
class Answer:
    question: str
    answer: str
    mode: str  # "llm", "extractive" or "none"
    model: str | None
    sources: list[Source] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
