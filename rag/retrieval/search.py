"""Retrieval: dense (FAISS cosine), keyword (SQLite FTS5 BM25) and their fusion.

Hybrid fuses the two legs by their scores, each standardized against its own top results: a
chunk's fused score is the mean of its cosine and its BM25 score, each counted in standard
deviations above that leg's mean over its top FUSION_WINDOW hits (equal weights, nothing tuned).
A chunk the keyword leg did not return gets that list's lowest score (its BM25 is at most that);
a chunk the dense leg did not return gets its exact cosine from its stored vector. Unlike
reciprocal rank fusion this keeps how far ahead a hit is: a keyword hit that stands out (an
error code, a function name) weighs a lot, a flat list of chunks sharing common question words
weighs little. On six labelled sets (one kept aside while choosing) it beat RRF (k=60) on MRR@5
on all but Git's, and lost hit@5 on none (bench/quality.py; README, Performance). Each leg
overfetches (10x top-k, at least 50) before fusing.

Same-document evidence: each document's best chunk then scores DOCUMENT_WEIGHT of its
document's evidence (its best dense and best keyword score, from whichever chunks) and the rest
its own, so a file that both legs find, by different passages, moves up. Over the six labelled
sets this raised MRR@5 from 0.850 to 0.863 on average (Git 0.614 to 0.694) and lost no set more
than 0.004; 0.5 cost Git a hit@5; same-page (PDF) grouping, neighbouring-chunk bonuses and
question-adaptive leg weights lost on some set and were left out (README, Performance).

The relevance cut-off reads the cosine similarity of the best hit, in hybrid mode whether the
legs agree, and whether one of the keyword leg's hits holds the question's rare words together
(rag.retrieval.relevance).
"""

from __future__ import annotations

import math
import re
import time
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from rag.config import NO_CUTOFF, Mode, Settings
from rag.errors import IndexMismatch, RagError
from rag.filters import Filters
from rag.retrieval.relevance import (META_KEY, PROBES, Calibration, agreement, calibrate, cosine_covers, judge,
                                     keyword_evidence, lead_with_evidence)
from rag.retrieval.scope import Scope, Scopes
from rag.storage.store import Store, label_for
from rag.text import STOPWORDS, WORD, question_names, readable
from rag.types import Embeds, Hit, Retrieval

OVERFETCH = 10
MIN_FETCH = 50
FUSION_WINDOW = 50  # hits per leg that set its mean and spread, whatever top-k is
DOCUMENT_WEIGHT = 0.4  # share of a chunk's hybrid score that is its document's best evidence

# Words joined by - . / are searched as one phrase. When the joined word holds a digit (part
# numbers, versions: "KX-1187", "3.11") only the phrase counts: the pieces alone would let
# "KX-1187" match every KX part in a catalogue and drown the one it names. Plain compounds
# ("read-only", "git-rebase") also search their pieces, so "read only" texts still match.
TERM = re.compile(r"\w+(?:[-./]\w+)*", re.UNICODE)


def _meaningful(words: list[str]) -> bool:
    if len(words) > 1:
        return any(w not in STOPWORDS for w in words)
    word = words[0]
    return word not in STOPWORDS and (len(word) > 1 or word.isdigit())  # drop the "s" of "what's"


def _term_groups(question: str) -> list[list[str]]:
    groups = [[w.lower() for w in WORD.findall(term)] for term in TERM.findall(readable(question))]
    return [g for g in groups if _meaningful(g)] or groups


def fts_query(question: str) -> str | None:
    """An FTS5 MATCH expression for free text: every term quoted, OR-ed, never raw syntax."""
    chosen = _term_groups(question)
    pieces = [[w] for g in chosen if len(g) > 1 and not any(c.isdigit() for c in "".join(g))
              for w in g if _meaningful([w])]
    phrases = list(dict.fromkeys(" ".join(g) for g in chosen + pieces))
    if not phrases:
        return None
    return " OR ".join('"' + p.replace('"', '""') + '"' for p in phrases)


def key_terms(question: str) -> list[str]:
    """The question's words as the cut-off weighs them (rag.retrieval.relevance): the keyword
    leg's terms, a compound counted by its pieces unless it holds a digit ("KX-1187" stays one)."""
    terms = []
    for group in _term_groups(question):
        if len(group) > 1 and any(c.isdigit() for c in "".join(group)):
            terms.append(" ".join(group))
        else:
            terms += [w for w in group if _meaningful([w])]
    return list(dict.fromkeys(terms))


