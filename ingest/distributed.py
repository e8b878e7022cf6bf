"""`rag ingest --ray`: load, chunk and embed changed files on a Ray cluster's workers.

What it owns: joining a cluster (`local`, `auto` or HOST:PORT) in bounded time, a pool of actors
that each load the embedding model once, and a reader (`RayReader`, the `ingest.pipeline.Reader`
seam) that sends changed files' bytes to them and yields results as they finish.

Invariants: this module never writes the index. The driver (`run_ingest`) still discovers, diffs
and is the one SQLite writer in the same batch transactions, so a killed driver loses only the
batch in flight. At most `IN_FLIGHT_PER_WORKER` files per worker are out at once (backpressure:
the driver's memory does not grow with the corpus). A file whose worker dies is sent to another
worker, and its result is committed once: the driver consumes exactly one result per file.
Ray is imported only here, and only once a RayReader is built.

One module past 400 lines because it is one seam: the worker actor, joining a cluster and
`RayReader` exist only to run the `Reader` on Ray, share one failure rule (a lost worker's file is
sent again, its result taken once), and are the only code that imports Ray.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections import deque
from dataclasses import dataclass, field, replace
from typing import Iterator

from ingest.chunk import ChunkSettings
from ingest.pipeline import Changed, Pending, Progress, prepare
from rag.errors import RagError, RayUnavailable
from rag.extras import require
from rag.types import Embeds, Failure

IN_FLIGHT_PER_WORKER = 2  # one file working, one queued: a worker never waits for the driver
MAX_ATTEMPTS = 3  # a file whose worker died this often is reported failed (it may be what kills them)
PROBE_SECONDS = 10.0  # connecting to an address that does not answer fails within this
START_SECONDS = 600.0  # a worker that has not loaded the model by then is reported (a busy node is slow)
LOCAL_OBJECT_STORE = 512 * 2**20  # `--ray local`: the files in flight, not a share of RAM


@dataclass(frozen=True)
class WorkerSpec:
    """What every worker must match: the driver's rag, the index's model, runtime and chunking."""

    model_id: str
    runtime: str
    rag_version: str
    chunking: ChunkSettings
    threads: int = 1  # torch threads per worker: one per CPU the actor reserves


@dataclass(frozen=True)
class WorkerInfo:
    node: str  # host name and address, as an operator finds the machine
    pid: int
    problem: str | None  # why this worker cannot ingest, or None


@dataclass
class Loaded:
    """A worker's answer for one file, and how long the worker spent on it."""

    result: Pending | Failure
    seconds: float


@dataclass
class RayStats:
    """What the run cost, for the bench and the caller: time spent by workers, not by Ray."""

    workers: int = 0
    files: int = 0
    busy_seconds: float = 0.0  # summed over workers: load + chunk + embed
    start_seconds: float = 0.0  # starting the workers (each loads the model)
    lost_workers: list[str] = field(default_factory=list)  # "node (pid N)" of every worker that died
    resubmitted: int = 0  # files sent again after their worker died


