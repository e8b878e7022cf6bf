"""Needles: one-line facts planted in pages about something else, as in a personal notes folder,
are found first and never hidden by the "not covered" cut-off, asked by their rare words or in
other words; identifier questions (environment variables, flags, function names) are never cut;
questions the folder does not cover still are. A real folder (the demo corpus and the test
corpus), the bundled model, a calibrated index built by `Index.ingest`."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from rag.config import Settings
from rag.index import Index
from tests.helpers import RAG, ROOT, make_corpus

# page -> the fact planted in its middle; none of these pages is about anything like its fact
FACTS = {
    "chunking.rst": "Zanzibar quokkas prefer semantic search over grep.",
    "embeddings.md": "Invoice INV-2024-08817 from Halvorsen Plumbing was paid on 3 March 2025.",
    "retrieval.txt": "The password hint for the garage keypad is the name of grandmother's first goat.",
    "vector-indexes.html": "<p>Piano lessons with Mrs Takahashi moved to Thursdays at half past four.</p>",
    "astronomy.txt": "The quarterly release checklist is owned by Marguerite Okonkwo-Lindqvist.",
}
NEEDLES = [  # (question, a phrase of the fact that answers it)
    ("Zanzibar quokkas", "Zanzibar quokkas"),
    ("What do the quokkas prefer over grep?", "Zanzibar quokkas"),
    ("INV-2024-08817", "INV-2024-08817"),
    ("When was the plumbing invoice paid?", "INV-2024-08817"),
    ("garage keypad password hint", "garage keypad"),
    ("How do I remember the code for the garage keypad?", "garage keypad"),
    ("Mrs Takahashi", "Mrs Takahashi"),
    ("When are the piano lessons now?", "Mrs Takahashi"),
    ("Marguerite Okonkwo-Lindqvist", "Okonkwo-Lindqvist"),
    ("Who owns the quarterly release checklist?", "Okonkwo-Lindqvist"),
]
TOOL = """# tidewatch

tidewatch copies tide tables from the harbour office's feed into a local cache.

## Settings

- `TIDEWATCH_CACHE_DIR`: where the downloaded tables are kept (default `~/.cache/tidewatch`).
- `TIDEWATCH_TOKEN`: the feed's access token; without it only the public stations are read.

## Command line

`tidewatch sync --since 2024-01-01` fetches the tables published since that day. `--dry-run` prints
what would be fetched and writes nothing. `--max-retries 5` gives up on a station after five
failed requests.

## Library

