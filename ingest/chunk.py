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

Structure is never cut (`_Structure`): no chunk starts or ends inside a code line, a table row, a
doctest or shell prompt line, or a signature (a reST directive's header lines, lines joined by a
trailing backslash), and none ends right after a line that introduces what follows ("as
follows:", a directive's signature): the introduction goes to the chunk of what it introduces.
Only a unit longer than a whole chunk is cut inside, as any long run is.

One module past 400 lines because where a cut may fall (`_Structure`) and where it is made are
one decision over the same token offsets: the cutter must honour every rule `_Structure` makes,
so the two change together.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator, Sequence

from rag.config import DEFAULT_CHUNK_TOKENS, DEFAULT_OVERLAP_TOKENS, MIN_CHUNK_TOKENS
from rag.errors import ConfigError
from rag.markup import LABELLED_ROW, MAX_TERM_CHARS, PIPE_ROW
from rag.text import HEADING_SEPARATOR, clip
from rag.types import Chunk, Section, spans_within

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
# A block (code, a doctest, a table) of at most this share of a chunk is never cut inside
# (_Structure); a longer one is cut between its lines, as it has to be somewhere.
WHOLE_SHARE = 0.5
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
    return clip(HEADING_SEPARATOR.join(parts), MAX_PREFIX_CHARS)


# -- structure a cut must respect ---------------------------------------------------------------

FENCE_LINE = re.compile(r"^[ \t]*(`{3,}|~{3,})")
DIRECTIVE_LINE = re.compile(r"^([ \t]*)\.\.[ \t]+([\w:.+-]+)::")
DIRECTIVE_OPTION = re.compile(r"^[ \t]*:[\w-]+:(?:\s|$)")
# directives whose body is code, not text
CODE_DIRECTIVES = {"code-block", "code", "sourcecode", "doctest", "testcode", "testoutput", "productionlist",
                   "parsed-literal", "highlight"}
# directives whose first lines are a signature (Python and C domains, options, Sphinx's describe)
PROSE_DIRECTIVES = {"note", "warning", "tip", "hint", "important", "caution", "attention", "danger", "error",
                    "seealso", "todo", "admonition", "versionadded", "versionchanged", "deprecated",
                    "deprecated-removed", "versionremoved", "index", "toctree", "only", "rubric", "topic",
                    "sidebar", "impl-detail", "centered", "glossary", "table", "list-table", "csv-table"}
PROMPT_LINE = re.compile(r"^[ \t]*(?:>>>|\.\.\.|\$|sqlite>|[A-Za-z]:\\[^>\n]*>)(?:[ \t]|$)")
SIMPLE_TABLE_BORDER = re.compile(r"^[ \t]*=+(?:[ \t]+=+)+[ \t]*$")
MAX_SIGNATURE_CHARS = 800  # a directive "header" longer than this is prose (an admonition's text)
MAX_TERM_WORDS = 6  # a term (markup.MAX_TERM_CHARS) of this few words names the chunks inside it
# a sentence, a table's line or a list item ("- Install the package", "o  The -e and -f options")
# is no name to read a chunk under; an option ("-d queue_id") or a definition's term is
TERM_SENTENCE = re.compile(r"[.!?]\s|\s{3,}\S|^\W*$|^[-*+\u2022o]\s")


class _Structure:
    """Where a chunk must not begin or end: inside these (start, end) character spans, and at
    these ends (right after a line that introduces what follows).

    A block (a code block, a literal block, a `<pre>`, a doctest or a run of shell prompts with
    their output, a table, a term with its deeper description) is kept whole when `fits` it
    (split_section: half a chunk at most): a chunk ends before it or after it, never at a blank
    line inside it. Cut between its lines, an
    example lost the line that is the answer ("asyncio.run(main())" after the coroutine it runs)
    and the next chunk began halfway through a statement ("...     await asyncio.sleep(1)").
    """

    def __init__(self, text: str, code: Sequence[tuple[int, int]] = (),
                 fits: Callable[[int, int], bool] = lambda start, end: False):
        self.text = text
        self.spans: list[tuple[int, int]] = []
        self.keep_with_next: set[int] = set()
        # (start, end, term) of each term and its description, however long (`terms_around`)
        self.terms: list[tuple[int, int, str]] = []
        lines = text.split("\n")
        starts = []
        at = 0
        for line in lines:
            starts.append(at)
            at += len(line) + 1
        spans = self.spans

        def indent(i: int) -> int:
            return len(lines[i]) - len(lines[i].lstrip())

        def line_span(i: int, j: int | None = None) -> None:
            """Lines i..j (inclusive) as one unit: from the first's text to the last's end."""
            j = i if j is None else j
            a, b = starts[i] + indent(i), starts[j] + len(lines[j].rstrip())
            if b > a:
                spans.append((a, b))

        def block_end(i: int, parent: int) -> int:
            """First line from i on that is neither blank nor deeper than `parent`."""
            while i < len(lines) and (not lines[i].strip() or indent(i) > parent):
                i += 1
            return i

        def last_line(i: int, j: int) -> int:
            """The last of lines i..j-1 that is not blank (i - 1 if none is)."""
            while j > i and not lines[j - 1].strip():
                j -= 1
            return j - 1

        def whole(i: int, j: int) -> None:
            """Lines i..j-1 as one block, kept whole when it `fits` (blank lines at its ends aside)."""
            j = last_line(i, j) + 1
            if j - i > 1:
                a, b = starts[i] + indent(i), starts[j - 1] + len(lines[j - 1].rstrip())
                if fits(a, b):
                    spans.append((a, b))

        def run_end(i: int) -> int:
            """First line from i on that is blank: the end of a doctest example or a run of prompts."""
            while i < len(lines) and lines[i].strip():
                i += 1
            return i

        # the lines of code the reader marked (an HTML <pre>: "+++ new/README<TAB>2002-03-17 ...")
        for a, b in code:
            first_line, past = bisect.bisect_right(starts, a) - 1, bisect.bisect_left(starts, b)
            for k in range(first_line, past):
                line_span(k)
            whole(first_line, past)
        i, n = 0, len(lines)
        in_simple_table = False
        while i < n:
            line = lines[i]
            stripped = line.strip()
            if not stripped:
                i += 1
                continue
            if fence := FENCE_LINE.match(line):
                mark = fence.group(1)
                j = i + 1
                while j < n and not lines[j].strip().startswith(mark):
                    j += 1
                for k in range(i, min(j + 1, n)):
                    line_span(k)
                whole(i, min(j + 1, n))
                i = j + 1
                continue
            if directive := DIRECTIVE_LINE.match(line):
                name = directive.group(2).lower().split(":")[-1]
                j = i
                while j + 1 < n and lines[j + 1].strip() and not DIRECTIVE_OPTION.match(lines[j + 1]):
                    j += 1
                if name in CODE_DIRECTIVES:
                    body_end = block_end(i + 1, indent(i))
                    for k in range(i, body_end):
                        if lines[k].strip():
                            line_span(k)
                    whole(i, body_end)
                    i = body_end
                    continue
                if name not in PROSE_DIRECTIVES and starts[j] + len(lines[j]) - starts[i] <= MAX_SIGNATURE_CHARS:
                    line_span(i, j)  # the signature, however many lines it takes
                    if block_end(j + 1, indent(i)) > j + 1:  # and it keeps its description
                        self.keep_with_next.update((starts[j] + len(lines[j].rstrip()), starts[j] + len(lines[j])))
                i = j + 1
                continue
            if stripped.endswith("::") and not stripped.startswith(".."):
                # a reST literal block: the deeper lines after this one are code
                body_end = block_end(i + 1, indent(i))
                for k in range(i + 1, body_end):
                    if lines[k].strip():
                        line_span(k)
                whole(i + 1, body_end)
                i = body_end
                continue
            if SIMPLE_TABLE_BORDER.match(line):
                if not in_simple_table and i + 1 < n and lines[i + 1].strip():
                    table = i + 1  # its rows run to the border a blank line (or the end) follows
                    while table < n and not (SIMPLE_TABLE_BORDER.match(lines[table])
                                             and (table + 1 == n or not lines[table + 1].strip())):
                        table += 1
                    whole(i, table + 1)
                in_simple_table = not in_simple_table if i + 1 < n and lines[i + 1].strip() else False
                i += 1
                continue
            if PROMPT_LINE.match(line) and not (i > 0 and lines[i - 1].strip()):
                whole(i, run_end(i))  # a doctest example or prompts with their output, up to a blank line
            if "|" in line and PIPE_ROW.search(line) and not (i > 0 and lines[i - 1].strip()):
                j = i
                while j < n and "|" in lines[j] and PIPE_ROW.search(lines[j]):
                    j += 1
                whole(i, j)  # a Markdown table
            if (len(stripped) <= MAX_TERM_CHARS and stripped[-1] not in ".,;" and not (i > 0 and lines[i - 1].strip())
                    and i + 1 < n and lines[i + 1].strip() and indent(i + 1) > indent(i)):
                # a term over its deeper description: a manual page's option ("-d queue_id" /
                # "Delete one message ..."), a definition list's entry, a list item, a function
                entry_end = block_end(i + 1, indent(i))
                whole(i, entry_end)
                if len(stripped.split()) <= MAX_TERM_WORDS and not TERM_SENTENCE.search(stripped):
                    last = last_line(i, entry_end)
                    self.terms.append((starts[i] + indent(i), starts[last] + len(lines[last]), " ".join(stripped.split())))
            if line.rstrip().endswith("\\") and i + 1 < n and lines[i + 1].strip():
                j = i
                while j + 1 < n and lines[j].rstrip().endswith("\\") and lines[j + 1].strip():
                    j += 1
                line_span(i, j)  # a command or signature continued over several lines
                i = j + 1
                continue
            if (in_simple_table or PROMPT_LINE.match(line) or LABELLED_ROW.match(line)
                    or ("|" in line and PIPE_ROW.search(line))):
                line_span(i)
            i += 1
        spans.sort()
        self._starts = [a for a, _ in spans]
        # the furthest end reached by any span starting at or before each one (spans may nest)
        self._reach: list[int] = []
        furthest = -1
        for _, b in spans:
            furthest = max(furthest, b)
            self._reach.append(furthest)

    def inside(self, position: int) -> bool:
        """Whether `position` falls strictly inside a unit that must stay whole."""
        i = bisect.bisect_left(self._starts, position) - 1
        return i >= 0 and self._reach[i] > position

    def can_end(self, position: int) -> bool:
        # not after what introduces the next thing: "as follows:", "Example::", a signature
        before = self.text[max(0, position - 8):position].rstrip(" \t")
        return not before.endswith(":") and position not in self.keep_with_next and not self.inside(position)

    def can_start(self, position: int) -> bool:
        return not self.inside(position)

    def terms_around(self, position: int) -> tuple[str, ...]:
        """The terms whose description `position` falls inside, outermost first: what a chunk that
        begins there continues ("-d queue_id" for "Specify "-d ALL" to remove all messages")."""
        return tuple(term for start, end, term in self.terms if start < position < end)


class _Boundaries:
    """Sorted (cut_end, next_start) pairs of one strength within a text; with `structure`, only
    those that cut no unit (`_Structure`)."""

    def __init__(self, pattern: re.Pattern[str], text: str, structure: _Structure | None = None):
        self.ends: list[int] = []
        self.starts: list[int] = []
        for m in pattern.finditer(text):
            if structure is not None and not (structure.can_end(m.start()) and structure.can_start(m.end())):
                continue
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
    code: Sequence[tuple[int, int]] = (),
) -> list[tuple[int, int]]:
    """Character spans [start, end) of the chunks of `text`, each at most `budget` tokens; `code`
    marks stretches whose lines are code (Section.code)."""
    if not offsets:
        return []
    token_ends = [end for _, end in offsets]
    token_starts = [start for start, _ in offsets]
    def fits(a: int, b: int) -> bool:  # a block of at most WHOLE_SHARE of a chunk is kept whole
        return bisect.bisect_left(token_starts, b) - bisect.bisect_left(token_starts, a) <= budget * WHOLE_SHARE

    structure = _Structure(text, code, fits)
    levels = [_Boundaries(p, text, structure) for p in (PARAGRAPH, SENTENCE, LINE, SPACE, PUNCT)]
    words = levels[3]
    unbroken: list[_Boundaries] = []  # any space or punctuation: for a unit longer than a chunk

    spans: list[tuple[int, int]] = []
    first = 0  # index of the first token of the current chunk
    resume = 0  # the token after the last chunk's cut: where the next chunk starts without overlap
    while first < len(offsets):
        start = token_starts[first]
        if len(offsets) - first <= budget:
            if not spans or token_ends[-1] > spans[-1][1]:
                spans.append((start, token_ends[-1]))
            break
        limit = token_ends[first + budget - 1]  # last character that still fits
        cut = None
        for number, level in enumerate(levels):
            found = level.last_cut(start, limit)
            if found is None:
                continue
            tokens_used = bisect.bisect_right(token_ends, found[0]) - first
            if tokens_used >= budget * MIN_FILL or number >= 3:
                cut = found
                break
        if cut is None:  # a unit longer than the chunk (a huge table row): cut inside it after all
            unbroken = unbroken or [_Boundaries(SPACE, text), _Boundaries(PUNCT, text)]
            cut = unbroken[0].last_cut(start, limit) or unbroken[1].last_cut(start, limit)
        if cut is None:  # one "word" longer than the window: cut between word pieces
            cut = (limit, token_starts[first + budget])
        end, next_start = cut
        if spans and end <= spans[-1][1]:
            # the overlap stepped back into the last chunk, and its cut is the only one ahead (a
            # short stretch before a block that may not be cut): this chunk would end where that
            # one did, inside it, and the next one word later ("...descriptor types.", "descriptor
            # types.", "types."). Go on from that cut without overlap instead.
            first = resume
            continue
        spans.append((start, end))

        next_first = resume = bisect.bisect_left(token_starts, next_start)
        if overlap > 0:
            back_limit = bisect.bisect_right(token_ends, end) - overlap
            back_char = token_starts[max(back_limit, first + 1)]
            chosen = None
            # a sentence, a line, a word; never inside a code line or a table row (the boundaries
            # skip them). Starting only at a sentence (no overlap when the sentence before is
            # longer than it) was measured and left out: 30% of the Git manual's chunks start
            # mid-sentence, yet over indexes rebuilt so, answers held 1 of 17 and 2 of 20 fewer
            # key facts on the Git and SQLite sets (bench/answers.py) and MRR@5 fell 0.015 on
            # average (bench/quality.py; recall@5 rose 0.015)
            for level in (levels[1], levels[2], words, *unbroken):
                chosen = level.first_start(back_char, next_start)
                if chosen is not None:
                    break
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
            head, body = last.text.rstrip() + glue, section.text.lstrip()
            lead = len(section.text) - len(body)
            code = spans_within(last.code, 0, len(last.text.rstrip())) + tuple(
                (a + len(head), b + len(head)) for a, b in spans_within(section.code, lead, len(section.text)))
            merged[-1] = Section(text=head + body, heading=shared, page=section.page, start=last.start, code=code)
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
        yield Section(text=text[pos:end], heading=section.heading, page=section.page, start=section.start + pos,
                      code=spans_within(section.code, pos, end))
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


