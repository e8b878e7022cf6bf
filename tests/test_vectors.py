"""vectors.faiss follows SQLite by the change: deltas, compaction, rebuilds, old files, readers.

Real FAISS and SQLite in tmp_path; synthetic normalised vectors written through Store.put_document,
so no model is needed. Every check compares with a full rebuild from SQLite, the reference.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from rag.storage import vectors
from rag.storage.store import Store
from rag.types import Chunk, Document

DIM = 16
ALWAYS_DELTA = 1e9  # compact_fraction: never fold the delta into the base
ALWAYS_COMPACT = 0.0  # compact_fraction: rewrite the base on every change


@pytest.fixture
def store(tmp_path):
    store = Store.open(tmp_path / "index", create=True)
    yield store
    store.close()


@pytest.fixture
def rng():
    return np.random.default_rng(12)


def unit(rng, n: int) -> np.ndarray:
    x = rng.standard_normal((n, DIM)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def put(store: Store, name: str, embeddings: np.ndarray) -> list[int]:
    """Write (or replace) the document `name` with one chunk per row; return its chunk ids."""
    doc = Document(path=Path(f"/docs/{name}.txt"), title=name, sections=[], content_hash=f"{name}-{embeddings[0, 0]}",
                   mtime=0.0, size=1)
    chunks = [Chunk(i, f"{name} chunk {i}", (), None, 0, 1, f"{name} chunk {i}") for i in range(len(embeddings))]
    with store.transaction():
        store.set_meta("dim", str(DIM))
        store.put_document(doc, chunks, embeddings)
    return chunk_ids(store, name)


def chunk_ids(store: Store, name: str) -> list[int]:
    rows = store.conn.execute(
        "SELECT c.id FROM chunks c JOIN documents d ON d.id = c.document_id WHERE d.path = ? ORDER BY c.ordinal",
        (f"/docs/{name}.txt",),
    )
    return [r[0] for r in rows]


def remove(store: Store, name: str) -> None:
    with store.transaction():
        assert store.delete_document(f"/docs/{name}.txt")


def results(index: vectors.VectorIndex, queries: np.ndarray, k: int = 10) -> list[list[tuple[int, float]]]:
    return [index.search(q, k) for q in queries]


def assert_same_as_rebuild(store: Store, queries: np.ndarray, index: vectors.VectorIndex | None = None) -> None:
    index = index or vectors.load_file(store.root, DIM)
    reference = vectors.build(store, DIM)
    assert index.generation == store.generation
    assert len(index) == len(reference) == store.chunk_count()
    for got, expected in zip(results(index, queries), results(reference, queries)):
        assert [cid for cid, _ in got] == [cid for cid, _ in expected]
        assert np.allclose([s for _, s in got], [s for _, s in expected], atol=1e-6)
    ids, stored = next(store.iter_embeddings(DIM, batch=100_000))
    if index.kind == "flat":
        assert np.array_equal(index.index.reconstruct_batch(ids), stored)
    else:  # an IVF index keeps no id -> vector map: every stored vector must find itself
        assert [index.search(v, 1)[0][0] for v in stored] == ids.tolist()


def logged(store: Store) -> int:
    return store.conn.execute("SELECT COUNT(*) FROM vector_log").fetchone()[0]


@pytest.mark.parametrize("compact_fraction, outcome", [(ALWAYS_DELTA, "delta"), (ALWAYS_COMPACT, "compacted")])
def test_add_replace_and_delete_give_the_same_results_as_a_full_rebuild(store, rng, compact_fraction, outcome):
    for name in ("a", "b", "c"):
        put(store, name, unit(rng, 20))
    assert vectors.refresh_file(store, compact_fraction=compact_fraction) == "rebuilt"
    queries = unit(rng, 8)

    put(store, "d", unit(rng, 20))  # add
    assert vectors.refresh_file(store, compact_fraction=compact_fraction) == outcome
    assert_same_as_rebuild(store, queries)

    put(store, "b", unit(rng, 25))  # replace
    assert vectors.refresh_file(store, compact_fraction=compact_fraction) == outcome
    assert_same_as_rebuild(store, queries)

    remove(store, "c")  # delete
    assert vectors.refresh_file(store, compact_fraction=compact_fraction) == outcome
    assert_same_as_rebuild(store, queries)
    assert logged(store) == 0  # the log is pruned once the file has caught up


def test_an_unchanged_store_leaves_the_file_alone(store, rng):
    put(store, "a", unit(rng, 20))
    vectors.refresh_file(store)
    written = (store.root / vectors.FILE_NAME).stat().st_mtime_ns

    assert vectors.refresh_file(store) == "current"
    assert (store.root / vectors.FILE_NAME).stat().st_mtime_ns == written


def test_chunk_ids_reused_by_sqlite_never_leave_a_stale_vector(store, rng):
    put(store, "a", unit(rng, 20))
    old = unit(rng, 20)
    old_ids = put(store, "b", old)  # the highest ids: SQLite hands them out again once deleted
    vectors.refresh_file(store, compact_fraction=ALWAYS_DELTA)
    remove(store, "b")
    vectors.refresh_file(store, compact_fraction=ALWAYS_DELTA)
    new = unit(rng, 20)
    new_ids = put(store, "c", new)
    assert set(new_ids) & set(old_ids), "SQLite did not reuse the ids: the test proves nothing"

    assert vectors.refresh_file(store, compact_fraction=ALWAYS_DELTA) == "delta"

    index = vectors.load_file(store.root, DIM)
    assert np.array_equal(index.index.reconstruct_batch(np.array(new_ids)), new)
    for vector in old:  # nothing still answers with b's vectors at cosine 1
        assert index.search(vector, 1)[0][1] < 0.999
    assert_same_as_rebuild(store, unit(rng, 8))


def test_a_replace_that_reuses_ids_in_one_transaction_updates_their_vectors(store, rng):
    put(store, "a", unit(rng, 20))
    put(store, "b", unit(rng, 20))
    vectors.refresh_file(store, compact_fraction=ALWAYS_DELTA)
    ids = put(store, "b", unit(rng, 20))  # delete and insert in one generation: the same ids come back

    assert vectors.refresh_file(store, compact_fraction=ALWAYS_DELTA) == "delta"
    assert_same_as_rebuild(store, unit(rng, 8))
    assert max(ids) == store.chunk_count()


def test_a_file_several_generations_behind_is_brought_up_to_date(store, rng):
    put(store, "a", unit(rng, 20))
    put(store, "b", unit(rng, 20))
    vectors.refresh_file(store, compact_fraction=ALWAYS_DELTA)
    behind = store.generation
    put(store, "c", unit(rng, 20))
    put(store, "a", unit(rng, 15))
    remove(store, "c")  # c's ids come back for d: reused across generations
    put(store, "d", unit(rng, 20))
    assert store.generation == behind + 4

    assert vectors.refresh_file(store, compact_fraction=ALWAYS_DELTA) == "delta"
    assert_same_as_rebuild(store, unit(rng, 8))


def test_a_reader_brings_a_file_behind_up_to_date_in_memory_and_leaves_it_to_the_writer(store, rng):
    put(store, "a", unit(rng, 20))
    vectors.refresh_file(store)
    behind = store.generation
    put(store, "b", unit(rng, 20))  # committed by an ingest that has not refreshed the file yet
    remove(store, "a")

    index = vectors.open_vectors(store, DIM)

    assert_same_as_rebuild(store, unit(rng, 8), index)
    assert vectors.file_generation(store.root) == behind


def test_a_delta_that_outgrows_its_share_of_the_base_is_folded_into_it(store, rng):
    put(store, "a", unit(rng, 100))
    vectors.refresh_file(store)
    put(store, "b", unit(rng, 10))  # 10 removed + 10 added = 20 <= 0.25 * 100
    assert vectors.refresh_file(store, compact_fraction=0.25) == "delta"
    put(store, "c", unit(rng, 10))  # 40 in all > 25

    assert vectors.refresh_file(store, compact_fraction=0.25) == "compacted"
    assert not (store.root / vectors.DELTA_NAME).exists()
    assert vectors.read_header(store.root).count == 120
    assert_same_as_rebuild(store, unit(rng, 8))


def damage_missing(root: Path) -> None:
    (root / vectors.FILE_NAME).unlink()


def damage_garbage(root: Path) -> None:
    (root / vectors.FILE_NAME).write_bytes(np.random.default_rng(1).bytes(4096))


def damage_truncated(root: Path) -> None:
    data = (root / vectors.FILE_NAME).read_bytes()
    (root / vectors.FILE_NAME).write_bytes(data[: len(data) // 2])


def damage_delta(root: Path) -> None:
    data = bytearray((root / vectors.DELTA_NAME).read_bytes())
    data[-1] ^= 0xFF  # one flipped bit in a vector: the checksum catches it
    (root / vectors.DELTA_NAME).write_bytes(bytes(data))


@pytest.mark.parametrize("damage", [damage_missing, damage_garbage, damage_truncated, damage_delta],
                         ids=["missing", "garbage", "truncated", "corrupt-delta"])
def test_a_missing_or_corrupt_file_is_rebuilt(store, rng, damage):
    put(store, "a", unit(rng, 30))
    vectors.refresh_file(store)
    put(store, "b", unit(rng, 5))
    vectors.refresh_file(store, compact_fraction=ALWAYS_DELTA)  # base + delta on disk
    damage(store.root)
    queries = unit(rng, 8)

    assert_same_as_rebuild(store, queries, vectors.open_vectors(store, DIM))  # a reader rebuilds
    put(store, "c", unit(rng, 5))
    assert vectors.refresh_file(store, compact_fraction=ALWAYS_DELTA) == "delta"
    damage(store.root)
    put(store, "d", unit(rng, 5))
    assert vectors.refresh_file(store, compact_fraction=ALWAYS_DELTA) == "rebuilt"  # so does the writer
    assert_same_as_rebuild(store, queries)


def test_a_file_older_than_the_change_log_is_rebuilt(store, rng):
    put(store, "a", unit(rng, 20))
    vectors.refresh_file(store)
    old = store.root.parent / "old"
    shutil.copytree(store.root, old, ignore=shutil.ignore_patterns("rag.sqlite*", "ingest.lock"))
    put(store, "b", unit(rng, 20))
    vectors.refresh_file(store)  # prunes the log up to here
    shutil.copy(old / vectors.FILE_NAME, store.root / vectors.FILE_NAME)  # e.g. restored from a backup
    put(store, "c", unit(rng, 20))

    assert vectors.refresh_file(store) == "rebuilt"
    assert_same_as_rebuild(store, unit(rng, 8))


def test_crossing_the_flat_limit_rebuilds_into_the_other_kind(store, rng):
    put(store, "a", unit(rng, 30))
    assert vectors.refresh_file(store, flat_limit=50) == "rebuilt"
    assert vectors.load_file(store.root, DIM).kind == "flat"
    queries = unit(rng, 8)

    put(store, "b", unit(rng, 30))  # 60 > 50
    assert vectors.refresh_file(store, flat_limit=50, compact_fraction=ALWAYS_DELTA) == "rebuilt"
    index = vectors.load_file(store.root, DIM)
    assert index.kind == "ivf"
    # so few vectors probe every list: the IVF search is exact, and comparable with the flat rebuild
    assert_same_as_rebuild(store, queries, index)

    put(store, "c", unit(rng, 5))  # still above the limit: an ordinary delta on the IVF base
    assert vectors.refresh_file(store, flat_limit=50, compact_fraction=ALWAYS_DELTA) == "delta"
    assert vectors.load_file(store.root, DIM).kind == "ivf"
    assert_same_as_rebuild(store, queries)

    remove(store, "b")  # 35 <= 50: back to flat
    assert vectors.refresh_file(store, flat_limit=50, compact_fraction=ALWAYS_DELTA) == "rebuilt"
    assert vectors.load_file(store.root, DIM).kind == "flat"
    assert_same_as_rebuild(store, queries)


def test_a_reader_that_opened_the_old_file_keeps_working_during_a_refresh(store, rng):
    put(store, "a", unit(rng, 40))
    vectors.refresh_file(store)
    queries = unit(rng, 8)
    reader = vectors.open_vectors(store, DIM)
    before = results(reader, queries)
    mid_read = open(store.root / vectors.FILE_NAME, "rb")  # a reader still loading the old base

    try:
        put(store, "b", unit(rng, 40))
        assert vectors.refresh_file(store, compact_fraction=ALWAYS_COMPACT) == "compacted"  # a new base
        put(store, "c", unit(rng, 5))
        assert vectors.refresh_file(store, compact_fraction=ALWAYS_DELTA) == "delta"

        assert results(reader, queries) == before
        old = vectors._load_base(mid_read, DIM)
    finally:
        mid_read.close()
    assert len(old) == 40 and results(old, queries) == before
    assert_same_as_rebuild(store, queries, vectors.open_vectors(store, DIM))


def make_as_before_the_change_log(store: Store) -> None:
    """Take the store back to the schema of an index built before migration 004_vector_log."""
    with store.transaction(bump=False):
        for trigger in ("chunks_logged_insert", "chunks_logged_delete", "chunks_logged_update"):
            store.conn.execute(f"DROP TRIGGER {trigger}")
        store.conn.execute("DROP TABLE vector_log")
        store.conn.execute("DELETE FROM meta WHERE key = 'vector_log_since'")
        store.conn.execute("DELETE FROM schema_migrations WHERE name = '004_vector_log'")


def test_an_index_built_before_deltas_still_opens_and_its_unproven_file_is_rebuilt(tmp_path, rng, caplog):
    import faiss
    import struct

    store = Store.open(tmp_path / "index", create=True)
    make_as_before_the_change_log(store)
    put(store, "a", unit(rng, 20))
    index = vectors.build(store, DIM)
    with open(store.root / vectors.FILE_NAME, "wb") as out:  # the version-1 layout: header, payload
        out.write(struct.pack("<8sqq", b"RAGVEC1\n", index.generation, DIM))
        out.write(faiss.serialize_index(index.index).tobytes())
    store.close()
    store = Store.open(tmp_path / "index")  # applies the migrations
    queries = unit(rng, 8)
    with caplog.at_level("WARNING", logger="rag.storage.vectors"):
        assert_same_as_rebuild(store, queries, vectors.open_vectors(store, DIM))
    assert [r.getMessage() for r in caplog.records] == [
        f"rag: {store.root / vectors.FILE_NAME} was written by an older rag, without a checksum: rebuilt from "
        f"rag.sqlite (no re-embedding)"]

    put(store, "b", unit(rng, 5))
    assert vectors.refresh_file(store, compact_fraction=ALWAYS_DELTA) == "delta"
    assert vectors.read_header(store.root).count == 20
    assert_same_as_rebuild(store, queries)
    store.close()


def test_a_change_larger_than_one_fetch_is_applied_in_full(store, rng):
    put(store, "a", unit(rng, 30))
    vectors.refresh_file(store)
    put(store, "everything", unit(rng, vectors.FETCH_BATCH + 7))  # read back from SQLite in two batches
    put(store, "a", unit(rng, 30))

    assert vectors.refresh_file(store) == "compacted"
    assert_same_as_rebuild(store, unit(rng, 8))


# -- a file proves what it is: checksum and state id (issue 30, cases 1 and 2) ----------------------


def rows_offset(store: Store, data: bytes) -> int:
    """Where the flat index's float rows start in the saved file (found by the first stored vector)."""
    _, first = next(store.iter_embeddings(DIM, batch=1))
    offset = data.find(first[0].tobytes())
    assert offset > 0
    return offset


