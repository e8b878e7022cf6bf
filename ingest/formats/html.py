"""HTML to visible text: what a reader of the page sees, with its headings, without site chrome.

`html_sections` is the one HTML path (web pages, EPUB chapters, HTML-only mail). It drops what is
never visible (scripts, styles, <title>) and site chrome repeated on every page (menus, sidebars,
breadcrumbs, tables of contents, footers). Invariant: the chrome heuristic never costs a page its
body: a page whose chrome would swallow most of its text is read again without it.

A data table reads as rows, each cell with its column's label (ingest.formats.tables): the table
is recorded as it is parsed and, at its end, either written as rows or, when it lays out a page
rather than holding data (a heading, a code block or another table in a cell, a single row, a
cell of several paragraphs' length), played back as ordinary blocks.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import replace
from html.parser import HTMLParser
from pathlib import Path

from ingest.formats.tables import table_text
from ingest.formats.text import (Loaded, NotContent, decode_text, rejoined, require_text, sections_from_headings,
                                 spellings)
from rag.types import Section, spans_within

# a word a <pre> line ends with, broken by a hyphen, and its rest on the next line (_mended)
PRE_BROKEN = re.compile(r"([A-Za-z]\w*[A-Za-z])-\n[ \t]*([a-z]\w*)")

# A manual page's section heading inside a <pre> (nroff output, as Postfix's and man2html's pages
# are): capitals at the start of its line, one space between words ("NAME", "SEE ALSO"); the
# running header "POSTSUPER(1)          POSTSUPER(1)" has more
MANUAL_HEADING = re.compile(r"^[A-Z][A-Z0-9]*(?: [A-Z0-9][A-Z0-9-]*)*[ \t]*$", re.M)
MANUAL_SECTIONS = {"NAME", "SYNOPSIS", "DESCRIPTION"}  # two of these make a <pre> a manual page

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
    "breadcrumb", "breadcrumbs", "toc", "footer", "skip", "skiplink", "tagline",
}
CLASS_WORD = re.compile(r"[a-z0-9]+")
# A page's closing stamp, when no footer element marks it: "This page last modified on 2014-08-15
# 14:59:54 UTC" (SQLite), "Last updated 2024-05-31 00:35:55 UTC" (Asciidoc: Git's manual), "Last
# updated on Jun 05, 2024." (Sphinx), "This page was last edited on 5 May 2024" (MediaWiki). It
# answers no question, yet an extractive answer that quoted the paragraph above it quoted the
# stamp too. Only a short last paragraph that says "last ..." and holds a year is dropped.
STAMP = re.compile(r"(?:this\s+(?:page|document|file)\s+(?:was\s+)?)?last\s+(?:modified|updated|edited|changed)"
                   r"\b[^\n]{0,60}?\b(?:1[89]|20)\d\d\b[^\n]{0,40}", re.I)
STAMP_WORDS = 16
# A page whose chrome element is still open at its end, or would swallow more than this share of
# its text, probably left a <div> unclosed: it is read again without skipping, so no page ever
# loses its body to the heuristic.
MAX_CHROME_SHARE = 0.5
# A pager: a paragraph of links to the neighbouring pages with nothing else but these words, as
# Texinfo writes atop every node ("Next: Incomplete Lines, Previous: What Comparison Means, Up:
# Comparing and Merging Files [Contents][Index]") in a <div class="header">, and DocBook or
# LaTeX2HTML in theirs ("Prev Up Next"). Unmarked as chrome, it was read into every chunk it
# touched and quoted as an answer (GNU diffutils manual).
PAGER_WORDS = frozenset("next previous prev up home top contents index back forward first last page".split())


def _is_chrome(tag: str, attrs: list[tuple[str, str | None]]) -> bool:
    if tag == "nav":
        return True
    if tag in HEADING_TAGS:
        return False
    values = dict(attrs)
    if (values.get("role") or "").lower() in CHROME_ROLES:
        return True
    return any(word in CHROME_WORDS for word in CLASS_WORD.findall((values.get("class") or "").lower()))


# Inside a cell, these mean the page is laid out with the table, not tabulating data.
LAYOUT_TAGS = {"h1", "h2", "h3", "h4", "h5", "h6", "pre", "table", "form", "iframe"}
CELL_BREAK_TAGS = {"br", "p", "div", "li", "dd", "dt", "tr", "blockquote", "hr"}
MAX_CELL_CHARS = 1500  # a cell longer than this is a page column, not a value


def _span(attrs: list[tuple[str, str | None]], name: str) -> int:
    value = dict(attrs).get(name) or "1"
    return max(1, min(int(value), 100)) if value.strip().isdigit() else 1


def _data_table(events: list[tuple]) -> str | None:
    """The recorded table (its events, from <table> to </table>) as rows of text, or None when it
    lays out a page rather than holding data."""
    rows: list[list[tuple[str, bool, int, int]]] = []  # per row: (text, is_header, colspan, rowspan)
    header_section: list[bool] = []  # the row sits in <thead>
    cell: list[str] | None = None
    cell_meta: tuple[bool, int, int] = (False, 1, 1)
    in_head = skip = depth = 0

    def close_cell() -> None:
        nonlocal cell
        if cell is not None and rows:
            rows[-1].append(("".join(cell), *cell_meta))
        cell = None

    for kind, tag, payload in events:
        if kind == "start":
            if tag == "table":
                depth += 1
                if depth > 1:
                    return None
            elif tag in LAYOUT_TAGS:
                return None
            elif tag in SKIP_TAGS:
                skip += tag not in VOID_TAGS
            elif tag == "thead":
                in_head = 1
            elif tag in ("tbody", "tfoot"):
                in_head = 0
            elif tag == "tr":
                close_cell()
                rows.append([])
                header_section.append(bool(in_head))
            elif tag in ("td", "th"):
                close_cell()
                if not rows:
                    rows.append([])
                    header_section.append(bool(in_head))
                cell, cell_meta = [], (tag == "th", _span(payload, "colspan"), _span(payload, "rowspan"))
            elif tag in CELL_BREAK_TAGS and cell is not None:
                cell.append("\n")
        elif kind == "end":
            if tag in SKIP_TAGS:
                skip = max(0, skip - 1)
            elif tag in ("td", "th", "tr", "table"):
                close_cell()
            elif tag == "thead":
                in_head = 0
            elif tag in CELL_BREAK_TAGS and cell is not None:
                cell.append("\n")
        elif cell is not None and not skip:
            cell.append(re.sub(r"\s+", " ", payload))
    close_cell()
    # the grid, with spanning cells repeated where they span
    grid: list[list[str]] = []
    header_cells: list[list[bool]] = []
    pending: dict[int, tuple[int, str, bool]] = {}  # column -> (rows still to fill, text, header)
    for row in rows:
        texts: list[str] = []
        heads: list[bool] = []

        def fill_pending() -> None:
            while len(texts) in pending:
                left, text, head = pending[len(texts)]
                texts.append(text)
                heads.append(head)
                if left <= 1:
                    del pending[len(texts) - 1]
                else:
                    pending[len(texts) - 1] = (left - 1, text, head)

        for text, head, colspan, rowspan in row:
            fill_pending()
            for _ in range(colspan):
                if rowspan > 1:
                    pending[len(texts)] = (rowspan - 1, text, head)
                texts.append(text)
                heads.append(head)
        fill_pending()
        grid.append(texts)
        header_cells.append(heads)
    filled = [r for r in grid if any(t.strip() for t in r)]
    columns = max((sum(bool(t.strip()) for t in r) for r in filled), default=0)
    if len(filled) < 2 or columns < 2 or any(len(t) > MAX_CELL_CHARS for r in grid for t in r):
        return None
    header_rows = 0
    for texts, heads, in_thead in zip(grid, header_cells, header_section):
        marked = [h for t, h in zip(texts, heads) if t.strip()]
        if in_thead or (marked and all(marked)):
            header_rows += 1
        else:
            break
    if header_rows >= len(grid):  # header cells all the way down: a table of row labels
        header_rows = 0
    return table_text(grid, header_rows)


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
        self.pre_start = 0
        self.code: list[tuple[int, int]] = []  # the <pre> blocks' (start, end) in the text
        self.title = ""
        self.in_title = False
        self.heading_level = 0
        self.heading_text: list[str] = []
        self.heading_start = 0
        self.headings: list[tuple[int, int, int, str]] = []
        self.table: list[tuple] | None = None  # the events of the table being recorded
        self.table_depth = 0
        self.replaying = False
        # the block since the last break: where its text starts, its links, the words outside them
        self.block_at = (0, 0)
        self.link_depth = 0
        self.links: list[str] = []
        self.outside: list[str] = []

    def _record(self, event: tuple) -> bool:
        """Record an event of the open table; at its end, write it as rows or play it back."""
        if self.table is None:
            return False
        self.table.append(event)
        kind, tag, _ = event
        if tag == "table" and kind in ("start", "end"):
            self.table_depth += 1 if kind == "start" else -1
            if self.table_depth == 0:
                events, self.table = self.table, None
                rows = _data_table(events)
                if rows is not None:
                    self._break()
                    self._emit(rows)
                    self._break()
                else:
                    self._replay(events)
        return True

    def _replay(self, events: list[tuple]) -> None:
        for n, (kind, tag, payload) in enumerate(events):
            self.replaying = n == 0  # the outer table itself is not recorded again; tables inside it are
            if kind == "start":
                self.handle_starttag(tag, payload)
            elif kind == "end":
                self.handle_endtag(tag)
            else:
                self.handle_data(payload)
        self.replaying = False

    def _emit(self, text: str) -> None:
        self.parts.append(text)
        self.length += len(text)

    def _break(self) -> None:
        if self._is_pager():
            del self.parts[self.block_at[0]:]
            self.length = self.block_at[1]
        if self.parts and not self.parts[-1].endswith("\n\n"):
            self._emit("\n\n" if not self.parts[-1].endswith("\n") else "\n")
        self.block_at = (len(self.parts), self.length)
        self.links, self.outside = [], []

    def _is_pager(self) -> bool:
        """Whether the block since the last break is a pager (PAGER_WORDS): two links or more, and
        outside them only pager words; with none outside, the links' own words are all pager words."""
        if len(self.links) < 2 or self.heading_level or self.pre_depth:
            return False
        outside = CLASS_WORD.findall(" ".join(self.outside).lower())
        if not all(word in PAGER_WORDS for word in outside):
            return False
        return bool(outside) or all(word in PAGER_WORDS for word in CLASS_WORD.findall(" ".join(self.links).lower()))

    def handle_starttag(self, tag, attrs):
        if self._record(("start", tag, attrs)):
            return
        if (tag == "table" and not self.replaying and not self.chrome and not self.skip_depth
                and not self.pre_depth and not self.heading_level):
            self.table, self.table_depth = [("start", tag, attrs)], 1
            return
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
        if tag == "a":
            self.link_depth += 1
            self.links.append("")
        if tag in HEADING_TAGS and not self.skip_depth:
            self._break()
            self.heading_level = HEADING_TAGS[tag]
            self.heading_text = []
            self.heading_start = self.length
        elif tag in BLOCK_TAGS:
            self._break()
        if tag == "pre" and self.pre_depth == 1:
            self.pre_start = self.length

    def handle_endtag(self, tag):
        if self._record(("end", tag, None)):
            return
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
        if tag == "pre" and self.pre_depth:
            self.pre_depth -= 1
            if not self.pre_depth and self.length > self.pre_start:
                self.code.append((self.pre_start, self.length))
        if tag == "a":
            self.link_depth = max(0, self.link_depth - 1)
        if tag in HEADING_TAGS and self.heading_level:
            title = " ".join("".join(self.heading_text).split())
            self._break()
            if title:
                self.headings.append((self.heading_start, self.length, self.heading_level, title))
            self.heading_level = 0
        elif tag in BLOCK_TAGS:
            self._break()

    def handle_data(self, data):
        if self._record(("data", "", data)):
            return
        if self.chrome:
            self.chrome_chars += len(data.strip())
            return
        if self.in_title:
            self.title += data
        if self.skip_depth:
            return
        if self.heading_level:
            self.heading_text.append(data)
        if self.link_depth and self.links:
            self.links[-1] += data
        else:
            self.outside.append(data)
        if not self.pre_depth:
            data = re.sub(r"\s+", " ", data)
            if self.parts and self.parts[-1].endswith((" ", "\n")):
                data = data.lstrip(" ")
        if data:
            self._emit(data)


