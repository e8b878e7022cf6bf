"""EPUB books (ebooklib): each chapter read through the HTML path, numbered as the location.

A chapter is a document in the book's reading order (its spine) that has text; its number (1, 2,
...) is the section's `page` (Sources say "chapter 2") and its title, from the table of contents
or else the chapter's own first heading, is the top of every heading path inside it. The archive
is size-checked by `ingest.formats.office.open_zip` before ebooklib expands anything. A book whose
content is encrypted (DRM) is refused in one line; font obfuscation alone is not encryption.
"""

from __future__ import annotations

import io
import posixpath
import re
import warnings
from pathlib import Path

from ingest.formats.html import html_sections
from ingest.formats.office import open_zip, read_member
from ingest.formats.text import Loaded, decode_text, require_text, short
from rag.errors import LoadError
from rag.types import Section

# Algorithms that only scramble embedded fonts; anything else in encryption.xml locks the text
FONT_OBFUSCATION = {"http://www.idpf.org/2008/embedding", "http://ns.adobe.com/pdf/enc#RC"}


def load_epub(path: Path, data: bytes) -> Loaded:
    with open_zip(data, ".epub") as archive:
        encryption = read_member(archive, "META-INF/encryption.xml", ".epub").decode("utf-8", "replace")
    if set(re.findall(r'Algorithm="([^"]+)"', encryption)) - FONT_OBFUSCATION - {
        "http://www.w3.org/2001/04/xmlenc#rsa-1_5"  # the key wrap that comes with font obfuscation
    }:
        raise LoadError("the book is DRM-protected (its text is encrypted): rag can only read DRM-free EPUBs")

    try:
        import ebooklib
        from ebooklib import epub

        with warnings.catch_warnings():  # ebooklib warns about its own future defaults
            warnings.simplefilter("ignore")
            book = epub.read_epub(io.BytesIO(data), {"ignore_ncx": False})  # NCX first, then the EPUB 3 nav
        chapters = []
        for idref, *_ in book.spine:
            item = book.get_item_with_id(idref)
            # the table of contents page (EPUB 3 "nav") is the book's map, not a chapter
            if item is not None and item.get_type() == ebooklib.ITEM_DOCUMENT \
                    and not isinstance(item, epub.EpubNav):
                chapters.append((item.get_name(), item.get_content()))
        toc = _toc_titles(book.toc)
        title = " ".join(str((book.get_metadata("DC", "title") or [("",)])[0][0]).split())
    except Exception as exc:  # ebooklib raises KeyError, lxml errors, EpubException...
        raise LoadError(f"not a valid .epub ({short(exc)})") from exc

    sections: list[Section] = []
    offset = 0
    number = 0
    for name, content in chapters:
        own_title, parts = html_sections(decode_text(content))
        if not any(s.text.strip() for s in parts):
            continue  # a cover image or an empty spacer is not a chapter
        number += 1
        chapter = toc.get(name) or next((s.heading[0] for s in parts if s.heading), "") or own_title \
            or f"Chapter {number}"
        for part in parts:
            inner = part.heading[1:] if part.heading[:1] == (chapter,) else part.heading
            sections.append(Section(text=part.text, heading=(chapter, *inner), page=number, start=offset + part.start,
                                    code=part.code))
        offset += max(s.start + len(s.text) for s in parts) + 2
    return title or path.stem, require_text(sections), number


def _toc_titles(entries) -> dict[str, str]:
    """Chapter file name -> title, from the table of contents (the first entry naming a file wins)."""
    from ebooklib import epub

    titles: dict[str, str] = {}

    def walk(items) -> None:
        for item in items:
            if isinstance(item, tuple):  # (Section, children)
                walk([item[0]])
                walk(item[1])
                continue
            href = getattr(item, "href", "") or ""
            name = posixpath.normpath(href.split("#", 1)[0]) if href else ""
            title = " ".join((getattr(item, "title", "") or "").split())
            if name and title and (isinstance(item, (epub.Link, epub.Section))):
                titles.setdefault(name, title)

    walk(entries)
    return titles
