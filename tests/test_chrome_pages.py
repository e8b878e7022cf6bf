"""Whole pages of navigation (a table of contents, an index, a redirect) are left out of the index
and counted in the ingest summary; pages with prose between their links are kept."""

from __future__ import annotations

from pathlib import Path

import pytest

from ingest.chunk import ChunkSettings
from ingest.formats.html import load_html
from ingest.formats.text import NotContent
from ingest.pipeline import run_ingest
from rag.storage.store import Store
from rag.terminal.render import ingest_summary

TOPICS = ["Installing", "Configuring the lamp", "Fog signals", "Storm log", "Paint and limewash", "Clockwork",
          "Fresnel lenses", "Spare bulbs", "Radio procedure", "Tide tables", "Keeper duties", "Glossary"]


def contents_page(chapters: int = 12) -> str:
    items = "\n".join(f'<li><a href="ch{n}.html">{n}. {TOPICS[n % len(TOPICS)]}</a>'
                      f'<ul><li><a href="ch{n}.html#a">{n}.1 Overview</a></li></ul></li>' for n in range(chapters))
    return f"<html><head><title>The keeper's manual</title></head><body><h1>J. Smith</h1><ul>{items}</ul></body></html>"


def overview_page() -> str:
    items = "\n".join(
        f'<h2><a href="ch{n}.html">{topic}</a></h2><p>This chapter explains {topic.lower()} in detail: what the keeper '
        f"checks each morning, which tools are kept in the store room, and how the work is written into the "
        f"log so that the relief keeper can carry on where the last one stopped.</p>"
        for n, topic in enumerate(TOPICS)
    )
    return f"<html><body><h1>Manual overview</h1>{items}</body></html>"


REDIRECT = ('<html><head><meta http-equiv="refresh" content="0; url=en/index.html"></head>'
            '<body><p>Redirecting to <a href="en/index.html">the English manual</a>.</p></body></html>')
SCRIPT_REDIRECT = ('<html><head><script>window.location.replace("en/" + location.hash)</script></head>'
                   '<body>Loading the manual...</body></html>')


def sidebar_page() -> str:
    """A real page, short, inside a site whose sidebar links to every other page."""
    links = "".join(f'<li><a href="ch{n}.html">{TOPICS[n % len(TOPICS)]}</a></li>' for n in range(40))
    return (f'<html><body><div class="sphinxsidebar"><ul>{links}</ul></div>'
            "<h1>Fog signals</h1><p>In thick fog the horn sounds twice every minute, and the keeper logs when "
            "the fog came and went.</p></body></html>")


@pytest.mark.parametrize("markup, reason", [(contents_page(), "navigation page"), (REDIRECT, "redirect page"),
                                            (SCRIPT_REDIRECT, "redirect page")],
                         ids=["table of contents", "meta refresh", "script redirect"])
def test_a_page_that_is_only_navigation_is_not_content(markup, reason):
    with pytest.raises(NotContent, match=f"^{reason}$"):
        load_html(Path("index.html"), markup.encode())


def test_a_page_with_a_paragraph_for_each_link_is_kept():
    _, sections, _ = load_html(Path("overview.html"), overview_page().encode())

    assert "relief keeper" in " ".join(s.text for s in sections)


def test_a_short_page_inside_a_big_sidebar_is_kept():
    _, sections, _ = load_html(Path("fog.html"), sidebar_page().encode())

    assert "horn sounds twice" in " ".join(s.text for s in sections)


def test_a_long_page_that_links_generously_is_kept():
    prose = " ".join(f'See <a href="x{n}.html">item {n}</a> for the rule about lamp number {n} and why it matters.'
                     for n in range(60))
    _, sections, _ = load_html(Path("rules.html"), f"<html><body><h1>Rules</h1><p>{prose}</p></body></html>".encode())

    assert "why it matters" in sections[0].text


@pytest.fixture
def store(tmp_path):
    store = Store.open(tmp_path / "indexes" / "default", create=True)
    yield store
    store.close()


def site(folder: Path) -> Path:
    folder.mkdir()
    (folder / "index.html").write_text(REDIRECT)
    (folder / "contents.html").write_text(contents_page())
    (folder / "fog.html").write_text(sidebar_page())
    (folder / "overview.html").write_text(overview_page())
    return folder


def test_ingest_leaves_navigation_pages_out_and_counts_them(store, embedder, tmp_path):
    folder = site(tmp_path / "site")

    report = run_ingest([folder], store, embedder, ChunkSettings())

    assert sorted(Path(d.path).name for d in store.documents()) == ["fog.html", "overview.html"]
    assert (report.added, report.failed, report.ok) == (2, 0, True)
    assert report.left_out == {"navigation page": 1, "redirect page": 1}
    assert ", 0 failed, 2 left out (navigation page 1, redirect page 1); " in ingest_summary(report)


def test_a_page_that_became_navigation_leaves_the_index(store, embedder, tmp_path):
    folder = site(tmp_path / "site")
    run_ingest([folder], store, embedder, ChunkSettings())

    (folder / "fog.html").write_text(REDIRECT)  # the page moved; a redirect took its place
    report = run_ingest([folder], store, embedder, ChunkSettings())

    assert sorted(Path(d.path).name for d in store.documents()) == ["overview.html"]
    assert report.left_out == {"redirect page": 2, "navigation page": 1}
    assert store.keyword_search('"horn"', 5) == []
