"""PDF words as a reader sees them (PDFium): word spaces kept whichever way the PDF writes them,
and words hyphenated over a line end read whole."""

from __future__ import annotations

from pathlib import Path

from ingest.formats.pdf import load_pdf
from tests.pdfs import pdf_bytes

LINES = ["Set the system wide default locale value.", "Then restart the login manager."]


def text_of(data: bytes) -> str:
    _, sections, *_ = load_pdf(Path("manual.pdf"), data)
    return " ".join(s.text for s in sections)


def test_word_spaces_written_as_kerning_are_kept():
    assert text_of(pdf_bytes([LINES], spaces="kerning")).split() == " ".join(LINES).split()


def test_a_word_hyphenated_over_a_line_end_is_read_whole():
    text = text_of(pdf_bytes([["There are about 25 pack-", "ages supplied with R."], ["More packages are on CRAN."]]))

    assert "25 packages supplied" in text
    assert "pack-" not in text


def test_a_real_hyphen_at_a_line_end_is_kept():
    text = text_of(pdf_bytes([["Run git-", "config to set it."], ["See git-config for the keys."]]))

    assert "Run git-config to set it." in text
