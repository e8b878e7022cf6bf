"""Exported embedding models: ONNX and OpenVINO files made on this machine from the model's own weights.

Owns the model cache, `<cache>/<sha256 of the weights, first 16 hex>/<runtime>/` (the cache folder
is RAG_CACHE_DIR, else $XDG_CACHE_HOME/rag/models; see rag.config.model_cache_dir). Nothing is
downloaded: the fp32 ONNX graph is traced from the weights with torch.onnx.export, int8 models are
quantized locally (ONNX: onnxruntime.quantization, dynamic; OpenVINO: NNCF, static, calibrated on
rag/embedding/calibration.txt, shipped with rag, so the same weights always give the same model), and
OpenVINO IR is converted from the ONNX graph by OpenVINO's own reader (not its `ovc` tool, which
reports telemetry unless opted out; see rag.runtimes.no_telemetry).

Invariant: a runtime folder is complete or absent. It is built in a temp folder beside it, stamped
with a marker listing every file's size and sha256, and renamed into place; a folder whose marker
is missing or does not match its files is rebuilt, never used. Only building imports torch.

Also OpenVINO's compiled models (its CACHE_DIR), `<cache>/<sha>/openvino-compiled/<OpenVINO
version>/<runtime>.<hint>.<precision>-<marker's sha>/`: a compile from the blob takes about half
the time. OpenVINO reads a damaged blob without a word (bytes zeroed inside one gave NaN vectors),
so the same rule holds: a blob is used only if its size and sha256 match the marker written after
OpenVINO made it; any other file there is deleted first, and OpenVINO compiles afresh and writes
it again. OpenVINO names a blob by the model file's path and the config alone, so the folder
also names the export's own marker: a re-export (EXPORT_FORMAT) never meets an old blob. Folders
of another OpenVINO version or export are deleted when a new one is made.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator

from rag.errors import ExportError, ModelNotFound
from rag.extras import require
from rag.runtimes import Runtime, no_telemetry

log = logging.getLogger("rag.embedding.export")

MARKER = "rag-export.json"
COMPILED = "openvino-compiled"
COMPILED_MARKER = "rag-compiled.json"
# Bump when the way a model is exported changes: old cache folders are then rebuilt.
EXPORT_FORMAT = 1
ONNX_OPSET = 17
CALIBRATION = Path(__file__).with_name("calibration.txt")
INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")
MODEL_FILES = {"onnx": "model.onnx", "openvino": "model.xml"}
WEIGHT_NAMES = ("model.safetensors", "pytorch_model.bin")


def transformer_folder(model_folder: Path) -> Path:
    """The sentence-transformers Transformer module's folder (the model root, or e.g. 0_Transformer)."""
    modules = model_folder / "modules.json"
    if modules.is_file():
        for module in json.loads(modules.read_text(encoding="utf-8")):
            if module.get("type", "").endswith("models.Transformer"):
                return model_folder / module.get("path", "")
    return model_folder


def weights_file(model_folder: Path) -> Path:
    folder = transformer_folder(model_folder)
    for name in WEIGHT_NAMES:
        if (folder / name).is_file():
            return folder / name
    raise ModelNotFound(f"no model weights ({' or '.join(WEIGHT_NAMES)}) in {folder}")


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def weights_key(weights: Path, cache: Path) -> str:
    """The first 16 hex digits of the weights' sha256, remembered per (path, size, mtime) so that a
    cold query does not re-hash 90 MB of weights every time."""
    stat = weights.stat()
    seen = hashlib.sha256(f"{weights.resolve()}\0{stat.st_size}\0{stat.st_mtime_ns}".encode()).hexdigest()[:24]
    memo = cache / ".weights" / seen
    with contextlib.suppress(OSError):
        key = memo.read_text(encoding="ascii").strip()
        if len(key) == 16:
            return key
    key = file_sha256(weights)[:16]
    with contextlib.suppress(OSError):
        _write_atomic(memo, key)
    return key


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.replace(tmp, path)


def model_file(folder: Path, runtime: Runtime) -> Path:
    return folder / MODEL_FILES[runtime.backend]


def verified(folder: Path, runtime: Runtime, key: str) -> bool:
    """Whether `folder` holds a complete export of `runtime` for weights `key` (every file hashed)."""
    try:
        marker = json.loads((folder / MARKER).read_text(encoding="utf-8"))
        if (marker.get("format"), marker.get("runtime"), marker.get("weights")) != (EXPORT_FORMAT, runtime.name, key):
            return False
        files = marker["files"]
        if MODEL_FILES[runtime.backend] not in files:
            return False
        for name, (size, digest) in files.items():
            path = folder / name
            if path.stat().st_size != size or file_sha256(path) != digest:
                return False
        return True
    except (OSError, ValueError, KeyError, TypeError):
        return False


