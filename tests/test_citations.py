"""Citation checking (rag.answer.citations): each [n] of an answer against the text of passage n, the
quote and its offsets, uncited factual sentences, extractive answers, and a streamed answer from
the real openai client against the loopback server, checked after its last piece."""

from __future__ import annotations

import json
from dataclasses import asdict

import pytest

from rag.answer.citations import answer_sentences, check_citations, locate, quote_for_extractive
from rag.config import Settings
from rag.answer.extractive import extractive_answer
from rag.answer.generate import AnswerStream
from rag.answer.grounding import ground_text
from rag.answer.llm import LLM
from rag.types import Citation, Hit, Retrieval

BREAD = (
    "Sourdough bread needs a starter that is fed with flour and water every day. Bake the loaf at\n"
    "250 degrees Celsius for 45 minutes, with steam for the first twenty. Let the loaf cool on a\n"
    "rack for an hour before slicing it, or the crumb turns gummy."
)
MARS = "The planet Mars has two small moons, Phobos and Deimos.\n\nJupiter is the largest planet in the solar system."
FAN = "If the fan makes a grinding noise, replace the bearing kit BK-7. Unpack the archive and run the installer."
PASSAGES = [BREAD, MARS, FAN]


def only(report) -> Citation:
    assert len(report.citations) == 1, report.citations
    return report.citations[0]


def assert_quote_is_exact(citation: Citation, passages=PASSAGES) -> None:
    assert passages[citation.n - 1][citation.start:citation.end] == citation.quote


def test_a_supported_citation_quotes_the_passage_span_that_says_it():
    citation = only(check_citations("Bake the loaf at 250 degrees Celsius for 45 minutes [1].", PASSAGES))

    assert citation.supported, citation.reason
    assert citation.n == 1
    assert "250 degrees Celsius for 45 minutes" in citation.quote
    assert "cool on a" not in citation.quote  # the span that supports it, not the whole passage
    assert_quote_is_exact(citation)


def test_a_citation_to_the_wrong_passage_is_not_supported():
    citation = only(check_citations("Mars has two small moons, Phobos and Deimos [3].", PASSAGES))

    assert not citation.supported
    assert citation.n == 3
    assert "passage 3" in citation.reason


def test_a_citation_number_that_was_never_given_is_flagged():
    report = check_citations("Replace the bearing kit BK-7 when the fan grinds [4].", PASSAGES)

    citation = only(report)
    assert not citation.supported
    assert citation.reason == "there is no passage [4]: the answer was given 3 passages"
    assert (citation.quote, citation.start, citation.end) == ("", 0, 0)
    assert report.unsupported == 1


def test_a_factual_sentence_without_a_citation_is_counted():
    report = check_citations("Bake the loaf at 250 degrees Celsius [1]. Phobos is a small moon of Mars.", PASSAGES)

    assert report.uncited_sentences == 1
    assert only(report).supported


def test_headings_questions_refusals_and_connectives_are_not_counted_as_uncited():
    answer = ("## Baking bread\n\nHere is how:\n\nWhat about soup? The documents do not cover this.\n\n"
              "In short, yes.\n")

    report = check_citations(answer, PASSAGES)

    assert report.uncited_sentences == 0
    assert report.citations == []


@pytest.mark.parametrize("refusal", [
    "The documents do not cover this.", "There is no information about nginx in the passages.",
    "The provided context does not mention conda.", "I could not find this in the documentation.",
    "Nothing in the given text answers it.", "The passages do not specifically mention conda.",
    "The context provided is not related to nginx."])
def test_a_refusal_names_the_documents_and_a_domain_word_is_not_one(refusal):
    # patch's fuzz factor, answered rightly, was read as a refusal: "no ... context" (lines of
    # context are what a diff has) made the answer count as declined
    # and what the manual says, with a negation of its own, is none either (diffutils' d-17 counted
    # as refused: "... do not have slashes" after "The manual recommends")
    facts = ("The default fuzz factor is 2; there is no point to setting it to more than the number of lines of context.",
             "The default fuzz factor that patch uses when the context does not match exactly is 2.",
             "The manual recommends using diff on directories whose names do not have slashes.")

    assert [s.kind for s in answer_sentences(refusal)] == ["refusal"]
    assert [s.kind for fact in facts for s in answer_sentences(fact)] == ["fact", "fact", "fact"]


