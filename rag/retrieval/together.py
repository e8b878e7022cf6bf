"""Several indexes searched as one: each index normalises its own scores, then one ranking.

Each index is searched on its own (its own embedding model embeds the question, its own filters'
scope, its own cut-off), with scores made comparable within it (`Retriever.search(comparable=
True)`): a hybrid score counts each leg in standard deviations above that leg's mean over the
index's own top results, and dense or keyword mode is scored the same way. A cosine from one model
is never compared with a cosine from another, nor BM25 over one FTS table with BM25 over another.

That alone ranks every index's best passage alike, however little the index has to do with the
question, and lost a third of MRR@5 on labelled sets searched together with other corpora
(bench/scope_quality.py; bench/RESULTS.md, "Several indexes"). So each passage also carries its
index's evidence: how far the index's best cosine stands above the best cosines of the everyday
questions its cut-off is calibrated with (rag.retrieval.relevance), in their spreads. Unrelated
questions reach the probes' level in any model and corpus, so the measure means the same in every
index. With it, ranking fell only where a second corpus answers the same questions (two R
manuals). A cross-encoder (rag.retrieval.rerank) scores every passage on one scale already and is
merged as it scores.

The "not covered" cut-off is each index's own: an index that does not cover the question adds
nothing. Each hit names its index.
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Sequence

import numpy as np

from rag.config import NO_CUTOFF, Mode
from rag.filters import Filters
from rag.retrieval.relevance import Calibration
from rag.retrieval.search import Retriever
from rag.text import readable
from rag.types import Retrieval

MIN_SPREAD = 0.01  # a calibration whose probes all scored alike must not make every gap enormous


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
    results: list[tuple[str, Retriever, Retrieval]] = []
    for name, retriever in searchers:
        key = id(retriever.embedder)
        if key not in vectors:
            vectors[key] = retriever.embedder.embed_query(question)
        results.append((name, retriever, retriever.search(question, top_k, mode, min_score, filters,
                                                          query_vector=vectors[key], comparable=True)))

    searched = [(name, retriever, r) for name, retriever, r in results if not r.no_match]
    common = dict(question=question, mode=mode, min_score=min_score, filters=filters, indexes=names)
    if not searched:
        reasons = list(dict.fromkeys(r.no_match for _, _, r in results))
        why = f"{reasons[0]} in {' or '.join(names)}" if len(reasons) == 1 else \
            "; ".join(f"{name}: {r.no_match}" for name, _, r in results)
        return Retrieval(hits=[], below_cutoff=False, best_similarity=None, seconds=time.perf_counter() - started,
                         no_match=why, **common)
    pooled = []
    for order, (name, retriever, r) in enumerate(searched):
        if not r.hits:
            continue
        lift = 0.0 if r.reranked_by else evidence(r, retriever.current_calibration())
        pooled += [(hit.score + lift, order, replace(hit, index=name, score=hit.score + lift)) for hit in r.hits]
    pooled.sort(key=lambda item: (-item[0], item[1]))  # ties: the index named first
    hits = [hit for _, _, hit in pooled[:top_k]]
    below = not hits and any(r.below_cutoff for _, _, r in searched)
    reasons = "; ".join(f"{name}: {r.cutoff_reason}" for name, _, r in searched if r.below_cutoff)
    rerankers = {r.reranked_by for _, _, r in searched}
    return Retrieval(
        hits=hits,
        below_cutoff=below,
        best_similarity=max((r.best_similarity for _, _, r in searched if r.best_similarity is not None), default=None),
        seconds=time.perf_counter() - started,
        cutoff_reason=reasons if below else "",
        reranked_by=rerankers.pop() if len(rerankers) == 1 else None,
        **common,
    )


def evidence(retrieval: Retrieval, calibration: Calibration) -> float:
    """How far the index's best passage stands above unrelated questions' best, in their spreads."""
    if retrieval.best_similarity is None:
        return 0.0
    return (retrieval.best_similarity - calibration.median) / max(calibration.spread, MIN_SPREAD)

