"""Retrieval quality per mode: `rag eval` for hybrid, dense and keyword on a labelled set.

usage: python bench/quality.py INDEX_DIR QUESTIONS.jsonl [QUESTIONS.jsonl ...] [-k 5] [--index default]

The index must have been built over the corpus the questions are about (see bench/questions/
and ../shared/eval/README.md). The model and index are loaded once for all modes and sets.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

from rag.config import MODES, load_settings  # noqa: E402
from rag.evaluate import load_questions, run_eval  # noqa: E402
from rag.retrieve import Retriever  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("index_dir", type=Path)
    parser.add_argument("questions", nargs="+", type=Path)
    parser.add_argument("-k", type=int, default=5)
    parser.add_argument("--index", default="default")
    args = parser.parse_args()

    retriever = Retriever.open(load_settings({"index_dir": args.index_dir, "index": args.index}))
    chunks = retriever.store.chunk_count()
    print(f"index {args.index_dir / args.index}: {chunks} chunks, k={args.k}")
    print(f"{'set':<22} {'mode':<8} {'hit@k':>6} {'MRR@k':>6} {'recall':>6} {'p50 ms':>7} {'p95 ms':>7}")
    for path in args.questions:
        items = load_questions(path)
        for mode in MODES:
            r = run_eval(retriever, items, args.k, mode)
            name = f"{path.stem} ({len(items)})"
            print(f"{name:<22} {mode:<8} {r.hit_at_k:>6.3f} {r.mrr_at_k:>6.3f} {r.recall_at_k:>6.3f} "
                  f"{r.latency_p50_ms:>7.1f} {r.latency_p95_ms:>7.1f}")


if __name__ == "__main__":
    main()
