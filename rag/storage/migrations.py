"""Schema migrations for rag.sqlite: named steps, each applied together with its record.

A step is a function of the connection, so a statement may hold semicolons (triggers) and no
SQL is ever split by hand. Each pending step runs inside one `BEGIN IMMEDIATE` that first re-reads
which steps are applied: two processes opening a fresh index at once serialise on SQLite's write
lock and the second finds the work done. An index that records a step this version does not know
was made by a newer rag and is refused instead of being half understood.
"""

from __future__ import annotations

import json
import sqlite3
import time
from typing import Callable

from rag.errors import IndexTooNew

FTS_TOKENIZER = "porter unicode61 remove_diacritics 2"
Step = Callable[[sqlite3.Connection], None]


def _initial(conn: sqlite3.Connection) -> None:
    conn.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    conn.execute(
        """CREATE TABLE documents (
            id INTEGER PRIMARY KEY,
            path TEXT NOT NULL UNIQUE,
            content_hash TEXT NOT NULL,
            mtime REAL NOT NULL,
            size INTEGER NOT NULL,
            title TEXT NOT NULL,
            pages INTEGER,
            chunks INTEGER NOT NULL,
            ingested_at REAL NOT NULL
        )"""
    )
    conn.execute(
        """CREATE TABLE chunks (
            id INTEGER PRIMARY KEY,
            document_id INTEGER NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
            ordinal INTEGER NOT NULL,
            text TEXT NOT NULL,
            page INTEGER,
            heading TEXT NOT NULL,
            char_start INTEGER NOT NULL,
            char_end INTEGER NOT NULL,
            embedding BLOB NOT NULL
        )"""
    )
    conn.execute("CREATE INDEX chunks_document ON chunks(document_id)")
    conn.execute(f"CREATE VIRTUAL TABLE chunks_fts USING fts5(text, heading, title, tokenize = '{FTS_TOKENIZER}')")


def _document_parser(conn: sqlite3.Connection) -> None:
    # which version of the loaders read each document: a newer one reads it again on the next ingest
    conn.execute("ALTER TABLE documents ADD COLUMN parser INTEGER NOT NULL DEFAULT 1")


def _page_kind(conn: sqlite3.Connection) -> None:
    # what a document's page numbers count: PDF pages, presentation slides or e-book chapters
    conn.execute("ALTER TABLE documents ADD COLUMN page_kind TEXT NOT NULL DEFAULT 'page'")


# Every chunk row inserted, deleted or re-embedded is logged under the generation its transaction
# will commit as (Store.transaction bumps `generation` just before COMMIT), so rag.storage.vectors can
# update vectors.faiss by the change alone. Triggers, so that no write path can forget it
# (cascading deletes fire them too). `vector_log_since` is the generation from which the log is
# complete; rag.storage.vectors prunes it once vectors.faiss has caught up.
_LOGGED_GENERATION = "COALESCE((SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'generation'), 0) + 1"


def _vector_log(conn: sqlite3.Connection) -> None:
    conn.execute("CREATE TABLE vector_log (generation INTEGER NOT NULL, chunk_id INTEGER NOT NULL)")
    conn.execute("CREATE INDEX vector_log_generation ON vector_log(generation)")
    conn.execute(f"CREATE TRIGGER chunks_logged_insert AFTER INSERT ON chunks BEGIN "
                 f"INSERT INTO vector_log VALUES ({_LOGGED_GENERATION}, new.id); END")
    conn.execute(f"CREATE TRIGGER chunks_logged_delete AFTER DELETE ON chunks BEGIN "
                 f"INSERT INTO vector_log VALUES ({_LOGGED_GENERATION}, old.id); END")
    conn.execute(f"CREATE TRIGGER chunks_logged_update AFTER UPDATE OF id, embedding ON chunks BEGIN "
                 f"INSERT INTO vector_log VALUES ({_LOGGED_GENERATION}, old.id); "
                 f"INSERT INTO vector_log VALUES ({_LOGGED_GENERATION}, new.id); END")
    conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('vector_log_since', "
                 "COALESCE((SELECT value FROM meta WHERE key = 'generation'), '0'))")


