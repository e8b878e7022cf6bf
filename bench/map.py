"""Which 2-D projection `rag map` uses: time and neighbourhood preservation of each, per index.

    python bench/map.py INDEX_DIR [INDEX_DIR ...] [--sample 20000] [--runs 1]

    python bench/map.py --grow 20000 --to DIR INDEX_DIR [INDEX_DIR ...]

`--grow` writes an index of that many chunks for timing when no real index that big is at hand:
the chunks of the given indexes (real text, real vectors), then copies of them whose vectors are
moved by random noise of norm 0.3 (cosine about 0.96 to the original), each copy a new document.
Its neighbourhood figures mean little (a chunk's nearest neighbours are its own copies); its
times are what a real index of that size costs.

Each projection runs in a fresh process, so its time includes importing it and (UMAP, via
numba) compiling it, as a user's `rag map` pays. "kept" is rag.map.projection.neighbourhood_preservation:
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

METHODS = ("pca", "tsne", "tsne-sklearn", "umap")  # umap needs umap-learn installed


def umap_points(vectors):
    """UMAP (umap-learn, not a dependency of rag: `pip install umap-learn` to run this row)."""
    import numba
    import umap
    from threadpoolctl import threadpool_limits

    numba.set_num_threads(1)  # one thread, as rag.map.projection.fit runs the others
    with threadpool_limits(limits=1):
        return umap.UMAP(n_components=2, n_neighbors=min(15, len(vectors) - 1), min_dist=0.1, metric="cosine",
                         random_state=0, n_jobs=1, low_memory=True).fit_transform(vectors)


def landmark_points(vectors, projection: str, landmarks: int):
    """Fit a random subset, then place every other point from its neighbours among them."""
    import numpy as np

    from rag.map.projection import fit

    chosen = np.sort(np.random.default_rng(0).choice(len(vectors), size=min(landmarks, len(vectors)), replace=False))
    layout = fit(vectors[chosen], projection)
    points = np.empty((len(vectors), 2), dtype=np.float32)
    points[chosen] = layout.points
    rest = np.setdiff1d(np.arange(len(vectors)), chosen)
    for start in range(0, len(rest), 2048):
        points[rest[start:start + 2048]] = layout.place(vectors[rest[start:start + 2048]])
    return points


def one(index_dir: Path, method: str, sample: int) -> dict:
    """Runs in the child: sample as `rag map` does, fit, measure."""
    started = time.perf_counter()
    from rag.map.build import _read_points, _sample
    from rag.map.projection import fit, neighbourhood_preservation
    from rag.storage.store import Store

    store = Store.open(index_dir)
    chosen, _ = _sample(store, sample, [], 0)
    points = _read_points(store, chosen, int(store.get_meta("dim")))
    read = time.perf_counter() - started
    mark, cpu = time.perf_counter(), time.process_time()
    if method == "tsne-sklearn":
        from sklearn.manifold import TSNE
        from threadpoolctl import threadpool_limits

        with threadpool_limits(limits=1):  # as rag.map.projection.fit runs the others
            xy = TSNE(n_components=2, metric="cosine", init="pca", random_state=0,
                      perplexity=min(30.0, (len(points.ids) - 1) / 3.0)).fit_transform(points.vectors)
    elif method == "umap":
        xy = umap_points(points.vectors)
    elif "@" in method:  # e.g. tsne@5000: fit 5000 landmarks, place the rest by their neighbours
        name, count = method.split("@")
        xy = landmark_points(points.vectors, name, int(count))
    else:
        xy = fit(points.vectors, method).points
    seconds, cpu = time.perf_counter() - mark, time.process_time() - cpu
    return {"chunks": len(points.ids), "read_s": round(read, 1), "fit_s": round(seconds, 1), "cpu_s": round(cpu, 1),
            "kept": round(neighbourhood_preservation(points.vectors, xy), 3)}


def grow(sources: list[Path], target: Path, chunks: int, noise: float = 0.3) -> None:
    import numpy as np

    from rag.storage.store import Store
    from rag.types import Chunk, Document

    out = Store.open(target, create=True)
    rng = np.random.default_rng(0)
    rows = []
    for source in sources:
        store = Store.open(source)
        dim = int(store.get_meta("dim"))
        vectors = dict(zip(*[np.concatenate(part) for part in zip(*store.iter_embeddings(dim))]))
        for doc in store.documents():
            ids = [r[0] for r in store.conn.execute("SELECT id FROM chunks WHERE document_id = ? ORDER BY ordinal", (doc.id,))]
            stored = store.chunks(ids)
            rows.append((source.name + "/" + doc.path.lstrip("/"), doc.title,
                         [stored[i] for i in ids], np.stack([vectors[i] for i in ids])))
        store.close()
    with out.transaction():
        out.set_meta("embed_model", "sentence-transformers/all-MiniLM-L6-v2")
        out.set_meta("dim", str(dim))
        total, copy = 0, 0
        while total < chunks:
            for path, title, stored, vectors in rows:
                if total >= chunks:
                    break
                take = min(len(stored), chunks - total)
                if copy:
                    jitter = rng.normal(size=vectors.shape).astype(np.float32)
                    vectors = vectors + noise * jitter / np.linalg.norm(jitter, axis=1, keepdims=True)
                    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
                name = f"/grown/copy{copy}/{path}"
                doc = Document(Path(name), title, [], f"{copy}:{path}", 0.0, 0)
                pieces = [Chunk(i, c.text, c.heading, c.page, 0, len(c.text), c.text)
                          for i, c in enumerate(stored[:take])]
                out.put_document(doc, pieces, vectors[:take])
                total += take
            copy += 1
    print(f"{target}: {out.chunk_count():,} chunks, {len(out.documents()):,} documents")
    out.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("indexes", nargs="+", type=Path)
    parser.add_argument("--sample", type=int, default=20_000)
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--grow", type=int, metavar="CHUNKS")
    parser.add_argument("--to", type=Path)
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.grow:
        grow(args.indexes, args.to, args.grow)
        return
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