def test_a_number_that_differs_from_the_passage_is_not_supported():
    citation = only(check_citations("Bake the loaf at 250 degrees Celsius for 40 minutes [1].", PASSAGES))

    assert not citation.supported
    assert citation.reason == "passage 1 does not contain 40"


def test_numbers_written_as_words_match_digits():
    citation = only(check_citations("Steam the loaf for the first 20 minutes [1].", PASSAGES))

    assert citation.supported, citation.reason


def test_a_name_that_differs_from_the_passage_is_not_supported():
    citation = only(check_citations("Mars has two small moons, Phobos and Ganymede [2].", PASSAGES))

    assert not citation.supported
    assert citation.reason == "passage 2 does not mention Ganymede"


def test_an_identifier_that_differs_from_the_passage_is_not_supported():
    citation = only(check_citations("A grinding fan needs the bearing kit `BK-9` [3].", PASSAGES))

    assert not citation.supported
    assert "BK-9" in citation.reason


def test_several_citations_in_one_sentence_are_each_checked():
    report = check_citations("Mars has two moons and Jupiter is the largest planet [2][1].", PASSAGES)

    by_number = {c.n: c for c in report.citations}
    assert set(by_number) == {1, 2}
    assert by_number[2].supported, by_number[2].reason
    assert not by_number[1].supported
    assert report.unsupported == 1


def test_a_sentence_may_share_its_facts_between_the_passages_it_cites():
    report = check_citations("Bake the loaf for 45 minutes and replace the bearing kit BK-7 [1, 3].", PASSAGES)

    assert [(c.n, c.supported) for c in report.citations] == [(1, True), (3, True)]
    for citation in report.citations:
        assert_quote_is_exact(citation)


def test_a_citation_after_the_period_belongs_to_the_sentence_before_it():
    answer = "Mars has two small moons, Phobos and Deimos. [2] Bake the loaf at 250 degrees Celsius. [1]"

    report = check_citations(answer, PASSAGES)

    assert [(c.n, c.supported) for c in report.citations] == [(2, True), (1, True)]
    assert report.citations[0].sentence == "Mars has two small moons, Phobos and Deimos. [2]"
    assert report.uncited_sentences == 0


def test_markdown_bullets_are_sentences_of_their_own():
    answer = ("To bake the bread:\n\n- Feed the starter with flour and water every day [1].\n"
              "* Bake the loaf at 250 degrees Celsius [1].\n1. Let the loaf cool on a rack for an hour [2].\n")

    report = check_citations(answer, PASSAGES)

    assert [c.sentence for c in report.citations] == [
        "Feed the starter with flour and water every day [1].",
        "Bake the loaf at 250 degrees Celsius [1].",
        "Let the loaf cool on a rack for an hour [2].",
    ]
    assert [c.supported for c in report.citations] == [True, True, False]
    assert report.uncited_sentences == 0


def test_abbreviations_decimals_and_code_spans_do_not_end_a_sentence():
    answer = "Use a factor, e.g. `ordered()`, for version 3.5 data. See `x.y` too [1]."

    sentences = answer_sentences(answer)

    assert [s.text for s in sentences] == [
        "Use a factor, e.g. `ordered()`, for version 3.5 data.", "See `x.y` too [1].",
    ]
    assert [s.numbers for s in sentences] == [(), (1,)]


def test_the_report_is_plain_json():
    report = check_citations("Bake the loaf at 250 degrees Celsius [1]. Deimos orbits Mars [9].", PASSAGES)

    data = json.loads(json.dumps(asdict(report)))

    assert data["unsupported"] == 1
    assert data["uncited_sentences"] == 0
    # one Citation type (rag.types): the checker leaves the source to rag.answer.generate, which knows it
    assert set(data["citations"][0]) == {"n", "path", "page", "heading", "sentence", "quote", "start", "end",
                                         "supported", "reason"}
    assert (data["citations"][0]["path"], data["citations"][0]["page"]) == ("", None)


