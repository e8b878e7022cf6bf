"""Retrieval quality with a scope: questions scoped to their labelled folder, and several indexes
searched together against each one alone.

usage: python bench/scope_quality.py --index-dir DIR --sets INDEX=QUESTIONS.jsonl[,MORE.jsonl] ...
                                     [--scoped INDEX ...] [--offtopic QUESTIONS.jsonl] [-k 5] [--mode hybrid]

- together: each question set is searched in its own index alone, then in every index named by
  --sets at once (`Index.search(also=...)`, rag.retrieval.together), ranked with the cut-off
  off (hit@k, MRR@k, recall@k, as `rag eval`), and again with the cut-off on ("covered": the share
  of questions that got passages; "hit@k on" counts a question whose passages were cut as a miss).
  Searching more indexes should not lose the right passage to another corpus's.
- off-topic (--offtopic, e.g. bench/questions/offtopic.jsonl: questions no corpus covers): how
  many are given passages with the cut-off on, by each index alone and by all of them together.
  Each index keeps its own cut-off, so together lets through what any one of them lets through.
- scoped (the sets of the indexes named by --scoped): each question is asked unfiltered, then
  with `--path` set to the top folders of its labelled sources (`library/`, `tutorial/`, ...;
  one glob per folder), as a user who knows where the answer lives would. It should rise.

The indexes must be built over the corpora their questions are about (bench/questions/README.md,
../shared/eval/README.md). Every index is opened once, through rag.Index as `rag ask` opens it.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from pathlib import Path

sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

from rag.config import load_settings  # noqa: E402
from rag.evaluation.metrics import EvalItem, load_questions, run_eval  # noqa: E402
from rag.filters import Filters  # noqa: E402
from rag.index import Index, limit_threads  # noqa: E402


def folders_of(item: EvalItem) -> list[str]:
    """The top folders of a question's labelled sources, as --path globs (none for files at the top)."""
    return sorted({source.split("/")[0] + "/" for source in item.sources if "/" in source})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--index-dir", type=Path, required=True)
    parser.add_argument("--sets", nargs="+", required=True, metavar="INDEX=QUESTIONS.jsonl[,...]")
    parser.add_argument("--scoped", nargs="*", default=[], metavar="INDEX")
    parser.add_argument("--offtopic", type=Path, metavar="QUESTIONS.jsonl")
    parser.add_argument("-k", type=int, default=5)
    parser.add_argument("--mode", default="hybrid", choices=("hybrid", "dense", "keyword"))
    args = parser.parse_args()
    sets = [(spec.partition("=")[0], [Path(p) for p in spec.partition("=")[2].split(",")]) for spec in args.sets]
    names = list(dict.fromkeys(name for name, _ in sets))

    settings = load_settings({"index_dir": args.index_dir, "index": names[0]})
    limit_threads(settings.query_threads)
    opened = {index.name: index for index in Index.open_together(settings, names)}
    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores; k={args.k}; mode {args.mode}; "
          f"indexes together: {', '.join(names)}")

    def ranking(index: Index, also=(), filters=None, cutoff=False):
        return lambda question, top_k, mode: index.search(question, top_k=top_k, mode=mode, cutoff=cutoff,
                                                         also=also, filters=filters)

    print(f"\n{'set':<24} {'searched':<10} {'hit@k':>6} {'MRR@k':>6} {'recall':>6} {'covered':>8} {'hit@k on':>8}"
          f" {'p50 ms':>7}")
    rows: dict[str, list[tuple[float, float, float, float, float]]] = {"alone": [], "together": []}
    for name, files in sets:
        index = opened[name]
        others = [other for other in opened.values() if other is not index]
        for path in files:
            items = load_questions(path)
            for label, also in (("alone", ()), ("together", others)):
                ranked = run_eval(ranking(index, also), items, args.k, args.mode)
                cut = run_eval(ranking(index, also, cutoff=True), items, args.k, args.mode)
                covered = sum(bool(r.retrieved) for r in cut.results) / cut.questions
                rows[label].append((ranked.hit_at_k, ranked.mrr_at_k, ranked.recall_at_k, covered, cut.hit_at_k))
                print(f"{f'{path.stem} ({len(items)})':<24} {label:<10} {ranked.hit_at_k:>6.3f} {ranked.mrr_at_k:>6.3f} "
                      f"{ranked.recall_at_k:>6.3f} {covered:>8.3f} {cut.hit_at_k:>8.3f} {ranked.latency_p50_ms:>7.1f}",
                      flush=True)
    for label, values in rows.items():
        print(f"{f'average of {len(values)} sets':<24} {label:<10} " + " ".join(
            f"{statistics.mean(column):>{width}.3f}" for column, width in zip(zip(*values), (6, 6, 6, 8, 8))))

    if args.offtopic:
        questions = [json.loads(line)["question"] for line in args.offtopic.read_text(encoding="utf-8").splitlines()
                     if line.strip()]
        everything = list(opened.values())
        given = {index.name: sum(bool(index.search(q, top_k=args.k, mode=args.mode).hits) for q in questions)
                 for index in everything}
        given["together"] = sum(bool(everything[0].search(q, top_k=args.k, mode=args.mode, also=everything[1:]).hits)
                                for q in questions)
        print(f"\noff-topic questions given passages (cut-off on), of {len(questions)}: "
              + ", ".join(f"{name} {count}" for name, count in given.items()), flush=True)

    if args.scoped:
        print(f"\n{'set':<24} {'scope':<10} {'hit@k':>6} {'MRR@k':>6} {'recall':>6} {'p50 ms':>7}")
    for name, files in sets:
        if name not in args.scoped:
            continue
        index = opened[name]
        for path in files:
            items = load_questions(path)
            whole = run_eval(ranking(index), items, args.k, args.mode)
            scoped = [run_eval(ranking(index, filters=Filters.build(paths=folders_of(item))), [item], args.k,
                               args.mode).results[0] for item in items]
            n = len(items)
            hit = sum(r.rank is not None for r in scoped) / n
            mrr = sum(1 / r.rank for r in scoped if r.rank) / n
            recall = sum(r.recall for r in scoped) / n
            p50 = statistics.median(r.seconds * 1000 for r in scoped)
            print(f"{f'{path.stem} ({n})':<24} {'index':<10} {whole.hit_at_k:>6.3f} {whole.mrr_at_k:>6.3f} "
                  f"{whole.recall_at_k:>6.3f} {whole.latency_p50_ms:>7.1f}")
            print(f"{'':<24} {'folders':<10} {hit:>6.3f} {mrr:>6.3f} {recall:>6.3f} {p50:>7.1f}", flush=True)
    for index in opened.values():
        index.close()
    print(f"load average {os.getloadavg()[0]:.2f} at the end")


if __name__ == "__main__":
    main()