class _LinearParser(_VisibleText):
    """_VisibleText in time linear in the page.

    The stdlib parser before Python 3.11.13 (3.12.11, 3.13.4) searches to the end of the page for
    the close of a construct that has none, then starts again one character on: 120 KB of
    unterminated `<a ` took 13 s, and so does a page of `<!-- >`. What follows the page's last
    `>` cannot close and is text (_defused); a comment or marked section after the last `-->` or
    `]]>` is refused at once, without the search; any other search stops at the close it finds.
    """

    _closes: tuple[str, int, int] | None = None

    def _last_closes(self) -> tuple[int, int]:
        if self._closes is None or self._closes[0] is not self.rawdata:  # close() hands on the rest
            self._closes = (self.rawdata, self.rawdata.rfind("-->"), self.rawdata.rfind("]]>"))
        return self._closes[1], self._closes[2]

    def parse_comment(self, i, report=1):
        rawdata = self.rawdata
        end = rawdata.find("-->", i + 4) if i < self._last_closes()[0] else -1
        if end < 0:
            return -1
        if report:
            self.handle_comment(rawdata[i + 4 : end])
        return end + 3

    def parse_marked_section(self, i, report=1):
        rawdata = self.rawdata
        end = rawdata.find("]]>", i + 3) if i < self._last_closes()[1] else -1
        if end < 0:
            return -1
        if report:
            self.unknown_decl(rawdata[i + 3 : end])
        return end + 3


