"""The vector index: FAISS over the embeddings stored in SQLite, derived and rebuildable.

Invariant: what `load_file` returns holds exactly the embeddings SQLite held at the generation it
is stamped with, keyed by chunk id; readers see the old state or the new one, never a mix.

Inner product over L2-normalised vectors equals cosine similarity. The index is an IndexIDMap2
keyed by chunk id, so a hit maps straight back to its SQLite row. Exact (flat) search up to
FLAT_LIMIT vectors; above that an inverted file (IVF, nlist = 4 sqrt(n), trained on a sample from
SQLite). Flat stays fast enough up to FLAT_LIMIT; past it, IVF with IVF_PROBES keeps recall@10
near flat's at a fraction of the time and builds far faster than HNSW, which also reached a lower
recall on clustered data (bench/scale.py; figures in bench/RESULTS.md, "Vector index").

Two files, each written to a temporary file, fsynced and moved into place with os.replace:

- `vectors.faiss`, the base: a header (magic, generation, dimension, count, flat or IVF) and the
  FAISS index, read and written straight from and to the file through FAISS's callback readers
  (the payload is never held twice in memory).
- `vectors.delta`, the change since the base: the ids to remove from it and the (id, vector)
  pairs to add, stamped with the base's generation and its own. Applied with `remove_ids` and
  `add_with_ids` as the base is loaded.

Why a delta file rather than rewriting the base: at 1M chunks the base is 1.5 GB, and reading,
rewriting and fsyncing it costs seconds whatever changed; editing one file should cost what that
file costs. `refresh_file` appends the change to the delta without reading the base, and folds the
delta into a new base (load, remove/add, rewrite: "compaction") once it outgrows COMPACT_FRACTION
of the base. At 1M chunks a delta costs a tenth of a second where a rebuild costs minutes
(bench/scale.py --edit; figures in bench/RESULTS.md and the README's "Vector index updates").

How the change is known: SQLite reuses an INTEGER PRIMARY KEY after the highest rows are deleted,
so "ids above the file's largest" would miss a re-used id and keep a stale vector. Instead,
triggers on `chunks` (rag.storage.store, migration 004_vector_log) log every chunk id inserted, deleted or
re-embedded under the generation that committed it. The change since generation G is then
every logged id after G: remove them all, add back those still in SQLite with their current
vectors. That is right however many generations behind the file is, and however ids were reused,
and costs a query on an indexed column rather than a scan of every id. The writer prunes the log
once the files have caught up; a file older than the log (`vector_log_since`) is rebuilt.

A full rebuild from SQLite (no re-embedding) only when the file is missing, unreadable, of another
dimension, older than the log, or when the flat/IVF choice changes (the store crossed flat_limit).
"""

from __future__ import annotations

import math
import os
import struct
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Literal

import numpy as np

from rag.storage.store import Store

FILE_NAME = "vectors.faiss"
DELTA_NAME = "vectors.delta"
MAGIC_V1 = b"RAGVEC1\n"  # before deltas: magic, generation, dimension (still read)
HEADER_V1 = struct.Struct("<8sqq")
MAGIC = b"RAGVEC2\n"
HEADER = struct.Struct("<8sqqqqq")  # magic, generation, dimension, count, kind (0 flat, 1 IVF), payload bytes
DELTA_MAGIC = b"RAGDLT1\n"
DELTA_HEADER = struct.Struct("<8sqqqqqI")  # magic, base generation, generation, dim, removed, added, crc32
FLAT_LIMIT = 500_000
IVF_PROBES = 128
TRAIN_PER_LIST = 40  # k-means training points per inverted list
# Fold the delta into the base once it holds this share of the base's vectors: applying it costs
# every reader a little at each load, rewriting the base costs the writer the whole file once.
COMPACT_FRACTION = 0.05
FETCH_BATCH = 10_000  # embeddings read from SQLite per query while applying a change

Kind = Literal["flat", "ivf"]
KINDS: tuple[Kind, ...] = ("flat", "ivf")
Refresh = Literal["none", "current", "delta", "compacted", "rebuilt"]


class VectorIndex:
    def __init__(self, index, generation: int):
        self.index = index
        self.generation = generation

    def __len__(self) -> int:
        return int(self.index.ntotal)

    @property
    def kind(self) -> Kind:
        import faiss

        return "ivf" if isinstance(faiss.downcast_index(self.index.index), faiss.IndexIVF) else "flat"

    def search(self, query: np.ndarray, limit: int) -> list[tuple[int, float]]:
        if len(self) == 0:
            return []
        scores, ids = self.index.search(query.reshape(1, -1).astype(np.float32), min(limit, len(self)))
        return [(int(i), float(s)) for i, s in zip(ids[0], scores[0]) if i != -1]