def _states(conn: sqlite3.Connection) -> None:
    # An identity for each committed state (rag.storage.store.Store.transaction writes a random one
    # with every generation): a generation number comes back after lost commits (a WAL lost with
    # the power, an older copy of rag.sqlite restored), a random state id does not, so a vector
    # file stamped with one is current only for the state it was built from.
    conn.execute("CREATE TABLE states (generation INTEGER PRIMARY KEY, state TEXT NOT NULL)")
    conn.execute("INSERT INTO states VALUES (COALESCE((SELECT CAST(value AS INTEGER) FROM meta WHERE "
                 "key = 'generation'), 0), lower(hex(randomblob(16))))")


def _partial_documents(conn: sqlite3.Connection) -> None:
    # A document too large for one batch is committed over several (ingest.pipeline): until its
    # last chunk is in, it is partial (0), and the next ingest carries on from its last chunk.
    conn.execute("ALTER TABLE documents ADD COLUMN complete INTEGER NOT NULL DEFAULT 1")


def _chunk_text_hash(conn: sqlite3.Connection) -> None:
    # the key of the embedding cache: a chunk whose embed text is already in the index reuses its
    # vector (a copied file, the unchanged sections of an edited one). Chunks written before this
    # step have none and are simply never reused.
    conn.execute("ALTER TABLE chunks ADD COLUMN text_hash TEXT")
    conn.execute("CREATE INDEX chunks_text_hash ON chunks(text_hash)")
    conn.execute("CREATE INDEX documents_content_hash ON documents(content_hash)")


OLD_HEADING_SEPARATOR = " > "


def _old_heading_to_json(heading: str) -> str:
    return json.dumps(heading.split(OLD_HEADING_SEPARATOR) if heading else [])


def _heading_json(conn: sqlite3.Connection) -> None:
    # chunks.heading holds the heading path as a JSON array, one element a level, so a level that
    # itself contains " > " stays one level. Before, the levels were joined with " > ": splitting
    # that text again is the best reading of an old row (such a level comes back as two). The
    # trigger on chunks watches only id and embedding, so no vector is marked changed. chunks_fts
    # keeps its joined text (rag.storage.store.add_chunks says why).
    conn.create_function("old_heading_to_json", 1, _old_heading_to_json, deterministic=True)
    conn.execute("UPDATE chunks SET heading = old_heading_to_json(heading)")


STEPS: list[tuple[str, Step]] = [
    ("001_initial", _initial),
    ("002_document_parser", _document_parser),
    ("003_page_kind", _page_kind),
    ("004_vector_log", _vector_log),
    ("005_states", _states),
    ("006_partial_documents", _partial_documents),
    ("007_chunk_text_hash", _chunk_text_hash),
    ("008_heading_json", _heading_json),
]


def _check_names(steps: list[tuple[str, Step]]) -> None:
    names = [name for name, _ in steps]
    if len(set(names)) != len(names):
        raise ValueError(f"duplicate migration names in {names}")


_check_names(STEPS)


def _applied(conn: sqlite3.Connection) -> set[str]:
    exists = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'"
    ).fetchone()
    if not exists:
        return set()
    return {row[0] for row in conn.execute("SELECT name FROM schema_migrations")}


def migrate(conn: sqlite3.Connection, where: str, steps: list[tuple[str, Step]] = STEPS) -> None:
    """Bring the schema up to date; a connection in autocommit mode (isolation_level=None)."""
    known = {name for name, _ in steps}
    applied = _applied(conn)
    if applied - known:
        raise IndexTooNew(
            f"the index at {where} was made by a newer version of rag (schema steps "
            f"{', '.join(sorted(applied - known))}): upgrade rag, or ingest into another --index"
        )
    if known <= applied:
        return  # the common case for readers: no write lock taken
    for name, step in steps:
        if name in applied:
            continue
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations (name TEXT PRIMARY KEY, applied_at REAL NOT NULL)"
            )
            # another process may have applied it while we waited for the write lock
            if name not in _applied(conn):
                step(conn)
                conn.execute("INSERT INTO schema_migrations VALUES (?, ?)", (name, time.time()))
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:  # SQLite rolls back by itself after some errors (a full disk)
                conn.execute("ROLLBACK")
            raise
