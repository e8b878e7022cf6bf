"""The vector index: FAISS over the embeddings stored in SQLite, derived and rebuildable.

Invariant: what `load_file` returns holds exactly the embeddings SQLite held at the state it is
stamped with, keyed by chunk id; readers see the old state or the new one, never a mix. A file
proves what it is: its payload carries a CRC-32 checked as it is read (a permuted or overwritten
row is found, not searched), and its stamp is the generation *and* the random state id SQLite
wrote with it (rag.storage.store), so a file from before lost commits is never taken for a later
state that reached the same generation number. Any mismatch rebuilds from SQLite, with one
warning line saying why.

Inner product over L2-normalised vectors equals cosine similarity. The index is an IndexIDMap2
keyed by chunk id, so a hit maps straight back to its SQLite row. Exact (flat) search up to
FLAT_LIMIT vectors; above that an inverted file (IVF, nlist = 4 sqrt(n), trained on a sample from
SQLite). Flat stays fast enough up to FLAT_LIMIT; past it, IVF with IVF_PROBES keeps recall@10
near flat's at a fraction of the time and builds far faster than HNSW, which also reached a lower
recall on clustered data (bench/scale.py; figures in bench/RESULTS.md, "Vector index").

Two files, each written to a temporary file, fsynced and moved into place with os.replace:

- `vectors.faiss`, the base: a header (magic, generation, state id, dimension, count, flat or IVF,
  payload length, CRC-32 of the payload) and the FAISS index, read and written straight from and
  to the file through FAISS's callback readers (the payload is never held twice in memory; the
  CRC is computed on the blocks as they pass: bench/vector_checksum.py measures its cost).
- `vectors.delta`, the change since the base: the ids to remove from it and the (id, vector)
  pairs to add, stamped with the base's generation and state and its own, with a CRC-32 of its
  body. Applied with `remove_ids` and `add_with_ids` as the base is loaded.

Files from before checksums (RAGVEC1/2, RAGDLT1) prove nothing and are rebuilt once.

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

A full rebuild from SQLite (no re-embedding) only when the file is missing, unreadable, damaged,
of another dimension or state, older than the log, or when the flat/IVF choice changes (the store
crossed flat_limit).

One module past 400 lines because the two file formats, their checksums and stamps, and the
load/delta/compaction/rebuild decisions change together: a header field touches the writer, the
reader and the staleness check, and the invariant above is about all three.
"""

from __future__ import annotations

import logging
import math
import os
import struct
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Literal

import numpy as np

from rag.storage.store import TEMP_FILE, Store
from rag.errors import Unusable

log = logging.getLogger("rag.storage.vectors")

FILE_NAME = "vectors.faiss"
DELTA_NAME = "vectors.delta"
OLD_MAGICS = (b"RAGVEC1\n", b"RAGVEC2\n")  # before checksums and state ids: rebuilt
MAGIC = b"RAGVEC3\n"
# magic, generation, state id, dimension, count, kind (0 flat, 1 IVF), payload bytes, CRC-32 of the payload
HEADER = struct.Struct("<8sq16sqqqqI")
DELTA_MAGIC = b"RAGDLT2\n"
# magic, base generation, base state, generation, state, dimension, removed, added, CRC-32 of the body
DELTA_HEADER = struct.Struct("<8sq16sq16sqqqI")
NO_STATE = bytes(16)
FLAT_LIMIT = 500_000
IVF_PROBES = 128
TRAIN_PER_LIST = 40  # k-means training points per inverted list
# Fold the delta into the base once it holds this share of the base's vectors: applying it costs
# every reader a little at each load, rewriting the base costs the writer the whole file once.
COMPACT_FRACTION = 0.05
FETCH_BATCH = 10_000  # embeddings read from SQLite per query while applying a change
STALE_TEMP_SECONDS = 3600  # a temporary file without a live owner's pid in its name, older than this

Kind = Literal["flat", "ivf"]
KINDS: tuple[Kind, ...] = ("flat", "ivf")
Refresh = Literal["none", "current", "delta", "compacted", "rebuilt"]


