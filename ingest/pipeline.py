"""The ingest run: diff files against the store, load and chunk what changed, embed in batches,
commit each batch in one transaction, prune vanished files, then rebuild the vector file.

Invariants: a document that fits one batch (almost all) is committed with all its chunks or not
at all; a larger one streams through the embedder and is committed batch by batch, marked
partial until its last chunk is in, so memory stays bounded for a file of any size and a kill
-9 loses at most the batch in flight (the next ingest carries on from its last committed chunk).
A file that fails to load keeps whatever version of it was indexed before. Every failure of a
loader (any exception, recursion included) is that file's, named in the report; only the run's
own faults (the store, the embedder) stop the run. Only regular files are opened. The vector
file is replaced only after everything is committed (and is rebuilt by readers if a crash
leaves it stale). The model is touched (and so loaded) only when something is chunked or
embedded: a re-ingest of unchanged files never imports torch.

One module past 400 lines because the diff, `Batch` (what each transaction commits, partial
documents) and pruning write through one Store in one order, and the invariants above are about
that order; the Ray reader is already elsewhere (ingest.distributed).
"""

from __future__ import annotations

import hashlib
import os
import time
from dataclasses import dataclass, replace
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING, Iterator, Protocol

from ingest.chunk import ChunkSettings, iter_chunks
from ingest.discover import Discovery, describe_os_error, discover, not_regular
from ingest.formats import loader_for, page_kind_for
from rag.errors import NeedsOCR, NotContent, unread_message
from ingest.formats.text import short
from rag.storage import vectors
from rag.errors import IndexMismatch, LoadError, RagError
from rag.storage.store import Store, is_under
from rag.text import text_key
from rag.types import Change, Chunk, Document, Embeds, Failure, IngestReport, LeftOut

if TYPE_CHECKING:
    import numpy as np

# Bumped whenever the loaders or the chunker turn the same file into different chunks: a document
# read by an older version is read again on the next ingest even though the file did not change,
# so upgrading rag improves an index without --rebuild. 2: HTML site chrome left out, PDF
# bookmarks as heading paths. 3: tables as labelled rows (HTML, docx, odt, pptx); chunks never
# begin or end inside a signature, a code line or a table row; PDF words from PDFium (word spaces
# kept, scans read by OCR); navigation and redirect pages left out. 4: HTML pagers left out and
# <pre> lines never cut; PDF running headers, footers and page numbers left out; reST targets,
# comments and highlight directives not read; no chunk of a page's title alone, nor one inside
# the chunk before it. 5: a word a <pre> line end breaks with a hyphen is read whole (and a name
# with an underscore a PDF line end breaks). 6: a block (code, a doctest, a run of prompts, a
# table) of at most half a chunk is never cut inside. 7: a manual page in a <pre> is cut at its
# section headings; a term with its description (an option) is such a block, and a chunk that
# begins inside a longer one is read under the term. 8: a list item's first line is no such
# term (814 Python docs chunks were read under "* The sort routines use ``<`` when making ...").
# 9: Markdown's HTML comments and link reference definitions are not read.
PARSER_VERSION = 9
BATCH_CHUNKS = 256  # chunks embedded and committed together: bounds memory and crash loss
MAX_FILE_BYTES = 512 * 1024 * 1024  # a bigger file is refused before it is read
# Chunks made as a file is read (in the reader's thread); a document with more streams the rest
# through the batches as they commit, so it never sits in memory as chunks whole.
CHUNKS_AHEAD = BATCH_CHUNKS


class Progress(Protocol):
    def start(self, files: int) -> None: ...
    def file_done(self) -> None: ...
    def embedded(self, chunks: int) -> None: ...
    def failure(self, path: str, reason: str) -> None: ...
    def finish(self) -> None: ...
    # Optional, called only when present (a distributed reader reports its workers):
    # def workers(self, busy: int, total: int) -> None: ...
    # def notice(self, message: str) -> None: ...
    # def partly_read(self, path: str, reason: str) -> None: ...  (indexed, but pages went unread)


