"""`Index`: the library API that every interface calls (the CLI, chat, the MCP and HTTP servers).

    from rag import Index, load_settings

    with Index.open(load_settings({"index_dir": "indexes"}), create=True) as index:
        index.ingest(["docs"])
        for hit in index.search("How do I rotate the keys?").hits: ...
        stream = index.answer("How do I rotate the keys?")   # iterate for pieces, then:
        answer = stream.result()
        index.search("...", filters=Filters.build(paths=["notes/**"], types="md"))  # one folder's Markdown
        index.search("...", also=[other])   # this index and `other` together (Index.open_together)

This is one of the two composition roots (with rag/terminal/cli.py): the only modules in `rag/` that may
import `ingest`. Opening is cheap: the embedding model and the vector file load on the first
search, so `status`, `ls` and `rm` never import torch or faiss, and neither does importing this
module. One Index may serve many threads: queries share one SQLite connection under a lock.

One module past 400 lines because it is the public API: each method is a short composition of
storage, retrieval, answer and ingest, where the work lives; splitting the class would split
what users import as `rag.Index`.
"""

from __future__ import annotations

import functools
import os
import threading
import time
from contextlib import ExitStack
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterable, Sequence, TypeVar

from rag.config import NO_CUTOFF, Settings, check_index_name
from rag.errors import ConfigError, RagError
from rag.filters import Filters, document_type
from rag.types import Embeds, IndexCheck, IndexStatus, IngestReport, Mode, Removal, Retrieval, StoredDocument

if TYPE_CHECKING:
    from ingest.chunk import ChunkSettings
    from ingest.pipeline import Progress
    from rag.answer.generate import AnswerStream
    from rag.answer.llm import LLM, Message
    from rag.map.build import MapOptions, MapReport
    from rag.retrieval.search import Retriever
    from rag.storage.store import Store


def limit_threads(threads: int) -> None:
    """Pin FAISS, numpy's BLAS (and torch, once loaded) to `threads` threads for answering questions.

    One question at a time gains little from a second thread on an idle machine and pays in
    scheduler waits on a busy one (bench/latency.py; bench/RESULTS.md, "One thread per question").
    Process-wide, so it is the caller's choice (the CLI makes it), never a side effect of opening.
    """
    import sys

    if "numpy" in sys.modules:  # numpy's BLAS (the numpy-fp32 question runtime) sized its pool at import
        from threadpoolctl import threadpool_limits

        threadpool_limits(threads, user_api="blas")
    else:  # OpenBLAS sizes its pool from this when numpy loads (here, with faiss)
        os.environ["OPENBLAS_NUM_THREADS"] = str(threads)
    import faiss

    faiss.omp_set_num_threads(threads)
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(threads)
    else:  # torch sizes its pool from this when it first loads
        os.environ["OMP_NUM_THREADS"] = str(threads)


Method = TypeVar("Method", bound=Callable)


def _storage_boundary(method: Method) -> Method:
    """SQLite and OS errors on the index's files become one line naming the index and the remedy
    (rag.storage.problems): the CLI prints it, the servers send it with a clean status."""

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        from rag.storage.problems import storage_errors

        with storage_errors(self.path):
            return method(self, *args, **kwargs)

    return wrapper  # type: ignore[return-value]