class VectorIndex:
    def __init__(self, index, generation: int, state: bytes = NO_STATE):
        self.index = index
        self.generation = generation
        self.state = state  # the SQLite state id (rag.storage.store) it holds the vectors of

    def __len__(self) -> int:
        return int(self.index.ntotal)

    @property
    def kind(self) -> Kind:
        import faiss

        return "ivf" if isinstance(faiss.downcast_index(self.index.index), faiss.IndexIVF) else "flat"

    def current_for(self, store: Store) -> bool:
        """Whether it holds the store's committed state now (read in a snapshot of it)."""
        return self.generation == store.generation and self.state == store.state

    def search(self, query: np.ndarray, limit: int, within: Selection | None = None) -> list[tuple[int, float]]:
        """The `limit` nearest chunks, best first; `within` keeps the search to those chunk ids.

        Restricted searches go through FAISS's ID selector, which skips every other vector before
        scoring it, so a narrow filter costs less than a full search (bench/filters.py). An
        IVF index probes its usual lists first; when they hold fewer than `limit` of the allowed
        chunks it probes them all, so a narrow filter never gets fewer hits than it has chunks.
        """
        if len(self) == 0 or (within is not None and within.count == 0):
            return []
        query = query.reshape(1, -1).astype(np.float32)
        if within is None:
            scores, ids = self.index.search(query, min(limit, len(self)))
        else:
            import faiss

            want = min(limit, within.count, len(self))
            inner = faiss.downcast_index(self.index.index)
            if isinstance(inner, faiss.IndexIVF):
                params = faiss.SearchParametersIVF(sel=within.selector, nprobe=inner.nprobe)
                scores, ids = self.index.search(query, want, params=params)
                if int((ids[0] != -1).sum()) < want:
                    params = faiss.SearchParametersIVF(sel=within.selector, nprobe=inner.nlist)
                    scores, ids = self.index.search(query, want, params=params)
            else:
                scores, ids = self.index.search(query, want, params=faiss.SearchParameters(sel=within.selector))
        return [(int(i), float(s)) for i, s in zip(ids[0], scores[0]) if i != -1]


class Selection:
    """A set of chunk ids as FAISS's ID selector (IDSelectorBatch: a hash set behind a bloom
    filter, checked per vector before it is scored). Built once per filter (rag.retrieval.scope)."""

    def __init__(self, ids: np.ndarray):
        import faiss

        self.ids = np.ascontiguousarray(ids, dtype=np.int64)
        self.count = len(self.ids)
        self.selector = faiss.IDSelectorBatch(self.ids)


@dataclass(frozen=True)
class BaseHeader:
    generation: int
    state: bytes
    dim: int
    count: int
    kind: Kind
    payload: int  # bytes of FAISS index after the header
    crc: int  # CRC-32 of those bytes

    def complete(self, size: int) -> bool:
        """The file is as long as its header says: a truncated base is found without reading it."""
        return size == HEADER.size + self.payload


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
    """What turns the base at (`base_generation`, `base_state`) into the state at `generation`."""

    base_generation: int
    generation: int
    change: Change
    base_state: bytes = NO_STATE
    state: bytes = NO_STATE


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
    """Build from SQLite in bounded batches, at the state the store is at now."""
    with store.snapshot():
        generation, state = store.generation, store.state or NO_STATE
        index = new_index(dim, store.chunk_count(), store, flat_limit)
        for ids, vectors in store.iter_embeddings(dim):
            index.add_with_ids(vectors, ids)
    return VectorIndex(index, generation, state)


def lineage_problem(store: Store, generation: int, state: bytes) -> str | None:
    """Why a file stamped (generation, state) is not a state of this store's history; None if it is.

    Read inside a snapshot. A file older than the kept history is not a problem here: the change
    log no longer reaches it, so callers rebuild it quietly (rag.storage.store.forget_vector_changes).
    """
    current = store.generation
    if generation > current:
        return (f"is ahead of rag.sqlite (generation {generation}, rag.sqlite {current}): rag.sqlite lost its "
                f"last commits or was restored from an older copy")
    known = store.state_at(generation)
    if known is not None and known != state:
        return (f"was built from another state of generation {generation} than rag.sqlite holds (commits were "
                f"lost, or rag.sqlite was restored from a copy)")
    return None