def test_extractive_answers_quote_their_passages_exactly():
    hits = [make_hit(BREAD, 1), make_hit(MARS, 2)]
    answer = extractive_answer("How long do I bake the sourdough loaf?", hits)

    report = quote_for_extractive(answer, [h.text for h in hits])

    assert report.citations and all(c.supported for c in report.citations)
    for citation in report.citations:
        assert_quote_is_exact(citation, [BREAD, MARS])
        assert "\n" in citation.quote or citation.quote == " ".join(citation.quote.split())
    assert report.citations[0].quote.startswith("Sourdough bread")  # found despite the collapsed line breaks


def test_locate_ignores_white_space_only():
    assert locate("Bake the loaf at 250 degrees", BREAD) == (BREAD.index("Bake"), BREAD.index(" Celsius"))
    assert locate("Bake the loaf at 260 degrees", BREAD) is None


# -- end to end: a streamed answer, checked after its last piece ---------------------------------


def make_hit(text: str, chunk_id: int) -> Hit:
    return Hit(chunk_id=chunk_id, path=f"/docs/{chunk_id}.md", page=None, heading=(), text=text, title="",
               score=0.5, similarity=0.6)


def test_a_streamed_answer_is_checked_against_the_retrieved_passages_after_its_last_piece(llm):
    llm.reply = ("Bake the loaf at 250 degrees Celsius for 45 minutes, with steam for the first twenty [1]. Mars has two "
                 "moons, Phobos and Ganymede [2].")
    hits = [make_hit(BREAD, 1), make_hit(MARS, 2)]
    retrieval = Retrieval(question="How long do I bake bread?", mode="hybrid", hits=hits, below_cutoff=False,
                          best_similarity=0.6, seconds=0.01)
    model = LLM(Settings(base_url=llm.url, llm_model="test-model", api_key="sk-test", timeout=5.0))

    stream = AnswerStream(retrieval.question, retrieval, model)
    pieces = list(stream)
    answer = stream.result()  # the check runs once the last piece is in
    report = check_citations("".join(pieces), [h.text for h in retrieval.hits])

    assert len(pieces) > 1  # it really streamed
    assert llm.requests[0]["stream"] is True
    assert [(c.n, c.supported) for c in report.citations] == [(1, True), (2, False)]
    assert report.citations[1].reason == "passage 2 does not mention Ganymede"
    assert report.citations[0].quote == BREAD[report.citations[0].start:report.citations[0].end]
    assert [(c.n, c.supported, c.reason) for c in answer.citations] == [
        (c.n, c.supported, c.reason) for c in report.citations]
    assert answer.unsupported == 1


# -- what folds and what stays strict (rag.answer.citations, module docstring) ----------------------

SECRETS = (
    "Generate a hard-to-guess temporary URL containing a security token\n"
    "suitable for password recovery applications:\n\n.. testcode::\n\n   import secrets\n"
    "   url = 'https://example.com/reset=' + secrets.token_urlsafe()"
)  # library/secrets.rst of the Python docs


def verdict(sentence: str, passage: str) -> Citation:
    return only(check_citations(sentence, [passage]))


def test_an_identifiers_parts_are_found_in_it_url_safe_in_token_urlsafe():
    citation = verdict("Use secrets.token_urlsafe() to generate a hard-to-guess URL-safe token for password recovery [1].",
                       SECRETS)

    assert citation.supported, citation.reason


def test_a_hyphenated_plain_word_is_words_not_a_name():
    citation = verdict("A temporary password-reset link is built by appending secrets.token_urlsafe() to the URL [1].",
                       SECRETS)

    assert citation.supported, citation.reason


@pytest.mark.parametrize("sentence,passage", [
    ("Results are cached by `lru cache` [1].", "The lru_cache decorator caches results."),
    ("Call tokenUrlsafe to make the token [1].", "Call token_urlsafe to make the token."),
    ("The HTTP server answers each request [1].", "HTTPServer answers each request."),
])
def test_identifier_parts_fold_across_underscores_humps_and_spaces(sentence, passage):
    assert verdict(sentence, passage).supported