def permute_rows(root: Path, store: Store) -> None:
    data = bytearray((root / vectors.FILE_NAME).read_bytes())
    at, row = rows_offset(store, bytes(data)), DIM * 4
    rows = [bytes(data[at + i * row : at + (i + 1) * row]) for i in range(store.chunk_count())]
    rows = rows[1:] + rows[:1]  # the same bytes, the same size, every row in another place
    data[at : at + len(rows) * row] = b"".join(rows)
    (root / vectors.FILE_NAME).write_bytes(bytes(data))


def random_rows(root: Path, store: Store) -> None:
    data = bytearray((root / vectors.FILE_NAME).read_bytes())
    at = rows_offset(store, bytes(data))
    data[at : at + 4 * DIM * 10] = np.random.default_rng(3).bytes(4 * DIM * 10)  # similarities of 1e37
    (root / vectors.FILE_NAME).write_bytes(bytes(data))


@pytest.mark.parametrize("damage", [permute_rows, random_rows], ids=["permuted-rows", "random-rows"])
def test_a_vector_file_whose_rows_were_changed_on_disk_is_rebuilt_not_searched(store, rng, damage, caplog):
    put(store, "a", unit(rng, 30))
    put(store, "b", unit(rng, 30))
    vectors.refresh_file(store)
    queries = unit(rng, 8)
    damage(store.root, store)

    with caplog.at_level("WARNING", logger="rag.storage.vectors"):
        index = vectors.open_vectors(store, DIM)

    assert_same_as_rebuild(store, queries, index)
    assert [r.getMessage() for r in caplog.records] == [
        f"rag: {store.root / vectors.FILE_NAME} does not match its checksum (its vectors were changed or damaged "
        f"on disk): rebuilt from rag.sqlite (no re-embedding)"]
    assert vectors.verify(store, DIM) is None  # the rebuilt file was saved


