"""How long `rag chat` makes a user wait: until its prompt, and until the first answer is printed.

usage: python bench/chat_ready.py [--index-dir DIR --index NAME] [--question Q] [--runs 5]

Runs the installed `rag chat --no-llm` in a pseudo-terminal, as a user would, --runs times:
"ready" is the wall time from launch until the greeting line ("Type a question") is printed (the
model and the vector file are loaded before it); "answered" until the first answer's Sources
block has been printed. Without --index-dir the demo corpus (sample-docs/) is ingested into a temporary
index first. Prints median, min and max of each. Run by hand, never from the tests.
"""

from __future__ import annotations

import argparse
import os
import pty
import select
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
RAG = Path(sys.executable).parent / "rag"
ROOT = Path(__file__).resolve().parent.parent


def read_until(fd: int, marker: bytes, seen: bytearray, deadline: float, count: int = 1) -> float:
    """Read into `seen` until `marker` has appeared `count` times; the time it did."""
    while seen.count(marker) < count:
        left = deadline - time.perf_counter()
        if left <= 0:
            raise SystemExit(f"timed out waiting for {marker!r}; got:\n{seen.decode(errors='replace')}")
        ready, _, _ = select.select([fd], [], [], left)
        if ready:
            try:
                seen.extend(os.read(fd, 65536))
            except OSError as exc:
                raise SystemExit(f"rag chat ended early:\n{seen.decode(errors='replace')}") from exc
    return time.perf_counter()


def one_run(args, env) -> tuple[float, float]:
    main, child = pty.openpty()
    started = time.perf_counter()
    proc = subprocess.Popen([str(RAG), "chat", "--no-llm", "--index-dir", str(args.index_dir), "--index", args.index],
                            stdin=child, stdout=child, stderr=child, env=env, close_fds=True)
    os.close(child)
    seen = bytearray()
    try:
        ready = read_until(main, b"Type a question", seen, started + 120) - started
        os.write(main, args.question.encode() + b"\n")
        answered = read_until(main, b"Sources", seen, started + 240) - started
        read_until(main, b"you> ", seen, started + 240, count=2)  # the second prompt: the answer is all out
        os.write(main, b"\x04")
        end = time.perf_counter() + 30
        while proc.poll() is None and time.perf_counter() < end:  # keep draining, or it blocks writing
            if select.select([main], [], [], 0.1)[0]:
                try:
                    os.read(main, 65536)
                except OSError:
                    break
        proc.wait(timeout=5)
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(main)
    return ready, answered


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--index-dir", type=Path)
    parser.add_argument("--index", default="default")
    parser.add_argument("--question", default="How do I install rag?")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    env = dict(os.environ, XDG_STATE_HOME=tempfile.mkdtemp(prefix="rag-chat-state-"))
    if args.index_dir is None:
        args.index_dir = Path(tempfile.mkdtemp(prefix="rag-chat-bench-"))
        subprocess.run([str(RAG), "ingest", str(ROOT / "sample-docs"), "--index-dir", str(args.index_dir)], env=env,
                       check=True, capture_output=True)
    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores; index {args.index_dir / args.index}")
    runs = [one_run(args, env) for _ in range(args.runs)]
    for name, values in (("ready (greeting printed)", [r for r, _ in runs]),
                         ("first answer printed", [a for _, a in runs])):
        print(f"{name:<26} median {statistics.median(values):.2f} s  min {min(values):.2f}  max {max(values):.2f}  "
              f"(runs: {', '.join(f'{v:.2f}' for v in values)})")


if __name__ == "__main__":
    main()
