"""What a user waits for, per embedding runtime: cold CLI start-up and warm retrieval latency.

(a) Cold: wall time of the installed `rag` command run as a fresh subprocess, as a user types it:
    `rag --help` and `rag status` once, then `rag ask --no-llm QUESTION` under each runtime in
    --backends (RAG_EMBED_BACKEND; median, min and max of --runs runs, default 5; "first" is the
    first run, which also pays for a cold page cache or a vector file that still has to be built).
    The exported models are built before any timing (one `rag ingest` per runtime).
(b) Warm: inside one process, per runtime, rag.config.load_settings and Retriever.open once, then
    Retriever.search over --searches questions (default 50, cycling through the question list)
    for each mode, hybrid / dense / keyword: p50 and p95. "embed_query" times the question
    embedding alone, which every mode pays (keyword mode too: the cut-off reads cosine similarity).
    Retriever.open runs the query path on one thread (the embedder's `threads=1` and FAISS).

(c) The cold path of `rag ask --no-llm` step by step (import the CLI, open the index, load the
    question runtime, read the vectors, embed, search and answer), median of --runs fresh
    interpreters, and its imports per top-level package (python -X importtime); then the same cold
    `python -m rag ask --no-llm` from this checkout and, with --before DIR, from an older one,
    alternating run by run. These runs use .pyc files (PYTHONDONTWRITEBYTECODE is dropped), as an
    installed rag does.

The index: by default the demo corpus (sample-docs/) is ingested into a temporary folder once per
runtime with `rag ingest` (an index records the runtime that built it); --index-dir/--index name
an existing one instead, used for every runtime. Questions: --questions FILE.jsonl (lines with a
"question" field, as for `rag eval`), or a built-in list about the demo corpus.

Run by hand with `nice`, never from the tests (a few minutes against the demo corpus):

    HF_HUB_OFFLINE=1 nice .venv/bin/python bench/latency.py
    .venv/bin/python bench/latency.py --backends openvino-bf16 --cold-only --before /work/old-checkout
    .venv/bin/python bench/latency.py --backends torch,onnx-int8 --index-dir /tmp/idx --index git \\
        --questions /work/shared/eval/git_dev.jsonl --question "How do I undo the last commit?"
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rag.config import MODES  # hybrid, dense, keyword

REPO = Path(__file__).resolve().parents[1]
DEMO_CORPUS = REPO / "sample-docs"
DEFAULT_QUESTION = "How many dimensions do all-MiniLM-L6-v2 embeddings have?"

# About the demo corpus (sample-docs/): embeddings, chunking, retrieval, vector indexes, the RAG guide.
BUILTIN_QUESTIONS = [
    "How many dimensions do all-MiniLM-L6-v2 embeddings have?",
    "Why does L2 normalisation make cosine similarity and inner product the same?",
    "What happens to text longer than the model's maximum sequence length?",
    "How big should a chunk be?",
    "Why do neighbouring chunks overlap?",
    "What is BM25 and what are its three ideas?",
    "How does reciprocal rank fusion combine two ranked lists?",
    "What constant is usually used in reciprocal rank fusion?",
    "When is a flat index fast enough?",
    "What does HNSW trade for speed?",
    "How does an IVF index decide which lists to search?",
    "What is nprobe?",
    "How do I measure retrieval quality?",
    "What is the difference between hit rate and MRR?",
    "Why have a relevance cut-off?",
    "Where does dense retrieval fail on exact identifiers and error codes?",
    "How should I batch embeddings on a CPU?",
    "Which questions should I ask when choosing an embedding model?",
    "What is retrieval-augmented generation?",
    "How should the answer cite its sources?",
    "Should chunks split on headings or on a fixed number of characters?",
    "What does term frequency saturation mean?",
    "How much memory does a flat index of a million vectors need?",
    "What are text embeddings not good at?",
    "Why retrieve more passages than you show to the model?",
]


def rag_command(explicit: str | None) -> str:
    """The installed `rag` next to this interpreter, so the venv's copy is the one measured."""
    if explicit:
        return explicit
    sibling = Path(sys.executable).with_name("rag")
    if sibling.exists():
        return str(sibling)
    found = shutil.which("rag")
    if not found:
        sys.exit("error: no `rag` command next to this Python or on PATH: install rag (`make install`) or pass --rag")
    return found


