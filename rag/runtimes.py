"""Embedding runtimes: which engine runs the model (torch, ONNX Runtime, OpenVINO) at which precision.

Owns the names a user types (`--embed-backend` / RAG_EMBED_BACKEND) and what "auto" means. The
invariant: every name resolves to exactly one `Runtime`, whose `.name` (e.g. "onnx-int8") is what
an index records beside the model id; two names that resolve to the same runtime produce the same
vectors, and an index's vectors all come from one runtime (an ingest in another is refused).
Questions are another matter (`query_runtime`): every fp32 runtime embeds them alike, and
alike enough to bf16 and openvino-int8 document vectors.
"""

from __future__ import annotations

import functools
import os
import sys
from dataclasses import dataclass
from typing import Callable, Literal

from rag.errors import ConfigError

Backend = Literal["torch", "onnx", "openvino", "numpy"]
Precision = Literal["fp32", "bf16", "int8"]

BACKENDS: tuple[Backend, ...] = ("torch", "onnx", "openvino", "numpy")
# torch runs fp32 only: int8 is what the exported runtimes are for. bf16 is OpenVINO's only: ONNX
# Runtime 1.32's CPU provider has no bf16 kernel for MatMul, Gemm or Add (a bf16 graph fails to load
# with NOT_IMPLEMENTED), so there is no onnx-bf16 to be faster.
RUNTIME_NAMES = ("torch", "onnx-fp32", "onnx-int8", "openvino-fp32", "openvino-bf16", "openvino-int8", "numpy-fp32")
# Questions on any fp32, bf16 or openvino-int8 index go through this runtime: fp32 vectors of the
# same weights agree across runtimes above cosine 0.9999 (tests/test_embedder.py), and openvino-bf16
# document vectors agree with onnx-fp32 ones at cosine 0.99997 minimum, 0.99998 median (400 windows
# of the Python howto pages, bench/precision.py; rintro_dev scores the same either way), so the
# choice is only speed, and a question is fastest from a cold start where nothing is loaded:
# numpy-fp32 maps the weights and runs BERT through numpy's BLAS (rag.embedding.numpy_bert; ~25 ms
# to a first vector against ONNX Runtime's ~200 ms, bench/latency.py). A model that is not a BERT
# goes through onnx-fp32 instead (rag.embedding.embedder). openvino-int8 document vectors differ
# more (cosine to fp32 0.99 minimum), yet fp32 questions against them score as int8 questions do on
# SciFact and the labelled sets (bench/RESULTS.md, "fp32 questions on int8 documents"), and a cold
# `rag ask` takes 0.3 s instead of int8's 0.7 s.
QUERY_FP32 = "numpy-fp32"
# onnx-int8 quantizes activations per batch at run time; fp32 questions were not measured against
# its vectors, so its indexes are still asked through it.
ASKED_IN_OWN_RUNTIME = ("onnx-int8",)


@dataclass(frozen=True)
class Runtime:
    backend: Backend
    precision: Precision

    @property
    def name(self) -> str:
        """The canonical spelling, recorded in the index: "torch" for torch fp32, else backend-precision."""
        return "torch" if self.backend == "torch" else f"{self.backend}-{self.precision}"

    @property
    def exported(self) -> bool:
        """Whether this runtime runs a model file exported from the weights (cached on first use);
        torch and numpy run the weights file itself."""
        return self.backend not in ("torch", "numpy")

    @property
    def model(self) -> Runtime:
        """The runtime whose exported model file this one runs: openvino-bf16 compiles the
        openvino-fp32 IR with bf16 inference precision (a setting, not a second file)."""
        return Runtime(self.backend, "fp32") if self.precision == "bf16" else self