class IngestWorker:
    """A Ray actor (one per CPU): checks itself and loads the model once, then reads files."""

    def __init__(self, spec: WorkerSpec):
        self.spec = spec
        self.embedder: Embeds | None = None
        self.node = f"{socket.gethostname()} ({_node_address()})"
        self.problem: str | None = None
        try:
            from rag.config import version
            from rag.embedding.embedder import Embedder

            if version() != spec.rag_version:
                self.problem = (f"rag {version()} is installed there, the driver runs {spec.rag_version}: "
                                f"install the same rag on every node")
                return
            embedder = Embedder(spec.model_id, spec.runtime, threads=spec.threads)
            runtime = embedder.runtime
            if embedder.id != spec.model_id or runtime != spec.runtime:
                self.problem = (f"its model is {embedder.id} ({runtime}), the index's is {spec.model_id} "
                                f"({spec.runtime})")
                return
            if embedder.dim <= 0:  # loads the model now, once per worker, so a missing model shows here
                self.problem = f"the model {spec.model_id} has no dimension"
                return
            self.embedder = embedder
        except RagError as exc:
            self.problem = str(exc)
        except Exception as exc:  # an install problem on that node: name it rather than crash the pool
            self.problem = f"{type(exc).__name__}: {exc}"

    def hello(self) -> WorkerInfo:
        return WorkerInfo(self.node, os.getpid(), self.problem)

    def read(self, item: Changed) -> Loaded:
        started = time.perf_counter()
        embedder = self.embedder
        if embedder is None:  # the driver sends no work to a worker whose hello named a problem
            raise RayUnavailable(f"this Ray worker cannot ingest: {self.problem}")
        result = prepare(item, embedder, self.spec.chunking)
        if isinstance(result, Pending):
            vectors = self._embed([c.embed_text for c in result.chunks], item.known)
            # the sections went into the chunks; the driver stores the chunks, so they stay here
            result = replace(result, doc=replace(result.doc, sections=[]), embeddings=vectors)
        return Loaded(result, time.perf_counter() - started)

    def _embed(self, texts: list[str], known: frozenset[str]):
        """The texts' vectors; rows whose text the index already holds stay NaN for the driver to
        fill from SQLite (ingest.pipeline._embeddings): nothing is embedded twice on a cluster either."""
        import numpy as np

        from rag.text import text_key

        todo = [i for i, text in enumerate(texts) if text_key(text) not in known]
        vectors = np.full((len(texts), self.embedder.dim), np.nan, dtype=np.float32)
        if todo:
            vectors[todo] = self.embedder.embed_documents([texts[i] for i in todo])
        return vectors


def _node_address() -> str:
    import ray

    return ray.util.get_node_ip_address()


# -- joining a cluster ---------------------------------------------------------------------------------


def connect(address: str, local_cpus: int | None = None) -> bool:
    """Join (or, for `local`, start) the cluster; True when this call initialised Ray.

    Called before the index is opened for writing: an unreachable cluster fails here, in bounded
    time, with nothing written. Ray is imported here and nowhere else.
    """
    require("ray", "rag ingest --ray", "ray")
    import ray

    if ray.is_initialized():  # the caller manages Ray (a notebook, a bench): use its connection
        return False
    quiet = {"logging_level": logging.ERROR, "log_to_driver": False, "configure_logging": True}
    if address == "local":
        try:
            ray.init(num_cpus=local_cpus or os.cpu_count() or 1, include_dashboard=False,
                     object_store_memory=LOCAL_OBJECT_STORE, **quiet)
        except Exception as exc:  # Ray raises its own types and plain RuntimeErrors while starting
            raise RayUnavailable(f"cannot start a local Ray cluster: {_first_line(exc)}") from exc
        return True
    target = _resolve(address)
    _probe(address, target)
    try:
        ray.init(address=target, **quiet)
    except Exception as exc:  # ConnectionError, an auth error, a version mismatch with the head
        hint = ""
        if "uthenticat" in _all_text(exc):
            hint = " (the cluster requires its token: set RAY_AUTH_TOKEN, or copy ~/.ray/auth_token from the head)"
        raise RayUnavailable(f"cannot join the Ray cluster at {address}: {_first_line(exc)}{hint}") from exc
    return True


def _resolve(address: str) -> str:
    """HOST:PORT of the cluster's head; `auto` is the cluster this machine belongs to."""
    if address == "auto":
        try:
            from ray._private.services import canonicalize_bootstrap_address

            found = canonicalize_bootstrap_address("auto", None)
        except Exception:  # an internal helper; without it, look only at the usual place
            found = None
        if not found:
            raise RayUnavailable("no Ray cluster on this machine (--ray auto): start one with `ray start --head`, "
                                 "or pass its address, or use --ray local")
        return found
    if address.startswith("ray://"):
        raise RayUnavailable(f"{address}: Ray Client addresses are not supported; run rag on a node of the cluster "
                             f"with --ray auto, or pass the head's HOST:PORT (port 6379 by default)")
    return address