@dataclass(frozen=True)
class BaseHeader:
    generation: int
    dim: int
    count: int | None  # None in a version-1 file
    kind: Kind | None
    payload: int | None  # bytes of FAISS index after the header

    def complete(self, size: int) -> bool:
        """The file is as long as its header says: a truncated base is found without reading it."""
        return self.payload is None or size == HEADER.size + self.payload


@dataclass(frozen=True)
class Change:
    """Remove every id in `touched`, then add (ids, vectors): those of them still stored."""

    touched: np.ndarray  # int64
    ids: np.ndarray  # int64, a subset of touched
    vectors: np.ndarray  # float32 (len(ids), dim)

    def __len__(self) -> int:
        return len(self.touched) + len(self.ids)


@dataclass(frozen=True)
class Delta:
    """What turns the base at `base_generation` into the state at `generation`."""

    base_generation: int
    generation: int
    change: Change


def limit_of(flat_limit: int | None) -> int:
    # read at call time, so that a caller (or a test) can lower the module's limit
    return FLAT_LIMIT if flat_limit is None else flat_limit


def kind_for(count: int, flat_limit: int | None = None) -> Kind:
    return "flat" if count <= limit_of(flat_limit) else "ivf"


def new_index(dim: int, expected: int, store: Store | None = None, flat_limit: int | None = None):
    """Flat for up to flat_limit vectors; a trained IVF index above (needs the store to sample)."""
    import faiss

    if kind_for(expected, flat_limit) == "flat" or store is None:
        return faiss.IndexIDMap2(faiss.IndexFlatIP(dim))
    lists = max(1, int(4 * math.sqrt(expected)))
    quantizer = faiss.IndexFlatIP(dim)
    inner = faiss.IndexIVFFlat(quantizer, dim, lists, faiss.METRIC_INNER_PRODUCT)
    inner.train(store.sample_embeddings(dim, lists * TRAIN_PER_LIST))
    inner.nprobe = min(IVF_PROBES, lists)
    return faiss.IndexIDMap2(inner)


def build(store: Store, dim: int, flat_limit: int | None = None) -> VectorIndex:
    """Build from SQLite in bounded batches, at the generation the store is at now."""
    with store.snapshot():
        generation = store.generation
        index = new_index(dim, store.chunk_count(), store, flat_limit)
        for ids, vectors in store.iter_embeddings(dim):
            index.add_with_ids(vectors, ids)
    return VectorIndex(index, generation)


# -- files -------------------------------------------------------------------------------------


def _write_atomically(root: Path, name: str, write: Callable) -> None:
    """write(handle) into a temporary file, then fsync, os.replace and fsync the folder: after a
    crash the name holds the old file or the new one, never part of one."""
    fd, tmp = tempfile.mkstemp(prefix=f".{name}-", dir=root)
    try:
        with os.fdopen(fd, "wb") as out:
            write(out)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, root / name)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    folder = os.open(root, os.O_RDONLY)
    try:
        os.fsync(folder)  # the rename itself is durable only once the directory is
    finally:
        os.close(folder)


def save(vectors: VectorIndex, root: Path, dim: int) -> None:
    """Write a new base; any delta on disk belonged to an older base and is dropped."""
    import faiss

    def write(out) -> None:
        def header(payload: int) -> bytes:
            return HEADER.pack(MAGIC, vectors.generation, dim, len(vectors), KINDS.index(vectors.kind), payload)

        out.write(header(0))
        writer = faiss.PyCallbackIOWriter(out.write)
        faiss.write_index(vectors.index, writer)
        del writer  # flushes its buffer into `out`
        payload = out.tell() - HEADER.size
        out.seek(0)
        out.write(header(payload))  # streamed, so the length is known only now

    _write_atomically(root, FILE_NAME, write)
    (root / DELTA_NAME).unlink(missing_ok=True)


def _parse_header(data: bytes) -> BaseHeader | None:
    if data[:8] == MAGIC and len(data) >= HEADER.size:
        _, generation, dim, count, kind, payload = HEADER.unpack_from(data)
        return BaseHeader(generation, dim, count, KINDS[kind], payload) if 0 <= kind < len(KINDS) else None
    if data[:8] == MAGIC_V1 and len(data) >= HEADER_V1.size:
        _, generation, dim = HEADER_V1.unpack_from(data)
        return BaseHeader(generation, dim, None, None, None)
    return None


