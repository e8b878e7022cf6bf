"""One large file through `rag ingest`: peak RSS, seconds to the first commit, chunks/s, and what a
kill -9 costs.

usage: python bench/large_file.py [--mb 100] [--seconds 600] [--kill-after 3] [--workdir DIR] [--rag RAG]

Writes a file of random words (a fixed vocabulary, seeded: the same file every run), then runs the
real `rag ingest FILE` in a subprocess and watches it from outside: its resident set (VmHWM from
/proc, the kernel's own peak) and the chunks committed (a read-only SQLite connection polled every
half second). Stops it after --seconds, or lets it finish. Prints peak RSS, seconds to the first
commit, committed chunks and chunks/s after the first commit.

With --kill-after N: the ingest is killed with SIGKILL as soon as N commits are visible, the
committed chunks are counted, and `rag ingest` runs again: it must carry on from there (the
document's committed chunks never drop, and the next commit adds to them). Prints how many chunks
the kill lost (at most one batch: what was being embedded) and how many were kept.

Run by hand with `nice`, never from the tests; note the load average beside the figures.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
RAG = Path(sys.executable).parent / "rag"
POLL = 0.5


def write_words(path: Path, megabytes: int, seed: int = 30) -> None:
    rng = random.Random(seed)
    vocabulary = ["".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(2, 10)))
                  for _ in range(20_000)]
    target = megabytes * 1_000_000
    with open(path, "w") as out:
        written = 0
        while written < target:
            line = " ".join(rng.choices(vocabulary, k=rng.randint(8, 20))) + (".\n" if rng.random() < 0.9 else ".\n\n")
            out.write(line)
            written += len(line)


def peak_rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def committed(db: Path) -> int:
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1) as conn:
            return conn.execute("SELECT COUNT(*) FROM chunks").fetchone()[0]
    except sqlite3.Error:
        return 0


def watch(rag: str, path: Path, index_dir: Path, seconds: float, kill_after: int | None) -> dict:
    db = index_dir / "default" / "rag.sqlite"
    started = time.perf_counter()
    proc = subprocess.Popen([rag, "ingest", str(path), "--index-dir", str(index_dir)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    peak, first_commit, counts, commits, last = 0.0, None, [], 0, committed(db)
    at_start = last
    while proc.poll() is None and time.perf_counter() - started < seconds:
        time.sleep(POLL)
        peak = max(peak, peak_rss_mb(proc.pid) or 0.0)
        now = committed(db)
        if now < last:
            raise SystemExit(f"committed chunks went down: {last} -> {now}")
        if now > last:
            commits += 1
            counts.append((time.perf_counter() - started, now))
            if first_commit is None:
                first_commit = time.perf_counter() - started
        last = now
        if kill_after is not None and commits >= kill_after:
            proc.send_signal(signal.SIGKILL)
            break
    finished = proc.poll() is not None and proc.returncode is not None and proc.returncode >= 0
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
    proc.wait()
    stderr = proc.stderr.read()
    rate = None
    if len(counts) >= 2:
        (t0, c0), (t1, c1) = counts[0], counts[-1]
        rate = (c1 - c0) / (t1 - t0) if t1 > t0 else None
    return {"peak_rss_mb": peak, "first_commit_s": first_commit, "committed": committed(db), "at_start": at_start,
            "chunks_per_s": rate, "seconds": time.perf_counter() - started, "finished": finished,
            "returncode": proc.returncode, "stderr_tail": stderr.strip().splitlines()[-2:]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mb", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=600)
    parser.add_argument("--kill-after", type=int, help="SIGKILL after this many commits, then ingest again")
    parser.add_argument("--workdir", type=Path, default=Path("bench-large-file"))
    parser.add_argument("--rag", default=str(RAG), help="the rag command to run")
    args = parser.parse_args()

    args.workdir.mkdir(parents=True, exist_ok=True)
    path = args.workdir / f"words-{args.mb}mb.txt"
    if not path.exists():
        write_words(path, args.mb)
    index_dir = args.workdir / "indexes"
    if index_dir.exists():
        import shutil

        shutil.rmtree(index_dir)
    print(f"file: {path} ({path.stat().st_size / 1e6:.0f} MB); load {os.getloadavg()[0]:.1f}", flush=True)

    first = watch(args.rag, path, index_dir, args.seconds, args.kill_after)
    print(f"peak RSS {first['peak_rss_mb']:.0f} MB; first commit after "
          f"{first['first_commit_s'] if first['first_commit_s'] is None else round(first['first_commit_s'], 1)} s; "
          f"{first['committed']:,} chunks committed in {first['seconds']:.0f} s"
          + (f"; {first['chunks_per_s']:.1f} chunks/s after the first commit" if first["chunks_per_s"] else "")
          + ("; finished" if first["finished"] else "; stopped") + f" (exit {first['returncode']})", flush=True)
    if first["stderr_tail"]:
        print("  stderr: " + " | ".join(first["stderr_tail"]))

    if args.kill_after is not None:
        kept = first["committed"]
        again = watch(args.rag, path, index_dir, args.seconds, kill_after=1)  # up to its first commit
        print(f"after kill -9: {kept:,} chunks kept; the next ingest started from {again['at_start']:,} and its "
              f"first commit took the document to {again['committed']:,} "
              f"(first commit after {again['first_commit_s'] and round(again['first_commit_s'], 1)} s)")
    print(f"load {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
