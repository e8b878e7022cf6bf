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


def book(pages: int = 12) -> list[list[str]]:
    """A book's pages as a typesetter prints them: front matter numbered i, ii; then chapters
    whose pages carry a running header with the printed page number, a chapter's first page only
    the number; and a footnote whose number happens to be its page's printed number."""
    out = [["i", "Contents", "1 Engines ... 1"], ["ii", "2 Wheels ... 5", "3 Brakes ... 9"]]
    for printed in range(1, pages + 1):
        chapter = ["Chapter 1: Engines", "Chapter 2: Wheels", "Chapter 3: Brakes"][(printed - 1) // 4]
        head = [str(printed)] if printed in (1, 5, 9) else [f"{chapter} {printed}"]
        body = [f"The engine on page {printed} needs oil every spring,", "and the tyres need air."]
        foot = [f"{printed} A footnote numbered as its page."] if printed == 6 else []
        out.append(head + body + foot)
    return out


def test_running_headers_and_page_numbers_are_not_read_into_the_text():
    # R-intro's pages begin "Chapter 5: Arrays and matrices 21" (or a bare "17" on a chapter's first
    # page): read between two pages' sentences, into every chunk over a page break, and quoted in
    # answers ("Chapter 8: Probability distributions 37 > 2*pt(-2.43, df = 13)")
    _, sections, *_ = load_pdf(Path("book.pdf"), pdf_bytes(book()))
    text = "\n".join(s.text for s in sections)

    assert "Chapter 1: Engines" not in text and "Chapter 3: Brakes" not in text
    assert not [line for line in text.splitlines() if line.strip() in {"i", "ii", "1", "5", "9"}]
    assert text.count("needs oil every spring") == 12
    # a footnote that starts with its page's printed number, as no other page's foot does, stays
    assert "6 A footnote numbered as its page." in text
    assert "Contents" in text


def test_a_line_that_merely_starts_several_pages_is_kept_when_few_pages_share_it():
    words = "valve pump gasket hose filter belt spring piston lever clamp".split()
    pages = [[f"Check the {words[n % 10]}.", f"Then the {words[(n * 3) % 10]} and the {words[(n * 7) % 10]}."]
             for n in range(20)]
    pages[3][0] = pages[9][0] = "Warning"

    _, sections, *_ = load_pdf(Path("steps.pdf"), pdf_bytes(pages))
    text = "\n".join(s.text for s in sections)

    assert text.count("Warning") == 2 and text.count("Check the") == 18 and text.count("Then the") == 20


def test_a_page_x_of_y_footer_is_left_out():
    pages = [[f"Section {n} of the contract covers {'payment delivery warranty liability notice'.split()[n % 5]}.",
              f"Page {n} of 6"] for n in range(1, 7)]

    _, sections, *_ = load_pdf(Path("contract.pdf"), pdf_bytes(pages))
    text = "\n".join(s.text for s in sections)

    assert "of 6" not in text and text.count("of the contract covers") == 6
