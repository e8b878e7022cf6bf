"""Loaders: the one dispatch from a file's extension to the function that reads it.

LOADERS maps an extension to a loader `(path, data) -> (title, sections, pages)`; PAGE_KINDS says
what a format's numbered locations are (a slide, a chapter; a page otherwise). Plain text,
Markdown, reST and PDF are read here; HTML in ingest.html_text, office files and EPUB in
ingest.office and ingest.epub, notebooks, tables and mail in their own modules. Every text format
goes through `ingest.text.decode_text`. A loader raises LoadError with a reason the user can act
on; it never returns an empty document silently. A PDF is read page by page, and its bookmarks,
when it has them, split the pages into sections with heading paths.
"""

from __future__ import annotations

import io
import re
from pathlib import Path

from ingest import epub, mail, notebook, office, tabular
from ingest.html_text import load_html
from ingest.text import Loaded, Loader, decode_text, require_text, sections_from_headings, short
from rag.errors import LoadError
from rag.types import PageKind, Section

def load_text(path: Path, data: bytes) -> Loaded:
    text = decode_text(data)
    return path.stem, require_text([Section(text=text, start=0)]), None


# -- Markdown ---------------------------------------------------------------------------------

ATX = re.compile(r"^ {0,3}(#{1,6})[ \t]+(.*?)[ \t#]*$")
SETEXT = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")
FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
FRONT_MATTER = re.compile(r"\A---\r?\n(.*?)\r?\n(?:---|\.\.\.)[ \t]*(?:\r?\n|\Z)", re.S)


def load_markdown(path: Path, data: bytes) -> Loaded:
    title, sections = markdown_sections(decode_text(data))
    return title or path.stem, require_text(sections), None


def markdown_sections(text: str) -> tuple[str | None, list[Section]]:
    """The title (front matter, else the first level-1 heading) and the text cut at its headings."""
    title = None
    offset = 0
    if m := FRONT_MATTER.match(text):
        if t := re.search(r"^title:\s*[\"']?(.*?)[\"']?\s*$", m.group(1), re.M):
            title = t.group(1)
        offset = m.end()
    headings: list[tuple[int, int, int, str]] = []
    lines = text[offset:].splitlines(keepends=True)
    pos = offset
    in_fence = None  # the opening fence while inside a code block
    previous: tuple[int, str] | None = None  # (start, text) of the last non-blank paragraph line
    for line in lines:
        stripped = line.rstrip("\r\n")
        fence = FENCE.match(stripped)
        if in_fence:
            # only a fence of the same character, at least as long and with no info string, closes
            if fence and fence.group(1)[0] == in_fence[0] and len(fence.group(1)) >= len(in_fence) \
                    and not stripped[fence.end():].strip():
                in_fence = None
        elif fence:
            in_fence = fence.group(1)
            previous = None
        elif m := ATX.match(stripped):
            headings.append((pos, pos + len(line), len(m.group(1)), m.group(2).strip()))
            previous = None
        elif (m := SETEXT.match(stripped)) and previous and not previous[1].startswith((" ", "\t", "-", "*", ">")):
            level = 1 if m.group(1)[0] == "=" else 2
            headings.append((previous[0], pos + len(line), level, previous[1].strip()))
            previous = None
        else:
            previous = (pos, stripped) if stripped.strip() else None
        pos += len(line)
    if title is None:
        title = next((t for _, _, lvl, t in headings if lvl == 1), None)
    # front matter is metadata, not text to search
    return title, sections_from_headings(text, headings, body_start=offset)


# -- reStructuredText -------------------------------------------------------------------------

RST_ADORNMENT = re.compile(r"^([=\-`:'\"~^_*+#<>.])\1{2,}[ \t]*$")


