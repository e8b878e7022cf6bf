"""The dataclasses that travel between stages and out of the library (`--json` is `asdict()` of
them), and `Embeds`, the one contract for whatever turns text into vectors.

Paths: `Document`/`StoredDocument`/`Hit` carry the absolute path as stored (`path`) and, where a
reader or a remote LLM sees it, `label`: the path relative to the folder it was ingested from
(stable whatever the working folder, and never the user's home folder).

Headings: a heading is a path, a tuple of levels outermost first, from the loader through the
store to `--json`, HTTP and MCP (a list there); only text someone reads joins it (rag.text.heading_path).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Protocol, Sequence

if TYPE_CHECKING:
    import numpy as np

from rag.filters import Filters

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
    # (start, end) offsets into `text` of code its reader knows to be code (an HTML <pre>), whose
    # lines a chunk never starts or ends inside
    code: tuple[tuple[int, int], ...] = ()


def spans_within(spans: Sequence[tuple[int, int]], start: int, end: int) -> tuple[tuple[int, int], ...]:
    """The (start, end) spans that overlap [start, end), cut to it, as offsets from `start`: a
    section's code in a stretch of its text."""
    return tuple((max(a, start) - start, min(b, end) - start) for a, b in spans if a < end and b > start)


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
    unread_pages: int = 0  # scanned pages not read because Tesseract is missing


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
    complete: bool = True  # False while a document too large for one batch is still being committed


@dataclass
class Hit:
    chunk_id: int
    path: str
    page: int | None
    heading: tuple[str, ...]  # the heading path, outermost first; --json shows a list
    text: str
    title: str
    score: float  # fused score in hybrid mode, cosine in dense, BM25 (higher is better) in keyword
    similarity: float  # cosine between question and chunk; what the relevance cut-off reads
    dense_rank: int | None = None
    keyword_rank: int | None = None
    label: str = ""  # path relative to its ingested folder: what the prompt and --json show
    page_kind: str = "page"
    index: str = ""  # the index it came from, when several were searched together


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
    filters: Filters | None = None  # what the search was kept to (rag.filters)
    indexes: list[str] = field(default_factory=list)  # the indexes searched together, when several were
    no_match: str = ""  # the filters match nothing, so nothing was searched: why, in one line
    # the question's names the index holds throughout (its subject: Python, in the Python docs); an
    # answer never says that no passage mentions them (rag.retrieval.relevance.is_common)
    common_names: list[str] = field(default_factory=list)
    # the question's words all but absent from the index (rag.retrieval.relevance.is_scarce): a
    # written answer about one of them that nothing supports is about what the documents lack
    scarce_words: list[str] = field(default_factory=list)


@dataclass
class Source:
    rank: int
    path: str  # relative to the ingested folder (as the LLM saw it)
    page: int | None
    heading: tuple[str, ...]
    score: float
    text: str
    cited: bool = False
    file: str = ""  # the absolute path on this machine
    page_kind: str = "page"
    index: str = ""  # the index it came from, when several were searched together


@dataclass(frozen=True)
class Citation:
    """One [n] of an answer checked against passage n: made by rag.answer.citations from the passages'
    texts, then given the cited passage's source by rag.answer.generate."""

    n: int  # the passage number as written in the answer, [n]
    path: str  # the cited passage's source ("" when the answer cites a passage never given)
    page: int | None
    heading: tuple[str, ...]
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
    kind: str  # fact, code, quote (the passages' own words rag added), heading, question, refusal or short ("Here is how:")
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
    filters: Filters | None = None  # what the search was kept to (rag.filters)
    indexes: list[str] = field(default_factory=list)  # the indexes searched together, when several were
    no_match: str = ""  # the filters match nothing, so nothing was searched: why, in one line
    sentences: list[AnswerSentence] = field(default_factory=list)  # a written answer, sentence by sentence
    dropped_sentences: int = 0  # unsupported sentences left out (strict)


@dataclass(frozen=True)
class Failure:
    path: str
    reason: str
    unread_pages: int = 0  # the file is all scans and Tesseract is missing: how many pages


@dataclass(frozen=True)
class LeftOut:
    """A file read and found not to be content (a navigation or redirect page, an image without
    text): not indexed, not a failure."""

    path: str
    reason: str


ChangeKind = Literal["added", "updated", "renamed", "removed"]


@dataclass(frozen=True)
class Change:
    """One document an ingest changed: what `rag watch` prints a line for."""

    path: str
    kind: ChangeKind
    chunks: int = 0  # chunks stored for it
    embedded: int = 0  # of them, embedded in this run (the rest reused stored vectors)
    previous: str = ""  # a rename's old path


@dataclass
class IngestReport:
    index: str = ""
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    removed: int = 0
    renamed: int = 0  # moved or renamed files: same bytes, new path, chunks and vectors kept
    skipped: int = 0  # files of other types inside folders
    skipped_types: dict[str, int] = field(default_factory=dict)  # suffix -> files
    chunks: int = 0  # chunks written in this run
    reused: int = 0  # of them, chunks whose vector was already in the index (not embedded again)
    seconds: float = 0.0
    failures: list[Failure] = field(default_factory=list)
    failed: int = 0  # len(failures), kept as a field so --json shows it
    left_out: dict[str, int] = field(default_factory=dict)  # files read and left out, by reason
    unread_pages: int = 0  # scanned pages not read because Tesseract is missing
    changes: list[Change] = field(default_factory=list)

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
    partial_documents: int = 0  # committed in part by an ingest that stopped: the next one finishes them


@dataclass(frozen=True)
class Removal:
    removed: list[str]
    unknown: list[str]


class Embeds(Protocol):
    """Whatever embeds for an index: rag.embedding.embedder.Embedder on any runtime, or a stand-in.

    Ingest chunks with its tokenizer (chunks are measured in the model's word pieces and must fit
    `max_tokens`), embeds the chunks and records `id`, `runtime` and `dim` in the index; retrieval
    embeds questions with an embedder whose `id` and `dim` match what the index records.
    """

    name: str  # as the user gave it (a bundled alias, a path)
    id: str  # the identity an index records: bundled aliases collapse to one id, paths are absolute
    runtime: str  # the engine and precision that made the vectors (rag.runtimes), e.g. "onnx-fp32"

    @property
    def dim(self) -> int: ...

    @property
    def max_tokens(self) -> int:
        """The most word pieces the model reads of one text (it silently drops the rest)."""
        ...

    def embed_documents(self, texts: Sequence[str]) -> "np.ndarray":
        """(len(texts), dim) float32, L2-normalised, one row per text in input order."""
        ...

    def embed_query(self, text: str) -> "np.ndarray":
        """(dim,) float32, L2-normalised: the same vector embed_documents gives the text."""
        ...

    def token_offsets(self, texts: Sequence[str]) -> list[list[tuple[int, int]]]:
        """The character span of every word piece, per text, without special tokens."""
        ...
@dataclass(frozen=True)
class IndexCheck:
    """What `rag status --check` found: each part "ok" or what is wrong with it, and what to do."""

    index: str
    database: str  # SQLite's integrity check of rag.sqlite
    keyword_index: str  # FTS5's integrity check of the keyword index
    vectors: str  # the vector file against rag.sqlite (checksum, state, count, sampled vectors)
    repaired: list[str] = field(default_factory=list)  # what the check put right (vectors: rebuilt)
    ok: bool = True  # nothing left wrong
    advice: str = ""  # what to do when something is
