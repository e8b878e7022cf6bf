"""The index store: SQLite is the source of truth; vectors.faiss is derived from it (rag.storage.vectors).

One directory per named index holds `rag.sqlite` (WAL mode, so readers see the last committed
state while an ingest writes), `vectors.faiss` and `ingest.lock`. Every change happens inside
`transaction()`, which bumps the generation counter and writes a random state id for the new
generation (table `states`); the vector file is stamped with both, so it is current only for the
very state it was built from, even after lost commits bring a generation number back. A crash
loses at most the transaction in flight. Schema changes are named migrations, each applied
together with its record in one transaction. A document may be committed over several
transactions (ingest.pipeline): `complete` is 0 until its last chunk is in.

One module past 400 lines because every write to rag.sqlite outside the schema steps, and all
but three read-only queries (rag.storage.check, rag.storage.vectors, rag.map.build), live here: a
schema step (rag.storage.migrations) is checked against this one file. The path labels at the top (`label_for`,
`labels_for`) are the one part that could move out if they grow.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import sqlite3
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from rag.errors import IndexBusy, IndexDamaged, IndexMissing, RagError
from rag.storage.migrations import FTS_TOKENIZER, migrate
from rag.storage.problems import storage_error
from rag.text import heading_path, text_key
from rag.types import Chunk, Document, StoredDocument

DB_NAME = "rag.sqlite"
LOCK_NAME = "ingest.lock"
DOCUMENT_COLUMNS = ("id, path, content_hash, mtime, size, title, pages, chunks, ingested_at, parser, page_kind, "
                    "complete")
STATE_BYTES = 16
# Files a save writes before it moves them into place (rag.storage.vectors); one left by a killed
# save is removed by the next writer and never counted in the index's size.
TEMP_FILE = re.compile(r"^\.(?:vectors\.faiss|vectors\.delta)-")


@dataclass(frozen=True)
class StoredChunk:
    id: int
    path: str
    title: str
    page: int | None
    heading: tuple[str, ...]
    text: str
    page_kind: str = "page"


def is_under(path: str, folder: str) -> bool:
    """`path` is `folder` itself or lies somewhere below it (also when folder is '/')."""
    folder = folder.rstrip(os.sep) or os.sep
    return path == folder or path.startswith(folder if folder == os.sep else folder + os.sep)


def label_for(path: str, roots: Sequence[str]) -> str:
    """The path relative to the folder it was ingested from, that folder's name first.

    Stable whatever the working folder, and it never reveals where the user's files live.
    """
    containing = [r for r in roots if is_under(path, r)]
    if not containing:
        return os.path.basename(path)
    root = max(containing, key=len)
    if root == path:  # a file given by name
        return os.path.basename(path)
    return os.path.relpath(path, os.path.dirname(root.rstrip(os.sep)) or os.sep)


def labels_for(paths: Sequence[str], roots: Sequence[str]) -> list[str]:
    """label_for over many paths at once: 10,000 documents in milliseconds rather than a tenth of a
    second (filters read every document's label, rag.retrieval.scope)."""
    folders = sorted(((r.rstrip(os.sep) or os.sep) for r in roots), key=len, reverse=True)  # the longest root wins
    cuts = [(root, root + os.sep if root != os.sep else os.sep, len(os.path.dirname(root) or os.sep))
            for root in folders]
    labels = []
    for path in paths:
        if "/." in path or "//" in path:  # not in normal form: let relpath normalise it
            labels.append(label_for(path, roots))
            continue
        for root, prefix, cut in cuts:
            if path == root:
                labels.append(os.path.basename(path))
                break
            if path.startswith(prefix):
                labels.append(path[cut:].lstrip(os.sep))
                break
        else:
            labels.append(os.path.basename(path))
    return labels


def _id_list(ids: Sequence[int]) -> str:
    # one bound JSON array instead of one variable per id: no "too many SQL variables" on any SQLite
    return json.dumps([int(i) for i in ids])


class Store:
    def __init__(self, root: Path, conn: sqlite3.Connection):
        self.root = root
        self.conn = conn

    # -- opening ---------------------------------------------------------------------------

    @classmethod
    def open(cls, root: Path, create: bool = False) -> "Store":
        db = root / DB_NAME
        if not db.exists():
            if not create:
                raise IndexMissing(f"no index at {root}: run `rag ingest PATH` first")
            try:
                root.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise RagError(f"cannot create the index folder {root}: {exc.strerror or exc}") from exc
        try:
            # check_same_thread=False: servers answer from worker threads; every use of one
            # connection is serialised by its owner (Index holds a lock around queries).
            conn = sqlite3.connect(db, timeout=30, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA busy_timeout=30000")
            if create or os.access(db, os.W_OK):
                _use_wal(conn)
            conn.execute("PRAGMA foreign_keys=ON")
            conn.execute("PRAGMA synchronous=NORMAL")
            store = cls(root, conn)
            migrate(conn, str(root))
        except RagError:
            raise
        except sqlite3.DatabaseError as exc:
            error = storage_error(exc, root)
            if isinstance(error, IndexDamaged):
                error = _damaged(db, exc, error)
            raise error from exc
        return store

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @contextmanager
    def transaction(self, bump: bool = True) -> Iterator[None]:
        """One atomic unit of change; `bump` starts a new generation (with a new state id), which
        marks the vector file stale."""
        try:
            self.conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise storage_error(exc, self.root) from exc
        try:
            yield
            if bump:
                generation = self.generation + 1
                self.set_meta("generation", str(generation))
                self.conn.execute("INSERT OR REPLACE INTO states (generation, state) VALUES (?, ?)",
                                  (generation, os.urandom(STATE_BYTES).hex()))
            self.conn.execute("COMMIT")
        except BaseException:
            self.rollback()
            raise

    def rollback(self) -> None:
        """Undo the open transaction, if SQLite has not already: after a failed COMMIT (a full disk)
        it may have rolled back by itself, and a second error must never hide the first."""
        if self.conn.in_transaction:
            try:
                self.conn.execute("ROLLBACK")
            except sqlite3.Error:
                pass

    @contextmanager
    def snapshot(self) -> Iterator[None]:
        """A consistent read across several queries, even while an ingest commits."""
        if self.conn.in_transaction:
            yield
            return
        self.conn.execute("BEGIN")
        try:
            yield
        finally:
            self.conn.execute("COMMIT")

    @contextmanager
    def writer_lock(self) -> Iterator[None]:
        """Held for a whole ingest run; released by the kernel even on kill -9."""
        try:
            handle = open(self.root / LOCK_NAME, "a+")
        except OSError as exc:
            raise RagError(f"cannot lock {self.root / LOCK_NAME}: {exc.strerror or exc}") from exc
        with handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError as exc:
                handle.seek(0)
                holder = handle.read().strip() or "another process"
                raise IndexBusy(
                    f"another ingest (pid {holder}) is writing to {self.root}: wait for it to finish, then run this again"
                ) from exc
            handle.seek(0)
            handle.truncate()
            handle.write(str(os.getpid()))
            handle.flush()
            try:
                yield
            finally:
                handle.seek(0)
                handle.truncate()
                fcntl.flock(handle, fcntl.LOCK_UN)

    # -- meta ------------------------------------------------------------------------------

    def get_meta(self, key: str) -> str | None:
        row = self.conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def set_meta(self, key: str, value: str) -> None:
        self.conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))

    def roots(self) -> list[str]:
        """The folders (and single files) ingested, absolute: what passage labels are relative to."""
        raw = self.get_meta("roots")
        return json.loads(raw) if raw else []

    def add_roots(self, paths: Sequence[Path]) -> None:
        """Record ingested roots; call inside transaction()."""
        roots = list(dict.fromkeys(self.roots() + [os.path.abspath(p) for p in paths]))
        self.set_meta("roots", json.dumps(roots))

    def label(self, path: str) -> str:
        return label_for(path, self.roots())

    @property
    def generation(self) -> int:
        return int(self.get_meta("generation") or 0)

    @property
    def state(self) -> bytes | None:
        """The id of the committed state at the current generation (read it in a snapshot with it)."""
        return self.state_at(self.generation)

    def state_at(self, generation: int) -> bytes | None:
        """The state id that committed `generation`; None once it is older than the kept history."""
        row = self.conn.execute("SELECT state FROM states WHERE generation = ?", (generation,)).fetchone()
        return bytes.fromhex(row[0]) if row else None

    @property
    def embed_runtime(self) -> str:
        """The runtime that embedded this index's vectors; indexes from before runtimes: torch."""
        return self.get_meta("embed_runtime") or "torch"

    # -- documents -------------------------------------------------------------------------

    def documents(self) -> list[StoredDocument]:
        rows = self.conn.execute(f"SELECT {DOCUMENT_COLUMNS} FROM documents ORDER BY path").fetchall()
        roots = self.roots()
        return [_stored(row, roots) for row in rows]

    def documents_under(self, folder: str) -> list[str]:
        """Paths of the documents that are `folder` itself or lie below it."""
        return [path for (path,) in self.conn.execute("SELECT path FROM documents ORDER BY path")
                if is_under(path, folder)]

    def document(self, path: str) -> StoredDocument | None:
        row = self.conn.execute(
            f"SELECT {DOCUMENT_COLUMNS} FROM documents WHERE path = ?",
            (path,),
        ).fetchone()
        return _stored(row, self.roots()) if row else None

    def put_document(self, doc: Document, chunks: Sequence[Chunk], embeddings: np.ndarray) -> None:
        """Insert or replace a document and all its chunks; call inside transaction()."""
        document_id = self.begin_document(doc, complete=True)
        self.add_chunks(document_id, doc.title, chunks, embeddings)

    def begin_document(self, doc: Document, complete: bool) -> int:
        """Replace any stored version of `doc` by an empty one and return its id; chunks follow with
        add_chunks, in this transaction or later ones. `complete=False` until the last is in."""
        self.delete_document(str(doc.path))
        cur = self.conn.execute(
            "INSERT INTO documents (path, content_hash, mtime, size, title, pages, chunks, ingested_at, parser, "
            "page_kind, complete) VALUES (?, ?, ?, ?, ?, ?, 0, ?, ?, ?, ?)",
            (str(doc.path), doc.content_hash, doc.mtime, doc.size, doc.title, doc.pages, time.time(),
             doc.parser, doc.page_kind, int(complete)),
        )
        return cur.lastrowid

    def add_chunks(self, document_id: int, title: str, chunks: Sequence[Chunk], embeddings: np.ndarray) -> None:
        """Append chunks to a document begun with begin_document; call inside transaction()."""
        vectors = np.ascontiguousarray(embeddings, dtype=np.float32)
        for chunk, vector in zip(chunks, vectors):
            cur = self.conn.execute(
                "INSERT INTO chunks (document_id, ordinal, text, page, heading, char_start, char_end, embedding, "
                "text_hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (document_id, chunk.ordinal, chunk.text, chunk.page, json.dumps(list(chunk.heading)),
                 chunk.char_start, chunk.char_end, vector.tobytes(), text_key(chunk.embed_text)),
            )
            # FTS5 gets the path as joined text: it is only tokenized (the separator is no token), and
            # rows written before headings were JSON (step 008) need no rewrite to match the same words
            self.conn.execute(
                "INSERT INTO chunks_fts (rowid, text, heading, title) VALUES (?, ?, ?, ?)",
                (cur.lastrowid, chunk.text, heading_path(chunk.heading), title),
            )
        self.conn.execute("UPDATE documents SET chunks = chunks + ? WHERE id = ?", (len(chunks), document_id))

    def finish_document(self, document_id: int) -> None:
        """Mark a document complete: its last chunk is in; call inside transaction()."""
        self.conn.execute("UPDATE documents SET complete = 1 WHERE id = ?", (document_id,))

    def cached_embeddings(self, keys: Sequence[str], dim: int) -> dict[str, np.ndarray]:
        """The stored vectors of chunks whose embed text has one of these keys (rag.text.text_key):
        what an ingest need not embed again. One model and runtime per index, so the text alone
        is the key."""
        found: dict[str, np.ndarray] = {}
        unique = list(dict.fromkeys(keys))
        for start in range(0, len(unique), 5000):
            rows = self.conn.execute(
                "SELECT text_hash, embedding FROM chunks WHERE text_hash IN (SELECT value FROM json_each(?)) "
                "GROUP BY text_hash", (json.dumps(unique[start:start + 5000]),)
            )
            for key, blob in rows:
                if len(blob) == dim * 4:
                    found[key] = np.frombuffer(blob, dtype=np.float32)
        return found

    def chunk_keys(self, path: str) -> list[str]:
        """The embedding-cache keys of a stored document's chunks (what a Ray worker may skip)."""
        return [key for (key,) in self.conn.execute(
            "SELECT c.text_hash FROM chunks c JOIN documents d ON d.id = c.document_id "
            "WHERE d.path = ? AND c.text_hash IS NOT NULL", (path,))]

    def rename_document(self, old: str, new: str, mtime: float, size: int) -> None:
        """Move a document to another path, its chunks and vectors unchanged (a rename or a move:
        the same bytes, so the same content hash); call inside transaction()."""
        self.conn.execute("UPDATE documents SET path = ?, mtime = ?, size = ? WHERE path = ?", (new, mtime, size, old))

    def touch_document(self, path: str, mtime: float, size: int) -> None:
        """Record a new mtime for a file whose content did not change."""
        self.conn.execute("UPDATE documents SET mtime = ?, size = ? WHERE path = ?", (mtime, size, path))

    def delete_document(self, path: str) -> bool:
        row = self.conn.execute("SELECT id FROM documents WHERE path = ?", (path,)).fetchone()
        if row is None:
            return False
        self.conn.execute(
            "DELETE FROM chunks_fts WHERE rowid IN (SELECT id FROM chunks WHERE document_id = ?)", (row[0],)
        )
        self.conn.execute("DELETE FROM documents WHERE id = ?", (row[0],))  # chunks cascade
        return True

    # -- chunks ----------------------------------------------------------------------------

    def chunk_count(self) -> int:
        return self.conn.execute("SELECT COUNT(*) FROM chunks").fetchone()[0]

    def iter_embeddings(self, dim: int, batch: int = 8192) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(ids, vectors) in batches, so that rebuilding the vector index keeps memory bounded."""
        last = 0
        while True:
            rows = self.conn.execute(
                "SELECT id, embedding FROM chunks WHERE id > ? ORDER BY id LIMIT ?", (last, batch)
            ).fetchall()
            if not rows:
                return
            ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
            vectors = np.frombuffer(b"".join(r[1] for r in rows), dtype=np.float32).reshape(len(rows), dim)
            yield ids, vectors
            last = int(ids[-1])

    def vector_changes(self, since: int) -> np.ndarray | None:
        """Ids of the chunks inserted, deleted or re-embedded after generation `since`, or None when
        the log no longer reaches back that far (rag.storage.migrations step 004 keeps the log)."""
        complete_from = self.get_meta("vector_log_since")
        if complete_from is None or since < int(complete_from):
            return None
        rows = self.conn.execute("SELECT DISTINCT chunk_id FROM vector_log WHERE generation > ?", (since,))
        return np.fromiter((r[0] for r in rows), dtype=np.int64)

    def forget_vector_changes(self, through: int) -> None:
        """Drop the log up to generation `through`, once vectors.faiss is saved at it, and the state
        ids before it (a file older than the log is rebuilt whatever its state)."""
        with self.transaction(bump=False):
            if int(self.get_meta("vector_log_since") or 0) < through:
                self.conn.execute("DELETE FROM vector_log WHERE generation <= ?", (through,))
                self.conn.execute("DELETE FROM states WHERE generation < ?", (through,))
                self.set_meta("vector_log_since", str(through))

    def sample_embeddings(self, dim: int, count: int) -> np.ndarray:
        """Up to `count` embeddings chosen at random (training data for an IVF index)."""
        rows = self.conn.execute(
            "SELECT embedding FROM chunks WHERE id IN (SELECT id FROM chunks ORDER BY RANDOM() LIMIT ?)", (count,)
        ).fetchall()
        return np.frombuffer(b"".join(r[0] for r in rows), dtype=np.float32).reshape(len(rows), dim)

    def chunks(self, ids: Sequence[int]) -> dict[int, StoredChunk]:
        if not ids:
            return {}
        rows = self.conn.execute(
            "SELECT c.id, d.path, d.title, c.page, c.heading, c.text, d.page_kind FROM chunks c "
            "JOIN documents d ON d.id = c.document_id WHERE c.id IN (SELECT value FROM json_each(?))",
            (_id_list(ids),),
        )
        return {cid: StoredChunk(cid, path, title, page, tuple(json.loads(heading)), text, page_kind)
                for cid, path, title, page, heading, text, page_kind in rows}

    def document_ids(self, ids: Sequence[int]) -> dict[int, int]:
        """chunk id -> its document's id."""
        if not ids:
            return {}
        rows = self.conn.execute(
            "SELECT id, document_id FROM chunks WHERE id IN (SELECT value FROM json_each(?))", (_id_list(ids),)
        )
        return dict(rows.fetchall())

    def embeddings(self, ids: Sequence[int], dim: int) -> dict[int, np.ndarray]:
        if not ids:
            return {}
        rows = self.conn.execute(
            "SELECT id, embedding FROM chunks WHERE id IN (SELECT value FROM json_each(?))", (_id_list(ids),)
        )
        return {row[0]: np.frombuffer(row[1], dtype=np.float32, count=dim) for row in rows}

    def keyword_search(self, match: str, limit: int, within: str | None = None) -> list[tuple[int, float]]:
        """(chunk id, BM25 score with higher = better) for an FTS5 MATCH expression; `within`, a
        JSON array of chunk ids (rag.retrieval.scope), keeps only those."""
        # bm25() is lower-is-better. Columns weigh the same: weighting heading and title 2x was no
        # better on any of four labelled sets and worse on two (Git manual MRR@5 0.640 -> 0.601).
        if within is None:
            rows = self.conn.execute(
                "SELECT rowid, -bm25(chunks_fts) AS score FROM chunks_fts "
                "WHERE chunks_fts MATCH ? ORDER BY bm25(chunks_fts) LIMIT ?",
                (match, limit),
            )
        else:
            # `+rowid`: FTS5 walks the MATCH once and drops rows outside the list before scoring them.
            # A bare `rowid IN` lets the planner run the MATCH again for every listed id, thousands of
            # times slower for a thousand ids (bench/RESULTS.md, "Filters").
            rows = self.conn.execute(
                "SELECT rowid, -bm25(chunks_fts) AS score FROM chunks_fts "
                "WHERE chunks_fts MATCH ? AND +rowid IN (SELECT value FROM json_each(?)) "
                "ORDER BY bm25(chunks_fts) LIMIT ?",
                (match, within, limit),
            )
        return [(row[0], float(row[1])) for row in rows]

    def term_statistics(self, phrases: Sequence[str], among: Sequence[int]) -> tuple[int, dict[str, tuple[int, set[int]]]]:
        """(passages in the index, {phrase: (passages holding it, which of `among` hold it)}), counted
        by FTS5 with the keyword leg's own tokenizer (the relevance cut-off's keyword evidence)."""
        # Which of `among` hold a phrase: asked of a small FTS5 table of just those passages on this
        # connection's temp schema (same tokenizer), because FTS5 walks a common word's whole match
        # before a rowid filter applies (15 ms a word on 5,000 passages; about 3 ms a question here).
        self.conn.execute(f"CREATE VIRTUAL TABLE IF NOT EXISTS temp.candidates USING fts5(text, heading, title, "
                          f"tokenize = '{FTS_TOKENIZER}')")
        self.conn.execute("DELETE FROM temp.candidates")
        if among:
            self.conn.execute(
                "INSERT INTO temp.candidates (rowid, text, heading, title) SELECT f.rowid, f.text, f.heading, f.title "
                "FROM chunks_fts f WHERE f.rowid IN (SELECT value FROM json_each(?))", (_id_list(among),)
            )
        stats: dict[str, tuple[int, set[int]]] = {}
        for phrase in phrases:
            match = '"' + phrase.replace('"', '""') + '"'
            (count,) = self.conn.execute("SELECT count(*) FROM chunks_fts WHERE chunks_fts MATCH ?", (match,)).fetchone()
            held = self.conn.execute("SELECT rowid FROM temp.candidates WHERE candidates MATCH ?", (match,)) if count else []
            stats[phrase] = (int(count), {row[0] for row in held})
        return self.chunk_count(), stats
    # -- filters (rag.retrieval.scope) ------------------------------------------------------

    def document_facts(self) -> list[tuple[int, str, float, int]]:
        """(id, path, mtime, chunks) of every document: what filters are decided on."""
        return self.conn.execute("SELECT id, path, mtime, chunks FROM documents").fetchall()

    def chunk_ids_of(self, document_ids: Sequence[int]) -> np.ndarray:
        """The ids of these documents' chunks, sorted (through the chunks_document index)."""
        if not len(document_ids):
            return np.empty(0, dtype=np.int64)
        (listed,) = self.conn.execute(
            "SELECT json_group_array(id) FROM (SELECT id FROM chunks "
            "WHERE document_id IN (SELECT value FROM json_each(?)) ORDER BY id)",
            (_id_list(document_ids),),
        ).fetchone()
        return np.array(json.loads(listed), dtype=np.int64)

    def chunk_ids_on_pages(self, document_id: int, first: int, last: int) -> np.ndarray:
        """The ids of a document's chunks on pages first..last (chunks without a page never are)."""
        rows = self.conn.execute(
            "SELECT id FROM chunks WHERE document_id = ? AND page BETWEEN ? AND ? ORDER BY id",
            (document_id, first, last),
        )
        return np.fromiter((r[0] for r in rows), dtype=np.int64)

    def size_on_disk(self) -> int:
        """Bytes of the index's files; a temporary file of a save in flight (or killed) is not one."""
        total = 0
        for entry in os.scandir(self.root):
            if TEMP_FILE.match(entry.name):
                continue
            try:
                if entry.is_file():
                    total += entry.stat().st_size
            except FileNotFoundError:  # removed meanwhile (a save moved it into place)
                pass
        return total


