"""Loaders: each format becomes a title and sections with the text a reader sees."""

from __future__ import annotations

import io
import logging
import random
import re
from pathlib import Path

import pytest

from ingest.formats import loader_for
from ingest.formats.html import load_html
from ingest.formats.markdown import load_markdown, load_rst, load_text
from ingest.formats.pdf import load_pdf
from rag.errors import LoadError
from tests.pdfs import TWO_PAGES, encrypted_pdf, pdf_bytes, tangled_pdf, truncated_pdf


def headings(sections) -> list[tuple[str, ...]]:
    return [s.heading for s in sections]


def section_under(sections, *heading: str) -> str:
    return next(s.text for s in sections if s.heading == heading)


# -- plain text and encodings ------------------------------------------------------------------


def test_plain_text_is_titled_by_its_file_name():
    title, sections, pages = load_text(Path("notes/packing list.txt"), b"Tent, stove, two maps.\n")

    assert title == "packing list"
    assert [s.text for s in sections] == ["Tent, stove, two maps.\n"]
    assert pages is None


ENCODED = {
    "utf-8 with byte order mark": ("\ufeffcafé au lait".encode("utf-8"), "café au lait"),
    "utf-16 with byte order mark": ("naïve café, 東京".encode("utf-16"), "naïve café, 東京"),
    "latin-1": ("Le café est crème à Noël.".encode("latin-1"), "Le café est crème à Noël."),
    "windows smart quotes": ("\u201cquoted\u201d \u2013 done".encode("cp1252"), "\u201cquoted\u201d \u2013 done"),
}


@pytest.mark.parametrize("data, text", ENCODED.values(), ids=ENCODED.keys())
def test_text_in_a_common_encoding_decodes_to_what_was_written(data, text):
    _, sections, _ = load_text(Path("a.txt"), data)

    assert sections[0].text == text


def test_random_bytes_named_txt_are_refused_as_binary():
    with pytest.raises(LoadError, match="binary content"):
        load_text(Path("blob.txt"), random.Random(0).randbytes(4096))


def test_empty_text_file_is_refused():
    with pytest.raises(LoadError, match="empty"):
        load_text(Path("empty.txt"), b"")


def test_whitespace_only_text_file_is_refused():
    with pytest.raises(LoadError, match="empty"):
        load_text(Path("blank.txt"), b"\n  \n\t\n")


# -- Markdown ----------------------------------------------------------------------------------

GUIDE_MD = b"""# Field guide

Welcome to the guide.

## Birds

Robins sing at dawn.

### Owls

Owls hunt at night.

## Trees

Oaks live for centuries.
"""


def test_markdown_atx_headings_become_the_heading_path():
    title, sections, _ = load_markdown(Path("guide.md"), GUIDE_MD)

    assert title == "Field guide"
    assert headings(sections) == [
        ("Field guide",),
        ("Field guide", "Birds"),
        ("Field guide", "Birds", "Owls"),
        ("Field guide", "Trees"),
    ]
    assert "Owls hunt at night." in section_under(sections, "Field guide", "Birds", "Owls")


def test_markdown_setext_headings_are_recognised():
    text = b"Handbook\n========\n\nIntro.\n\nSetup\n-----\n\nRun the installer.\n"

    title, sections, _ = load_markdown(Path("h.md"), text)

    assert title == "Handbook"
    assert "Run the installer." in section_under(sections, "Handbook", "Setup")


def test_markdown_hash_lines_in_fenced_code_are_not_headings():
    text = b"# Scripts\n\n```bash\n# install the tools\napt-get install jq\n```\n\nDone.\n"

    _, sections, _ = load_markdown(Path("s.md"), text)

    assert headings(sections) == [("Scripts",)]
    assert "# install the tools" in sections[0].text


def test_markdown_long_fence_is_not_closed_by_a_shorter_one():
    text = b"# Docs\n\n````markdown\n```\n# Example heading inside an example\n````\n\nAfter.\n"

    _, sections, _ = load_markdown(Path("d.md"), text)

    assert headings(sections) == [("Docs",)]
    assert "# Example heading inside an example" in sections[0].text


def test_markdown_rule_after_a_code_block_does_not_make_a_heading():
    text = b"Some intro line\n```\ncode\n```\n---\n\nMore text.\n"

    _, sections, _ = load_markdown(Path("r.md"), text)

    assert headings(sections) == [()]


def test_markdown_front_matter_gives_the_title_and_is_not_indexed():
    text = b'---\ntitle: "Release notes"\nauthor: someone\n---\n# Version 2\n\nFaster startup.\n'

    title, sections, _ = load_markdown(Path("notes.md"), text)

    assert title == "Release notes"
    assert all("author:" not in s.text for s in sections)


