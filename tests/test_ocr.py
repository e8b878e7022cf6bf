"""Scans and images through OCR, for real: the scans are pages of a real text PDF (tests/pdfs.py)
rendered to pictures, read back by Debian's tesseract-ocr. Without Tesseract (its program hidden
from PATH) such pages are counted and named with the fix, never silently empty."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import pytest

from ingest.formats import ocr
from ingest.formats.image import load_image
from ingest.formats.pdf import load_pdf
from ingest.formats.text import NotContent
from tests.pdfs import pdf_bytes

pytestmark = pytest.mark.skipif(shutil.which("tesseract") is None,
                                reason="needs tesseract-ocr (.ci/run installs it)")

PAGES = [
    ["Lighthouse keeping", "The keeper trims the wick every evening at dusk."],
    ["Fog signals", "In thick fog the horn sounds twice every minute."],
    ["Storm log", "Record the barometer reading before each storm."],
]


def rendered(pages: list[list[str]], dpi: int = 200) -> list:
    """Each page of a real text PDF as a picture, as a scanner would deliver it."""
    import pypdfium2 as pdfium

    document = pdfium.PdfDocument(pdf_bytes(pages))
    images = [document[i].render(scale=dpi / 72, grayscale=True).to_pil() for i in range(len(document))]
    document.close()
    return images


def scanned_pdf(images, dpi: int = 200) -> bytes:
    """A PDF of page images only, no text layer (what a scanner writes)."""
    out = io.BytesIO()
    images[0].save(out, format="PDF", save_all=True, append_images=images[1:], resolution=dpi)
    return out.getvalue()


def mixed_pdf() -> bytes:
    """Page 1 has a text layer; pages 2 and 3 are scans."""
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter()
    writer.add_page(PdfReader(io.BytesIO(pdf_bytes(PAGES[:1]))).pages[0])
    for page in PdfReader(io.BytesIO(scanned_pdf(rendered(PAGES[1:])))).pages:
        writer.add_page(page)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def words(text: str) -> list[str]:
    return text.lower().replace(".", " ").split()


@pytest.fixture
def no_tesseract(monkeypatch, tmp_path):
    """The process as it runs where tesseract-ocr is not installed."""
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    ocr._version.cache_clear()
    yield
    ocr._version.cache_clear()


def test_a_scanned_pdf_is_read_by_ocr_with_its_page_numbers():
    title, sections, pages, *unread = load_pdf(Path("scan.pdf"), scanned_pdf(rendered(PAGES)))

    assert (pages, unread) == (3, [])
    assert [s.page for s in sections] == [1, 2, 3]
    for section, lines in zip(sections, PAGES):
        assert words(" ".join(lines)) == words(section.text)


def test_a_pdf_with_text_pages_and_scanned_pages_reads_both():
    _, sections, pages, *unread = load_pdf(Path("mixed.pdf"), mixed_pdf())

    assert (pages, unread) == (3, [])
    by_page = {s.page: s.text for s in sections}
    assert "trims the wick" in by_page[1]  # the text layer
    assert "horn sounds twice" in by_page[2]  # OCR
    assert "barometer reading" in by_page[3]


@pytest.mark.parametrize("suffix, fmt", [(".png", "PNG"), (".jpg", "JPEG")])
def test_an_image_file_is_read_by_ocr(tmp_path, suffix, fmt):
    path = tmp_path / f"notice{suffix}"
    rendered(PAGES[:1])[0].save(path, format=fmt)

    title, sections, pages = load_image(path, path.read_bytes())

    assert (title, pages) == ("notice", None)
    assert words(" ".join(PAGES[0])) == words(" ".join(s.text for s in sections))


def test_each_frame_of_a_multipage_tiff_is_a_page(tmp_path):
    path = tmp_path / "logbook.tiff"
    first, *rest = rendered(PAGES[1:])
    first.save(path, format="TIFF", save_all=True, append_images=rest)

    _, sections, pages = load_image(path, path.read_bytes())

    assert pages == 2
    assert [(s.page, "horn" in s.text, "barometer" in s.text) for s in sections] == [(1, True, False), (2, False, True)]


def test_a_transparent_png_with_dark_text_is_read_on_white(tmp_path):
    from PIL import Image

    page = rendered(PAGES[:1])[0]
    # dark text on a transparent background: dropping the alpha naively gives black on black
    clear = Image.new("LA", page.size, (0, 0))
    clear.putalpha(page.point(lambda v: 255 - v))
    path = tmp_path / "label.png"
    clear.save(path)

    _, sections, _ = load_image(path, path.read_bytes())

    assert "wick" in " ".join(s.text for s in sections)


def test_an_image_without_text_is_not_content():
    from PIL import Image, ImageDraw

    picture = Image.new("RGB", (400, 300), "skyblue")
    ImageDraw.Draw(picture).ellipse((100, 50, 300, 250), fill="orange")
    out = io.BytesIO()
    picture.save(out, format="PNG")

    with pytest.raises(NotContent, match="image without text"):
        load_image(Path("sunset.png"), out.getvalue())


def test_without_tesseract_a_scanned_pdf_fails_naming_the_fix(no_tesseract):
    with pytest.raises(ocr.NeedsOCR, match=r"^install tesseract-ocr to read 3 scanned pages$"):
        load_pdf(Path("scan.pdf"), scanned_pdf(rendered(PAGES)))


def test_without_tesseract_a_mixed_pdf_keeps_its_text_and_counts_the_scans(no_tesseract):
    _, sections, pages, unread = load_pdf(Path("mixed.pdf"), mixed_pdf())

    assert (pages, unread) == (3, 2)
    assert [s.page for s in sections] == [1]


def test_without_tesseract_an_image_fails_naming_the_fix(no_tesseract, tmp_path):
    path = tmp_path / "notice.png"
    rendered(PAGES[:1])[0].save(path)

    with pytest.raises(ocr.NeedsOCR, match=r"^install tesseract-ocr to read 1 scanned page$"):
        load_image(path, path.read_bytes())


def test_ingest_without_tesseract_names_every_unread_scan(tmp_path, rag_cli):
    import os

    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "scan.pdf").write_bytes(scanned_pdf(rendered(PAGES[1:])))
    (folder / "mixed.pdf").write_bytes(mixed_pdf())
    (folder / "notes.md").write_text("# Notes\n\nThe lamp room is painted white.\n")
    empty = tmp_path / "empty-bin"
    empty.mkdir()

    result = rag_cli("ingest", "docs", cwd=tmp_path, env={"PATH": str(empty) + os.pathsep + "/nonexistent"})

    lines = result.stderr.splitlines()
    assert result.returncode == 1, result.stderr  # a file that could not be read at all fails the run
    assert "failed: docs/scan.pdf: install tesseract-ocr to read 2 scanned pages" in lines
    assert "partly read: docs/mixed.pdf: install tesseract-ocr to read 2 scanned pages" in lines
    summary = next(line for line in lines if line.startswith("indexes/default:"))
    assert "2 added, 0 updated, 0 unchanged, 0 removed, 1 failed" in summary
    assert summary.endswith("; install tesseract-ocr to read 4 scanned pages")