NOT_MARKUP = re.compile(r"<(?![a-zA-Z/!?])")  # a `<` that the parser takes as text anyway


def _defused(markup: str) -> str:
    """Every `<` after the page's last `>` escaped: none of them can start a complete construct,
    and the stdlib parser would search the rest of the page for each one's close. So is every
    `<` that starts no construct at all, which the parser would hand on one call at a time."""
    last = markup.rfind(">")
    tail = markup[last + 1 :]
    if "<" in tail:
        markup = markup[: last + 1] + tail.replace("<", "&lt;")
    return NOT_MARKUP.sub("&lt;", markup)


def _parse_html(markup: str, skip_chrome: bool) -> _VisibleText:
    parser = _LinearParser(skip_chrome)
    parser.feed(_defused(markup))
    parser.close()
    while parser.table is not None:  # a table never closed: what it holds is still the page's text
        events, parser.table = parser.table, None
        parser._replay(events)
    return parser


def html_sections(markup: str) -> tuple[str, list[Section]]:
    """The page's title ("" when it has none) and its visible text cut at its headings."""
    parser = _parse_html(markup, skip_chrome=True)
    if parser.chrome or parser.chrome_chars > MAX_CHROME_SHARE * (parser.chrome_chars + parser.length):
        parser = _parse_html(markup, skip_chrome=False)
    text, headings, code = _mended("".join(parser.parts), parser.headings, parser.code)
    text = _without_stamp(text)
    headings = sorted(headings + _manual_headings(text, code, headings))
    headings = [h for h in headings if h[0] < len(text)]
    title = " ".join(parser.title.split()) or next((t for _, _, lvl, t in parser.headings if lvl == 1), "")
    return title, [_with_code(s, code) for s in sections_from_headings(text, headings)]


