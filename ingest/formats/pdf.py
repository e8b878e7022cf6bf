"""PDF: read page by page; bookmarks, when the file has them, split the pages into sections with
heading paths.

pypdf opens the file (damage, encryption, bookmarks, metadata: what it does well); the words come
from PDFium (pypdfium2), which keeps word spaces from glyph positions and marks hyphens at line
ends (a word broken there is joined when the document spells it whole elsewhere);
bench/pdf_text.py compares the two on the same books. A page with no text layer
but something drawn on it is a scan: it is rendered at 300 dpi and read by Tesseract
(ingest.formats.ocr); without Tesseract such pages are counted, never silently empty. Encrypted
files that need a password, and files with nothing to read, raise LoadError with what to do.
"""

from __future__ import annotations

import io
import re
import threading
from collections import Counter
from pathlib import Path

from ingest.formats import ocr
from ingest.formats.text import Loaded, rejoined, short, spellings
from rag.errors import LoadError
from rag.types import Section

# Tables of contents and indexes pad entries with dot leaders (". . . . . 80"); dozens of
# dot tokens per line crowd real words out of a chunk and out of its embedding. The match may
# start only where a run of blanks starts (the lookbehind): otherwise every blank of a long run
# started one, and a page of 40,000 spaces took 25 s.
DOT_LEADER = re.compile(r"(?<![ \t])[ \t]*(?:\.[ \t]*){4,}")
# PDFium marks a hyphen at a line end with U+FFFE and joins the two lines. That hyphen is either
# hyphenation ("pack-ages", to be read "packages") or a real one ("git-config", printed from HTML,
# which breaks lines at hyphens): the document's own words decide (_dehyphenate).
SOFT_HYPHEN = "\ufffe"
BROKEN_WORD = re.compile(r"(\w+)\ufffe(\w+)")
CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ufeff\uffff]")
# A page with fewer letters than this in its text layer but with something drawn on it is read
# by OCR: a scan often carries a stamped page number or a header as real text.
SCANNED_MAX_LETTERS = 20
# PDFium is not thread-safe: one document at a time per process (ingest reads ahead in a thread).
_PDFIUM = threading.Lock()
# Page furniture: a page's first or last line that is a running header or footer ("Chapter 5:
# Arrays and matrices 21", a bare "17" or "iv", "Page 3 of 10", "Acme Corp - Confidential"), read
# into the text between two pages' sentences and into any chunk that runs over a page break.
FURNITURE_MAX_CHARS = 120  # a longer first or last line is the text itself
PAGE_NUMBER = re.compile(r"(?<![\w.,:/-])\d{1,4}(?![\w.,:/-]\w)")
ROMAN_NUMBER = re.compile(r"\s*[ivxlc]{1,7}\s*", re.I)
MIN_REPEATS = 3  # the page's number stands so on this many pages; a line recurs on this many ...
REPEAT_SHARE = 0.2  # ... and on this share of the pages with text
WITHIN_WORDS = 4  # a number within a line's words is its page's in a line this short at most
MIN_PAGES = 5  # a shorter document keeps lines that merely recur (its own words, most likely)


def load_pdf(path: Path, data: bytes) -> Loaded:
    import logging

    from pypdf import PdfReader
    from pypdf.errors import DependencyError

    # pypdf logs every flaw it repairs, some at ERROR level, straight to the user's terminal; the
    # outcome that matters (the file is unreadable) is reported as one LoadError line instead
    logging.getLogger("pypdf").setLevel(logging.CRITICAL + 1)
    if not data.strip():
        raise LoadError("empty PDF (0 bytes)")
    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            try:
                opened = reader.decrypt("")
            except DependencyError as exc:
                raise LoadError("encrypted PDF (AES): install the `cryptography` package to read it") from exc
            except Exception:  # a damaged encryption dictionary: as good as a password we do not have
                opened = 0
            if not opened:
                raise LoadError("encrypted PDF: it needs a password; save a decrypted copy and ingest that")
        pages = reader.pages
        count = len(pages)
    except LoadError:
        raise
    except Exception as exc:  # pypdf raises many types (and some non-pypdf ones) on damaged files
        raise LoadError(f"unreadable PDF ({short(exc)})") from exc
    if count == 0:
        raise LoadError("PDF has no pages")
    texts, unread = _page_texts(data, pages)
    texts = without_furniture(texts)
    starting = _outline_by_page(reader)
    sections: list[Section] = []
    heading: tuple[str, ...] = ()
    offset = 0
    failed = 0
    for number, text in enumerate(texts):
        if text is None:  # a broken page must not cost the rest of the document
            failed += 1
            continue
        text = DOT_LEADER.sub(" ... ", text)
        # the page splits where each outline entry that starts on it has its title
        cuts = [(0, heading)]
        for entry in starting.get(number, []):
            found = _find_title(text, entry[-1], cuts[-1][0])
            cuts.append((cuts[-1][0] if found is None else found, entry))
        for (begin, under), (end, _) in zip(cuts, cuts[1:] + [(len(text), ())]):
            if text[begin:end].strip():
                sections.append(Section(text=text[begin:end], heading=under, page=number + 1, start=offset + begin))
        heading = cuts[-1][1]
        offset += len(text) + 1
    if not sections:
        if unread:
            raise ocr.NeedsOCR(unread)
        reason = "pages could not be read" if failed else "no extractable text (scanned images?)"
        raise LoadError(f"PDF has {reason}")
    title = path.stem
    try:
        meta_title = (reader.metadata or {}).get("/Title")
        if isinstance(meta_title, str) and len(meta_title.strip()) > 3:
            title = meta_title.strip()
    except Exception:  # damaged metadata costs only the title
        pass
    if unread:
        return title, sections, count, unread
    return title, sections, count