def _use_wal(conn: sqlite3.Connection, tries: int = 40) -> None:
    """Switch to WAL. SQLite answers a switch that races another connection's lock with "database is
    locked" at once, without waiting on the busy timeout (seen with 4 processes opening a fresh
    index on a loaded machine), so wait and try again here."""
    for attempt in range(tries):
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or attempt == tries - 1:
                raise
            time.sleep(min(0.05 * (attempt + 1), 0.5))


def _stored(row: tuple, roots: Sequence[str]) -> StoredDocument:
    *fields, page_kind, complete = row
    return StoredDocument(*fields, label=label_for(row[1], roots), page_kind=page_kind, complete=bool(complete))


def _damaged(db: Path, exc: Exception, error: IndexDamaged) -> RagError:
    """Call the index damaged only when SQLite's own check says so."""
    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
        try:
            verdict = conn.execute("PRAGMA quick_check").fetchone()[0]
        finally:
            conn.close()
    except sqlite3.DatabaseError as check:
        verdict = str(check)
    if verdict == "ok":
        return RagError(f"cannot open the index at {db.parent} ({exc}): try again; if it persists, run with --debug")
    return IndexDamaged(f"the index at {db.parent} is damaged ({exc}; SQLite's check: {verdict}): delete that folder "
                        f"and ingest again")
