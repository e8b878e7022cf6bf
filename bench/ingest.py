"""Ingest throughput per embedding runtime, against the bare sentence-transformers encoder, in one run.

usage: python bench/ingest.py FOLDER_OR_FILE [...] [--backends torch,onnx-int8,...] [--keep DIR]

1. The bare encoder (the baseline): every file `rag ingest` would read, loaded by rag's loaders,
   its text cut into plain 254-token windows (no overlap, no heading prefix), encoded by
   sentence-transformers on torch fp32 with rag's batch size.
2. Embedding alone, per runtime: the same windows through rag.embedding.embedder.Embedder (the exported
   model is built and loaded before the clock starts).
3. `rag ingest` per runtime (RAG_EMBED_BACKEND), into a fresh index each: wall seconds including
   start-up, the pipeline's own seconds from its summary line, peak RSS of that child; then an
   unchanged re-ingest of the last one (the incremental path).
Prints one table; ratios are against the bare encoder of step 1 (the goal for ingest is <= 0.5).
Run by hand with `nice`, never from the tests.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# This file is named like the `ingest` package; keep its folder off the import path.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
RAG = Path(sys.executable).parent / "rag"
WINDOW_TOKENS = 254  # all-MiniLM-L6-v2 reads 256 word pieces, two of them [CLS] and [SEP]
MODEL = "all-MiniLM-L6-v2"


# Linux keeps a process's peak RSS across exec, so a child forked from this process (torch and the
# bare model loaded, ~1.1 GB) would report at least that. `rag ingest` is forked from this small
# interpreter instead, which reports its peak as /usr/bin/time does (wait4).
MEASURE = ("import os, sys\npid = os.fork()\nif pid == 0:\n    os.execv(sys.argv[1], sys.argv[1:])\n"
           "_, status, usage = os.wait4(pid, 0)\nsys.stderr.write(f'\\npeak-rss-kb {usage.ru_maxrss}\\n')\n"
           "sys.exit(os.waitstatus_to_exitcode(status))")


def run_ingest(paths: list[str], index_dir: Path, backend: str) -> tuple[float, float, float, str]:
    """Wall s, pipeline s, peak RSS MB of `rag ingest` alone, summary line."""
    env = dict(os.environ, RAG_EMBED_BACKEND=backend)
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", MEASURE, str(RAG), "ingest", *paths, "--index-dir", str(index_dir)],
                          env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    wall = time.perf_counter() - started
    stderr = proc.stderr
    if proc.returncode not in (0, 1):
        sys.exit(f"rag ingest ({backend}) failed ({proc.returncode}):\n{stderr}")
    summary = [line for line in stderr.splitlines() if "chunks embedded in" in line][-1]
    pipeline = float(re.search(r"embedded in ([\d.]+) s", summary).group(1))
    rss_kb = int(re.search(r"^peak-rss-kb (\d+)$", stderr, re.M).group(1))
    return wall, pipeline, rss_kb / 1024, summary


def windows(paths: list[str], embedder) -> list[str]:
    """The documents' text in plain 254-token windows, as a bare encoder would be fed."""
    from ingest.discover import discover
    from ingest.formats import loader_for

    texts = []
    for path in discover([Path(p) for p in paths]).files:
        loader = loader_for(path)
        try:
            _, sections, _ = loader(path, path.read_bytes())
        except Exception:  # a file rag ingest reports and skips is skipped here too
            continue
        text = "\n\n".join(s.text for s in sections)
        offsets = embedder.token_offsets([text])[0]
        for start in range(0, len(offsets), WINDOW_TOKENS):
            last = offsets[min(start + WINDOW_TOKENS, len(offsets)) - 1]
            texts.append(text[offsets[start][0]:last[1]])
    return texts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("paths", nargs="+")
    parser.add_argument("--backends", default="torch,onnx-fp32,onnx-int8,openvino-fp32,openvino-int8")
    parser.add_argument("--keep", type=Path, help="folder for the indexes (default: a temp dir)")
    args = parser.parse_args()
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    scratch = args.keep or Path(tempfile.mkdtemp(prefix="rag-bench-"))
    print(f"load average at start {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores", flush=True)

    from rag.embedding.embedder import Embedder

    torch_embedder = Embedder(MODEL, "torch")
    texts = windows(args.paths, torch_embedder)
    tokens = sum(torch_embedder.count_tokens(texts))
    model = torch_embedder._model  # loaded before the clock starts
    started = time.perf_counter()
    model.encode(texts, batch_size=torch_embedder.batch_size, normalize_embeddings=True, convert_to_numpy=True,
                 show_progress_bar=False)
    bare = time.perf_counter() - started
    print(f"bare sentence-transformers torch fp32: {len(texts)} windows, {tokens} tokens, {bare:.1f} s", flush=True)

    rows = [("bare sentence-transformers (torch fp32)", f"{bare:.1f}", f"{len(texts) / bare:.1f}", "1.00",
             "", "", "", "", "", "")]
    index_dir = scratch
    for backend in backends:
        embedder = Embedder(MODEL, backend)
        embedder.embed_documents(["warm up"])  # exports on first use, and OpenVINO compiles: outside the timing
        started = time.perf_counter()
        embedder.embed_documents(texts)
        embed = time.perf_counter() - started
        index_dir = scratch / backend
        wall, pipeline, rss, summary = run_ingest(args.paths, index_dir, backend)
        chunks = int(re.search(r"(\d+) chunks embedded", summary).group(1))
        rows.append((f"rag {embedder.runtime}", f"{embed:.1f}", f"{len(texts) / embed:.1f}", f"{embed / bare:.2f}",
                     f"{chunks}", f"{wall:.1f}", f"{pipeline:.1f}", f"{chunks / pipeline:.1f}", f"{wall / bare:.2f}",
                     f"{rss:.0f}"))
        print(f"{backend}: embed {embed:.1f} s; ingest wall {wall:.1f} s, pipeline {pipeline:.1f} s; {summary}",
              flush=True)
    rewall, repipeline, _, _ = run_ingest(args.paths, index_dir, backends[-1])

    header = ("encoder", "windows s", "windows/s", "x bare", "ingest chunks", "ingest wall s", "pipeline s",
              "chunks/s", "wall/bare", "peak RSS MB")
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    print()
    print(f"{len(texts)} windows of <= {WINDOW_TOKENS} tokens ({tokens} tokens) from {' '.join(args.paths)}")
    for line in (header, tuple("-" * w for w in widths), *rows):
        print("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(line, widths))))
    print(f"unchanged re-ingest ({backends[-1]}): wall {rewall:.1f} s, pipeline {repipeline:.2f} s")
    print(f"load average at end {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