def _probe(address: str, target: str) -> None:
    """Fail fast unless HOST:PORT answers as an HTTP/2 (gRPC) server, as Ray's head does.

    ray.init retries an address that does not answer for many minutes; this bounds the wait.
    """
    host, sep, port = target.rpartition(":")
    if not sep or not port.isdigit():
        raise RayUnavailable(f"--ray {address}: expected HOST:PORT (such as 10.0.0.5:6379), auto or local")
    preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"  # + empty SETTINGS
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=PROBE_SECONDS) as sock:
            sock.settimeout(PROBE_SECONDS)
            sock.sendall(preface)
            frame = sock.recv(9)
    except OSError as exc:
        reason = "no answer" if isinstance(exc, TimeoutError) else (exc.strerror or str(exc)).lower()
        raise RayUnavailable(f"cannot reach the Ray cluster at {address}: {reason} "
                             f"(is `ray start --head` running there?)") from exc
    if len(frame) < 4 or frame[3] != 0x04:
        raise RayUnavailable(f"cannot reach the Ray cluster at {address}: something else answers on that port")


def _all_text(exc: BaseException) -> str:
    parts = []
    while exc is not None and len(parts) < 5:
        parts.append(str(exc))
        exc = exc.__cause__ or exc.__context__
    return "\n".join(parts)


def _first_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__


# -- the reader ------------------------------------------------------------------------------------------


@dataclass
class _Task:
    item: Changed
    attempts: int = 0