def child_env(backend: str | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env["HF_HUB_OFFLINE"] = "1"
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    if backend:
        env["RAG_EMBED_BACKEND"] = backend
    return env


def run(argv: list[str], cwd: Path, backend: str | None = None) -> float:
    """Wall seconds for one run; a failing command stops the benchmark with its stderr."""
    return run_cpu(argv, cwd, backend)[0]


def run_cpu(argv: list[str], cwd: Path, backend: str | None = None) -> tuple[float, float]:
    """Wall and CPU (user + system) seconds of one run: on a loaded machine the wall time is mostly
    waiting for a core, and the CPU time says what the command itself costs."""
    started = time.perf_counter()
    child = subprocess.Popen(argv, cwd=cwd, env=child_env(backend), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                             text=True)
    stderr = child.stderr.read()
    _, status, usage = os.wait4(child.pid, 0)
    seconds = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"error: {' '.join(argv)} exited {os.waitstatus_to_exitcode(status)}:\n{stderr.strip()}")
    return seconds, usage.ru_utime + usage.ru_stime


def ms_stats(seconds: list[float]) -> tuple[float, float, float]:
    """p50, p95 and mean, in milliseconds."""
    from rag.evaluation.metrics import percentile

    ms = [s * 1000 for s in seconds]
    return percentile(ms, 50), percentile(ms, 95), statistics.fmean(ms)


def table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]

    def line(cells):
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))

    return "\n".join([line(header), "  ".join("-" * w for w in widths), *(line(r) for r in rows)])


def load_questions(path: Path | None) -> list[str]:
    if path is None:
        return list(BUILTIN_QUESTIONS)
    questions = []
    for number, text in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not text.strip():
            continue
        try:
            questions.append(str(json.loads(text)["question"]))
        except (ValueError, KeyError, TypeError):
            sys.exit(f'error: {path}:{number}: expected a JSON object with a "question" field')
    if not questions:
        sys.exit(f"error: {path} holds no questions")
    return questions


def cold(rag: str, where: dict[str, tuple[Path, str]], question: str, runs: int, cwd: Path) -> list[tuple[str, ...]]:
    """`where` maps each runtime to the (index_dir, index) it asks."""
    first_dir, first_index = next(iter(where.values()))
    commands = [("rag --help", [rag, "--help"], None),
                ("rag status", [rag, "status", "--index-dir", str(first_dir), "--index", first_index], None)]
    for backend, (index_dir, index) in where.items():
        argv = [rag, "ask", "--no-llm", question, "--index-dir", str(index_dir), "--index", index]
        commands.append((f"rag ask --no-llm ({backend})", argv, backend))
    rows = []
    for label, argv, backend in commands:
        measured = [run_cpu(argv, cwd, backend) for _ in range(runs)]
        times, cpu = [wall for wall, _ in measured], [used for _, used in measured]
        rows.append((label, f"{statistics.median(times):.2f}", f"{min(times):.2f}", f"{max(times):.2f}", f"{times[0]:.2f}",
                     f"{statistics.median(cpu):.2f}"))
        print(f"  {label}: median {statistics.median(times):.2f} s", file=sys.stderr, flush=True)
    return rows


# The cold path of `rag ask --no-llm`, step by step, in a fresh interpreter: what each step adds to
# the wall time (the steps are the CLI's own calls, rag.terminal.cli.ask, minus printing).
PHASES = r"""
import sys, time
marks = [("interpreter start-up (python, site)", time.time() - float(sys.argv[1]))]
last = time.perf_counter()
def mark(label):
    global last
    now = time.perf_counter()
    marks.append((label, now - last))
    last = now
import rag.terminal.cli
mark("import the CLI (click, rag, its settings)")
from pathlib import Path
from rag.config import load_settings
from rag.index import Index, limit_threads
settings = load_settings({"index_dir": Path(sys.argv[2]), "index": sys.argv[3]})
index = Index.open(settings)
mark("settings, open the index (SQLite; imports numpy)")
limit_threads(settings.query_threads)
mark("limit threads (imports FAISS)")
embedder = index._query_embedder().load()
mark(f"load the question runtime ({embedder.runtime})")
index._searcher()
mark("open the retriever (read the vector file)")
embedder.embed_query(sys.argv[4])
mark("embed the question (first call)")
index.answer(sys.argv[4]).result()
mark("search and the extractive answer")
index.close()
mark("close")
for label, seconds in marks:
    print(f"{label}\t{seconds:.4f}")
"""