def _mean_and_spread(scores: list[float], pad_to: int = 0) -> tuple[float, float]:
    window = scores[:FUSION_WINDOW] + [0.0] * (min(pad_to, FUSION_WINDOW) - len(scores))
    mean = sum(window) / len(window)
    spread = math.sqrt(sum((score - mean) ** 2 for score in window) / len(window))
    return mean, spread or 1.0  # all alike: nothing stands out


def standardize(
    dense: list[tuple[int, float]],
    keyword: list[tuple[int, float]],
    cosine: dict[int, float],
    keyword_complete: bool = False,
) -> dict[int, tuple[float, float]]:
    """Each chunk's (dense, keyword) score in standard deviations above its leg's top-results mean.

    `cosine` holds the query similarity of every chunk in either list; a chunk without one (deleted
    since the vectors were built) is left out. `keyword_complete` says the keyword list holds every
    chunk that matched at all, so any other chunk scores 0 there, and a lone match stands out
    against those zeros instead of against itself.
    """
    dense_mean, dense_spread = _mean_and_spread([score for _, score in dense]) if dense else (0.0, 1.0)
    bm25 = dict(keyword)
    if keyword:
        keyword_mean, keyword_spread = _mean_and_spread(
            [score for _, score in keyword], pad_to=FUSION_WINDOW if keyword_complete else 0
        )
        floor = 0.0 if keyword_complete else min(bm25.values())  # BM25 outside a cut list is at most its last
    parts: dict[int, tuple[float, float]] = {}
    for cid in dict.fromkeys([cid for cid, _ in dense] + [cid for cid, _ in keyword]):
        if cid not in cosine:
            continue
        keyword_z = (bm25.get(cid, floor) - keyword_mean) / keyword_spread if keyword else 0.0
        parts[cid] = ((cosine[cid] - dense_mean) / dense_spread, keyword_z)
    return parts


def fuse(
    dense: list[tuple[int, float]],
    keyword: list[tuple[int, float]],
    cosine: dict[int, float],
    keyword_complete: bool = False,
    documents: dict[int, int] | None = None,
    document_weight: float = DOCUMENT_WEIGHT,
) -> dict[int, float]:
    """Equal-weight z-score fusion of two best-first (chunk id, score) lists.

    With `documents` (chunk id -> document id), each document's best chunk scores `document_weight`
    of its document's evidence (the document's best dense score and best keyword score, whichever
    chunks they come from) and the rest its own. A document whose passages both legs find (one by meaning, another by its
    words) then ranks above one that only a single leg likes; its other chunks keep their own
    score, so one document does not crowd the others out of the top k.
    """
    parts = standardize(dense, keyword, cosine, keyword_complete)
    fused = {cid: (d + k) / 2 for cid, (d, k) in parts.items()}
    if not documents or not document_weight:
        return fused
    best_dense: dict[int, float] = {}
    best_keyword: dict[int, float] = {}
    best_chunk: dict[int, int] = {}
    for cid, (d, k) in parts.items():
        doc = documents.get(cid, -cid)  # unknown (deleted since): a document of its own
        best_dense[doc] = max(best_dense.get(doc, d), d)
        best_keyword[doc] = max(best_keyword.get(doc, k), k)
        if doc not in best_chunk or fused[cid] > fused[best_chunk[doc]]:
            best_chunk[doc] = cid
    for doc, cid in best_chunk.items():
        evidence = (best_dense[doc] + best_keyword[doc]) / 2
        fused[cid] = (1 - document_weight) * fused[cid] + document_weight * evidence
    return fused


@dataclass(frozen=True)
class Claim:
    """What one index's search saw of how much the index has to do with the question, kept for
    ranking it among other indexes searched together (rag.retrieval.together); not part of the
    Retrieval, whose fields are what `--json` shows."""

    cosines: tuple[float, ...]  # the dense leg's cosines in scope, best first (a search's depth)
    words_cover: bool  # the keyword leg's evidence covers the question (rag.retrieval.relevance)
    passages: int  # how many passages the search kept to (the filters' scope, or the whole index)
    shared: int | None = None  # passages in both legs' top AGREEMENT_DEPTH (hybrid mode; else None)


