"""The relevance cut-off: does the index cover the question at all?

A question's best cosine similarity means little on its own: in a broad corpus (the Python docs)
unrelated questions still find passages at 0.3-0.45, in a narrow one (a 100-page R manual) at
0.1-0.3. So each index is calibrated: after every ingest that changes it, the fixed PROBES
(everyday questions no technical corpus answers) are searched, and the median and spread
(1.4826 x median absolute deviation, robust to a few probes the corpus does cover) of their best
cosines are stored. A question is not covered when its best cosine is

- under the absolute floor `min_score` (--min-score), or
- within FLOOR_SPREADS spreads of the probes' median: no better than unrelated questions do, or
- within CORROBORATED_SPREADS and the keyword leg does not corroborate it: no chunk is in the top
  AGREEMENT_DEPTH of both legs (hybrid mode only; a real question, even in the user's own words,
  usually has one).

An index without a calibration (built by an older rag; any ingest adds it) falls back to the
floor and a fixed band [min_score, FALLBACK_CORROBORATED) that needs the legs to agree. A floor of
0 or below turns the whole cut-off off. Measured by bench/cutoff.py on six labelled sets over
five corpora and 50 off-topic questions per corpus (bench/questions/offtopic.jsonl, written
before this rule and never part of PROBES).
"""

from __future__ import annotations

import json
import statistics
from dataclasses import asdict, dataclass
from typing import Sequence

FLOOR_SPREADS = 2.5
CORROBORATED_SPREADS = 3.0
FALLBACK_CORROBORATED = 0.4  # without a calibration: from here up the cosine alone says "relevant"
AGREEMENT_DEPTH = 10  # how deep in each leg's list a shared chunk counts
META_KEY = "relevance_calibration"

# Everyday questions, far from any technical corpus; the calibration's null sample. (The off-topic
# questions the cut-off is measured with are a separate set, bench/questions/offtopic.jsonl.)
PROBES = (
    "What time does the farmers market open on Saturdays?",
    "How many calories are in a slice of pizza?",
    "Who won the men's singles at Wimbledon last year?",
    "What is the best way to learn to play the guitar?",
    "How do I write a cover letter for a job application?",
    "What are the symptoms of a common cold?",
    "How far is the Moon from the Earth?",
    "Which countries border Switzerland?",
    "How do I make a paper airplane that flies far?",
    "What is the difference between a violin and a viola?",
    "When is the best season to plant tulip bulbs?",
    "How can I improve my credit score quickly?",
    "What does a notary public do?",
    "How do I clean a cast iron pan?",
    "What are the main causes of the French Revolution?",
    "How many bones are in the human body?",
    "What is the tallest building in the world?",
    "How do I get a toddler to sleep through the night?",
    "What is the plot of the movie Casablanca?",
    "How should I prepare for a marathon?",
    "What are good houseplants for low light?",
    "How do I fix a squeaky door hinge?",
    "Who discovered penicillin?",
    "What is the exchange rate between euros and yen?",
    "How do I book a table at a busy restaurant?",
    "What languages are spoken in Belgium?",
    "How long does it take to fly from London to Sydney?",
    "What is the rule for a tie-break in tennis?",
    "How do I start a vegetable garden on a balcony?",
    "Why is the sky blue?",
    "How do I choose a good pair of running shoes?",
    "What is the history of the Olympic Games?",
    "How do I remove rust from a bicycle chain?",
    "What should I feed a pet rabbit?",
    "How do volcanoes form?",
    "What is a good name for a golden retriever puppy?",
    "How do I apply for a fishing licence?",
    "Which wines come from the Bordeaux region?",
    "How do I sew a button back onto a shirt?",
    "What is the speed of sound in air?",
)


@dataclass(frozen=True)
class Calibration:
    """How well unrelated questions match this index: their best cosines' median and spread."""

    median: float
    spread: float
    probes: int
    generation: int  # the index generation it was measured at

    def cosine(self, spreads: float) -> float:
        return self.median + spreads * self.spread

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, raw: str | None) -> "Calibration | None":
        if not raw:
            return None
        try:
            return cls(**json.loads(raw))
        except (ValueError, TypeError):
            return None  # damaged or from another rag: as if there were none


@dataclass(frozen=True)
class Coverage:
    covered: bool
    reason: str = ""  # why not, for the user ("" when covered)


def calibrate(best_cosines: Sequence[float], generation: int) -> Calibration:
    median = statistics.median(best_cosines)
    mad = statistics.median(abs(c - median) for c in best_cosines)
    return Calibration(median=float(median), spread=float(1.4826 * mad), probes=len(best_cosines),
                       generation=generation)


def agreement(dense_ids: Sequence[int], keyword_ids: Sequence[int], depth: int = AGREEMENT_DEPTH) -> int:
    """How many chunks are in the top `depth` of both legs."""
    return len(set(dense_ids[:depth]) & set(keyword_ids[:depth]))


def judge(best_cosine: float | None, min_score: float | None, shared: int | None,
          calibration: Calibration | None = None) -> Coverage:
    """`shared` is the legs' agreement (None when only one leg ran)."""
    if best_cosine is None or min_score is None or min_score <= 0:
        return Coverage(True)
    if best_cosine < min_score:
        return Coverage(False, f"the best passage scored {best_cosine:.2f}, under the cut-off {min_score:.2f} "
                               f"(--min-score)")
    if calibration is not None:
        floor = calibration.cosine(FLOOR_SPREADS)
        if best_cosine < floor:
            return Coverage(False, f"the best passage scored {best_cosine:.2f}, no better than questions this "
                                   f"index does not cover (under {floor:.2f})")
        corroborated = calibration.cosine(CORROBORATED_SPREADS)
    else:
        corroborated = FALLBACK_CORROBORATED
    if shared == 0 and best_cosine < corroborated:
        return Coverage(False, f"the best passage scored {best_cosine:.2f} (under {corroborated:.2f}) and no "
                               f"passage is among both the meaning and the keyword search's top "
                               f"{AGREEMENT_DEPTH}")
    return Coverage(True)