@pytest.mark.parametrize("sentence,passage", [
    ("Fortran entry points are mapped to lower case [1].", "Fortran entry points are mapped to lowercase."),
    ("Avoid hard-coding the path to the interpreter [1].", "If you do not wish to hardcode the path to the interpreter."),
    ("The data is kept readonly on the mounted disk [1].", "The data is kept read-only on the mounted disk."),
])
def test_two_neighbouring_words_are_also_read_as_one(sentence, passage):
    assert verdict(sentence, passage).supported


def test_case_never_matters():
    assert verdict("Add /usr/local/bin to the PATH of the shell [1].", "add /usr/local/bin to their path in the shell").supported


def test_inflections_fold_for_words_and_plurals_fold_for_names():
    assert verdict("The recovered passwords were reset by the admins [1].",
                   "The admin resets the password during recovery.").supported
    assert verdict("is.nan() is TRUE only for NaNs [1].", "is.nan(xx) is only TRUE for NaN values.").supported
    assert verdict("Quote the URL in the request [1].", "Quote URLs in requests.").supported


def test_word_order_never_matters():
    assert verdict("Whether the history file is restored at startup is controlled by --no-restore-history [1].",
                   "--no-restore-history Control whether the history file should be restored at startup or not.").supported


def test_a_dunder_name_survives_markdown_cleaning():
    passage = "Since the name of the main module is always \"__main__\", use absolute imports."

    assert verdict('The main module is always named "__main__" [1].', passage).supported
    assert verdict('The main module is always named "__init__" [1].', passage).reason == \
        "passage 1 does not mention __init__"


def test_an_option_written_with_no_in_brackets_is_found_both_ways():
    passage = "git stash [push [-p | --patch] [-k | --[no-]keep-index] [-q | --quiet]"

    assert verdict("git stash push accepts --keep-index and --no-keep-index [1].", passage).supported
    assert verdict("git stash push accepts --keep-staged [1].", passage).reason == \
        "passage 1 does not mention --keep-staged"


@pytest.mark.parametrize("sentence,missing", [
    ("GCC 4.9 provides essentially complete C++14 support [1].", "4.9"),
    ("The vector steps by .5 from -5 to 5 [1].", "0.5"),
    ("The reduction factor is 0.75 in that layout [1].", "0.75"),
])
def test_a_changed_number_is_caught_and_named(sentence, missing):
    passage = ("GCC 5 provides essentially complete C++14 support. seq(-5, 5, by=.2) generates the vector. "
               "In that layout the reduction factor is 0.83.")

    citation = verdict(sentence, passage)

    assert not citation.supported
    assert missing in citation.reason


@pytest.mark.parametrize("sentence,name", [
    ("The sink() function diverts the output to record.txt [1].", "record.txt"),  # a file name
    ("The history file is named by R_HISTORY_FILE [1].", "R_HISTORY_FILE"),  # snake_case
    ("Use unattach(lentils) to take it off the search path [1].", "unattach()"),  # a call
    ("It is safer to call detach(beans) by name [1].", "beans"),  # a call's argument
    ("The --vanilla option also implies --no-echo [1].", "--no-echo"),  # an option
    ("A virtual environment usually lives in .virtualenv here [1].", ".virtualenv"),  # a dotfile
    ("Calling sink(FALSE) restores the output [1].", "FALSE"),  # ALL-CAPS
    ("The output then goes to Ganymede [1].", "Ganymede"),  # a capitalised word inside the sentence
    ("The step size is the `step=` argument of seq() [1].", "step="),  # a keyword argument
    ("Replace the bearing kit BK-77 when the fan grinds [1].", "BK-77"),  # digits
    ("Make one with secrets.token_hex() [1].", "secrets.token_hex()"),  # a dotted name: each part must be found
    ("Assignment can also be made with assign() [1].", "assign()"),  # a function, not the word "assigns"
    ('On success the pragma returns the string "ok" [1].', "ok"),  # what the sentence quotes
])
def test_an_invented_name_is_caught_and_named(sentence, name):
    passage = ("The function sink(\"record.lis\") diverts the output; R_HISTFILE names the history file. "
               "To detach a data frame use detach(lentils) or detach(\"lentils\"). --vanilla implies --no-save. "
               "A common location is .venv in the project. The step size of seq() is set by by=value. "
               "On success the pragma returns the string \"wal\". Assignment assigns the value. "
               "If the fan grinds, replace the bearing kit BK-7. Make a token with secrets.token_urlsafe(); "
               "hex digits are also possible.")

    citation = verdict(sentence, passage)

    assert not citation.supported
    assert citation.reason == f"passage 1 does not mention {name}"


