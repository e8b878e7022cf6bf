"""Loaders: one function per format, turning a file's bytes into a title and sections.

LOADERS maps a file extension to its loader. Every text format goes through `decode_text`, the
one place that decides encodings: UTF-8 (with or without BOM), UTF-16 with a BOM, then Windows-1252
for legacy 8-bit files; content that looks binary is refused. A loader raises LoadError with a
reason the user can act on; it never returns an empty document silently. HTML leaves site chrome
(menus, sidebars, footers) out; a PDF is read page by page, and its bookmarks, when it has them,
split the pages into sections with heading paths.
"""

from __future__ import annotations

import io
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Callable

from rag.errors import LoadError
from rag.types import Section

Loaded = tuple[str, list[Section], int | None]  # title, sections, page count
Loader = Callable[[Path, bytes], Loaded]


def decode_text(data: bytes) -> str:
    if data.startswith(b"\xef\xbb\xbf"):
        return data[3:].decode("utf-8", errors="replace")
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return data.decode("utf-16", errors="replace")
    sample = data[:8192]
    if b"\x00" in sample:
        raise LoadError("binary content (NUL bytes), not text")
    controls = sum(1 for b in sample if b < 32 and b not in (9, 10, 12, 13, 27))
    if sample and controls / len(sample) > 0.05:
        raise LoadError("binary content (control bytes), not text")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    # Legacy 8-bit text: cp1252 covers Latin-1 plus the "smart quotes" range; its five undefined
    # bytes are replaced rather than failing the file.
    return data.decode("cp1252", errors="replace")


def _one_section(text: str) -> list[Section]:
    return [Section(text=text, start=0)] if text.strip() else []


def _require_text(sections: list[Section]) -> list[Section]:
    if not any(s.text.strip() for s in sections):
        raise LoadError("no text to index (empty file)")
    return sections


def load_text(path: Path, data: bytes) -> Loaded:
    text = decode_text(data)
    return path.stem, _require_text(_one_section(text)), None


# -- Markdown ---------------------------------------------------------------------------------

ATX = re.compile(r"^ {0,3}(#{1,6})[ \t]+(.*?)[ \t#]*$")
SETEXT = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")
FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
FRONT_MATTER = re.compile(r"\A---\r?\n(.*?)\r?\n(?:---|\.\.\.)[ \t]*(?:\r?\n|\Z)", re.S)


def _sections_from_headings(
    text: str, headings: list[tuple[int, int, int, str]], body_start: int = 0
) -> list[Section]:
    """Cut `text` (from `body_start` on) at headings given as (line_start, body_start, level, title)."""
    sections: list[Section] = []
    path: list[tuple[int, str]] = []
    current: tuple[str, ...] = ()
    for line_start, next_body, level, title in headings:
        body = text[body_start:line_start]
        if body.strip():
            sections.append(Section(text=body, heading=current, start=body_start))
        path = [(lvl, t) for lvl, t in path if lvl < level] + [(level, title)]
        current = tuple(t for _, t in path)
        body_start = next_body
    if text[body_start:].strip():
        sections.append(Section(text=text[body_start:], heading=current, start=body_start))
    return sections


def load_markdown(path: Path, data: bytes) -> Loaded:
    text = decode_text(data)
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
        title = next((t for _, _, lvl, t in headings if lvl == 1), None) or path.stem
    # front matter is metadata, not text to search
    return title, _require_text(_sections_from_headings(text, headings, body_start=offset)), None


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
    return title, _require_text(_sections_from_headings(text, headings)), None


# -- HTML -------------------------------------------------------------------------------------

# Elements whose content is never visible text. <head> is not one of them: its end tag is optional
# in HTML5, and a page that omits it would lose its whole body; what <head> holds is covered here.
SKIP_TAGS = {"script", "style", "noscript", "template", "svg", "iframe", "object", "title"}
BLOCK_TAGS = {
    "p", "div", "section", "article", "main", "aside", "header", "footer", "nav", "ul", "ol", "li",
    "dl", "dt", "dd", "table", "tr", "blockquote", "pre", "hr", "br", "form", "fieldset", "figure",
    "figcaption", "details", "summary", "td", "th",
}
HEADING_TAGS = {"h1": 1, "h2": 2, "h3": 3, "h4": 4, "h5": 5, "h6": 6}
VOID_TAGS = {"br", "hr", "img", "input", "meta", "link", "area", "base", "col", "embed", "source", "wbr"}
# Site chrome repeated on every page of a documentation site: menus, sidebars, breadcrumbs, tables
# of contents, footers. Its links share words with every question and crowd real text out of the
# first chunk of each page. Recognised by <nav>, ARIA roles, or a class word that names it (the
# words readability-style extractors look for). Never by id: ids are made from heading text
# (Sphinx's <section id="navigation"> holds a section titled "Navigation"), and never on a
# heading. <header> is kept: it often holds the <h1>. Not "related": a paper's "related-work"
# section is content (Sphinx marks its related bars role=navigation).
CHROME_ROLES = {"navigation", "contentinfo", "search"}
CHROME_WORDS = {
    "nav", "navbar", "navigation", "menu", "menubar", "searchmenu", "sidebar", "sphinxsidebar",
    "breadcrumb", "breadcrumbs", "toc", "footer", "skip", "skiplink",
}
CLASS_WORD = re.compile(r"[a-z0-9]+")
# A page whose chrome element is still open at its end, or would swallow more than this share of
# its text, probably left a <div> unclosed: it is read again without skipping, so no page ever
# loses its body to the heuristic.
MAX_CHROME_SHARE = 0.5


