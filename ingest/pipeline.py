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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from ingest.chunk import ChunkSettings, chunk_sections
from ingest.discover import describe_os_error, discover
from ingest.loaders import loader_for, page_kind_for
from rag import vectors
from rag.errors import IndexMismatch, LoadError
from rag.store import Store
from rag.types import Chunk, Document

# Bumped whenever the loaders or the chunker turn the same file into different chunks: a document
# read by an older version is read again on the next ingest even though the file did not change,
# so upgrading rag improves an index without --rebuild. 2: HTML site chrome left out, PDF
# bookmarks as heading paths.
PARSER_VERSION = 2
BATCH_CHUNKS = 256  # chunks embedded and committed together: bounds memory and crash loss


@dataclass
class IngestReport:
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    removed: int = 0
    failed: int = 0
    skipped: int = 0  # files of other types inside folders
    chunks: int = 0  # chunks embedded in this run
    seconds: float = 0.0
    failures: list[tuple[str, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.failed == 0


class Progress(Protocol):
    def start(self, files: int) -> None: ...
    def file_done(self) -> None: ...
    def embedded(self, chunks: int) -> None: ...
    def failure(self, path: str, reason: str) -> None: ...
    def finish(self) -> None: ...


class SilentProgress:
    def start(self, files: int) -> None: ...
    def file_done(self) -> None: ...
    def embedded(self, chunks: int) -> None: ...
    def failure(self, path: str, reason: str) -> None: ...
    def finish(self) -> None: ...


def check_settings(store: Store, model_id: str, chunking: ChunkSettings, rebuild: bool) -> None:
    """Refuse to mix embedding models or chunk settings within one index."""
    stored_model = store.get_meta("embed_model")
    if stored_model is not None and stored_model != model_id:
        raise IndexMismatch(
            f"the index at {store.root} was built with {stored_model}, not {model_id}: "
            f"use --embed-model {stored_model}, or another --index"
        )
    stored = (store.get_meta("chunk_tokens"), store.get_meta("overlap_tokens"))
    wanted = (str(chunking.chunk_tokens), str(chunking.overlap_tokens))
    if stored_model is not None and stored != wanted and not rebuild:
        raise IndexMismatch(
            f"the index at {store.root} uses --chunk-tokens {stored[0]} --overlap-tokens {stored[1]}: "
            f"pass those, or add --rebuild to re-chunk every document"
        )


def _record_settings(store: Store, model_id: str, chunking: ChunkSettings) -> None:
    store.set_meta("embed_model", model_id)  # the dimension is recorded with the first embeddings
    store.set_meta("chunk_tokens", str(chunking.chunk_tokens))
    store.set_meta("overlap_tokens", str(chunking.overlap_tokens))


def stored_chunk_settings(store: Store) -> ChunkSettings | None:
    tokens, overlap = store.get_meta("chunk_tokens"), store.get_meta("overlap_tokens")
    if tokens is None or overlap is None:
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
) -> IngestReport:
    progress = progress or SilentProgress()
    started = time.perf_counter()
    report = IngestReport()
    with store.writer_lock():
        check_settings(store, embedder.id, chunking, rebuild)
        previous = stored_chunk_settings(store)
        with store.transaction(bump=False):
            _record_settings(store, embedder.id, chunking)

        found = discover(paths)
        report.skipped = found.skipped
        for path, reason in found.problems:
            _fail(report, progress, path, reason)
        known = {doc.path: doc for doc in store.documents()}
        if rebuild and previous not in (None, chunking):
            # the settings are the index's, not one file's: re-chunk what was not named this time too
            named = set(found.files)
            found.files += [Path(p) for p in known if Path(p) not in named]
        progress.start(len(found.files))

        batch: list[tuple[Document, list[Chunk], bool]] = []
        batch_chunks = 0
        for path in found.files:
            key = str(path)
            stored = known.get(key)
            try:
                st = path.stat()
                current = stored is not None and not rebuild and stored.parser == PARSER_VERSION
                if current and stored.size == st.st_size and stored.mtime == st.st_mtime:
                    report.unchanged += 1
                    progress.file_done()
                    continue
                data = path.read_bytes()
                digest = hashlib.sha256(data).hexdigest()
                if current and stored.content_hash == digest:
                    with store.transaction(bump=False):
                        store.touch_document(key, st.st_mtime, st.st_size)
                    report.unchanged += 1
                    progress.file_done()
                    continue
                doc = load_document(path, data, st, digest)
                chunks = chunk_sections(doc.title, doc.sections, embedder.token_offsets, embedder.max_tokens, chunking)
                if not chunks:
                    raise LoadError("no text to index")
            except LoadError as exc:
                _fail(report, progress, path, str(exc))
                progress.file_done()  # a failed file is done too: the bar must reach its total
                continue
            except OSError as exc:
                _fail(report, progress, path, describe_os_error(exc))
                progress.file_done()
                continue
            batch.append((doc, chunks, stored is not None))
            batch_chunks += len(chunks)
            if batch_chunks >= BATCH_CHUNKS:
                _commit(store, embedder, batch, report, progress)
                batch, batch_chunks = [], 0
        if batch:
            _commit(store, embedder, batch, report, progress)

        if prune and found.roots:
            _prune(store, found, known, report)

        vectors.refresh_file(store)
        with store.transaction(bump=False):
            store.set_meta("last_ingest", str(time.time()))
    progress.finish()
    report.seconds = time.perf_counter() - started
    return report


def _commit(store: Store, embedder, batch, report: IngestReport, progress: Progress) -> None:
    texts = [c.embed_text for _, chunks, _ in batch for c in chunks]
    embeddings = embedder.embed_documents(texts)
    with store.transaction():
        store.set_meta("dim", str(embeddings.shape[1]))
        at = 0
        for doc, chunks, existed in batch:
            store.put_document(doc, chunks, embeddings[at : at + len(chunks)])
            at += len(chunks)
    for doc, chunks, existed in batch:
        report.updated += existed
        report.added += not existed
        report.chunks += len(chunks)
        progress.file_done()
    progress.embedded(len(texts))


def _prune(store: Store, found, known, report: IngestReport) -> None:
    """Forget documents under a re-ingested folder that are no longer there (or now ignored)."""
    present = {str(p) for p in found.files}
    # a file that failed keeps its old version, and so does everything under a folder that failed
    failed = [path for path, _ in report.failures]
    gone = []
    for path in known:
        if path in present or any(path == f or path.startswith(f + os.sep) for f in failed):
            continue
        if any(path.startswith(str(root) + os.sep) for root in found.roots):
            gone.append(path)
    if gone:
        with store.transaction():
            for path in gone:
                store.delete_document(path)
        report.removed += len(gone)


def _fail(report: IngestReport, progress: Progress, path: Path, reason: str) -> None:
    report.failed += 1
    report.failures.append((str(path), reason))
    progress.failure(str(path), reason)