`parse_manifest(path)` reads a station manifest and returns a list of `Station` records;
`sync_tides(stations, since)` fetches their tables and returns how many were new.
"""
IDENTIFIERS = [
    ("What is TIDEWATCH_CACHE_DIR?", "TIDEWATCH_CACHE_DIR"),
    ("TIDEWATCH_TOKEN", "TIDEWATCH_TOKEN"),
    ("What does --dry-run do?", "--dry-run"),
    ("--max-retries", "--max-retries"),
    ("What does parse_manifest return?", "parse_manifest"),
    ("sync_tides", "sync_tides"),
    ("What does normalize_embeddings do?", "normalize_embeddings"),
]
OFF_TOPIC = [
    "How do I knit a scarf for beginners?",
    "Who painted the ceiling of the Sistine Chapel?",
    "What is the best time of year to visit Kyoto?",
    "How do I get red wine stains out of a carpet?",
]


def plant(text: str, fact: str) -> str:
    """The fact as a paragraph of its own, at the first paragraph break after the middle."""
    at = text.index("\n\n", len(text) // 2) + 2
    return text[:at] + fact + "\n\n" + text[at:]


@pytest.fixture(scope="module")
def notes(tmp_path_factory, embedder):
    """A notes folder: the demo corpus, the test corpus and a tool's README, facts planted in five
    pages; ingested once (torch, like the shared embedder) and calibrated."""
    root = tmp_path_factory.mktemp("needles")
    folder = root / "notes"
    shutil.copytree(ROOT / "sample-docs", folder)
    make_corpus(folder / "more")
    (folder / "tidewatch.md").write_text(TOOL, encoding="utf-8")
    for name, fact in FACTS.items():
        page = next(folder.rglob(name))
        page.write_text(plant(page.read_text(encoding="utf-8"), fact), encoding="utf-8")
    settings = Settings(index_dir=root / "indexes", embed_backend="torch")
    with Index.open(settings, create=True) as index:
        report = index.ingest([folder])
    assert report.ok, report.failures
    index = Index.open(settings)
    yield index
    index.close()


@pytest.mark.parametrize("question,phrase", NEEDLES)
def test_a_fact_planted_in_an_unrelated_page_is_found_first_and_not_cut(notes, question, phrase):
    result = notes.search(question)

    assert not result.below_cutoff, result.cutoff_reason
    assert phrase in result.hits[0].text


@pytest.mark.parametrize("question,phrase", NEEDLES)
def test_the_answer_without_an_llm_quotes_the_planted_fact(notes, question, phrase):
    # the passage holding the fact scores a low cosine by nature; the extractive answer must still
    # quote it, not the passages that merely resemble the question
    answer = notes.answer(question, llm=None).result()

    assert phrase in answer.answer, answer.answer


@pytest.mark.parametrize("question,identifier", IDENTIFIERS)
def test_identifier_questions_are_never_cut(notes, question, identifier):
    result = notes.search(question)

    assert not result.below_cutoff, result.cutoff_reason
    assert identifier in result.hits[0].text


@pytest.mark.parametrize("question", OFF_TOPIC)
def test_questions_the_notes_do_not_cover_are_still_cut(notes, question):
    result = notes.search(question)

    assert result.below_cutoff
    assert result.hits == []


@pytest.mark.parametrize("question,name", [
    ("How do I set a memory limit on a Kubernetes pod?", "Kubernetes"),
    ("How do I reset my iPhone to factory settings?", "iPhone"),
    ("What is the Kotlin syntax for a data class with default values?", "Kotlin"),
])
def test_a_question_about_something_the_notes_never_mention_is_cut_and_says_what(notes, question, name):
    result = notes.search(question)

    assert result.below_cutoff
    assert result.cutoff_reason == f'no passage mentions "{name}"'


def test_a_name_the_notes_lack_beside_a_rare_one_they_hold_is_still_asked(notes):
    # tidewatch's token on macOS: the notes never say macOS, but the question is about sync_tides
    result = notes.search("Does sync_tides work on macOS?")

    assert not result.below_cutoff, result.cutoff_reason
    assert "sync_tides" in result.hits[0].text


def test_a_question_typed_in_title_case_is_not_cut_for_its_capitalised_words(notes):
    # no passage mentions "Marsupials Prefer Semantic Search", but the capitals mark no name here
    result = notes.search("Which Marsupials Prefer Semantic Search Over Grep?")

    assert not result.below_cutoff, result.cutoff_reason
    assert "Zanzibar quokkas" in result.hits[0].text


def test_the_cut_off_says_which_words_no_passage_holds(notes):
    result = notes.search("How do I knit a scarf for beginners?")

    assert result.cutoff_reason.endswith('no passage holds any of its words')


def test_not_covered_and_its_hint_are_two_lines_of_the_terminal(notes):
    # stdout and stderr into one pipe, as a terminal shows them
    done = subprocess.run([str(RAG), "ask", OFF_TOPIC[0], "--no-llm", "--index-dir", str(notes.settings.index_dir)],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=120)

    lines = done.stdout.splitlines()
    assert done.returncode == 0, done.stdout
    assert lines[0] == "The documents do not cover this: nothing in the index is relevant enough to answer it."
    assert lines[1].startswith("hint: the best passage scored ")