def _mended(text: str, headings: list[tuple[int, int, int, str]], code: list[tuple[int, int]]
            ) -> tuple[str, list[tuple[int, int, int, str]], list[tuple[int, int]]]:
    """The words a <pre> block breaks over a line end with a hyphen joined, and the offsets of the
    headings and the blocks moved to match.

    A manual page typeset by nroff and put in <pre> (Postfix's, man2html's) hyphenates: "exam-" /
    "ple", "local_header_re-" / "write_clients". Read so, neither a keyword search nor the
    embedding model sees the word, and a chunk may begin halfway through it ("dard input"). As the
    PDF reader does, the document's own words decide between "example" and a hyphen of its own
    ("user-defined"); a name with an underscore is joined whole (ingest.formats.text.rejoined).
    The rest of the next line moves up onto the first."""
    spans = sorted(code)
    if not spans or "-\n" not in text:
        return text, headings, code
    seen = spellings([text])
    out: list[str] = []
    removed: list[tuple[int, int]] = []  # (old offset, characters removed before it)
    at = total = 0
    for match in PRE_BROKEN.finditer(text):
        k = bisect.bisect_right(spans, (match.start(), len(text))) - 1
        if k < 0 or match.end() > spans[k][1]:
            continue  # not inside one <pre>
        joined = rejoined(match.group(1), match.group(2), seen)
        out += [text[at:match.start()], joined]
        total += match.end() - match.start() - len(joined)
        at = match.end()
        removed.append((at, total))
    if not removed:
        return text, headings, code
    out.append(text[at:])
    ends = [offset for offset, _ in removed]

    def moved(offset: int) -> int:
        i = bisect.bisect_right(ends, offset) - 1
        return offset - (removed[i][1] if i >= 0 else 0)

    return ("".join(out), [(moved(a), moved(b), level, title) for a, b, level, title in headings],
            [(moved(a), moved(b)) for a, b in code])


