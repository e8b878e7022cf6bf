"""Extractive answers: of the key facts the retrieved passages hold, how many the answer keeps.

usage: python bench/extractive.py --index-dir DIR [--show] [--out results.jsonl] [QUESTIONS.jsonl ...]

Over the answer sets (bench/questions/answers_*.jsonl; the part of the file name after "answers_"
names the index, as in bench/answers.py), each answerable question is put to `Index.answer`
without an LLM, exactly as `rag ask --no-llm` does (the cut-off, top-k 5, hybrid retrieval). A
fact (a list of accepted spellings, matched ignoring case and white space) counts as *in the
passages* when one of the passages the answer was given holds it, and as *kept* when the answer
holds it. The figure that matters is kept / in passages: what retrieval found and the answer then
lost. Also printed: the answer's length (a longer answer keeps more; the budget must not grow to
buy facts) and the time to write it (retrieval excluded).

It uses only `rag.Index`, `load_settings` and the answer's fields, so the same script measures an
older release: `PYTHONPATH=/work/before python bench/extractive.py ...`. Never part of the tests.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
QUESTIONS = sorted((HERE / "questions").glob("answers_*.jsonl"))


def norm(text: str) -> str:
    return re.sub(r"\s+", "", text).lower().replace("\u2019", "'")


def holds(text: str, spellings: list[str]) -> bool:
    text = norm(text)
    return any(norm(s) in text for s in spellings)


def load(paths: list[Path]) -> list[tuple[str, dict]]:
    items = []
    for path in paths:
        index = path.stem.removeprefix("answers_")
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                question = json.loads(line)
                if question.get("answerable", True):
                    items.append((index, question))
    return items


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("questions", nargs="*", type=Path, default=QUESTIONS)
    parser.add_argument("--index-dir", type=Path, required=True)
    parser.add_argument("-k", "--top-k", type=int, default=5)
    parser.add_argument("--show", action="store_true", help="print each answer that lost a fact its passages held")
    parser.add_argument("--out", type=Path, help="write one JSON line per question here")
    parser.add_argument("--label", default="")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

    from rag import Index
    from rag.config import load_settings

    rows: dict[str, dict] = {}
    records = []
    indexes: dict[str, Index] = {}
    for name, question in load(args.questions):
        if name not in indexes:
            settings = load_settings({"index_dir": args.index_dir, "index": name}, environ={})
            indexes[name] = Index.open(settings)
            indexes[name].answer("warm up", top_k=args.top_k).result()  # model and vectors loaded
        started = time.perf_counter()
        stream = indexes[name].answer(question["question"], top_k=args.top_k)
        answer = stream.result()
        wall = time.perf_counter() - started
        passages = "\n".join(s.text for s in answer.sources)
        facts = question["facts"]
        in_passages = [holds(passages, f) for f in facts]
        kept = [holds(answer.answer, f) for f in facts]
        row = rows.setdefault(name, {"questions": 0, "facts": 0, "in_passages": 0, "kept": 0, "kept_all": 0,
                                      "chars": [], "ms": []})
        row["questions"] += 1
        row["facts"] += len(facts)
        row["in_passages"] += sum(in_passages)
        row["kept"] += sum(k and p for k, p in zip(kept, in_passages))
        row["kept_all"] += sum(kept)
        row["chars"].append(len(answer.answer))
        row["ms"].append(1000 * answer.timings.generation_s)
        record = {"id": question["id"], "index": name, "facts": len(facts), "in_passages": sum(in_passages),
                  "kept": sum(kept), "chars": len(answer.answer), "generation_ms": round(1000 * answer.timings.generation_s, 1),
                  "wall_s": round(wall, 3), "answer": answer.answer}
        records.append(record)
        lost = [f[0] for f, k, p in zip(facts, kept, in_passages) if p and not k]
        print(f"{question['id']:<7} facts {sum(kept)}/{len(facts)} in passages {sum(in_passages)} "
              f"{'lost ' + ', '.join(lost) if lost else ''}", file=sys.stderr, flush=True)
        if args.show and lost:
            print(f"\n--- {question['id']}: {question['question']}\n{answer.answer}\n", file=sys.stderr)
    if args.out:
        args.out.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")

    label = f" ({args.label})" if args.label else ""
    print(f"| set{label} | questions | key facts | in top-{args.top_k} passages | kept in answer | "
          f"kept / in passages | answer chars (median) | ms to write (median) |")
    print("|---|---|---|---|---|---|---|---|")
    total = {"questions": 0, "facts": 0, "in_passages": 0, "kept": 0, "chars": [], "ms": []}
    for name, row in rows.items():
        for key in ("questions", "facts", "in_passages", "kept"):
            total[key] += row[key]
        total["chars"] += row["chars"]
        total["ms"] += row["ms"]
    for name, row in [*rows.items(), ("all", total)]:
        share = f"{100 * row['kept'] / row['in_passages']:.1f}%" if row["in_passages"] else "-"
        print(f"| {name} | {row['questions']} | {row['facts']} | {row['in_passages']} | {row['kept']} | {share} | "
              f"{statistics.median(row['chars']):.0f} | {statistics.median(row['ms']):.1f} |")


if __name__ == "__main__":
    main()
