"""Freshness: how fast `rag watch` makes a save searchable, how it takes a burst, what it costs idle,
and what a rename, a move, a copy and a one-paragraph edit cost to re-index.

usage: python bench/watch.py CORPUS_FOLDER LONG_DOCUMENT [--work DIR] [--edits 20] [--burst 1000]
                             [--idle 60] [--before /path/to/old/checkout]

- save to searchable: `rag watch --json` runs in a subprocess over a copy of CORPUS_FOLDER; this
  process appends a sentence with a fresh token to one file, then polls a keyword search (its own
  Index, as another reader would) until a passage holds the token; p50/p95 over --edits saves.
- burst: --burst new files written at once into the watched folder; seconds until the last is
  searchable, and how many ingests the watcher made for them (from its JSON lines).
- idle CPU: the watcher's user+system CPU seconds (from /proc) over --idle seconds with no change.
- re-embedding: `rag ingest --json` of a folder holding LONG_DOCUMENT, then of the same folder
  after renaming it, moving it into a subfolder, copying it, and editing one paragraph; chunks
  embedded each time (chunks minus reused), with this checkout and, with --before, an older one
  (PYTHONPATH), which reports every chunk it writes as embedded.
Prints the machine's load beside each table. Never part of the test suite.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
sys.path.insert(0, str(HERE.parent))

RAG = Path(sys.executable).parent / "rag"


def load() -> str:
    return "load " + " ".join(f"{x:.2f}" for x in os.getloadavg())


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))]


def env_for(pythonpath: Path | None = None) -> dict:
    env = dict(os.environ, HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    if pythonpath:
        env["PYTHONPATH"] = str(pythonpath)
    return env


class WatchProcess:
    """`rag watch --json` in a subprocess; its JSON lines collected on a thread."""

    def __init__(self, folder: Path, index_dir: Path):
        self.process = subprocess.Popen([str(RAG), "watch", str(folder), "--index-dir", str(index_dir), "--json"],
                                        env=env_for(HERE.parent), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                        text=True)
        self.events: list[dict] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self.events.append(json.loads(line))

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(120)


def wait_searchable(index, token: str, timeout: float = 600) -> float:
    started = time.perf_counter()
    while time.perf_counter() - started < timeout:
        hits = index.search(token, top_k=1, mode="keyword").hits
        if hits and token in hits[0].text:
            return time.perf_counter() - started
        time.sleep(0.02)
    raise SystemExit(f"{token} never became searchable")


def freshness(corpus: Path, work: Path, edits: int, burst: int, idle: float) -> None:
    from rag import Index, load_settings

    folder = work / "watched"
    shutil.copytree(corpus, folder)
    index_dir = work / "indexes"
    watcher = WatchProcess(folder, index_dir)
    while not any(e.get("event") == "added" for e in watcher.events):
        time.sleep(0.2)
    quiet = len(watcher.events)
    while True:  # the first ingest is over once its lines stop coming (its calibration included)
        time.sleep(5)
        if len(watcher.events) == quiet:
            break
        quiet = len(watcher.events)
    settings = load_settings({"index_dir": index_dir})
    target = sorted(folder.rglob("*.txt"))[0] if list(folder.rglob("*.txt")) else sorted(
        p for p in folder.rglob("*") if p.is_file())[0]
    with Index.open(settings) as index:
        index.search("warm up", mode="keyword")
        latencies = []
        for n in range(edits):
            token = f"zqfresh{n}x{int(time.time())}"
            started = time.perf_counter()
            with target.open("a", encoding="utf-8") as out:
                out.write(f"\n\nA note written for the freshness bench carries the token {token}.\n")
            latencies.append(time.perf_counter() - started + wait_searchable(index, token))
        print(f"\nsave to searchable, one edited file ({target.name}), {edits} saves; {load()}")
        print(f"p50 {statistics.median(latencies):.2f} s, p95 {percentile(latencies, 95):.2f} s, "
              f"max {max(latencies):.2f} s")

        seen_before = len(watcher.events)
        started = time.perf_counter()
        burst_dir = folder / "burst"
        burst_dir.mkdir()
        for n in range(burst):
            (burst_dir / f"note{n:04}.txt").write_text(
                f"Burst note {n}: the token zqburst{n:04}y is in this file only.\n", encoding="utf-8")
        wait_searchable(index, f"zqburst{burst - 1:04}y")
        while sum(1 for e in watcher.events[seen_before:] if e.get("event") == "added") < burst:
            time.sleep(0.1)
        seconds = time.perf_counter() - started
        added = [e for e in watcher.events[seen_before:] if e.get("event") == "added"]
        runs = [e for e in watcher.events[seen_before:] if e.get("event") == "ingest" and e["added"]]
        print(f"\nburst of {burst} new files; {load()}")
        print(f"all searchable after {seconds:.1f} s; {len(added)} files added in {len(runs)} ingest(s) "
              f"of {', '.join(str(r['added']) for r in runs)} files")

    cpu = watcher.cpu_seconds()
    time.sleep(idle)
    idle_cpu = watcher.cpu_seconds() - cpu
    print(f"\nidle watcher over {idle:.0f} s: {idle_cpu:.2f} CPU s ({idle_cpu / idle:.2%} of one core); {load()}")
    watcher.stop()


def reembedding(document: Path, work: Path, pythonpath: Path, label: str) -> dict[str, int]:
    folder = work / f"long-{label}"
    index_dir = work / f"indexes-{label}"
    folder.mkdir(parents=True)
    shutil.copy(document, folder / document.name)

    def ingest() -> dict:
        # `python -m rag`: an older checkout has its own entry point (rag.cli before the subpackages)
        # cwd outside any checkout: `-m` puts the working folder first on sys.path, before PYTHONPATH
        result = subprocess.run([sys.executable, "-m", "rag", "ingest", str(folder), "--index-dir", str(index_dir), "--json"],
                                env=env_for(pythonpath), capture_output=True, text=True, timeout=3600, cwd=work)
        if result.returncode:
            raise SystemExit(result.stderr)
        return json.loads(result.stdout)

    def embedded(report: dict) -> int:
        return report["chunks"] - report.get("reused", 0)

    out = {"first ingest": embedded(ingest())}
    renamed = folder / ("renamed-" + document.name)
    os.replace(folder / document.name, renamed)
    out["rename"] = embedded(ingest())
    (folder / "archive").mkdir()
    moved = folder / "archive" / renamed.name
    os.replace(renamed, moved)
    out["move into a subfolder"] = embedded(ingest())
    shutil.copy(moved, folder / renamed.name)
    out["copy"] = embedded(ingest())
    text = moved.read_text(encoding="utf-8", errors="replace")
    middle = text.find("\n\n", len(text) // 2)
    moved.write_text(text[:middle] + "\n\nOne new paragraph, added in the middle, about nothing in particular."
                     + text[middle:], encoding="utf-8")
    out["one-paragraph edit"] = embedded(ingest())
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("corpus", type=Path)
    parser.add_argument("long_document", type=Path)
    parser.add_argument("--work", type=Path)
    parser.add_argument("--edits", type=int, default=20)
    parser.add_argument("--burst", type=int, default=1000)
    parser.add_argument("--idle", type=float, default=60)
    parser.add_argument("--before", type=Path, help="an older checkout to compare re-embedding with")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="rag-watch-bench-"))
    print(f"{os.cpu_count()} cores; {load()}")
    rows = {"this checkout": reembedding(args.long_document, work, HERE.parent, "after")}
    if args.before:
        rows = {"before": reembedding(args.long_document, work, args.before, "before"), **rows}
    print(f"\nchunks embedded, {args.long_document.name}; {load()}")
    steps = list(next(iter(rows.values())))
    print(f"{'step':<24}" + "".join(f"{name:>16}" for name in rows))
    for step in steps:
        print(f"{step:<24}" + "".join(f"{rows[name][step]:>16}" for name in rows))
    freshness(args.corpus, work, args.edits, args.burst, args.idle)


if __name__ == "__main__":
    main()
