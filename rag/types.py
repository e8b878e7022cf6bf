"""The dataclasses that travel between stages and out of the library; `--json` is `asdict()` of them.

Paths: `Document`/`StoredDocument`/`Hit` carry the absolute path as stored (`path`) and, where a
reader or a remote LLM sees it, `label`: the path relative to the folder it was ingested from
(stable whatever the working folder, and never the user's home folder).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

Mode = Literal["hybrid", "dense", "keyword"]
AnswerMode = Literal["llm", "extractive", "none"]
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
    page_kind: PageKind = "page"  # what `pages` counts: PDF pages, slides, e-book chapters


@dataclass(frozen=True)
class Chunk:
    ordinal: int
    text: str
    heading: tuple[str, ...]
    page: int | None
    char_start: int
    char_end: int
    embed_text: str  # what the model reads: title and heading path, then the text


@dataclass(frozen=True)
class StoredDocument:
    id: int
    path: str
    content_hash: str
    mtime: float
    size: int
    title: str
    pages: int | None
    chunks: int
    ingested_at: float
    parser: int
    label: str = ""  # the path relative to the folder it was ingested from
    page_kind: str = "page"


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
    label: str = ""  # path relative to its ingested folder: what the prompt and --json show
    page_kind: str = "page"


@dataclass
class Retrieval:
    question: str
    mode: Mode
    hits: list[Hit]
    below_cutoff: bool  # something was found, but nothing relevant enough
    best_similarity: float | None
    seconds: float
    min_score: float | None = None  # the cut-off the hits passed
    cutoff_reason: str = ""  # why nothing counted as relevant (below_cutoff), in words
    reranked_by: str | None = None  # the cross-encoder that ordered the hits (rag.retrieval.rerank), if any


@dataclass
class Source:
    rank: int
    path: str  # relative to the ingested folder (as the LLM saw it)
    page: int | None
    heading: str
    score: float
    text: str
    cited: bool = False
    file: str = ""  # the absolute path on this machine
    page_kind: str = "page"


@dataclass(frozen=True)
class Citation:
    """One [n] of an answer checked against passage n (rag.answer.citations)."""

    n: int
    path: str  # the cited passage's source ("" when the answer cites a passage never given)
    page: int | None
    heading: str
    quote: str  # the span of the passage that best supports the sentence: text[start:end]
    start: int
    end: int
    supported: bool
    sentence: str = ""  # the answer's sentence that carries the citation
    reason: str = ""  # why it is (not) supported, in a few words


CitedBy = Literal["model", "rag"]


@dataclass(frozen=True)
class AnswerSentence:
    """One sentence (or fenced code block) of a written answer, grounded (rag.answer.grounding)."""

    text: str  # as shown, with its citations
    kind: str  # fact, code, heading, question, refusal or short (a connective: "Here is how:")
    citations: list[int]
    cited_by: CitedBy | None  # who wrote the citation: the model, or rag matching the sentence to the passages
    supported: bool | None  # None: not a claim (a question, a heading, a refusal)


@dataclass(frozen=True)
class Timings:
    retrieval_s: float
    generation_s: float


@dataclass
class Answer:
    question: str
    answer: str
    mode: AnswerMode
    model: str | None
    sources: list[Source] = field(default_factory=list)
    timings: Timings = field(default_factory=lambda: Timings(0.0, 0.0))
    stopped: bool = False  # the user interrupted the answer (Ctrl-C)
    citations: list[Citation] = field(default_factory=list)
    unsupported: int = 0  # citations the passage they name does not support
    uncited_sentences: int = 0  # sentences that state a fact without any citation
    sentences: list[AnswerSentence] = field(default_factory=list)  # a written answer, sentence by sentence
    dropped_sentences: int = 0  # unsupported sentences left out (strict)


@dataclass(frozen=True)
class Failure:
    path: str
    reason: str


@dataclass
class IngestReport:
    index: str = ""
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    removed: int = 0
    skipped: int = 0  # files of other types inside folders
    skipped_types: dict[str, int] = field(default_factory=dict)  # suffix -> files
    chunks: int = 0  # chunks embedded in this run
    seconds: float = 0.0
    failures: list[Failure] = field(default_factory=list)
    failed: int = 0  # len(failures), kept as a field so --json shows it

    @property
    def ok(self) -> bool:
        return not self.failures


@dataclass(frozen=True)
class IndexStatus:
    index: str
    documents: int
    chunks: int
    pages: int
    model: str | None
    runtime: str | None
    dim: int | None
    chunk_tokens: int | None
    overlap_tokens: int | None
    size_bytes: int
    last_ingest: str | None  # ISO 8601, local time
    outdated_documents: int  # read by an older parser version: the next ingest reads them again
    roots: list[str] = field(default_factory=list)  # the folders (and files) ingested


@dataclass(frozen=True)
class Removal:
    removed: list[str]
    unknown: list[str]
