"""The relevance cut-off's keyword evidence (rag.retrieval.relevance): a passage that holds the
question's rare words together covers it whatever its cosine, and is put first; questions whose
words are common in the index or absent from it get no such help."""

from __future__ import annotations

import pytest

from rag.retrieval.relevance import (HELD_SHARE, RARE_MIN, Calibration, Coverage, KeywordEvidence, cosine_covers, idf,
                                     is_rare, judge, keyword_evidence, lead_with_evidence, names_a_thing)
from rag.retrieval.search import key_terms
from rag.text import question_names

PASSAGES = 500
CALIBRATED = Calibration(median=0.20, spread=0.06, probes=40, generation=1)  # floor 0.35, band to 0.38


def evidence(**words: tuple[int, set[int]]) -> KeywordEvidence:
    """Keyword evidence for question words given as word=(passages holding it, hits holding it)."""
    hits = sorted({c for _, held in words.values() for c in held})
    return keyword_evidence(PASSAGES, words, hits)


def test_a_passage_holding_all_of_the_questions_rare_words_covers_it():
    found = evidence(zanzibar=(1, {7}), quokkas=(1, {7}))

    assert found.covers
    assert found.chunk_id == 7
    assert found.share == pytest.approx(1.0)
    assert set(found.rare) == {"zanzibar", "quokkas"}


def test_common_words_found_together_are_no_evidence():
    # "How do I get a raise?" over a corpus where raise is everywhere
    found = evidence(**{"raise": (300, {1, 2, 3})})

    assert found.share == pytest.approx(1.0)
    assert not found.rare
    assert not found.covers
    assert "common in this index" in found.describe()


def test_a_word_the_index_lacks_weighs_more_than_any_word_it_holds():
    assert idf(0, PASSAGES) > idf(1, PASSAGES) > idf(50, PASSAGES) > idf(400, PASSAGES)
    # "What is the capital of Australia?": capital occurs once, australia nowhere
    found = evidence(capital=(1, {4}), australia=(0, set()))

    assert found.share < HELD_SHARE
    assert not found.covers
    assert found.missing == ("australia",)
    assert found.describe() == 'no passage holds its words together: the best holds "capital" but not "australia"'


def test_a_paraphrase_that_keeps_most_of_the_weight_is_covered():
    # "Which animals prefer semantic search?" for "Zanzibar quokkas prefer semantic search over grep."
    found = evidence(animals=(1, {9}), prefer=(4, {7}), semantic=(8, {7}), search=(25, {7, 8}))

    assert found.chunk_id == 7  # not the passage about animals, which holds less of the question
    assert found.covers
    assert found.missing == ("animals",)


def test_rare_means_at_most_one_percent_of_the_passages_or_a_few_in_a_small_index():
    assert is_rare(50, 5000) and not is_rare(51, 5000)
    assert is_rare(RARE_MIN, 20) and not is_rare(RARE_MIN + 1, 20)
    assert not is_rare(0, 20)  # absent is not "found"


def test_no_words_to_look_up_is_no_evidence():
    found = keyword_evidence(PASSAGES, {}, [])

    assert not found.covers
    assert found.describe() == "it has no words to look up"
    # "What is it?": the keyword leg searched the stopwords and found passages, the cut-off weighs nothing
    assert not keyword_evidence(PASSAGES, {}, [3, 4]).covers


def test_keyword_evidence_covers_a_question_under_every_cosine_rule():
    found = evidence(garage=(1, {3}), keypad=(1, {3}))

    assert judge(0.05, 0.2, shared=0, calibration=CALIBRATED, evidence=found).covered  # under the floor too
    assert judge(0.30, 0.2, shared=0, calibration=CALIBRATED, evidence=found).covered
    assert judge(0.05, 0.2, shared=0, calibration=None, evidence=found).covered


def test_without_keyword_evidence_the_cosine_rules_still_cut_and_say_both_reasons():
    weak = evidence(capital=(1, {4}), australia=(0, set()))

    verdict = judge(0.30, 0.2, shared=0, calibration=CALIBRATED, evidence=weak)

    assert not verdict.covered
    assert verdict.reason == ('the best passage scored 0.30, no better than questions this index does not cover '
                              '(under 0.35); no passage holds its words together: the best holds "capital" but not '
                              '"australia"')
    assert judge(0.30, 0.0, shared=0, calibration=CALIBRATED, evidence=weak).covered  # --min-score 0: off


def test_the_passage_holding_the_rare_words_is_put_first_when_the_first_holds_less():
    found = evidence(zanzibar=(1, {7}), quokkas=(1, {7}))

    assert lead_with_evidence([3, 5, 7, 9], found) == [7, 3, 5, 9]
    assert lead_with_evidence([3, 5, 9], found) == [7, 3, 5]  # from beyond the top k: the last one makes room


