"""Extractive answers: the answer when no LLM is configured, quoted from the passages and cited.

The passages that pass the relevance cut-off are cut into pieces (rag.markup.excerpt_spans:
sentences, paragraphs, a command or code block with the line that introduces it, table rows; here
also a command example with the paragraph just before it), and the pieces that answer are chosen
across all of them, not the passage's first match:
- the question's words they hold, each weighted by how rare it is among the pieces (a word every
  piece shares tells nothing), matched through a light stem ("rows"/"row", "reader"/"read",
  "DictReader"/"dict", "reader"); a prompt ("sqlite> ") is not a word of its line;
- what the question asks for: a command or code ("How do I...", "Which command..."), an option or
  a name ("which option", "which function"), a number ("how long", "by default"), a definition
  ("What is...") - and whether the piece carries one the question does not already name: for
  "which test", a name beside the kind ("the Wilcoxon test"); for a how-to, a code name beside the
  kind of thing one types ("the ON CONFLICT clause", "the -c option") or a manual page's name line
  ("rsync - a fast, versatile, remote (and local) file-copying tool");
- how close the piece's passage came to the question in retrieval (its cosine against the best).
The embedding model's own question-to-sentence cosine was measured as a further signal and left
out: on the git and R-intro answer sets it kept no fact the words above miss, at 0.9-1.6 s per
answer on a loaded 2-core machine (measured with bench/extractive.py). So was reading what is
asked at the start of every clause ("I deleted it. How do I..."): it kept no labelled fact and
changed 18 of 121 unlabelled answers (bench/questions/{pydocs,rexts,sqlite,click_source}), some
for the worse ("What is going on?" read as asking for a definition).
The best pieces within ANSWER_CHARS are quoted verbatim, each followed by its citation [n], the
best first; neighbouring pieces of one passage are quoted together, with the passage's lines kept
(a code example stays a code block). An excerpt that stops inside a table it introduces is followed
by the rows that answer (the one the question names), not merely the next ones; words already
quoted from another passage (a copied page) are not quoted again. `answering_text` is what an
excerpt says about the question, which a written answer must carry to stand without the quotes
(rag.answer.generate.carries).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Sequence

from rag.markup import CODE_START, ELLIPSIS, clip_lines, excerpt, excerpt_spans, signature, table_row
from rag.text import STOPWORDS, heading_path
from rag.types import Hit

EXTRACT_CHARS = 400  # a prose paragraph longer than this is chosen from sentence by sentence
ANSWER_CHARS = 900  # excerpts are added while the answer is shorter than this
SHOWN_CHARS = 600  # an excerpt longer than this is clipped between lines
MAX_EXCERPTS = 3
KEEP_SHARE = 0.55  # a piece scoring under this share of the best one is not worth the reader's time
SHAPE_WEIGHT = 0.35
PASSAGE_WEIGHT = 1.0  # per unit of cosine the piece's passage is below the best passage

WORD = re.compile(r"[A-Za-z][A-Za-z0-9]*|\d+")
CAMEL = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|\d+")
# Words that frame a question without naming its subject
FRAMING = frozenset("way ways possible able thing things someone something anything exactly instead".split())
# What a question asks for
COMMAND_Q = re.compile(r"^\W*(?:how\s+(?:do|can|could|should|would|may|to)\b|how\s+\w+\s+i\b|which\s+commands?\b|"
                       r"what\s+commands?\b|what(?:'s| is)\s+the\s+(?:command|syntax|way)\b)", re.I)
NAME_Q = re.compile(r"\b(?:which|what)\s+(?:\w+\s+){0,3}?(?P<kind>option|flag|switch|argument|parameter|setting|"
                    r"keyword|pragma|macro|function|operator|method|class|module|variable|file|tool|syntax|command|"
                    r"test|field|column|type|substitution|value|code)s?\b", re.I)
# what names a thing in running text: a code span, an option, a dotted or snake name, a Capitalised
# word ("the Wilcoxon test", "the --depth option", "the ON CONFLICT clause")
CODE_NAME = r"`[^`\n]+`|(?<![\w-])--?[A-Za-z][\w-]*|\b\w+(?:[._]\w+)+|\b[A-Z]{2,}(?:[ \t]+[A-Z]{2,})+\b"
NAME = CODE_NAME + r"|\b[A-Z][\w-]*"
HOW_KINDS = ("command", "option", "flag", "clause", "statement", "function", "method", "keyword", "pragma", "setting")
NUMBER_Q = re.compile(r"\b(?:how\s+(?:long|many|much|big|large|often|old|far|small)|what\s+(?:size|length|limit|number|"
                      r"version|range|factor|percentage|port)|by\s+default|default|maximum|minimum|at\s+most|at\s+least|"
                      r"largest|smallest|biggest)\b", re.I)
WHY_Q = re.compile(r"^\W*(?:why|what\s+(?:is|are)\s+the\s+reasons?|how\s+come)\b", re.I)
CAUSE = re.compile(r"\b(?:because|since|hence|so that|therefore|thus|as a result|otherwise|in order to|reason)\b", re.I)
DEFINE_Q = re.compile(r"^\W*(?:what\s+(?:is|are|does|do)\b|define\b|meaning\s+of\b|what\s+\w+\s+mean)", re.I)
# Pieces that carry something specific: code spans, options, calls, CONSTANTS, dotted or snake
# names, numbers, operators, prompts
SPECIFIC = re.compile(
    r"`[^`\n]+`|(?<![\w-])--?[A-Za-z][\w-]*|\b\w+\(\)|\b[A-Z][A-Z0-9]*_[A-Z0-9_]+\b|"
    r"(?<!\w)\.?\w+(?:[._/]\w+)+|(?<![\w.])\.[A-Za-z]\w+|\b\d+(?:[.,:]\d+)*\b|<<-|<-|%\w|\w+=\S+")
NUMBER = re.compile(r"(?<![\w.])\d+(?:[.,]\d+)*(?![\w.])")
TERM_AND_DESCRIPTION = re.compile(r"^\S+(?: \S+)? {2,}[A-Za-z]")  # "-cmd COMMAND         run ..."
CODE_LINE = re.compile(r"^(?:[ \t]{2,}\S|[ \t]*(?:\$ |> |>>> |\.\.\. |sqlite> |%))", re.M)
DEFINITION = re.compile(r"^\W*(?:\S+\s+){0,8}?(?:is|are|means|refers to|denotes|returns?|creates?)\s+(?:a|an|the)\b"
                        r"|^\W*(?:\S+\s+){0,8}?(?:indicates?|signif(?:y|ies)|represents?|stands for)\s+(?:that\b|a\b|an\b|the\b)"
                        r"|^\s*\.\.\s+[\w:]+::", re.I)
# a named prompt ("sqlite> ", "mysql> ") at a line's start says where a command is typed, not what
# it is about: "sqlite>" before every line of an example is not the question's "sqlite3"
PROMPT = re.compile(r"^[ \t]*[A-Za-z][\w.-]*>(?= )", re.M)
# a name and what it does, as a manual page or a module's title gives them: "git-check-ignore -
# Debug gitignore / exclude files", "csv --- CSV File Reading and Writing"
NAMED_LINE = re.compile(r"\s*:?[\w.:`-]+(?:\(\d\))?`?[ \t]+(?:-{1,3}|\u2014|\u2013)[ \t]+\w")
HEADING_LIKE = 30  # a piece this short is mostly a title or a label
SAID_WORDS = 8  # an excerpt of this many content words, all in one quoted already, says nothing new
# A sentence that says how to do what the one before it describes ("You can make diff act as
# though the missing file is empty. ... To do this, use the --new-file (-N) option."): it is quoted
# with that one, past the room an excerpt grows by, and never without it
FOLLOWS_ON = re.compile(r"^\W*(?:to\s+do\s+(?:this|that|so)|(?:you|one)\s+(?:can|could|may)\s+do\s+(?:this|that|so)|"
                        r"this\s+(?:is|can\s+be)\s+done|do\s+(?:this|so)\s+(?:by|with)|to\s+(?:achieve|get)\s+this)\b", re.I)
# A sentence about a thing the one before it names ("The --ignore-all-space (-w) option is stronger
# still. ... With this option, diff considers the following two lines to be equivalent"), or an
# example of it ("... list the remote site in the debug_peer_list parameter. For example, in order
# to make the software log ... for connections from the loopback interface:"): quoted from the
# sentence that names it, a few back at most and in its paragraph
REFERS_BACK = re.compile(r"^\W*(?:(?:(?:with|using|for|in)\s+)?(?:this|that|these|those)\s+(?:option|flag|switch|command|"
                         r"setting|pragma|function|method|keyword|clause|statement|parameter|argument|variable)s?\b"
                         r"|for\s+(?:example|instance)\b|e\.g\.)", re.I)
NAMES_BACK = 3  # pieces a REFERS_BACK seed looks back for the name
# An example introduced as one, with its lines: "The following example presents additional
# configuration. ...\n\n1 /etc/postfix/main.cf:\n2     smtp_generic_maps = ..."
EXAMPLE = re.compile(r"^\W*the\s+following\s+(?:\w+\s+){0,2}?examples?\b[^\n]*\n[ \t]*\n\s*\S", re.I)
# A definition list (a manual's options: "--dry-run" / "Print the results of applying the patches
# without actually changing any files." / "-e" / "--ed" / "Interpret the patch file as an ed
# script." ...): an excerpt quotes the entry that answers, not the next entries its room would
# reach, and never ends on a term without its description ("--force").
TERM_CHARS = 40  # a term is one short line ...
TERM_WORDS = 3  # ... of a few words, with no sentence in it
MIN_TERMS = 3  # a passage with this many terms each followed by a sentence is a definition list


# what rag.answer.followup carries into a follow-up from the question before it
ABOUT = re.compile(r"\s*\(about: ([^()]*)\)\s*$")
CARRIED_SHARE = 0.5


def split(question: str) -> tuple[str, str]:
    """(the question's own words, the words a follow-up carried from the question before: "")."""
    found = ABOUT.search(question)
    if not found:
        return question, ""
    return question[: found.start()], found.group(1)


UNDOUBLED = ("ings", "ing", "ers", "er", "ed")  # suffixes that double a consonant before them


@lru_cache(maxsize=16384)
def _stem(word: str) -> str:
    w = word.lower()
    for suffix, replacement in (("ations", ""), ("ation", ""), ("ies", "y"), ("ied", "y"), ("ings", ""), ("ing", ""),
                                ("ers", ""), ("er", ""), ("ed", ""), ("es", ""), ("s", ""), ("ly", "")):
        if w.endswith(suffix) and len(w) - len(suffix) >= 3:
            if suffix == "es" and not re.search(r"(?:s|x|z|ch|sh)es$", w):
                continue
            if suffix == "s" and w.endswith("ss"):
                continue
            stem = w[: len(w) - len(suffix)] + replacement
            if suffix in UNDOUBLED and len(stem) >= 4 and stem[-1] == stem[-2] and stem[-1] not in "aeioulsfz":
                stem = stem[:-1]  # "logging" is "log", "stopped" "stop" ("called" stays "call", "added" "add")
            return stem
    return w


def _words(text: str) -> set[str]:
    """The stems of a text's content words; a compound name counts as itself and its parts
    ("DictReader": dictreader, dict, read)."""
    out: set[str] = set()
    for token in WORD.findall(text):
        lower = token.lower()
        if lower in STOPWORDS or lower in FRAMING or (len(lower) < 2 and not lower.isdigit()):
            continue  # a single digit stays: "set to 3" names the row that answers
        out.add(_stem(lower))
        parts = CAMEL.findall(token)
        if len(parts) > 1:
            out.update(_stem(p.lower()) for p in parts if len(p) > 2 and p.lower() not in STOPWORDS)
    return out


def _same(a: str, b: str) -> bool:
    if a == b:
        return True
    short, long = (a, b) if len(a) <= len(b) else (b, a)
    return len(short) >= 4 and long.startswith(short)  # "dict" and "dictionary"


@dataclass(frozen=True)
class Excerpt:
    """A stretch of one passage: `hits[n - 1].text[start:end]`, with how well it answers."""

    n: int  # the passage's number, as cited: [n]
    start: int
    end: int
    score: float
    parts: int = 1  # excerpts joined into this one (each may show SHOWN_CHARS)


def _intent(question: str) -> tuple[bool, ...]:
    return (bool(COMMAND_Q.search(question)), bool(NAME_Q.search(question)), bool(NUMBER_Q.search(question)),
            bool(DEFINE_Q.search(question)), bool(WHY_Q.search(question)))


@lru_cache(maxsize=256)
def _instances(question: str) -> re.Pattern[str] | None:
    """For "which tests...", "what option...": a name beside the kind asked for ("the Wilcoxon
    (or Mann-Whitney) test", "the option --depth") - a piece naming one names an answer."""
    kinds = {m.group("kind").lower() for m in NAME_Q.finditer(question)}
    name = NAME
    if not kinds and COMMAND_Q.search(question):
        # "how do I..." is answered by what one types or sets, named as code ("the ON CONFLICT
        # clause"), not by a Capitalised word ("an SQL statement")
        kinds, name = set(HOW_KINDS), CODE_NAME
    if not kinds:
        return None
    kind = "|".join(sorted(kinds))
    return re.compile(rf"(?P<before>{name})\s+(?:\([^()]{{0,40}}\)\s+)?(?i:{kind})s?\b"
                      rf"|\b(?i:{kind})s?[ \t]+(?P<after>{name})")


def _names_an_instance(piece: str, question_lower: str, instances: re.Pattern[str] | None) -> bool:
    if instances is None:
        return False
    for found in instances.finditer(piece):
        name = (found.group("before") or found.group("after")).strip("`")
        if name.lower() not in STOPWORDS and name.lower() not in question_lower:
            return True
    return False


def _shape(piece: str, question_lower: str, intent: tuple[bool, ...],
           instances: re.Pattern[str] | None = None) -> float:
    """0..1: how much the piece looks like what the question asks for, something it does not name."""
    command, name, number, define, why = intent
    novel = {m.group(0).strip("`").lower() for m in SPECIFIC.finditer(piece)}
    novel = {t for t in novel if t and t not in question_lower}
    specific = min(1.0, len(novel) / 2)
    if (name or command) and _names_an_instance(piece, question_lower, instances):
        specific = 1.0
    code = 1.0 if CODE_LINE.search(piece) or "`" in piece else 0.0
    numbers = 1.0 if any(m.group(0) not in question_lower for m in NUMBER.finditer(piece)) else 0.0
    score = 0.0
    if command:
        score = max(score, 0.6 * max(code, specific) + 0.4 * specific, 1.0 if NAMED_LINE.match(piece) else 0.0)
    if name:
        score = max(score, specific)
    if number:
        score = max(score, numbers)
    if define:
        score = max(score, 1.0 if DEFINITION.search(piece) else 0.0)
    if why:
        score = max(score, 1.0 if CAUSE.search(piece) else 0.0)
    if not any(intent):
        score = 0.5 * specific
    return score


def choose(question: str, hits: Sequence[Hit], min_score: float | None = None,
           budget: int = ANSWER_CHARS) -> list[Excerpt]:
    """The excerpts that answer the question, best first, within `budget` characters (always one
    when there is a passage): each grown from a piece that answers (a seed) by the pieces after it
    (the answer often follows the sentence that restates the question) up to EXTRACT_CHARS."""
    numbered = list(enumerate(hits, start=1))
    # Without a model to skip them, quoted off-topic passages would read as part of the answer;
    # hybrid ranking can put a keyword-only match (low cosine) above the passage that answers. But a
    # first passage that holds most of the question's words stays whatever its cosine: that is the
    # one-line fact in a page about something else that the keyword evidence put first
    # (rag.retrieval.relevance.lead_with_evidence), and its cosine is low by nature.
    relevant = [(n, h) for n, h in numbered
                if min_score is None or h.similarity >= min_score or (n == 1 and holds_most(question, h.text))] \
        or numbered[:1]
    spans = {n: _with_examples(hit.text, excerpt_spans(hit.text, EXTRACT_CHARS)) for n, hit in relevant}
    terms_of = {n: _terms(hit.text, spans[n]) for n, hit in relevant}
    pieces = _score(question, [(n, hit) for n, hit in relevant], spans)
    if not pieces:
        return []
    best = pieces[0].score
    score_of = {(p.n, p.start): p.score for p in pieces}
    chosen: list[Excerpt] = []
    used = seeds = 0
    asked_numbers = frozenset(NUMBER.findall(split(question)[0]))
    for seed in pieces:
        if chosen and (seed.score < KEEP_SHARE * best or seeds >= MAX_EXCERPTS):
            break
        if any(e.n == seed.n and e.start <= seed.start < e.end for e in chosen):
            continue  # already quoted, grown from a better piece
        if _said(chosen, hits, seed):
            continue  # the same words in another passage (a copied page): quoting them twice says nothing
        own = spans[seed.n]
        i = next(k for k, (a, b) in enumerate(own) if (a, b) == (seed.start, seed.end))
        lo = hi = i
        room = min(EXTRACT_CHARS, budget - used)
        text = hits[seed.n - 1].text
        # a description is quoted with the signature it describes: "Decorator to wrap a function
        # with a memoizing callable" says what to use only under ".. decorator:: lru_cache(...)"
        if lo > 0 and signature(text[own[lo - 1][0]:own[lo - 1][1]]) and own[hi][1] - own[lo - 1][0] <= room \
                and not _taken(chosen, seed.n, own[lo - 1]):
            lo -= 1
        terms = terms_of[seed.n]
        # a description with its term, and the term's other spellings ("-F lines" / "--fuzz=lines")
        while lo - 1 in terms and own[hi][1] - own[lo - 1][0] <= SHOWN_CHARS and not _taken(chosen, seed.n, own[lo - 1]):
            lo -= 1
        while hi + 1 < len(own) and own[hi + 1][1] - own[lo][0] <= room and not _taken(chosen, seed.n, own[hi + 1]):
            if hi + 1 in terms and any(k not in terms for k in range(lo, hi + 1)):
                break  # the next entry of a definition list, once this one's description is in
            hi += 1
        while hi > i and hi in terms:
            hi -= 1  # a term whose description did not fit
        # how to do what the excerpt describes, and what a "to do this" seed refers to (FOLLOWS_ON)
        if hi + 1 < len(own) and FOLLOWS_ON.match(text[own[hi + 1][0]:own[hi + 1][1]]) \
                and own[hi + 1][1] - own[lo][0] <= SHOWN_CHARS and not _taken(chosen, seed.n, own[hi + 1]):
            hi += 1
        if lo > 0 and FOLLOWS_ON.match(text[own[lo][0]:own[lo][1]]) and own[hi][1] - own[lo - 1][0] <= SHOWN_CHARS \
                and not _taken(chosen, seed.n, own[lo - 1]):
            lo -= 1
        # an example right after the excerpt shows how ("This mapping happens ONLY when
        # mail leaves the machine. ... The following example presents additional configuration:
        # smtp_generic_maps = ..."): quoted with it as far as SHOWN_CHARS shows, even if it runs past
        if hi + 1 < len(own) and own[hi + 1][0] - own[lo][0] < SHOWN_CHARS // 2 \
                and EXAMPLE.match(text[own[hi + 1][0]:own[hi + 1][1]]) and not _taken(chosen, seed.n, own[hi + 1]):
            hi += 1
        if REFERS_BACK.match(text[own[lo][0]:own[lo][1]]):
            named = next((k for k in range(lo - 1, max(-1, lo - 1 - NAMES_BACK), -1)
                          if re.search(CODE_NAME, text[own[k][0]:own[k][1]])
                          and not re.search(r"\n[ \t]*\n", text[own[k][1]:own[lo][0]])), None)  # in its paragraph
            if named is not None and own[hi][1] - own[named][0] <= SHOWN_CHARS \
                    and not any(_taken(chosen, seed.n, own[k]) for k in range(named, lo)):
                lo = named
        start, end = own[lo][0], own[hi][1]
        if _repeats(chosen, hits, seed.n, text[start:end]):
            continue
        chosen.append(Excerpt(seed.n, start, end, seed.score))
        seeds += 1
        used += min(end - start, SHOWN_CHARS)  # a longer piece (a command with its example) is clipped
        # the excerpt stops inside a table it introduces: the rows that answer follow it, not the next ones
        for row in _rows_that_answer(hits[seed.n - 1].text, own, hi + 1, score_of, seed.n, KEEP_SHARE * best,
                                     asked_numbers):
            if used + (row[1] - row[0]) > budget or _taken(chosen, seed.n, row):
                continue
            chosen.append(Excerpt(seed.n, row[0], row[1], score_of[(seed.n, row[0])]))
            used += row[1] - row[0]
        if used >= budget:
            break
    return _merge(chosen, hits)


def _terms(text: str, spans: list[tuple[int, int]]) -> set[int]:
    """The pieces of a passage that are the terms of a definition list (empty unless it has
    MIN_TERMS of them): short lines with no sentence in them, not code, before a piece that ends a
    sentence (its description) or before another term of the same entry."""
    def term(k: int) -> bool:  # each of its lines (a term's spellings: "-e" / "--ed")
        at = text.rfind("\n", 0, spans[k][0]) + 1
        lines = [line.strip() for line in text[at:spans[k][1]].split("\n") if line.strip()]
        return bool(lines) and not CODE_LINE.search(text[at:spans[k][1]]) and all(
            len(line) <= TERM_CHARS and line[-1] not in ".!?:;," and len(line.split()) <= TERM_WORDS for line in lines)

    def described(k: int) -> bool:
        return text[spans[k][0]:spans[k][1]].rstrip()[-1:] in (".", "!", "?")

    found: set[int] = set()
    for k in range(len(spans) - 2, -1, -1):
        if term(k) and (described(k + 1) or k + 1 in found):
            found.add(k)
    if sum(1 for k in found if k + 1 not in found) < MIN_TERMS:
        return set()
    return found | ({len(spans) - 1} if term(len(spans) - 1) else set())  # a last term, its description cut off


def _with_examples(text: str, spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """The spans, a command example (a block that opens with a prompt: "$ ", "sqlite> ") joined to
    the paragraph just before it: "To export a table as CSV, set the mode to csv. [example]" says
    what the example does without a colon, and either alone does not answer."""
    out: list[tuple[int, int]] = []
    for start, end in spans:
        if out and CODE_START.match(text[start:end]):
            before, gap = text[out[-1][0]:out[-1][1]], text[out[-1][1]:start]
            # one paragraph of prose (not a piece already joined to what it introduces), ending
            # right before the example
            if ("\n\n" in gap and not gap.strip() and "\n\n" not in before and before.rstrip()[-1:] in (".", "!", "?")
                    and not any(CODE_START.match(line) for line in before.split("\n"))):
                out[-1] = (out[-1][0], end)
                continue
        out.append((start, end))
    return out


def _rows_that_answer(text: str, own: list[tuple[int, int]], after: int, score_of: dict[tuple[int, int], float],
                      n: int, floor: float, asked: frozenset[str] = frozenset(), most: int = 2) -> list[tuple[int, int]]:
    """Of the table rows that run on from piece `after` of a passage, the `most` best scoring at least
    `floor`, in the table's order; first the rows that hold every number the question states
    (`asked`): "compiled with SQLITE_TEMP_STORE set to 3" is answered by the row of 3, however
    many words of the question the other rows share."""
    rows = []
    for a, b in own[after:]:
        if not table_row(text[a:b]):
            break
        rows.append((a, b))
    named = [r for r in rows if asked and asked <= set(NUMBER.findall(text[r[0]:r[1]]))]
    best = named[:most] + sorted((r for r in rows if r not in named and score_of.get((n, r[0]), 0.0) >= floor),
                                 key=lambda r: -score_of[(n, r[0])])
    return sorted(best[:most])


def holds_most(question: str, text: str) -> bool:
    """Whether the text holds at least half of the question's own content words (and two, if it has two)."""
    asked, words = _words(split(question)[0]), _words(text)
    held = {w for w in asked if any(_same(w, t) for t in words)}
    return bool(asked) and 2 * len(held) >= len(asked) and len(held) >= min(2, len(asked))


def _said(chosen: list["Excerpt"], hits: Sequence[Hit], seed: "Excerpt") -> bool:
    """Whether the seed's words are already in the answer, quoted from another passage."""
    words = " ".join(hits[seed.n - 1].text[seed.start:seed.end].split())
    return len(words) >= HEADING_LIKE and any(
        e.n != seed.n and words in " ".join(hits[e.n - 1].text[e.start:e.end].split()) for e in chosen)


def _repeats(chosen: list["Excerpt"], hits: Sequence[Hit], n: int, text: str) -> bool:
    """Whether every word of an excerpt of SAID_WORDS content words or more is in one excerpt of
    another passage quoted already: a page repeating another's instruction with a word more or
    less ("execute the following command [as root] in order to refresh a running mail system")."""
    own = _words(text)
    return len(own) >= SAID_WORDS and any(e.n != n and own <= _words(hits[e.n - 1].text[e.start:e.end])
                                          for e in chosen)


def _taken(chosen: list["Excerpt"], n: int, span: tuple[int, int]) -> bool:
    return any(e.n == n and span[0] < e.end and e.start < span[1] for e in chosen)


def _merge(chosen: list["Excerpt"], hits: Sequence[Hit]) -> list["Excerpt"]:
    """Excerpts of one passage with nothing but white space between them become one."""
    merged: list[Excerpt] = []
    for excerpt_ in chosen:
        text = hits[excerpt_.n - 1].text
        for k, other in enumerate(merged):
            first, second = sorted((other, excerpt_), key=lambda e: e.start)
            if other.n == excerpt_.n and (first.end >= second.start or not text[first.end:second.start].strip()):
                merged[k] = Excerpt(other.n, first.start, max(first.end, second.end), max(other.score, excerpt_.score),
                                    other.parts + excerpt_.parts)
                break
        else:
            merged.append(excerpt_)
    return merged


def _score(question: str, relevant: list[tuple[int, Hit]], spans: dict[int, list[tuple[int, int]]]) -> list[Excerpt]:
    """Every piece of the passages with its score, best first."""
    candidates = [(n, a, b, hit.text[a:b]) for n, hit in relevant for a, b in spans[n]]
    if not candidates:
        return []
    question, about = split(question)
    asked = _words(question)
    carried = _words(about) - asked
    unit_words = [_words(PROMPT.sub("", text)) for *_, text in candidates]
    # each question word: the pieces whose words match it, weighted by its rarity among them
    weights: dict[str, float] = {}
    matched: list[set[str]] = [set() for _ in candidates]
    for word in asked | carried:
        holders = [i for i, words in enumerate(unit_words) if any(_same(word, w) for w in words)]
        if not holders:
            continue
        weights[word] = math.log(1 + (len(candidates) + 1) / (len(holders) + 0.5))
        for i in holders:
            matched[i].add(word)
    # the follow-up's own words decide what to quote: the carried ones together weigh at most
    # CARRIED_SHARE of them (all of them only when the follow-up names nothing the pieces hold)
    own_total = sum(v for w, v in weights.items() if w not in carried)
    carried_total = sum(v for w, v in weights.items() if w in carried)
    if own_total and carried_total > CARRIED_SHARE * own_total:
        for word in carried & weights.keys():
            weights[word] *= CARRIED_SHARE * own_total / carried_total
    total = sum(weights.values()) or 1.0
    question_lower = question.lower()
    intent = _intent(question)
    instances = _instances(question)
    best_similarity = max(hit.similarity for _, hit in relevant)
    passage_similarity = dict((n, hit.similarity) for n, hit in relevant)
    scored: list[Excerpt] = []
    for i, (n, start, end, text) in enumerate(candidates):
        lexical = sum(weights[w] for w in matched[i]) / total
        shape = _shape(text, question_lower, intent, instances)
        # what the question asks for counts only in a piece about the question
        score = lexical + SHAPE_WEIGHT * shape * min(1.0, 2 * lexical + 0.2)
        score -= PASSAGE_WEIGHT * (best_similarity - passage_similarity[n])
        if len(text.strip()) < HEADING_LIKE:
            score *= 0.6
        scored.append(Excerpt(n, start, end, score))
    scored.sort(key=lambda p: (-p.score, p.n, p.start))
    return scored


def answering_text(question: str, hits: Sequence[Hit], chosen: Excerpt) -> str:
    """The pieces of an excerpt that hold a word of the question, each with the code or the lead-in's
    answer right after it (a piece ending in ":"): what it says about the question, without the
    sentences it was grown by that are about something else ("A light-year is..." after Mars's moons)."""
    text = hits[chosen.n - 1].text
    asked = _words(split(question)[0])
    spans = [(a, b) for a, b in _with_examples(text, excerpt_spans(text, EXTRACT_CHARS))
             if a < chosen.end and b > chosen.start]
    keep: set[int] = set()
    for i, (a, b) in enumerate(spans):
        if not any(_same(w, t) for w in asked for t in _words(PROMPT.sub("", text[a:b]))):
            continue
        keep.add(i)
        if i + 1 < len(spans):
            after = text[spans[i + 1][0]:spans[i + 1][1]]
            if text[a:b].rstrip().endswith(":") or CODE_START.match(after) or CODE_LINE.search(after):
                keep.add(i + 1)
    return "\n\n".join(text[max(a, chosen.start):min(b, chosen.end)] for i, (a, b) in enumerate(spans) if i in keep)


def shown(chosen: Excerpt, hits: Sequence[Hit], question: str = "") -> str:
    """An excerpt as it is quoted: its passage's lines, clipped between lines past SHOWN_CHARS a piece;
    the first line of code it would clip that holds a word of `question` is kept after the ellipsis
    (an example's last line is often the one that answers: "asyncio.run(main())" after the coroutine)."""
    text = excerpt(hits[chosen.n - 1].text, chosen.start, chosen.end).strip("\n").rstrip()
    most_chars, most_lines = SHOWN_CHARS * chosen.parts, 30 * chosen.parts
    clipped = clip_lines(text, most_chars, most_lines)
    if clipped == text or not question:
        return clipped
    lines = text.split("\n")
    asked = _words(split(question)[0])
    kept = clipped.count("\n")  # the lines clip_lines kept, the ellipsis's line aside
    left_out = [k for k in range(kept, len(lines)) if lines[k].strip()]
    key = next((k for k in left_out if _key_line(lines, k, lines[kept:k], most_chars // 3)
                and any(_same(w, t) for w in asked for t in _words(PROMPT.sub("", lines[k])))), None)
    if key is None:
        return clipped
    line = lines[key]
    head = "\n".join(lines[:key]).rstrip()
    head = clip_lines(head, most_chars - len(line) - 2, most_lines - 2)
    after = "\n" + " " * (len(line) - len(line.lstrip())) + ELLIPSIS if key + 1 < len(lines) else ""
    return f"{head}\n{line}{after}"


def _key_line(lines: list[str], k: int, skipped: list[str], most: int) -> bool:
    """Whether line k is a statement of code that may stand alone after an ellipsis: a call, an
    assignment or a command at a prompt, as shallow as the `skipped` lines before it (not the inside
    of a call, nor the continuation of the line before), no comment, no option list's entry
    ("-cmd COMMAND   run ..."), and short."""
    line = lines[k]
    indent = len(line) - len(line.lstrip())
    before = next((lines[j].rstrip() for j in range(k - 1, -1, -1) if lines[j].strip()), "")
    return (bool(CODE_LINE.match(line)) and len(line) < most
            and all(indent <= len(s) - len(s.lstrip()) for s in skipped if s.strip())
            and not line.lstrip().startswith(("#", "//")) and before[-1:] not in (",", "(", "[", "{", "\\")
            and not TERM_AND_DESCRIPTION.search(line.strip())
            and ("(" in line or "=" in line or bool(CODE_START.match(line))))


# A Markdown code span in a heading ("`fs.watch(filename[, options][, listener])`", "Class:
# `http.Server`"), not reST's ``literal`` nor a :role:`target` (their own directive lines are quoted)
HEADING_CODE = re.compile(r"(?<![`:])`([^`\n]+)`(?!`)")
CODE_CORE = re.compile(r"[^\s(\[=]+")  # a signature's name, an option without its value


def code_heading(heading: Sequence[str], text: str) -> str:
    """The heading path from its innermost heading that names code, when the quoted `text` does not
    name it: in Markdown API docs the name is the heading ("### `--max-old-space-size=SIZE`"), and a
    description quoted without it ("Sets the max memory size of V8's old memory section.") does not
    say what to type. "" otherwise."""
    lower = text.lower()
    for level in range(len(heading) - 1, -1, -1):
        names = [core.group(0) for span in HEADING_CODE.finditer(heading[level])
                 if (core := CODE_CORE.search(span.group(1).strip("'\"")))]
        if names:
            return "" if any(name.lower() in lower for name in names) else heading_path(heading[level:])
    return ""


def quote(chosen: Sequence[Excerpt], hits: Sequence[Hit], question: str = "") -> str:
    """The excerpts (`choose`), in their order, each quoted with its passage's citation [n]; an
    excerpt too long to show whole keeps the line of code that holds a word of `question` (`shown`);
    one under a heading that names code it does not name is led by that heading (`code_heading`),
    once a passage, as a paragraph of its own (no quote: rag.answer.citations locates the excerpt)."""
    parts = []
    led: set[int] = set()
    for one in chosen:
        quoted = shown(one, hits, question)
        # a citation after code goes on its own line, not into the code
        last = quoted.rsplit("\n", 1)[-1]
        lead = "" if one.n in led else code_heading(hits[one.n - 1].heading, quoted)
        if lead:
            led.add(one.n)
        head = f"{lead}:\n\n" if lead else ""
        parts.append(f"{head}{quoted}{chr(10) if last[:1].isspace() else ' '}[{one.n}]")
    return "\n\n".join(parts)


def extractive_answer(question: str, hits: Sequence[Hit], min_score: float | None = None) -> str:
    """The excerpts that answer, best first, each quoted with its passage's citation [n]."""
    return quote(choose(question, hits, min_score), hits, question)
