"""The SQLite store's guarantees: schema migrations applied once, each with its record, even when
several processes open a fresh index at once; an index from a newer rag refused; an older one
migrated; heading paths stored as lists; id lookups of any size."""

from __future__ import annotations

import multiprocessing
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from rag.errors import IndexTooNew
from rag.storage.migrations import STEPS, _check_names, migrate
from rag.storage.store import Store
from rag.types import Chunk, Document


def _open_fresh(root: str, barrier) -> str:
    barrier.wait()
    try:
        Store.open(Path(root), create=True).close()
        return "ok"
    except Exception as exc:  # the test reports what went wrong in which process
        return f"{type(exc).__name__}: {exc}"


def test_processes_opening_a_fresh_index_at_once_all_succeed(tmp_path):
    ctx = multiprocessing.get_context("spawn")
    for attempt in range(3):
        root = tmp_path / f"fresh{attempt}"
        root.mkdir()
        with ctx.Manager() as manager:
            barrier = manager.Barrier(4)
            with ctx.Pool(4) as pool:
                results = pool.starmap(_open_fresh, [(str(root), barrier)] * 4)
        assert results == ["ok"] * 4
        conn = sqlite3.connect(root / "rag.sqlite")
        assert [r[0] for r in conn.execute("SELECT name FROM schema_migrations ORDER BY name")] == [n for n, _ in STEPS]
        conn.close()


def test_an_index_made_by_a_newer_rag_is_refused_with_a_clear_message(tmp_path):
    Store.open(tmp_path / "ix", create=True).close()
    conn = sqlite3.connect(tmp_path / "ix" / "rag.sqlite")
    conn.execute("INSERT INTO schema_migrations VALUES ('999_from_the_future', 0)")
    conn.commit()
    conn.close()

    with pytest.raises(IndexTooNew, match="made by a newer version of rag .*999_from_the_future.*upgrade rag"):
        Store.open(tmp_path / "ix")


def test_a_migration_step_may_hold_a_trigger_with_semicolons(tmp_path):
    def with_trigger(conn):
        conn.execute("CREATE TABLE t (x INTEGER)")
        conn.execute("CREATE TABLE log (x INTEGER)")
        conn.execute("CREATE TRIGGER t_log AFTER INSERT ON t BEGIN\n INSERT INTO log VALUES (new.x);\n"
                     " INSERT INTO log VALUES (new.x + 1);\nEND")

    conn = sqlite3.connect(tmp_path / "db", isolation_level=None)
    migrate(conn, "test", steps=[("001_trigger", with_trigger)])
    conn.execute("INSERT INTO t VALUES (1)")
    assert [r[0] for r in conn.execute("SELECT x FROM log")] == [1, 2]


def test_duplicate_migration_names_are_refused():
    with pytest.raises(ValueError, match="duplicate"):
        _check_names([("001", lambda c: None), ("001", lambda c: None)])


def test_looking_up_more_ids_than_sqlite_has_variables_works(tmp_path):
    with Store.open(tmp_path / "ix", create=True) as store:
        assert store.chunks(list(range(40_000))) == {}
        assert store.embeddings(list(range(40_000)), 384) == {}


def _index_before_heading_lists(root: Path) -> None:
    """An index as rag wrote it before step 008: heading paths joined with " > " into one string."""
    root.mkdir(parents=True)
    conn = sqlite3.connect(root / "rag.sqlite", isolation_level=None)
    migrate(conn, str(root), steps=STEPS[:-1])
    conn.execute("INSERT INTO documents (id, path, content_hash, mtime, size, title, pages, chunks, ingested_at) "
                 "VALUES (1, '/notes/guide.md', 'h', 0, 1, 'Guide', NULL, 2, 0)")
    for chunk_id, heading, text in [(1, "Guide > Install", "Run the installer."), (2, "", "No heading here.")]:
        conn.execute("INSERT INTO chunks (id, document_id, ordinal, text, page, heading, char_start, char_end, "
                     "embedding) VALUES (?, 1, ?, ?, NULL, ?, 0, 0, ?)",
                     (chunk_id, chunk_id - 1, text, heading, np.zeros(4, dtype=np.float32).tobytes()))
        conn.execute("INSERT INTO chunks_fts (rowid, text, heading, title) VALUES (?, ?, ?, 'Guide')",
                     (chunk_id, text, heading))
    conn.close()


def test_an_index_from_before_heading_lists_opens_with_its_headings_as_tuples(tmp_path):
    _index_before_heading_lists(tmp_path / "ix")

    with Store.open(tmp_path / "ix") as store:
        assert {cid: c.heading for cid, c in store.chunks([1, 2]).items()} == {1: ("Guide", "Install"), 2: ()}


def test_moving_headings_to_lists_re_embeds_nothing_and_keeps_them_searchable(tmp_path):
    _index_before_heading_lists(tmp_path / "ix")
    with sqlite3.connect(tmp_path / "ix" / "rag.sqlite") as conn:
        logged = conn.execute("SELECT COUNT(*) FROM vector_log").fetchone()[0]

    with Store.open(tmp_path / "ix") as store:
        assert store.conn.execute("SELECT COUNT(*) FROM vector_log").fetchone()[0] == logged
        assert [cid for cid, _ in store.keyword_search('"install"', 5)] == [1]


def test_a_heading_holding_the_separator_stays_one_level(tmp_path):
    heading = ("Options > Advanced", "Proxy")
    document = Document(path=Path("/notes/options.md"), title="Options", sections=[], content_hash="h", mtime=0,
                        size=1)
    chunk = Chunk(ordinal=0, text="Set the proxy.", heading=heading, page=None, char_start=0, char_end=14,
                  embed_text="Set the proxy.")

    with Store.open(tmp_path / "ix", create=True) as store:
        with store.transaction():
            store.put_document(document, [chunk], np.zeros((1, 4), dtype=np.float32))
        (stored,) = store.chunks([1]).values()

    assert stored.heading == heading