def lose_the_last_commits(store: Store, backup: Path) -> Store:
    """Put back an older copy of rag.sqlite, as a restore from a backup (or a lost WAL) does."""
    root = store.root
    store.close()
    for leftover in root.glob("rag.sqlite*"):
        leftover.unlink()
    shutil.copy(backup, root / "rag.sqlite")
    return Store.open(root)


def test_a_vector_file_from_before_lost_commits_is_not_taken_for_the_state_that_reused_its_generation(
        tmp_path, rng, caplog):
    store = Store.open(tmp_path / "index", create=True)
    put(store, "kettle", unit(rng, 10))
    vectors.refresh_file(store)
    store.close()
    backup = tmp_path / "backup.sqlite"
    shutil.copy(tmp_path / "index" / "rag.sqlite", backup)  # closed: everything is in the main file
    store = Store.open(tmp_path / "index")
    toaster = unit(rng, 10)
    put(store, "toaster", toaster)
    vectors.refresh_file(store)  # the file now holds the toaster, at generation 2
    saved = vectors.read_header(store.root)

    store = lose_the_last_commits(store, backup)  # back to generation 1: the toaster never happened
    kettle = unit(rng, 10)
    put(store, "kettle", kettle)  # generation 2 again, with other content
    assert store.generation == saved.generation

    with caplog.at_level("WARNING", logger="rag.storage.vectors"):
        index = vectors.open_vectors(store, DIM)
    assert_same_as_rebuild(store, unit(rng, 8), index)
    assert index.search(kettle[0], 1)[0][1] > 0.999  # the question about kettles gets the kettle
    assert all(index.search(v, 1)[0][1] < 0.999 for v in toaster)
    assert "was built from another state of generation 2 than rag.sqlite holds" in caplog.text
    store.close()