def _manual_headings(text: str, code: list[tuple[int, int]], headings: list[tuple[int, int, int, str]]
                     ) -> list[tuple[int, int, int, str]]:
    """The section headings of the manual pages in <pre> blocks, as (line_start, body_start, level,
    title), a level below the page's last heading before the block. Without them a manual page
    is one section: its chunks carry no "OPTIONS" or "DESCRIPTION" for the model to read, and none
    begins where a section does."""
    found: list[tuple[int, int, int, str]] = []
    for start, end in code:
        marks = [m for m in MANUAL_HEADING.finditer(text, start, end) if text[m.start() - 1:m.start()] in ("", "\n")]
        if len(MANUAL_SECTIONS & {m.group(0).strip() for m in marks}) < 2:
            continue
        level = 1 + max((lvl for at, _, lvl, _ in headings if at <= start), default=0)
        found += [(m.start(), min(m.end() + 1, end), level, m.group(0).strip()) for m in marks]
    return found


def _with_code(section: Section, code: list[tuple[int, int]]) -> Section:
    """The section with the <pre> blocks that fall in it, as offsets into its text."""
    inside = spans_within(code, section.start, section.start + len(section.text))
    return replace(section, code=inside) if inside else section


def _without_stamp(text: str) -> str:
    """The text without a closing "last modified/updated <date>" paragraph (STAMP)."""
    body = text.rstrip()
    cut = body.rfind("\n\n") + 1  # 0 when the page is one paragraph: then it is kept
    last = body[cut:].strip()
    if cut and len(last.split()) <= STAMP_WORDS and STAMP.fullmatch(last.rstrip(".")):
        return body[:cut].rstrip() + "\n"
    return text


def load_html(path: Path, data: bytes) -> Loaded:
    from ingest.formats.chrome import not_content, page_shape  # it builds on this module's chrome rules

    markup = decode_text(data)
    reason = not_content(page_shape(_defused(markup)))  # linear, as the text parser
    if reason is not None:  # a contents, index or redirect page: left out and counted by ingest
        raise NotContent(reason)
    title, sections = html_sections(markup)
    return title or path.stem, require_text(sections), None