def checkout_env(checkout: Path) -> dict[str, str]:
    """The environment of a run of `checkout`'s code, with .pyc files as a user's install has them."""
    env = child_env()
    env["PYTHONPATH"] = str(checkout)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def breakdown(python: str, pythonpath: Path, index_dir: Path, index: str, question: str, cwd: Path,
              runs: int) -> tuple[list[tuple[str, ...]], list[tuple[str, ...]]]:
    """Median seconds per step of the cold path over `runs` fresh interpreters (PHASES), and the
    import time per top-level package of the last run (python -X importtime: each module's own
    time, summed by the package it belongs to, so numpy's import counts as numpy's wherever
    it happens)."""
    env = checkout_env(pythonpath)
    steps: dict[str, list[float]] = {}
    imports: dict[str, float] = {}
    for _ in range(runs):
        done = subprocess.run([python, "-X", "importtime", "-c", PHASES, repr(time.time()), str(index_dir), index,
                               question], cwd=cwd, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            sys.exit(f"error: the cold-path breakdown failed:\n{done.stderr.strip()[-2000:]}")
        for line in done.stdout.splitlines():
            label, _, seconds = line.rpartition("\t")
            steps.setdefault(label, []).append(float(seconds))
        imports = {}
        for line in done.stderr.splitlines():  # "import time: self | cumulative | name"
            own, _, rest = line.removeprefix("import time:").partition("|")
            name = rest.partition("|")[2].strip()
            if line.startswith("import time:") and own.strip().isdigit():
                package = name.split(".")[0].lstrip("_") or name
                imports[package] = imports.get(package, 0.0) + int(own) / 1e6
    step_rows = [(label, f"{statistics.median(values) * 1000:.0f}") for label, values in steps.items()]
    step_rows.append(("total", f"{sum(statistics.median(v) for v in steps.values()) * 1000:.0f}"))
    ranked = sorted(imports.items(), key=lambda item: -item[1])
    import_rows = [(name, f"{seconds * 1000:.1f}") for name, seconds in ranked[:12]]
    import_rows.append((f"the other {max(0, len(ranked) - 12)}", f"{sum(s for _, s in ranked[12:]) * 1000:.1f}"))
    import_rows.append(("all imports", f"{sum(imports.values()) * 1000:.1f}"))
    return step_rows, import_rows


def versus(python: str, checkouts: dict[str, Path], index_dir: Path, index: str, question: str, cwd: Path,
           runs: int) -> list[tuple[str, ...]]:
    """`python -m rag ask --no-llm` from each checkout (PYTHONPATH), alternating run by run so the
    machine's load falls on both alike: median, min and max wall seconds."""
    times: dict[str, list[float]] = {label: [] for label in checkouts}
    argv = [python, "-m", "rag", "ask", "--no-llm", question, "--index-dir", str(index_dir), "--index", index]
    for _ in range(runs):
        for label, checkout in checkouts.items():
            env = checkout_env(checkout)
            started = time.perf_counter()
            done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True)
            if done.returncode != 0:
                sys.exit(f"error: {label}: {' '.join(argv)} exited {done.returncode}:\n{done.stderr.strip()[-2000:]}")
            times[label].append(time.perf_counter() - started)
    return [(f"{label} ({checkout})", f"{statistics.median(t):.3f}", f"{min(t):.3f}", f"{max(t):.3f}")
            for (label, checkout), t in zip(checkouts.items(), times.values())]


def timed(call, questions: list[str]) -> list[float]:
    call(questions[0])  # warm-up: the first call of a kind pays one-off set-up
    times = []
    for question in questions:
        started = time.perf_counter()
        call(question)
        times.append(time.perf_counter() - started)
    return times


