"""Retrieval quality of one index holding several corpora, each in its own top folder: the
reference for several indexes searched together (bench/scope_quality.py).

usage: python bench/merged_quality.py --index-dir DIR --index NAME --sets FOLDER=QUESTIONS.jsonl[,...] ... [-k 5]

Build the index over a folder whose subfolders are the corpora (links will do), e.g.
`rag ingest all5 --index all5` with all5/{rintro,git,sqlite,rexts,pydocs}. Each set's labels are
read as paths under its corpus's folder (`R-intro.pdf` -> `rintro/R-intro.pdf`), so a label can
only match its own corpus; hit@k and MRR@k as `rag eval` counts them, the cut-off off.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import replace
from pathlib import Path

sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

from rag.config import load_settings  # noqa: E402
from rag.evaluation.metrics import load_questions, run_eval  # noqa: E402
from rag.index import Index, limit_threads  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--index-dir", type=Path, required=True)
    parser.add_argument("--index", required=True)
    parser.add_argument("--sets", nargs="+", required=True, metavar="FOLDER=QUESTIONS.jsonl[,...]")
    parser.add_argument("-k", type=int, default=5)
    args = parser.parse_args()
    settings = load_settings({"index_dir": args.index_dir, "index": args.index})
    limit_threads(settings.query_threads)
    index = Index.open(settings)
    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores; k={args.k}; index {args.index}")

    def search(question, top_k, mode):
        return index.search(question, top_k=top_k, mode=mode, cutoff=False)

    print(f"{'set':<24} {'hit@k':>6} {'MRR@k':>6} {'recall':>6} {'p50 ms':>7}")
    for spec in args.sets:
        folder, _, files = spec.partition("=")
        for path in map(Path, files.split(",")):
            items = [replace(item, sources=[f"{folder}/{s.lstrip('/')}" for s in item.sources])
                     for item in load_questions(path)]
            report = run_eval(search, items, args.k, "hybrid")
            print(f"{f'{path.stem} ({len(items)})':<24} {report.hit_at_k:>6.3f} {report.mrr_at_k:>6.3f} "
                  f"{report.recall_at_k:>6.3f} {report.latency_p50_ms:>7.1f}", flush=True)
            for result in report.results:
                print(f"  rank {result.rank}  {result.question[:70]!r}  {result.retrieved[:3]}")
    index.close()
    print(f"load average {os.getloadavg()[0]:.2f} at the end")


if __name__ == "__main__":
    main()
