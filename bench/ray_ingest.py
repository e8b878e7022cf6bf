"""Ingest throughput: local vs `--ray` with one and with two single-CPU workers, one run each.

usage: python bench/ray_ingest.py [PATH ...]   (default: the Python howto pages,
       /usr/share/doc/python3.11/html/_sources/howto, from `apt-get install python3.11-doc`)

Every run ingests the same files into a fresh index in this process (the library calls that
`rag ingest` and `rag ingest --ray local` make). Ray runs start a throwaway local cluster with as
many CPUs as workers. Printed per run:

- start: the cluster (Ray runs), then loading the model (local) or starting the workers (Ray);
- ingest: the whole run_ingest call, and chunks/s over it and over the steady part (without the
  worker start-up);
- Ray overhead: the share of the workers' time not spent loading, chunking and embedding, i.e.
  1 - worker busy seconds / (workers x steady seconds): scheduling, serialization of bytes and
  results, and the driver's own diffing and SQLite commits, which the workers wait on.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
# This file is named like nothing in the package, but keep its folder off the import path anyway.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

HOWTO = Path("/usr/share/doc/python3.11/html/_sources/howto")


def local_run(paths: list[Path]) -> dict:
    from ingest.chunk import ChunkSettings
    from ingest.pipeline import run_ingest
    from rag.embedding.embedder import Embedder
    from rag.storage.store import Store

    started = time.perf_counter()
    embedder = Embedder("all-MiniLM-L6-v2")
    embedder.dim  # noqa: B018  (load the model outside the timed ingest)
    start = time.perf_counter() - started
    store = Store.open(Path(tempfile.mkdtemp(prefix="rag-bench-local-")) / "default", create=True)
    began = time.perf_counter()
    report = run_ingest(paths, store, embedder, ChunkSettings())
    seconds = time.perf_counter() - began
    store.close()
    return {"run": "local (2 torch threads)", "cluster": 0.0, "start": start, "ingest": seconds,
            "steady": seconds, "chunks": report.chunks, "failed": report.failed, "busy": None, "workers": 0}


def ray_run(paths: list[Path], workers: int) -> dict:
    from ingest.chunk import ChunkSettings
    from ingest.distributed import RayReader, WorkerSpec
    from ingest.pipeline import run_ingest
    from rag import __version__
    from rag.embedding.embedder import Embedder
    from rag.storage.store import Store

    embedder = Embedder("all-MiniLM-L6-v2")  # the driver's: only its id is read, the model never loads here
    spec = WorkerSpec(embedder.id, "torch-fp32", __version__, ChunkSettings())
    began = time.perf_counter()
    reader = RayReader.connect("local", spec, workers=workers)
    cluster = time.perf_counter() - began
    store = Store.open(Path(tempfile.mkdtemp(prefix=f"rag-bench-ray{workers}-")) / "default", create=True)
    try:
        began = time.perf_counter()
        report = run_ingest(paths, store, embedder, ChunkSettings(), reader=reader)
        seconds = time.perf_counter() - began
    finally:
        reader.close()
        store.close()
    stats = reader.stats
    return {"run": f"--ray, {workers} x 1-CPU worker", "cluster": cluster, "start": stats.start_seconds,
            "ingest": seconds, "steady": seconds - stats.start_seconds, "chunks": report.chunks,
            "failed": report.failed, "busy": stats.busy_seconds, "workers": stats.workers}


def main() -> None:
    paths = [Path(p) for p in sys.argv[1:]] or [HOWTO]
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        sys.exit(f"no such path: {', '.join(missing)} (the howto pages: apt-get install python3.11-doc)")
    print(f"corpus: {', '.join(map(str, paths))}; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores",
          flush=True)
    runs = [local_run(paths)]
    for workers in (1, 2):
        runs.append(ray_run(paths, workers))
        print(f"done: {runs[-1]['run']}", flush=True)
    print(f"\n{'run':<28} {'cluster s':>9} {'start s':>8} {'ingest s':>9} {'chunks':>7} {'chunks/s':>9} "
          f"{'steady/s':>9} {'busy s':>7} {'Ray overhead':>13}")
    for r in runs:
        overhead = "-" if r["busy"] is None else f"{1 - r['busy'] / (r['workers'] * r['steady']):.1%}"
        busy = "-" if r["busy"] is None else f"{r['busy']:.1f}"
        print(f"{r['run']:<28} {r['cluster']:>9.1f} {r['start']:>8.1f} {r['ingest']:>9.1f} {r['chunks']:>7} "
              f"{r['chunks'] / r['ingest']:>9.1f} {r['chunks'] / r['steady']:>9.1f} {busy:>7} {overhead:>13}")
    print(f"load average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