def exported_model(model_folder: Path, runtime: Runtime, cache: Path) -> Path:
    """The verified folder holding `runtime`'s model for the weights in `model_folder`, exported now
    (minutes of CPU at most, once per machine) if it is missing or corrupt."""
    if not runtime.exported:
        raise ValueError(f"{runtime.name} runs the weights directly; nothing to export")
    runtime = runtime.model  # openvino-bf16 runs openvino-fp32's file, compiled at bf16
    key = weights_key(weights_file(model_folder), cache)
    target = cache / key / runtime.name
    if verified(target, runtime, key):
        return target
    try:
        with _lock(cache / key / f".lock-{runtime.name}"):
            if verified(target, runtime, key):  # another process built it while we waited
                return target
            if target.exists():
                log.warning("rag: the cached %s model in %s is incomplete or corrupt; rebuilding it", runtime.name, target)
            else:
                log.warning("rag: exporting the embedding model to %s (first use; cached in %s)", runtime.name, target)
            _build(model_folder, runtime, cache, key, target)
    except OSError as exc:
        raise ExportError(
            f"cannot write the model cache at {cache} ({exc.strerror or exc}): set RAG_CACHE_DIR to a writable folder, "
            f"or use --embed-backend torch"
        ) from exc
    return target


@contextlib.contextmanager
def _lock(path: Path) -> Iterator[None]:
    """One exporter per runtime folder at a time, across processes (the kernel drops it on kill)."""
    import fcntl

    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextlib.contextmanager
def compiled_cache(exported: Path, version: str, name: str) -> Iterator[Path | None]:
    """The folder to give OpenVINO as CACHE_DIR for compiling the model in `exported` as `name`
    (hint and precision), holding only a verified blob or nothing; None when the cache cannot be
    written (then compile without it). Held under a lock until the compile is done, then any blob
    OpenVINO wrote is stamped."""
    root = exported.parent / COMPILED
    with contextlib.ExitStack() as held:
        try:
            export_id = hashlib.sha256((exported / MARKER).read_bytes()).hexdigest()[:16]
            folder = root / _file_name(version) / f"{name}-{export_id}"
            held.enter_context(_lock(root / f".lock-{name}"))
            _keep_only(root, folder.parent.name)  # another OpenVINO's blobs
            _keep_only(folder.parent, folder.name, f"{name}-")  # another export's
            _drop_unverified(folder)
        except OSError as exc:
            log.warning("rag: cannot use the compiled-model cache in %s (%s); compiling without it", root,
                        exc.strerror or exc)
            folder = None
        yield folder
        if folder is not None:
            try:
                _stamp_compiled(folder)
            except (OSError, ValueError) as exc:  # unrecorded, the blob is deleted and made again next time
                log.warning("rag: cannot record the compiled model in %s (%s)", folder, exc)


def _keep_only(parent: Path, keep: str, prefix: str = "") -> None:
    if parent.is_dir():
        for other in parent.iterdir():
            if other.is_dir() and other.name != keep and other.name.startswith(prefix):
                shutil.rmtree(other, ignore_errors=True)


def _file_name(text: str) -> str:
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in text)


def _drop_unverified(folder: Path) -> None:
    """Delete every file in `folder` that its marker does not vouch for (size and sha256)."""
    folder.mkdir(parents=True, exist_ok=True)
    marker = _compiled_marker(folder)
    kept = {}
    for path in folder.iterdir():
        if path.name == COMPILED_MARKER:
            continue
        entry = marker.get(path.name)
        if isinstance(entry, list) and path.is_file() and [path.stat().st_size, file_sha256(path)] == entry:
            kept[path.name] = entry
        else:
            log.warning("rag: the compiled model %s is not the one recorded; compiling again", path)
            shutil.rmtree(path) if path.is_dir() else path.unlink()
    if kept != marker:
        _write_atomic(folder / COMPILED_MARKER, json.dumps(kept, indent=1))


def _compiled_marker(folder: Path) -> dict:
    try:
        marker = json.loads((folder / COMPILED_MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return marker if isinstance(marker, dict) else {}


def _stamp_compiled(folder: Path) -> None:
    """Record the size and sha256 of the blobs OpenVINO wrote during this compile."""
    marker = _compiled_marker(folder)
    new = {path.name: [path.stat().st_size, file_sha256(path)] for path in folder.iterdir()
           if path.is_file() and path.name != COMPILED_MARKER and path.name not in marker}
    if new:
        _write_atomic(folder / COMPILED_MARKER, json.dumps({**marker, **new}, indent=1))


def _build(model_folder: Path, runtime: Runtime, cache: Path, key: str, target: Path) -> None:
    work = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".tmp-{runtime.name}-"))
    try:
        out = model_file(work, runtime)
        if runtime.name == "onnx-fp32":
            _export_onnx(model_folder, out)
        else:
            source = model_file(exported_model(model_folder, Runtime("onnx", "fp32"), cache), Runtime("onnx", "fp32"))
            if runtime.name == "onnx-int8":
                _quantize_dynamic(source, out)
            elif runtime.name == "openvino-fp32":
                _to_openvino(source, out)
            else:
                _quantize_openvino(model_folder, source, out)
        files = {
            path.name: [path.stat().st_size, file_sha256(path)] for path in sorted(work.iterdir()) if path.is_file()
        }
        marker = {"format": EXPORT_FORMAT, "runtime": runtime.name, "weights": key, "files": files}
        (work / MARKER).write_text(json.dumps(marker, indent=1), encoding="utf-8")
        if not verified(work, runtime, key):
            raise ExportError(f"the exported {runtime.name} model in {work} does not match its own marker")
        _check_loads(work, runtime)
        if target.exists():  # corrupt: move aside first, so the rename below is atomic
            stale = target.with_name(f".stale-{runtime.name}-{os.getpid()}")
            os.replace(target, stale)
            shutil.rmtree(stale, ignore_errors=True)
        os.replace(work, target)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise


