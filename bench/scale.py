"""How FAISS search scales with the number of chunks: flat (exact) against HNSW and IVF.

Measures, for each size (default 10k, 100k and 1M chunks) and each index, as rag.storage.vectors would
use it (IndexIDMap2 around the index, inner product, vectors added in batches of 8192):

- build time (for IVF including the k-means training),
- memory: the serialized index size in bytes and the process RSS growth while building it,
- search latency one query at a time (p50/p95 over --queries questions, k = --k, default 50:
  what one dense leg of a hybrid search fetches, 10 x top-k), with --threads OpenMP threads
  (default 2) and again with 1 thread: a single query gains little from threads, and on a busy
  machine every parallel region waits for the scheduler (whole milliseconds per search),
- recall@10 of each approximate index against the exact top 10 of the flat index.

Indexes: flat (IndexFlatIP), HNSW (IndexHNSWFlat M=32, efConstruction 40, --ef-search 64,128),
IVF (IndexIVFFlat, nlist = 4 * sqrt(n), --nprobe 16,32; k-means on 40 points per list, 10
iterations, so that training at 1M takes minutes rather than most of an hour).

The vectors are synthetic but clustered like text embeddings, so that approximate recall means
something (uniform random vectors have no near neighbours, and every index looks equally bad):
384-d, L2-normalised, drawn from a mixture of --clusters gaussians (default 1000) of uneven
weight (log-normal), each around a unit centroid with a rank-32 spread of norm ~0.9 plus
isotropic noise of norm ~0.35. Queries are fresh draws from the same mixture. The "data" lines
show the mean cosine of a query's 1st and 10th nearest chunk (random pairs are ~0).
Which approximate index wins depends on that shape: a few large clusters suit IVF (its lists
match them), many small ones suit HNSW; run both --clusters 1000 and --clusters 10000 before
trusting a recall figure, and confirm on real embeddings.

Run by hand, never from the tests (11-17 min for the default sizes on 2 cores, about half of it
building HNSW at 1M; --skip-hnsw-above 100000 saves that):

    HF_HUB_OFFLINE=1 .venv/bin/python bench/scale.py
    .venv/bin/python bench/scale.py --sizes 10000,100000 --queries 100
    .venv/bin/python bench/scale.py --sizes 10000,100000,1000000 --skip-hnsw-above 100000
    .venv/bin/python bench/scale.py --sizes 300000 --clusters 10000 --ef-search 64,128,256 --nprobe 16,32,64

It ends with a recommendation: the size at which flat search passes 50 ms p50 (with --threads
threads and with one), and the approximate index with recall@10 >= 0.95 that searches fastest
at the largest size measured.

--edit SIZES measures instead what editing one file costs rag.storage.vectors, in a real Store (SQLite in
a temporary folder, --workdir): the store is filled with SIZE synthetic chunks from the same
mixture, in documents of 20 chunks, by executemany in one transaction (chunk text left empty: no
keyword search here), then, in one run:

- full rebuild: `refresh_file` with no vector file, what every change cost before deltas (above
  FLAT_LIMIT it trains the IVF index),
- incremental: one transaction replaces the document holding the highest chunk ids (20 chunks out,
  20 in; SQLite hands the same ids out again), then `refresh_file` writes the delta,
- reader open: `open_vectors`, loading the base and applying the delta,
- compaction: a second such edit folded into a rewritten base (`compact_fraction=0`), what
  rewriting the whole file would cost on every edit.

    nice .venv/bin/python bench/scale.py --edit 100000,1000000
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import math
import os
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

DIM = 384
CLUSTERS = 1000
CLUSTER_RANK = 32
CLUSTER_SPREAD = 0.9  # norm of the rank-32 part of a point's offset from its centroid
NOISE = 0.35  # norm of the isotropic part
ADD_BATCH = 8192  # what rag.storage.store.iter_embeddings yields while rag.storage.vectors.build adds
RECALL_AT = 10
FLAT_TARGET_MS = 50.0
RECALL_TARGET = 0.95
HNSW_M = 32
HNSW_EF_SEARCH = (64, 128)
IVF_NPROBE = (16, 32)
IVF_TRAIN_PER_LIST = 40  # faiss warns below 39
IVF_TRAIN_ITERATIONS = 10
WARMUP = 5
EDIT_CHUNKS = 20  # chunks per synthetic document: the file that one edit replaces
FILL_BATCH = 50_000  # vectors drawn and inserted per executemany


class Mixture:
    """A fixed mixture of anisotropic gaussians on the unit sphere; sample() draws from it."""

    def __init__(self, seed: int, clusters: int = CLUSTERS):
        rng = np.random.default_rng(seed)
        self.centroids = _normalised(rng.standard_normal((clusters, DIM), dtype=np.float32))
        # each row of z @ basis has per-dimension variance 1/DIM, so norm ~1 before scaling
        self.bases = rng.standard_normal((clusters, CLUSTER_RANK, DIM), dtype=np.float32) / np.float32(
            math.sqrt(CLUSTER_RANK * DIM)
        )
        weights = rng.lognormal(0.0, 1.0, clusters)
        self.weights = weights / weights.sum()

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        out = np.empty((n, DIM), dtype=np.float32)
        # shuffled, so that no index sees the data cluster by cluster
        slots = rng.permutation(n)
        start = 0
        for cluster, count in enumerate(rng.multinomial(n, self.weights)):
            if count == 0:
                continue
            z = rng.standard_normal((count, CLUSTER_RANK), dtype=np.float32)
            noise = rng.standard_normal((count, DIM), dtype=np.float32)
            points = (
                self.centroids[cluster]
                + np.float32(CLUSTER_SPREAD) * (z @ self.bases[cluster])
                + np.float32(NOISE / math.sqrt(DIM)) * noise
            )
            out[slots[start : start + count]] = _normalised(points)
            start += count
        return out


def _normalised(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def rss_bytes() -> int:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def release_memory() -> None:
    """Give freed heap back to the OS, so that the next RSS delta measures only the next index."""
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


@dataclass
class Built:
    name: str
    index: object  # the IndexIDMap2 that is searched
    inner: object  # the wrapped index, where efSearch / nprobe are set
    seconds: float
    nbytes: int
    rss_delta: int


@dataclass
class Row:
    size: int
    name: str
    params: str
    build_s: float | None
    nbytes: int | None
    rss_delta: int | None
    p50_ms: float
    p95_ms: float
    recall: float | None
    p50_one_ms: float | None = None  # the same search with one OpenMP thread
    p95_one_ms: float | None = None


def build(name: str, make_inner, vectors: np.ndarray, train=None) -> Built:
    import faiss

    release_memory()
    before = rss_bytes()
    started = time.perf_counter()
    inner = make_inner()
    if train is not None:
        train(inner)
    index = faiss.IndexIDMap2(inner)
    for start in range(0, len(vectors), ADD_BATCH):
        batch = vectors[start : start + ADD_BATCH]
        index.add_with_ids(batch, np.arange(start, start + len(batch), dtype=np.int64))
    seconds = time.perf_counter() - started
    rss_delta = rss_bytes() - before
    nbytes = int(faiss.serialize_index(index).size)
    return Built(name, index, inner, seconds, nbytes, rss_delta)


def build_flat(vectors: np.ndarray) -> Built:
    import faiss

    return build("flat", lambda: faiss.IndexFlatIP(DIM), vectors)


def build_hnsw(vectors: np.ndarray) -> Built:
    import faiss

    return build("hnsw", lambda: faiss.IndexHNSWFlat(DIM, HNSW_M, faiss.METRIC_INNER_PRODUCT), vectors)


def ivf_lists(n: int) -> int:
    return max(1, round(4 * math.sqrt(n)))


def build_ivf(vectors: np.ndarray, rng: np.random.Generator) -> Built:
    import faiss

    nlist = ivf_lists(len(vectors))

    def make():
        quantizer = faiss.IndexFlatIP(DIM)
        ivf = faiss.IndexIVFFlat(quantizer, DIM, nlist, faiss.METRIC_INNER_PRODUCT)
        ivf.cp.niter = IVF_TRAIN_ITERATIONS
        ivf.cp.min_points_per_centroid = 1  # small sizes train on fewer points; no warning
        return ivf

    def train(ivf):
        count = min(len(vectors), IVF_TRAIN_PER_LIST * nlist)
        sample = vectors[np.sort(rng.choice(len(vectors), count, replace=False))]
        ivf.train(sample)

    return build("ivf", make, vectors, train)


def search_latencies(index, queries: np.ndarray, warmup: np.ndarray, k: int) -> tuple[list[float], np.ndarray]:
    """Milliseconds per query, one query per call as rag searches, and the ids found."""
    for q in warmup:
        index.search(q.reshape(1, -1), k)
    times, found = [], np.empty((len(queries), k), dtype=np.int64)
    for i, q in enumerate(queries):
        started = time.perf_counter()
        _, ids = index.search(q.reshape(1, -1), k)
        times.append((time.perf_counter() - started) * 1000)
        found[i] = ids[0]
    return times, found


def recall_at(found: np.ndarray, truth: np.ndarray, at: int) -> float:
    return float(np.mean([len(set(f[:at]) & set(t[:at])) / at for f, t in zip(found, truth)]))


def p95(values: list[float]) -> float:
    from rag.evaluation.metrics import percentile

    return percentile(values, 95)


def measure(built: Built, size: int, queries, warmup, k, truth, settings: list[tuple[str, Callable]],
            threads: int) -> list[Row]:
    import faiss

    rows = []
    for position, (params, apply) in enumerate(settings):
        apply(built.inner)
        single = None
        if threads != 1:
            faiss.omp_set_num_threads(1)
            single, _ = search_latencies(built.index, queries, warmup, k)
            faiss.omp_set_num_threads(threads)
        times, found = search_latencies(built.index, queries, warmup, k)
        first = position == 0  # build figures once per index, not per search setting
        rows.append(
            Row(
                size,
                built.name,
                params,
                built.seconds if first else None,
                built.nbytes if first else None,
                built.rss_delta if first else None,
                statistics.median(times),
                p95(times),
                None if truth is None else recall_at(found, truth, RECALL_AT),
                None if single is None else statistics.median(single),
                None if single is None else p95(single),
            )
        )
        print(f"  {built.name:<5} {params:<20} p50 {rows[-1].p50_ms:8.2f} ms", file=sys.stderr, flush=True)
    return rows


def human_bytes(n: int | None) -> str:
    if n is None:
        return ""
    for unit in ("B", "KB", "MB", "GB"):
        if abs(n) < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def print_table(rows: list[Row], threads: int) -> None:
    header = ("chunks", "index", "params", "build s", "index size", "RSS delta", f"p50 {threads}thr", f"p95 {threads}thr",
              "p50 1thr", "p95 1thr", f"recall@{RECALL_AT}")
    lines = [
        (
            f"{r.size:,}",
            r.name,
            r.params,
            "" if r.build_s is None else f"{r.build_s:.1f}",
            human_bytes(r.nbytes),
            human_bytes(r.rss_delta),
            f"{r.p50_ms:.2f}",
            f"{r.p95_ms:.2f}",
            "" if r.p50_one_ms is None else f"{r.p50_one_ms:.2f}",
            "" if r.p95_one_ms is None else f"{r.p95_one_ms:.2f}",
            "exact" if r.recall is None else f"{r.recall:.3f}",
        )
        for r in rows
    ]
    widths = [max(len(h), *(len(line[i]) for line in lines)) for i, h in enumerate(header)]
    left = {1, 2}

    def fmt(cells):
        return "  ".join(c.ljust(w) if i in left else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))
    print(fmt(header))
    print("  ".join("-" * w for w in widths))
    previous = None
    for r, line in zip(rows, lines):
        if previous is not None and r.size != previous:
            print()
        print(fmt(line))
        previous = r.size


def flat_crossing(points: list[tuple[int, float]]) -> str:
    """Where a straight line through (chunks, p50 ms) reaches FLAT_TARGET_MS."""
    if len(points) < 2:
        return "(measure two sizes for a threshold)"
    slope, intercept = np.polyfit([s for s, _ in points], [p for _, p in points], 1)
    if slope <= 0:
        return "(no growth measured)"
    crossing = (FLAT_TARGET_MS - intercept) / slope
    return f"about {crossing:,.0f} chunks ({slope * 1e5:.1f} ms per 100k)"


def recommend(rows: list[Row], skipped: list[str], threads: int) -> list[str]:
    out = []
    flat = [r for r in rows if r.name == "flat"]
    if flat:
        line = f"flat p50 reaches {FLAT_TARGET_MS:.0f} ms at {flat_crossing([(r.size, r.p50_ms) for r in flat])} with {threads} threads"
        if all(r.p50_one_ms is not None for r in flat):
            line += f", at {flat_crossing([(r.size, r.p50_one_ms) for r in flat])} with 1 thread"
        out.append(line + "; measured " + ", ".join(f"{r.p50_ms:.1f} ms at {r.size:,}" for r in flat))
    largest = max(r.size for r in rows)
    good = [r for r in rows if r.size == largest and r.recall is not None and r.recall >= RECALL_TARGET]
    if good:
        # rank by the one-thread latency when there is one: the multi-threaded figure of a single
        # query mostly measures how busy the machine is (whole scheduler ticks)
        best = min(good, key=lambda r: (r.p50_one_ms if r.p50_one_ms is not None else r.p50_ms, r.p50_ms))
        build_s = next(r.build_s for r in rows if r.size == largest and r.name == best.name and r.build_s is not None)
        single = "" if best.p50_one_ms is None else f" ({best.p50_one_ms:.2f} ms with 1 thread)"
        out.append(
            f"best approximate at {largest:,} with recall@{RECALL_AT} >= {RECALL_TARGET}: {best.name} {best.params}, "
            f"recall@{RECALL_AT} {best.recall:.3f}, p50 {best.p50_ms:.2f} ms{single}, p95 {best.p95_ms:.2f} ms, "
            f"build {build_s:.0f} s"
        )
    else:
        out.append(f"no approximate index reached recall@{RECALL_AT} >= {RECALL_TARGET} at {largest:,}")
    if skipped:
        out.append("skipped: " + "; ".join(skipped))
    return out


def parse_sizes(text: str) -> list[int]:
    """Comma-separated positive whole numbers (sizes, efSearch or nprobe values)."""
    try:
        sizes = [int(s.replace("_", "")) for s in text.split(",") if s.strip()]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r}: expected comma-separated whole numbers") from exc
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError("values must be positive")
    return sizes


@dataclass
class EditRow:
    size: int
    kind: str
    fill_s: float
    rebuild_s: float
    incremental_s: float
    reader_s: float
    compaction_s: float
    base_bytes: int
    delta_bytes: int


def fill_store(store, mixture: Mixture, size: int, rng: np.random.Generator) -> None:
    """`size` chunks in documents of EDIT_CHUNKS, inserted by executemany in one transaction."""
    documents = math.ceil(size / EDIT_CHUNKS)
    with store.transaction():
        store.set_meta("dim", str(DIM))
        store.conn.executemany(
            "INSERT INTO documents (id, path, content_hash, mtime, size, title, pages, chunks, ingested_at) "
            "VALUES (?, ?, ?, 0, 1, ?, NULL, ?, 0)",
            ((d + 1, f"/synthetic/{d}.txt", f"hash {d}", f"document {d}", min(EDIT_CHUNKS, size - d * EDIT_CHUNKS))
             for d in range(documents)),
        )
        for start in range(0, size, FILL_BATCH):
            block = mixture.sample(min(FILL_BATCH, size - start), rng)
            store.conn.executemany(
                "INSERT INTO chunks (id, document_id, ordinal, text, page, heading, char_start, char_end, embedding) "
                "VALUES (?, ?, ?, '', NULL, '[]', 0, 0, ?)",
                ((start + i + 1, (start + i) // EDIT_CHUNKS + 1, (start + i) % EDIT_CHUNKS, block[i].tobytes())
                 for i in range(len(block))),
            )


def replace_last_document(store, mixture: Mixture, rng: np.random.Generator, edit: int) -> np.ndarray:
    """One ingest batch: the document with the highest chunk ids goes, a new one of as many chunks
    comes (SQLite reuses those ids). Returns the new vectors."""
    from rag.types import Chunk, Document

    path = store.conn.execute(
        "SELECT d.path FROM documents d JOIN chunks c ON c.document_id = d.id ORDER BY c.id DESC LIMIT 1"
    ).fetchone()[0]
    added = mixture.sample(EDIT_CHUNKS, rng)
    doc = Document(path=Path(f"/synthetic/edited-{edit}.txt"), title=f"edit {edit}", sections=[],
                   content_hash=f"edit {edit}", mtime=0.0, size=1)
    chunks = [Chunk(i, "", (), None, 0, 0, "") for i in range(EDIT_CHUNKS)]
    with store.transaction():
        store.delete_document(path)
        store.put_document(doc, chunks, added)
    return added


def edit_one_file(size: int, mixture: Mixture, seed: int, workdir: Path | None) -> EditRow:
    from rag.storage import vectors
    from rag.storage.store import Store

    root = Path(tempfile.mkdtemp(prefix="rag-edit-", dir=workdir))
    try:
        rng = np.random.default_rng([seed, size, 1])
        store = Store.open(root, create=True)
        started = time.perf_counter()
        fill_store(store, mixture, size, rng)
        fill_s = time.perf_counter() - started
        print(f"{size:,} chunks: store filled in {fill_s:.1f} s", file=sys.stderr, flush=True)

        def timed(step: Callable[[], object], expected: str | None = None) -> float:
            release_memory()
            started = time.perf_counter()
            outcome = step()
            seconds = time.perf_counter() - started
            if expected is not None and outcome != expected:
                raise SystemExit(f"refresh_file did {outcome!r}, expected {expected!r}")
            print(f"  {expected or 'reader open'}: {seconds:.3f} s", file=sys.stderr, flush=True)
            return seconds

        rebuild_s = timed(lambda: vectors.refresh_file(store), "rebuilt")
        base_bytes = (root / vectors.FILE_NAME).stat().st_size
        added = replace_last_document(store, mixture, rng, 1)
        incremental_s = timed(lambda: vectors.refresh_file(store), "delta")
        delta_bytes = (root / vectors.DELTA_NAME).stat().st_size
        opened: list = []
        reader_s = timed(lambda: opened.append(vectors.open_vectors(store, DIM)))
        index = opened.pop()
        # the edit is really in: every new vector finds itself, nothing is missing or left over
        found = [index.search(v, 1)[0][0] for v in added]
        expected = [r[0] for r in store.conn.execute("SELECT id FROM chunks ORDER BY id DESC LIMIT ?", (EDIT_CHUNKS,))]
        if sorted(found) != sorted(expected) or len(index) != store.chunk_count():
            raise SystemExit(f"the edited index is wrong at {size:,}: found {found}, expected {expected}")
        kind = index.kind
        del index
        replace_last_document(store, mixture, rng, 2)
        compaction_s = timed(lambda: vectors.refresh_file(store, compact_fraction=0.0), "compacted")
        store.close()
        return EditRow(size, kind, fill_s, rebuild_s, incremental_s, reader_s, compaction_s, base_bytes, delta_bytes)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def print_edit_table(rows: list[EditRow]) -> None:
    header = ("chunks", "index", "fill store s", "full rebuild s", "incremental s", "reader open s",
              "compaction s", "vectors.faiss", "vectors.delta")
    lines = [
        (f"{r.size:,}", r.kind, f"{r.fill_s:.1f}", f"{r.rebuild_s:.2f}", f"{r.incremental_s:.3f}", f"{r.reader_s:.2f}",
         f"{r.compaction_s:.2f}", human_bytes(r.base_bytes), human_bytes(r.delta_bytes))
        for r in rows
    ]
    widths = [max(len(h), *(len(line[i]) for line in lines)) for i, h in enumerate(header)]
    for cells in (header, tuple("-" * w for w in widths), *lines):
        print("  ".join(c.ljust(w) if i == 1 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths))))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=parse_sizes, default=[10_000, 100_000, 1_000_000],
                        help="comma-separated chunk counts [10000,100000,1000000]")
    parser.add_argument("--queries", type=int, default=200, help="queries timed per index [200]")
    parser.add_argument("--k", type=int, default=50, help="neighbours fetched per search [50, rag's overfetch]")
    parser.add_argument("--skip-hnsw-above", type=int, metavar="N",
                        help="do not build HNSW for sizes above N (6-9 min at 1M on 2 cores)")
    parser.add_argument("--threads", type=int, default=2, help="FAISS OpenMP threads [2]")
    parser.add_argument("--ef-search", type=parse_sizes, default=list(HNSW_EF_SEARCH),
                        help="HNSW efSearch values to time [64,128]")
    parser.add_argument("--nprobe", type=parse_sizes, default=list(IVF_NPROBE), help="IVF nprobe values to time [16,32]")
    parser.add_argument("--clusters", type=int, default=CLUSTERS,
                        help=f"gaussians in the mixture [{CLUSTERS}]; more, smaller ones are harder for IVF")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--edit", type=parse_sizes, metavar="SIZES",
                        help="instead: time editing one file in a real store of each size (e.g. 100000,1000000)")
    parser.add_argument("--workdir", type=Path, help="where --edit puts its temporary stores [the system temp folder]")
    args = parser.parse_args(argv)
    if args.k < RECALL_AT:
        parser.error(f"--k must be at least {RECALL_AT}")

    import faiss

    faiss.omp_set_num_threads(args.threads)
    print(
        f"faiss {faiss.__version__}, {args.threads} threads, {DIM}-d, {args.queries} queries one at a time, "
        f"k={args.k}, {args.clusters} clusters, load average at start {os.getloadavg()[0]:.2f}",
        file=sys.stderr,
    )
    mixture = Mixture(args.seed, args.clusters)
    if args.edit:
        started_all = time.perf_counter()
        edits = [edit_one_file(size, mixture, args.seed, args.workdir) for size in args.edit]
        print(f"\nedit one file: replace a {EDIT_CHUNKS}-chunk document by another of {EDIT_CHUNKS} chunks, "
              f"{DIM}-d, faiss {faiss.__version__}, {args.threads} threads")
        print_edit_table(edits)
        print(f"total {time.perf_counter() - started_all:.0f} s; load average at end {os.getloadavg()[0]:.2f} "
              f"(other processes on the machine inflate the timings)")
        return 0
    rows: list[Row] = []
    skipped: list[str] = []
    data_lines: list[str] = []
    started_all = time.perf_counter()
    for size in args.sizes:
        rng = np.random.default_rng([args.seed, size])
        started = time.perf_counter()
        vectors = mixture.sample(size, rng)
        drawn = mixture.sample(args.queries + WARMUP, rng)
        warmup, queries = drawn[:WARMUP], drawn[WARMUP:]
        print(f"{size:,} chunks: data in {time.perf_counter() - started:.1f} s", file=sys.stderr, flush=True)

        flat = build_flat(vectors)
        scores, truth = flat.index.search(queries, args.k)  # batched, exact: the ground truth
        data_lines.append(
            f"data at {size:,} ({args.clusters} clusters): query->nearest cosine {scores[:, 0].mean():.3f}, "
            f"->10th {scores[:, RECALL_AT - 1].mean():.3f}"
        )
        rows += measure(flat, size, queries, warmup, args.k, None, [("", lambda inner: None)], args.threads)
        del flat
        release_memory()

        if args.skip_hnsw_above is not None and size > args.skip_hnsw_above:
            skipped.append(f"hnsw at {size:,} (--skip-hnsw-above {args.skip_hnsw_above:,})")
        else:
            hnsw = build_hnsw(vectors)
            settings = [(f"efSearch={ef}", lambda inner, ef=ef: setattr(inner.hnsw, "efSearch", ef))
                        for ef in args.ef_search]
            rows += measure(hnsw, size, queries, warmup, args.k, truth, settings, args.threads)
            del hnsw
            release_memory()

        ivf = build_ivf(vectors, rng)
        nlist = ivf.inner.nlist
        settings = [(f"nlist={nlist} nprobe={p}", lambda inner, p=p: setattr(inner, "nprobe", p))
                    for p in args.nprobe]
        rows += measure(ivf, size, queries, warmup, args.k, truth, settings, args.threads)
        del ivf, vectors
        release_memory()

    print()
    print_table(rows, args.threads)
    print()
    for line in data_lines:
        print(line)
    print(
        f"total {time.perf_counter() - started_all:.0f} s; load average at end {os.getloadavg()[0]:.2f} "
        f"(other processes on the machine inflate the timings)"
    )
    print()
    for line in recommend(rows, skipped, args.threads):
        print("recommendation: " + line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
