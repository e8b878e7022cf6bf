"""The ingest run: diff files against the store, load and chunk what changed, embed in batches,
commit each batch in one transaction, prune vanished files, then rebuild the vector file.

Invariants: a document and all its chunks are committed together or not at all; a file that
fails to load keeps whatever version of it was indexed before; the vector file is replaced only
after everything is committed (and is rebuilt by readers if a crash leaves it stale). The model
is touched (and so loaded) only when something is chunked or embedded: a re-ingest of unchanged
files never imports torch.
"""

from __future__ import annotations

import hashlib
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Iterator, Protocol

from ingest.chunk import ChunkSettings, chunk_sections
from ingest.discover import Discovery, describe_os_error, discover
from ingest.formats import loader_for, page_kind_for
from rag.storage import vectors
from rag.errors import IndexMismatch, LoadError
from rag.storage.store import Store, is_under
from rag.types import Chunk, Document, Failure, IngestReport

if TYPE_CHECKING:
    import numpy as np

# Bumped whenever the loaders or the chunker turn the same file into different chunks: a document
# read by an older version is read again on the next ingest even though the file did not change,
# so upgrading rag improves an index without --rebuild. 2: HTML site chrome left out, PDF
# bookmarks as heading paths. 3: tables as labelled rows (HTML, docx, odt, pptx); chunks never
# begin or end inside a signature, a code line or a table row.
PARSER_VERSION = 3
BATCH_CHUNKS = 256  # chunks embedded and committed together: bounds memory and crash loss
MAX_FILE_BYTES = 512 * 1024 * 1024  # a bigger file is refused before it is read


class Progress(Protocol):
    def start(self, files: int) -> None: ...
    def file_done(self) -> None: ...
    def embedded(self, chunks: int) -> None: ...
    def failure(self, path: str, reason: str) -> None: ...
    def finish(self) -> None: ...
    # Optional, called only when present (a distributed reader reports its workers):
    # def workers(self, busy: int, total: int) -> None: ...
    # def notice(self, message: str) -> None: ...


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
    chunks: list[Chunk]
    existed: bool
    embeddings: np.ndarray | None = None  # computed by the reader (a Ray worker); else by _commit


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


class Reader(Protocol):
    """Turns changed files into Pending documents or Failures, yielding each as it finishes (in
    any order). It takes the next file from `changed` only when it can start it: that bounds how
    many files' bytes and results are in flight."""

    def read(self, changed: Iterator[Changed], progress: Progress) -> Iterator[Pending | Failure]: ...


READ_AHEAD = 4  # files loaded and chunked ahead of the one being committed


class LocalReader:
    """Load and chunk in this process; _commit embeds in batches.

    With an embedder whose tokenizer may serve two threads at once (the exported runtimes keep a
    separate tokenizer for the chunker), the next files are loaded and chunked in a second
    thread while the encoder embeds the batch before them, so the encoder never waits on a
    parser. The diff itself (which may write to SQLite) stays on the calling thread, and results
    come back in file order. torch's tokenizer is reconfigured on every call, so there it stays
    sequential.
    """

    def __init__(self, embedder, chunking: ChunkSettings, read_ahead: int = READ_AHEAD):
        self.embedder = embedder
        self.chunking = chunking
        self.read_ahead = read_ahead if getattr(embedder, "concurrent_tokenizer", False) else 0

    def read(self, changed: Iterator[Changed], progress: Progress) -> Iterator[Pending | Failure]:
        if not self.read_ahead:
            for item in changed:
                yield prepare(item, self.embedder, self.chunking)
            return
        from collections import deque
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="rag-read") as pool:
            waiting: deque = deque()
            for item in changed:
                waiting.append(pool.submit(prepare, item, self.embedder, self.chunking))
                if len(waiting) > self.read_ahead:
                    yield waiting.popleft().result()
            while waiting:
                yield waiting.popleft().result()


def prepare(item: Changed, embedder, chunking: ChunkSettings) -> Pending | Failure:
    """Load and chunk one changed file, wherever it runs; a file that cannot be read is a Failure."""
    data, item.data = item.data, b""
    try:
        doc = load_document(item.path, data, item.stat, item.digest)
        del data
        chunks = chunk_sections(doc.title, doc.sections, embedder.token_offsets, embedder.max_tokens, chunking)
        if not chunks:
            raise LoadError("no text to index")
    except (LoadError, OSError, UnicodeError) as exc:
        return Failure(str(item.path), _reason(exc))
    return Pending(doc, chunks, item.existed)