def _rebuilt(root: Path, problem: str | None) -> None:
    if problem:
        log.warning("rag: %s %s: rebuilt from rag.sqlite (no re-embedding)", root / FILE_NAME, problem)


# -- files -------------------------------------------------------------------------------------


def _write_atomically(root: Path, name: str, write: Callable) -> None:
    """write(handle) into a temporary file, then fsync, os.replace and fsync the folder: after a
    crash the name holds the old file or the new one, never part of one. The temporary file's name
    carries our pid, so a later writer knows one left by a killed save (remove_stale_temp_files)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{name}-{os.getpid()}-", dir=root)
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


def _owner_alive(name: str) -> bool | None:
    """Whether the process named in a temporary file's name still runs; None for an unnamed one."""
    parts = name.split("-")
    if len(parts) < 3 or not parts[1].isdigit():
        return None
    try:
        os.kill(int(parts[1]), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_temp_files(root: Path) -> int:
    """Remove temporary files that killed saves left behind; returns how many."""
    import time

    removed = 0
    try:
        entries = list(os.scandir(root))
    except OSError:
        return 0
    for entry in entries:
        if not TEMP_FILE.match(entry.name):
            continue
        alive = _owner_alive(entry.name)
        try:
            if alive is None:  # named by an older rag: judged by its age
                alive = time.time() - entry.stat().st_mtime < STALE_TEMP_SECONDS
            if not alive:
                os.unlink(entry.path)
                removed += 1
        except OSError:
            pass  # gone already, or a read-only folder: it is still never counted in the size
    return removed


def save(vectors: VectorIndex, root: Path, dim: int) -> None:
    """Write a new base; any delta on disk belonged to an older base and is dropped."""
    import faiss

    def write(out) -> None:
        crc = 0
        payload = 0

        def header() -> bytes:
            return HEADER.pack(MAGIC, vectors.generation, vectors.state, dim, len(vectors),
                               KINDS.index(vectors.kind), payload, crc)

        def take(block) -> None:
            nonlocal crc, payload
            crc = zlib.crc32(block, crc)
            payload += len(block)
            out.write(block)

        out.write(header())
        writer = faiss.PyCallbackIOWriter(take)
        faiss.write_index(vectors.index, writer)
        del writer  # flushes its buffer into `out`
        out.seek(0)
        out.write(header())  # streamed, so the length and checksum are known only now

    remove_stale_temp_files(root)
    _write_atomically(root, FILE_NAME, write)
    (root / DELTA_NAME).unlink(missing_ok=True)


def _parse_header(data: bytes) -> BaseHeader:
    if data[:8] in OLD_MAGICS:
        raise Unusable("was written by an older rag, without a checksum")
    if data[:8] != MAGIC or len(data) < HEADER.size:
        raise Unusable("is not a vector file of rag's (unknown header)")
    _, generation, state, dim, count, kind, payload, crc = HEADER.unpack_from(data)
    if not 0 <= kind < len(KINDS) or min(count, payload) < 0:
        raise Unusable("has a damaged header")
    return BaseHeader(generation, state, dim, count, KINDS[kind], payload, crc)


def _header_of(handle, dim: int) -> BaseHeader:
    base = _parse_header(handle.read(HEADER.size))
    if base.dim != dim:
        raise Unusable(f"holds {base.dim}-dimensional vectors, not {dim}")
    if not base.complete(os.fstat(handle.fileno()).st_size):
        raise Unusable("is truncated (shorter than its header says)")
    return base


def read_header(root: Path, dim: int | None = None) -> BaseHeader | None:
    """The base's header, or None when it is missing, not ours, of another dimension (when `dim`
    is given), or shorter than the header says. Cheap: the payload is not read."""
    try:
        with open(root / FILE_NAME, "rb") as handle:
            base = _parse_header(handle.read(HEADER.size))
            if dim is not None and base.dim != dim:
                return None
            return base if base.complete(os.fstat(handle.fileno()).st_size) else None
    except (OSError, Unusable):
        return None


def save_delta(delta: Delta, root: Path, dim: int) -> None:
    change = delta.change
    removed = np.ascontiguousarray(change.touched, dtype=np.int64).tobytes()
    added_ids = np.ascontiguousarray(change.ids, dtype=np.int64).tobytes()
    added = np.ascontiguousarray(change.vectors, dtype=np.float32).tobytes()
    crc = zlib.crc32(added, zlib.crc32(added_ids, zlib.crc32(removed)))

    def write(out) -> None:
        out.write(DELTA_HEADER.pack(DELTA_MAGIC, delta.base_generation, delta.base_state, delta.generation,
                                    delta.state, dim, len(change.touched), len(change.ids), crc))
        for part in (removed, added_ids, added):
            out.write(part)

    _write_atomically(root, DELTA_NAME, write)


def read_delta(root: Path, dim: int) -> Delta | None:
    """The saved delta, or None when it is missing, damaged, from an older rag or of another dimension."""
    try:
        data = (root / DELTA_NAME).read_bytes()  # small by construction (COMPACT_FRACTION)
        magic, base, base_state, generation, state, stored_dim, removed, added, crc = DELTA_HEADER.unpack_from(data)
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
    ), base_state, state)