class SilentProgress:
    def start(self, files: int) -> None: ...
    def file_done(self) -> None: ...
    def embedded(self, chunks: int) -> None: ...
    def failure(self, path: str, reason: str) -> None: ...
    def finish(self) -> None: ...


@dataclass
class Pending:
    """A loaded and chunked document waiting for its embeddings."""

    doc: Document
    chunks: list[Chunk]  # every chunk when `more` is None; else the first ones
    existed: bool
    embeddings: np.ndarray | None = None  # computed by the reader (a Ray worker); else by _commit
    more: Iterator[Chunk] | None = None  # the rest of a large document, made as the batches commit
    resume_from: int = 0  # chunks a stopped ingest committed already: made again, not embedded
    document_id: int | None = None  # the stored document the chunks go to, once it is begun
    reuse: dict | None = None  # embedding-cache key -> stored vector of its old chunks (an edited file)
    stored_chunks: int = 0  # written so far, over all its batches
    embedded_chunks: int = 0  # of them, embedded (not reused)


# -- the reader seam: the driver diffs, a reader loads, chunks (and may embed) what changed -------


@dataclass
class Changed:
    """A file whose bytes differ from what is stored, read on the driver: all a reader needs to
    load it on any machine. `data` is emptied once the file is loaded (bounds memory per file)."""

    path: Path
    data: bytes
    stat: os.stat_result
    digest: str
    existed: bool
    resume_from: int = 0  # a partial document of these very bytes: its chunks committed so far
    document_id: int | None = None  # that partial document's id
    # embedding-cache keys the index already holds vectors for (this path's old chunks and any
    # document with the same bytes): a reader that embeds (a Ray worker) may skip those chunks
    known: frozenset[str] = frozenset()


class Reader(Protocol):
    """Turns changed files into Pending documents, Failures or LeftOuts, yielding each as it finishes (in
    any order). It takes the next file from `changed` only when it can start it: that bounds how
    many files' bytes and results are in flight."""

    def read(self, changed: Iterator[Changed], progress: Progress) -> Iterator[Pending | Failure]: ...


READ_AHEAD = 4  # files loaded and chunked ahead of the one being committed
READ_AHEAD_BYTES = 64 * 1024 * 1024  # and no more of their bytes than this (at least one file)


class LocalReader:
    """Load and chunk in this process; _commit embeds in batches.

    With an embedder whose tokenizer may serve two threads at once (the exported runtimes keep a
    separate tokenizer for the chunker), the next files are loaded and chunked in a second
    thread while the encoder embeds the batch before them, so the encoder never waits on a
    parser. That thread also tokenizes the chunks as the model will read them
    (`tokenize_ahead`), so the thread feeding the encoder does not stop its streams to do it. The
    diff itself (which may write to SQLite) stays on the calling thread, and results come back in
    file order. torch's tokenizer is reconfigured on every call, so there it stays sequential.
    """

    def __init__(self, embedder: Embeds, chunking: ChunkSettings, read_ahead: int = READ_AHEAD):
        self.embedder = embedder
        self.chunking = chunking
        self.read_ahead = read_ahead if getattr(embedder, "concurrent_tokenizer", False) else 0

    def read(self, changed: Iterator[Changed], progress: Progress) -> Iterator[Pending | Failure]:
        if not self.read_ahead:
            for item in changed:
                yield prepare(item, self.embedder, self.chunking, CHUNKS_AHEAD)
            return
        from collections import deque
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="rag-read") as pool:
            waiting: deque = deque()
            in_flight = 0
            for item in changed:
                size = len(item.data)
                waiting.append((size, pool.submit(self._prepare_ahead, item)))
                in_flight += size
                while waiting and (len(waiting) > self.read_ahead or in_flight > READ_AHEAD_BYTES):
                    done, result = waiting.popleft()
                    in_flight -= done
                    yield result.result()
            while waiting:
                yield waiting.popleft()[1].result()

    def _prepare_ahead(self, item: Changed) -> Pending | Failure | LeftOut:
        pending = prepare(item, self.embedder, self.chunking, CHUNKS_AHEAD)
        tokenize_ahead = getattr(self.embedder, "tokenize_ahead", None)  # a stand-in embedder may have none
        if isinstance(pending, Pending) and tokenize_ahead is not None:
            tokenize_ahead([chunk.embed_text for chunk in pending.chunks])
        return pending