def test_a_names_parts_must_stand_together_as_whole_parts():
    from rag.answer.citations import name_found, parts

    passage = "Call token_urlsafe() for a link; hex digits and BK-77 parts are elsewhere."
    lower, pieces = passage.lower(), parts(passage)

    assert name_found("URL-safe", lower, pieces)
    assert not name_found("token_hex", lower, pieces)  # both parts occur, not together
    assert not name_found("BK-7", lower, pieces)  # not the first part of BK-77
    assert not name_found("safe", lower, pieces)  # not a whole part of token_urlsafe


def test_a_sentence_that_shares_too_few_words_says_which_are_missing():
    citation = verdict("Mars has moons that astronomers photograph every winter from observatories [1].", MARS)

    assert not citation.supported
    assert citation.reason == ("passage 1 holds only 2 of the sentence's 7 content words "
                               "(not astronomers, photograph, every, winter and 1 more)")


def test_two_words_read_as_one_must_spell_the_passages_word_not_only_its_first_letters():
    # "configuration file" read as one word is "configurationfile", not "config": the passage's
    # "configuration" alone must not count "file" as found
    citation = verdict("The configuration file is read at startup [1].",
                       "The configuration is kept in memory until the program exits.")

    assert not citation.supported
    assert citation.reason == "passage 1 holds only 1 of the sentence's 4 content words (not file, read, startup)"


def test_every_item_of_a_list_must_be_in_the_passage():
    passage = "The exporter writes three formats: json, yaml and toml, chosen with the format setting."

    assert verdict("The exporter writes json, yaml and toml [1].", passage).supported
    assert verdict("The exporter writes json, yaml, toml and xml [1].", passage).reason == \
        "passage 1 does not mention xml"


def test_a_word_the_passage_negates_is_not_supported_as_a_plain_claim():
    passage = "Git does not track empty folders, only files; add a placeholder file to keep a folder."

    assert verdict("Git tracks empty folders [1].", passage).reason == 'passage 1 says "not track"'
    assert verdict("Git does not track empty folders [1].", passage).supported  # the claim's own negation
    assert verdict("Git tracks only files [1].", passage).supported  # the verb, but not what it was denied of


def test_an_option_spelled_with_no_negates_nothing():
    passage = "With --no-verify the hooks are skipped; the commit is verified otherwise."

    assert verdict("The hooks are skipped with --no-verify [1].", passage).supported


def test_a_hyphenated_word_with_one_half_changed_is_another_term():
    passage = "The cache is thread-safe, and its entries are evicted least-recently-used first."

    assert verdict("The cache is thread-safe [1].", passage).supported
    assert verdict("Its entries are evicted least-recently-used first [1].", passage).supported
    assert verdict("Python sorts with built-in functions [1].", "Python sorts with built-ins.").supported  # a plural
    assert verdict("The cache is process-safe [1].", passage).reason == "passage 1 says thread-safe, not process-safe"


def test_underscores_around_a_name_are_part_of_it():
    passage = "Every class may define an init method; Python calls it after the object is created."

    assert verdict("Python calls the init method after the object is created [1].", passage).supported
    assert verdict("Python calls `__init__` after the object is created [1].", passage).reason == \
        "passage 1 does not mention __init__"


def test_a_citation_of_the_neighbouring_chunk_is_flagged_when_the_passage_that_says_it_was_given():
    neighbour = "A sourdough starter is a mix of flour and water that bakers feed every day."
    says_it = "Between bakes, keep the sourdough starter in the fridge and feed it flour once a week."
    sentence = "Keep the sourdough starter in the fridge and feed it flour [{}]."

    flagged = only(check_citations(sentence.format(1), [neighbour, says_it]))

    assert not flagged.supported
    assert flagged.reason == ("passage 2 says it: passage 1 holds only 4 of the sentence's 6 content words "
                              "(not Keep, fridge)")
    assert only(check_citations(sentence.format(2), [neighbour, says_it])).supported
    assert only(check_citations(sentence.format(1), [neighbour])).supported  # half the words, and nothing better given


