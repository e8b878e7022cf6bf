"""The relevance cut-off's confusion table: labelled questions kept, off-topic questions caught.

usage: python bench/cutoff.py --index-dir DIR [--before CODE] [--show] INDEX=QUESTIONS.jsonl[,MORE.jsonl] [...]
       python bench/cutoff.py plant NEEDLES.jsonl CORPUS OUT

For each index: every labelled question of its sets (each must be covered: one cut is a lost
question) and every off-topic question (each should be cut), searched in hybrid mode at the
default top-k and floor, as `rag ask` searches. Beside "kept" the table counts how often the first
passage comes from a labelled source (hit@1: needles must be found first). The off-topic set is
bench/questions/offtopic.jsonl: 50 questions no corpus here covers, written before the cut-off
was designed (general knowledge, other tools' how-tos).

`--before CODE` runs the same questions through the code checked out at CODE (the last release:
PYTHONPATH=CODE) in a subprocess, and prints its columns beside; both use `rag.index.Index`, whose
search is the same call in both. An older release refuses an index that carries schema steps it
does not know, so `--before-index-dir DIR` names the indexes it reads: its own builds, or copies
of the same indexes made by `python bench/cutoff.py hide-newer-steps SRC DST CODE`, which drops
the records of the steps CODE does not know (the extra columns and tables stay and are ignored;
the vector file is rebuilt from SQLite by the older code). With copies, before and after search
the very same chunks and differ only in the rule. `--show` lists every labelled question
cut and every off-topic question that escaped, with the reason or best cosine.

`plant` copies the folder CORPUS to OUT and writes each distinct `fact` of NEEDLES.jsonl into its
first source file as a paragraph of its own: at the first paragraph break after the middle of the
file that starts a prose line, or at the end when the line says "where": "end" (or no break fits).
Then `rag ingest OUT --index needles` builds the index the needle questions are asked of.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
OFFTOPIC = HERE / "questions" / "offtopic.jsonl"


def load(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def labelled_first(hits, question: dict) -> bool:
    if not hits:
        return False
    first = hits[0]
    path = first.path.replace("\\", "/")
    return any(path.endswith("/" + s) or path == s for s in question.get("sources", [])) and \
        ("pages" not in question or first.page in question["pages"])


def measure(index_dir: Path, specs: list[str], offtopic: Path) -> list[dict]:
    """One record per question: its set, whether it was cut, why, and whether the first hit is labelled."""
    from rag.config import load_settings
    from rag.index import Index, limit_threads

    limit_threads(1)
    records = []
    for spec in specs:
        name, _, files = spec.partition("=")
        settings = load_settings({"index_dir": index_dir, "index": name})
        groups = [(Path(f).stem, load(Path(f))) for f in files.split(",")] + [("off-topic", load(offtopic))]
        with Index.open(settings) as idx:
            for label, items in groups:
                for question in items:
                    retrieval = idx.search(question["question"], top_k=settings.top_k, mode="hybrid")
                    records.append({
                        "index": name, "set": label, "question": question["question"], "cut": retrieval.below_cutoff,
                        "first": labelled_first(retrieval.hits, question), "best": retrieval.best_similarity,
                        "reason": retrieval.cutoff_reason,
                    })
    return records


def run_before(code: Path, args: argparse.Namespace) -> list[dict]:
    env = {**os.environ, "PYTHONPATH": str(code)}
    index_dir = args.before_index_dir or args.index_dir
    command = [sys.executable, __file__, "--index-dir", str(index_dir), "--offtopic", str(args.offtopic),
               "--records", *args.sets]
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"the run with PYTHONPATH={code} failed:\n{done.stderr}")
    return json.loads(done.stdout)


def table(after: list[dict], before: list[dict] | None) -> list[str]:
    runs = [("before", before), ("after", after)] if before else [("after", after)]
    heads = " | ".join(f"kept / caught, {name}" for name, _ in runs)
    firsts = " | ".join(f"first hit labelled, {name}" for name, _ in runs)
    lines = [f"| index | questions | n | {heads} | {firsts} |", "|---|---|---|" + "---|" * (2 * len(runs))]
    keys = list(dict.fromkeys((r["index"], r["set"]) for r in after))
    for index, label in keys:
        rows = [[r for r in records if (r["index"], r["set"]) == (index, label)] for _, records in runs]
        n = len(rows[-1])
        if label == "off-topic":
            kept = " | ".join(f"{sum(r['cut'] for r in rs)} caught" for rs in rows)
            first = " | ".join("-" for _ in rows)
        else:
            kept = " | ".join(f"{sum(not r['cut'] for r in rs)}" for rs in rows)
            first = " | ".join(f"{sum(r['first'] for r in rs)}" for rs in rows)
        lines.append(f"| {index} | {label} | {n} | {kept} | {first} |")
    return lines


def plant(needles: Path, corpus: Path, out: Path) -> None:
    if out.exists():
        raise SystemExit(f"{out} exists: give a new folder")
    shutil.copytree(corpus, out)
    facts: dict[str, dict[str, str]] = {}
    for line in load(needles):
        facts.setdefault(line["sources"][0], {})[line["fact"]] = line.get("where", "middle")
    for name, planted in facts.items():
        target = out / name
        text = target.read_text(encoding="utf-8")
        at_end = "end" in planted.values()
        paragraph = "\n\n".join(planted)
        brk = re.compile(r"\n\n(?=[A-Za-z])").search(text, len(text) // 2)
        if at_end or brk is None:
            text = text.rstrip("\n") + "\n\n" + paragraph + "\n"
        else:
            text = text[: brk.start() + 2] + paragraph + "\n\n" + text[brk.start() + 2:]
        target.write_text(text, encoding="utf-8")
        print(f"planted {len(planted)} fact(s) in {target}")


def hide_newer_steps(source: Path, target: Path, code: Path) -> None:
    """Copy the indexes under `source` to `target` with the schema steps that `code` does not know
    forgotten, so that the older release opens them."""
    import sqlite3

    known = subprocess.run(
        # the old module name first: an editable install of this checkout maps rag.storage.* here
        [sys.executable, "-c", "try:\n import rag.migrations as m\nexcept ImportError:\n import rag.storage.migrations as m\n"
                               "print('\\n'.join(name for name, _ in m.STEPS))"],
        env={**os.environ, "PYTHONPATH": str(code)}, capture_output=True, text=True, check=True, cwd="/",
    ).stdout.split()
    if target.exists():
        raise SystemExit(f"{target} exists: give a new folder")
    for db in sorted(source.glob("*/rag.sqlite")):
        out = target / db.parent.name
        out.mkdir(parents=True)
        with sqlite3.connect(db) as conn:  # a consistent copy even if a WAL is beside it
            conn.execute("VACUUM INTO ?", (str(out / "rag.sqlite"),))
        with sqlite3.connect(out / "rag.sqlite") as conn:
            marks = ",".join("?" * len(known))
            gone = conn.execute(f"DELETE FROM schema_migrations WHERE name NOT IN ({marks})", known).rowcount
        print(f"{out}: {gone} newer step(s) hidden")


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "hide-newer-steps":
        hide_newer_steps(*(Path(a) for a in sys.argv[2:5]))
        return
    if len(sys.argv) > 1 and sys.argv[1] == "plant":
        parser = argparse.ArgumentParser(prog="cutoff.py plant")
        parser.add_argument("needles", type=Path)
        parser.add_argument("corpus", type=Path)
        parser.add_argument("out", type=Path)
        args = parser.parse_args(sys.argv[2:])
        plant(args.needles, args.corpus, args.out)
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("sets", nargs="+", metavar="INDEX=QUESTIONS.jsonl[,...]")
    parser.add_argument("--index-dir", type=Path, required=True)
    parser.add_argument("--offtopic", type=Path, default=OFFTOPIC)
    parser.add_argument("--before", type=Path, help="a checkout of the code to compare with (e.g. /work/before)")
    parser.add_argument("--before-index-dir", type=Path,
                        help="indexes for the --before run (default --index-dir); an older release refuses an "
                             "index with newer schema steps, so give it its own build, or copies made by "
                             "`--hide-newer-steps`")
    parser.add_argument("--show", action="store_true", help="list every labelled question cut and every escape")
    parser.add_argument("--records", action="store_true", help=argparse.SUPPRESS)  # internal: JSON for --before
    args = parser.parse_args()
    if args.records:
        print(json.dumps(measure(args.index_dir, args.sets, args.offtopic)))
        return

    load_at_start = os.getloadavg()[0]
    before = run_before(args.before, args) if args.before else None
    after = measure(args.index_dir, args.sets, args.offtopic)
    print(f"load average {load_at_start:.2f} at the start, {os.getloadavg()[0]:.2f} at the end, on {os.cpu_count()} cores")
    print("\n".join(table(after, before)))
    print("targets: every labelled, needle and identifier question kept; at least 40 of 50 off-topic caught per index")
    if args.show:
        for name, records in (("before", before), ("after", after)):
            for r in records or []:
                wrong = r["cut"] if r["set"] != "off-topic" else not r["cut"]
                if wrong:
                    what = "CUT" if r["set"] != "off-topic" else "ESCAPED"
                    why = r["reason"] or f"best cosine {r['best']:.2f}"
                    print(f"  {name} {what} [{r['index']} {r['set']}] {r['question']}  ({why})")


if __name__ == "__main__":
    main()
