"""The relevance cut-off: does the index cover the question at all?

It reads what retrieval already knows. The best hit's cosine similarity is the main signal: below
`min_score` (the floor, --min-score) nothing is relevant. Between the floor and CORROBORATED the
cosine alone cannot tell a weakly worded real question from a question the documents never
discuss, so the keyword leg must corroborate it: at least one chunk must be in the top
AGREEMENT_DEPTH of both legs. A question about Kubernetes put to the Git manual finds chunks that
look alike in meaning ("set a limit", "configure") and other chunks that share its common words,
but rarely the same ones; a real question, even worded in the user's own terms, usually does.
Keyword and dense modes have one leg, so only the floor applies there; a floor of 0 or below
turns the whole cut-off off.

Measured on six labelled sets and 50 off-topic questions per corpus (bench/cutoff.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

CORROBORATED = 0.4  # from here up the cosine alone says "relevant"
AGREEMENT_DEPTH = 10  # how deep in each leg's list a shared chunk counts


@dataclass(frozen=True)
class Coverage:
    covered: bool
    reason: str = ""  # why not, for the user ("" when covered)


def agreement(dense_ids: Sequence[int], keyword_ids: Sequence[int], depth: int = AGREEMENT_DEPTH) -> int:
    """How many chunks are in the top `depth` of both legs."""
    return len(set(dense_ids[:depth]) & set(keyword_ids[:depth]))


def judge(best_cosine: float | None, min_score: float | None, shared: int | None) -> Coverage:
    """`shared` is the legs' agreement (None when only one leg ran)."""
    if best_cosine is None or min_score is None or min_score <= 0:
        return Coverage(True)
    if best_cosine < min_score:
        return Coverage(False, f"the best passage scored {best_cosine:.2f}, under the cut-off {min_score:.2f} "
                               f"(--min-score)")
    if shared is not None and shared == 0 and best_cosine < CORROBORATED:
        return Coverage(False, f"the best passage scored {best_cosine:.2f} (under {CORROBORATED:.2f}) and no "
                               f"passage is among both the meaning and the keyword search's top "
                               f"{AGREEMENT_DEPTH}")
    return Coverage(True)