def read_header(root: Path) -> BaseHeader | None:
    """The base's header, or None when it is missing, not ours, or shorter than the header says."""
    try:
        with open(root / FILE_NAME, "rb") as handle:
            base = _parse_header(handle.read(HEADER.size))
            return base if base is not None and base.complete(os.fstat(handle.fileno()).st_size) else None
    except OSError:
        return None


def save_delta(delta: Delta, root: Path, dim: int) -> None:
    change = delta.change
    removed = np.ascontiguousarray(change.touched, dtype=np.int64).tobytes()
    added_ids = np.ascontiguousarray(change.ids, dtype=np.int64).tobytes()
    added = np.ascontiguousarray(change.vectors, dtype=np.float32).tobytes()
    crc = zlib.crc32(added, zlib.crc32(added_ids, zlib.crc32(removed)))

    def write(out) -> None:
        out.write(DELTA_HEADER.pack(DELTA_MAGIC, delta.base_generation, delta.generation, dim,
                                    len(change.touched), len(change.ids), crc))
        for part in (removed, added_ids, added):
            out.write(part)

    _write_atomically(root, DELTA_NAME, write)


def read_delta(root: Path, dim: int) -> Delta | None:
    """The saved delta, or None when it is missing, damaged or of another dimension."""
    try:
        data = (root / DELTA_NAME).read_bytes()  # small by construction (COMPACT_FRACTION)
        magic, base, generation, stored_dim, removed, added, crc = DELTA_HEADER.unpack_from(data)
    except (OSError, struct.error):
        return None
    body = memoryview(data)[DELTA_HEADER.size:]
    if magic != DELTA_MAGIC or stored_dim != dim or min(removed, added) < 0 \
            or len(body) != 8 * (removed + added) + 4 * added * dim or zlib.crc32(body) != crc:
        return None
    split = 8 * removed
    return Delta(base, generation, Change(
        np.frombuffer(body[:split], dtype=np.int64),
        np.frombuffer(body[split : split + 8 * added], dtype=np.int64),
        np.frombuffer(body[split + 8 * added :], dtype=np.float32).reshape(added, dim),
    ))


def matching_delta(root: Path, base: BaseHeader) -> Delta | None:
    delta = read_delta(root, base.dim)
    return delta if delta is not None and delta.base_generation == base.generation else None


def file_generation(root: Path) -> int | None:
    """The generation the saved files stand for, read from their headers alone."""
    base = read_header(root)
    if base is None:
        return None
    delta = matching_delta(root, base)
    return base.generation if delta is None else delta.generation


def _load_base(handle, dim: int) -> VectorIndex | None:
    import faiss

    base = _parse_header(handle.read(HEADER.size))
    if base is None or base.dim != dim:
        return None
    if not base.complete(os.fstat(handle.fileno()).st_size):
        return None
    handle.seek(HEADER.size if base.count is not None else HEADER_V1.size)
    try:
        # FAISS pulls the payload through this callback block by block: no second copy in memory
        index = faiss.read_index(faiss.PyCallbackIOReader(handle.read))
    except (RuntimeError, MemoryError, ValueError):  # a damaged payload: FAISS names no finer error
        return None
    if index.d != dim or not isinstance(index, faiss.IndexIDMap2):
        return None
    return VectorIndex(index, base.generation)


def load_file(root: Path, dim: int) -> VectorIndex | None:
    """The saved state (base with its delta applied), or None when it is missing or unreadable."""
    for _ in range(3):
        try:
            with open(root / FILE_NAME, "rb") as handle:
                opened = os.fstat(handle.fileno()).st_ino
                vectors = _load_base(handle, dim)
        except OSError:
            return None
        if vectors is None:
            return None
        delta = read_delta(root, dim)
        try:
            replaced = os.stat(root / FILE_NAME).st_ino != opened
        except OSError:
            replaced = True
        if replaced:
            continue  # a writer put a new base in place meanwhile; its delta is not ours: read again
        if delta is not None and delta.base_generation == vectors.generation:
            apply(vectors, delta.change, delta.generation)
        return vectors
    return vectors  # still consistent: the base we read, without a delta


# -- changes -----------------------------------------------------------------------------------


def stored_change(store: Store, touched: np.ndarray, dim: int) -> Change:
    """The change that brings `touched` ids up to date: with the current vectors of those still stored."""
    id_parts, vector_parts = [np.empty(0, dtype=np.int64)], [np.empty((0, dim), dtype=np.float32)]
    for start in range(0, len(touched), FETCH_BATCH):
        found = store.embeddings(touched[start : start + FETCH_BATCH].tolist(), dim)
        id_parts.append(np.fromiter(found, dtype=np.int64, count=len(found)))
        vector_parts.append(np.array(list(found.values()), dtype=np.float32).reshape(len(found), dim))
    return Change(touched, np.concatenate(id_parts), np.concatenate(vector_parts))


