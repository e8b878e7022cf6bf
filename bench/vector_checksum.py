"""What the vector file's checksum costs: load and save of vectors.faiss with the CRC-32 against the
same file read without it, at 100k and 1M chunks.

usage: python bench/vector_checksum.py [--counts 100000,1000000] [--dim 384] [--workdir DIR] [--repeat 3]

For each count: random unit vectors in a flat IndexIDMap2 (the layout rag keeps up to 500k chunks;
an IVF file of the same vectors is the same size, and the checksum's cost is per byte), saved with
rag.storage.vectors.save (CRC computed as FAISS writes) and read back with read_file (CRC checked
as FAISS reads), against FAISS reading the same payload through the same callback without the
CRC, and zlib.crc32 over the file's bytes alone. Best of --repeat runs each; the page cache is warm
(the file was just written), which is the worst case for the checksum's share.

Run by hand with `nice`, never from the tests; note the load average beside the figures.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
import zlib
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rag.storage import vectors  # noqa: E402

BATCH = 50_000


def build(count: int, dim: int):
    import faiss

    index = faiss.IndexIDMap2(faiss.IndexFlatIP(dim))
    rng = np.random.default_rng(1)
    for start in range(0, count, BATCH):
        n = min(BATCH, count - start)
        block = rng.standard_normal((n, dim), dtype=np.float32)
        block /= np.linalg.norm(block, axis=1, keepdims=True)
        index.add_with_ids(block, np.arange(start + 1, start + n + 1, dtype=np.int64))
    return vectors.VectorIndex(index, 1, os.urandom(16))


def read_without_checksum(path: Path):
    import faiss

    with open(path, "rb") as handle:
        handle.seek(vectors.HEADER.size)
        return faiss.read_index(faiss.PyCallbackIOReader(handle.read))


def crc_alone(path: Path) -> None:
    crc = 0
    with open(path, "rb") as handle:
        while block := handle.read(1 << 20):
            crc = zlib.crc32(block, crc)


def best(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - started)
        del result
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--counts", default="100000,1000000")
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--workdir", type=Path, default=Path("bench-vector-checksum"))
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    import faiss

    faiss.omp_set_num_threads(1)
    print(f"load {os.getloadavg()[0]:.1f}")
    print(f"{'chunks':>9} {'file MB':>8} {'save s':>7} {'load s':>7} {'load, no CRC s':>15} {'CRC alone s':>12} "
          f"{'CRC share of load':>18}")
    for count in (int(c) for c in args.counts.split(",")):
        root = args.workdir / str(count)
        shutil.rmtree(root, ignore_errors=True)
        root.mkdir(parents=True)
        index = build(count, args.dim)
        save_s = best(lambda: vectors.save(index, root, args.dim), args.repeat)
        del index
        path = root / vectors.FILE_NAME
        load_s = best(lambda: vectors.read_file(root, args.dim), args.repeat)
        plain_s = best(lambda: read_without_checksum(path), args.repeat)
        crc_s = best(lambda: crc_alone(path), args.repeat)
        share = (load_s - plain_s) / load_s
        print(f"{count:>9,} {path.stat().st_size / 1e6:>8.0f} {save_s:>7.2f} {load_s:>7.2f} {plain_s:>15.2f} "
              f"{crc_s:>12.2f} {share:>17.0%}", flush=True)
        shutil.rmtree(root)
    print(f"load {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
