"""Which 2-D projection `rag map` uses: time and neighbourhood preservation of each, per index.

    python bench/map.py INDEX_DIR [INDEX_DIR ...] [--sample 20000] [--runs 1]

Each projection runs in a fresh process, so its time includes importing it and (UMAP, via
numba) compiling it, as a user's `rag map` pays. "kept" is rag.projection.neighbourhood_preservation:
the share of each point's 10 nearest neighbours in 384-d still among its 10 nearest in 2-D
(1000 probe points). CPU seconds are printed next to wall seconds because on a shared machine
the wall time mostly measures the other users. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

METHODS = ("pca", "tsne", "tsne-sklearn", "umap")


def one(index_dir: Path, method: str, sample: int) -> dict:
    """Runs in the child: sample as `rag map` does, fit, measure."""
    started = time.perf_counter()
    from rag.map import _read_points, _sample
    from rag.projection import fit, neighbourhood_preservation
    from rag.store import Store

    store = Store.open(index_dir)
    chosen, _ = _sample(store, sample, [], 0)
    points = _read_points(store, chosen, int(store.get_meta("dim")))
    read = time.perf_counter() - started
    mark, cpu = time.perf_counter(), time.process_time()
    if method == "tsne-sklearn":
        from sklearn.manifold import TSNE
        from threadpoolctl import threadpool_limits

        with threadpool_limits(limits=1):  # as rag.projection.fit runs the others
            xy = TSNE(n_components=2, metric="cosine", init="pca", random_state=0,
                      perplexity=min(30.0, (len(points.ids) - 1) / 3.0)).fit_transform(points.vectors)
    else:
        xy = fit(points.vectors, method).points
    seconds, cpu = time.perf_counter() - mark, time.process_time() - cpu
    return {"chunks": len(points.ids), "read_s": round(read, 1), "fit_s": round(seconds, 1), "cpu_s": round(cpu, 1),
            "kept": round(neighbourhood_preservation(points.vectors, xy), 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("indexes", nargs="+", type=Path)
    parser.add_argument("--sample", type=int, default=20_000)
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one(args.indexes[0], args.one, args.sample)))
        return
    print("| index | chunks | projection | fit s (wall) | fit s (CPU) | kept@10 | load avg |")
    print("| --- | ---: | --- | ---: | ---: | ---: | ---: |")
    for index in args.indexes:
        for method in args.methods.split(","):
            child = subprocess.run([sys.executable, __file__, str(index), "--one", method, "--sample", str(args.sample)],
                                   capture_output=True, text=True, env=os.environ)
            if child.returncode:
                print(f"| {index.name} | | {method} | failed: {child.stderr.strip().splitlines()[-1]} | | | |")
                continue
            row = json.loads(child.stdout.strip().splitlines()[-1])
            print(f"| {index.name} | {row['chunks']:,} | {method} | {row['fit_s']} | {row['cpu_s']} | {row['kept']:.3f} | "
                  f"{os.getloadavg()[0]:.1f} |", flush=True)


if __name__ == "__main__":
    main()