class RayReader:
    """The `ingest.pipeline.Reader` that spreads files over Ray actors.

    Build it with `RayReader.connect(...)` before the index is opened, pass it to `run_ingest`
    (with the same ChunkSettings as `spec.chunking`: the workers chunk), then `close()` it.
    Workers start on the first changed file, so an unchanged re-ingest costs only the connection.
    """

    def __init__(self, spec: WorkerSpec, workers: int | None = None, owns_ray: bool = False):
        self.spec = spec
        self.wanted = workers
        self.owns_ray = owns_ray
        self.stats = RayStats()
        self._actors: list = []  # live actor handles
        self._info: dict = {}  # actor handle -> WorkerInfo
        self._replacements = 0
        self._pool = 0  # workers asked for at the start

    @classmethod
    def connect(cls, address: str, spec: WorkerSpec, workers: int | None = None) -> "RayReader":
        """Join the cluster (bounded time, one clear RayUnavailable if it cannot be reached)."""
        local_cpus = workers if address == "local" else None
        return cls(spec, workers, owns_ray=connect(address, local_cpus))

    def close(self) -> None:
        import ray

        for actor in self._actors:
            ray.kill(actor)
        self._actors.clear()
        if self.owns_ray:
            ray.shutdown()
            self.owns_ray = False

    def __enter__(self) -> "RayReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def workers(self) -> list[WorkerInfo]:
        """The live workers: where they run and their process ids."""
        return [self._info[a] for a in self._actors if a in self._info]

    # -- the pool ------------------------------------------------------------------------------------

    def _actor_class(self):
        import ray

        return ray.remote(num_cpus=self.spec.threads, max_restarts=0, max_task_retries=0)(IngestWorker)

    def _start(self, count: int) -> None:
        """Start `count` workers and wait until each has loaded the model (or said why it cannot)."""
        import ray
        from ray.exceptions import GetTimeoutError, RayActorError

        started = time.perf_counter()
        cls = self._actor_class()
        actors = [cls.remote(self.spec) for _ in range(count)]
        try:
            infos = ray.get([a.hello.remote() for a in actors], timeout=START_SECONDS)
        except GetTimeoutError as exc:
            for a in actors:
                ray.kill(a)
            cpus = ray.cluster_resources().get("CPU", 0)
            raise RayUnavailable(f"{count} Ray worker(s) did not start within {START_SECONDS:.0f} s "
                                 f"(the cluster has {cpus:.0f} CPUs; each worker takes {self.spec.threads})") from exc
        except RayActorError as exc:
            for a in actors:
                ray.kill(a)
            raise RayUnavailable(f"a Ray worker could not start (is rag[ray] {self.spec.rag_version} installed on "
                                 f"every node?): {_first_line(exc)}") from exc
        bad = [info for info in infos if info.problem]
        if bad:
            for a in actors:
                ray.kill(a)
            raise RayUnavailable(f"Ray worker on {bad[0].node} cannot ingest: {bad[0].problem}")
        self._actors += actors
        self._info.update(zip(actors, infos))
        self.stats.workers += count
        self.stats.start_seconds += time.perf_counter() - started

    def _pool_size(self) -> int:
        import ray

        if self.wanted:
            return self.wanted
        # the CPUs free now, not the cluster's total: on a shared cluster a worker asked for beyond
        # them would wait for a CPU until START_SECONDS and fail the run
        cpus = int(ray.available_resources().get("CPU", 1))
        return max(1, cpus // self.spec.threads)

    def _lose(self, actor, progress: Progress) -> None:
        """A worker died: forget it, start another in its place while the budget lasts."""
        if actor not in self._actors:
            return  # its other files already reported it
        self._actors.remove(actor)
        info = self._info.pop(actor, None)
        who = f"{info.node} (pid {info.pid})" if info else "unknown node"
        self.stats.lost_workers.append(who)
        _notice(progress, f"Ray worker on {who} died; its files go to another worker")
        if self._replacements < 2 * max(1, self._pool):
            self._replacements += 1
            try:
                self._start(1)
            except RayUnavailable as exc:
                _notice(progress, f"no replacement worker: {exc}")
        if not self._actors:
            raise RayUnavailable("every Ray worker died: what was committed is kept; run the ingest again to resume")

    # -- reading -------------------------------------------------------------------------------------

    def read(self, changed: Iterator[Changed], progress: Progress) -> Iterator[Pending | Failure]:
        import ray
        from ray.exceptions import RayActorError, RayTaskError

        first = next(changed, None)
        if first is None:
            return  # nothing changed: no worker is started, no model loaded anywhere
        self._pool = self._pool or self._pool_size()
        if len(self._actors) < self._pool:  # a second run on this reader reuses its workers
            self._start(self._pool - len(self._actors))
        waiting: deque[_Task] = deque([_Task(first)])  # files sent again after their worker died
        in_flight: dict = {}  # ObjectRef -> (task, actor)
        exhausted = False
        while True:
            while len(in_flight) < IN_FLIGHT_PER_WORKER * len(self._actors):
                if not waiting and not exhausted:
                    item = next(changed, None)  # the driver reads the next file's bytes only now
                    if item is None:
                        exhausted = True
                    else:
                        waiting.append(_Task(item))
                if not waiting:
                    break
                task = waiting.popleft()
                actor = min(self._actors, key=lambda a: sum(held is a for _, held in in_flight.values()))
                in_flight[actor.read.remote(task.item)] = (task, actor)
            self._report_busy(progress, in_flight)
            if not in_flight:
                return
            ready, _ = ray.wait(list(in_flight), num_returns=1, timeout=1.0)
            if not ready:
                continue
            task, actor = in_flight.pop(ready[0])
            try:
                loaded: Loaded = ray.get(ready[0])
            except RayActorError:
                task.attempts += 1
                self._lose(actor, progress)
                if task.attempts >= MAX_ATTEMPTS:
                    yield Failure(str(task.item.path), f"its Ray worker died {task.attempts} times while reading it")
                else:
                    self.stats.resubmitted += 1
                    waiting.append(task)
                continue
            except RayTaskError as exc:  # an unexpected error inside the loaders: this file only
                cause = exc.cause if getattr(exc, "cause", None) is not None else exc
                where = self._info.get(actor)
                node = f" (on Ray worker {where.node})" if where else ""
                yield Failure(str(task.item.path), f"{type(cause).__name__}: {_first_line(cause)}{node}")
                continue
            self.stats.files += 1
            self.stats.busy_seconds += loaded.seconds
            yield loaded.result

    def _report_busy(self, progress: Progress, in_flight: dict) -> None:
        report = getattr(progress, "workers", None)
        if report is not None:
            busy = len({id(actor) for _, actor in in_flight.values()})
            report(busy, len(self._actors))


def _notice(progress: Progress, message: str) -> None:
    notice = getattr(progress, "notice", None)
    if notice is not None:
        notice(message)
    else:
        logging.getLogger("rag.ingest").warning(message)