def test_the_writer_rebuilds_a_vector_file_from_before_lost_commits_too(tmp_path, rng):
    store = Store.open(tmp_path / "index", create=True)
    put(store, "a", unit(rng, 10))
    vectors.refresh_file(store)
    store.close()
    backup = tmp_path / "backup.sqlite"
    shutil.copy(tmp_path / "index" / "rag.sqlite", backup)
    store = Store.open(tmp_path / "index")
    put(store, "b", unit(rng, 10))
    put(store, "c", unit(rng, 10))
    vectors.refresh_file(store)  # generation 3
    store = lose_the_last_commits(store, backup)
    put(store, "d", unit(rng, 10))
    put(store, "e", unit(rng, 10))  # generation 3 again

    assert vectors.refresh_file(store) == "rebuilt"
    assert_same_as_rebuild(store, unit(rng, 8))
    store.close()


def test_a_file_ahead_of_sqlite_is_rebuilt_with_a_line_saying_why(tmp_path, rng, caplog):
    store = Store.open(tmp_path / "index", create=True)
    put(store, "a", unit(rng, 10))
    store.close()
    backup = tmp_path / "backup.sqlite"
    shutil.copy(tmp_path / "index" / "rag.sqlite", backup)
    store = Store.open(tmp_path / "index")
    put(store, "b", unit(rng, 10))
    vectors.refresh_file(store)
    store = lose_the_last_commits(store, backup)

    with caplog.at_level("WARNING", logger="rag.storage.vectors"):
        assert_same_as_rebuild(store, unit(rng, 8), vectors.open_vectors(store, DIM))
    assert "is ahead of rag.sqlite (generation 2, rag.sqlite 1)" in caplog.text
    store.close()