API_MD = """# HTTP

<!--introduced_in=v0.10.0-->

## `server.keepAliveTimeout`

<!-- YAML
added: v8.0.0
changes:
  - version: v18.0.0
    description: The `keepAliveTimeout` option is supported now.
# not a heading: inside a comment
-->

* {number} Timeout in milliseconds. **Default:** `5000`. See [`Duplex`][] and [^1].

Set it before calling `listen()` <!-- eslint-skip --> on the server.

```html
<!-- an example's comment is the example's -->
[kept]: https://example.com/in-code
```

[^1]: A footnote is rendered, and read.

[`Duplex`]: stream.md#class-streamduplex
[`listen()`]: net.md#serverlisten
"""


def test_markdown_html_comments_and_link_definitions_are_not_read():
    title, sections, _ = load_markdown(Path("http.md"), API_MD.encode())
    text = "".join(s.text for s in sections)

    assert title == "HTTP"
    assert headings(sections) == [("HTTP", "`server.keepAliveTimeout`")]  # none read from the comment
    assert text.count("<!--") == 1  # the code example's own
    for unrendered in ("YAML", "added: v8.0.0", "not a heading", "eslint-skip", "stream.md#", "net.md#"):
        assert unrendered not in text
    assert "Timeout in milliseconds. **Default:** `5000`." in text
    assert "Set it before calling `listen()`" in text and "on the server." in text
    assert "<!-- an example's comment is the example's -->" in text  # code is read as it is
    assert "[kept]: https://example.com/in-code" in text
    assert "[^1]: A footnote is rendered, and read." in text


def test_markdown_a_definition_cannot_interrupt_a_paragraph():
    text = b"# Notes\n\nThe release notes say\n[beta]: not for production use.\n\n[ref]: https://example.com\n"

    _, sections, _ = load_markdown(Path("n.md"), text)

    assert "[beta]: not for production use." in sections[0].text
    assert "https://example.com" not in sections[0].text


def test_markdown_blanked_markup_keeps_every_position_true():
    _, sections, _ = load_markdown(Path("http.md"), API_MD.encode())

    for section in sections:
        original = API_MD[section.start:section.start + len(section.text)]
        assert len(original) == len(section.text)
        for kept, was in zip(section.text.split("\n"), original.split("\n")):
            assert kept == was or not kept.strip() or kept in was.replace("<!-- eslint-skip -->", " " * 20)


# -- reStructuredText --------------------------------------------------------------------------

MANUAL_RST = b"""==============
 User Manual
==============

Read this first.

Installing
==========

Unpack it.

From source
-----------

Run make.

Upgrading
=========

Back up first.
"""


def test_rst_overlined_title_is_the_document_title():
    title, sections, _ = load_rst(Path("manual.rst"), MANUAL_RST)

    assert title == "User Manual"
    assert "Read this first." in section_under(sections, "User Manual")


def test_rst_section_levels_follow_the_order_their_adornments_first_appear():
    _, sections, _ = load_rst(Path("manual.rst"), MANUAL_RST)

    assert headings(sections) == [
        ("User Manual",),
        ("User Manual", "Installing"),
        ("User Manual", "Installing", "From source"),
        ("User Manual", "Upgrading"),
    ]


def test_rst_subsection_right_under_a_title_keeps_its_level():
    text = b"Guide\n=====\nBasics\n------\nfirst\n\nAdvanced\n--------\nsecond\n"

    _, sections, _ = load_rst(Path("g.rst"), text)

    assert section_under(sections, "Guide", "Advanced").strip() == "second"


def test_sphinx_rst_txt_sources_are_read_as_rst():
    path = Path("_sources/manual.rst.txt")

    title, sections, _ = loader_for(path)(path, MANUAL_RST)

    assert title == "User Manual"
    assert ("User Manual", "Installing", "From source") in headings(sections)


def test_only_rst_txt_names_are_read_as_rst():
    assert loader_for(Path("INDEX.RST.TXT")) is load_rst
    assert loader_for(Path("first.rst-notes.txt")) is load_text


# -- HTML --------------------------------------------------------------------------------------

PAGE_HTML = b"""<!DOCTYPE html>
<html><head><title>Garden &amp; Yard</title>
<style>.leaf { color: green }</style>
<script>var tracking = "SECRET_SCRIPT_TEXT";</script></head>
<body>
<nav>Home</nav>
<h1>Planting</h1><p>Dig a hole <b>twice</b> as wide as the root ball.</p>
<script>document.write("INLINE_SCRIPT_TEXT")</script>
<h2>Watering</h2><p>Water deeply once a week.</p>
<noscript>NOSCRIPT_TEXT</noscript>
</body></html>
"""


