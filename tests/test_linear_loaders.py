"""Every format reads a hostile line in time proportional to its length (issue 30, case 7).

Each test builds two files of one format and about the same size: one with a line made to trip
a backtracking regex or the HTML parser's search for a close (80 KB of `#` took 31 s in the
Markdown heading regex, 40,000 spaces 25 s on a PDF page, 120 KB of unterminated `<a` 13 s),
one with ordinary content. The hostile one must load within BUDGET times the plain one's time,
both measured here, best of a few runs: a quadratic loader misses by hundreds of times.
"""

from __future__ import annotations

import io
import json
import time
import zipfile
from email.message import EmailMessage
from pathlib import Path

import pytest

from ingest.formats import loader_for
from rag.errors import LoadError
from tests.pdfs import pdf_bytes

SIZE = 16_000  # characters in the hostile line: the quadratic loaders took seconds at this size
BUDGET = 20  # times the plain file's load time
RUNS = 5


def seconds(name: str, data: bytes, give_up: float | None = None) -> float:
    """The best of RUNS loads (a loaded machine only ever adds time); stops once one run is over
    `give_up`, which already settles the comparison."""
    path = Path(name)
    load = loader_for(path)
    best = float("inf")
    for _ in range(RUNS):
        started = time.perf_counter()
        try:
            load(path, data)
        except LoadError:
            pass  # the budget is about time; a refusal is a result too
        took = time.perf_counter() - started
        best = min(best, took)
        if give_up is not None and took > give_up:
            break
    return best


def assert_linear(name: str, hostile: bytes, plain: bytes) -> None:
    assert 0.8 < len(hostile) / len(plain) < 1.25, (len(hostile), len(plain))  # the same size
    plain_seconds = seconds(name, plain)
    hostile_seconds = seconds(name, hostile, give_up=10 * BUDGET * plain_seconds)
    assert hostile_seconds <= BUDGET * plain_seconds, \
        f"{name}: hostile {hostile_seconds:.4f} s vs plain {plain_seconds:.4f} s"


