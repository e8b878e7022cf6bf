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
0 or below turns the whole cut-off off.

Before any of that, the keyword leg's evidence: cosine similarity cannot see a one-line fact in a
passage about something else (a name, an invoice number, a password hint dropped into unrelated
notes), so a question is covered, whatever its cosine, when one of the keyword leg's hits holds
at least HELD_SHARE of the question's word weight in two or more of its words (its one word, for a
question of one), a rare word among them. Each word weighs its
inverse document frequency (FTS5's own BM25 weight, counted by Store.term_statistics), so
common words weigh little and words the index lacks the most; a word is rare when at most
RARE_SHARE of the passages hold it (or RARE_MIN, in a small index). Off-topic questions fail it:
their words are common in the index or absent from it. That passage is also put first when the
passage ranked first holds less of the question and the cosine alone would not have covered it
(lead_with_evidence): the fusion ranks a fact that fills one line of a page below passages that
merely resemble the question.

First of all, a question about something the index never mentions is not covered, whatever its
cosine or keyword evidence: one that names something (names_a_thing: Kotlin, iPhone, GitLab)
no passage holds, and nothing rare that one does. In a broad corpus, questions about other tools
("a data class in Kotlin", against the Python docs) match passages on everything but their subject;
the name is the one word that says the index is the wrong place to look.

Measured by bench/cutoff.py on six labelled sets over five corpora, needles planted in the
Python tutorial, identifier questions, and 50 off-topic questions per corpus
(bench/questions/offtopic.jsonl, written before these rules and never part of PROBES).
"""

from __future__ import annotations

import json
import math
import statistics
from dataclasses import asdict, dataclass, field
from typing import Mapping, Sequence

from rag.config import DEFAULT_MIN_SCORE
from rag.text import IDENTIFIER, LazyPattern, question_names

FLOOR_SPREADS = 2.5
CORROBORATED_SPREADS = 3.0
FALLBACK_CORROBORATED = 0.4  # without a calibration: from here up the cosine alone says "relevant"
AGREEMENT_DEPTH = 10  # how deep in each leg's list a shared chunk counts
META_KEY = "relevance_calibration"
RARE_SHARE = 0.01  # a word held by at most this share of the passages is rare ...
RARE_MIN = 3  # ... or by at most this many (a small index has no 1%)
SCARCE_SHARE = 0.001  # a word held by at most this share of the passages is all but absent from the index
COMMON_SHARE = 0.1  # a name held by at least this share of the passages is the index's subject ...
COMMON_MIN = 10  # ... and by at least this many (not two notes of a small folder)
HELD_SHARE = 0.5  # of the question's word weight, what one passage must hold (with a rare word)
NAME_CHARS = 4  # a shorter capitalised word (CI, KB, 3D) is as often spelled out in the documents
CODE_MARK = LazyPattern(r"[_.]|^-")

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


@dataclass(frozen=True)
class KeywordEvidence:
    """The keyword hit that holds the largest share of the question's word weight, and which words."""

    share: float  # of the question's word weight (inverse document frequencies), what that hit holds
    held: tuple[str, ...]  # the question's words it holds, heaviest first
    missing: tuple[str, ...]  # those it lacks, heaviest (absent from the index) first
    rare: tuple[str, ...]  # the held words that are rare in the index
    chunk_id: int | None = None
    shares: Mapping[int, float] = field(default_factory=dict, compare=False, repr=False)  # every hit's share
    unknown: tuple[str, ...] = ()  # the question's names that name a thing (names_a_thing) no passage holds
    known_rare_name: bool = False  # whether it also names, as code does, something the index holds rarely
    common: tuple[str, ...] = ()  # the question's names the index holds throughout (is_common): its subject
    scarce: tuple[str, ...] = ()  # the question's words all but absent from the index (is_scarce)

    @property
    def names_absent(self) -> bool:
        """Whether the question is about something the index never mentions: it names something
        no passage holds (Kotlin, in the Python docs) and no code name that is rare in the index
        (get_app_dir, in "where does get_app_dir put its folder on macOS?"). A plain capitalised
        word the index holds does not save it: "Diesel ORM from Rust" is not about SQLite because
        its docs mention Rust once."""
        return bool(self.unknown) and not self.known_rare_name

    @property
    def together(self) -> bool:
        """Whether the passage holds words of the question together: two or more (its one word, for a
        question of one). One rare word alone ("Australia" in a time-zone table) is a coincidence."""
        return len(self.held) >= min(2, len(self.held) + len(self.missing))

    @property
    def covers(self) -> bool:
        return bool(self.rare) and self.share >= HELD_SHARE and self.together

    def share_of(self, chunk_id: int) -> float:
        return self.shares.get(chunk_id, 0.0)

    def describe(self) -> str:
        """Why it does not cover the question, in words."""
        if not self.held:
            return "no passage holds any of its words" if self.missing else "it has no words to look up"
        if not self.rare:
            return f"its words found together ({_listed(self.held)}) are common in this index"
        if not self.together and self.share >= HELD_SHARE:
            return f"no passage holds its words together: the best holds only {_listed(self.held)}"
        return (f"no passage holds its words together: the best holds {_listed(self.held)} but not "
                f"{_listed(self.missing)}")


def _listed(words: Sequence[str], most: int = 4) -> str:
    shown = ", ".join(f'"{w}"' for w in words[:most])
    return shown + (f" and {len(words) - most} more" if len(words) > most else "")


def idf(holding: int, passages: int) -> float:
    """A word's inverse document frequency as SQLite FTS5's bm25() weighs it (never below 1e-6)."""
    return max(math.log((passages - holding + 0.5) / (holding + 0.5)), 1e-6)


def is_rare(holding: int, passages: int) -> bool:
    return 0 < holding <= max(RARE_MIN, RARE_SHARE * passages)


def is_scarce(holding: int, passages: int) -> bool:
    """Whether a word is all but absent from the index: held by at most one passage in a thousand
    (none, in an index of fewer). nginx (1 of the Python docs' 22,329 passages), conda (1), monad
    (0); not "switch" in SQLite's docs (35 of 8,903) nor "front" in the Python docs' (43)."""
    return holding <= SCARCE_SHARE * passages


def is_common(holding: int, passages: int) -> bool:
    """Whether a word is held throughout the index: Python in the Python docs (38% of its passages),
    SQLite and TABLE in SQLite's (74%, 29%); never a name of the off-topic or unanswerable questions
    measured (PostgreSQL in SQLite's docs 0.9%, GitHub in Git's 0.4%). Such a name is what the index
    is about: a passage need not repeat it (rag.answer.context.unmentioned)."""
    return holding >= max(COMMON_MIN, COMMON_SHARE * passages)


def names_a_thing(name: str) -> bool:
    """Whether a name of a question (rag.text.question_names) names a product, a person or a place
    rather than code: NAME_CHARS characters or more, a capital letter, no underscore, dot or leading
    dash. Such a name that no passage holds says the question is about something else; a code name
    the index lacks is often the user's own ("my_items", "summary.mydata"), and a question about it
    may well be covered."""
    return len(name) >= NAME_CHARS and any(c.isupper() for c in name) and not CODE_MARK.search(name)


def _code_like(name: str) -> bool:
    """A name as code writes it (get_app_dir, os.path, DictReader, --depth), not a word that is
    merely capitalised (Rust, Amazon): the one says what the question is about, the other may be
    context."""
    return IDENTIFIER.search(name) is not None


def keyword_evidence(passages: int, statistics: Mapping[str, tuple[int, set[int]]],
                     candidates: Sequence[int] = (), names: Mapping[str, Sequence[str]] | None = None) -> KeywordEvidence:
    """`statistics` maps each question word to how many of the index's `passages` hold it and which
    of the keyword leg's hits (`candidates`, best first) do (Store.term_statistics). Each word
    weighs its inverse document frequency, a word the index lacks the most. `names` maps each of
    the question's names (rag.text.question_names) to its words, for the names the index lacks."""
    known = {name: terms for name, terms in (names or {}).items() if terms and all(t in statistics for t in terms)}
    absent = {name for name, terms in known.items() if any(not statistics[t][0] for t in terms)}
    unknown = tuple(name for name in known if name in absent and names_a_thing(name))
    known_rare_name = any(name not in absent and _code_like(name)
                          and any(is_rare(statistics[t][0], passages) for t in terms) for name, terms in known.items())
    common = tuple(name for name, terms in known.items() if all(is_common(statistics[t][0], passages) for t in terms))
    scarce = tuple(word for word, (holding, _) in statistics.items() if is_scarce(holding, passages))
    weights = {word: idf(holding, passages) for word, (holding, _) in statistics.items()}
    total = sum(weights.values())
    if not total:  # no words to weigh ("what is it?" searches its stopwords): no evidence
        return KeywordEvidence(0.0, (), tuple(weights), (), unknown=unknown, known_rare_name=known_rare_name,
                                common=common, scarce=scarce)
    order = list(dict.fromkeys([*candidates, *sorted({c for _, held in statistics.values() for c in held})]))
    shares = {chunk: sum(w for word, w in weights.items() if chunk in statistics[word][1]) / total for chunk in order}
    by_weight = sorted(weights, key=lambda word: -weights[word])
    if not shares:
        return KeywordEvidence(0.0, (), tuple(by_weight), (), unknown=unknown, known_rare_name=known_rare_name,
                                common=common, scarce=scarce)
    best = max(order, key=lambda chunk: shares[chunk])  # the first of equals: the keyword leg's order
    held = tuple(word for word in by_weight if best in statistics[word][1])
    return KeywordEvidence(
        share=shares[best], held=held, missing=tuple(word for word in by_weight if word not in held),
        rare=tuple(word for word in held if is_rare(statistics[word][0], passages)), chunk_id=best, shares=shares,
        unknown=unknown, known_rare_name=known_rare_name, common=common, scarce=scarce,
    )


def lead_with_evidence(ranked: list[int], evidence: KeywordEvidence | None, cosine_covers: bool = False) -> list[int]:
    """`ranked` with the passage that holds the question's rare words first, when the evidence
    covers the question, the passage ranked first holds less of it, and the cosine alone would not
    have covered the question (`cosine_covers`): a one-line fact inside a page about something else
    matches the question's meaning too little to win the fusion. Where the meaning search finds
    the question well covered, the fusion's order stands: leading with the keyword passage there
    cost the Git set's MRR@5 0.734 -> 0.680 (bench/cutoff.py, 2026-12-06)."""
    if evidence is None or not evidence.covers or cosine_covers or not ranked or evidence.chunk_id == ranked[0] \
            or evidence.share_of(ranked[0]) >= evidence.share:
        return ranked
    return [evidence.chunk_id] + [c for c in ranked if c != evidence.chunk_id][:len(ranked) - 1]


def judge(best_cosine: float | None, min_score: float | None, shared: int | None,
          calibration: Calibration | None = None, evidence: KeywordEvidence | None = None) -> Coverage:
    """`shared` is the legs' agreement (None when only one leg ran); `evidence` the keyword leg's
    (keyword_evidence; None when it did not run), which covers the question whatever its cosine."""
    if best_cosine is None or min_score is None or min_score <= 0:
        return Coverage(True)
    if evidence is not None and evidence.names_absent:
        return Coverage(False, f"no passage mentions {_listed(evidence.unknown)}")
    if evidence is not None and evidence.covers:
        return Coverage(True)
    verdict = _judge_cosine(best_cosine, min_score, shared, calibration)
    if verdict.covered or evidence is None:
        return verdict
    return Coverage(False, f"{verdict.reason}; {evidence.describe()}")


def cosine_covers(best_cosine: float | None, min_score: float | None, shared: int | None,
                  calibration: Calibration | None) -> bool:
    """Whether the meaning search alone covers the question (the cut-off without the keyword
    evidence); with the cut-off off (`min_score` None or <= 0), against the default floor."""
    if best_cosine is None:
        return False
    floor = min_score if min_score is not None and min_score > 0 else DEFAULT_MIN_SCORE
    return _judge_cosine(best_cosine, floor, shared, calibration).covered


def _judge_cosine(best_cosine: float, min_score: float, shared: int | None,
                  calibration: Calibration | None) -> Coverage:
    if best_cosine < min_score:
        best, floor = _apart(best_cosine, min_score)
        return Coverage(False, f"the best passage scored {best}, under the cut-off {floor} (--min-score)")
    if calibration is not None:
        floor = calibration.cosine(FLOOR_SPREADS)
        if best_cosine < floor:
            best, under = _apart(best_cosine, floor)
            return Coverage(False, f"the best passage scored {best}, no better than questions this "
                                   f"index does not cover (under {under})")
        corroborated = calibration.cosine(CORROBORATED_SPREADS)
    else:
        corroborated = FALLBACK_CORROBORATED
    if shared == 0 and best_cosine < corroborated:
        best, under = _apart(best_cosine, corroborated)
        return Coverage(False, f"the best passage scored {best} (under {under}) and no "
                               f"passage is among both the meaning and the keyword search's top "
                               f"{AGREEMENT_DEPTH}")
    return Coverage(True)


def _apart(score: float, limit: float) -> tuple[str, str]:
    """Both to two decimals, or as many more as it takes not to print a score under its limit as
    equal to it ("0.199, under the cut-off 0.200", never "0.20, under the cut-off 0.20")."""
    digits = 2
    while digits < 6 and f"{score:.{digits}f}" == f"{limit:.{digits}f}":
        digits += 1
    return f"{score:.{digits}f}", f"{limit:.{digits}f}"