def test_html_keeps_only_visible_text():
    _, sections, _ = load_html(Path("page.html"), PAGE_HTML)
    text = " ".join(s.text for s in sections)

    assert "Dig a hole twice as wide as the root ball." in text
    for hidden in ("SECRET_SCRIPT_TEXT", "INLINE_SCRIPT_TEXT", "NOSCRIPT_TEXT", "color: green"):
        assert hidden not in text


def test_html_title_comes_from_the_title_element():
    title, _, _ = load_html(Path("page.html"), PAGE_HTML)

    assert title == "Garden & Yard"


def test_html_headings_become_the_heading_path():
    _, sections, _ = load_html(Path("page.html"), PAGE_HTML)

    assert "Water deeply once a week." in section_under(sections, "Planting", "Watering")


def test_html_page_that_omits_the_closing_head_tag_keeps_its_body():
    page = b"<!doctype html><html><head><meta charset=utf-8><title>Notes</title><body><p>Body text.</p>"

    title, sections, _ = load_html(Path("notes.html"), page)

    assert title == "Notes"
    assert "Body text." in sections[0].text


def test_html_title_is_not_repeated_as_body_text():
    _, sections, _ = load_html(Path("t.html"), b"<title>Only a title</title><p>The body.</p>")

    assert "Only a title" not in " ".join(s.text for s in sections)


SITE_PAGE = b"""<!DOCTYPE html><html><head><title>Write-Ahead Logging</title></head><body>
<div id="header"><h1>Write-Ahead Logging</h1></div>
<div class="menu mainmenu"><a href="index.html">Home</a> <a href="about.html">About</a>
  <div class="submenu"><a href="download.html">Download</a></div></div>
<div role="navigation"><a href="prev.html">Previous page</a></div>
<ul class="breadcrumbs"><li>Docs</li><li>WAL</li></ul>
<div class="fancy_toc"><p>Table of Contents</p><ul><li>Overview</li><li>Checkpointing</li></ul></div>
<h2>Overview</h2><p>The WAL file grows until a checkpoint runs.</p>
<p>Changes are appended to the WAL file; the original database file is left alone until the
changes are copied back into it by a checkpoint, which can run while readers keep reading.</p>
<div class="note"><p>Readers do not block writers.</p></div>
<div class="related-work"><p>Earlier databases used rollback journals.</p></div>
<section id="navigation"><h2 id="menu">Menu</h2><p>The shell's menu lists open databases.</p></section>
<div class="footer">Copyright the authors. Last updated today.</div>
</body></html>
"""


def test_html_leaves_out_menus_breadcrumbs_tables_of_contents_and_footers():
    _, sections, _ = load_html(Path("wal.html"), SITE_PAGE)
    text = " ".join(s.text for s in sections)

    assert "The WAL file grows until a checkpoint runs." in text
    assert "Readers do not block writers." in text
    assert "Earlier databases used rollback journals." in text  # content whose class merely sounds like chrome
    assert "The shell's menu lists open databases." in section_under(sections, "Write-Ahead Logging", "Menu")  # ids are titles
    for chrome in ("Home", "Download", "Previous page", "Docs", "Table of Contents", "Checkpointing", "Copyright"):
        assert chrome not in text
    assert "The WAL file grows" in section_under(sections, "Write-Ahead Logging", "Overview")  # <h1> in a header div


def test_html_leaves_out_a_site_tagline_and_a_closing_last_modified_stamp():
    # SQLite's pages: the slogan above every page and the stamp below it were quoted in answers
    page = (b"<title>Conflicts</title><div class='tagline desktoponly'>Small. Fast. Reliable.<br>Choose any three.</div>"
            b"<h1>Conflict resolution</h1><p>REPLACE removes the pre-existing row.</p>"
            b"<p align=center><small><i>This page last modified on <a href='x'>2014-08-15 14:59:54</a> UTC</i></small></p>")
    _, sections, _ = load_html(Path("conflict.html"), page)
    text = " ".join(s.text for s in sections)

    assert "REPLACE removes the pre-existing row." in text
    assert "Small. Fast." not in text and "Choose any three" not in text
    assert "last modified" not in text
    for stamp in (b"Last updated 2024-05-31 00:35:55 UTC", b"This page was last edited on 5 May 2024, at 10:00."):
        _, sections, _ = load_html(Path("p.html"), b"<h1>T</h1><p>Body text.</p><div>" + stamp + b"</div>")
        assert [s.text.strip() for s in sections] == ["Body text."]
    # what merely mentions a change, or is the page's only paragraph, stays
    for kept in (b"<p>Body.</p><p>Changed in 2021 to read UTF-8 by default.</p>", b"<p>Last updated 2024-05-31.</p>"):
        _, sections, _ = load_html(Path("p.html"), kept)
        assert kept.split(b"<p>")[-1][:-4].decode() in " ".join(s.text for s in sections)


