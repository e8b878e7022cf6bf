"""The citation check's confusion table on labelled (sentence, passage, supported?) pairs, before and after.

usage: python bench/citations.py [--pairs bench/questions/citations.jsonl] [--before /work/before] [--show]

Each pair of bench/questions/citations.jsonl (README there) is checked as a one-sentence answer
citing its passage: "<sentence> [1]" against [passage], through rag.answer.citations.check_citations.
A correct citation should be marked supported, a wrong one caught. The table counts both, per
kind of pair (paraphrase, identifier parts, changed number, another passage, ...) and in total.
`--before DIR` runs the same pairs through the code checked out at DIR (the last release: its
module was rag.citations) in a subprocess and prints its column beside; `--show` lists every
correct citation flagged and every wrong one passed, with the checker's reason.

A second table gives each pair whose sentence also has a pair of the other label (a sentence with
its own passage and with the neighbouring one that does not say it) both passages, as the answer
the pair came from did: "<sentence> [1]" against [its passage, the twin's passage]. It measures
what a single-passage check cannot: a citation of the neighbour when the passage that says it was
also given.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
PAIRS = HERE / "questions" / "citations.jsonl"
CITATION = re.compile(r"\s*\[\d{1,3}(?:\s*,\s*\d{1,3})*\]")


def load(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def twins(pairs: list[dict]) -> list[tuple[dict, str]]:
    """(pair, the passage of another pair with the same sentence and the other label), for each pair that has one."""
    by_sentence: dict[str, list[dict]] = {}
    for pair in pairs:
        by_sentence.setdefault(pair["sentence"].strip(), []).append(pair)
    out = []
    for pair in pairs:
        other = next((o for o in by_sentence[pair["sentence"].strip()] if o["supported"] != pair["supported"]), None)
        if other is not None:
            out.append((pair, other["passage"]))
    return out


def verdicts(pairs: list[dict], given_too: list[str] | None = None) -> list[tuple[bool, str]]:
    """(supported, reason) for each pair, by the rag importable here; given_too[i], when given, is a
    second passage handed over with pair i's own (cited as [1])."""
    # The old layout is tried first: an editable install of this checkout maps rag.answer.* here even
    # when PYTHONPATH puts an older checkout's rag first, so trying the new name would mix the two.
    try:
        from rag.citations import check_citations  # the release before rag/ was split by stage
    except ImportError:
        from rag.answer.citations import check_citations
    out = []
    for i, pair in enumerate(pairs):
        sentence = CITATION.sub("", pair["sentence"]).rstrip()
        body, end = (sentence[:-1], sentence[-1]) if sentence[-1:] in ".!?" else (sentence, "")
        passages = [pair["passage"]] + ([given_too[i]] if given_too else [])
        citation = check_citations(f"{body} [1]{end}", passages).citations[0]
        out.append((citation.supported, citation.reason))
    return out


def before(pairs_path: Path, code: Path) -> tuple[list[tuple[bool, str]], list[tuple[bool, str]]]:
    """(verdicts on the pairs, verdicts on the twins) by the code at `code`."""
    env = {**os.environ, "PYTHONPATH": str(code)}
    done = subprocess.run([sys.executable, __file__, "--pairs", str(pairs_path), "--verdicts"], env=env,
                          capture_output=True, text=True, check=True)
    alone, together = json.loads(done.stdout)
    return [tuple(v) for v in alone], [tuple(v) for v in together]


def both_verdicts(pairs: list[dict]) -> tuple[list[tuple[bool, str]], list[tuple[bool, str]]]:
    pairs_with_twin = twins(pairs)
    return verdicts(pairs), verdicts([p for p, _ in pairs_with_twin], [t for _, t in pairs_with_twin])


def tally(pairs: list[dict], got: list[tuple[bool, str]]) -> dict[str, list[int]]:
    """kind -> [pairs, right]: right = a correct citation marked supported, or a wrong one caught."""
    rows: dict[str, list[int]] = {}
    for pair, (supported, _) in zip(pairs, got):
        key = ("correct: " if pair["supported"] else "wrong: ") + pair["kind"]
        row = rows.setdefault(key, [0, 0])
        row[0] += 1
        row[1] += supported == pair["supported"]
    return dict(sorted(rows.items(), key=lambda kv: (not kv[0].startswith("correct"), kv[0])))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=Path, default=PAIRS)
    parser.add_argument("--before", type=Path, help="a checkout of the code to compare with (e.g. /work/before)")
    parser.add_argument("--show", action="store_true", help="list every pair judged wrongly, with the reason")
    parser.add_argument("--verdicts", action="store_true", help=argparse.SUPPRESS)  # internal: JSON for --before
    args = parser.parse_args()
    pairs = load(args.pairs)
    if args.verdicts:
        print(json.dumps(both_verdicts(pairs)))
        return

    after, after_twins = both_verdicts(pairs)
    old, old_twins = before(args.pairs, args.before) if args.before else (None, None)
    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores; {len(pairs)} pairs from {args.pairs.name}")
    table(pairs, old, after)
    paired = [p for p, _ in twins(pairs)]
    print(f"\nwith the passage of the same sentence's other pair also given ({len(paired)} pairs):")
    table(paired, old_twins, after_twins)
    if args.show:
        show(pairs, old, after)
        show(paired, old_twins, after_twins, " (both passages given)")


def table(pairs: list[dict], old: list[tuple[bool, str]] | None, after: list[tuple[bool, str]]) -> None:
    columns = ["before", "after"] if old else ["after"]
    header = f"| kind of pair | pairs | " + " | ".join(f"right, {c}" for c in columns) + " |"
    print(header)
    print("|" + "---|" * (2 + len(columns)))
    tallies = [tally(pairs, got) for got in ([old, after] if old else [after])]
    for kind in tallies[-1]:
        cells = " | ".join(str(t[kind][1]) for t in tallies)
        print(f"| {kind} | {tallies[-1][kind][0]} | {cells} |")
    for label, want in (("correct citations marked supported", True), ("wrong citations caught", False)):
        n = sum(p["supported"] == want for p in pairs)
        cells = " | ".join(
            f"{sum(p['supported'] == want and s == want for p, (s, _) in zip(pairs, got))} "
            f"({100 * sum(p['supported'] == want and s == want for p, (s, _) in zip(pairs, got)) / n:.1f}%)"
            for got in ([old, after] if old else [after])
        )
        print(f"| **{label}** | {n} | {cells} |")


def show(pairs: list[dict], old: list[tuple[bool, str]] | None, after: list[tuple[bool, str]], how: str = "") -> None:
    for name, got in (("before", old), ("after", after)):
        if got is None:
            continue
        print(f"\n{name}: judged wrongly{how}")
        for pair, (supported, reason) in zip(pairs, got):
            if supported != pair["supported"]:
                what = "FLAGGED" if pair["supported"] else "PASSED"
                print(f"  {what} #{pair['id']} [{pair['kind']}] {pair['sentence']}\n      -> {reason}")


if __name__ == "__main__":
    main()