class Index:
    def __init__(self, settings: Settings, store: Store | None, create: bool = False):
        self.settings = settings
        self._store = store
        self._create = create
        self._retriever: Retriever | None = None
        self._lock = threading.RLock()

    # -- opening and closing --------------------------------------------------------------------

    @classmethod
    def open(cls, settings: Settings, *, create: bool = False, own_model: bool = False) -> "Index":
        """The index at `settings.index_path`; `create` makes an empty one when there is none.

        `own_model` asks questions in the embedding model the index was built with, whatever
        `settings.embed_model` says (what searching several indexes together needs: one setting
        cannot name each index's model)."""
        from rag.storage.problems import storage_errors
        from rag.storage.store import DB_NAME, Store

        if create and not (settings.index_path / DB_NAME).exists():
            # made by the first ingest, once its settings are known to be valid: a mistyped flag
            # must not leave an empty index behind
            return cls(settings, None, create=True)
        with storage_errors(settings.index_path):
            store = Store.open(settings.index_path)
            built_with = store.get_meta("embed_model") if own_model else None
        return cls(replace(settings, embed_model=built_with) if built_with else settings, store)

    @classmethod
    def open_together(cls, settings: Settings, names: Sequence[str]) -> list["Index"]:
        """The indexes `names` under `settings.index_dir`, to search together (the first one's
        `search(..., also=rest)`): each asks in its own embedding model. One name opens as `open`."""
        names = list(dict.fromkeys(names))
        if not names:
            raise ConfigError("name at least one index to search")
        for name in names:
            check_index_name(name)
        if len(names) == 1:
            return [cls.open(replace(settings, index=names[0]))]
        opened: list[Index] = []
        try:
            for name in names:
                opened.append(cls.open(replace(settings, index=name), own_model=True))
        except BaseException:
            for index in opened:
                index.close()
            raise
        return opened

    @property
    def path(self) -> Path:
        return self.settings.index_path

    @property
    def name(self) -> str:
        return self.settings.index

    @property
    def _db(self) -> Store:
        """The store, made on first use when `create` (the first ingest's settings are valid by then)."""
        from rag.storage.store import Store

        if self._store is None:
            self._store = Store.open(self.path, create=self._create)
        return self._store

    def close(self) -> None:
        with self._lock:
            if self._store is not None:
                self._store.close()
                self._store = None
            self._retriever = None

    def __enter__(self) -> "Index":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- writing -----------------------------------------------------------------------------------

    @_storage_boundary
    def ingest(
        self,
        paths: Iterable[str | os.PathLike],
        *,
        chunking: ChunkSettings | None = None,
        prune: bool = True,
        rebuild: bool = False,
        progress: Progress | None = None,
        chunk_tokens: int | None = None,
        overlap_tokens: int | None = None,
        ray_address: str | None = None,
    ) -> IngestReport:
        """Index files and folders incrementally.

        Chunk settings: `chunk_tokens`/`overlap_tokens` (each alone), then `chunking`, then the
        index's own, then the defaults. An index built with other settings needs `rebuild=True`.
        `ray_address` (`local`, `auto` or HOST:PORT; default: the setting) loads, chunks and embeds
        changed files on a Ray cluster (ingest/distributed.py); this process still writes.
        """
        from ingest.chunk import ChunkSettings
        from ingest.pipeline import run_ingest, stored_chunk_settings

        paths = [Path(p) for p in paths]
        if not paths:
            raise ConfigError("nothing to ingest: name at least one file or folder")
        missing = [str(p) for p in paths if not p.exists() and not p.is_symlink()]
        if missing:
            raise RagError(f"no such file or folder: {', '.join(missing)}")
        stored = stored_chunk_settings(self._store) if self._store is not None else None
        base = chunking or stored or ChunkSettings()
        chunking = ChunkSettings(  # validated here, before the index folder is made
            chunk_tokens=base.chunk_tokens if chunk_tokens is None else chunk_tokens,
            overlap_tokens=base.overlap_tokens if overlap_tokens is None else overlap_tokens,
        )
        ray_address = ray_address or self.settings.ray_address
        with self._lock:
            embedder = self._embedder_for_ingest()
            reader = self._ray_reader(ray_address, embedder, chunking) if ray_address else None
            try:  # joined before the store is opened: an unreachable cluster leaves nothing written
                report = run_ingest(paths, self._db, embedder, chunking, prune=prune, rebuild=rebuild,
                                    progress=progress, reader=reader)
            finally:
                if reader is not None:
                    reader.close()
            changed = bool(report.added or report.updated or report.removed)
            self._calibrate(embedder, changed)
        return report

    def _calibrate(self, embedder: Embeds, changed: bool) -> None:
        """Re-measure the relevance cut-off's calibration (rag.retrieval.relevance) when the ingest changed
        the index, or once for an index that has none (built by an older rag)."""
        from rag.retrieval.relevance import META_KEY, Calibration
        from rag.retrieval.search import Retriever

        store = self._db
        if store.chunk_count() == 0:
            return
        current = Calibration.from_json(store.get_meta(META_KEY))
        if current is not None and (not changed or current.generation == store.generation):
            return
        calibration = Retriever.open(self.settings, store, embedder).measure_calibration()
        with store.transaction(bump=False):
            store.set_meta(META_KEY, calibration.to_json())
        if self._retriever is not None:
            self._retriever.calibration = calibration

    @staticmethod
    def _ray_reader(address: str, embedder: Embeds, chunking: ChunkSettings):
        from ingest.distributed import RayReader, WorkerSpec
        from rag.config import version

        spec = WorkerSpec(embedder.id, embedder.runtime, version(), chunking)
        return RayReader.connect(address, spec)

    @_storage_boundary
    def remove(self, paths: Iterable[str | os.PathLike]) -> Removal:
        """Forget documents; a folder names every document under it. Holds the writer lock."""
        from rag.storage import vectors

        removed: list[str] = []
        unknown: list[str] = []
        with self._lock, self._db.writer_lock():
            doomed: list[str] = []
            for given in paths:
                matches = self._db.documents_under(os.path.abspath(given))
                if not matches:
                    unknown.append(str(given))
                doomed += [p for p in matches if p not in doomed]
            if doomed:  # nothing to remove: leave the generation (and so the vector file) alone
                with self._db.transaction():
                    removed = [path for path in doomed if self._db.delete_document(path)]
            vectors.refresh_file(self._db)
        return Removal(removed=removed, unknown=unknown)

    # -- reading -----------------------------------------------------------------------------------

    @_storage_boundary
    def documents(self) -> list[StoredDocument]:
        with self._lock:
            return self._db.documents()

    @_storage_boundary
    def status(self) -> IndexStatus:
        from ingest.pipeline import PARSER_VERSION

        with self._lock, self._db.snapshot():
            docs = self._db.documents()
            meta = {key: self._db.get_meta(key) for key in
                    ("embed_model", "dim", "chunk_tokens", "overlap_tokens", "last_ingest")}
            chunks = self._db.chunk_count()
            roots = self._db.roots()
        bound = chunks > 0  # an index whose first ingest failed is bound to no model yet

        def number(key: str) -> int | None:
            return int(meta[key]) if bound and meta[key] else None

        last = meta["last_ingest"]
        return IndexStatus(
            index=str(self.path),
            documents=len(docs),
            chunks=chunks,
            pages=sum(d.pages or 0 for d in docs),
            model=meta["embed_model"] if bound else None,
            runtime=self._db.embed_runtime if bound else None,
            dim=number("dim"),
            chunk_tokens=number("chunk_tokens"),
            overlap_tokens=number("overlap_tokens"),
            size_bytes=self._db.size_on_disk(),
            last_ingest=time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(float(last))) if last else None,
            outdated_documents=sum(d.parser < PARSER_VERSION for d in docs),
            roots=roots,
            partial_documents=sum(not d.complete for d in docs),
        )

    @_storage_boundary
    def check(self) -> IndexCheck:
        """SQLite's integrity check, FTS5's, and the vector file read whole against SQLite; a wrong
        vector file is rebuilt on the spot (rag.storage.check). Holds the writer lock."""
        from rag.storage.check import check_store

        import shlex

        from rag.config import DEFAULT_INDEX, DEFAULT_INDEX_DIR

        command = " ".join(["rag ingest", *map(shlex.quote, self._db.roots() or ["PATH"])]
                           + ([f"--index {shlex.quote(self.settings.index)}"] if self.settings.index != DEFAULT_INDEX else [])
                           + ([f"--index-dir {shlex.quote(str(self.settings.index_dir))}"]
                              if self.settings.index_dir != Path(DEFAULT_INDEX_DIR) else []))
        with self._lock, self._db.writer_lock():
            report = check_store(self._db, command)
            if report.repaired:
                self._retriever = None  # reload what was rebuilt
            return report

    @_storage_boundary
    def search(
        self,
        question: str,
        *,
        top_k: int | None = None,
        mode: Mode = "hybrid",
        min_score: float | None = None,
        cutoff: bool = True,
        filters: Filters | None = None,
        also: Sequence["Index"] = (),
    ) -> Retrieval:
        """The `top_k` best passages (`top_k` None: the setting).

        The "not covered" cut-off (rag.retrieval.relevance) applies with the floor `min_score`
        (None: the setting); `cutoff=False` turns it off and returns the best passages whatever
        they score (what evaluation and `rag map` need).

        `filters` (rag.filters) keep the search to the documents and pages they match; when they
        match none, nothing is searched and `Retrieval.no_match` says so. `also` searches other
        indexes together with this one, each in its own model and with its own cut-off, on one
        scale (rag.retrieval.together); every hit then names its index.
        """
        if not question or not question.strip():
            raise ConfigError("the question is empty")
        top_k = self.settings.top_k if top_k is None else top_k
        self._check_top_k(top_k)
        self._check_filters(filters)
        floor = self.settings.min_score if min_score is None else min_score
        floor = floor if cutoff else NO_CUTOFF
        together = [self] + [other for other in also if other.path != self.path]
        if len(together) == 1:
            # Embedding the question is most of a search's CPU and needs no lock (every runtime is
            # safe to call from several threads), so concurrent questions (rag serve, rag mcp) embed
            # side by side and take turns only for SQLite and FAISS.
            vector = self._searcher().embed(question)
            with self._lock:
                retriever = self._searcher()  # again: a repair or close may have replaced it meanwhile
                retriever.refresh()  # pick up what an ingest committed since the last question
                return retriever.search(question, top_k, mode, min_score=floor, filters=filters, query_vector=vector)
        from rag.retrieval.together import search_together
        from rag.storage.problems import storage_errors

        with ExitStack() as held:
            for index in sorted(together, key=lambda index: str(index.path)):  # one order: no deadlock
                held.enter_context(index._lock)
            searchers = []
            for index in together:
                with storage_errors(index.path):  # a problem with another index names that index
                    retriever = index._searcher()
                    retriever.refresh()
                searchers.append((index.name, retriever))
            return search_together(searchers, question, top_k, mode, min_score=floor, filters=filters)

    def answer(
        self,
        question: str,
        *,
        llm: LLM | None = None,
        history: Sequence[Message] = (),
        top_k: int | None = None,
        mode: Mode = "hybrid",
        min_score: float | None = None,
        cutoff: bool = True,
        filters: Filters | None = None,
        also: Sequence["Index"] = (),
        strict: bool | None = None,
    ) -> AnswerStream:
        """Retrieve and answer; `history` (earlier user/assistant messages) makes it a follow-up.

        With an `llm` the answer is written by it, and grounded: each factual sentence cited by a
        passage that supports it, or marked [unsupported]; `strict` (None: the setting) leaves
        those out. Without an `llm` it is extractive. A follow-up is condensed into a standalone
        question first (through the LLM when there is one). `filters` and `also` are search's:
        the answer is made from the passages they keep.
        """
        from rag.answer.generate import AnswerStream, condense

        self._check_filters(filters)  # before the LLM is asked to condense anything
        standalone = condense(question, history, llm) if history else question
        retrieval = self.search(standalone, top_k=top_k, mode=mode, min_score=min_score, cutoff=cutoff,
                                filters=filters, also=also)
        return AnswerStream(standalone, retrieval, llm, history, strict=self.settings.strict if strict is None else strict)

    @_storage_boundary
    def warm_up(self) -> None:
        """Load what the first question would: the vector file, the calibration and the embedding
        model, and embed once. Chat, `rag serve` and `rag mcp` call it before they take questions."""
        with self._lock:
            searcher = self._searcher()
            searcher.refresh()
            searcher.embedder.embed_query("warm up")

    @_storage_boundary
    def map(self, options: MapOptions) -> MapReport:
        """Write a map of the index's embeddings (rag.map); a `query` on it is searched through
        `search` with the cut-off off, in the model and runtime the index was built with."""
        from rag.map.build import Query, build_map

        def search(question: str, top_k: int, mode: Mode) -> Retrieval:
            return self.search(question, top_k=top_k, mode=mode, cutoff=False)

        def embed(question: str):
            return self._searcher().embedder.embed_query(question)

        with self._lock:
            return build_map(self._db, Query(search, embed) if options.query else None, options)

    @staticmethod
    def names(index_dir: str | os.PathLike) -> list[str]:
        """The indexes under `index_dir`: each folder holding an index database."""
        from rag.storage.store import DB_NAME

        folder = Path(index_dir)
        if not folder.is_dir():
            return []
        return sorted(p.name for p in folder.iterdir() if not p.name.startswith(".") and (p / DB_NAME).is_file())

    @staticmethod
    def reads(path: str | os.PathLike) -> bool:
        """Whether `rag` reads this kind of file (by its name)."""
        from ingest.formats import loader_for

        return loader_for(Path(path)) is not None

    def llm(self) -> LLM | None:
        """The LLM the settings configure, or None (extractive answers)."""
        from rag.answer.llm import LLM

        return LLM(self.settings) if self.settings.llm_configured else None

    def _searcher(self) -> Retriever:
        """The retriever, loading the model and the vector file on first use."""
        from rag.retrieval.search import Retriever

        with self._lock:
            if self._retriever is None:
                store = self._db
                self._retriever = Retriever.open(self.settings, store, self._query_embedder())
            return self._retriever

    # -- internals ---------------------------------------------------------------------------------

    @staticmethod
    def _check_filters(filters: Filters | None) -> None:
        """Types `rag` never reads are a mistake to name, not a filter that quietly matches nothing."""
        if filters is None or not filters.types:
            return
        from ingest.formats import LOADERS

        known = {document_type("file" + suffix) for suffix in LOADERS} | {"rst"}
        unknown = [kind for kind in filters.types if kind not in known]
        if unknown:
            raise ConfigError(f"--type {','.join(unknown)}: rag reads no such files; it reads "
                              f"{', '.join(sorted(known))}")

    def _check_top_k(self, top_k: int) -> None:
        from rag.config import MAX_SEARCH_K

        if not 1 <= top_k <= MAX_SEARCH_K:
            raise ConfigError(f"top-k must be between 1 and {MAX_SEARCH_K} (got {top_k})")

    def _query_embedder(self) -> Embeds:
        """The embedding model questions go through: the index's model in the runtime it was built
        with (vectors of one runtime only), loaded lazily."""
        from rag.embedding.embedder import get_embedder

        runtime = self._runtime(query=True)
        # exported runtimes take their thread count per session; torch's is process-wide, the
        # caller's to set (limit_threads)
        return get_embedder(self.settings.embed_model, runtime.name,
                            threads=self.settings.query_threads if runtime.exported else None)

    def _embedder_for_ingest(self) -> Embeds:
        from rag.embedding.embedder import get_embedder

        return get_embedder(self.settings.embed_model, self._runtime(query=False).name)

    def _runtime(self, query: bool):
        """For an ingest: the index's recorded runtime once it holds vectors, unless another is
        asked for (which the ingest then refuses); else the setting. For questions: the query
        runtime for the recorded one and the query_backend setting (rag.runtimes.query_runtime)."""
        from rag.runtimes import is_auto, parse_runtime, query_runtime

        if self._store is not None and self._store.chunk_count():
            stored = parse_runtime(self._store.embed_runtime)
            if query:
                return query_runtime(stored, self.settings.query_backend)
            if is_auto(self.settings.embed_backend):
                return stored
        return parse_runtime(self.settings.embed_backend)
