"""Retrieval evaluation: hit@k, MRR@k and recall@k over a labelled question set.

A question set is JSON Lines: {"question": ..., "sources": [path suffixes that count as correct],
"pages": [optional 1-based PDF pages]}. A hit is relevant when its path ends with one of the
sources (and, when pages are given, it comes from one of them). recall@k counts the labelled
targets (each source, or each source page) found in the top k.
"""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

from rag.config import Mode
from rag.errors import RagError
from rag.text import location
from rag.types import Hit, Retrieval

# How evaluation searches: (question, top_k, mode) -> Retrieval; the CLI passes Index.search
Search = Callable[[str, int, Mode], Retrieval]


@dataclass(frozen=True)
class EvalItem:
    question: str
    sources: list[str]
    pages: list[int] | None = None


@dataclass
class QuestionResult:
    question: str
    rank: int | None  # 1-based rank of the first relevant hit within k, None = miss
    recall: float
    seconds: float
    retrieved: list[str] = field(default_factory=list)  # what came first: "path[, p. N]"


@dataclass
class EvalReport:
    questions: int
    k: int
    mode: Mode
    hit_at_k: float
    mrr_at_k: float
    recall_at_k: float
    latency_p50_ms: float
    latency_p95_ms: float
    results: list[QuestionResult]


def load_questions(path: Path) -> list[EvalItem]:
    items = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            raw = json.loads(line)
            question, sources = raw["question"], raw["sources"]
            if not isinstance(question, str) or not isinstance(sources, list) or not sources:
                raise ValueError("question must be text and sources a non-empty list")
            pages = raw.get("pages")
            items.append(EvalItem(question, [str(s) for s in sources], [int(p) for p in pages] if pages else None))
        except (ValueError, KeyError, TypeError) as exc:
            raise RagError(
                f"{path}:{number}: not a question line ({exc}); expected "
                f'{{"question": "...", "sources": ["file.md"], "pages": [3]}}'
            ) from exc
    if not items:
        raise RagError(f"{path} holds no questions")
    return items


def _matches(path: str, suffix: str) -> bool:
    suffix = suffix.lstrip("/")
    return path == suffix or path.endswith("/" + suffix)


def is_relevant(hit: Hit, item: EvalItem) -> bool:
    if not any(_matches(hit.path, s) for s in item.sources):
        return False
    return item.pages is None or hit.page in item.pages


def recall(hits: list[Hit], item: EvalItem) -> float:
    targets = [(s, p) for s in item.sources for p in (item.pages or [None])]
    found = sum(
        any(_matches(h.path, s) and (p is None or h.page == p) for h in hits) for s, p in targets
    )
    return found / len(targets)


def percentile(values: Sequence[float], q: int) -> float:
    """The q-th percentile (1-99) interpolated between the nearest values, as numpy.percentile does
    by default: the one definition behind every p50/p95 rag and bench/ report."""
    if len(values) == 1:
        return float(values[0])
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def run_eval(search: Search, items: list[EvalItem], k: int, mode: Mode) -> EvalReport:
    """Score `search` (Index.search with the cut-off off: evaluation measures ranking, the cut-off
    is measured separately, bench/cutoff.py) on labelled questions."""
    results = []
    for item in items:
        retrieval = search(item.question, k, mode)
        rank = next((n for n, h in enumerate(retrieval.hits, start=1) if is_relevant(h, item)), None)
        results.append(QuestionResult(
            question=item.question,
            rank=rank,
            recall=recall(retrieval.hits, item),
            seconds=retrieval.seconds,
            retrieved=[location(h.label or h.path, h.page, h.page_kind) for h in retrieval.hits],
        ))
    latencies = [r.seconds * 1000 for r in results]
    n = len(results)
    return EvalReport(
        questions=n,
        k=k,
        mode=mode,
        hit_at_k=sum(r.rank is not None for r in results) / n,
        mrr_at_k=sum(1 / r.rank for r in results if r.rank) / n,
        recall_at_k=sum(r.recall for r in results) / n,
        latency_p50_ms=percentile(latencies, 50),
        latency_p95_ms=percentile(latencies, 95),
        results=results,
    )


def format_report(report: EvalReport) -> str:
    lines = []
    for r in report.results:
        mark = f"rank {r.rank}" if r.rank else "MISS  "
        lines.append(f"{mark:<7} {r.question[:90]}")
        if not r.rank and r.retrieved:
            lines.append(f"        first: {r.retrieved[0]}")
    lines.append("")
    lines.append(
        f"{report.questions} questions, mode {report.mode}, k={report.k}: "
        f"hit@{report.k} {report.hit_at_k:.3f}  MRR@{report.k} {report.mrr_at_k:.3f}  "
        f"recall@{report.k} {report.recall_at_k:.3f}  "
        f"retrieval p50 {report.latency_p50_ms:.1f} ms, p95 {report.latency_p95_ms:.1f} ms"
    )
    return "\n".join(lines)
