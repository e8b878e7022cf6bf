"""Ingest throughput: `rag ingest` end to end against the bare encoder on the same text.

usage: python bench/ingest.py FOLDER_OR_FILE [...] [--keep DIR]

1. Runs the installed `rag ingest` on the paths into a fresh index (subprocess: wall seconds,
   peak RSS of the child, the pipeline's own seconds from its summary line).
2. Re-runs it unchanged (the incremental path).
3. Reads back the chunks it stored, rebuilds the exact text the model saw (title/heading prefix
   plus chunk text) and times the bare sentence-transformers encoder on it in this process,
   with the same batch size.
Prints a table; ratio = ingest / encoder (the goal is <= 1.25).
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
# This file is named like the `ingest` package; keep its folder off the import path.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
RAG = Path(sys.executable).parent / "rag"


def run_ingest(paths: list[str], index_dir: Path) -> tuple[float, float, str]:
    started = time.perf_counter()
    proc = subprocess.run([str(RAG), "ingest", *paths, "--index-dir", str(index_dir)],
                          capture_output=True, text=True)
    wall = time.perf_counter() - started
    if proc.returncode not in (0, 1):
        sys.exit(f"rag ingest failed ({proc.returncode}):\n{proc.stderr}")
    summary = [line for line in proc.stderr.splitlines() if "chunks embedded in" in line][-1]
    pipeline = float(re.search(r"embedded in ([\d.]+) s", summary).group(1))
    return wall, pipeline, summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("paths", nargs="+")
    parser.add_argument("--keep", type=Path, help="index dir to use (default: a temp dir)")
    args = parser.parse_args()
    index_dir = args.keep or Path(tempfile.mkdtemp(prefix="rag-bench-"))

    wall, pipeline, summary = run_ingest(args.paths, index_dir)
    peak_rss_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    rewall, repipeline, _ = run_ingest(args.paths, index_dir)

    from ingest.chunk import embed_prefix
    from rag.embedder import Embedder
    from rag.store import HEADING_SEPARATOR

    db = sqlite3.connect(index_dir / "default" / "rag.sqlite")
    rows = db.execute(
        "SELECT d.title, c.heading, c.text FROM chunks c JOIN documents d ON d.id = c.document_id ORDER BY c.id"
    ).fetchall()
    files = db.execute("SELECT COUNT(*) FROM documents").fetchone()[0]
    texts = []
    for title, heading, text in rows:
        prefix = embed_prefix(title, heading.split(HEADING_SEPARATOR) if heading else ())
        texts.append(f"{prefix}\n{text}" if prefix else text)

    embedder = Embedder("all-MiniLM-L6-v2")
    tokens = sum(embedder.count_tokens(texts))
    started = time.perf_counter()
    embedder._model.encode(texts, batch_size=embedder.batch_size, normalize_embeddings=True,
                           convert_to_numpy=True, show_progress_bar=False)
    encoder = time.perf_counter() - started

    chunks = len(texts)
    print(summary)
    print()
    print(f"{'measure':<34} {'value':>12}")
    print(f"{'files':<34} {files:>12}")
    print(f"{'chunks':<34} {chunks:>12}")
    print(f"{'tokens (model word pieces)':<34} {tokens:>12}")
    print(f"{'rag ingest wall s (incl. startup)':<34} {wall:>12.1f}")
    print(f"{'rag ingest pipeline s':<34} {pipeline:>12.1f}")
    print(f"{'bare encoder s (same texts)':<34} {encoder:>12.1f}")
    print(f"{'ingest chunks/s (pipeline)':<34} {chunks / pipeline:>12.1f}")
    print(f"{'ingest tokens/s (pipeline)':<34} {tokens / pipeline:>12.0f}")
    print(f"{'encoder chunks/s':<34} {chunks / encoder:>12.1f}")
    print(f"{'ratio pipeline / encoder':<34} {pipeline / encoder:>12.2f}")
    print(f"{'ratio wall / encoder':<34} {wall / encoder:>12.2f}")
    print(f"{'peak RSS of rag ingest (MB)':<34} {peak_rss_mb:>12.0f}")
    print(f"{'unchanged re-ingest wall s':<34} {rewall:>12.1f}")
    print(f"{'unchanged re-ingest pipeline s':<34} {repipeline:>12.2f}")


if __name__ == "__main__":
    main()