def _page_texts(data: bytes, pages) -> tuple[list[str | None], int]:
    """Each page's text (None: unreadable), and how many scanned pages went unread for want of
    Tesseract. PDFium reads the text layer; a file PDFium cannot open is read by pypdf instead."""
    import pypdfium2 as pdfium

    texts: list[str | None] = []
    scans: list[int] = []
    with _PDFIUM:
        try:
            document = pdfium.PdfDocument(data, password="")
        except pdfium.PdfiumError:
            document = None
        if document is None or len(document) != len(pages):
            if document is not None:
                document.close()
            return [_pypdf_text(page) for page in pages], 0
        try:
            for number in range(len(document)):
                try:
                    page = document[number]
                    textpage = page.get_textpage()
                    text = _clean(textpage.get_text_range())
                    if sum(ch.isalpha() for ch in text) < SCANNED_MAX_LETTERS and _draws_something(page):
                        scans.append(number)
                    textpage.close()
                    page.close()
                except pdfium.PdfiumError:
                    text = None
                texts.append(text)
            texts = _dehyphenate(texts)
            if scans and not ocr.available():
                return texts, len(scans)
            for number in scans:
                page = document[number]
                image = page.render(scale=ocr.DPI / 72, grayscale=True).to_pil()
                page.close()
                words, _ = ocr.read_image(image)
                if len(words.strip()) > len((texts[number] or "").strip()):
                    texts[number] = words
        finally:
            document.close()
    return texts, 0


def without_furniture(texts: list[str | None]) -> list[str | None]:
    """Each page's text without its running header and footer, a first or last line that
    - holds the page's printed number (the PDF page less the offset most pages agree on), placed
      in the line as at least MIN_REPEATS pages place it at that edge (alone, first, last or within
      its words): R-intro's "Chapter 9: Grouping, loops and conditional execution 44" on its page
      50, but not R-exts' footnote "10 CRAN expands them ..." at the foot of its printed page 10;
    - or is a bare roman numeral, where two pages or more have one (front matter);
    - or recurs word for word at that edge on MIN_REPEATS pages and a REPEAT_SHARE of them, in a
      document of MIN_PAGES pages or more."""
    lines = {n: text.split("\n") for n, text in enumerate(texts) if text and text.strip()}
    edges = {n: [(edge, i, page[i].strip()) for edge, i in _edges(page)] for n, page in lines.items()}
    numbers = {(n, i): _numbers(line) for n, found in edges.items() for _, i, line in found}
    least = max(MIN_REPEATS, REPEAT_SHARE * len(lines))
    offsets = Counter(offset for (n, _), found in numbers.items() for offset in {n - number for number, _ in found})
    offset, agreeing = offsets.most_common(1)[0] if offsets else (0, 0)
    numbered = {}  # (page, line index) -> (edge, where the page's number stands in it)
    if agreeing >= least:
        for n, found in edges.items():
            for edge, i, _ in found:
                where = next((place for number, place in numbers[n, i] if n - number == offset), None)
                if where is not None:
                    numbered[n, i] = (edge, where)
    placed = Counter(numbered.values())
    repeats = Counter((edge, line) for found in edges.values() for edge, _, line in found)
    romans = Counter(edge for found in edges.values() for edge, _, line in found if ROMAN_NUMBER.fullmatch(line))
    out = list(texts)
    for n, found in edges.items():
        drop = {i for edge, i, line in found
                if placed[numbered.get((n, i))] >= MIN_REPEATS
                or (ROMAN_NUMBER.fullmatch(line) and romans[edge] >= 2)
                or (len(lines) >= MIN_PAGES and repeats[edge, line] >= least)}
        if drop:
            out[n] = "\n".join(line for i, line in enumerate(lines[n]) if i not in drop)
    return out