def matching_delta(root: Path, base: BaseHeader) -> Delta | None:
    delta = read_delta(root, base.dim)
    if delta is None or (delta.base_generation, delta.base_state) != (base.generation, base.state):
        return None
    return delta


def file_generation(root: Path) -> int | None:
    """The generation the saved files stand for, read from their headers alone."""
    base = read_header(root)
    if base is None:
        return None
    delta = matching_delta(root, base)
    return base.generation if delta is None else delta.generation


def _read_base(handle, dim: int) -> VectorIndex:
    """The base from an open file, its checksum verified on the way; Unusable says what is wrong."""
    import faiss

    base = _header_of(handle, dim)
    handle.seek(HEADER.size)
    crc, left = 0, base.payload

    def read(size: int) -> bytes:
        nonlocal crc, left
        block = handle.read(min(size, left))
        crc = zlib.crc32(block, crc)
        left -= len(block)
        return block

    try:
        # FAISS pulls the payload through this callback block by block: no second copy in memory
        index = faiss.read_index(faiss.PyCallbackIOReader(read))
    except (RuntimeError, MemoryError, ValueError):  # a damaged payload: FAISS names no finer error
        raise Unusable("is damaged (FAISS cannot read it)") from None
    while left:  # what FAISS did not need still belongs to the checksum
        block = read(1 << 20)
        if not block:
            break
    if crc != base.crc:
        raise Unusable("does not match its checksum (its vectors were changed or damaged on disk)")
    if index.d != dim or not isinstance(index, faiss.IndexIDMap2) or index.ntotal != base.count:
        raise Unusable("holds another index than its header says")
    return VectorIndex(index, base.generation, base.state)


def _load_base(handle, dim: int) -> VectorIndex | None:
    try:
        return _read_base(handle, dim)
    except Unusable:
        return None


def read_file(root: Path, dim: int) -> VectorIndex:
    """The saved state (base with its delta applied); Unusable says why there is none."""
    vectors = None
    for _ in range(3):
        try:
            with open(root / FILE_NAME, "rb") as handle:
                opened = os.fstat(handle.fileno()).st_ino
                vectors = _read_base(handle, dim)
        except FileNotFoundError:
            raise Unusable("is missing") from None
        except OSError as exc:
            raise Unusable(f"cannot be read ({exc.strerror or exc})") from None
        delta = read_delta(root, dim)
        try:
            replaced = os.stat(root / FILE_NAME).st_ino != opened
        except OSError:
            replaced = True
        if replaced:
            continue  # a writer put a new base in place meanwhile; its delta is not ours: read again
        if delta is not None and (delta.base_generation, delta.base_state) == (vectors.generation, vectors.state):
            apply(vectors, delta.change, delta.generation, delta.state)
        return vectors
    return vectors  # still consistent: the base we read, without a delta


