"""Chunking: split each section into pieces that fit the embedding model's window.

Measured in the model's own word pieces: every chunk, with its title/heading prefix, fits
`max_tokens`, so the model never silently drops text. Each section is tokenized once; cuts are
chosen at the strongest boundary that keeps the chunk reasonably full (paragraph, then sentence,
then line, then word, then punctuation inside a long run such as a URL) and never inside a word;
only a word with more pieces than a chunk may hold is cut between its pieces. Cut loose, the
tail of a word can tokenize into more pieces than it had inside it, so every section's chunks
are measured again and re-split smaller if one of them would overflow. Consecutive chunks
overlap by up to `overlap_tokens`, starting the overlap at a sentence start when one is close
enough.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator, Sequence

from rag.config import DEFAULT_CHUNK_TOKENS, DEFAULT_OVERLAP_TOKENS, MIN_CHUNK_TOKENS
from rag.errors import ConfigError
from rag.text import clip
from rag.types import Chunk, Section

TokenOffsets = Callable[[Sequence[str]], list[list[tuple[int, int]]]]

PARAGRAPH = re.compile(r"\n[ \t]*\n\s*")
SENTENCE = re.compile(r"(?<=[.!?;:])[\"')\]]*\s+")
LINE = re.compile(r"\n\s*")
SPACE = re.compile(r"\s+")
# Either side of a punctuation mark: where the tokenizer itself starts a new word.
PUNCT = re.compile(r"(?<=[^\w\s])(?=\w)|(?<=\w)(?=[^\w\s])")
MAX_PREFIX_CHARS = 160
# A cut at a weaker boundary is taken only when no stronger one keeps the chunk this full.
MIN_FILL = 0.5
# Characters tokenized in one call. A tokenizer's offsets cost ~100 bytes per word piece, so a
# 100 MB one-line file tokenized whole took GBs; longer sections are cut into windows first (at
# a paragraph, line or space in the window's second half) and sections are tokenized in groups.
WINDOW_CHARS = 200_000
# A chunk is also bounded in characters: the model's window times this. A word the tokenizer
# cannot split (over 100 characters) is one [UNK] piece however long, so a 5 MB one-word line
# made 200,000-character chunks. Real chunks of 200 tokens run to about 1,000 characters (Git
# manual and R-exts indexes: at most 1,014), so 8 per token never cuts one.
MAX_CHARS_PER_TOKEN = 8


@dataclass(frozen=True)
class ChunkSettings:
    chunk_tokens: int = DEFAULT_CHUNK_TOKENS
    overlap_tokens: int = DEFAULT_OVERLAP_TOKENS

    def __post_init__(self) -> None:
        if self.chunk_tokens < MIN_CHUNK_TOKENS:
            raise ConfigError(f"chunk size (--chunk-tokens) must be at least {MIN_CHUNK_TOKENS} tokens "
                              f"(got {self.chunk_tokens})")
        if not 0 <= self.overlap_tokens < self.chunk_tokens:
            raise ConfigError(
                f"overlap (--overlap-tokens {self.overlap_tokens}) must be at least 0 and smaller than the "
                f"chunk size (--chunk-tokens {self.chunk_tokens})"
            )


def embed_prefix(title: str, heading: Sequence[str]) -> str:
    """The context line the model reads before a chunk: document title and heading path."""
    parts = [title] if title else []
    parts += [h for h in heading if h and h != title]
    return clip(" > ".join(parts), MAX_PREFIX_CHARS)


class _Boundaries:
    """Sorted (cut_end, next_start) pairs of one strength within a text."""

    def __init__(self, pattern: re.Pattern[str], text: str):
        self.ends: list[int] = []
        self.starts: list[int] = []
        for m in pattern.finditer(text):
            self.ends.append(m.start())
            self.starts.append(m.end())

    def last_cut(self, low: int, high: int) -> tuple[int, int] | None:
        """The latest boundary with low < end <= high."""
        i = bisect.bisect_right(self.ends, high) - 1
        if i >= 0 and self.ends[i] > low:
            return self.ends[i], self.starts[i]
        return None

    def first_start(self, low: int, high: int) -> int | None:
        """The earliest next_start with low <= start < high."""
        i = bisect.bisect_left(self.starts, low)
        if i < len(self.starts) and self.starts[i] < high:
            return self.starts[i]
        return None


def split_section(
    text: str,
    offsets: list[tuple[int, int]],
    budget: int,
    overlap: int,
) -> list[tuple[int, int]]:
    """Character spans [start, end) of the chunks of `text`, each at most `budget` tokens."""
    if not offsets:
        return []
    token_ends = [end for _, end in offsets]
    token_starts = [start for start, _ in offsets]
    levels = [_Boundaries(p, text) for p in (PARAGRAPH, SENTENCE, LINE, SPACE, PUNCT)]
    words = levels[3]

    spans: list[tuple[int, int]] = []
    first = 0  # index of the first token of the current chunk
    while first < len(offsets):
        start = token_starts[first]
        if len(offsets) - first <= budget:
            spans.append((start, token_ends[-1]))
            break
        limit = token_ends[first + budget - 1]  # last character that still fits
        cut = None
        for level in levels:
            found = level.last_cut(start, limit)
            if found is None:
                continue
            tokens_used = bisect.bisect_right(token_ends, found[0]) - first
            if tokens_used >= budget * MIN_FILL or level in levels[3:]:
                cut = found
                break
        if cut is None:  # one "word" longer than the window: cut between word pieces
            cut = (limit, token_starts[first + budget])
        end, next_start = cut
        spans.append((start, end))

        next_first = bisect.bisect_left(token_starts, next_start)
        if overlap > 0:
            back_limit = bisect.bisect_right(token_ends, end) - overlap
            back_char = token_starts[max(back_limit, first + 1)]
            sentence_start = levels[1].first_start(back_char, next_start)
            word_start = words.first_start(back_char, next_start)
            chosen = sentence_start if sentence_start is not None else word_start
            if chosen is not None:
                next_first = min(next_first, bisect.bisect_left(token_starts, chosen))
        first = max(next_first, first + 1)
    return spans


def merge_small_sections(sections: list[Section], chunk_tokens: int) -> list[Section]:
    """Fold a section too small to stand alone into the next one on the same page.

    A man page's one-line NAME section or a two-line intro makes a chunk with almost nothing for
    the model to match; joined to its neighbour (whose heading stays in the text) it lends that
    chunk its key words. Measured in characters (about four per token) to avoid a second
    tokenizer pass; merging stops once the result would exceed about one chunk. The merged
    section keeps the headings both share, and its char span starts at the first one.
    """
    small, large = chunk_tokens, chunk_tokens * 4
    merged: list[Section] = []
    for section in sections:
        last = merged[-1] if merged else None
        if (
            last is not None
            and len(last.text.strip()) < small
            and last.page == section.page
            and len(last.text) + len(section.text) <= large
        ):
            n = 0
            while n < min(len(last.heading), len(section.heading)) and last.heading[n] == section.heading[n]:
                n += 1
            shared, own = last.heading[:n], section.heading[n:]
            glue = "\n\n" + "\n\n".join(own) + "\n\n" if own else "\n\n"
            merged[-1] = Section(text=last.text.rstrip() + glue + section.text.lstrip(), heading=shared,
                                 page=section.page, start=last.start)
        else:
            merged.append(section)
    return merged


def _windows(section: Section, size: int = WINDOW_CHARS) -> Iterable[Section]:
    text = section.text
    if len(text) <= size:
        yield section
        return
    pos = 0
    while pos < len(text):
        end = min(pos + size, len(text))
        if end < len(text):
            for mark in ("\n\n", "\n", " "):
                at = text.rfind(mark, pos + size // 2, end)
                if at > pos:
                    end = at + len(mark)
                    break
        yield Section(text=text[pos:end], heading=section.heading, page=section.page, start=section.start + pos)
        pos = end


def _groups(sections: Iterable[Section], size: int = WINDOW_CHARS) -> Iterable[list[Section]]:
    group: list[Section] = []
    chars = 0
    for section in sections:
        for window in _windows(section, size):
            if group and chars + len(window.text) > size:
                yield group
                group, chars = [], 0
            group.append(window)
            chars += len(window.text)
    if group:
        yield group


def chunk_sections(
    title: str,
    sections: Iterable[Section],
    token_offsets: TokenOffsets,
    max_tokens: int,
    settings: ChunkSettings,
) -> list[Chunk]:
    return list(iter_chunks(title, sections, token_offsets, max_tokens, settings))


def iter_chunks(
    title: str,
    sections: Iterable[Section],
    token_offsets: TokenOffsets,
    max_tokens: int,
    settings: ChunkSettings,
) -> Iterator[Chunk]:
    """The chunks, one group of windows at a time: a document of any size streams through (the
    ingest embeds and commits it batch by batch) without all its chunks in memory at once."""
    sections = merge_small_sections([s for s in sections if s.text.strip()], settings.chunk_tokens)
    made = 0
    for group in _groups(sections):
        chunks: list[Chunk] = []
        _chunk_group(title, group, token_offsets, max_tokens, settings, chunks, first=made)
        made += len(chunks)
        yield from chunks


def _capped(text: str, start: int, end: int, max_chars: int) -> Iterator[tuple[int, int]]:
    """[start, end) cut into spans of at most max_chars, at a space in each span's second half
    when there is one (only a word longer than that is cut inside)."""
    while end - start > max_chars:
        limit = start + max_chars
        space = max(text.rfind(" ", start + max_chars // 2, limit), text.rfind("\n", start + max_chars // 2, limit))
        cut = space + 1 if space > start else limit
        yield start, cut
        start = cut
    yield start, end


def _chunk_group(
    title: str,
    sections: list[Section],
    token_offsets: TokenOffsets,
    max_tokens: int,
    settings: ChunkSettings,
    chunks: list[Chunk],
    first: int = 0,
) -> None:
    prefixes = [embed_prefix(title, s.heading) for s in sections]
    all_offsets = token_offsets([s.text for s in sections] + prefixes)
    section_offsets, prefix_offsets = all_offsets[: len(sections)], all_offsets[len(sections) :]
    del all_offsets

    max_chars = max_tokens * MAX_CHARS_PER_TOKEN
    for section, prefix, offsets, prefix_tokens in zip(sections, prefixes, section_offsets, prefix_offsets):
        # +1 for the newline between prefix and text, which costs no token but keeps a margin
        room = max_tokens - (len(prefix_tokens) + 1 if prefix else 0)
        budget = max(16, min(settings.chunk_tokens, room))
        limit = min(max_tokens, len(prefix_tokens) + budget)  # what each embed_text may cost
        while True:
            overlap = min(settings.overlap_tokens, budget // 2)
            pieces = []
            spans = split_section(section.text, offsets, budget, overlap)
            for start, end in (piece for span in spans for piece in _capped(section.text, *span, max_chars)):
                body = section.text[start:end].strip()
                if body:
                    pieces.append((start, end, body, f"{prefix}\n{body}" if prefix else body))
            over = max((len(o) for o in token_offsets([p[3] for p in pieces])), default=0) - limit
            if over <= 0 or budget <= 16:
                break
            budget = max(16, budget - over)  # a word-piece cut re-tokenized longer: split smaller
        for start, end, body, embed_text in pieces:
            chunks.append(
                Chunk(
                    ordinal=first + len(chunks),
                    text=body,
                    heading=section.heading,
                    page=section.page,
                    char_start=section.start + start,
                    char_end=section.start + end,
                    embed_text=embed_text,
                )
            )
