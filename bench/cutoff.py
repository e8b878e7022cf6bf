"""The relevance cut-off's confusion table: labelled questions kept, off-topic questions caught.

usage: python bench/cutoff.py --index-dir DIR INDEX=QUESTIONS.jsonl[,MORE.jsonl] [...]
                              [--offtopic bench/questions/offtopic.jsonl] [--min-score 0.25]

For each index: every labelled question of its sets (each must be covered: one cut is a lost
question) and every off-topic question (each should be cut), searched in hybrid mode with the
cut-off of rag.retrieval.relevance, next to the old rule (best cosine under 0.2 alone) from the same
retrieval. The off-topic set is bench/questions/offtopic.jsonl: 50 questions no corpus here
covers, written before the cut-off was designed (general knowledge, other tools' how-tos).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

from rag.config import load_settings  # noqa: E402
from rag.index import Index, limit_threads  # noqa: E402

OLD_FLOOR = 0.2


def questions(path: Path) -> list[str]:
    return [json.loads(line)["question"] for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("sets", nargs="+", metavar="INDEX=QUESTIONS.jsonl[,...]")
    parser.add_argument("--index-dir", type=Path, required=True)
    parser.add_argument("--offtopic", type=Path, default=Path(__file__).parent / "questions" / "offtopic.jsonl")
    parser.add_argument("--min-score", type=float, help="the floor (default: the setting, RAG_MIN_SCORE)")
    parser.add_argument("--show", action="store_true", help="list every lost and every escaped question")
    args = parser.parse_args()
    off_topic = questions(args.offtopic)
    limit_threads(1)

    header = f"{'index':<8} {'questions':<28} {'n':>3} {'kept':>5} {'cut':>4}   {'old: kept':>9} {'cut':>4}"
    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    print(header)
    print("-" * len(header))
    for spec in args.sets:
        name, _, files = spec.partition("=")
        settings = load_settings({"index_dir": args.index_dir, "index": name,
                                  **({"min_score": args.min_score} if args.min_score is not None else {})})
        groups = [(Path(f).stem, questions(Path(f))) for f in files.split(",")] + [("off-topic", off_topic)]
        with Index.open(settings) as idx:
            for label, items in groups:
                cut = old_cut = 0
                for question in items:
                    retrieval = idx.search(question, top_k=settings.top_k, mode="hybrid")
                    cut += retrieval.below_cutoff
                    old = retrieval.best_similarity is not None and retrieval.best_similarity < OLD_FLOOR
                    old_cut += old
                    wrong = retrieval.below_cutoff if label != "off-topic" else not retrieval.below_cutoff
                    if args.show and wrong:
                        what = "LOST" if label != "off-topic" else "ESCAPED"
                        print(f"    {what} (best {retrieval.best_similarity:.2f}) {question}")
                n = len(items)
                print(f"{name:<8} {label:<28} {n:>3} {n - cut:>5} {cut:>4}   {n - old_cut:>9} {old_cut:>4}", flush=True)
    print(f"floor {settings.min_score} (old rule: {OLD_FLOOR}); labelled rows should cut 0, off-topic rows cut >= 40")


if __name__ == "__main__":
    main()