def test_the_order_stays_when_the_first_passage_holds_as_much():
    found = evidence(lru=(3, {3, 7}), cache=(4, {3, 7}))

    assert lead_with_evidence([3, 5, 7], found) == [3, 5, 7]
    assert lead_with_evidence([5, 3, 7], evidence(common=(400, {7}))) == [5, 3, 7]  # no evidence: no change
    assert lead_with_evidence([5, 3], None) == [5, 3]


def test_the_fusions_order_stands_when_the_meaning_search_covers_the_question_by_itself():
    # a question the index covers well (a Git how-to) shares rare words with many passages; the one
    # holding most of them is not for that the answer, so it is put first only when the cosine
    # alone would have cut the question (a one-line fact in a page about something else)
    found = evidence(zanzibar=(1, {7}), quokkas=(1, {7}))

    assert lead_with_evidence([3, 5, 7, 9], found, cosine_covers=True) == [3, 5, 7, 9]
    assert lead_with_evidence([3, 5, 7, 9], found, cosine_covers=False) == [7, 3, 5, 9]
    assert cosine_covers(0.62, 0.2, shared=4, calibration=CALIBRATED)
    assert not cosine_covers(0.24, 0.2, shared=0, calibration=CALIBRATED)  # a needle's cosine
    assert not cosine_covers(None, 0.2, shared=None, calibration=CALIBRATED)
    assert cosine_covers(0.62, 0.0, shared=4, calibration=CALIBRATED)  # cut-off off: the default floor decides
    assert not cosine_covers(0.1, 0.0, shared=4, calibration=None)


def test_one_rare_word_of_a_longer_question_alone_is_a_coincidence_not_coverage():
    # "What is the capital of Australia?" over the Python docs: "australia" is rare and heavy (a
    # time-zone example), but no passage holds it with "capital"
    lone = evidence(australia=(2, {7}), capital=(60, {3}))
    assert lone.share >= HELD_SHARE and lone.rare == ("australia",)
    assert not lone.covers
    assert 'the best holds only "australia"' in lone.describe()
    # a question of one word is covered by that word; two words held together cover a longer one
    assert evidence(pythondontwritebytecode=(2, {7})).covers
    assert evidence(zanzibar=(1, {7}), quokkas=(1, {7}), prefer=(80, set())).covers


def test_key_terms_are_the_keyword_legs_words_with_compounds_by_their_pieces():
    assert key_terms("What does PYTHONDONTWRITEBYTECODE do?") == ["pythondontwritebytecode"]
    assert key_terms("How do I use functools.lru_cache?") == ["use", "functools", "lru_cache"]
    assert key_terms("Who is Marguerite Okonkwo-Lindqvist?") == ["marguerite", "okonkwo", "lindqvist"]
    assert key_terms("Which part is KX-1187?") == ["part", "kx 1187"]  # a part number stays one phrase
    assert key_terms("What is it?") == []


def test_a_score_just_under_its_limit_is_not_printed_as_equal_to_it():
    assert judge(0.199, 0.2, shared=3).reason == "the best passage scored 0.199, under the cut-off 0.200 (--min-score)"
    assert judge(0.1996, 0.2, shared=3).reason == "the best passage scored 0.1996, under the cut-off 0.2000 (--min-score)"
    assert judge(0.15, 0.2, shared=3).reason == "the best passage scored 0.15, under the cut-off 0.20 (--min-score)"


def test_the_names_whose_absence_cuts_a_question_name_a_thing_not_code():
    assert [n for n in question_names("Does Kotlin or GitHub Actions run on my new iPhone?") if names_a_thing(n)] == \
        ["Kotlin", "GitHub Actions", "iPhone"]
    # short ones are as often spelled out (continuous integration, kilobytes); code is often the
    # user's own, which the documents cannot hold
    assert not any(map(names_a_thing, ["CI", "KB", "3D", "my_items", "summary.mydata", "--depth", "get_app_dir"]))


def test_a_question_naming_what_no_passage_holds_is_not_covered_whatever_else_matches():
    names = {"Kotlin": ["kotlin"]}
    found = keyword_evidence(PASSAGES, {"kotlin": (0, set()), "data": (2, {3}), "class": (3, {3})}, [3], names)

    assert found.covers  # data and class are rare here and together, but the question is about Kotlin
    assert found.unknown == ("Kotlin",)
    assert judge(0.9, 0.2, 5, CALIBRATED, found) == Coverage(False, 'no passage mentions "Kotlin"')


def test_a_name_the_index_lacks_beside_a_rare_one_it_holds_is_asked():
    names = {"get_app_dir": ["get", "app", "dir"], "macOS": ["macos"]}
    statistics = {"get": (40, {3}), "app": (2, {3}), "dir": (3, {3}), "macos": (0, set())}
    found = keyword_evidence(PASSAGES, statistics, [3], names)

    assert found.unknown == ("macOS",)
    assert not found.names_absent
    assert judge(0.5, 0.2, 5, CALIBRATED, found).covered