def test_a_noun_the_passage_says_is_not_needed_may_still_be_mentioned():
    passage = "No configuration is needed: the defaults suit most projects."

    assert verdict("The configuration is optional, as the defaults suit most projects [1].", passage).supported


def test_words_technical_prose_uses_interchangeably_are_one_word():
    assert verdict("Deleting a branch typically requires confirmation [1].",
                   "Removing a branch usually needs confirmation.").supported
    assert verdict("tapply() computes the mean [1].", "To calculate the mean, use tapply().").supported


def test_exactly_half_of_the_words_is_not_enough():
    passage = ("The function sink, > sink(\"record.lis\") will divert all subsequent output from the console "
               "to an external file, record.lis. Commands stored in a file can be run in a later R session.")
    citation = verdict("The sink() function is used to save data in future R sessions [1].", passage)

    assert not citation.supported  # sink, function and sessions are there; save, data and future are not
    assert citation.reason == "passage 1 holds only 3 of the sentence's 6 content words (not save, data, future)"


def test_a_number_in_words_is_checked_as_a_number_not_counted_as_content_words():
    passage = "Bake the loaf at 250 degrees Celsius for forty minutes."

    assert verdict("Two hundred and fifty degrees, forty minutes [1].", passage).supported
    assert verdict("Two hundred degrees, forty minutes [1].", passage).reason == "passage 1 does not contain 200"


# -- the words an answer repeats from its question ------------------------------------------------

CSV_DOCS = ("The DictReader class creates an object that operates like a regular reader but maps the "
            "information in each row to a dict whose keys are given by the optional fieldnames parameter.\n\n"
            "    with open('names.csv', newline='') as f:\n        for row in csv.DictReader(f):\n"
            "            print(row)")
CSV_QUESTION = "How do I read the rows of a CSV file so that each row comes back as a dict keyed by the header line?"


def test_the_words_a_sentence_repeats_from_the_question_are_not_its_claim():
    sentence = ("To read the rows of a CSV file so that each row comes back as a dictionary keyed by the header "
                "line, use `csv.DictReader` [1].")
    assert not only(check_citations(sentence, [CSV_DOCS])).supported  # the passage never says "keyed", "header"
    citation = only(check_citations(sentence, [CSV_DOCS], CSV_QUESTION))
    assert citation.supported, citation.reason
    assert "csv.DictReader" in citation.reason and "question" in citation.reason
    assert_quote_is_exact(citation, [CSV_DOCS])
    assert "DictReader" in citation.quote


def test_what_a_sentence_adds_to_the_question_must_still_be_in_the_passage():
    invented = "To read the rows of a CSV file as dicts keyed by the header line, use `csv.RowMapper` [1]."
    citation = only(check_citations(invented, [CSV_DOCS], CSV_QUESTION))
    assert not citation.supported and "RowMapper" in citation.reason
    # words of its own beyond the question: more than half of them, as for any sentence
    wordy = ("To read the rows of a CSV file keyed by the header line, open it in binary mode and decode every "
             "byte by hand [1].")
    assert not only(check_citations(wordy, [CSV_DOCS], CSV_QUESTION)).supported


def test_a_name_the_question_asks_about_is_needed_in_the_passage_too():
    # the question names nginx; a sentence repeating it is not borne out by a passage about WSGI
    wsgi = ("The Web Server Gateway Interface (WSGI) is a standard interface between web servers and Python "
            "web applications.")
    question = "How do I set up nginx as a reverse proxy in front of my Python web application?"
    sentence = "Configure Nginx as a reverse proxy in front of the Python web application [1]."
    assert not only(check_citations(sentence, [wsgi], question)).supported
    # a sentence that only restates the question claims nothing beyond it: checked whole
    assert not only(check_citations("You can set up nginx as a reverse proxy in front of a Python web "
                                    "application [1].", [wsgi], question)).supported


