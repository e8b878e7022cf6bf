"""The web chat at `/` in a real headless Chromium: ask, watch the answer stream in, open a citation.

`plain` and `keyed` are the servers of tests/conftest.py."""

from __future__ import annotations

import pytest

from tests.helpers import SERVER_KEY as KEY

pytestmark = pytest.mark.slow  # Chromium

WAIT_MS = 120_000  # a search on a busy machine; nothing here waits on a fixed delay


def ask_on_page(page, question: str) -> None:
    page.fill("#question", question)
    page.press("#question", "Enter")


def test_a_question_typed_in_the_page_gets_an_answer_whose_citation_opens_the_pdf_page(plain, browser_page):
    page = browser_page
    page.goto(plain.url + "/")
    page.wait_for_selector("#index option[value='default']", state="attached")
    ask_on_page(page, "What should I do about a grinding noise from the fan?")
    page.wait_for_selector(".turn[data-done='true']", timeout=WAIT_MS)
    assert "BK-7" in page.inner_text(".turn .answer")
    page.click(".turn .answer .cite")
    assert page.inner_text("#passage-where") == "corpus/manual.pdf, page 2"
    assert page.inner_text("#passage-heading") == ""  # the PDF page has no heading: an empty list shows nothing
    assert "bearing kit BK-7" in page.inner_text("#passage-text")
    assert page.errors == []


def test_the_answer_streams_in_and_a_citation_shows_its_file(keyed, llm, chromium):
    llm.reply = "Mars has two small moons, Phobos and Deimos [1]."
    llm.delay = 0.4  # seconds between words, so the page shows part of the answer before the rest
    # the key as the Basic password, as a person would type it into the browser's prompt
    context = chromium.new_context(http_credentials={"username": "me", "password": KEY})
    page = context.new_page()
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    try:
        page.goto(keyed.url + "/")
        page.wait_for_selector("#index option[value='default']", state="attached")
        ask_on_page(page, "How many moons does Mars have?")
        page.wait_for_function("document.querySelector('.turn .answer')?.textContent.startsWith('Mars has')",
                               timeout=WAIT_MS)
        partial = page.inner_text(".turn .answer")
        assert partial != llm.reply and page.query_selector(".turn[data-done='true']") is None
        page.wait_for_selector(".turn[data-done='true']", timeout=WAIT_MS)
        assert page.inner_text(".turn .answer") == llm.reply
        assert "[1] corpus/astronomy.txt" in page.inner_text(".turn .sources")
        page.click(".turn .answer .cite")
        assert page.inner_text("#passage-where") == "corpus/astronomy.txt"
        assert "Phobos and Deimos" in page.inner_text("#passage-text")
        assert errors == []
    finally:
        context.close()


def test_an_error_from_the_server_is_shown_on_the_page(plain, browser_page):
    page = browser_page
    page.goto(plain.url + "/")
    page.wait_for_selector("#index option[value='default']", state="attached")
    ask_on_page(page, "why " * 1200)
    page.wait_for_selector(".turn .answer.error", timeout=WAIT_MS)
    assert "the limit is 4000" in page.inner_text(".turn .answer.error")


def finished_turn(page, question: str) -> None:
    page.wait_for_selector("#index option[value='default']", state="attached")
    ask_on_page(page, question)
    page.wait_for_selector(".turn[data-done='true']", timeout=WAIT_MS)


@pytest.fixture
def keyed_page(keyed, chromium):  # noqa: F811
    context = chromium.new_context(http_credentials={"username": "me", "password": KEY})
    page = context.new_page()
    page.errors = []
    page.on("pageerror", lambda error: page.errors.append(str(error)))
    page.goto(keyed.url + "/")
    yield page
    context.close()


def test_the_answer_is_rendered_as_markdown_and_html_in_it_is_shown_as_text_never_run(keyed_page, llm):
    page = keyed_page
    llm.reply = ("Mars has **two** small moons, Phobos and Deimos [1].\n\n```\nls moons/phobos\n```\n\n"
                 "- Phobos <img src=x onerror=\"document.title='pwned'\"> <script>document.title='pwned'</script>\n"
                 "- [a link](javascript:alert(1))")
    finished_turn(page, "How many moons does Mars have?")

    answer = page.query_selector(".turn .answer")
    assert answer.query_selector("strong").inner_text() == "two"
    assert answer.query_selector("pre code").inner_text() == "ls moons/phobos"
    assert "```" not in answer.inner_text() and "**" not in answer.inner_text()
    assert len(answer.query_selector_all("li")) == 2
    assert "<img src=x" in answer.inner_text() and "<script>" in answer.inner_text()
    assert answer.query_selector("img, script") is None
    assert answer.query_selector("a") is None  # a javascript: link is not a link
    assert page.title() != "pwned" and page.errors == []


