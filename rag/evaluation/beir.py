"""BEIR-format evaluation: nDCG@10, recall@100 and MRR@10 over a corpus the user ingested.

A BEIR folder holds `corpus.jsonl[.gz]`, `queries.jsonl` and `qrels/<split>.tsv` (query-id,
corpus-id, grade). `rag eval --beir DIR` ingests nothing: the user ingests the corpus with one
file per document, named by its id (`bench/beir_corpus.py` writes `<id>.md`), and a retrieved
chunk counts for the document whose file stem is that id. Chunks are folded into a ranked list of
documents (a document ranks where its best chunk does). Standard semantics, as BEIR's own
pytrec_eval: graded qrels with linear gain and 1/log2(rank+1) discount, every query of the split
averaged, a query with no result scoring 0.
"""

from __future__ import annotations

import csv
import gzip
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from rag.errors import RagError
from rag.evaluation.metrics import Search, percentile
from rag.types import Hit, Mode

NDCG_K, RECALL_K, MRR_K = 10, 100, 10
FETCH_CHUNKS = 300  # chunks retrieved per query, folded into at least RECALL_K documents in practice


@dataclass(frozen=True)
class BeirQuery:
    id: str
    text: str
    relevant: dict[str, int]  # corpus id -> grade (> 0)


@dataclass
class BeirQueryResult:
    id: str
    ndcg_at_10: float
    recall_at_100: float
    mrr_at_10: float
    seconds: float
    ranked: list[str] = field(default_factory=list)  # the first ten document ids


@dataclass
class BeirReport:
    dataset: str
    split: str
    mode: Mode
    queries: int
    ndcg_at_10: float
    recall_at_100: float
    mrr_at_10: float
    latency_p50_ms: float
    latency_p95_ms: float
    results: list[BeirQueryResult]


def ndcg(ranked: list[str], relevant: dict[str, int], k: int = NDCG_K) -> float:
    dcg = sum(relevant.get(doc, 0) / math.log2(rank + 1) for rank, doc in enumerate(ranked[:k], start=1))
    ideal = sorted(relevant.values(), reverse=True)[:k]
    idcg = sum(grade / math.log2(rank + 1) for rank, grade in enumerate(ideal, start=1))
    return dcg / idcg if idcg else 0.0


def recall(ranked: list[str], relevant: dict[str, int], k: int = RECALL_K) -> float:
    wanted = {doc for doc, grade in relevant.items() if grade > 0}
    return len(wanted & set(ranked[:k])) / len(wanted) if wanted else 0.0


def reciprocal_rank(ranked: list[str], relevant: dict[str, int], k: int = MRR_K) -> float:
    return next((1 / rank for rank, doc in enumerate(ranked[:k], start=1) if relevant.get(doc, 0) > 0), 0.0)


def documents_of(hits: list[Hit]) -> list[str]:
    """Chunk hits folded into document ids (file stems), each at the rank of its best chunk."""
    return list(dict.fromkeys(Path(hit.path).stem for hit in hits))


def load_beir(folder: Path, split: str) -> list[BeirQuery]:
    qrels_path = folder / "qrels" / f"{split}.tsv"
    queries_path = folder / "queries.jsonl"
    for needed in (qrels_path, queries_path):
        if not needed.is_file():
            raise RagError(f"{folder} is not a BEIR folder: {needed.relative_to(folder)} is missing "
                           f"(expected corpus.jsonl, queries.jsonl and qrels/{split}.tsv)")
    relevant: dict[str, dict[str, int]] = {}
    with open(qrels_path, encoding="utf-8", newline="") as handle:
        for number, row in enumerate(csv.reader(handle, delimiter="\t"), start=1):
            if not row or (number == 1 and row[0] == "query-id"):
                continue
            try:
                query_id, doc_id, grade = row[0].strip(), row[1].strip(), int(row[2])
            except (IndexError, ValueError) as exc:
                raise RagError(f"{qrels_path}:{number}: expected query-id, corpus-id, score ({exc})") from exc
            if grade > 0:
                relevant.setdefault(query_id, {})[doc_id] = grade
    texts: dict[str, str] = {}
    with open(queries_path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if line.strip():
                try:
                    raw = json.loads(line)
                    texts[str(raw["_id"])] = str(raw["text"])
                except (ValueError, KeyError) as exc:
                    raise RagError(f"{queries_path}:{number}: not a BEIR query line ({exc})") from exc
    missing = sorted(set(relevant) - set(texts))
    if missing:
        raise RagError(f"{qrels_path} names queries that {queries_path.name} lacks: {', '.join(missing[:5])}")
    if not relevant:
        raise RagError(f"{qrels_path} holds no relevance judgements")
    return [BeirQuery(qid, texts[qid], relevant[qid]) for qid in relevant]


def read_corpus(folder: Path):
    """(id, title, text) of every corpus document, from corpus.jsonl or corpus.jsonl.gz."""
    path = folder / "corpus.jsonl"
    opener = open
    if not path.is_file():
        path, opener = folder / "corpus.jsonl.gz", gzip.open
    with opener(path, "rt", encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                raw = json.loads(line)
                yield str(raw["_id"]), raw.get("title") or "", raw.get("text") or ""


def run_beir(search: Search, folder: Path, split: str, mode: Mode) -> BeirReport:
    """Score `search` (Index.search with the cut-off off) on a BEIR split: nDCG@10, recall@100, MRR@10."""
    queries = load_beir(folder, split)
    results = []
    for query in queries:
        retrieval = search(query.text, FETCH_CHUNKS, mode)
        ranked = documents_of(retrieval.hits)
        results.append(BeirQueryResult(
            id=query.id,
            ndcg_at_10=ndcg(ranked, query.relevant),
            recall_at_100=recall(ranked, query.relevant),
            mrr_at_10=reciprocal_rank(ranked, query.relevant),
            seconds=retrieval.seconds,
            ranked=ranked[:10],
        ))
    latencies = [r.seconds * 1000 for r in results]
    n = len(results)
    return BeirReport(
        dataset=folder.name,
        split=split,
        mode=mode,
        queries=n,
        ndcg_at_10=sum(r.ndcg_at_10 for r in results) / n,
        recall_at_100=sum(r.recall_at_100 for r in results) / n,
        mrr_at_10=sum(r.mrr_at_10 for r in results) / n,
        latency_p50_ms=percentile(latencies, 50),
        latency_p95_ms=percentile(latencies, 95),
        results=results,
    )


def format_beir(report: BeirReport) -> str:
    return (
        f"{report.dataset} {report.split}: {report.queries} queries, mode {report.mode}: "
        f"nDCG@10 {report.ndcg_at_10:.3f}  recall@100 {report.recall_at_100:.3f}  MRR@10 {report.mrr_at_10:.3f}  "
        f"retrieval p50 {report.latency_p50_ms:.1f} ms, p95 {report.latency_p95_ms:.1f} ms"
    )