def prepare(item: Changed, embedder: Embeds, chunking: ChunkSettings,
            chunks_ahead: int | None = None) -> Pending | Failure | LeftOut:
    """Load and chunk one changed file, wherever it runs; a file that cannot be read is a Failure,
    one that is not content (navigation, an image without text) is a LeftOut.

    With `chunks_ahead`, only that many chunks are made here; the rest come from `more` as the
    ingest commits. Whatever a loader or the chunker raises is this file's failure, named.
    """
    data, item.data = item.data, b""
    try:
        doc = load_document(item.path, data, item.stat, item.digest)
        del data
        stream = iter_chunks(doc.title, doc.sections, embedder.token_offsets, embedder.max_tokens, chunking)
        chunks = list(stream if chunks_ahead is None else islice(stream, chunks_ahead))
        if not chunks:
            raise LoadError("no text to index")
    except NotContent as exc:
        return LeftOut(str(item.path), str(exc))
    except NeedsOCR as exc:
        return Failure(str(item.path), str(exc), unread_pages=exc.pages)
    except LoadError as exc:
        return Failure(str(item.path), _reason(exc))
    except RagError:  # the run's own fault (the model cannot load, say): no file is to blame
        raise
    except Exception as exc:  # noqa: BLE001 - a loader's bug or a hostile file costs that file only
        return Failure(str(item.path), _reason(exc))
    more = stream if chunks_ahead is not None and len(chunks) == chunks_ahead else None
    # the sections live on in `more` while it streams; the Pending itself needs only the metadata
    return Pending(replace(doc, sections=[]), chunks, item.existed, more=more, resume_from=item.resume_from,
                   document_id=item.document_id)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, LoadError):
        return str(exc)
    if isinstance(exc, OSError):
        return describe_os_error(exc)
    if isinstance(exc, UnicodeError):  # a name or text the tokenizer or SQLite cannot take
        return f"cannot read it as text ({getattr(exc, 'reason', exc)})"
    if isinstance(exc, RecursionError):
        return "nested too deeply to read (RecursionError)"
    if isinstance(exc, MemoryError):
        return "too large to read in memory (MemoryError)"
    return f"could not be read ({type(exc).__name__}: {short(exc)})"


def check_settings(store: Store, model_id: str, chunking: ChunkSettings, rebuild: bool,
                   embedder_runtime: str = "torch") -> None:
    """Refuse to mix embedding models or chunk settings within one index.

    An index that holds no chunk yet is bound to nothing: a first ingest that failed (a typo in
    --embed-model) must not tie the index to what it asked for.
    """
    if store.chunk_count() == 0:
        return
    stored_model = store.get_meta("embed_model")
    if stored_model is not None and stored_model != model_id:
        raise IndexMismatch(
            f"the index at {store.root} was built with {stored_model}, not {model_id}: "
            f"use --embed-model {stored_model}, or another --index"
        )
    stored_runtime = store.embed_runtime
    runtime = embedder_runtime
    if runtime != stored_runtime:
        raise IndexMismatch(
            f"the index at {store.root} was embedded with the {stored_runtime} runtime, not {runtime}: "
            f"use --embed-backend {stored_runtime} (or auto), or another --index"
        )
    stored = (store.get_meta("chunk_tokens"), store.get_meta("overlap_tokens"))
    wanted = (str(chunking.chunk_tokens), str(chunking.overlap_tokens))
    if stored_model is not None and stored != wanted and not rebuild:
        raise IndexMismatch(
            f"the index at {store.root} uses --chunk-tokens {stored[0]} --overlap-tokens {stored[1]}: "
            f"pass those, or add --rebuild to re-chunk every document"
        )