def _reason(exc: Exception) -> str:
    if isinstance(exc, OSError):
        return describe_os_error(exc)
    if isinstance(exc, UnicodeError):  # a name or text the tokenizer or SQLite cannot take
        return f"cannot read it as text ({exc.reason})"
    return str(exc)


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


def _record_settings(store: Store, embedder, chunking: ChunkSettings, dim: int) -> None:
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
    title, sections, pages = loader(path, data)
    return Document(path=path, title=title, sections=sections, content_hash=digest,
                    mtime=st.st_mtime, size=st.st_size, pages=pages, parser=PARSER_VERSION,
                    page_kind=page_kind_for(path))


def run_ingest(
    paths: list[Path],
    store: Store,
    embedder,
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


def _ingest_files(found: Discovery, known, store: Store, embedder, chunking: ChunkSettings, rebuild: bool,
                  report: IngestReport, progress: Progress, reader: Reader) -> None:
    batch: list[Pending] = []
    batch_chunks = 0
    changed = _changed(found, known, store, rebuild, report, progress)
    for pending in reader.read(changed, progress):
        if isinstance(pending, Failure):
            _fail(report, progress, pending.path, pending.reason)
            progress.file_done()
            continue
        batch.append(pending)
        batch_chunks += len(pending.chunks)
        if batch_chunks >= BATCH_CHUNKS:
            _commit(store, embedder, chunking, batch, report, progress)
            batch, batch_chunks = [], 0
    if batch:
        _commit(store, embedder, chunking, batch, report, progress)


def _changed(found: Discovery, known, store: Store, rebuild: bool, report: IngestReport,
             progress: Progress) -> Iterator[Changed]:
    """The files that changed, read one at a time as the reader asks for them."""
    for path in found.files:
        item = _diff(path, known.get(str(path)), store, rebuild, report, progress)
        if item is None:
            progress.file_done()
            continue
        yield item


def _diff(path: Path, stored, store: Store, rebuild: bool, report: IngestReport,
          progress: Progress) -> Changed | None:
    """The file's bytes when it changed, or None when it is unchanged or failed (and so reported)."""
    key = str(path)
    try:
        st = path.stat()
        current = stored is not None and not rebuild and stored.parser == PARSER_VERSION
        if current and stored.size == st.st_size and stored.mtime == st.st_mtime:
            report.unchanged += 1
            return None
        if st.st_size > MAX_FILE_BYTES:
            raise LoadError(f"file is {st.st_size / 2**20:.0f} MB, over the {MAX_FILE_BYTES / 2**20:.0f} MB limit")
        data = path.read_bytes()
        digest = hashlib.sha256(data).hexdigest()
        if current and stored.content_hash == digest:
            with store.transaction(bump=False):
                store.touch_document(key, st.st_mtime, st.st_size)
            report.unchanged += 1
            return None
    except (LoadError, OSError, UnicodeError) as exc:
        _fail(report, progress, path, _reason(exc))
        return None
    return Changed(path, data, st, digest, stored is not None)


def _commit(store: Store, embedder, chunking: ChunkSettings, batch: list[Pending], report: IngestReport,
            progress: Progress) -> None:
    texts = [c.embed_text for p in batch for c in p.chunks]
    if all(p.embeddings is not None for p in batch):  # embedded by the reader's workers
        import numpy as np

        embeddings = np.concatenate([p.embeddings for p in batch])
    else:
        embeddings = embedder.embed_documents(texts)
    with store.transaction():
        _record_settings(store, embedder, chunking, int(embeddings.shape[1]))
        at = 0
        for p in batch:
            store.put_document(p.doc, p.chunks, embeddings[at : at + len(p.chunks)])
            at += len(p.chunks)
    for p in batch:
        report.updated += p.existed
        report.added += not p.existed
        report.chunks += len(p.chunks)
        progress.file_done()
    progress.embedded(len(texts))


def _prune(store: Store, found: Discovery, known, report: IngestReport) -> None:
    """Forget documents under a re-ingested folder that are no longer there (or now ignored)."""
    present = {str(p) for p in found.files}
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


def _fail(report: IngestReport, progress: Progress, path: Path | str, reason: str) -> None:
    report.failures.append(Failure(str(path), reason))
    report.failed = len(report.failures)
    progress.failure(str(path), reason)
