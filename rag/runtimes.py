"""Embedding runtimes: which engine runs the model (torch, ONNX Runtime, OpenVINO) at which precision.

Owns the names a user types (`--embed-backend` / RAG_EMBED_BACKEND) and what "auto" means. The
invariant: every name resolves to exactly one `Runtime`, whose `.name` (e.g. "onnx-int8") is what
an index records beside the model id; two names that resolve to the same runtime produce the same
vectors, and an index's vectors all come from one runtime (an ingest in another is refused).
Questions are another matter (`query_runtime`): every fp32 runtime embeds them alike.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from rag.errors import ConfigError

Backend = Literal["torch", "onnx", "openvino"]
Precision = Literal["fp32", "int8"]

BACKENDS: tuple[Backend, ...] = ("torch", "onnx", "openvino")
# torch runs fp32 only: int8 is what the exported runtimes are for.
RUNTIME_NAMES = ("torch", "onnx-fp32", "onnx-int8", "openvino-fp32", "openvino-int8")
# What "auto" resolves to for a new index: among the runtimes whose hit@5 and MRR@5 stay within
# 0.01 of torch fp32 on every labelled set (bench/quality.py; both int8 runtimes miss), the one
# that ingests fastest (bench/ingest.py). Change it only by re-measuring: bench/RESULTS.md,
# "Embedding runtimes", has the figures.
AUTO_RUNTIME = "openvino-fp32"
# Questions on any fp32 index go through this runtime: fp32 vectors of the same weights agree
# across runtimes above cosine 0.9999 (tests/test_embedder.py), so the choice is only speed, and
# ONNX Runtime starts fastest (bench/latency.py). An int8 index is asked through its own runtime:
# int8 vectors differ from fp32 ones by up to 0.05 of cosine.
QUERY_FP32 = "onnx-fp32"
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
        """Whether this runtime runs a model file exported from the weights (cached on first use)."""
        return self.backend != "torch"


def parse_runtime(text: str) -> Runtime:
    """'auto', 'torch', 'torch-fp32', 'onnx' (= onnx-fp32), 'onnx-int8', 'openvino-fp32', ..."""
    spelled = text.strip().lower()
    if spelled == "auto":
        spelled = AUTO_RUNTIME
    backend, _, precision = spelled.partition("-")
    precision = precision or "fp32"
    if backend not in BACKENDS or precision not in ("fp32", "int8") or (backend == "torch" and precision != "fp32"):
        raise ConfigError(
            f"unknown embedding backend {text!r}: use auto, {', '.join(RUNTIME_NAMES)} (RAG_EMBED_BACKEND / --embed-backend)"
        )
    return Runtime(backend, precision)  # type: ignore[arg-type]


def query_runtime(built_with: Runtime) -> Runtime:
    """The runtime questions go through on an index whose vectors `built_with` made."""
    return parse_runtime(QUERY_FP32) if built_with.precision == "fp32" else built_with