def load_file(root: Path, dim: int) -> VectorIndex | None:
    """The saved state (base with its delta applied), or None when it is missing or unusable."""
    try:
        return read_file(root, dim)
    except Unusable:
        return None


# -- changes -----------------------------------------------------------------------------------


def stored_change(store: Store, touched: np.ndarray, dim: int) -> Change:
    """The change that brings `touched` ids up to date: with the current vectors of those still stored."""
    id_parts, vector_parts = [np.empty(0, dtype=np.int64)], [np.empty((0, dim), dtype=np.float32)]
    for start in range(0, len(touched), FETCH_BATCH):
        found = store.embeddings(touched[start : start + FETCH_BATCH].tolist(), dim)
        id_parts.append(np.fromiter(found, dtype=np.int64, count=len(found)))
        vector_parts.append(np.array(list(found.values()), dtype=np.float32).reshape(len(found), dim))
    return Change(touched, np.concatenate(id_parts), np.concatenate(vector_parts))


def apply(vectors: VectorIndex, change: Change, generation: int, state: bytes) -> None:
    if len(change.touched):
        vectors.index.remove_ids(np.ascontiguousarray(change.touched, dtype=np.int64))
    if len(change.ids):
        vectors.index.add_with_ids(np.ascontiguousarray(change.vectors), np.ascontiguousarray(change.ids))
    vectors.generation, vectors.state = generation, state


def catch_up(vectors: VectorIndex, store: Store, touched: np.ndarray, dim: int, generation: int,
             state: bytes) -> None:
    """Bring `touched` up to date in place, FETCH_BATCH vectors at a time: a large change (every
    file ingested again) never sits in memory whole."""
    apply(vectors, Change(touched, touched[:0], np.empty((0, dim), np.float32)), generation, state)
    for start in range(0, len(touched), FETCH_BATCH):
        part = stored_change(store, touched[start : start + FETCH_BATCH], dim)
        apply(vectors, Change(part.touched[:0], part.ids, part.vectors), generation, state)


def merged(delta: Delta | None, base: BaseHeader, change: Change, generation: int, state: bytes) -> Delta:
    """The delta from the base to `generation`: the old delta, then the change on top."""
    if delta is None:
        return Delta(base.generation, generation, change, base.state, state)
    old = delta.change
    kept = ~np.isin(old.ids, change.touched)  # re-added since: their vectors come from `change`
    return Delta(base.generation, generation, Change(
        np.union1d(old.touched, change.touched),
        np.concatenate([old.ids[kept], change.ids]),
        np.concatenate([old.vectors[kept], change.vectors]),
    ), base.state, state)


# -- entry points ------------------------------------------------------------------------------


def refresh_file(store: Store, flat_limit: int | None = None, compact_fraction: float = COMPACT_FRACTION) -> Refresh:
    """After a writer's change (under the writer lock): bring the saved files up to the store.

    Appends the change to the delta when it can, folds the delta into the base when it grew past
    compact_fraction of it, rebuilds from SQLite when nothing saved can be brought up to date.
    Reads the headers only, unless it compacts: a damaged payload is found by the next reader.
    """
    dim_text = store.get_meta("dim")
    if not dim_text:
        return "none"
    dim, root = int(dim_text), store.root
    remove_stale_temp_files(root)
    base = read_header(root, dim)
    delta = matching_delta(root, base) if base is not None else None
    with store.snapshot():
        generation, state = store.generation, store.state or NO_STATE
        wanted = kind_for(store.chunk_count(), flat_limit)
        problem = None
        if base is not None:
            saved, saved_state = (base.generation, base.state) if delta is None else (delta.generation, delta.state)
            problem = lineage_problem(store, saved, saved_state) or lineage_problem(store, base.generation, base.state)
        usable = base is not None and problem is None and base.kind == wanted
        touched = store.vector_changes(saved) if usable and saved < generation else None
        outcome: Refresh
        if usable and saved == generation:
            outcome = "current"
        elif touched is None:  # no usable file, another kind, or older than the log
            outcome = "rebuilt"
            save(build(store, dim, flat_limit), root, dim)
            _rebuilt(root, problem)
        else:
            pending = (0 if delta is None else len(delta.change)) + 2 * len(touched)  # at most
            if pending <= compact_fraction * base.count:
                outcome = "delta"
                delta = merged(delta, base, stored_change(store, touched, dim), generation, state)
                save_delta(delta, root, dim)
            else:
                outcome = "compacted"
                try:
                    vectors = read_file(root, dim)
                    if (vectors.generation, vectors.state) != (saved, saved_state) or vectors.kind != wanted:
                        raise Unusable("changed while it was read")
                    catch_up(vectors, store, touched, dim, generation, state)
                except Unusable as exc:  # the base did not survive being read whole: start again from SQLite
                    vectors, outcome = build(store, dim, flat_limit), "rebuilt"
                    _rebuilt(root, str(exc))
                save(vectors, root, dim)
    store.forget_vector_changes(through=generation)
    return outcome