@functools.cache  # the CPU does not change while we run; the query costs an OpenVINO import
def _openvino_capabilities() -> tuple[str, ...] | None:
    """OpenVINO's OPTIMIZATION_CAPABILITIES for the CPU (what it will actually do), or None where it
    does not import or has no CPU plugin."""
    try:
        no_telemetry()
        import openvino

        return tuple(openvino.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"))
    except Exception:
        return None


@functools.cache
def cpu_supports_bf16() -> bool:
    """Whether OpenVINO runs bf16 natively here: its own capabilities when it imports, else the
    AVX512_BF16 / AMX-BF16 flags in /proc/cpuinfo."""
    capabilities = _openvino_capabilities()
    if capabilities is not None:
        return "BF16" in capabilities
    flags = _cpu_flags()
    return "avx512_bf16" in flags or "amx_bf16" in flags


def _cpu_flags() -> list[str]:
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as handle:
            return next((line.split(":", 1)[1].split() for line in handle if line.startswith("flags")), [])
    except OSError:
        return []


# The instructions that make int8 matrix products fast (VNNI's dot product of four int8 pairs into
# an int32, or AMX's tiles); without them OpenVINO still lists INT8 but emulates it with AVX2.
FAST_INT8_FLAGS = ("avx512_vnni", "avx_vnni", "amx_int8")


@functools.cache
def cpu_supports_int8() -> bool:
    """Whether OpenVINO runs int8 fast here: VNNI or AMX among the CPU's flags, and INT8 in its
    capabilities where it imports (the flags alone where it does not)."""
    if not any(flag in FAST_INT8_FLAGS for flag in _cpu_flags()):
        return False
    capabilities = _openvino_capabilities()
    return capabilities is None or "INT8" in capabilities


def nncf_installed() -> bool:
    """Whether the openvino-int8 export can be made here: NNCF (rag[int8]) importable. find_spec,
    not an import: NNCF takes seconds to import and is needed only at export time."""
    from rag.extras import installed

    return installed("nncf")


NVIDIA_DEVICES = ("/dev/nvidiactl", "/proc/driver/nvidia/version")


@functools.cache  # the devices do not change while we run; the query costs a torch import
def cuda_usable(devices: tuple[str, ...] = NVIDIA_DEVICES) -> bool:
    """Whether torch can run on a CUDA device here. The NVIDIA driver's files are looked for
    first, so a machine without them (every CPU-only one) never pays torch's 3-7 s import to hear no."""
    if not any(os.path.exists(path) for path in devices):
        return False
    try:
        import torch

        return bool(torch.cuda.is_available())
    except Exception:  # torch without CUDA support, a broken driver: the CPU runtimes then
        return False


def torch_device(cuda: Callable[[], bool] = cuda_usable) -> str:
    """Where the torch runtime runs: the GPU when torch can use one (fp32 either way: the vectors
    agree with the CPU's, so an index may be built on one and asked on the other)."""
    return "cuda" if cuda() else "cpu"


def auto_runtime(supports_bf16: Callable[[], bool] = cpu_supports_bf16, cuda: Callable[[], bool] = cuda_usable,
                 supports_int8: Callable[[], bool] = cpu_supports_int8,
                 int8_export: Callable[[], bool] = nncf_installed) -> str:
    """What "auto" means for a new index: torch on a machine with a CUDA device torch can use (a
    GPU embeds tens of times faster than any CPU runtime here); else openvino-int8 where the CPU
    runs int8 fast and NNCF is installed to make the export (rag[int8]); else openvino-bf16 where
    the CPU runs bf16 natively; else openvino-fp32 (an existing index keeps its own runtime, rag.index).

    The fastest ingest (bench/ingest.py, bench/precision.py: int8 1.46x bf16, bf16 1.6x fp32) among
    the runtimes that score as fp32 does, with questions in fp32 (QUERY_FP32): SciFact nDCG@10
    within 0.005 and the labelled sets' average hit@5 and MRR@5 within 0.01 (bench/quality.py,
    `rag eval --beir`). Change it only by re-measuring: bench/RESULTS.md, "Embedding runtimes",
    has the figures. The capability queries import OpenVINO, so only what is about to embed asks
    them (settings accept "auto" unresolved: check_runtime_name)."""
    if cuda():
        return "torch"
    if supports_int8() and int8_export():
        return "openvino-int8"
    return "openvino-bf16" if supports_bf16() else "openvino-fp32"


def is_auto(text: str) -> bool:
    """Whether a runtime setting says "auto", however it is spelled ("Auto", " auto")."""
    return text.strip().lower() == "auto"


def parse_runtime(text: str) -> Runtime:
    """'auto', 'torch', 'torch-fp32', 'onnx' (= onnx-fp32), 'onnx-int8', 'openvino-bf16', ..."""
    spelled = text.strip().lower()
    if spelled == "auto":
        spelled = auto_runtime()
    backend, _, precision = spelled.partition("-")
    precision = precision or "fp32"
    if (backend not in BACKENDS or precision not in ("fp32", "bf16", "int8")
            or (backend in ("torch", "numpy") and precision != "fp32") or (precision == "bf16" and backend != "openvino")):
        raise ConfigError(
            f"unknown embedding backend {text!r}: use auto, {', '.join(RUNTIME_NAMES)} (RAG_EMBED_BACKEND / --embed-backend)"
        )
    return Runtime(backend, precision)  # type: ignore[arg-type]


def check_runtime_name(text: str) -> None:
    """Raise ConfigError unless `text` names a runtime; "auto" passes without asking the CPU."""
    if not is_auto(text):
        parse_runtime(text)


# A process that answers many questions (chat, the servers) pays a start-up once and each
# question's cost many times: there ONNX Runtime, 5 ms a question against numpy's 12 (bench/latency.py).
QUERY_FP32_MANY = "onnx-fp32"


def query_runtime(built_with: Runtime, wanted: str = "auto") -> Runtime:
    """The runtime questions go through on an index whose vectors `built_with` made: `wanted`
    (Settings.query_backend, an fp32 runtime) when set, else QUERY_FP32; an onnx-int8 index is
    asked through onnx-int8 whatever is set (ASKED_IN_OWN_RUNTIME)."""
    if built_with.name in ASKED_IN_OWN_RUNTIME:
        return built_with
    return parse_runtime(QUERY_FP32 if is_auto(wanted) else wanted)


def check_query_backend(text: str) -> None:
    """Questions embed in fp32 (any fp32 runtime makes the same vectors): auto or an fp32 runtime."""
    if not is_auto(text):
        try:
            fp32 = parse_runtime(text).precision == "fp32"
        except ConfigError:
            fp32 = False
        if not fp32:
            choices = ", ".join(name for name in RUNTIME_NAMES if not name.endswith(("int8", "bf16")))
            raise ConfigError(f"unknown question runtime {text!r} (RAG_QUERY_BACKEND): use auto, {choices}")


def no_telemetry() -> None:
    """Call before the first `import onnxruntime`, `import openvino` or `import nncf`.

    openvino_telemetry reports usage unless a consent file says no; with the module marked absent,
    NNCF and OpenVINO's converter (imported by `import openvino`) fall back to their built-in stubs
    and send nothing. ONNX Runtime (1.32, Linux) writes a device id and a telemetry database under
    $XDG_CACHE_HOME/Microsoft/DeveloperTools/.onnxruntime as it is imported, unless
    ORT_DISABLE_TELEMETRY is set; its C++ reads only the environment, so rag sets the variable
    (a user's own setting wins)."""
    if "openvino_telemetry" not in sys.modules:
        sys.modules["openvino_telemetry"] = None  # type: ignore[assignment]
    os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
