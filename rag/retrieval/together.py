"""Several indexes searched as one: each index normalises its own scores, then one ranking.

Each index is searched on its own (its own embedding model embeds the question, its own filters'
scope, its own cut-off calibration), with scores made comparable (`Retriever.search(comparable=
True)`): a hybrid score is already each leg in standard deviations above that leg's mean over
its own top results, and dense or keyword mode is scored the same way, so a cosine from one model
is never compared with a cosine from another, nor BM25 over one FTS table with BM25 over another.
A cross-encoder scores every passage on the same scale whatever its index. The top k of the
merged list are the answer; each hit names its index.

The "not covered" cut-off is each index's own (rag.retrieval.relevance, calibrated per index and
model): an index that does not cover the question contributes nothing, so a corpus that merely
has a passage that stands out from its own unrelated passages does not crowd the one that answers.
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Sequence

import numpy as np

from rag.config import NO_CUTOFF, Mode
from rag.filters import Filters
from rag.retrieval.search import Retriever
from rag.text import readable
from rag.types import Retrieval


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
    results: list[tuple[str, Retrieval]] = []
    for name, retriever in searchers:
        key = id(retriever.embedder)
        if key not in vectors:
            vectors[key] = retriever.embedder.embed_query(question)
        results.append((name, retriever.search(question, top_k, mode, min_score, filters,
                                               query_vector=vectors[key], comparable=True)))

    searched = [(name, r) for name, r in results if not r.no_match]
    common = dict(question=question, mode=mode, min_score=min_score, filters=filters, indexes=names)
    if not searched:
        reasons = list(dict.fromkeys(r.no_match for _, r in results))
        why = f"{reasons[0]} in {' or '.join(names)}" if len(reasons) == 1 else \
            "; ".join(f"{name}: {r.no_match}" for name, r in results)
        return Retrieval(hits=[], below_cutoff=False, best_similarity=None, seconds=time.perf_counter() - started,
                         no_match=why, **common)
    covered = [(name, r) for name, r in searched if r.hits]
    pooled = [(hit.score, order, replace(hit, index=name))
              for order, (name, r) in enumerate(covered) for hit in r.hits]
    pooled.sort(key=lambda item: (-item[0], item[1]))  # ties: the index named first
    hits = [hit for _, _, hit in pooled[:top_k]]
    below = not hits and any(r.below_cutoff for _, r in searched)
    reasons = "; ".join(f"{name}: {r.cutoff_reason}" for name, r in searched if r.below_cutoff)
    rerankers = {r.reranked_by for _, r in searched}
    return Retrieval(
        hits=hits,
        below_cutoff=below,
        best_similarity=max((r.best_similarity for _, r in searched if r.best_similarity is not None), default=None),
        seconds=time.perf_counter() - started,
        cutoff_reason=reasons if below else "",
        reranked_by=rerankers.pop() if len(rerankers) == 1 else None,
        **common,
    )

