"""Retrieval quality per ranker, over labelled sets and BEIR folders, in one run.

usage: python bench/quality.py INDEX_DIR QUESTIONS.jsonl [QUESTIONS.jsonl ...] [-k 5] [--index default]
       python bench/quality.py --sets INDEX=QUESTIONS.jsonl[,MORE.jsonl] ... [--beir INDEX=BEIR_DIR:SPLIT ...]
                               --index-dir DIR

Rankers: dense, keyword, "hybrid (chunks)" (z-score fusion of the two legs alone: the hybrid of
before same-document evidence) and hybrid (the default). Labelled sets report hit@k, MRR@k and
recall@k; BEIR folders nDCG@10, recall@100 and MRR@10 (as `rag eval --beir`); every row its
retrieval latency p50/p95. The indexes must have been built over the corpora the questions are
about (see bench/questions/ and ../shared/eval/README.md). Each index is loaded once.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

from rag.evaluation.beir import run_beir  # noqa: E402
from rag.config import load_settings  # noqa: E402
from rag.evaluation.metrics import load_questions, run_eval  # noqa: E402
from rag.retrieval.search import DOCUMENT_WEIGHT, Retriever  # noqa: E402

RANKERS = (("dense", "dense", None), ("keyword", "keyword", None), ("hybrid (chunks)", "hybrid", 0.0),
           ("hybrid", "hybrid", DOCUMENT_WEIGHT))


def run(retriever, ranker, evaluate):
    _, mode, weight = ranker
    retriever.document_weight = DOCUMENT_WEIGHT if weight is None else weight
    return evaluate(mode)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("index_dir_positional", nargs="?", type=Path, metavar="INDEX_DIR")
    parser.add_argument("questions", nargs="*", type=Path)
    parser.add_argument("--index-dir", type=Path)
    parser.add_argument("--index", default="default")
    parser.add_argument("--sets", nargs="*", default=[], metavar="INDEX=QUESTIONS.jsonl[,...]")
    parser.add_argument("--beir", nargs="*", default=[], metavar="INDEX=BEIR_DIR:SPLIT")
    parser.add_argument("-k", type=int, default=5)
    args = parser.parse_args()
    index_dir = args.index_dir or args.index_dir_positional
    sets = [(args.index, [str(q) for q in args.questions])] if args.questions else []
    sets += [(spec.partition("=")[0], spec.partition("=")[2].split(",")) for spec in args.sets]
    beirs = [(spec.partition("=")[0], spec.partition("=")[2]) for spec in args.beir]
    if index_dir is None or not (sets or beirs):
        parser.error("give INDEX_DIR and question sets, or --index-dir with --sets/--beir")

    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores; k={args.k}")
    print(f"{'set':<26} {'ranker':<16} {'hit@k':>6} {'MRR@k':>6} {'recall':>6} {'p50 ms':>7} {'p95 ms':>7}")
    averages: dict[str, list[tuple[float, float, float]]] = {}
    for name, files in sets:
        retriever = Retriever.open(load_settings({"index_dir": index_dir, "index": name}))
        for path in map(Path, files):
            items = load_questions(path)
            for ranker in RANKERS:
                r = run(retriever, ranker, lambda mode: run_eval(retriever.search, items, args.k, mode))
                averages.setdefault(ranker[0], []).append((r.hit_at_k, r.mrr_at_k, r.recall_at_k))
                print(f"{f'{path.stem} ({len(items)})':<26} {ranker[0]:<16} {r.hit_at_k:>6.3f} {r.mrr_at_k:>6.3f} "
                      f"{r.recall_at_k:>6.3f} {r.latency_p50_ms:>7.1f} {r.latency_p95_ms:>7.1f}", flush=True)
        retriever.store.close()
    for ranker, rows in averages.items():
        print(f"{f'average of {len(rows)} sets':<26} {ranker:<16} " + " ".join(
            f"{statistics.mean(col):>6.3f}" for col in zip(*rows)))
    if beirs:
        print(f"\n{'BEIR set':<26} {'ranker':<16} {'nDCG@10':>7} {'R@100':>6} {'MRR@10':>6} {'p50 ms':>7} {'p95 ms':>7}")
    for name, spec in beirs:
        folder, _, split = spec.rpartition(":")
        retriever = Retriever.open(load_settings({"index_dir": index_dir, "index": name}))
        for ranker in RANKERS:
            r = run(retriever, ranker, lambda mode: run_beir(retriever.search, Path(folder), split, mode))
            print(f"{f'{Path(folder).name} {split} ({r.queries})':<26} {ranker[0]:<16} {r.ndcg_at_10:>7.3f} "
                  f"{r.recall_at_100:>6.3f} {r.mrr_at_10:>6.3f} {r.latency_p50_ms:>7.1f} {r.latency_p95_ms:>7.1f}",
                  flush=True)
        retriever.store.close()


if __name__ == "__main__":
    main()
