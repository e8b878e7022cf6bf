"""`rag status --check`: SQLite's integrity check, FTS5's, and the vector file read whole.

rag.sqlite is the truth: when SQLite finds it damaged nothing derived from it is trusted, and the
advice is to ingest again into a fresh folder. The vector file is derived: when it is wrong in any
way (checksum, state, count, a sampled vector) it is rebuilt from SQLite on the spot, under the
writer lock, and reported as repaired.
"""

from __future__ import annotations

import sqlite3

from rag.errors import IndexDamaged, StorageError
from rag.storage import vectors
from rag.storage.store import Store
from rag.types import IndexCheck

MAX_PROBLEMS = 5  # of SQLite's integrity check: the first few say enough


def _database(store: Store) -> str:
    try:
        rows = [r[0] for r in store.conn.execute(f"PRAGMA integrity_check({MAX_PROBLEMS})")]
    except sqlite3.DatabaseError as exc:  # too damaged for the check to run at all
        return f"damaged: {exc}"
    if rows == ["ok"]:
        return "ok"
    problems = [line.strip() for row in rows for line in str(row).splitlines()
                if line.strip() and not line.startswith("***")]  # "*** in database main ***": which file
    shown = "; ".join(problems[:MAX_PROBLEMS])
    return f"damaged: {shown}" + (f" (and {len(problems) - MAX_PROBLEMS} more)" if len(problems) > MAX_PROBLEMS else "")


def _keyword_index(store: Store) -> tuple[str, bool]:
    """FTS5's verdict, and whether it found damage (a read-only index cannot run the check)."""
    try:
        with store.transaction(bump=False):  # FTS5 runs its check as a (changeless) write
            store.conn.execute("INSERT INTO chunks_fts (chunks_fts) VALUES ('integrity-check')")
    except StorageError as exc:
        return f"not checked ({exc})", isinstance(exc, IndexDamaged)
    except sqlite3.DatabaseError as exc:
        return str(exc), True
    return "ok", False


def check_store(store: Store, rebuild_command: str) -> IndexCheck:
    """Check the index; call under the writer lock (the vector file may be rebuilt)."""
    database = _database(store)
    keyword, keyword_damaged = _keyword_index(store) if database == "ok" else ("not checked", False)
    if database != "ok" or keyword_damaged:
        return IndexCheck(
            index=str(store.root), database=database, keyword_index=keyword,
            vectors="not checked (derived from rag.sqlite)", ok=False,
            advice=f"rag.sqlite at {store.root} is damaged, so its documents cannot be trusted: delete that folder "
                   f"and ingest again ({rebuild_command})",
        )
    dim = store.get_meta("dim")
    if not dim or store.chunk_count() == 0:
        return IndexCheck(index=str(store.root), database=database, keyword_index=keyword,
                          vectors="ok (no vectors yet)")
    problem = vectors.verify(store, int(dim))
    if problem is None:
        return IndexCheck(index=str(store.root), database=database, keyword_index=keyword,
                          vectors=f"ok ({store.chunk_count():,} vectors, checksum and state match rag.sqlite)")
    with store.snapshot():
        generation = store.generation
        vectors.save(vectors.build(store, int(dim)), store.root, int(dim))
    store.forget_vector_changes(through=generation)
    return IndexCheck(index=str(store.root), database=database, keyword_index=keyword,
                      vectors=f"{vectors.FILE_NAME} {problem}", repaired=[f"{vectors.FILE_NAME}: rebuilt from rag.sqlite"])