def warm(backend: str, index_dir: Path, index: str, questions: list[str], searches: int,
         top_k: int | None) -> tuple[list[str], str]:
    """One retriever under one runtime: p50/p95 ms of embed_query alone and of each search mode."""
    from rag.config import load_settings
    from rag.retrieval.search import Retriever

    flags = {"index_dir": index_dir, "index": index, "embed_backend": backend}
    if top_k is not None:
        flags["top_k"] = top_k
    from rag.embedding.embedder import get_embedder

    started = time.perf_counter()
    settings = load_settings(flags)
    # the questions go through `backend` itself, whatever runtime the index would choose for them
    retriever = Retriever.open(settings, embedder=get_embedder(settings.embed_model, backend, threads=1))
    opened = time.perf_counter() - started
    asked = [questions[i % len(questions)] for i in range(searches)]
    started = time.perf_counter()
    retriever.embedder.embed_query(asked[0])  # loads the model (the embedder loads it on first use)
    first = time.perf_counter() - started

    steps = [("embed_query", retriever.embedder.embed_query)] + [
        (mode, lambda q, mode=mode: retriever.search(q, settings.top_k, mode, settings.min_score)) for mode in MODES
    ]
    cells = [retriever.embedder.runtime, f"{opened:.2f}", f"{first:.2f}"]
    for name, call in steps:
        p50, p95, _ = ms_stats(timed(call, asked))
        cells += [f"{p50:.1f}", f"{p95:.1f}"]
        print(f"  {backend} {name}: p50 {p50:.1f} ms", file=sys.stderr, flush=True)
    title = (f"warm retrieval, one thread: open = load_settings + Retriever.open s, first = first embed_query "
             f"(loads the model) s; then {searches} calls per step ({len(set(asked))} distinct questions), "
             f"top-k {settings.top_k}, {retriever.store.chunk_count():,} chunks")
    return cells, title


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index-dir", type=Path, help="an existing index folder [default: ingest docs/ into a temp dir]")
    parser.add_argument("--index", default=None, help="index name under --index-dir [default]")
    parser.add_argument("--backends", default="torch,onnx-fp32,onnx-int8,openvino-fp32,openvino-int8",
                        help="embedding runtimes to time, comma-separated [all five]")
    parser.add_argument("--question", default=DEFAULT_QUESTION, help="what the cold `rag ask` asks")
    parser.add_argument("--questions", type=Path, help="JSONL with a \"question\" per line for the warm part")
    parser.add_argument("--searches", type=int, default=50, help="timed searches per mode [50]")
    parser.add_argument("--runs", type=int, default=5, help="runs per cold command [5]")
    parser.add_argument("-k", "--top-k", type=int, help="passages per search [rag's default]")
    parser.add_argument("--rag", help="the rag executable [the one next to this Python]")
    parser.add_argument("--before", type=Path, help="an older checkout: its cold `ask` is timed beside this one's")
    parser.add_argument("--cold-only", action="store_true", help="skip the warm part")
    args = parser.parse_args(argv)
    if args.searches < 1 or args.runs < 1:
        parser.error("--searches and --runs must be at least 1")
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]

    os.environ["HF_HUB_OFFLINE"] = "1"  # for the warm part, which loads the model in this process
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    rag = rag_command(args.rag)
    questions = load_questions(args.questions)

    with tempfile.TemporaryDirectory(prefix="rag-bench-") as scratch:
        scratch = Path(scratch)  # the working directory of every run: no stray .env is read
        lines, where = [], {}
        for backend in backends:
            if args.index_dir is None:
                index_dir, index = scratch / "indexes", f"docs-{backend}"
                started = time.perf_counter()
                run([rag, "ingest", str(DEMO_CORPUS), "--index-dir", str(index_dir), "--index", index], scratch, backend)
                lines.append(f"built the index ({backend}, incl. any first-use export): `rag ingest {DEMO_CORPUS}` "
                             f"in {time.perf_counter() - started:.1f} s")
            else:
                index_dir, index = args.index_dir.resolve(), args.index or "default"
            where[backend] = (index_dir, index)
        print(f"load average {os.getloadavg()[0]:.2f}", file=sys.stderr, flush=True)

        cold_rows = cold(rag, where, args.question, args.runs, scratch)
        first_dir, first_index = next(iter(where.values()))
        step_rows, import_rows = breakdown(sys.executable, REPO, first_dir, first_index, args.question, scratch,
                                           args.runs)
        checkouts = {"now": REPO} | ({"before": args.before.resolve()} if args.before else {})
        versus_rows = versus(sys.executable, checkouts, first_dir, first_index, args.question, scratch, args.runs)
        cwd = Path.cwd()
        os.chdir(scratch)
        from rag.index import limit_threads

        limit_threads(1)  # as the CLI and the servers do: FAISS and numpy's BLAS on one thread
        warm_rows, warm_title = [], ""
        try:
            for backend, (index_dir, index) in ([] if args.cold_only else where.items()):
                cells, warm_title = warm(backend, index_dir, index, questions, args.searches, args.top_k)
                warm_rows.append(tuple(cells))
        finally:
            os.chdir(cwd)

    print()
    for line in lines:
        print(line)
    print(f"cold CLI: a fresh `{rag}` process per run, {args.runs} runs, wall seconds")
    print(table(("command", "median s", "min s", "max s", "first s", "median CPU s"), cold_rows))
    print()
    print(f"cold `python -m rag ask --no-llm` per checkout, alternating, {args.runs} runs each, wall seconds "
          f"(.pyc files used, as an installed rag has them)")
    print(table(("checkout", "median s", "min s", "max s"), versus_rows))
    print()
    print(f"the cold path step by step ({first_index}), median ms of {args.runs} fresh interpreters")
    print(table(("step", "ms"), step_rows))
    print()
    print("of which imports, per top-level package (python -X importtime, own ms summed per package, one run)")
    print(table(("package", "ms"), import_rows))
    print()
    if warm_rows:
        print(warm_title)
        header = ("runtime", "open s", "first s") + tuple(
            f"{step} {stat}" for step in ("embed_query", *MODES) for stat in ("p50 ms", "p95 ms"))
        print(table(header, warm_rows))
        print()
    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores (other processes inflate the timings)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
