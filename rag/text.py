"""Words, stopwords and text hygiene shared by retrieval, generation and chat.

Pure functions over strings; nothing here imports a heavy library.
"""

from __future__ import annotations

import re
from typing import Sequence


class LazyPattern:
    """A regular expression compiled on first use: importing a module of them (which every `rag`
    command may pay) stays well under a millisecond; compiling all of them costs a few."""

    def __init__(self, pattern: str) -> None:
        self._pattern = pattern
        self._compiled: re.Pattern[str] | None = None

    def __getattr__(self, name: str):
        if self._compiled is None:
            self._compiled = re.compile(self._pattern)
        return getattr(self._compiled, name)


# Function words carry no topic; OR-ing them in only adds noise matches. Kept short on purpose.
STOPWORDS = frozenset(
    """a an and are as at be but by can could do does did for from had has have how i if in into is
    it its me my no not of on or our so such than that the their them then there these they this
    those to was we were what when where which while who whom why will with would you your yours
    should shall may might must am been being about after before over under up down out off again
    further once here all any both each few more most other some only own same too very just also
    get got let lets want need""".split()
)
WORD = re.compile(r"\w+", re.UNICODE)


def readable(text: str) -> str:
    """Text the tokenizer and SQLite accept: undecodable bytes from the shell become '?'."""
    # Python hands bytes that are not UTF-8 to us as lone surrogates; the tokenizer rejects them
    return text.encode("utf-8", "replace").decode("utf-8")


def clip(text: str, limit: int) -> str:
    """`text` cut to at most about `limit` characters at a word boundary, marked with " ..."."""
    return text if len(text) <= limit else text[:limit].rsplit(" ", 1)[0] + " ..."


def content_words(text: str) -> list[str]:
    return [w for w in WORD.findall(text) if w.lower() not in STOPWORDS]


def location(path: str, page: int | None, page_kind: str = "page") -> str:
    """Where a passage is: the path, and the page (slide, chapter) when there is one."""
    return path + (f", {page_kind} {page}" if page else "")


# Heading paths travel as tuples, one element a level (a level may itself hold " > "); they are
# joined only into text someone reads: Sources, the prompt, the embedding and reranking models.
HEADING_SEPARATOR = " > "


def heading_path(heading: Sequence[str]) -> str:
    """A heading path as one line of text: `Guide > Install`."""
    return HEADING_SEPARATOR.join(heading)


def text_key(text: str) -> str:
    """The key a chunk's embed text is stored and looked up by (the embedding cache): 128 bits of
    BLAKE2b, so two different texts never share a vector in practice."""
    import hashlib

    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()