def test_commands_at_a_prompt_are_shown_as_code_never_as_a_heading_or_a_quote(keyed_page, llm):
    # manuals print root's commands as "# postfix reload": Markdown read it as a heading, and a
    # Python session's ">>> len(x)" as a quote
    page = keyed_page
    llm.reply = ("Mars has two small moons, Phobos and Deimos [1]. List them as root:\n\n# ls /srv/moons\n"
                 "$ ls /srv/moons/phobos \\\n    --long\n\n## Notes\n\n>>> len(moons)\n")
    finished_turn(page, "How many moons does Mars have?")

    answer = page.query_selector(".turn .answer")
    code = [c.inner_text() for c in answer.query_selector_all("pre code")]
    assert code == ["# ls /srv/moons\n$ ls /srv/moons/phobos \\\n    --long", ">>> len(moons)"]
    assert [h.inner_text() for h in answer.query_selector_all("h1, h2, h3, h4, h5, h6")] == ["Notes"]
    assert answer.query_selector("blockquote") is None
    assert page.errors == []


def test_the_page_shows_it_is_working_and_the_passages_found_before_the_answer_arrives(keyed_page, llm):
    page = keyed_page
    llm.reply = "Mars has two small moons, Phobos and Deimos [1]."
    llm.gate.clear()  # the LLM does not answer until the test lets it
    try:
        page.wait_for_selector("#index option[value='default']", state="attached")
        ask_on_page(page, "How many moons does Mars have?")
        status = page.wait_for_selector(".turn .status", state="visible", timeout=WAIT_MS)
        assert status.inner_text().startswith(("Searching", "Writing"))
        page.wait_for_selector(".turn .sources li button", timeout=WAIT_MS)
        assert "Retrieved passages" in page.inner_text(".turn .sources")
        assert "[1] corpus/astronomy.txt" in page.inner_text(".turn .sources")
        assert page.inner_text(".turn .status").startswith("Writing")
        assert page.inner_text(".turn .answer") == ""
    finally:
        llm.gate.set()
    page.wait_for_selector(".turn[data-done='true']", timeout=WAIT_MS)
    assert not page.is_visible(".turn .status")
    assert page.inner_text(".turn .answer") == llm.reply
    assert page.inner_text(".turn .sources").startswith("Sources")


def test_sources_are_listed_when_the_answer_cites_no_passage(keyed_page, llm):
    page = keyed_page
    # a refusal of what the passages barely touch (beside passages that answer, their words follow it)
    llm.reply = "I cannot tell that from these passages."
    finished_turn(page, "How many moons and rings do the outer planets have in total?")

    assert page.inner_text(".turn .answer") == llm.reply
    sources = page.inner_text(".turn .sources")
    assert sources.startswith("Retrieved passages") and "[1] corpus/astronomy.txt" in sources


def test_a_sentence_no_passage_supports_is_marked_and_strict_leaves_it_out(keyed_page, llm):
    page = keyed_page
    llm.reply = "Mars has two small moons, Phobos and Deimos [1]. Both moons are made of green cheese."
    finished_turn(page, "How many moons does Mars have?")
    assert page.inner_text(".turn .answer .unsupported") == "unsupported"
    assert "green cheese" in page.inner_text(".turn .answer")

    page.click("#reset")
    page.check("#strict")
    finished_turn(page, "How many moons does Mars have?")
    assert "green cheese" not in page.inner_text(".turn .answer")
    assert page.inner_text(".turn .answer") == "Mars has two small moons, Phobos and Deimos [1]."
    assert page.query_selector(".turn .unsupported") is None


def test_an_extractive_answer_is_rendered_with_its_sources(plain, browser_page):
    page = browser_page
    page.goto(plain.url + "/")
    finished_turn(page, "How do I bake sourdough bread?")

    assert "Bake the loaf" in page.inner_text(".turn .answer")
    assert "[1] corpus/cooking.md (Kitchen notes > Bread)" in page.inner_text(".turn .sources")
    assert page.errors == []