class Retriever:
    """Holds the store, the embedder and the vector index, loaded once for many questions."""

    def __init__(self, store: Store, embedder: Embeds, vectors, dim: int, reranker=None):
        self.store = store
        self.embedder = embedder
        self.vectors = vectors
        self.dim = dim
        self.reranker = reranker  # rag.retrieval.rerank.CrossEncoderReranker, or None
        self.calibration = Calibration.from_json(store.get_meta(META_KEY))  # the cut-off's (rag.retrieval.relevance)
        self.document_weight = DOCUMENT_WEIGHT  # 0: chunks fused alone (bench/quality.py compares)
        self.scopes = Scopes(store)  # filters resolved against this index (rag.retrieval.scope)
        self._measured: Calibration | None = None  # for an index whose ingest stored no calibration

    @classmethod
    def open(cls, settings: Settings, store: Store | None = None, embedder: Embeds | None = None) -> "Retriever":
        """Open for questions; the embedder defaults to the index's model on `settings.query_threads`,
        and `settings.rerank_model` adds the second stage."""
        from rag.storage import vectors as vector_index
        from rag.embedding.embedder import model_id

        store = store or Store.open(settings.index_path)
        stored_model = store.get_meta("embed_model")
        if stored_model is None or store.chunk_count() == 0:
            raise RagError(f"the index at {store.root} is empty: run `rag ingest PATH` first")
        if model_id(settings.embed_model) != stored_model:
            raise IndexMismatch(
                f"the index at {store.root} was built with {stored_model}, not {model_id(settings.embed_model)}: "
                f"set --embed-model/RAG_EMBED_MODEL to {stored_model}, or ingest into another --index"
            )
        if embedder is None:
            from rag.embedding.embedder import get_embedder
            from rag.runtimes import parse_runtime, query_runtime

            embedder = get_embedder(settings.embed_model,
                                    query_runtime(parse_runtime(store.embed_runtime), settings.query_backend).name)
        dim = int(store.get_meta("dim") or embedder.dim)
        reranker = None
        if settings.rerank_model:
            from rag.retrieval.rerank import CrossEncoderReranker

            reranker = CrossEncoderReranker(settings.rerank_model, threads=settings.query_threads)
        return cls(store, embedder, vector_index.open_vectors(store, dim), dim, reranker)

    def refresh(self) -> None:
        """Pick up what an ingest committed since we opened (a long chat session)."""
        from rag.storage import vectors as vector_index

        generation = self.store.generation
        if not self.vectors.current_for(self.store):  # by state id too: a generation number can come back
            self.vectors = vector_index.open_vectors(self.store, self.dim)
        if self.calibration is None or self.calibration.generation != generation:
            # another process's ingest writes its calibration just after its last batch
            self.calibration = Calibration.from_json(self.store.get_meta(META_KEY))

    def current_calibration(self) -> Calibration:
        """The stored calibration or, for an index whose ingest stored none (an older rag), one
        measured now and kept for this generation (rag.retrieval.together ranks by it)."""
        if self.calibration is not None:
            return self.calibration
        if self._measured is None or self._measured.generation != self.store.generation:
            self._measured = self.measure_calibration()
        return self._measured

    def measure_calibration(self) -> Calibration:
        """Search the relevance PROBES: how well questions this index does not cover match it."""
        # one call for all of them: an ingest's streams embed them together (0.4 s one by one)
        best = []
        for vector in self.embedder.embed_documents(list(PROBES)):
            hits = self.dense(vector, 1)
            best.append(hits[0][1] if hits else 0.0)
        return calibrate(best, self.store.generation)

    def embed(self, question: str) -> np.ndarray:
        """The question's vector, as `search` makes it (safe from several threads at once)."""
        return self.embedder.embed_query(readable(question))

    def dense(self, query_vector: np.ndarray, limit: int, scope: Scope | None = None) -> list[tuple[int, float]]:
        if scope is None:
            return self.vectors.search(query_vector, limit)
        if scope.broad:  # deep enough unfiltered, then what is in scope (rag.retrieval.scope)
            depth = min(scope.depth(limit), len(self.vectors))
            kept = scope.keep(self.store, self.vectors.search(query_vector, depth))
            if len(kept) >= limit:
                return kept[:limit]
        return self.vectors.search(query_vector, limit, within=scope.selection(self.store))

    def keyword(self, question: str, limit: int, scope: Scope | None = None) -> list[tuple[int, float]]:
        match = fts_query(question)
        if not match:
            return []
        if scope is None:
            return self.store.keyword_search(match, limit)
        if scope.broad:
            depth = scope.depth(limit)
            found = self.store.keyword_search(match, depth)
            kept = scope.keep(self.store, found)
            if len(kept) >= limit or len(found) < depth:  # enough, or every match was read
                return kept[:limit]
        return self.store.keyword_search(match, limit, within=scope.ids_json(self.store))

    def _add_similarity(self, similarity: dict[int, float], ids: list[int], query_vector: np.ndarray) -> None:
        """The cosine of chunks the dense leg did not return, from their stored vectors."""
        missing = [cid for cid in ids if cid not in similarity]
        for cid, vector in self.store.embeddings(missing, self.dim).items():
            similarity[cid] = float(np.dot(vector, query_vector))

    def search(self, question: str, top_k: int, mode: Mode = "hybrid", min_score: float = NO_CUTOFF,
               filters: Filters | None = None, query_vector: np.ndarray | None = None) -> Retrieval:
        """The `top_k` best chunks for `question`, fused from both legs in hybrid mode, and the
        "not covered" verdict (rag.retrieval.relevance) against the floor `min_score`; the default,
        NO_CUTOFF, returns the best chunks whatever they score. Index.search is the public door.

        `filters` keep both legs to the chunks they match before the top k is taken; a filter that
        matches nothing searches nothing (`no_match` says why).
        """
        return self._search(question, top_k, mode, min_score, filters, query_vector, comparable=False)[0]

    def search_pooled(self, question: str, top_k: int, mode: Mode = "hybrid", min_score: float = NO_CUTOFF,
                      filters: Filters | None = None,
                      query_vector: np.ndarray | None = None) -> tuple[Retrieval, Claim]:
        """`search` as one of several indexes searched together (rag.retrieval.together): dense and
        keyword mode scored as hybrid's are, in standard deviations above the leg's mean over its
        top results, so that every index ranks on one scale; and the index's `Claim` on the
        question, from what the search computed anyway."""
        return self._search(question, top_k, mode, min_score, filters, query_vector, comparable=True)

    def _search(self, question: str, top_k: int, mode: Mode, min_score: float, filters: Filters | None,
                query_vector: np.ndarray | None, comparable: bool) -> tuple[Retrieval, Claim]:
        started = time.perf_counter()
        question = readable(question)
        scope = None
        if filters is not None and not filters.empty:
            scope = self.scopes.resolve(filters)
            if scope.chunks == 0:
                return Retrieval(question=question, mode=mode, hits=[], below_cutoff=False, best_similarity=None,
                                 seconds=time.perf_counter() - started, min_score=min_score, filters=filters,
                                 no_match=scope.reason), Claim(cosines=(), words_cover=False, passages=0)
            if scope.everything:
                scope = None
        fetch = max(top_k * OVERFETCH, MIN_FETCH)
        if query_vector is None:
            query_vector = self.embed(question)
        dense = self.dense(query_vector, fetch, scope) if mode in ("hybrid", "dense") else []
        # an index's claim reads its best cosines in keyword mode too (rag.retrieval.together)
        claimed = dense if mode != "keyword" or not comparable else self.dense(query_vector, fetch, scope)
        keyword = self.keyword(question, fetch, scope) if mode in ("hybrid", "keyword") else []
        dense_rank = {cid: r for r, (cid, _) in enumerate(dense, start=1)}
        keyword_rank = {cid: r for r, (cid, _) in enumerate(keyword, start=1)}
        similarity = dict(dense)

        if mode == "dense":
            scored = {cid: z for cid, (z, _) in standardize(dense, [], similarity).items()} if comparable \
                else dict(dense)
        elif mode == "keyword":
            scored = dict(keyword)
            if comparable:
                parts = standardize([], keyword, dict.fromkeys(scored, 0.0), keyword_complete=len(keyword) < fetch)
                scored = {cid: z for cid, (_, z) in parts.items()}
        else:
            self._add_similarity(similarity, [cid for cid, _ in keyword], query_vector)
            # `similarity` now holds every chunk of either leg that still has a vector: what fuse scores
            scored = fuse(dense, keyword, similarity, keyword_complete=len(keyword) < fetch,
                          documents=self.store.document_ids(list(similarity)), document_weight=self.document_weight)
        candidates = [cid for cid, _ in keyword]
        evidence = keyword_evidence(*self.store.term_statistics(key_terms(question), candidates), candidates,
                                    {name: key_terms(name) for name in question_names(question)}) \
            if mode != "dense" else None
        ranked = sorted(scored, key=lambda cid: -scored[cid])
        shared = agreement([cid for cid, _ in dense], [cid for cid, _ in keyword]) if mode == "hybrid" else None
        covered_by_meaning = False
        if evidence is not None and evidence.covers:  # only then can the order change: the cosines it needs
            self._add_similarity(similarity, ranked[:top_k], query_vector)
            best_ranked = max((similarity.get(cid, 0.0) for cid in ranked[:top_k]), default=None)
            covered_by_meaning = cosine_covers(best_ranked, min_score, shared, self.calibration)
        ranked = lead_with_evidence(ranked, evidence, covered_by_meaning)
        if self.reranker is not None:
            ranked, scored, rows = self._rerank(question, ranked, top_k)
            ranked = lead_with_evidence(ranked, evidence, covered_by_meaning)  # the cross-encoder misreads one too
        else:
            ranked = ranked[:top_k]
            rows = self.store.chunks(ranked)
        self._add_similarity(similarity, ranked, query_vector)
        roots = self.store.roots()
        hits = [
            Hit(
                chunk_id=cid,
                path=rows[cid].path,
                page=rows[cid].page,
                heading=rows[cid].heading,
                text=rows[cid].text,
                title=rows[cid].title,
                score=float(scored[cid]),
                similarity=similarity.get(cid, 0.0),
                dense_rank=dense_rank.get(cid),
                keyword_rank=keyword_rank.get(cid),
                label=label_for(rows[cid].path, roots),
                page_kind=rows[cid].page_kind,
            )
            for cid in ranked
            if cid in rows  # a chunk deleted by a concurrent ingest since the vectors were built
        ]
        best = max((h.similarity for h in hits), default=None)
        verdict = judge(best, min_score, shared, self.calibration, evidence)
        below = bool(hits) and not verdict.covered
        claim = Claim(cosines=tuple(score for _, score in claimed),
                      words_cover=evidence is not None and evidence.covers,
                      passages=scope.chunks if scope is not None else len(self.vectors), shared=shared)
        retrieval = Retrieval(
            question=question,
            mode=mode,
            hits=[] if below else hits,
            below_cutoff=below,
            best_similarity=best,
            seconds=time.perf_counter() - started,
            min_score=min_score,
            cutoff_reason=verdict.reason if below else "",
            reranked_by=self.reranker.name if self.reranker is not None else None,
            filters=filters,
            common_names=list(evidence.common) if evidence is not None else [],
            scarce_words=self._unfamiliar(evidence.scarce) if evidence is not None and mode != "keyword" else [],
        )
        return retrieval, claim

    def _unfamiliar(self, words: Sequence[str]) -> list[str]:
        """Those of `words` that the embedding model's vocabulary spells in pieces: not an everyday
        word ("someone", "afterwards", all but absent from a manual too) but a name or a term
        (nginx, conda, monad; also "typos" or "shelve", which a written answer seldom repeats
        with nothing supported)."""
        return [w for w, pieces in zip(words, self.embedder.count_tokens(words)) if pieces > 1] if words else []

    def _rerank(self, question: str, ranked: list[int], top_k: int):
        """The cross-encoder's order of the first stage's top candidates, cut to top_k."""
        from rag.retrieval.rerank import DEPTH, passage_text

        pool = ranked[:max(top_k, DEPTH)]
        rows = self.store.chunks(pool)
        pool = [cid for cid in pool if cid in rows]
        scores = self.reranker.scores(question, [passage_text(rows[cid].heading, rows[cid].text) for cid in pool])
        scored = dict(zip(pool, scores))
        return sorted(pool, key=lambda cid: -scored[cid])[:top_k], scored, rows
