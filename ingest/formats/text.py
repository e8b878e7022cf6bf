"""What every loader shares: bytes to text, text to sections, and the empty-document refusal.

`decode_text` is the one place that decides encodings: UTF-8 (with or without BOM), UTF-16 with a
BOM, then Windows-1252 for legacy 8-bit files; content that looks binary is refused. `Outline`
builds sections from blocks read in document order (a heading starts a new section under its
path), for the formats whose reader hands us paragraphs rather than one string. Invariant: a
section's `start` is its offset in the document's full text (blocks joined by blank lines,
headings included), so offsets never overlap and grow in reading order.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Callable, Iterable, Mapping

from rag.errors import LoadError, NotContent  # noqa: F401  (NotContent: raised by the formats)
from rag.types import Section

WORDS = re.compile(r"\w+(?:-\w+)*")  # a word, hyphenated ones whole

# title, sections, page (slide, chapter) count; a loader that reads scans adds a fourth item, the
# pages it could not read because Tesseract is missing (ingest.formats.ocr)
Loaded = tuple[str, list[Section], int | None] | tuple[str, list[Section], int | None, int]
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


def require_text(sections: list[Section]) -> list[Section]:
    if not any(s.text.strip() for s in sections):
        raise LoadError("no text to index (empty file)")
    return sections


def sections_from_headings(
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


class Outline:
    """Sections built from blocks in reading order; `heading` closes the open section."""

    def __init__(self, base: tuple[str, ...] = ()) -> None:
        self.sections: list[Section] = []
        self.base = base  # a heading path every section sits under (a slide's, a chapter's title)
        self._levels: list[tuple[int, str]] = []
        self._blocks: list[str] = []
        self._start = 0
        self._length = 0
        self.page: int | None = None

    @property
    def path(self) -> tuple[str, ...]:
        return self.base + tuple(t for _, t in self._levels)

    def _advance(self, text: str) -> None:
        self._length += len(text) + 2  # the blank line that joins blocks in the full text

    def heading(self, level: int, title: str) -> None:
        title = " ".join(title.split())
        if not title:
            return
        self.flush()
        self._levels = [(lvl, t) for lvl, t in self._levels if lvl < level] + [(level, title)]
        self._advance(title)
        self._start = self._length

    def add(self, text: str) -> None:
        if not text.strip():
            return
        if not self._blocks:
            self._start = self._length
        self._blocks.append(text.strip("\n"))
        self._advance(text)

    def set_page(self, page: int | None, base: tuple[str, ...] = ()) -> None:
        """Start a new page (slide, chapter): its sections sit under `base`, headings restart."""
        self.flush()
        self.page, self.base, self._levels = page, base, []

    def flush(self) -> None:
        if self._blocks:
            self.sections.append(Section(text="\n\n".join(self._blocks), heading=self.path,
                                         page=self.page, start=self._start))
        self._blocks = []

    def done(self) -> list[Section]:
        self.flush()
        return require_text(self.sections)


def spellings(texts: Iterable[str]) -> Counter:
    """How often a document writes each of its words (hyphenated ones whole), lowercased: what
    `rejoined` decides by."""
    return Counter(w.lower() for text in texts for w in WORDS.findall(text))


def rejoined(left: str, right: str, seen: Mapping[str, int]) -> str:
    """A word broken over a line end with a hyphen ("pack-" "ages"), as the document writes it:
    whole when it spells it whole (`seen`: its words, lowercased, counted) at least as often as
    hyphenated, or when it is a name with an underscore ("local_header_re-" "write_clients");
    with its hyphen otherwise ("git-config", "user-defined")."""
    whole = left + right
    if "_" in whole or (seen.get(whole.lower(), 0) and seen[whole.lower()] >= seen.get(f"{left}-{right}".lower(), 0)):
        return whole
    return f"{left}-{right}"


def short(exc: Exception) -> str:
    """An exception's first line, bounded: enough for a one-line failure."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:120]