def _is_chrome(tag: str, attrs: list[tuple[str, str | None]]) -> bool:
    if tag == "nav":
        return True
    if tag in HEADING_TAGS:
        return False
    values = dict(attrs)
    if (values.get("role") or "").lower() in CHROME_ROLES:
        return True
    return any(word in CHROME_WORDS for word in CLASS_WORD.findall((values.get("class") or "").lower()))


class _VisibleText(HTMLParser):
    """Collects visible text with paragraph breaks, and the headings with their offsets."""

    def __init__(self, skip_chrome: bool = True) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.length = 0
        self.skip_depth = 0
        self.skip_chrome = skip_chrome
        self.chrome: list[str] = []  # the open chrome element's tag, once per nested same tag
        self.chrome_chars = 0
        self.pre_depth = 0
        self.title = ""
        self.in_title = False
        self.heading_level = 0
        self.heading_text: list[str] = []
        self.heading_start = 0
        self.headings: list[tuple[int, int, int, str]] = []

    def _emit(self, text: str) -> None:
        self.parts.append(text)
        self.length += len(text)

    def _break(self) -> None:
        if self.parts and not self.parts[-1].endswith("\n\n"):
            self._emit("\n\n" if not self.parts[-1].endswith("\n") else "\n")

    def handle_starttag(self, tag, attrs):
        if self.chrome:
            if tag == self.chrome[0] and tag not in VOID_TAGS:
                self.chrome.append(tag)
            return
        if self.skip_chrome and tag not in VOID_TAGS and _is_chrome(tag, attrs):
            self.chrome.append(tag)
            return
        if tag == "title" and not self.skip_depth and not self.title:
            self.in_title = True  # the page's own <title>, not an <svg> icon's
        if tag in SKIP_TAGS:
            self.skip_depth += tag not in VOID_TAGS
            return
        if tag == "pre":
            self.pre_depth += 1
        if tag in HEADING_TAGS and not self.skip_depth:
            self._break()
            self.heading_level = HEADING_TAGS[tag]
            self.heading_text = []
            self.heading_start = self.length
        elif tag in BLOCK_TAGS:
            self._break()

    def handle_endtag(self, tag):
        if self.chrome:
            if tag == self.chrome[0]:
                self.chrome.pop()
                if not self.chrome:
                    self._break()
            return
        if tag == "title":
            self.in_title = False
        if tag in SKIP_TAGS:
            self.skip_depth = max(0, self.skip_depth - 1)
            return
        if tag == "pre":
            self.pre_depth = max(0, self.pre_depth - 1)
        if tag in HEADING_TAGS and self.heading_level:
            title = " ".join("".join(self.heading_text).split())
            self._break()
            if title:
                self.headings.append((self.heading_start, self.length, self.heading_level, title))
            self.heading_level = 0
        elif tag in BLOCK_TAGS:
            self._break()

    def handle_data(self, data):
        if self.chrome:
            self.chrome_chars += len(data.strip())
            return
        if self.in_title:
            self.title += data
        if self.skip_depth:
            return
        if self.heading_level:
            self.heading_text.append(data)
        if not self.pre_depth:
            data = re.sub(r"\s+", " ", data)
            if self.parts and self.parts[-1].endswith((" ", "\n")):
                data = data.lstrip(" ")
        if data:
            self._emit(data)


def _parse_html(markup: str, skip_chrome: bool) -> _VisibleText:
    parser = _VisibleText(skip_chrome)
    parser.feed(markup)
    parser.close()
    return parser


def load_html(path: Path, data: bytes) -> Loaded:
    markup = decode_text(data)
    parser = _parse_html(markup, skip_chrome=True)
    if parser.chrome or parser.chrome_chars > MAX_CHROME_SHARE * (parser.chrome_chars + parser.length):
        parser = _parse_html(markup, skip_chrome=False)
    text = "".join(parser.parts)
    title = " ".join(parser.title.split()) or next((t for _, _, lvl, t in parser.headings if lvl == 1), path.stem)
    return title, _require_text(_sections_from_headings(text, parser.headings)), None


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
        raise LoadError(f"unreadable PDF ({_short(exc)})") from None
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


def _short(exc: Exception) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:120]


LOADERS: dict[str, Loader] = {
    ".txt": load_text,
    ".text": load_text,
    ".md": load_markdown,
    ".markdown": load_markdown,
    ".rst": load_rst,
    ".html": load_html,
    ".htm": load_html,
    ".pdf": load_pdf,
}


def loader_for(path: Path) -> Loader | None:
    name = path.name.lower()
    if name.endswith(".rst.txt"):  # Sphinx ships its reST sources under this name
        return load_rst
    return LOADERS.get(path.suffix.lower())
