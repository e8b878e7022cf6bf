"""Several indexes searched as one: each index normalises its own scores, then one ranking.

Each index is searched on its own (its own embedding model embeds the question, its own filters'
scope, its own cut-off), with scores made comparable within it (`Retriever.search_pooled`): a
hybrid score counts each leg in standard deviations above that leg's mean over the index's own top
results, and dense or keyword mode is scored the same way. A cosine from one model is never
compared with a cosine from another, nor BM25 over one FTS table with BM25 over another.

That alone ranks every index's best passage alike, however little the index has to do with the
question, and lost a third of MRR@5 on labelled sets searched together with other corpora
(bench/scope_quality.py; bench/RESULTS.md, "Several indexes"). So each passage also carries its
index's evidence, on the scale the relevance cut-off (rag.retrieval.relevance) judges coverage
on, in every index alike: spreads above the median of the index's own calibration, the best
cosines of everyday questions no technical corpus answers.

- Its depth: the median cosine of the index's best DEPTH passages (at most a DEPTH_SHARE-th of
  its passages, so a folder of a few notes is judged by its best), not its single best. Every
  technical corpus holds one passage that resembles a programming question (a page on compressed
  files in an R manual); a corpus about the question holds ten. Judged by its single best, a
  narrow manual outranked the corpus a question was about (its probes score low, so any
  technical question stands far above them).
- Its words: when the keyword leg's evidence covers the question (one passage holds its rare
  words together: a planted fact, a part number), the cut-off counts the index as covering it
  whatever the cosine, so the ranking counts it as a cosine that covers by itself would
  (CORROBORATED_SPREADS), where the cosine says less. Without it a fact found by its words in
  one index lost to every other index's best-resembling passages.
- Its corroboration: when the index's two legs share no passage in their top AGREEMENT_DEPTH
  (hybrid mode), its cosines count UNCORROBORATED spreads less, the margin by which the cut-off
  asks more of such a cosine (CORROBORATED_SPREADS against FLOOR_SPREADS): a corpus about the
  question usually has a passage both its meaning and its words find; one whose passages merely
  resemble it often has none (R-exts and the Python docs on R-intro's T for TRUE and masked base
  functions). On the six labelled sets 0.920 / 0.827 -> 0.927 / 0.834 hit@5 / MRR@5 (those two
  R-intro questions); the other labelled
  sets, replayed on the same retrievals, unchanged but one needle ranked 4 -> 2. Margins of 0.5
  to 2 spreads gave the same hit@5 (2 cost an R-exts identifier question's rank, 4 lost hits).
- Its unit: one spread for every index in one embedding model, the mean of their calibrations'
  spreads (model_spreads). Each index keeps its own median (a broad corpus's best match for an
  everyday question is closer than a narrow manual's), but within one model a cosine is a cosine,
  and each index's spread is an estimate from 40 probes (a standard error near a fifth of it):
  the five labelled corpora's ran from 0.039 (SQLite) to 0.048 (Python docs), so the same
  margin counted a fifth more in SQLite, and SQLite and R-exts passages outranked the Python
  docs' on Python questions. An index alone in its model keeps its own spread.

Each index's passages keep the order that index put them in (the keyword evidence may put one
first: rag.retrieval.relevance.lead_with_evidence); the ranking only interleaves the indexes. A
cross-encoder (rag.retrieval.rerank) scores every passage on one scale already and is merged as
it scores. Figures: bench/RESULTS.md, "Several indexes" and "One spread per embedding model".

The "not covered" cut-off is each index's own: an index that does not cover the question adds
nothing. Each hit names its index.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import replace
from typing import Sequence

import numpy as np

from rag.config import NO_CUTOFF, Mode
from rag.filters import Filters
from rag.retrieval.relevance import CORROBORATED_SPREADS, FLOOR_SPREADS, Calibration
from rag.retrieval.search import Claim, Retriever
from rag.text import readable
from rag.types import Hit, Retrieval

MIN_SPREAD = 0.01  # a calibration whose probes all scored alike must not make every gap enormous
DEPTH = 10  # an index is judged by the median cosine of its best DEPTH passages ...
DEPTH_SHARE = 20  # ... or of its best twentieth, when that is fewer (a few notes: their best)
UNCORROBORATED = CORROBORATED_SPREADS - FLOOR_SPREADS  # less for cosines the keyword leg does not back


def search_together(
    searchers: Sequence[tuple[str, Retriever]],
    question: str,
    top_k: int,
    mode: Mode = "hybrid",
    min_score: float = NO_CUTOFF,
    filters: Filters | None = None,
) -> Retrieval:
    """The `top_k` best passages over every (name, retriever), each hit labelled with its index."""
    started = time.perf_counter()
    question = readable(question)
    names = [name for name, _ in searchers]
    vectors: dict[int, np.ndarray] = {}  # one embedding per model, however many indexes share it
    results: list[tuple[str, Retriever, Retrieval, Claim]] = []
    for name, retriever in searchers:
        key = id(retriever.embedder)
        if key not in vectors:
            vectors[key] = retriever.embedder.embed_query(question)
        results.append((name, retriever, *retriever.search_pooled(question, top_k, mode, min_score, filters,
                                                                   query_vector=vectors[key])))

    searched = [(name, retriever, r, claim) for name, retriever, r, claim in results if not r.no_match]
    common = dict(question=question, mode=mode, min_score=min_score, filters=filters, indexes=names)
    if not searched:
        reasons = list(dict.fromkeys(r.no_match for _, _, r, _ in results))
        why = f"{reasons[0]} in {' or '.join(names)}" if len(reasons) == 1 else \
            "; ".join(f"{name}: {r.no_match}" for name, _, r, _ in results)
        return Retrieval(hits=[], below_cutoff=False, best_similarity=None, seconds=time.perf_counter() - started,
                         no_match=why, **common)
    # a cross-encoder's scores need no evidence (nor an older index's calibration measured for it)
    calibrations = {order: retriever.current_calibration()
                    for order, (_, retriever, r, _) in enumerate(searched) if not r.reranked_by}
    spreads = model_spreads([(searched[order][1].embedder.id, calibration)
                             for order, calibration in calibrations.items()])
    ranked = []
    for order, (name, retriever, r, claim) in enumerate(searched):
        if not r.hits:
            continue
        lift = 0.0 if r.reranked_by else index_evidence(claim, calibrations[order], mode,
                                                         spreads[retriever.embedder.id])
        ranked.append((order, lift, [replace(hit, index=name) for hit in r.hits]))
    hits = interleave(ranked)[:top_k]
    below = not hits and any(r.below_cutoff for _, _, r, _ in searched)
    reasons = "; ".join(f"{name}: {r.cutoff_reason}" for name, _, r, _ in searched if r.below_cutoff)
    rerankers = {r.reranked_by for _, _, r, _ in searched}
    return Retrieval(
        hits=hits,
        below_cutoff=below,
        best_similarity=max((r.best_similarity for _, _, r, _ in searched if r.best_similarity is not None),
                            default=None),
        seconds=time.perf_counter() - started,
        cutoff_reason=reasons if below else "",
        reranked_by=rerankers.pop() if len(rerankers) == 1 else None,
        common_names=list(dict.fromkeys(name for _, _, r, _ in searched for name in r.common_names)),
        # all but absent from every index searched (a word one of them holds is no sign)
        scarce_words=[w for w in searched[0][2].scarce_words if all(w in r.scarce_words for _, _, r, _ in searched)],
        **common,
    )


def interleave(ranked: Sequence[tuple[int, float, Sequence[Hit]]]) -> list[Hit]:
    """One ranking of several indexes' (order, evidence, hits best first): each hit scores its
    index's evidence plus the best score at or below it in its index's list, so no index's own
    order changes (a passage its keyword evidence put first ranks as the one it displaced); ties
    go to the index named first."""
    pooled = []
    for order, lift, hits in ranked:
        floor = float("-inf")
        scored = []
        for hit in reversed(hits):
            floor = max(floor, hit.score)
            scored.append(floor + lift)
        pooled += [(score, order, position, replace(hit, score=score))
                   for position, (score, hit) in enumerate(zip(reversed(scored), hits))]
    pooled.sort(key=lambda item: (-item[0], item[1], item[2]))
    return [hit for *_, hit in pooled]


def index_evidence(claim: Claim, calibration: Calibration, mode: Mode, spread: float | None = None) -> float:
    """How far the index stands above unrelated questions, in spreads (`spread`, or its
    calibration's): the depth of its best cosines (UNCORROBORATED less when its legs share no
    passage), or what its keyword evidence counts as when that covers the question."""
    depth = max(1, min(DEPTH, claim.passages // DEPTH_SHARE))
    lift = evidence(claim.cosines[:depth], calibration, spread)
    if claim.shared == 0:
        lift -= UNCORROBORATED
    if mode == "dense" or lift >= CORROBORATED_SPREADS:
        return lift
    return CORROBORATED_SPREADS if claim.words_cover else lift


def evidence(cosines: Sequence[float], calibration: Calibration, spread: float | None = None) -> float:
    """How far the median of an index's best cosines stands above unrelated questions' best, in
    `spread`s (None: their own spread; 0 for no cosines)."""
    if not cosines:
        return 0.0
    spread = calibration.spread if spread is None else spread
    return (statistics.median(cosines) - calibration.median) / max(spread, MIN_SPREAD)


def model_spreads(calibrations: Sequence[tuple[str, Calibration]]) -> dict[str, float]:
    """One spread per embedding model (model id, calibration of an index in it): the mean of its
    indexes' spreads, the unit their evidence is counted in."""
    by_model: dict[str, list[float]] = {}
    for model, calibration in calibrations:
        by_model.setdefault(model, []).append(calibration.spread)
    return {model: statistics.fmean(spreads) for model, spreads in by_model.items()}