def _edges(lines: list[str]) -> list[tuple[str, int]]:
    """("top" or "bottom", index) of a page's first and last non-blank lines, when short enough to
    be furniture."""
    filled = [i for i, line in enumerate(lines) if line.strip()]
    if not filled:
        return []
    ends = [("top", filled[0])] + ([("bottom", filled[-1])] if filled[-1] != filled[0] else [])
    return [(edge, i) for edge, i in ends if len(lines[i].strip()) <= FURNITURE_MAX_CHARS]


def _numbers(line: str) -> list[tuple[int, str]]:
    """The numbers a line could print its page number as, each with where it stands: "alone",
    "first", "last" or "within" (a date, a version or a section number "2.1" is none)."""
    out = []
    for match in PAGE_NUMBER.finditer(line):
        place = ("alone" if match.group(0) == line else "first" if match.start() == 0
                 else "last" if match.end() == len(line) else "within")
        if place != "within" or len(line.split()) <= WITHIN_WORDS:  # "Page 3 of 10", not a sentence
            out.append((int(match.group(0)), place))
    return out


def _draws_something(page) -> bool:
    import pypdfium2.raw as pdfium_c

    drawn = (pdfium_c.FPDF_PAGEOBJ_IMAGE, pdfium_c.FPDF_PAGEOBJ_PATH, pdfium_c.FPDF_PAGEOBJ_FORM,
             pdfium_c.FPDF_PAGEOBJ_SHADING)
    return any(obj.type in drawn for obj in page.get_objects(max_depth=2))


def _clean(text: str) -> str:
    return CONTROL.sub(" ", text.replace("\r\n", "\n").replace("\r", "\n"))


def _dehyphenate(texts: list[str | None]) -> list[str | None]:
    """Join a word broken over a line end ("pack-" "ages") when the document spells it whole
    elsewhere more often than hyphenated; keep the hyphen otherwise ("git-config")."""
    marked = [t for t in texts if t and SOFT_HYPHEN in t]
    if not marked:
        return texts
    seen = spellings(t.replace(SOFT_HYPHEN, " ") for t in texts if t)

    def mend(text: str) -> str:
        return BROKEN_WORD.sub(lambda match: rejoined(*match.groups(), seen), text).replace(SOFT_HYPHEN, "-")

    return [mend(t) if t and SOFT_HYPHEN in t else t for t in texts]


def _pypdf_text(page) -> str | None:
    try:
        return page.extract_text() or ""
    except Exception:
        return None


def _outline_by_page(reader) -> dict[int, list[tuple[str, ...]]]:
    """The heading path of every outline (bookmark) entry, by the 0-based page it starts on."""
    starting: dict[int, list[tuple[str, ...]]] = {}

    def walk(items, parents: tuple[str, ...]) -> None:
        path = None
        for item in items:
            if isinstance(item, list):  # the children of the entry before it
                walk(item, path or parents)
                continue
            title = " ".join(str(getattr(item, "title", "") or "").split())
            path = parents + (title,) if title else parents
            try:
                page = reader.get_destination_page_number(item)
            except Exception:  # a destination pypdf cannot resolve: the entry has no page
                page = None
            if title and page is not None and page >= 0:
                starting.setdefault(page, []).append(path)

    try:
        walk(reader.outline, ())
    except Exception:  # a damaged outline costs the headings, never the text
        return {}
    return starting


def _find_title(text: str, title: str, start: int) -> int | None:
    """Where a heading line with this title (maybe numbered, maybe wrapped) begins, at or after start."""
    words = title.split()
    if not words:
        return None
    pattern = r"(?m)^[ \t]*(?:[0-9A-Z]{1,3}(?:\.[0-9]+)*\.?[ \t]+)?" + r"\s+".join(map(re.escape, words)) + r"[ \t]*$"
    match = re.compile(pattern).search(text, start)
    return match.start() if match else None