def _record_settings(store: Store, embedder: Embeds, chunking: ChunkSettings, dim: int) -> None:
    """Bind the index to its model and chunking; inside the transaction of the first embeddings."""
    store.set_meta("embed_model", embedder.id)
    store.set_meta("embed_runtime", embedder.runtime)
    store.set_meta("dim", str(dim))
    store.set_meta("chunk_tokens", str(chunking.chunk_tokens))
    store.set_meta("overlap_tokens", str(chunking.overlap_tokens))


def stored_chunk_settings(store: Store) -> ChunkSettings | None:
    tokens, overlap = store.get_meta("chunk_tokens"), store.get_meta("overlap_tokens")
    if tokens is None or overlap is None or store.chunk_count() == 0:
        return None
    return ChunkSettings(int(tokens), int(overlap))


def load_document(path: Path, data: bytes, st: os.stat_result, digest: str) -> Document:
    loader = loader_for(path)
    if loader is None:
        raise LoadError(f"unsupported file type {path.suffix or '(none)'}")
    title, sections, pages, *unread = loader(path, data)
    return Document(path=path, title=title, sections=sections, content_hash=digest,
                    mtime=st.st_mtime, size=st.st_size, pages=pages, parser=PARSER_VERSION,
                    page_kind=page_kind_for(path), unread_pages=sum(unread))


def run_ingest(
    paths: list[Path],
    store: Store,
    embedder: Embeds,
    chunking: ChunkSettings,
    prune: bool = True,
    rebuild: bool = False,
    progress: Progress | None = None,
    reader: Reader | None = None,
) -> IngestReport:
    """`reader` loads and chunks what changed (default: LocalReader, in this process); whatever it
    is, this process diffs, and is the one SQLite writer, committing in the same batches."""
    progress = progress or SilentProgress()
    reader = reader or LocalReader(embedder, chunking)
    started = time.perf_counter()
    report = IngestReport(index=str(store.root))
    with store.writer_lock():
        check_settings(store, embedder.id, chunking, rebuild, embedder.runtime)
        previous = stored_chunk_settings(store)
        found = discover(paths)
        report.skipped = found.skipped
        report.skipped_types = dict(found.skipped_types)
        for path, reason in found.problems:
            _fail(report, progress, path, reason)
        known = {doc.path: doc for doc in store.documents()}
        if rebuild and previous not in (None, chunking):
            # the settings are the index's, not one file's: re-chunk what was not named this time too
            named = set(found.files)
            found.files += [Path(p) for p in known if Path(p) not in named]
        progress.start(len(found.files))
        try:
            _ingest_files(found, known, store, embedder, chunking, rebuild, report, progress, reader)
            if prune and found.roots:
                _prune(store, found, known, report)
            vectors.refresh_file(store)
            # a folder, or a named file now in the index: a path that failed (a device, a
            # corrupt PDF) leaves no root behind for labels to be relative to
            roots = [p for p in paths if Path(os.path.abspath(p)) in found.roots
                     or store.document(os.path.abspath(p)) is not None]
            with store.transaction(bump=False):
                store.add_roots(roots)
                store.set_meta("last_ingest", str(time.time()))
        finally:
            progress.finish()  # a live display must never outlive the run, even on Ctrl-C
    report.failed = len(report.failures)
    report.seconds = time.perf_counter() - started
    return report


def _ingest_files(found: Discovery, known, store: Store, embedder: Embeds, chunking: ChunkSettings, rebuild: bool,
                  report: IngestReport, progress: Progress, reader: Reader) -> None:
    batch = Batch(store, embedder, chunking, report, progress)
    changed = _changed(found, known, store, rebuild, report, progress)
    for pending in reader.read(changed, progress):
        if isinstance(pending, Failure):
            _fail(report, progress, pending.path, pending.reason, pending.unread_pages)
            progress.file_done()
            continue
        if isinstance(pending, LeftOut):
            _leave_out(store, known, pending, report)
            progress.file_done()
            continue
        batch.feed(pending)
    batch.commit()