def test_verify_names_what_is_wrong_and_nothing_when_all_is_well(store, rng):
    put(store, "a", unit(rng, 30))
    vectors.refresh_file(store)
    assert vectors.verify(store, DIM) is None

    permute_rows(store.root, store)
    assert "does not match its checksum" in vectors.verify(store, DIM)
    (store.root / vectors.FILE_NAME).unlink()
    assert vectors.verify(store, DIM) == "is missing"


def test_a_temporary_file_left_by_a_killed_save_is_not_counted_and_is_removed_by_the_next_save(store, rng):
    put(store, "a", unit(rng, 30))
    vectors.refresh_file(store)
    size = store.size_on_disk()
    # named as a save by a process that no longer runs names it (pid above any pid_max)
    left = store.root / ".vectors.faiss-99999999-x1y2z3"
    left.write_bytes(bytes(1 << 20))

    assert store.size_on_disk() == size
    put(store, "b", unit(rng, 5))
    vectors.refresh_file(store)
    assert not left.exists()


def test_a_temporary_file_of_a_save_still_running_is_left_alone(store, rng):
    put(store, "a", unit(rng, 30))
    vectors.refresh_file(store)
    running = store.root / f".vectors.faiss-{os.getppid()}-a1b2c3"  # a live process's
    running.write_bytes(bytes(1024))

    put(store, "b", unit(rng, 5))
    vectors.refresh_file(store)
    assert running.exists()