def open_vectors(store: Store, dim: int, flat_limit: int | None = None) -> VectorIndex:
    """The vector index for the store's current state.

    Behind the store (an ingest still running, or one that died before saving): caught up in
    memory from SQLite's change log, leaving the files to the writer. Rebuilt (and saved, when the
    folder is writable) when nothing saved can be brought up to date, with a warning line when
    the file was missing, damaged or of another state.
    """
    problem = None
    try:
        vectors = read_file(store.root, dim)  # before the snapshot: the files never run ahead of SQLite
    except Unusable as exc:
        vectors, problem = None, str(exc)
    with store.snapshot():
        generation, state, count = store.generation, store.state or NO_STATE, store.chunk_count()
        if vectors is not None:
            problem = lineage_problem(store, vectors.generation, vectors.state)
        if vectors is not None and problem is None and vectors.kind == kind_for(count, flat_limit):
            touched = store.vector_changes(vectors.generation) if vectors.generation < generation else None
            if touched is not None:
                catch_up(vectors, store, touched, dim, generation, state)
            if vectors.generation == generation:
                if len(vectors) == count:
                    return vectors
                problem = f"holds {len(vectors)} vectors for {count} chunks"
        vectors = build(store, dim, flat_limit)
    _rebuilt(store.root, problem)
    try:
        save(vectors, store.root, dim)
    except OSError:
        pass  # a read-only index folder still answers; the rebuild just repeats next time
    return vectors


def verify(store: Store, dim: int, sample: int = 256) -> str | None:
    """What is wrong with the saved vectors, read whole (`rag status --check`); None when they are
    exactly the store's current state: checksum, state, count, and a sample compared with SQLite."""
    try:
        vectors = read_file(store.root, dim)
    except Unusable as exc:
        return str(exc)
    with store.snapshot():
        problem = lineage_problem(store, vectors.generation, vectors.state)
        if problem:
            return problem
        if vectors.generation < store.generation:
            return (f"is behind rag.sqlite (generation {vectors.generation}, rag.sqlite {store.generation}): an "
                    f"ingest is running or was stopped before it saved")
        count = store.chunk_count()
        if len(vectors) != count:
            return f"holds {len(vectors)} vectors for {count} chunks"
        ids = [int(i) for i, in store.conn.execute("SELECT id FROM chunks ORDER BY RANDOM() LIMIT ?", (sample,))]
        stored = store.embeddings(ids, dim)
    for chunk_id, expected in stored.items():
        if vectors.kind == "flat":
            same = np.array_equal(vectors.index.reconstruct(chunk_id), expected)
        else:  # IVF keeps no id -> vector map; an exact copy of a stored vector finds itself first
            found = vectors.search(expected, 1)
            same = bool(found) and abs(found[0][1] - float(expected @ expected)) < 1e-4
        if not same:
            return f"does not hold the vector rag.sqlite has for chunk {chunk_id}"
    return None
