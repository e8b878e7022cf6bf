"""HTML to visible text: what a reader of the page sees, with its headings, without site chrome.

`html_sections` is the one HTML path (web pages, EPUB chapters, HTML-only mail). It drops what is
never visible (scripts, styles, <title>) and site chrome repeated on every page (menus, sidebars,
breadcrumbs, tables of contents, footers). Invariant: the chrome heuristic never costs a page its
body: a page whose chrome would swallow most of its text is read again without it.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

from ingest.formats.text import Loaded, NotContent, decode_text, require_text, sections_from_headings
from rag.types import Section

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
    return parser


def html_sections(markup: str) -> tuple[str, list[Section]]:
    """The page's title ("" when it has none) and its visible text cut at its headings."""
    parser = _parse_html(markup, skip_chrome=True)
    if parser.chrome or parser.chrome_chars > MAX_CHROME_SHARE * (parser.chrome_chars + parser.length):
        parser = _parse_html(markup, skip_chrome=False)
    text = "".join(parser.parts)
    title = " ".join(parser.title.split()) or next((t for _, _, lvl, t in parser.headings if lvl == 1), "")
    return title, sections_from_headings(text, parser.headings)


def load_html(path: Path, data: bytes) -> Loaded:
    from ingest.formats.chrome import not_content, page_shape  # it builds on this module's chrome rules

    markup = decode_text(data)
    reason = not_content(page_shape(markup))
    if reason is not None:  # a contents, index or redirect page: left out and counted by ingest
        raise NotContent(reason)
    title, sections = html_sections(markup)
    return title or path.stem, require_text(sections), None