def test_a_plain_capitalised_word_the_index_holds_does_not_save_a_question_about_something_it_lacks():
    # "How do I query a database from Rust with the Diesel ORM?" asked of the SQLite docs, which
    # mention Rust once: the question is about Diesel
    names = {"Rust": ["rust"], "Diesel": ["diesel"]}
    statistics = {"rust": (1, {3}), "diesel": (0, set()), "database": (300, {3, 4})}
    found = keyword_evidence(PASSAGES, statistics, [3, 4], names)

    assert found.names_absent
    assert judge(0.45, 0.2, 1, CALIBRATED, found) == Coverage(False, 'no passage mentions "Diesel"')


def test_a_code_name_the_index_lacks_does_not_cut_the_question():
    # "How do I sort my_items by date?" of the Python docs: my_items is the user's own
    names = {"my_items": ["my", "items"]}
    found = keyword_evidence(PASSAGES, {"my": (40, {3}), "items": (0, set()), "sort": (4, {3})}, [3], names)

    assert found.unknown == ()
    assert not found.names_absent


def test_an_option_of_one_letter_is_no_name_without_its_command():
    # "diff -u" described the format asked about: "No passage mentions -u" followed a right answer
    assert question_names("How can I produce a diff in the same format that diff -u prints?") == []
    assert question_names("What do -rf and --depth do in `rm -r`?") == ["rm -r", "-rf", "--depth"]


def test_a_question_in_title_case_or_capitals_names_nothing_by_its_capitals():
    assert question_names("How Do I Shelve My Half-Done Edits?") == []
    assert question_names("HOW DO I SHELVE MY EDITS?") == []
    assert question_names("What does GitLab Premium cost?") == ["GitLab Premium"]


def test_an_abbreviation_or_the_unit_of_a_number_is_no_name():
    # "No passage mentions e.g or -byte" was said of right answers (measured on the labelled sets)
    assert question_names("With 1024-byte pages, is reading a 10 KB BLOB, e.g. a photo, faster from a file?") == \
        ["KB", "BLOB"]
    assert question_names("What can I use for exact decimal arithmetic, i.e. for money, in --strict mode?") == \
        ["--strict"]


def test_a_plain_word_hyphened_onto_a_name_is_not_part_of_it():
    # "No passage mentions CPU-heavy" was said beside a passage on "CPU-intensive JavaScript operations"
    assert question_names("How do I run CPU-heavy JavaScript on other threads?") == ["CPU", "JavaScript"]
    assert question_names("What is in the WAL-index header?") == ["WAL"]
    assert question_names("Why is my app.db-journal file left behind?") == ["app.db-journal"]  # one identifier
    assert question_names("How do I set the X-Forwarded-For header?") == ["X-Forwarded-For"]


def test_a_name_given_as_an_example_is_no_name_a_passage_must_mention():
    from rag.text import example_names

    assert example_names("How do I parse command-line flags like --verbose without a library?") == {"--verbose"}
    assert example_names("How can I diff documents such as Word or PDF files?") == {"Word"}
    assert example_names("Which headers (e.g. stdio.h) go first?") == {"stdio.h"}
    # "like" that wants is no example
    assert example_names("I'd like SQLite's allocations to fail now and then. How?") == set()
    assert example_names("How do I configure Dovecot to serve IMAP?") == set()


def test_a_name_the_index_holds_throughout_is_its_subject():
    # Python in the Python docs (38% of the passages) need not be in the passages retrieved for
    # "How does Python pick a metaclass?"; PostgreSQL in SQLite's (0.9%) is a question about another thing
    names = {"Python": ["python"], "PostgreSQL": ["postgresql"]}
    statistics = {"python": (380, set()), "postgresql": (9, {2}), "metaclass": (12, {1})}
    found = keyword_evidence(1000, statistics, [1, 2], names)
    assert found.common == ("Python",)
    # a small folder: a name in 3 of 10 notes is no subject
    assert keyword_evidence(10, {"python": (3, set())}, [], {"Python": ["python"]}).common == ()


def test_a_word_held_by_at_most_one_passage_in_a_thousand_is_scarce():
    statistics = {"nginx": (1, set()), "front": (43, {2}), "monad": (0, set())}
    assert keyword_evidence(22329, statistics, [2]).scarce == ("nginx", "monad")
    # an index of fewer than a thousand passages: only a word none holds
    assert keyword_evidence(438, {"instead": (7, set()), "conda": (0, set())}, []).scarce == ("conda",)


def test_an_email_address_in_a_question_is_the_askers_own_not_a_name():
    # "No passage mentions box.local" refused a question the SOHO guide answers word for word
    assert question_names("My addresses look like user@box.local. How do I have them replaced by my ISP "
                          "address when mail leaves the machine?") == ["ISP"]
    assert question_names("Why does mail from jane.doe+lists@mail.example.org bounce in Postfix?") == ["Postfix"]