def _check_loads(folder: Path, runtime: Runtime) -> None:
    """Load what was written (saving into the folder a model was read from once wrote empty files)."""
    no_telemetry()
    try:
        if runtime.backend == "onnx":
            import onnxruntime

            onnxruntime.InferenceSession(str(model_file(folder, runtime)), providers=["CPUExecutionProvider"])
        else:
            import openvino

            openvino.Core().read_model(str(model_file(folder, runtime)))
    except Exception as exc:  # ONNX Runtime's errors derive from Exception only (InvalidProtobuf, Fail...)
        raise ExportError(f"the exported {runtime.name} model does not load: {exc}") from exc


def _export_onnx(model_folder: Path, out: Path) -> None:
    """Trace the Transformer module to ONNX; pooling and normalising stay in numpy (rag.embedding.embedder),
    the same code for every exported runtime."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import torch
        from transformers import AutoModel
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()  # "Loading weights: 100%|..." on a first ingest's export
        # eager attention: sdpa traces shape checks as constants, valid only for the example shape
        model = AutoModel.from_pretrained(str(transformer_folder(model_folder)), attn_implementation="eager",
                                          local_files_only=True)
        model.eval()

        class LastHiddenState(torch.nn.Module):
            def __init__(self, inner):
                super().__init__()
                self.inner = inner

            def forward(self, input_ids, attention_mask, token_type_ids):
                return self.inner(input_ids=input_ids, attention_mask=attention_mask,
                                  token_type_ids=token_type_ids).last_hidden_state

        example = tuple(torch.ones((2, 16), dtype=torch.long) for _ in INPUT_NAMES)
        axes = {name: {0: "batch", 1: "sequence"} for name in (*INPUT_NAMES, "last_hidden_state")}
        with torch.no_grad():
            # dynamo=False: the TorchScript exporter needs neither onnxscript nor a network
            torch.onnx.export(LastHiddenState(model), example, str(out), input_names=list(INPUT_NAMES),
                              output_names=["last_hidden_state"], dynamic_axes=axes, opset_version=ONNX_OPSET,
                              dynamo=False)


def _quantize_dynamic(source: Path, out: Path) -> None:
    """int8 weights, activations quantized per batch at run time: no calibration needed."""
    no_telemetry()
    from onnxruntime.quantization import QuantType, quantize_dynamic

    # MatMul only: quantizing the embedding Gather costs accuracy and buys no speed
    with _quiet():
        quantize_dynamic(str(source), str(out), per_channel=True, weight_type=QuantType.QInt8,
                         op_types_to_quantize=["MatMul"])


def calibration_passages() -> list[str]:
    """The fixed calibration text shipped with rag: passages separated by blank lines."""
    text = CALIBRATION.read_text(encoding="utf-8")
    return [p.strip() for p in text.split("\n\n") if p.strip()]


def _calibration_inputs(model_folder: Path) -> list[dict]:
    """The shipped calibration passages as model inputs, one passage per batch (no padding)."""
    import numpy as np
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(transformer_folder(model_folder) / "tokenizer.json"))
    tokenizer.no_padding()
    tokenizer.enable_truncation(max_length=256)
    inputs = []
    for row in tokenizer.encode_batch(calibration_passages()):
        ids = np.array([row.ids], dtype=np.int64)
        inputs.append({"input_ids": ids, "attention_mask": np.ones_like(ids), "token_type_ids": np.zeros_like(ids)})
    return inputs


def _quantize_openvino(model_folder: Path, source: Path, out: Path) -> None:
    """int8 weights and activations (NNCF post-training quantization, transformer preset), the
    activation ranges measured on the shipped calibration passages."""
    require("int8", "exporting the openvino-int8 runtime", "nncf", alternative="use --embed-backend onnx-int8")
    no_telemetry()
    import openvino

    with _quiet():
        import nncf

        inputs = _calibration_inputs(model_folder)
        model = openvino.Core().read_model(str(source))
        quantized = nncf.quantize(model, nncf.Dataset(inputs), model_type=nncf.ModelType.TRANSFORMER,
                                  subset_size=len(inputs))
    openvino.save_model(quantized, str(out), compress_to_fp16=False)


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """The quantizers log progress and advice to the root logger and print progress bars."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        with open(os.devnull, "w") as devnull, contextlib.redirect_stdout(devnull):
            yield
    finally:
        root.setLevel(level)


def _to_openvino(source: Path, out: Path) -> None:
    no_telemetry()
    import openvino

    model = openvino.Core().read_model(str(source))
    # compress_to_fp16=False: fp32 means fp32 (save_model halves the weights by default)
    openvino.save_model(model, str(out), compress_to_fp16=False)