def test_html_leaves_out_a_pager_of_links_to_the_neighbouring_pages():
    # Texinfo writes one atop every node, in an unmarked <div class="header">: the GNU diffutils
    # manual's were quoted as answers ("Previous: Controlling Side by Side Format, Up: ...")
    page = (b"<title>Side by Side</title><div class='header'><p>Next: <a href='n.html'>Making Edit Scripts</a>, "
            b"Previous: <a href='p.html'>Showing Differences</a>, Up: <a href='u.html'>diff Output Formats</a> "
            b"&nbsp; [<a href='index.html#toc'>Contents</a>][<a href='Index.html'>Index</a>]</p></div>"
            b"<h3>Controlling Side by Side Format</h3><p>The <code>--side-by-side</code> option selects side by side format.</p>"
            b"<p>See <a href='w.html'>Width</a> and <a href='t.html'>Tabs</a> for more.</p>"
            b"<p><a href='a.html'>Prev</a> <a href='b.html'>Up</a> <a href='c.html'>Next</a></p>")
    _, sections, _ = load_html(Path("Output-Formats.html"), page)
    text = " ".join(s.text for s in sections)

    assert "The --side-by-side option selects side by side format." in text
    assert "See Width and Tabs for more." in text  # links in a sentence are text
    for pager in ("Next:", "Previous:", "Making Edit Scripts", "Contents", "Prev"):
        assert pager not in text


def test_an_unclosed_menu_element_never_swallows_the_page():
    swallowed = b"<title>T</title><div class='sidebar'><a href='/'>Home</a><h1>Guide</h1>" + b"<p>Real text.</p>" * 20
    wrapped = b"<div><div class='menu'><a href='/'>Home</a><div><p>" + b"Real text. " * 50 + b"</p></div></div></div>"

    for page in (swallowed, wrapped):  # still open at the end; holding nearly all the text
        _, sections, _ = load_html(Path("t.html"), page)

        assert "Real text." in " ".join(s.text for s in sections)


# -- PDF ---------------------------------------------------------------------------------------

def test_pdf_text_is_read_page_by_page():
    title, sections, pages = load_pdf(Path("car.pdf"), pdf_bytes(TWO_PAGES, title="Car care"))

    assert (title, pages) == ("Car care", 2)
    assert [s.page for s in sections] == [1, 2]
    assert "The engine needs oil." in sections[0].text
    assert "Check the tyres monthly." in sections[1].text


def test_pdf_blank_page_still_counts_for_page_numbers():
    _, sections, pages = load_pdf(Path("p.pdf"), pdf_bytes([["First page"], [], ["Third page"]]))

    assert pages == 3
    assert [(s.page, s.text.strip()) for s in sections] == [(1, "First page"), (3, "Third page")]


MANUAL_PAGES = [
    ["1 Installing", "Unpack the archive first.", "1.1 On Linux", "Run the installer as root."],
    ["Chapter 1: Installing 2", "Reboot when it asks.", "2 Maintenance", "Oil the chain monthly."],
    ["Chapter 2: Maintenance 3", "Replace worn brake pads."],
]


def with_outline(data: bytes, entries: list[tuple[str, int, str | None]]) -> bytes:
    """The PDF with bookmarks: (title, 0-based page, parent title or None)."""
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(data)))
    added = {}
    for title, page, parent in entries:
        added[title] = writer.add_outline_item(title=title, page_number=page, parent=added.get(parent))
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def test_pdf_bookmarks_give_each_stretch_of_a_page_its_heading_path():
    outline = [("Installing", 0, None), ("On Linux", 0, "Installing"), ("Maintenance", 1, None)]
    data = with_outline(pdf_bytes(MANUAL_PAGES), outline)

    _, sections, _ = load_pdf(Path("bike.pdf"), data)

    where = {(s.page, s.heading): s.text for s in sections}
    assert "Unpack the archive" in where[(1, ("Installing",))]
    assert "Run the installer" in where[(1, ("Installing", "On Linux"))]
    assert "Reboot when it asks." in where[(2, ("Installing", "On Linux"))]  # carried over the page break
    assert "Oil the chain" in where[(2, ("Maintenance",))]
    assert "Replace worn brake pads." in where[(3, ("Maintenance",))]
    assert "Reboot" not in where[(2, ("Maintenance",))]