def apply(vectors: VectorIndex, change: Change, generation: int) -> None:
    if len(change.touched):
        vectors.index.remove_ids(np.ascontiguousarray(change.touched, dtype=np.int64))
    if len(change.ids):
        vectors.index.add_with_ids(np.ascontiguousarray(change.vectors), np.ascontiguousarray(change.ids))
    vectors.generation = generation


def catch_up(vectors: VectorIndex, store: Store, touched: np.ndarray, dim: int, generation: int) -> None:
    """Bring `touched` up to date in place, FETCH_BATCH vectors at a time: a large change (every
    file ingested again) never sits in memory whole."""
    apply(vectors, Change(touched, touched[:0], np.empty((0, dim), np.float32)), generation)
    for start in range(0, len(touched), FETCH_BATCH):
        part = stored_change(store, touched[start : start + FETCH_BATCH], dim)
        apply(vectors, Change(part.touched[:0], part.ids, part.vectors), generation)


def merged(delta: Delta | None, base_generation: int, change: Change, generation: int) -> Delta:
    """The delta from the base to `generation`: the old delta, then the change on top."""
    if delta is None:
        return Delta(base_generation, generation, change)
    old = delta.change
    kept = ~np.isin(old.ids, change.touched)  # re-added since: their vectors come from `change`
    return Delta(base_generation, generation, Change(
        np.union1d(old.touched, change.touched),
        np.concatenate([old.ids[kept], change.ids]),
        np.concatenate([old.vectors[kept], change.vectors]),
    ))


# -- entry points ------------------------------------------------------------------------------


def refresh_file(store: Store, flat_limit: int | None = None, compact_fraction: float = COMPACT_FRACTION) -> Refresh:
    """After a writer's change (under the writer lock): bring the saved files up to the store.

    Appends the change to the delta when it can, folds the delta into the base when it grew past
    compact_fraction of it, rebuilds from SQLite when nothing saved can be brought up to date.
    """
    dim_text = store.get_meta("dim")
    if not dim_text:
        return "none"
    dim, root = int(dim_text), store.root
    base = read_header(root)
    if base is not None and base.dim != dim:
        base = None
    delta = matching_delta(root, base) if base is not None else None
    with store.snapshot():
        generation = store.generation
        wanted = kind_for(store.chunk_count(), flat_limit)
        same_kind = base is not None and base.kind in (None, wanted)  # None: a version-1 file, read to know
        saved = None if base is None else base.generation if delta is None else delta.generation
        touched = store.vector_changes(saved) if same_kind and saved < generation else None
        outcome: Refresh
        if same_kind and saved == generation:
            outcome = "current"
        elif touched is None:  # no file, another kind, or older than the log
            outcome = "rebuilt"
            save(build(store, dim, flat_limit), root, dim)
        else:
            pending = (0 if delta is None else len(delta.change)) + 2 * len(touched)  # at most
            if base.count is not None and pending <= compact_fraction * base.count:
                outcome = "delta"
                delta = merged(delta, base.generation, stored_change(store, touched, dim), generation)
                save_delta(delta, root, dim)
            else:
                outcome = "compacted"
                vectors = load_file(root, dim)
                if vectors is not None and vectors.generation == saved and vectors.kind == wanted:
                    catch_up(vectors, store, touched, dim, generation)
                else:  # the base did not survive being read whole: start again from SQLite
                    vectors, outcome = build(store, dim, flat_limit), "rebuilt"
                save(vectors, root, dim)
    store.forget_vector_changes(through=generation)
    return outcome


def open_vectors(store: Store, dim: int, flat_limit: int | None = None) -> VectorIndex:
    """The vector index for the store's current generation.

    Behind the store (an ingest still running, or one that died before saving): caught up in
    memory from SQLite's change log, leaving the files to the writer. Rebuilt (and saved, when the
    folder is writable) only when nothing saved can be brought up to date.
    """
    vectors = load_file(store.root, dim)  # before the snapshot: the files never run ahead of SQLite
    with store.snapshot():
        generation, count = store.generation, store.chunk_count()
        if vectors is not None and vectors.generation <= generation and vectors.kind == kind_for(count, flat_limit):
            touched = store.vector_changes(vectors.generation) if vectors.generation < generation else None
            if touched is not None:
                catch_up(vectors, store, touched, dim, generation)
            if vectors.generation == generation and len(vectors) == count:
                return vectors
        vectors = build(store, dim, flat_limit)
    try:
        save(vectors, store.root, dim)
    except OSError:
        pass  # a read-only index folder still answers; the rebuild just repeats next time
    return vectors