def _changed(found: Discovery, known, store: Store, rebuild: bool, report: IngestReport,
             progress: Progress) -> Iterator[Changed]:
    """The files that changed, read one at a time as the reader asks for them."""
    by_content: dict[str, list[str]] = {}
    for doc in known.values():
        by_content.setdefault(doc.content_hash, []).append(doc.path)
    for path in found.files:
        item = _diff(path, known.get(str(path)), store, rebuild, report, progress, by_content)
        if item is None:
            progress.file_done()
            continue
        yield item


def read_regular(path: Path) -> tuple[bytes, os.stat_result]:
    """A regular file's bytes and its stat, read through one descriptor: opened without blocking
    (a FIFO swapped in since discovery cannot hang us) and refused unless it is a regular file."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    with os.fdopen(fd, "rb") as handle:
        st = os.fstat(handle.fileno())
        problem = not_regular(st.st_mode) or ("a folder" if os.path.isdir(path) else None)
        if problem:
            raise LoadError(problem)
        if st.st_size > MAX_FILE_BYTES:
            raise LoadError(f"file is {st.st_size / 2**20:.0f} MB, over the {MAX_FILE_BYTES / 2**20:.0f} MB limit")
        data = handle.read(MAX_FILE_BYTES + 1)  # a file still growing stops at the limit too
    if len(data) > MAX_FILE_BYTES:
        raise LoadError(f"file grew past the {MAX_FILE_BYTES / 2**20:.0f} MB limit while it was read")
    return data, st


def _diff(path: Path, stored, store: Store, rebuild: bool, report: IngestReport,
          progress: Progress, by_content: dict[str, list[str]]) -> Changed | None:
    """The file's bytes when it changed, or None when it is unchanged, renamed or failed (and so
    reported)."""
    key = str(path)
    try:
        st = path.stat()
        current = stored is not None and not rebuild and stored.parser == PARSER_VERSION
        if current and stored.complete and stored.size == st.st_size and stored.mtime == st.st_mtime:
            report.unchanged += 1
            return None
        data, st = read_regular(path)
        digest = hashlib.sha256(data).hexdigest()
        if current and stored.content_hash == digest:
            if not stored.complete:  # a stopped ingest committed part of these very bytes: carry on
                return Changed(path, data, st, digest, True, resume_from=stored.chunks, document_id=stored.id)
            with store.transaction(bump=False):
                store.touch_document(key, st.st_mtime, st.st_size)
            report.unchanged += 1
            return None
        if stored is None and not rebuild and (old := _moved_from(by_content.get(digest, []), store)):
            with store.transaction():
                store.rename_document(old, key, st.st_mtime, st.st_size)
            by_content[digest].remove(old)
            report.renamed += 1
            report.changes.append(Change(key, "renamed", previous=old))
            return None
    except (LoadError, OSError, UnicodeError, MemoryError) as exc:
        _fail(report, progress, path, _reason(exc))
        return None
    known = set(store.chunk_keys(key)) if stored is not None else set()
    for twin in by_content.get(digest, [])[:1]:  # a copy: the same bytes stored under another path
        known.update(store.chunk_keys(twin))
    return Changed(path, data, st, digest, stored is not None, known=frozenset(known))


def _moved_from(same_bytes: list[str], store: Store) -> str | None:
    """A stored document with these bytes whose file is gone, read by the current loaders: the
    file was renamed or moved, and keeps its chunks and vectors."""
    for old in same_bytes:
        doc = store.document(old)
        if doc is not None and doc.complete and doc.parser == PARSER_VERSION and not os.path.lexists(old):
            return old
    return None


@dataclass
class Segment:
    """Some consecutive chunks of one document, committed together with other documents' chunks."""

    pending: Pending
    chunks: list[Chunk]
    last: bool  # the document is complete once these are in
    embeddings: np.ndarray | None = None  # from the reader (a Ray worker), when it embedded