def test_a_sphinx_role_the_model_copied_is_markup_not_a_claimed_word():
    runner = "Run the coroutine with asyncio.run(main()), which manages the event loop.\n\n    asyncio.run(main())"
    question = "How do I start an async main() coroutine from a normal synchronous script?"
    reply = "Start a ``main()`` coroutine from a normal synchronous script using :meth:`asyncio.run(main())`."
    text, sentences = ground_text(reply, [runner], question=question)
    assert sentences[0].supported and sentences[0].citations == [1], text
    assert ":meth:`asyncio.run(main())` [1]." in text  # the role keeps its place before the code span


def test_a_negation_the_question_does_not_hold_is_checked_in_the_whole_sentence():
    counter = "A Counter is a dict subclass for counting hashable objects, such as the words of a list."
    question = "What is the simplest way to count how many times each word occurs in a list of words?"
    said = "`Counter()` is the simplest way to count how many times each word occurs in a list of words [1]."
    assert only(check_citations(said, [counter], question)).supported
    denied = "`Counter()` is not the simplest way to count how many times each word occurs in a list of words [1]."
    assert not only(check_citations(denied, [counter], question)).supported


EXIT_STATUS = ("An exit status of 0 means no differences were found, 1 means some differences were found, "
               "and 2 means trouble. Normally, differing binary files count as differences.")


def test_a_number_paired_with_what_the_passage_gives_another_number_is_unsupported():
    # Qwen on the diffutils manual: each word of the sentence is in the passage, "2" too, so it was
    # called supported; the passage says 2 means trouble
    report = check_citations("When diff exits with status 2, it means there were no differences found [1].",
                             [EXIT_STATUS], question="What does it mean when diff exits with status 2?")

    (citation,) = report.citations
    assert not citation.supported
    assert citation.reason == 'passage 1 says "2 means trouble"'


def test_a_number_paired_as_the_passage_pairs_it_is_supported():
    for claim in ("Exit status 2 means trouble [1].", "Status 0 means that no differences were found [1].",
                  "An exit status of 1 means some differences were found [1]."):
        report = check_citations(claim, [EXIT_STATUS], question="What do diff's exit statuses mean?")
        assert report.citations[0].supported, (claim, report.citations[0].reason)


WAL = ("An SQLite database connection defaults to journal_mode=DELETE. To convert to WAL mode, use the "
       "following pragma: PRAGMA journal_mode=WAL;")


def test_a_long_sentence_that_introduces_a_block_is_checked_as_a_claim():
    # Qwen on the SQLite docs: an invented configuration file, in a sentence that ends with a colon
    # before its code block, passed unchecked as a heading
    answer = ("Edit the sqlite3.ini configuration file in the folder of your SQLite executable and add "
              "this line [1]:\n\n```ini\nwal_mode = WAL\n```")
    (sentence, *_) = answer_sentences(answer)
    report = check_citations(answer, [WAL], question="How do I switch a database to write-ahead logging?")

    assert sentence.kind == "fact"
    assert not report.citations[0].supported


def test_a_short_line_that_introduces_a_block_is_still_a_heading():
    for line in ("The steps are:", "Use the following command:", "Here is how [1]:"):
        assert answer_sentences(f"{line}\n\n```\nPRAGMA journal_mode=WAL;\n```")[0].kind == "heading", line


CLONE = ("Make a local clone that borrows from the current directory, without checking things out:\n\n"
         "$ git clone -l -s -n . ../copy\n$ cd ../copy\n$ git show-branch")


def test_a_command_at_a_prompt_is_one_claim_with_the_sentence_that_introduces_it():
    # Qwen on Git's manual copied an example without a fence: the period of "-n ." ended a sentence,
    # so rag wrote its citation into the command ("git clone -l -s -n [3]. ../copy"), and the
    # sentence introducing it was counted uncited
    answer = f"{CLONE} [1]\n\nThen work in ../copy."
    sentences = answer_sentences(answer)

    assert [s.text for s in sentences] == [f"{CLONE} [1]", "Then work in ../copy."]
    assert sentences[0].numbers == (1,) and sentences[0].kind == "fact"
    assert check_citations(answer, [CLONE]).citations[0].supported