def test_a_bookmark_whose_title_is_not_on_its_page_starts_at_the_top_of_that_page():
    data = with_outline(pdf_bytes(MANUAL_PAGES), [("Installing", 0, None), ("Upkeep", 1, None)])

    _, sections, _ = load_pdf(Path("bike.pdf"), data)

    assert [(s.page, s.heading) for s in sections] == [(1, ("Installing",)), (2, ("Upkeep",)), (3, ("Upkeep",))]


@pytest.mark.parametrize("damage", [(rb"/Outlines \d+ 0 R", b"/Outlines 999 0 R"), (rb"/First \d+ 0 R", b"/First 998 0 R")])
def test_a_pdf_whose_bookmarks_point_nowhere_keeps_all_its_text(damage):
    data = with_outline(pdf_bytes(MANUAL_PAGES), [("Installing", 0, None), ("Maintenance", 1, None)])
    damaged = re.sub(damage[0], damage[1], data)
    assert damaged != data

    _, sections, pages = load_pdf(Path("bike.pdf"), damaged)

    assert pages == 3
    assert "Replace worn brake pads." in " ".join(s.text for s in sections)


def test_a_pdf_without_bookmarks_has_sections_without_headings():
    _, sections, _ = load_pdf(Path("bike.pdf"), pdf_bytes(MANUAL_PAGES))

    assert [(s.page, s.heading) for s in sections] == [(1, ()), (2, ()), (3, ())]


@pytest.mark.parametrize(
    "data, reason",
    [
        (b"", "empty PDF"),
        (b"%PDF-1.7\nthis is not really a pdf at all\n", "unreadable PDF"),
        (truncated_pdf(), "unreadable PDF"),
        (tangled_pdf(), "unreadable PDF"),
        (encrypted_pdf(), "encrypted PDF: it needs a password"),
        (pdf_bytes([[], []]), "no extractable text"),
    ],
    ids=["empty", "not a pdf", "truncated", "damaged object tree", "encrypted", "no text"],
)
def test_broken_pdf_is_refused_with_a_reason(data, reason):
    with pytest.raises(LoadError, match=reason):
        load_pdf(Path("broken.pdf"), data)


def test_pdf_repair_messages_are_not_printed(caplog):
    # With no logging configured (the CLI), Python prints any WARNING or worse to stderr.
    damaged = pdf_bytes(TWO_PAGES).replace(b"/WinAnsiEncoding", b"/WinAnsiEncodinX")

    with caplog.at_level(logging.DEBUG):
        _, sections, _ = load_pdf(Path("odd-font.pdf"), damaged)

    assert "The engine needs oil." in sections[0].text
    assert [r.getMessage()[:80] for r in caplog.records if r.name.startswith("pypdf")] == []


def test_pdf_dot_leaders_are_collapsed(tmp_path):
    data = pdf_bytes([["Contents", "Installing the widget . . . . . . . . . . . . . 12", "Wiring........................ 14"]])
    _, sections, _ = load_pdf(tmp_path / "toc.pdf", data)
    text = sections[0].text
    assert "Installing the widget ... 12" in text
    assert "Wiring ... 14" in text
    assert ". . . ." not in text


def test_rst_markup_that_renders_as_nothing_is_not_read():
    # the Python docs' c-api/descriptor.rst: its first chunk was ".. highlight:: c .. _descriptor-objects:"
    from ingest.formats.markdown import load_rst

    path = Path(__file__).parent / "data" / "descriptor.rst"
    data = path.read_bytes()
    _, sections, _ = load_rst(path, data)
    text = "\n".join(s.text for s in sections)

    assert ".. highlight" not in text and ".. _descriptor-objects" not in text and "XXX" not in text
    assert ".. c:var:: PyTypeObject PyProperty_Type" in text and "The type object for the built-in" in text
    # positions still point into the file
    assert all(data.decode()[s.start:s.start + len(s.text)].strip().startswith(s.text.strip()[:20]) for s in sections)


def test_a_rst_comment_takes_its_indented_lines_but_not_the_paragraph_after_it():
    from ingest.formats.markdown import load_rst

    source = (b"Title\n=====\n\n.. a comment\n   that goes on\n\nKept paragraph.\n\n.. note::\n\n   Kept note.\n\n"
              b".. |version| replace:: 3.2\n\nVersion |version|.\n")
    _, sections, _ = load_rst(Path("x.rst"), source)
    text = "\n".join(s.text for s in sections)

    assert "comment" not in text and "goes on" not in text
    assert "Kept paragraph." in text and ".. note::" in text and "Kept note." in text and "replace:: 3.2" in text
