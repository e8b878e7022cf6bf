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