NAME_WORD = re.compile(r"\w+")


def only_names(section: Section, title: str) -> bool:
    """Whether a section says nothing but its document's title and its own headings: an HTML
    page's <h1> before a first <h2> section too long to fold it into (every SQLite page: a chunk
    "EXPLAIN QUERY PLAN" that resembles any question about it, took one of five places, and held
    no answer). Each chunk's prefix carries the title and headings already."""
    if len(section.text) > MAX_PREFIX_CHARS:
        return False
    words = set(NAME_WORD.findall(section.text.lower()))
    return bool(words) and words <= set(NAME_WORD.findall(f"{title} {' '.join(section.heading)}".lower()))


def iter_chunks(
    title: str,
    sections: Iterable[Section],
    token_offsets: TokenOffsets,
    max_tokens: int,
    settings: ChunkSettings,
) -> Iterator[Chunk]:
    """The chunks, one group of windows at a time: a document of any size streams through (the
    ingest embeds and commits it batch by batch) without all its chunks in memory at once. A
    section of nothing but names (`only_names`) makes no chunk, unless it is all there is."""
    sections = [s for s in sections if s.text.strip()]
    named = [s for s in sections if not only_names(s, title)]
    sections = merge_small_sections(named or sections, settings.chunk_tokens)
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
        # a chunk that begins inside a term's description (a manual page's "-d queue_id", too long
        # to keep whole) is read under that term, as under a heading
        structure = _Structure(section.text, section.code)
        while True:
            overlap = min(settings.overlap_tokens, budget // 2)
            pieces = []
            spans = split_section(section.text, offsets, budget, overlap, section.code)
            for start, end in (piece for span in spans for piece in _capped(section.text, *span, max_chars)):
                raw = section.text[start:end]
                body = raw.strip()
                if body:
                    terms = structure.terms_around(start + len(raw) - len(raw.lstrip()))  # where its text begins
                    heading = section.heading + terms
                    lead = embed_prefix(title, heading) if terms else prefix
                    pieces.append((start, end, body, f"{lead}\n{body}" if lead else body, heading))
            over = max((len(o) for o in token_offsets([p[3] for p in pieces])), default=0) - limit
            if over <= 0 or budget <= 16:
                break
            budget = max(16, budget - over)  # a word-piece cut re-tokenized longer: split smaller
        for start, end, body, embed_text, heading in pieces:
            chunks.append(
                Chunk(
                    ordinal=first + len(chunks),
                    text=body,
                    heading=heading,
                    page=section.page,
                    char_start=section.start + start,
                    char_end=section.start + end,
                    embed_text=embed_text,
                )
            )