class Batch:
    """Up to BATCH_CHUNKS chunks of one or more documents, embedded and committed in one transaction.

    A document larger than the room left is cut across batches: its chunks are pulled from its
    stream only as batches fill, so what is in memory is one batch plus the chunker's window.
    """

    def __init__(self, store: Store, embedder, chunking: ChunkSettings, report: IngestReport, progress: Progress):
        self.store, self.embedder, self.chunking = store, embedder, chunking
        self.report, self.progress = report, progress
        self.segments: list[Segment] = []
        self.size = 0

    def feed(self, pending: Pending) -> None:
        if pending.existed and pending.reuse is None and pending.document_id is None:
            # its old chunks' vectors, before its first batch replaces them: unchanged sections reuse them
            pending.reuse = self.store.cached_embeddings(self.store.chunk_keys(str(pending.doc.path)),
                                                         self.embedder.dim)
        stream = iter(pending.chunks) if pending.more is None else _chain(pending.chunks, pending.more)
        pending.chunks = []  # the stream holds them now
        try:  # only pulling chunks is this file's risk; a failing commit is the run's and propagates
            upcoming = _next_to_embed(stream, pending.resume_from)
        except Exception as exc:  # noqa: BLE001 - the chunker failed on a later part of this file
            self._drop(pending, _reason(exc))
            return
        if upcoming is None:  # everything was committed before the stop; only the mark is missing
            self._add(Segment(pending, [], True))
        while upcoming is not None:
            try:
                part = [upcoming, *_take(stream, BATCH_CHUNKS - self.size - 1)]
                upcoming = next(stream, None)
            except Exception as exc:  # noqa: BLE001
                self._drop(pending, _reason(exc))
                return
            # a reader's embeddings cover every chunk, those committed before a stop included
            vectors = None if pending.embeddings is None else \
                pending.embeddings[part[0].ordinal : part[-1].ordinal + 1]
            self._add(Segment(pending, part, upcoming is None, vectors))

    def _add(self, segment: Segment) -> None:
        self.segments.append(segment)
        self.size += len(segment.chunks)
        if self.size >= BATCH_CHUNKS:
            self.commit()

    def _drop(self, pending: Pending, reason: str) -> None:
        """Fail a document part-way: its uncommitted chunks go, and so does what of it was committed."""
        self.segments = [s for s in self.segments if s.pending is not pending]
        self.size = sum(len(s.chunks) for s in self.segments)
        if pending.document_id is not None:
            with self.store.transaction():
                self.store.delete_document(str(pending.doc.path))
        _fail(self.report, self.progress, pending.doc.path, reason)
        self.progress.file_done()

    def commit(self) -> None:
        if not self.segments:
            return
        segments, self.segments, self.size = self.segments, [], 0
        texts = [c.embed_text for s in segments for c in s.chunks]
        embeddings, fresh = self._embeddings(segments, texts) if texts else (None, None)
        with self.store.transaction():
            if embeddings is not None:
                _record_settings(self.store, self.embedder, self.chunking, int(embeddings.shape[1]))
            at = 0
            for s in segments:
                p = s.pending
                if p.document_id is None:  # its first chunks: replace whatever version was stored
                    p.document_id = self.store.begin_document(p.doc, complete=False)
                if s.chunks:
                    self.store.add_chunks(p.document_id, p.doc.title, s.chunks, embeddings[at : at + len(s.chunks)])
                    at += len(s.chunks)
                if s.last:
                    self.store.finish_document(p.document_id)
        at = 0
        for s in segments:
            self.report.chunks += len(s.chunks)
            embedded = int(fresh[at : at + len(s.chunks)].sum()) if s.chunks else 0
            at += len(s.chunks)
            self.report.reused += len(s.chunks) - embedded
            s.pending.stored_chunks += len(s.chunks)
            s.pending.embedded_chunks += embedded
            if s.last:
                self.report.updated += s.pending.existed
                self.report.added += not s.pending.existed
                self.report.changes.append(Change(str(s.pending.doc.path), "updated" if s.pending.existed else "added",
                                                  s.pending.stored_chunks, s.pending.embedded_chunks))
                doc = s.pending.doc
                if doc.unread_pages:
                    self.report.unread_pages += doc.unread_pages
                    partly_read = getattr(self.progress, "partly_read", None)
                    if partly_read is not None:
                        partly_read(str(doc.path), unread_message(doc.unread_pages))
                self.progress.file_done()
        self.progress.embedded(len(texts))


    def _embeddings(self, segments: list[Segment], texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """The batch's vectors, and which of them were embedded now. A chunk whose embed text the
        index already holds (a copied file, the unchanged sections of an edited one; for an edited
        document, its own old chunks, read before its first batch replaced them) reuses the stored
        vector; a reader's workers leave such rows NaN (ingest.distributed), filled here too."""
        import numpy as np

        keys = [text_key(t) for t in texts]
        dim = self.embedder.dim
        known: dict[str, np.ndarray] = {}
        for s in segments:
            if s.pending.reuse:
                known.update(s.pending.reuse)
        known.update(self.store.cached_embeddings([k for k in keys if k not in known], dim))
        embeddings = np.empty((len(texts), dim), dtype=np.float32)
        todo: list[int] = []
        at = 0
        for s in segments:
            for i in range(at, at + len(s.chunks)):
                if s.embeddings is not None and not np.isnan(s.embeddings[i - at]).any():
                    embeddings[i] = s.embeddings[i - at]  # embedded by the reader's workers
                    todo.append(-1 - i)  # fresh, but already done
                elif keys[i] in known:
                    embeddings[i] = known[keys[i]]
                else:
                    todo.append(i)
            at += len(s.chunks)
        fresh = np.zeros(len(texts), dtype=bool)
        work = [i for i in todo if i >= 0]
        if work:
            embeddings[work] = self.embedder.embed_documents([texts[i] for i in work])
        fresh[[i if i >= 0 else -1 - i for i in todo]] = True
        return embeddings, fresh


def _chain(first: list[Chunk], rest: Iterator[Chunk]) -> Iterator[Chunk]:
    yield from first
    yield from rest


def _take(stream: Iterator[Chunk], count: int) -> list[Chunk]:
    return list(islice(stream, max(0, count)))


def _next_to_embed(stream: Iterator[Chunk], resume_from: int) -> Chunk | None:
    """The first chunk not committed yet (chunking is deterministic: the same bytes, the same chunks)."""
    for chunk in stream:
        if chunk.ordinal >= resume_from:
            return chunk
    return None


def _prune(store: Store, found: Discovery, known, report: IngestReport) -> None:
    """Forget documents under a re-ingested folder that are no longer there (or now ignored)."""
    present = {str(p) for p in found.files} | {c.previous for c in report.changes if c.kind == "renamed"}
    # a file that failed keeps its old version, and so does everything under a folder that failed
    failed = [f.path for f in report.failures]
    gone = [
        path for path in known
        if path not in present
        and not any(is_under(path, f) for f in failed)
        and any(is_under(path, str(root)) and path != str(root) for root in found.roots)
    ]
    if gone:
        with store.transaction():
            for path in gone:
                store.delete_document(path)
        report.removed += len(gone)
        report.changes.extend(Change(path, "removed") for path in gone)


def _leave_out(store: Store, known, left: LeftOut, report: IngestReport) -> None:
    """Count a file that is not content; forget the version an older parser indexed."""
    report.left_out[left.reason] = report.left_out.get(left.reason, 0) + 1
    if left.path in known:
        with store.transaction():
            store.delete_document(left.path)


def _fail(report: IngestReport, progress: Progress, path: Path | str, reason: str, unread_pages: int = 0) -> None:
    report.unread_pages += unread_pages
    report.failures.append(Failure(str(path), reason, unread_pages))
    report.failed = len(report.failures)
    progress.failure(str(path), reason)