def test_a_command_run_goes_on_over_continued_lines_and_not_into_the_prose_after_it():
    answer = (">>> total = sum(x for x in\n...           values)\nDone. That is all.\n\n"
              "$ git clone --reference /git/linux.git \\\n    git://example.org/linux.git my-linux\nIt is fast.")
    texts = [s.text for s in answer_sentences(answer)]

    assert texts == [">>> total = sum(x for x in\n...           values)", "Done.", "That is all.",
                     "$ git clone --reference /git/linux.git \\\n    git://example.org/linux.git my-linux", "It is fast."]


def test_rag_cites_a_command_after_it_and_never_inside_it():
    passage = ("To stage every change in the current folder, run the add command on the folder itself:\n\n"
               "$ git add .\n\nNew files are staged too.")
    out, sentences = ground_text("Stage every change in the current folder by running the add command on the "
                                 "folder itself:\n\n$ git add .\n\nNew files are staged too.", [passage])
    unfenced, _ = ground_text(f"{CLONE}\n\nThat is the example.", [CLONE])

    assert "$ git add . [1]\n" in out
    assert sentences[0].cited_by == "rag" and sentences[0].supported
    assert "$ git clone -l -s -n . ../copy\n" in unfenced and unfenced.startswith(f"{CLONE} [1]")


def test_a_name_the_answer_adds_to_the_question_counts_as_what_it_claims():
    # Qwen on Postfix's manual: "run `newaliases`" was checked for "run" and "file" alone, the name
    # left aside, and 1 of 2 words was no majority: a right answer was marked [unsupported]
    passage = ('Execute the command "newaliases" after changing the aliases file. Instead of /etc/aliases, your '
               'alias file may be located elsewhere.')
    question = "I edited /etc/aliases but mail still goes to the old place. What command makes the change take effect?"
    right = check_citations("To make the change take effect, run `newaliases` after changing the aliases file [1].",
                            [passage], question)
    wrong = check_citations("To make the change take effect, run `postalias` after changing the aliases file [1].",
                            [passage], question)

    assert right.citations[0].supported
    assert not wrong.citations[0].supported and "postalias" in wrong.citations[0].reason


def test_roots_prompt_is_a_command_and_not_a_markdown_heading():
    # manuals print root's commands as "# postfix reload": read as a heading, the line was never
    # checked, nor the sentence introducing it
    passage = ("Whenever you make a change to the main.cf or master.cf file, execute the following command as "
               "root in order to refresh a running mail system:\n\n# postfix reload")
    answer = ("## Reloading\n\nWhenever you change main.cf, execute the following command as root to refresh the "
              "running mail system:\n\n# postfix reload [1]")
    sentences = answer_sentences(answer)

    assert [s.kind for s in sentences] == ["heading", "fact"]
    assert sentences[1].text.endswith("# postfix reload [1]")
    assert check_citations(answer, [passage]).citations[0].supported


def test_a_clipped_excerpt_is_located_verbatim_around_its_ellipses():
    # the extractive answer shows at most SHOWN_CHARS of an excerpt, ending "\n…" (rag.markup.clip_lines),
    # or keeps the line of code that runs the example after one; located whole, the ellipsis matched
    # nothing, and the quote was checked as a sentence: "15 of its 30 content words", unsupported
    from rag.markup import clip_lines

    rules = "\n".join(f"* Rule {i}: values of kind {i} are compared by property {i}, recursively." for i in range(12))
    passage = f"Deep equality compares objects as follows:\n\n{rules}\n\n    assert.deepStrictEqual(a, b)\n"
    clipped = clip_lines(rules, 300, 30)
    run_line = f"{clip_lines(rules, 200, 30)}\n    assert.deepStrictEqual(a, b)"  # a key line after the ellipsis
    assert clipped.endswith("\u2026") and "\u2026\n" in run_line

    report = quote_for_extractive(f"{clipped} [1]\n\n{run_line}\n[1]", [passage])

    assert [c.reason for c in report.citations] == ["quoted verbatim from passage 1"] * 2
    assert report.citations[1].quote.endswith("assert.deepStrictEqual(a, b)")
    # the stretches must come in the passage's order
    assert not quote_for_extractive(f"{run_line.split(chr(10))[-1]}\n\u2026\n* Rule 0: values [1]", [passage]).citations[0].reason.startswith("quoted")
