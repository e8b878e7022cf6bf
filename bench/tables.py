"""Table questions: is the row that answers retrieved, and does it still say which value is what?

usage: python bench/tables.py --index-dir DIR --index NAME [-k 5] [QUESTIONS.jsonl]

Over bench/questions/tables_sqlite.jsonl (default), each question is searched through
`Index.search` (hybrid, no cut-off, as `rag eval` does) and scored:
- file hit@k and MRR@k: a passage from a labelled source in the top k (what `rag eval` reports);
- cell in top k: the answer cell's text ("cell") is in one of the top-k passages;
- row with labels: the passage line holding the cell also holds the row's key ("row", e.g.
  "SQLITE_TEMP_STORE: 3"), so a reader (or a model) of that passage sees which value is what.
A table read one cell per line passes the first three and fails the last.

Uses only `rag.Index` and `load_settings`, so `PYTHONPATH=/work/before` measures the last release
on an index it built. Never part of the tests.
"""

from __future__ import annotations

import argparse
import json
import os
import re
from pathlib import Path

HERE = Path(__file__).resolve().parent


def norm(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip().lower()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("questions", nargs="?", type=Path, default=HERE / "questions" / "tables_sqlite.jsonl")
    parser.add_argument("--index-dir", type=Path, required=True)
    parser.add_argument("--index", default="sqlite")
    parser.add_argument("-k", "--top-k", type=int, default=5)
    parser.add_argument("--label", default="")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

    from rag import Index
    from rag.config import load_settings

    index = Index.open(load_settings({"index_dir": args.index_dir, "index": args.index}, environ={}))
    questions = [json.loads(line) for line in args.questions.read_text(encoding="utf-8").splitlines() if line.strip()]
    hits = rr = cells = labelled = with_cell = 0
    for q in questions:
        try:
            retrieval = index.search(q["question"], top_k=args.top_k, cutoff=False)
        except TypeError:  # releases before the cut-off switch: a floor under every cosine
            retrieval = index.search(q["question"], top_k=args.top_k, min_score=-1.0)
        ranks = [n for n, h in enumerate(retrieval.hits, 1)
                 if any(h.path == s or h.path.endswith("/" + s) for s in q["sources"])]
        hits += bool(ranks)
        rr += 1 / ranks[0] if ranks else 0.0
        found = row_found = False
        if "cell" in q:
            with_cell += 1
            cell, key = norm(q["cell"]), norm(q["row"])
            for hit in retrieval.hits:
                text = norm(hit.text)
                found = found or cell in text
                row_found = row_found or any(cell in norm(line) and key in norm(line) for line in hit.text.split("\n"))
            cells += found
            labelled += row_found
        print(f"{q['id']:<6} file rank {ranks[0] if ranks else '-':<2} cell {'yes' if found else 'no ':<3} "
              f"row with labels {'yes' if row_found else 'no'}", flush=True)
    n = len(questions)
    label = f" ({args.label})" if args.label else ""
    print(f"\n| table questions{label} | n | file hit@{args.top_k} | MRR@{args.top_k} | answer cell in top {args.top_k} "
          f"| row with its labels in top {args.top_k} |")
    print("|---|---|---|---|---|---|")
    print(f"| {args.index} | {n} | {hits / n:.3f} | {rr / n:.3f} | {cells}/{with_cell} | {labelled}/{with_cell} |")


if __name__ == "__main__":
    main()
