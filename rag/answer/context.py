"""What the model reads of each passage: the stretch that matters for the question, not the whole chunk.

A small local model reads a prompt at a few dozen to a few hundred tokens a second on one core and
loses the thread in a long one; five whole chunks are most of its wait and much of its confusion.
`chosen_all` gives it what the extractive answer would quote (rag.answer.extractive.choose: the
pieces that answer, across all passages, about 900 characters in all), each under its passage's
number; a passage with nothing chosen is left out. Over the passages retrieved for bench/answers.py's
61 questions: half the prompt characters of `focus_all`, and these stretches hold more of the
labelled facts (43 of 55 against 41). When nothing can be chosen, each passage's focus is given: from each
passage, `focus_all` keeps the pieces (paragraphs, a code block with the line that introduces it,
sentences of a long paragraph; rag.markup.excerpt_spans) that hold most of the question's rarer
words, and what follows them while it fits, in their order, up to `FOCUS_CHARS`; a passage that
short is kept whole. The passage keeps its number,
so the model's [n] still names it, and citations are checked against the whole passage.

`unmentioned` lists the names in a question (GitLab, io_uring, `--depth`) that no passage
mentions: the prompt says so, which lets a small model see that the passages are about something
else rather than answer from them anyway. Capitalised words side by side are one name ("GitHub
Actions", "Visual Studio Code"), mentioned only where they stand together: a manual of Git
mentions GitHub, and actions, in the passages retrieved for a question about GitHub Actions. A
name the index holds throughout (Python in the Python docs: Retrieval.common_names) is what the
index is about, and rag.answer.generate.missing_names leaves it out.
"""

from __future__ import annotations

import math
import re
from typing import Sequence

from rag.answer.extractive import Excerpt, shown
from rag.markup import clip_lines, excerpt, excerpt_spans
from rag.text import STOPWORDS, WORD, example_names, question_names
from rag.types import Hit

FOCUS_CHARS = 360  # measured with bench/answers.py (README, Answers)
LONG_PIECE = 200  # a prose paragraph longer than this is offered sentence by sentence
GROW = 1  # pieces after a chosen one that may join it (its code, the answer after a lead-in)
REPEAT = 0.25  # what a question word already in the chosen pieces is worth in another


def _terms(text: str) -> set[str]:
    # a five-letter prefix is a crude stem: "stash", "stashed" and "stashing" agree
    return {w.lower()[:5] for w in WORD.findall(text) if w.lower() not in STOPWORDS and len(w) > 1}


def focus_all(question: str, texts: Sequence[str], limit: int | None = None) -> list[str]:
    """Each passage's pieces that matter for `question`, in their order, within about `limit` characters."""
    limit = FOCUS_CHARS if limit is None else limit
    wanted = _terms(question)
    pieces = [excerpt_spans(text, LONG_PIECE) for text in texts]
    piece_terms = [[_terms(text[a:b]) & wanted for a, b in spans] for text, spans in zip(texts, pieces)]
    # a word found in few pieces says more than one found in many ("--index" over "git")
    count = sum(len(terms) for terms in piece_terms) or 1
    weight = {t: math.log(1 + count / (1 + sum(t in s for terms in piece_terms for s in terms))) for t in wanted}
    return [_focus(text, spans, terms, weight, limit) for text, spans, terms in zip(texts, pieces, piece_terms)]


def _focus(text: str, spans: list[tuple[int, int]], terms: list[set[str]], weight: dict[str, float],
           limit: int) -> str:
    if len(text) <= limit or not spans:
        return text.strip()
    chosen: set[int] = set()
    covered: set[str] = set()
    used = 0
    while True:
        # the piece adding most of the question's words not yet covered (those already covered
        # count a little: a second mention is a second chance); ties go to the earlier piece
        best, gain = None, 0.0
        for i in range(len(spans)):
            if i in chosen:
                continue
            size = spans[i][1] - spans[i][0]
            if chosen and used + size > limit:
                continue
            value = sum(weight[t] * (1.0 if t not in covered else REPEAT) for t in terms[i])
            if value > gain + 1e-9:
                best, gain = i, value
        if best is None:
            break
        chosen.add(best)
        covered |= terms[best]
        used += spans[best][1] - spans[best][0]
    if not chosen:
        chosen = {0}  # nothing shares a word with the question: the passage's opening
    # then what follows a chosen piece, while it fits: its code, the rest of its list
    for i in sorted(chosen):
        j = i + 1
        while j < min(len(spans), i + 1 + GROW) and j not in chosen and used + spans[j][1] - spans[j][0] <= limit:
            chosen.add(j)
            used += spans[j][1] - spans[j][0]
            j += 1
    runs: list[list[int]] = []
    for i in sorted(chosen):
        if runs and runs[-1][-1] == i - 1:
            runs[-1].append(i)
        else:
            runs.append([i])
    # one piece longer than the limit (a long code block) is cut between its lines
    return clip_lines("\n\n".join(excerpt(text, spans[run[0]][0], spans[run[-1]][1]).strip("\n") for run in runs),
                      2 * limit, 40)


def chosen_all(question: str, hits: Sequence[Hit], chosen: Sequence[Excerpt]) -> list[str]:
    """Each passage's stretches that the extractive answer quotes for `question` (`chosen`, by
    rag.answer.extractive.choose), in the passage's order; "" for a passage it quotes nothing from.
    None of them (no piece to choose): each passage's focus (`focus_all`)."""
    if not chosen:
        return focus_all(question, [h.text for h in hits])
    texts: list[list[str]] = [[] for _ in hits]
    for e in sorted(chosen, key=lambda e: (e.n, e.start)):
        texts[e.n - 1].append(shown(e, hits, question))
    return ["\n\n".join(parts) for parts in texts]


def unmentioned(question: str, texts: Sequence[str]) -> list[str]:
    """The names of `question` that occur (ignoring case) in none of `texts`; the words of a name of
    several words side by side (one to three other characters between them: spaces, a hyphen, "('")."""
    haystack = "\n".join(texts).lower()
    examples = example_names(question)  # "flags like --verbose": a passage on flags need not say it
    return [name for name in question_names(question) if name not in examples and not _mentioned(name.lower(), haystack)]


def _mentioned(name: str, haystack: str) -> bool:
    if " " not in name:
        return name in haystack
    # "Decimal('NaN')" mentions a Decimal NaN; "GitHub handle>/git/actions" no GitHub Actions
    return re.search(r"\W{1,3}".join(map(re.escape, name.split())), haystack) is not None