def words(length: int, text: str = "the keeper logs the tide at dawn and dusk ") -> str:
    return (text * (length // len(text) + 1))[:length]


# What a page of that size ordinarily holds: text with its markup (a page is rarely bare text)
MARKUP = '<p>The keeper logs the <a href="#tide">tide</a> at <em>dawn</em> and dusk.</p>\n'


# -- one builder per format: the same document around a given line ------------------------------


def text_file(line: str) -> bytes:
    return f"Tides\n\n{line}\n".encode()


def markdown(line: str) -> bytes:
    return f"---\ntitle: Tides\n---\n# Tides\n\nThe keeper logs them.\n\n{line}\n".encode()


def rst(line: str) -> bytes:
    return f"Tides\n=====\n\nThe keeper logs them.\n\n{line}\n".encode()


def html(line: str) -> bytes:
    return f"<html><head><title>Tides</title></head><body><h1>Tides</h1><p>The keeper logs them.</p>{line}".encode()


def pdf(line: str) -> bytes:
    return pdf_bytes([["Tides", "The keeper logs them."], [line]], title="Tides")


def csv_file(line: str, delimiter: str = ",") -> bytes:
    return f"station{delimiter}note\nST-1{delimiter}calm\n{line}\n".encode()


def notebook(line: str) -> bytes:
    cells = [{"cell_type": "markdown", "metadata": {}, "source": ["# Tides\n", "The keeper logs them."]},
             {"cell_type": "markdown", "metadata": {}, "source": line}]
    return json.dumps({"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": cells}).encode()


def docx(line: str) -> bytes:
    import docx as python_docx

    document = python_docx.Document()
    document.add_heading("Tides", level=1)
    document.add_paragraph(line)
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def pptx(line: str) -> bytes:
    import pptx as python_pptx

    deck = python_pptx.Presentation()
    slide = deck.slides.add_slide(deck.slide_layouts[1])
    slide.shapes.title.text = "Tides"
    slide.placeholders[1].text = line
    out = io.BytesIO()
    deck.save(out)
    return out.getvalue()


def odt(line: str) -> bytes:
    from odf.opendocument import OpenDocumentText
    from odf.text import H, P

    document = OpenDocumentText()
    document.text.addElement(H(outlinelevel=1, text="Tides"))
    document.text.addElement(P(text=line))
    out = io.BytesIO()
    document.write(out)
    return out.getvalue()


def epub(line: str) -> bytes:
    """An EPUB whose chapter holds the line as raw markup (ebooklib would tidy it on the way in)."""
    from ebooklib import epub as ebook

    book = ebook.EpubBook()
    book.set_identifier("tides")
    book.set_title("Tides")
    chapter = ebook.EpubHtml(title="Tides", file_name="chap_1.xhtml", lang="en")
    chapter.content = "<html><body><h1>Tides</h1><p>PLACEHOLDER</p></body></html>"
    book.add_item(chapter)
    book.toc = [chapter]
    book.add_item(ebook.EpubNcx())
    book.add_item(ebook.EpubNav())
    book.spine = [chapter]
    written = io.BytesIO()
    ebook.write_epub(written, book)
    out = io.BytesIO()
    with zipfile.ZipFile(written) as source, zipfile.ZipFile(out, "w") as target:
        for item in source.infolist():
            data = source.read(item)
            if item.filename.endswith("chap_1.xhtml"):
                data = f"<html><body><h1>Tides</h1><p>The keeper logs them.</p>{line}".encode()
            target.writestr(item, data)
    return out.getvalue()


def mail(line: str) -> bytes:
    message = EmailMessage()
    message["From"] = "keeper@example.org"
    message["Subject"] = "Tides"
    message.set_content(f"<html><body><p>The keeper logs them.</p>{line}", subtype="html")
    return message.as_bytes()


def mbox(line: str) -> bytes:
    return b"From keeper@example.org Tue Dec  1 10:00:00 2026\n" + mail(line) + b"\n"


# -- the hostile lines, each against a plain line of its length --------------------------------

CASES = [
    # (file name, builder, hostile line); HTML-based formats compare with a page of MARKUP
    ("notes.txt", text_file, " " * SIZE + "x"),
    ("heading.md", markdown, "# " + "#" * SIZE + "x"),  # 31 s at 80 KB in the heading regex
    ("front.md", lambda line: f"---\ntitle: a{line}b\n---\nbody\n".encode(), " " * SIZE),
    ("adornment.rst", rst, "Tides\n" + "=" * SIZE + "x"),
    ("anchors.html", html, "<a " * (SIZE // 3)),  # 13 s for 120 KB of unterminated <a
    ("comments.html", html, "<!-- >" * (SIZE // 6) + "<p>end</p>"),
    ("brackets.html", html, "<" * SIZE + "<p>end</p>"),
    ("spaces.pdf", pdf, "a" + " " * SIZE + "b"),  # 25 s for a page of 40,000 spaces
    ("leaders.pdf", pdf, "Contents" + " ." * (SIZE // 2) + " x"),
    ("quotes.csv", csv_file, ',"a' * (SIZE // 3)),  # csv.Sniffer's quote regexes
    ("quotes.tsv", lambda line: csv_file(line, "\t"), '\t"a' * (SIZE // 3)),
    ("heading.ipynb", notebook, "# " + "#" * SIZE + "x"),
    ("paragraph.docx", docx, "# " + "#" * SIZE + "x"),
    ("slide.pptx", pptx, "<a " * (SIZE // 3)),
    ("paragraph.odt", odt, " " * SIZE + "x"),
    ("chapter.epub", epub, "<a " * (SIZE // 3)),
    ("message.eml", mail, "<a " * (SIZE // 3)),
    ("messages.mbox", mbox, "<a " * (SIZE // 3)),
    # source code (tree-sitter) and images (Tesseract) take their own parsers, not our regexes
    ("strings.py", text_file, "x = '" + "\\'" * (SIZE // 2) + "'"),
]
# parsed by tree-sitter (linear by construction) or read by OCR: no regex of ours to make quadratic
NOT_REGEX_FORMATS = {".js", ".jsx", ".mjs", ".cjs", ".ts", ".tsx", ".go", ".rs", ".java", ".c", ".h", ".cc", ".cpp",
                     ".cxx", ".hpp", ".hh", ".sh", ".bash", ".rb", ".png", ".jpg", ".jpeg", ".tif", ".tiff", ".webp",
                     ".bmp", ".gif", ".cts", ".mts", ".hxx", ".pyi"}


HTML_BASED = {".html", ".epub", ".eml", ".mbox"}


@pytest.mark.parametrize("name, build, line", CASES, ids=[case[0] for case in CASES])
def test_a_hostile_line_loads_in_time_proportional_to_its_length(name, build, line):
    hostile = build(line)
    plain = build(words(len(line), MARKUP) if Path(name).suffix in HTML_BASED else words(len(line)))
    assert_linear(name, hostile, plain)


def test_every_format_has_a_hostile_line_case():
    from ingest.formats import LOADERS

    tested = {Path(name).suffix for name, _, _ in CASES}
    assert set(LOADERS) - {".text", ".markdown", ".htm"} - NOT_REGEX_FORMATS <= tested


def test_unterminated_tags_are_still_read_as_the_text_they_are():
    from ingest.formats.html import html_sections

    title, sections = html_sections("<p>Tides</p>2 < 3 and <a b")
    assert "".join(s.text for s in sections).split() == ["Tides", "2", "<", "3", "and", "<a", "b"]


def test_a_heading_ending_in_a_hash_keeps_it_and_a_closing_run_is_dropped():
    from ingest.formats.markdown import markdown_sections

    _, sections = markdown_sections("# Learn C#\n\nbody\n\n## Tides ##\n\nmore\n")
    assert [s.heading for s in sections] == [("Learn C#",), ("Learn C#", "Tides")]