def load_rst(path: Path, data: bytes) -> Loaded:
    text = decode_text(data)
    lines = text.splitlines(keepends=True)
    starts = [0]
    for line in lines:
        starts.append(starts[-1] + len(line))
    styles: list[tuple[str, bool]] = []  # heading styles in order of first use = their level
    headings: list[tuple[int, int, int, str]] = []
    i = 0
    while i < len(lines) - 1:
        title_line = lines[i].rstrip("\r\n")
        under = lines[i + 1].rstrip("\r\n")
        # an overline must repeat the underline exactly; anything else above is not part of it
        over = i > 0 and lines[i - 1].rstrip() == under.rstrip()
        if (
            title_line.strip()
            and not RST_ADORNMENT.match(title_line)
            and (m := RST_ADORNMENT.match(under))
            and len(under.rstrip()) >= len(title_line.rstrip())
        ):
            style = (m.group(1), over)
            if style not in styles:
                styles.append(style)
            begin = starts[i - 1] if over else starts[i]
            headings.append((begin, starts[i + 2], styles.index(style) + 1, title_line.strip()))
            i += 2
            continue
        i += 1
    title = headings[0][3] if headings else path.stem
    return title, require_text(sections_from_headings(text, headings)), None


# -- PDF --------------------------------------------------------------------------------------


# Tables of contents and indexes pad entries with dot leaders (". . . . . 80"); dozens of
# dot tokens per line crowd real words out of a chunk and out of its embedding.
DOT_LEADER = re.compile(r"[ \t]*(?:\.[ \t]*){4,}")


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
            except DependencyError:
                raise LoadError("encrypted PDF (AES): install the `cryptography` package to read it") from None
            except Exception:
                opened = 0
            if not opened:
                raise LoadError("encrypted PDF: it needs a password; save a decrypted copy and ingest that")
        pages = reader.pages
        count = len(pages)
    except LoadError:
        raise
    except Exception as exc:  # pypdf raises many types (and some non-pypdf ones) on damaged files
        raise LoadError(f"unreadable PDF ({short(exc)})") from None
    if count == 0:
        raise LoadError("PDF has no pages")
    starting = _outline_by_page(reader)
    sections: list[Section] = []
    heading: tuple[str, ...] = ()
    offset = 0
    failed = 0
    for number in range(count):
        try:
            text = DOT_LEADER.sub(" ... ", pages[number].extract_text() or "")
        except Exception:  # a broken page must not cost the rest of the document
            failed += 1
            continue
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
        reason = "pages could not be read" if failed else "no extractable text (scanned images?)"
        raise LoadError(f"PDF has {reason}")
    title = path.stem
    try:
        meta_title = (reader.metadata or {}).get("/Title")
        if isinstance(meta_title, str) and len(meta_title.strip()) > 3:
            title = meta_title.strip()
    except Exception:
        pass
    return title, sections, count


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
            except Exception:
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


LOADERS: dict[str, Loader] = {
    ".txt": load_text,
    ".text": load_text,
    ".md": load_markdown,
    ".markdown": load_markdown,
    ".rst": load_rst,
    ".html": load_html,
    ".htm": load_html,
    ".pdf": load_pdf,
    ".docx": office.load_docx,
    ".pptx": office.load_pptx,
    ".odt": office.load_odt,
    ".epub": epub.load_epub,
    ".ipynb": notebook.load_notebook,
    ".csv": tabular.load_csv,
    ".tsv": tabular.load_csv,
    ".eml": mail.load_eml,
    ".mbox": mail.load_mbox,
}
# What a section's `page` counts, by format; every other format counts pages (or has none).
PAGE_KINDS: dict[str, PageKind] = {".pptx": "slide", ".epub": "chapter"}


def loader_for(path: Path) -> Loader | None:
    name = path.name.lower()
    if name.endswith(".rst.txt"):  # Sphinx ships its reST sources under this name
        return load_rst
    return LOADERS.get(path.suffix.lower())


def page_kind_for(path: Path) -> PageKind:
    return PAGE_KINDS.get(path.suffix.lower(), "page")
