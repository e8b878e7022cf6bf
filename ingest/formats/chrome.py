"""Whole pages that are site chrome: a table of contents, an index of links, a redirect.

Such a page shares words with every question (its links are the titles of every other page) and
so lands in the top results without answering anything. It is recognised by its shape, after
the page's own chrome elements (ingest.formats.html) are set aside: most of its words are link
text and what is left is too little prose to answer a question; or it sends the reader on (a
meta refresh or a script that sets the location) and says next to nothing itself. The loader
raises NotContent for it; ingest leaves it out and counts it in the summary. A page with real
prose between its links (an overview with a paragraph per link) is kept, whatever its link share.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from html.parser import HTMLParser

from ingest.formats.html import SKIP_TAGS, VOID_TAGS, _is_chrome

# A navigation page: at least this share of its words are link text, and the words outside
# links (its prose) are fewer than PROSE_WORDS or PROSE_SHARE of the page. Measured over the Python, Git and SQLite HTML
# docs (bench/chrome_pages.py): contents, genindex and module-index pages are 85-100% links;
# the densest real pages (command lists with a sentence each) stay under 60%.
LINK_SHARE = 0.7
PROSE_WORDS = 150
PROSE_SHARE = 0.05  # or, on a long index page, 5% of its words (section numbers, letters)
MIN_LINKS = 10  # fewer links: a short page, not a table of contents
# A redirect page says at most this many words of its own.
REDIRECT_WORDS = 40
WORD = re.compile(r"\w+")
SCRIPT_REDIRECT = re.compile(r"\blocation(?:\.href)?\s*=|\blocation\.(?:replace|assign)\s*\(")


@dataclass(frozen=True)
class Shape:
    words: int  # visible words outside chrome elements
    link_words: int  # of which inside <a href>
    links: int
    redirects: bool  # a meta refresh to another URL, or a script that sets the location


class _Shape(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.words = self.link_words = self.links = 0
        self.redirects = False
        self.skip = 0
        self.chrome: list[str] = []
        self.link_depth = 0
        self.in_script = False

    def handle_starttag(self, tag, attrs):
        values = {k: (v or "") for k, v in attrs}
        if tag == "meta" and values.get("http-equiv", "").lower() == "refresh" and "url=" in values.get("content", "").lower():
            self.redirects = True
        if self.chrome:
            if tag == self.chrome[0] and tag not in VOID_TAGS:
                self.chrome.append(tag)
            return
        if tag not in VOID_TAGS and _is_chrome(tag, attrs):
            self.chrome.append(tag)
            return
        if tag in SKIP_TAGS and tag not in VOID_TAGS:
            self.skip += 1
            self.in_script = tag == "script"
        elif tag == "a" and values.get("href"):
            self.link_depth += 1
            self.links += 1

    def handle_endtag(self, tag):
        if self.chrome:
            if tag == self.chrome[0]:
                self.chrome.pop()
            return
        if tag in SKIP_TAGS and tag not in VOID_TAGS:
            self.skip = max(0, self.skip - 1)
            self.in_script = False
        elif tag == "a" and self.link_depth:
            self.link_depth -= 1

    def handle_data(self, data):
        if self.in_script and SCRIPT_REDIRECT.search(data):
            self.redirects = True
        if self.chrome or self.skip:
            return
        count = len(WORD.findall(data))
        self.words += count
        if self.link_depth:
            self.link_words += count


def page_shape(markup: str) -> Shape:
    parser = _Shape()
    parser.feed(markup)
    parser.close()
    return Shape(parser.words, parser.link_words, parser.links, parser.redirects)


def not_content(shape: Shape) -> str | None:
    """Why a page with this shape is left out ("redirect page", "navigation page"), or None."""
    if shape.redirects and shape.words <= REDIRECT_WORDS:
        return "redirect page"
    prose = shape.words - shape.link_words
    if shape.links >= MIN_LINKS and shape.link_words >= LINK_SHARE * shape.words and prose < max(PROSE_WORDS, PROSE_SHARE * shape.words):
        return "navigation page"
    return None
