"""The ingest run, in process with the real model, SQLite and FAISS: what gets stored, what is
re-embedded, what is reported, and what survives a bad file."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from ingest.chunk import ChunkSettings
from ingest.pipeline import PARSER_VERSION, IngestReport, SilentProgress, run_ingest
from rag.storage import vectors
from rag.errors import IndexBusy, IndexMismatch
from rag.config import Settings
from rag.index import Index
from rag.storage.migrations import STEPS
from rag.storage.store import Store
from tests.helpers import CORPUS, HOSTILE, make_notes, needs_file_modes, noise, write_hostile
from tests.pdfs import write_pdf

CORPUS_FILES = sorted([*CORPUS, "manual.pdf"])
NOTES_FILES = ["bread.md", "manual.pdf", "moons.txt"]


def failures(report: IngestReport) -> list[tuple[str, str]]:
    return [(f.path, f.reason) for f in report.failures]


def remove(store: Store, paths: list[Path]) -> tuple[list[str], list[str]]:
    removal = Index(Settings(index_dir=store.root.parent, index=store.root.name), store).remove(paths)
    return removal.removed, removal.unknown


@pytest.fixture
def notes(tmp_path) -> Path:
    return make_notes(tmp_path / "notes")


@pytest.fixture
def store(tmp_path):
    store = Store.open(tmp_path / "indexes" / "default", create=True)
    yield store
    store.close()


def ingest(store, embedder, *paths: Path, settings: ChunkSettings = ChunkSettings(), **options) -> IngestReport:
    return run_ingest(list(paths), store, embedder, settings, **options)


def indexed(store) -> list[str]:
    return [Path(d.path).name for d in store.documents()]


def found_in(store, word: str) -> list[str]:
    """Names of the documents whose chunks keyword search finds for `word`."""
    ids = [chunk_id for chunk_id, _ in store.keyword_search(f'"{word}"', 20)]
    return sorted({Path(c.path).name for c in store.chunks(ids).values()})


# -- what an ingest stores ---------------------------------------------------------------------


def test_ingest_of_a_folder_stores_every_format(store, embedder, corpus):
    report = ingest(store, embedder, corpus)

    assert (report.added, report.failed, report.ok) == (5, 0, True)
    assert indexed(store) == CORPUS_FILES
    assert report.chunks == store.chunk_count() > 0


def test_every_format_is_searchable_by_its_own_words(store, embedder, corpus):
    ingest(store, embedder, corpus)

    for word, document in [("sourdough", "cooking.md"), ("Phobos", "astronomy.txt"), ("ZX", "errors.rst"),
                           ("tomatoes", "garden.html"), ("bearing", "manual.pdf")]:
        assert found_in(store, word) == [document]


def test_html_script_text_is_not_indexed(store, embedder, corpus):
    ingest(store, embedder, corpus)

    assert found_in(store, "javascript") == []


def test_pdf_chunks_keep_their_page_numbers(store, embedder, tmp_path):
    pages = [[f"Page {n} is about topic{n}.", "Some filler text for the page."] for n in range(1, 4)]
    write_pdf(tmp_path / "book.pdf", pages, title="Book")

    ingest(store, embedder, tmp_path / "book.pdf")

    rows = store.conn.execute("SELECT page, text FROM chunks ORDER BY page").fetchall()
    assert [page for page, _ in rows] == [1, 2, 3]
    assert all(f"topic{page}" in text for page, text in rows)
    assert store.document(str(tmp_path / "book.pdf")).pages == 3


def test_markdown_chunks_keep_their_heading_path(store, embedder, corpus):
    ingest(store, embedder, corpus)

    ids = [chunk_id for chunk_id, _ in store.keyword_search('"celery"', 5)]
    assert [c.heading for c in store.chunks(ids).values()] == [("Kitchen notes", "Soup")]


def test_index_records_model_and_chunk_settings(store, embedder, corpus):
    ingest(store, embedder, corpus, settings=ChunkSettings(120, 20))

    meta = {key: store.get_meta(key) for key in ("embed_model", "dim", "chunk_tokens", "overlap_tokens")}
    assert meta == {"embed_model": "sentence-transformers/all-MiniLM-L6-v2", "dim": "384",
                    "chunk_tokens": "120", "overlap_tokens": "20"}


# -- incremental -------------------------------------------------------------------------------


def test_reingest_of_an_unchanged_corpus_embeds_nothing(store, embedder, notes):
    ingest(store, embedder, notes)

    again = ingest(store, embedder, notes)

    assert (again.unchanged, again.added, again.updated, again.chunks) == (3, 0, 0, 0)


def test_touched_but_identical_file_is_not_reembedded(store, embedder, notes):
    ingest(store, embedder, notes)
    later = os.stat(notes / "bread.md").st_mtime + 100
    os.utime(notes / "bread.md", (later, later))

    again = ingest(store, embedder, notes)

    assert (again.unchanged, again.updated, again.chunks) == (3, 0, 0)


def test_files_read_by_an_older_parser_are_read_again_though_unchanged(store, embedder, notes):
    ingest(store, embedder, notes)
    with store.transaction(bump=False):
        store.conn.execute("UPDATE documents SET parser = ? WHERE path LIKE ?", (PARSER_VERSION - 1, "%bread.md"))

    again = ingest(store, embedder, notes)
    after = ingest(store, embedder, notes)

    assert (again.unchanged, again.updated, again.chunks) == (2, 1, 1)
    assert {d.parser for d in store.documents()} == {PARSER_VERSION}
    assert (after.unchanged, after.updated) == (3, 0)


def test_an_index_from_before_parser_versions_opens_and_marks_its_documents_old(tmp_path):
    root = tmp_path / "indexes" / "default"
    root.mkdir(parents=True)
    conn = sqlite3.connect(root / "rag.sqlite")
    conn.execute("CREATE TABLE schema_migrations (name TEXT PRIMARY KEY, applied_at REAL NOT NULL)")
    name, step = STEPS[0]
    step(conn)
    conn.execute("INSERT INTO schema_migrations VALUES (?, 0)", (name,))
    conn.execute("INSERT INTO documents (path, content_hash, mtime, size, title, pages, chunks, ingested_at) "
                 "VALUES ('/old.txt', 'h', 0, 1, 'Old', NULL, 0, 0)")
    conn.commit()
    conn.close()

    store = Store.open(root)

    assert [(d.path, d.parser) for d in store.documents()] == [("/old.txt", 1)]
    store.close()


def test_edited_file_has_its_chunks_replaced(store, embedder, notes):
    ingest(store, embedder, notes)
    (notes / "moons.txt").write_text("Saturn has rings made of ice and rock.\n")

    again = ingest(store, embedder, notes)

    assert (again.updated, again.unchanged) == (1, 2)
    assert found_in(store, "Phobos") == []
    assert found_in(store, "Saturn") == ["moons.txt"]


def test_deleted_file_is_pruned_when_its_folder_is_ingested_again(store, embedder, notes):
    ingest(store, embedder, notes)
    (notes / "manual.pdf").unlink()

    again = ingest(store, embedder, notes)

    assert again.removed == 1
    assert "manual.pdf" not in indexed(store)
    assert found_in(store, "bearing") == []


def test_no_prune_keeps_a_deleted_file(store, embedder, notes):
    ingest(store, embedder, notes)
    (notes / "manual.pdf").unlink()

    again = ingest(store, embedder, notes, prune=False)

    assert again.removed == 0
    assert "manual.pdf" in indexed(store)


def test_ingesting_one_file_prunes_nothing_else(store, embedder, notes):
    ingest(store, embedder, notes)
    (notes / "manual.pdf").unlink()

    ingest(store, embedder, notes / "bread.md")

    assert "manual.pdf" in indexed(store)


def test_newly_ignored_file_is_pruned(store, embedder, notes):
    ingest(store, embedder, notes)
    (notes / ".ragignore").write_text("*.pdf\n")

    again = ingest(store, embedder, notes)

    assert again.removed == 1
    assert "manual.pdf" not in indexed(store)


def test_removing_a_document_forgets_its_chunks(store, embedder, notes):
    ingest(store, embedder, notes)

    removed, unknown = remove(store, [notes / "bread.md"])

    assert (removed, unknown) == ([str(notes / "bread.md")], [])
    assert found_in(store, "Sourdough") == []


def test_removing_an_unknown_path_changes_nothing(store, embedder, notes):
    ingest(store, embedder, notes)
    generation = store.generation

    removed, unknown = remove(store, [notes / "nope.md"])

    assert (removed, unknown) == ([], [str(notes / "nope.md")])
    assert store.generation == generation  # the vector file stays valid
    assert len(indexed(store)) == 3


# -- hostile files -----------------------------------------------------------------------------


@pytest.mark.parametrize("kind", HOSTILE)
def test_bad_file_is_reported_and_the_rest_is_indexed(store, embedder, notes, kind):
    bad, reason = write_hostile(notes, kind)

    report = ingest(store, embedder, notes)

    assert not report.ok
    assert [(path, why.startswith(reason)) for path, why in failures(report)] == [(str(bad), True)]
    assert indexed(store) == NOTES_FILES


@needs_file_modes
def test_unreadable_file_is_reported_and_the_rest_is_indexed(store, embedder, notes):
    (notes / "private.md").write_text("# Private\n\nsecret\n")
    (notes / "private.md").chmod(0)

    report = ingest(store, embedder, notes)

    assert failures(report) == [(str(notes / "private.md"), "permission denied")]
    assert indexed(store) == NOTES_FILES


class DeleteOnStart(SilentProgress):
    """Deletes a file once discovery has listed it, before it is read."""

    def __init__(self, victim: Path):
        self.victim = victim

    def start(self, files: int) -> None:
        self.victim.unlink()


def test_file_that_vanishes_mid_run_is_reported_and_the_rest_is_indexed(store, embedder, notes):
    report = ingest(store, embedder, notes, progress=DeleteOnStart(notes / "bread.md"))

    assert failures(report) == [(str(notes / "bread.md"), "broken symlink or vanished file")]
    assert indexed(store) == [name for name in NOTES_FILES if name != "bread.md"]


def test_missing_path_among_others_is_reported(store, embedder, notes, tmp_path):
    report = ingest(store, embedder, tmp_path / "gone.md", notes)

    assert failures(report) == [(str(tmp_path / "gone.md"), "broken symlink or vanished file")]
    assert len(indexed(store)) == 3


def test_symlink_loops_are_reported_and_the_rest_is_indexed(store, embedder, notes):
    (notes / "again").symlink_to(notes, target_is_directory=True)
    (notes / "self.md").symlink_to("self.md")

    report = ingest(store, embedder, notes)

    assert sorted(failures(report)) == [(str(notes / "again"), "symlink loop (links back to a folder above it)"),
                                       (str(notes / "self.md"), "symlink loop")]
    assert indexed(store) == NOTES_FILES


def test_previously_indexed_file_that_turns_corrupt_keeps_its_old_version(store, embedder, notes):
    ingest(store, embedder, notes)
    (notes / "manual.pdf").write_bytes(b"%PDF-1.4\n" + noise(500))

    report = ingest(store, embedder, notes)

    assert [path for path, _ in failures(report)] == [str(notes / "manual.pdf")]
    assert found_in(store, "bearing") == ["manual.pdf"]


@needs_file_modes
def test_folder_that_turns_unreadable_keeps_its_documents(store, embedder, notes):
    (notes / "sub").mkdir()
    (notes / "sub" / "deep.md").write_text("# Deep\n\nThe walrus sleeps on ice.\n")
    ingest(store, embedder, notes)
    (notes / "sub").chmod(0)
    try:
        report = ingest(store, embedder, notes)
    finally:
        (notes / "sub").chmod(0o755)

    assert failures(report) == [(str(notes / "sub"), "permission denied")]
    assert report.removed == 0
    assert found_in(store, "walrus") == ["deep.md"]


class Recorder(SilentProgress):
    def __init__(self):
        self.total, self.done, self.failed = 0, 0, []

    def start(self, files: int) -> None:
        self.total = files

    def file_done(self) -> None:
        self.done += 1

    def failure(self, path: str, reason: str) -> None:
        self.failed.append(path)


def test_progress_counts_failed_files_as_done(store, embedder, notes):
    write_hostile(notes, "corrupt pdf")
    progress = Recorder()

    ingest(store, embedder, notes, progress=progress)

    assert progress.done == progress.total == 4
    assert progress.failed == [str(notes / "corrupt.pdf")]


# -- one index, one model, one chunking, one writer --------------------------------------------


def test_second_ingest_is_refused_while_one_holds_the_writer_lock(store, embedder, notes):
    with store.writer_lock():
        with pytest.raises(IndexBusy, match=f"another ingest \\(pid {os.getpid()}\\) is writing to"):
            ingest(Store.open(store.root), embedder, notes)


def test_index_built_with_another_model_refuses_ingest(store, embedder, notes):
    ingest(store, embedder, notes)
    with store.transaction(bump=False):
        store.set_meta("embed_model", "sentence-transformers/paraphrase-MiniLM-L3-v2")

    with pytest.raises(IndexMismatch) as refused:
        ingest(store, embedder, notes)

    message = str(refused.value)
    assert "\n" not in message
    assert "built with sentence-transformers/paraphrase-MiniLM-L3-v2, not sentence-transformers/all-MiniLM-L6-v2" in message


def test_changed_chunk_settings_are_refused_without_rebuild(store, embedder, notes):
    ingest(store, embedder, notes)

    with pytest.raises(IndexMismatch, match="uses --chunk-tokens 200 --overlap-tokens 30: pass those, or add --rebuild"):
        ingest(store, embedder, notes, settings=ChunkSettings(64, 8))


def test_rebuild_rechunks_every_document_with_new_settings(store, embedder, notes):
    (notes / "long.txt").write_text(" ".join(f"token{i}" for i in range(200)))
    ingest(store, embedder, notes)
    before = store.chunk_count()

    report = ingest(store, embedder, notes, settings=ChunkSettings(64, 8), rebuild=True)

    texts = [row[0] for row in store.conn.execute("SELECT text FROM chunks")]
    assert report.updated == 4
    assert len(texts) > before
    assert max(embedder.count_tokens(texts)) <= 64
    assert store.get_meta("chunk_tokens") == "64"


def test_rebuild_with_new_settings_rechunks_documents_not_named_too(store, embedder, notes):
    (notes / "long.txt").write_text(" ".join(f"token{i}" for i in range(200)))
    ingest(store, embedder, notes)

    report = ingest(store, embedder, notes / "bread.md", settings=ChunkSettings(64, 8), rebuild=True)

    texts = [row[0] for row in store.conn.execute("SELECT text FROM chunks")]
    assert report.updated == 4
    assert max(embedder.count_tokens(texts)) <= 64


# -- the derived vector file -------------------------------------------------------------------


def dense_top(store, embedder, question: str) -> list[int]:
    index = vectors.open_vectors(store, int(store.get_meta("dim")))
    return [chunk_id for chunk_id, _ in index.search(embedder.embed_query(question), 5)]


def damage_missing(path: Path) -> None:
    path.unlink()


def damage_garbage(path: Path) -> None:
    path.write_bytes(noise(4096))


def damage_truncated(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


@pytest.mark.parametrize("damage", [damage_missing, damage_garbage, damage_truncated],
                         ids=["missing", "garbage", "truncated"])
def test_damaged_vector_file_is_rebuilt_with_the_same_results(store, embedder, notes, damage):
    ingest(store, embedder, notes)
    expected = dense_top(store, embedder, "what does a sourdough starter need")
    damage(store.root / vectors.FILE_NAME)

    assert dense_top(store, embedder, "what does a sourdough starter need") == expected
    assert vectors.file_generation(store.root) == store.generation


def test_stale_vector_file_is_rebuilt_from_sqlite(store, embedder, notes, tmp_path):
    ingest(store, embedder, notes)
    stale = (store.root / vectors.FILE_NAME).read_bytes()
    (notes / "moons.txt").write_text("Saturn has rings made of ice and rock.\n")
    ingest(store, embedder, notes)
    (store.root / vectors.FILE_NAME).write_bytes(stale)  # e.g. a crash before the file was replaced

    top = dense_top(store, embedder, "Which planet has rings of ice?")

    assert Path(store.chunks(top[:1])[top[0]].path).name == "moons.txt"
    assert len(vectors.load_file(store.root, 384)) == store.chunk_count()


def test_vector_file_matches_sqlite_after_ingest(store, embedder, notes):
    ingest(store, embedder, notes)

    saved = vectors.load_file(store.root, 384)
    ids, stored = next(store.iter_embeddings(384))
    assert saved.generation == store.generation
    assert np.allclose(saved.index.reconstruct_batch(ids), stored)


def test_readers_see_the_last_commit_without_waiting_while_a_write_is_in_flight(store, embedder, notes):
    from rag.types import Chunk, Document

    ingest(store, embedder, notes)
    pending = Document(path=Path("/pending.txt"), title="t", sections=[], content_hash="h", mtime=0, size=1)
    vector = np.full((1, 384), 384 ** -0.5, dtype=np.float32)

    with store.transaction():
        store.put_document(pending, [Chunk(0, "pending", (), None, 0, 7, "pending")], vector)
        reader = sqlite3.connect(store.root / "rag.sqlite", timeout=0)  # a read that had to wait fails at once
        seen = reader.execute("SELECT COUNT(*) FROM documents").fetchone()
        reader.close()

    assert seen == (3,)  # the batch in flight is invisible until it commits
    assert store.conn.execute("SELECT COUNT(*) FROM documents").fetchone() == (4,)


def test_a_store_past_the_flat_limit_is_searched_through_a_trained_ivf_index(store):
    import faiss
    import numpy as np

    from rag.storage import vectors
    from rag.types import Chunk, Document

    rng = np.random.default_rng(7)
    embeddings = rng.normal(size=(300, 8)).astype(np.float32)
    embeddings /= np.linalg.norm(embeddings, axis=1, keepdims=True)
    chunks = [Chunk(i, f"chunk {i}", (), None, 0, 1, f"chunk {i}") for i in range(300)]
    doc = Document(path=Path("/synthetic.txt"), title="t", sections=[], content_hash="h", mtime=0, size=1)
    with store.transaction():
        store.put_document(doc, chunks, embeddings)

    index = vectors.build(store, 8, flat_limit=100)

    assert isinstance(faiss.downcast_index(index.index.index), faiss.IndexIVFFlat)
    ids = [cid for cid, _ in store.conn.execute("SELECT id, ordinal FROM chunks ORDER BY ordinal")]
    assert index.search(embeddings[42], 1)[0][0] == ids[42]
    # the trained index survives the round trip through vectors.faiss
    vectors.save(index, store.root, 8)
    assert vectors.load_file(store.root, 8).search(embeddings[7], 1)[0][0] == ids[7]


def test_reading_ahead_in_a_thread_builds_the_same_index_as_reading_in_turn(tmp_path):
    from rag.embedding.embedder import get_embedder
    from ingest.pipeline import LocalReader

    folder = tmp_path / "many"
    folder.mkdir()
    for i in range(12):
        (folder / f"note{i:02}.md").write_text(f"# Note {i}\n\nThe value of item {i} is {i * 7} units.\n" * 3)
    (folder / "broken.pdf").write_bytes(b"%PDF-1.4 broken")
    embedder = get_embedder("all-MiniLM-L6-v2", "onnx-fp32")
    stores = {}
    for ahead in (0, 3):
        store = Store.open(tmp_path / f"ix{ahead}", create=True)
        reader = LocalReader(embedder, ChunkSettings(), read_ahead=ahead)
        assert reader.read_ahead == ahead  # the exported runtime allows a second thread
        report = run_ingest([folder], store, embedder, ChunkSettings(), reader=reader)
        assert (report.added, [Path(f.path).name for f in report.failures]) == (12, ["broken.pdf"])
        stores[ahead] = store
    rows = {ahead: store.conn.execute(
        "SELECT d.path, c.ordinal, c.text, c.embedding FROM chunks c JOIN documents d ON d.id = c.document_id "
        "ORDER BY d.path, c.ordinal").fetchall() for ahead, store in stores.items()}
    assert [r[:3] for r in rows[0]] == [r[:3] for r in rows[3]]
    assert all(a[3] == b[3] for a, b in zip(rows[0], rows[3]))


def test_torch_embeds_read_in_turn():
    from rag.embedding.embedder import get_embedder
    from ingest.pipeline import LocalReader

    assert LocalReader(get_embedder("all-MiniLM-L6-v2", "torch"), ChunkSettings()).read_ahead == 0


def test_a_named_file_that_fails_leaves_no_root_behind(tmp_path, embedder):
    """Labels are relative to the ingested roots; a path that failed (here a corrupt PDF named on
    its own, and a device) must not become one, while a folder and a good named file do."""
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "a.md").write_text("# A\n\nThe kettle needs descaling every month.\n", encoding="utf-8")
    good = tmp_path / "single.md"
    good.write_text("# Single\n\nThe toaster crumb tray slides out from the bottom.\n", encoding="utf-8")
    bad = tmp_path / "broken.pdf"
    bad.write_bytes(b"%PDF-1.4\n" + bytes(range(256)) * 8)
    store = Store.open(tmp_path / "index", create=True)

    report = run_ingest([folder, good, bad, Path(os.devnull)], store, embedder, ChunkSettings())

    assert report.added == 2 and len(report.failures) == 2
    assert store.roots() == [str(folder), str(good)]
    store.close()
