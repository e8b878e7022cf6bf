"""Extractive answers: the answer when no LLM is configured, quoted from the passages and cited.

From each passage that passes the relevance cut-off (best first), the run of paragraphs, code
blocks or sentences around the one sharing most terms with the question, with the passage's lines
kept (a code example stays a code block), followed by its citation [n].
"""

from __future__ import annotations

from typing import Sequence

from rag.markup import clip_lines, excerpt, excerpt_spans
from rag.text import STOPWORDS, WORD
from rag.types import Hit


EXTRACT_PASSAGES = 3
EXTRACT_CHARS = 400


def _terms(text: str) -> set[str]:
    # a five-letter prefix is a crude stem: "embedding", "embeddings" and "embedded" agree
    return {w.lower()[:5] for w in WORD.findall(text) if w.lower() not in STOPWORDS}


def best_excerpt(text: str, question: str, limit: int = EXTRACT_CHARS) -> str:
    """The run of paragraphs, code blocks or sentences around the one sharing most terms with the
    question, with the passage's lines kept (a code example stays a code block)."""
    spans = excerpt_spans(text, limit)
    if not spans:
        return ""
    wanted = _terms(question)
    scores = [len(wanted & _terms(text[a:b])) for a, b in spans]
    best = max(range(len(spans)), key=lambda i: (scores[i], -i))
    lo, hi = best, best

    def size(lo: int, hi: int) -> int:
        return spans[hi][1] - spans[lo][0]

    while True:
        grew = False
        if hi + 1 < len(spans) and size(lo, hi + 1) < limit:
            hi += 1
            grew = True
        if lo > 0 and size(lo - 1, hi) < limit and scores[lo - 1] > 0:
            lo -= 1
            grew = True
        if not grew:
            break
    return clip_lines(excerpt(text, spans[lo][0], spans[hi][1]), int(limit * 1.5), 30)


def extractive_answer(question: str, hits: Sequence[Hit], min_score: float | None = None) -> str:
    """The passages that pass the relevance cut-off, best first, each cited with its number."""
    # Without a model to skip them, quoted off-topic passages would read as part of the answer;
    # hybrid ranking can put a keyword-only match (low cosine) above the passage that answers.
    numbered = list(enumerate(hits, start=1))
    relevant = [(n, h) for n, h in numbered if min_score is None or h.similarity >= min_score] or numbered[:1]
    parts = []
    for n, hit in relevant[:EXTRACT_PASSAGES]:
        excerpt = best_excerpt(hit.text, question)
        if excerpt:
            # a citation after code goes on its own line, not into the code
            last = excerpt.rsplit("\n", 1)[-1]
            parts.append(f"{excerpt}{chr(10) if last[:1].isspace() else ' '}[{n}]")
    return "\n\n".join(parts)
