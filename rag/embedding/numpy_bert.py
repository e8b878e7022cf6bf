"""A BERT encoder in numpy, over the weights memory-mapped from the model's own model.safetensors.

Why it exists: a question is a dozen word pieces, and the fastest way to embed it from a cold start
is to load nothing. ONNX Runtime costs a 25 ms import and a 120-170 ms session (it parses the
90 MB graph and pre-packs every weight) before its first 6 ms query; this reads the safetensors
header (11 KB), maps the file, and runs six layers of matrix products through the BLAS numpy
already loaded: the pages a question touches come from the page cache on first use. It is how a
command that asks once embeds its question on an fp32 or bf16 index (rag.runtimes.QUERY_FP32);
chat and the servers, which ask many, use ONNX Runtime (5 ms a question against 12 here).
`bench/latency.py` has the figures.

What it computes is BertModel's forward pass exactly as transformers writes it (absolute position
embeddings, post-LayerNorm, exact GELU), then sentence-transformers' mean pooling: vectors agree
with onnx-fp32's above cosine 0.99999 (tests/test_embedder.py). Only that architecture is run
(`supports`): any other model's questions go through onnx-fp32.

GELU needs erf, which numpy lacks: `_erf` is accurate to float32's rounding (ONNX Runtime's own Erf
kernel is a polynomial too), so it is not where runtimes differ.
"""

from __future__ import annotations

import json
import mmap
import struct
from pathlib import Path

import numpy as np

SAFETENSORS = "model.safetensors"
_DTYPES = {"F32": np.float32, "F16": np.float16, "I64": np.int64}
_ACTIVATIONS = ("gelu", "gelu_python")  # both are the exact erf GELU in transformers


def read_config(folder: Path) -> dict:
    path = folder / "config.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def supports(folder: Path) -> bool:
    """Whether `folder` (a transformer module's folder) holds a model this encoder runs as
    transformers would: a BERT with absolute positions, exact GELU and float32 safetensors."""
    config = read_config(folder)
    return (config.get("model_type") == "bert"
            and config.get("position_embedding_type", "absolute") == "absolute"
            and config.get("hidden_act", "gelu") in _ACTIVATIONS
            and (folder / SAFETENSORS).is_file())


def load_safetensors(path: Path) -> dict[str, np.ndarray]:
    """Every tensor of a safetensors file as a read-only array over one memory map (no copy)."""
    with open(path, "rb") as handle:  # the map outlives the file object; plain arrays, not np.memmap
        (length,) = struct.unpack("<Q", handle.read(8))
        header = json.loads(handle.read(length))
        data = np.frombuffer(mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ), dtype=np.uint8)[8 + length:]
    tensors = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        dtype = _DTYPES.get(entry["dtype"])
        if dtype is None:
            raise ValueError(f"{path}: tensor {name} has dtype {entry['dtype']}, which the numpy encoder does not read")
        start, end = entry["data_offsets"]
        tensors[name] = data[start:end].view(dtype).reshape(entry["shape"])
    return tensors


class NumpyBert:
    """BertModel's last hidden state for a padded batch: `__call__(ids, mask, types)`, as the
    exported runners are called (rag.embedding.embedder._ExportedEngine)."""

    def __init__(self, folder: Path):
        config = read_config(folder)
        weights = load_safetensors(folder / SAFETENSORS)
        prefix = "bert." if "bert.embeddings.word_embeddings.weight" in weights else ""
        # F16 checkpoints are upcast: fp32 throughout, as transformers runs them on a CPU.
        self.w = {name.removeprefix(prefix): (array.astype(np.float32) if array.dtype == np.float16 else array)
                  for name, array in weights.items()}
        self.layers = int(config["num_hidden_layers"])
        self.heads = int(config["num_attention_heads"])
        self.eps = float(config.get("layer_norm_eps", 1e-12))
        for name in ("embeddings.word_embeddings.weight", f"encoder.layer.{self.layers - 1}.output.dense.weight"):
            if name not in self.w:
                raise ValueError(f"{folder / SAFETENSORS} has no {name}: not a BERT model the numpy encoder can run")

    def __call__(self, ids: np.ndarray, mask: np.ndarray, types: np.ndarray) -> np.ndarray:
        w = self.w
        batch, width = ids.shape
        x = (w["embeddings.word_embeddings.weight"][ids]
             + w["embeddings.position_embeddings.weight"][:width][None]
             + w["embeddings.token_type_embeddings.weight"][types])
        x = self._norm(x, "embeddings.LayerNorm")
        # transformers adds the dtype's minimum to masked scores, so padding weighs exactly 0
        blocked = np.where(mask[:, None, None, :] > 0, np.float32(0), np.finfo(np.float32).min)
        for layer in range(self.layers):
            x = self._layer(x, f"encoder.layer.{layer}.", blocked)
        return x

    def _layer(self, x: np.ndarray, p: str, blocked: np.ndarray) -> np.ndarray:
        batch, width, hidden = x.shape
        size = hidden // self.heads

        def heads(name: str) -> np.ndarray:
            projected = self._linear(x, p + f"attention.self.{name}")
            return projected.reshape(batch, width, self.heads, size).transpose(0, 2, 1, 3)

        scores = heads("query") @ heads("key").transpose(0, 1, 3, 2) / np.float32(np.sqrt(size)) + blocked
        scores = np.exp(scores - scores.max(axis=-1, keepdims=True))
        scores /= scores.sum(axis=-1, keepdims=True)
        context = (scores @ heads("value")).transpose(0, 2, 1, 3).reshape(batch, width, hidden)
        x = self._norm(self._linear(context, p + "attention.output.dense") + x, p + "attention.output.LayerNorm")
        inner = self._linear(x, p + "intermediate.dense")
        inner = 0.5 * inner * (1.0 + _erf(inner * np.float32(1 / np.sqrt(2))))
        return self._norm(self._linear(inner, p + "output.dense") + x, p + "output.LayerNorm")

    def _linear(self, x: np.ndarray, name: str) -> np.ndarray:
        # A weight is stored (out, in). W @ x.T reads it row by row, which BLAS does in half the
        # time of x @ W.T (across the rows) and with no transposed copy to make first.
        rows = x.reshape(-1, x.shape[-1])
        out = (self.w[name + ".weight"] @ rows.T).T + self.w[name + ".bias"]
        return out.reshape(*x.shape[:-1], out.shape[-1])

    def _norm(self, x: np.ndarray, name: str) -> np.ndarray:
        mean = x.mean(axis=-1, keepdims=True)
        centred = x - mean
        variance = (centred * centred).mean(axis=-1, keepdims=True)
        return centred / np.sqrt(variance + np.float32(self.eps)) * self.w[name + ".weight"] + self.w[name + ".bias"]


def _erf(x: np.ndarray) -> np.ndarray:
    """erf by Abramowitz and Stegun 7.1.26 (absolute error under 1.5e-7, float32's own rounding
    near 1), in float64 so the polynomial adds no error of its own."""
    a = np.abs(x.astype(np.float64))
    t = 1.0 / (1.0 + 0.3275911 * a)
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))))
    return (np.sign(x) * (1.0 - poly * np.exp(-a * a))).astype(np.float32)
