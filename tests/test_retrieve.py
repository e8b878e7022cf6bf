"""Retrieval on real little corpora: dense finds meaning, keyword finds exact codes, hybrid both;
no question is ever FTS syntax; off-topic questions fall under the relevance cut-off."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from rag.config import DEFAULT_MIN_SCORE, Settings
from rag.errors import IndexMismatch, IndexMissing
from rag.retrieval.search import Retriever, fuse

PARAPHRASE = "what's the biggest world orbiting the sun"  # astronomy.txt: "Jupiter is the largest planet"
OFF_TOPIC = "What is the capital of Mongolia's cricket team coach?"


@pytest.fixture(scope="module")
def retriever(built_index, embedder):
    retriever = Retriever.open(Settings(index_dir=built_index / "indexes"), embedder=embedder)
    yield retriever
    retriever.store.close()


SPARE_PARTS = ["blender", "kettle", "toaster", "mixer", "juicer", "grinder", "fryer", "steamer", "oven", "fridge"]


@pytest.fixture(scope="module")
def parts_retriever(tmp_path_factory, embedder):
    """A catalogue of near-identical lines that differ only in their part number."""
    from ingest.chunk import ChunkSettings
    from ingest.pipeline import run_ingest
    from rag.storage.store import Store

    root = tmp_path_factory.mktemp("parts")
    folder = root / "corpus"
    folder.mkdir()
    sections = [
        f"## {name.title()}\n\nThe {name} uses replacement part KX-{1180 + i}; order it from the service desk.\n"
        for i, name in enumerate(SPARE_PARTS)
    ]
    (folder / "parts.md").write_text("# Spare parts\n\n" + "\n".join(sections), encoding="utf-8")
    store = Store.open(root / "indexes" / "default", create=True)
    assert run_ingest([folder], store, embedder, ChunkSettings()).ok
    store.close()
    retriever = Retriever.open(Settings(index_dir=root / "indexes"), embedder=embedder)
    yield retriever
    retriever.store.close()


def names(hits) -> list[str]:
    return [Path(h.path).name for h in hits]


# -- what each method finds ------------------------------------------------------------------


def test_dense_finds_a_paraphrase_that_shares_no_keyword_with_the_document(retriever):
    dense = retriever.search(PARAPHRASE, top_k=3, mode="dense")
    keyword = retriever.search(PARAPHRASE, top_k=3, mode="keyword")

    assert names(dense.hits)[0] == "astronomy.txt"
    assert "astronomy.txt" not in names(keyword.hits)


def test_keyword_finds_an_error_code_word_for_word(retriever):
    result = retriever.search("ZX-4411", top_k=3, mode="keyword")

    top = result.hits[0]
    assert Path(top.path).name == "errors.rst"
    assert top.heading == ("Error codes", "Overview")
    assert "ZX-4411" in top.text


def test_keyword_finds_a_part_number_on_its_pdf_page(retriever):
    result = retriever.search("BK-7", top_k=3, mode="keyword")

    assert [(Path(h.path).name, h.page) for h in result.hits] == [("manual.pdf", 2)]


def test_dense_confuses_a_part_number_with_its_neighbours_and_keyword_does_not(parts_retriever):
    dense = parts_retriever.search("KX-1187", top_k=3, mode="dense")
    keyword = parts_retriever.search("KX-1187", top_k=3, mode="keyword")

    assert "KX-1187" not in dense.hits[0].text
    assert "KX-1187" in keyword.hits[0].text


def test_keyword_search_matches_only_the_part_with_that_exact_number(parts_retriever):
    result = parts_retriever.search("KX-1187", top_k=5, mode="keyword")

    assert len(result.hits) == 1
    assert "The steamer uses replacement part KX-1187" in result.hits[0].text


def test_keyword_search_matches_the_pieces_of_a_compound_word_without_digits():
    from rag.retrieval.search import fts_query

    assert fts_query("read-only mount") == '"read only" OR "mount" OR "read"'



def test_hybrid_puts_the_exact_part_number_first_even_when_dense_disagrees(parts_retriever):
    result = parts_retriever.search("Which appliance takes KX-1187?", top_k=3, mode="hybrid")

    assert "The steamer uses replacement part KX-1187" in result.hits[0].text


def test_hybrid_finds_a_paraphrase(retriever):
    result = retriever.search(PARAPHRASE, top_k=5, mode="hybrid")

    assert "astronomy.txt" in names(result.hits)


def test_hybrid_finds_an_exact_code_first(retriever):
    result = retriever.search("ZX-4411", top_k=5, mode="hybrid")

    assert names(result.hits)[0] == "errors.rst"


def test_hybrid_finds_both_halves_of_a_two_part_question(retriever):
    result = retriever.search("Which planet is the biggest, and what is error ZX-4411?", top_k=3, mode="hybrid")

    assert {"astronomy.txt", "errors.rst"} <= set(names(result.hits))


# -- what a hit carries ----------------------------------------------------------------------


def test_a_hybrid_hit_carries_its_source_text_score_and_both_ranks(retriever):
    top = retriever.search("How long do I bake sourdough bread?", top_k=3, mode="hybrid").hits[0]

    assert Path(top.path).name == "cooking.md"
    assert top.page is None
    assert top.heading == ("Kitchen notes", "Bread")
    assert "forty minutes" in top.text
    assert top.title == "Kitchen notes"
    assert (top.dense_rank, top.keyword_rank) == (1, 1)
    assert top.score > 0
    assert top.similarity > DEFAULT_MIN_SCORE


def test_a_dense_hit_has_no_keyword_rank(retriever):
    hits = retriever.search("How long do I bake sourdough bread?", top_k=3, mode="dense").hits

    assert [h.dense_rank for h in hits] == [1, 2, 3]
    assert all(h.keyword_rank is None for h in hits)
    assert hits[0].score == pytest.approx(hits[0].similarity)  # in dense mode the score is the cosine


def test_a_keyword_hit_has_no_dense_rank_but_still_a_similarity(retriever):
    top = retriever.search("sourdough", top_k=3, mode="keyword").hits[0]

    assert (top.dense_rank, top.keyword_rank) == (None, 1)
    assert top.similarity > 0  # the cut-off needs it even when the dense leg did not run


def test_pdf_hits_carry_their_page_number(retriever):
    install = retriever.search("How do I install it as an administrator?", top_k=1).hits[0]
    noise = retriever.search("the fan makes a grinding noise", top_k=1).hits[0]

    assert (Path(install.path).name, install.page) == ("manual.pdf", 1)
    assert (Path(noise.path).name, noise.page) == ("manual.pdf", 2)


def test_top_k_limits_the_number_of_hits(retriever):
    assert len(retriever.search("bread", top_k=2, mode="dense").hits) == 2


def test_hybrid_scores_are_the_mean_of_both_legs_in_standard_deviations():
    dense = [(1, 0.9), (2, 0.7), (3, 0.5)]  # mean 0.7, spread sqrt(0.08 / 3)
    keyword = [(2, 12.0), (4, 6.0)]  # mean 9, spread 3
    cosine = {1: 0.9, 2: 0.7, 3: 0.5, 4: 0.6}

    fused = fuse(dense, keyword, cosine)

    spread = (0.08 / 3) ** 0.5
    assert fused[2] == pytest.approx((0.0 + 1.0) / 2)
    assert fused[1] == pytest.approx((0.2 / spread - 1.0) / 2)  # not in the keyword list: its lowest score
    assert fused[4] == pytest.approx((-0.1 / spread - 1.0) / 2)  # keyword only: its own cosine counts
    assert sorted(fused, key=lambda cid: -fused[cid]) == [2, 1, 4, 3]


def test_a_keyword_hit_that_stands_out_outweighs_a_flat_dense_list():
    dense = [(cid, 0.52 - cid / 1000) for cid in range(1, 31)]  # thirty chunks, all about as close
    keyword = [(30, 30.0)] + [(cid, 5.0 - cid / 100) for cid in range(1, 30)]  # one stands far out

    fused = fuse(dense, keyword, dict(dense))

    assert max(fused, key=fused.get) == 30
    assert dict(dense)[30] == min(score for _, score in dense)  # although dense ranked it last


def test_a_lone_keyword_match_stands_out_against_the_chunks_that_did_not_match():
    dense = [(1, 0.62), (2, 0.60), (3, 0.58), (4, 0.50)]
    keyword = [(4, 7.5)]  # every chunk that matched: the others score 0

    complete = fuse(dense, keyword, dict(dense), keyword_complete=True)
    cut = fuse(dense, keyword, dict(dense), keyword_complete=False)

    assert max(complete, key=complete.get) == 4
    assert max(cut, key=cut.get) == 1  # a cut list says nothing about the chunks below it


def test_without_keyword_hits_hybrid_keeps_the_dense_order():
    dense = [(5, 0.8), (6, 0.6), (7, 0.55)]

    fused = fuse(dense, [], dict(dense))

    assert sorted(fused, key=lambda cid: -fused[cid]) == [5, 6, 7]


def test_fusion_leaves_out_a_chunk_without_a_vector():
    fused = fuse([(1, 0.9)], [(1, 3.0), (9, 2.0)], {1: 0.9})  # 9 was deleted after the search

    assert set(fused) == {1}


def test_a_documents_best_chunk_gains_from_its_other_chunks_evidence():
    # document 10 has one chunk the dense leg likes (1) and another the keyword leg likes (2);
    # document 20's chunk (3) is second in both legs and wins on its own
    dense = [(1, 0.90), (3, 0.70), (2, 0.45), (4, 0.40), (5, 0.38)]
    keyword = [(2, 10.0), (3, 7.0), (4, 3.0), (5, 2.0), (1, 1.0)]
    cosine = dict(dense)
    documents = {1: 10, 2: 10, 3: 20, 4: 30, 5: 40}

    plain = fuse(dense, keyword, cosine)
    with_documents = fuse(dense, keyword, cosine, documents=documents)

    assert max(plain, key=plain.get) == 3
    assert max(with_documents, key=with_documents.get) in (1, 2)  # document 10 first
    best_of_10 = max((1, 2), key=plain.get)
    other_of_10 = 2 if best_of_10 == 1 else 1
    assert with_documents[other_of_10] == pytest.approx(plain[other_of_10])  # only the best chunk moves
    assert with_documents[3] == pytest.approx(plain[3])  # a one-chunk document is its own best evidence
    assert with_documents[4] == pytest.approx(plain[4])


# -- questions that look like FTS5 syntax ----------------------------------------------------

HOSTILE_AROUND_A_WORD = [
    '"sourdough',
    'sourdough"',
    '"sourdough" "bread',
    "sourdough AND NOT bread",
    "sourdough OR",
    "NOT sourdough",
    "NEAR(sourdough starter, 2)",
    "(sourdough",
    "sourdough)",
    "sourdough*",
    "^sourdough",
    "-sourdough",
    "+sourdough",
    "text:sourdough",
    "heading:sourdough",
    "{text heading}: sourdough",
    "sourdough 🍞🔥",
    "sourdough; DROP TABLE chunks; --",
    "sour\x00dough sourdough",
]


@pytest.mark.parametrize("question", HOSTILE_AROUND_A_WORD)
def test_fts_syntax_in_a_question_is_searched_as_words(retriever, question):
    # the keyword leg alone: it is where FTS5 would read syntax, and it needs no embedding
    found = retriever.keyword(question, limit=3)

    top = retriever.store.chunks([found[0][0]])[found[0][0]]
    assert top.heading == ("Kitchen notes", "Bread")


NO_WORDS = ['"', '""', "'", "(((", ")", "*", "^", "-", ":", "- -", "?!.,;", "🍞🔥🤖", "\\"]
ONLY_OPERATORS_OR_STOPWORDS = ["AND", "OR", "NOT", "NEAR", "the of and", "what is it", "   x   "]


@pytest.mark.parametrize("question", NO_WORDS)
def test_a_question_of_punctuation_only_is_answered_by_meaning_alone(retriever, question):
    result = retriever.search(question, top_k=3, mode="hybrid")

    assert retriever.keyword(question, limit=50) == []  # nothing for FTS5 to search, and no syntax error
    assert [(h.dense_rank, h.keyword_rank) for h in result.hits] == [(1, None), (2, None), (3, None)]


@pytest.mark.parametrize("question", ONLY_OPERATORS_OR_STOPWORDS)
def test_operators_and_stopwords_alone_are_searched_as_the_words_they_are(retriever, question):
    words = {w.lower() for w in re.findall(r"\w+", question)}

    result = retriever.search(question, top_k=3, mode="hybrid")

    found = retriever.store.chunks([cid for cid, _ in retriever.keyword(question, limit=50)])
    for chunk in found.values():  # FTS5 indexes the text, the heading path and the title
        assert words & set(re.findall(r"\w+", f"{chunk.text} {' '.join(chunk.heading)} {chunk.title}".lower())), chunk
    assert len(result.hits) == 3


def test_a_very_long_question_is_searched(retriever):
    question = "How long do I bake sourdough? " + " ".join(f"word{i}" for i in range(3000))

    result = retriever.search(question, top_k=3, mode="keyword")

    assert result.hits[0].heading == ("Kitchen notes", "Bread")


def test_a_question_with_undecodable_bytes_is_searched(retriever):
    # `rag ask $'caf\xe9 sourdough'` in a UTF-8 shell reaches Python as a lone surrogate
    question = "caf\udce9 sourdough bread"

    result = retriever.search(question, top_k=3, mode="hybrid")

    assert result.hits[0].heading == ("Kitchen notes", "Bread")


# -- the relevance cut-off --------------------------------------------------------------------


def test_an_off_topic_question_finds_nothing_relevant(retriever):
    result = retriever.search(OFF_TOPIC, top_k=5, mode="hybrid", min_score=DEFAULT_MIN_SCORE)

    assert result.hits == []
    assert result.below_cutoff
    assert result.best_similarity < DEFAULT_MIN_SCORE


@pytest.mark.parametrize("question", [
    "How long do I bake sourdough?",
    "When should I prune roses?",
    "What does error ZX-4411 mean?",
    "What is BK-7?",
    "The fan makes a grinding noise",
    "What is a light-year?",
    PARAPHRASE,
])
def test_on_topic_questions_pass_the_default_cut_off(retriever, question):
    result = retriever.search(question, top_k=5, mode="hybrid", min_score=DEFAULT_MIN_SCORE)

    assert result.hits
    assert not result.below_cutoff


def test_the_cut_off_says_why(retriever):
    result = retriever.search("What is the capital of the cricket team's coach?", top_k=5, mode="hybrid",
                              min_score=DEFAULT_MIN_SCORE)

    assert "under the cut-off" in result.cutoff_reason
    assert retriever.search(OFF_TOPIC, top_k=5, mode="hybrid", min_score=DEFAULT_MIN_SCORE).cutoff_reason == \
        'no passage mentions "Mongolia"'
    assert retriever.search("When should I prune roses?", top_k=5, min_score=DEFAULT_MIN_SCORE).cutoff_reason == ""


def test_without_a_calibration_the_keyword_leg_must_corroborate_a_weak_match():
    from rag.retrieval.relevance import FALLBACK_CORROBORATED, judge

    floor = DEFAULT_MIN_SCORE
    grey = (floor + FALLBACK_CORROBORATED) / 2
    assert not judge(floor - 0.01, floor, shared=3).covered  # under the floor: nothing helps
    assert not judge(grey, floor, shared=0).covered  # weak and the legs share nothing
    assert "top 10" in judge(grey, floor, shared=0).reason
    assert judge(grey, floor, shared=1).covered  # weak, but one chunk is in both legs' top 10
    assert judge(FALLBACK_CORROBORATED, floor, shared=0).covered  # strong enough alone
    assert judge(grey, floor, shared=None).covered  # one leg ran (dense or keyword mode): the floor only
    assert judge(-0.5, 0.0, shared=0).covered  # a floor of 0 turns the cut-off off
    assert judge(0.1, None, shared=0).covered  # no cut-off asked for (evaluation)


def test_a_calibrated_index_cuts_what_scores_like_its_unrelated_probes():
    from rag.retrieval.relevance import CORROBORATED_SPREADS, FLOOR_SPREADS, calibrate, judge

    # a broad corpus: unrelated questions already reach about 0.3
    calibration = calibrate([0.24, 0.26, 0.28, 0.30, 0.30, 0.32, 0.34, 0.36, 0.60], generation=7)
    assert calibration.median == pytest.approx(0.30)
    assert calibration.spread == pytest.approx(1.4826 * 0.04)  # the one covered probe (0.60) hardly counts
    floor = calibration.cosine(FLOOR_SPREADS)
    corroborated = calibration.cosine(CORROBORATED_SPREADS)

    assert not judge(floor - 0.01, 0.2, shared=5, calibration=calibration).covered
    assert "does not cover" in judge(floor - 0.01, 0.2, shared=5, calibration=calibration).reason
    between = (floor + corroborated) / 2
    assert not judge(between, 0.2, shared=0, calibration=calibration).covered
    assert judge(between, 0.2, shared=2, calibration=calibration).covered
    assert judge(between, 0.2, shared=None, calibration=calibration).covered  # one leg: no agreement asked
    assert judge(corroborated + 0.01, 0.2, shared=0, calibration=calibration).covered
    assert not judge(0.15, 0.2, shared=5, calibration=calibration).covered  # the user's floor still holds
    assert judge(0.1, 0.0, shared=0, calibration=calibration).covered  # --min-score 0: off


def test_a_damaged_calibration_is_ignored():
    from rag.retrieval.relevance import Calibration

    assert Calibration.from_json("{not json") is None
    assert Calibration.from_json('{"median": 0.2}') is None
    assert Calibration.from_json(None) is None


def test_agreement_counts_chunks_in_both_legs_top_ten():
    from rag.retrieval.relevance import agreement

    assert agreement(list(range(20)), list(range(5, 25))) == 5
    assert agreement(list(range(20)), list(range(10, 30))) == 0  # shared, but not in both top tens
    assert agreement([1, 2], []) == 0


def test_without_a_cut_off_an_off_topic_question_still_gets_the_nearest_passages(retriever):
    result = retriever.search(OFF_TOPIC, top_k=5, mode="hybrid")

    assert len(result.hits) == 5
    assert not result.below_cutoff


def test_a_keyword_search_that_matches_nothing_is_empty_not_below_the_cut_off(retriever):
    result = retriever.search("xylophone zeppelin", top_k=5, mode="keyword")

    assert result.hits == []
    assert not result.below_cutoff


# -- opening an index ----------------------------------------------------------------------------


def test_opening_an_index_that_does_not_exist_says_to_ingest_first(tmp_path, embedder):
    with pytest.raises(IndexMissing, match=r"run `rag ingest PATH` first"):
        Retriever.open(Settings(index_dir=tmp_path / "indexes"), embedder=embedder)


def test_opening_an_index_with_another_embedding_model_is_refused(built_index):
    with pytest.raises(IndexMismatch, match="was built with sentence-transformers/all-MiniLM-L6-v2"):
        Retriever.open(Settings(index_dir=built_index / "indexes", embed_model="some-other-model"))


def test_a_search_lists_the_unfamiliar_words_of_the_question_the_index_all_but_lacks(parts_retriever):
    # nginx and kubelet are in no passage and spelt in pieces by the model's vocabulary; "someone"
    # and "afterwards" are in no passage either but are everyday words; kettle is in the index
    question = "Can someone set up nginx and the kubelet for the kettle afterwards?"
    retrieval = parts_retriever.search(question, top_k=3, mode="hybrid")

    assert retrieval.scarce_words == ["nginx", "kubelet"]
    assert parts_retriever.search(question, top_k=3, mode="keyword").scarce_words == []
