"""Throughput and latency of `rag serve` on loopback: search and extractive ask at 1, 4 and 20 clients.

Starts the installed `rag serve` as a subprocess on a free 127.0.0.1 port (no LLM configured, so
`ask` is the extractive answer: retrieval plus sentence picking, no network), then for each kind
of request and each client count runs --requests requests per client level from that many threads
(each its own HTTP connection), after a few warm-up requests. Prints requests/s, p50 and p95
latency, and errors (any non-200 answer) per row, and the machine's load average.

The index: --index-dir/--index name an existing one; by default the demo corpus (sample-docs/) is
ingested into a temporary folder first. Run by hand, never from the tests:

    HF_HUB_OFFLINE=1 nice .venv/bin/python bench/serve.py
    .venv/bin/python bench/serve.py --index-dir /tmp/idx --clients 1,4,20 --requests 200
    .venv/bin/python bench/serve.py --index-dir /tmp/idx --index git --before /work/old-checkout
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RAG = Path(sys.executable).parent / "rag"
QUESTIONS = [
    "How many dimensions do all-MiniLM-L6-v2 embeddings have?",
    "What is reciprocal rank fusion?",
    "How long should a chunk be?",
    "When is an HNSW index worth it?",
    "What does BM25 measure?",
    "Why overlap neighbouring chunks?",
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def server_env() -> dict[str, str]:
    # extractive answers: no LLM, whatever the shell says
    drop = ("OPENAI_API_KEY", "OPENAI_BASE_URL", "RAG_API_KEY")
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env.setdefault("HF_HUB_OFFLINE", "1")
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    return env


def start_server(index_dir: Path, index: str, port: int, checkout: Path | None = None) -> subprocess.Popen:
    """The installed `rag serve`, or with `checkout` that folder's code (`python -m rag` on its PYTHONPATH)."""
    import httpx2 as httpx

    command = [str(RAG)] if checkout is None else [sys.executable, "-m", "rag"]
    env = server_env() | ({"PYTHONPATH": str(checkout)} if checkout is not None else {})
    proc = subprocess.Popen([*command, "serve", "--port", str(port), "--index-dir", str(index_dir), "--index", index],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"rag serve exited with {proc.returncode}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=5).status_code == 200:
                return proc
        except httpx.TransportError:
            time.sleep(0.2)
    proc.kill()
    sys.exit("rag serve did not start within 300 s")


def body(kind: str, question: str, index: str) -> tuple[str, dict]:
    if kind == "search":
        return "/v1/search", {"query": question, "k": 5, "index": index}
    return "/v1/chat/completions", {"model": index, "messages": [{"role": "user", "content": question}]}


def run_level(url: str, kind: str, clients: int, requests: int, index: str) -> dict:
    import httpx2 as httpx

    latencies: list[float] = []
    errors = 0
    lock = threading.Lock()
    counter = iter(range(requests))

    def worker() -> None:
        nonlocal errors
        with httpx.Client(base_url=url, timeout=300) as http:
            while True:
                with lock:
                    n = next(counter, None)
                if n is None:
                    return
                path, payload = body(kind, QUESTIONS[n % len(QUESTIONS)], index)
                started = time.perf_counter()
                try:
                    ok = http.post(path, json=payload).status_code == 200
                except httpx.HTTPError:
                    ok = False
                elapsed = time.perf_counter() - started
                with lock:
                    latencies.append(elapsed)
                    errors += not ok

    threads = [threading.Thread(target=worker) for _ in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    latencies.sort()
    return {"kind": kind, "clients": clients, "requests": len(latencies), "errors": errors,
            "rps": len(latencies) / wall, "p50": statistics.median(latencies) * 1000,
            "p95": latencies[min(len(latencies) - 1, int(0.95 * len(latencies)))] * 1000}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--index-dir", type=Path, help="an existing index folder (default: ingest sample-docs/ first)")
    parser.add_argument("--index", default="default")
    parser.add_argument("--clients", default="1,4,20", help="comma-separated client counts")
    parser.add_argument("--requests", type=int, default=100, help="requests per kind and client count")
    parser.add_argument("--before", type=Path, help="an older checkout, served beside this one and measured in turn")
    args = parser.parse_args()

    temp = None
    index_dir = args.index_dir
    if index_dir is None:
        temp = Path(tempfile.mkdtemp(prefix="rag-bench-serve-"))
        index_dir = temp / "indexes"
        started = time.perf_counter()
        subprocess.run([str(RAG), "ingest", str(ROOT / "sample-docs"), "--index-dir", str(index_dir)], env=server_env(),
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        print(f"ingested sample-docs/ in {time.perf_counter() - started:.1f} s")
    checkouts = {"now": None} | ({"before": args.before.resolve()} if args.before else {})
    servers, urls = [], {}
    try:
        for label, checkout in checkouts.items():
            port = free_port()
            urls[label] = f"http://127.0.0.1:{port}"
            servers.append(start_server(index_dir, args.index, port, checkout))
        import httpx2 as httpx

        for url in urls.values():
            for kind in ("search", "ask"):  # warm-up: page cache, first-query paths
                for question in QUESTIONS:
                    path, payload = body(kind, question, args.index)
                    httpx.post(url + path, json=payload, timeout=300).raise_for_status()
        print(f"rag serve on {', '.join(f'{k}: {v}' for k, v in urls.items())}, index {index_dir / args.index}; "
              f"load average before: {os.getloadavg()}")
        if args.before:
            print(f"before = {args.before.resolve()}; each row runs now, then before, one after the other")
        print(f"{'server':<7} {'kind':<7} {'clients':>7} {'requests':>8} {'errors':>6} {'req/s':>8} {'p50 ms':>8} "
              f"{'p95 ms':>8}")
        for kind in ("search", "ask"):
            for clients in (int(c) for c in args.clients.split(",")):
                for label, url in urls.items():
                    row = run_level(url, kind, clients, args.requests, args.index)
                    print(f"{label:<7} {row['kind']:<7} {row['clients']:>7} {row['requests']:>8} {row['errors']:>6} "
                          f"{row['rps']:>8.1f} {row['p50']:>8.1f} {row['p95']:>8.1f}", flush=True)
        print(f"load average after: {os.getloadavg()}")
    finally:
        for proc in servers:
            proc.terminate()
            proc.wait(timeout=30)
        if temp is not None:
            shutil.rmtree(temp, ignore_errors=True)


if __name__ == "__main__":
    main()
