"""Embedding speed and agreement per precision: openvino-fp32 against openvino-bf16 (and onnx-fp32).

usage: python bench/precision.py FOLDER_OR_FILE [...] [--windows 400] [--repeats 3]
                                 [--backends openvino-fp32,openvino-bf16,onnx-fp32]
       python bench/precision.py FOLDER --backends openvino-bf16@latency,openvino-bf16,onnx-fp32

A name ending "@latency" runs that runtime as one stream on every core (OpenVINO's LATENCY hint,
how ingests ran before streams); a plain name runs it as `rag ingest` does.

The documents' text in plain 254-token windows (bench/ingest.py's `windows`, the first --windows of
them), embedded by each runtime in turn, --repeats rounds with the order rotated every round so
that a change in the machine's load hits every runtime alike (each model is loaded, and exported if
need be, before the clock starts). Prints per runtime the median and best tokens/s and the median
speed against the first backend, then how far each runtime's vectors are from the first's and from
onnx-fp32's (questions on a bf16 index go through onnx-fp32, rag.runtimes.query_runtime): min and
median cosine over the windows. With --questions, the questions of those JSONL files ("question"
or, as in a BEIR queries.jsonl, "text" on each line) are embedded as questions (embed_query) by each
runtime and by rag.runtimes.QUERY_FP32, what they go through on an index of any of these runtimes
but onnx-int8, and the cosine of each runtime's vector to QUERY_FP32's is printed (min, 5th
percentile, median). Run by hand with `nice`, never from the tests.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# bench/ingest.py is named like the `ingest` package; keep this folder off the import path.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
MODEL = "all-MiniLM-L6-v2"


def bench_ingest():
    """bench/ingest.py, loaded by path (its name would shadow the `ingest` package)."""
    spec = importlib.util.spec_from_file_location("bench_ingest", Path(__file__).with_name("ingest.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("paths", nargs="+")
    parser.add_argument("--windows", type=int, default=400)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--backends", default="openvino-fp32,openvino-bf16,onnx-fp32")
    parser.add_argument("--questions", nargs="*", default=[], type=Path, metavar="QUESTIONS.jsonl")
    args = parser.parse_args()
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    print(f"load average at start {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores", flush=True)

    from rag.embedding.embedder import Embedder

    # "openvino-bf16@latency": one stream on every core (LATENCY), what an ingest ran before
    # streams (rag.embedding.embedder._openvino_each); plain names run as an ingest does now
    embedders = {name: Embedder(MODEL, name.partition("@")[0],
                                threads=os.cpu_count() if name.endswith("@latency") else None).load()
                 for name in backends}
    first = embedders[backends[0]]
    texts = bench_ingest().windows(args.paths, first)[:args.windows]
    tokens = sum(first.count_tokens(texts))
    print(f"{len(texts)} windows, {tokens} tokens from {' '.join(args.paths)}", flush=True)

    seconds: dict[str, list[float]] = {name: [] for name in backends}
    vectors = {}
    for round_ in range(args.repeats):
        order = backends[round_ % len(backends):] + backends[:round_ % len(backends)]
        for name in order:
            started = time.perf_counter()
            vectors[name] = embedders[name].embed_documents(texts)
            seconds[name].append(time.perf_counter() - started)
            print(f"round {round_ + 1} {name}: {seconds[name][-1]:.1f} s (load {os.getloadavg()[0]:.2f})", flush=True)

    reference = statistics.median(seconds[backends[0]])
    print()
    print(f"{'runtime':<22} {'median tok/s':>12} {'best tok/s':>10} {'speed vs ' + backends[0]:>22} "
          f"{'cos vs ' + backends[0] + ' min/median':>34} {'cos vs onnx-fp32 min/median':>28}")
    for name in backends:
        median = statistics.median(seconds[name])
        cells = []
        for other in (backends[0], "onnx-fp32"):
            if other not in vectors:
                cells.append("")
                continue
            cosines = (vectors[name] * vectors[other]).sum(axis=1)
            cells.append(f"{cosines.min():.6f} / {statistics.median(cosines.tolist()):.6f}")
        print(f"{name:<22} {tokens / median:>12.0f} {tokens / min(seconds[name]):>10.0f} "
              f"{reference / median:>21.2f}x {cells[0]:>34} {cells[1]:>28}")
    if args.questions:
        question_agreement(args.questions, {name.partition("@")[0]: embedders[name] for name in backends})
    print(f"load average at end {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")


def question_agreement(files: list[Path], embedders: dict) -> None:
    """Cosine of each runtime's question vectors to QUERY_FP32's, over the questions in `files`."""
    import json

    import numpy as np

    from rag.embedding.embedder import Embedder
    from rag.runtimes import QUERY_FP32

    questions = []
    for path in files:
        rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        questions += [row.get("question") or row["text"] for row in rows]
    fp32 = Embedder(MODEL, QUERY_FP32).load()
    reference = np.stack([fp32.embed_query(q) for q in questions])
    print(f"\n{len(questions)} questions from {' '.join(map(str, files))}, embedded as questions")
    print(f"{'runtime':<22} {'cos vs ' + QUERY_FP32 + ' min / p5 / median':>40}")
    for name, embedder in embedders.items():
        cosines = (np.stack([embedder.embed_query(q) for q in questions]) * reference).sum(axis=1)
        print(f"{name:<22} {cosines.min():>14.6f} / {np.percentile(cosines, 5):.6f} / {np.median(cosines):.6f}")


if __name__ == "__main__":
    main()
