"""What a filter costs a search: query latency with no filter and with filters keeping 50%, 10%, 1%
and 0.01% of a 100,000-chunk index (rag.retrieval.scope).

The index is real (rag.storage.store SQLite with its FTS5 table, rag.storage.vectors' FAISS flat
index), its content synthetic: 10,000 Markdown documents of 10 chunks, each chunk 60 words drawn
from a Zipf vocabulary of 20,000 made-up words, and a random unit 384-d vector per chunk (random
vectors are fine for latency; nothing here measures quality). Documents live under
p{i%2}/t{i%10}/h{i%100}/doc{i}.md, so the globs `p0/`, `t3/`, `h42/` and `doc00042.md` keep 50%,
10%, 1% and 0.01% of the chunks. Questions are 6 words of the vocabulary past its 100 commonest
(which play the stopwords' part) and a random query vector; the embedder is left out of the
timing (a question embeds once whatever the filter).

For each filter, one Retriever.search per question in each mode (hybrid, dense, keyword), one
thread, as `rag ask` runs: p50 and p95 over --queries questions, after one warm-up question whose
time is reported apart as "first" (it pays for reading the documents' paths and matching the
globs, once per filter and index generation). Every dense result is checked against the exact top
50 of the chunks in scope computed with numpy, and every hit against the filter. Last, the keyword
leg's SQL both ways (`+rowid IN` as rag runs it, and the bare `rowid IN` it avoids).

    nice -n 5 .venv/bin/python bench/filters.py                  # builds the index once in --workdir
    nice -n 5 .venv/bin/python bench/filters.py --queries 200 --workdir /tmp/filters-bench
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import numpy as np  # noqa: E402

DIM = 384
DOCUMENTS = 10_000
CHUNKS_PER_DOCUMENT = 10
WORDS_PER_CHUNK = 60
VOCABULARY = 20_000
COMMON = 100  # the commonest words, left out of questions as stopwords are
ROOT = "/bench/corpus"
FILTERS = (("none", None), ("50%", "p0/"), ("10%", "t3/"), ("1%", "h42/"), ("0.01%", "doc00042.md"))
MODES = ("hybrid", "dense", "keyword")
TOP_K = 5


def vocabulary(seed: int) -> tuple[list[str], np.ndarray]:
    rng = np.random.default_rng(seed)
    letters = list("abcdefghijklmnopqrstuvwxyz")
    words = list(dict.fromkeys("".join(rng.choice(letters, size=rng.integers(4, 10))) for _ in range(VOCABULARY * 2)))
    words = words[:VOCABULARY]
    weights = 1.0 / np.arange(1, len(words) + 1)
    return words, weights / weights.sum()


def build(folder: Path, seed: int = 7) -> None:
    from rag.storage import vectors
    from rag.storage.store import Store
    from rag.types import Chunk, Document

    words, weights = vocabulary(seed)
    rng = np.random.default_rng(seed)
    store = Store.open(folder, create=True)
    started = time.perf_counter()
    with store.transaction():
        store.set_meta("dim", str(DIM))
        store.set_meta("embed_model", "synthetic")
        store.add_roots([Path(ROOT)])
        for i in range(DOCUMENTS):
            drawn = rng.choice(len(words), size=(CHUNKS_PER_DOCUMENT, WORDS_PER_CHUNK), p=weights)
            texts = [" ".join(words[w] for w in row) for row in drawn]
            chunks = [Chunk(ordinal=j, text=text, heading=(f"section {j}",), page=None, char_start=0,
                            char_end=len(text), embed_text=text) for j, text in enumerate(texts)]
            embeddings = rng.standard_normal((CHUNKS_PER_DOCUMENT, DIM), dtype=np.float32)
            embeddings /= np.linalg.norm(embeddings, axis=1, keepdims=True)
            path = Path(f"{ROOT}/p{i % 2}/t{i % 10}/h{i % 100}/doc{i:05d}.md")
            document = Document(path=path, title=f"Document {i}", sections=[], content_hash=str(i),
                                mtime=1.7e9 + i * 60, size=sum(map(len, texts)))
            store.put_document(document, chunks, embeddings)
    outcome = vectors.refresh_file(store)
    store.close()
    (folder / "done").write_text(json.dumps({"seed": seed, "seconds": time.perf_counter() - started, "vectors": outcome}))


class RandomQuestions:
    """Stands in for the embedder: a random unit vector per question (latency only)."""

    dim = DIM

    def __init__(self, seed: int):
        self.rng = np.random.default_rng(seed)

    def embed_query(self, text: str) -> np.ndarray:
        vector = self.rng.standard_normal(DIM).astype(np.float32)
        return vector / np.linalg.norm(vector)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/rag-bench-filters"))
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args()

    from rag.filters import Filters
    from rag.index import limit_threads
    from rag.retrieval.search import Retriever
    from rag.storage import vectors as vector_index
    from rag.storage.store import Store

    folder = args.workdir / "index"
    if not (folder / "done").exists():
        print(f"building the synthetic index in {folder} (about a minute) ...", file=sys.stderr)
        build(folder)
    limit_threads(1)
    store = Store.open(folder)
    retriever = Retriever(store, RandomQuestions(args.seed), vector_index.open_vectors(store, DIM), DIM)
    total = store.chunk_count()

    words, weights = vocabulary(7)
    tail = weights[COMMON:] / weights[COMMON:].sum()
    rng = np.random.default_rng(args.seed)
    questions = [" ".join(words[COMMON + w] for w in rng.choice(len(tail), size=6, p=tail))
                 for _ in range(args.queries + 1)]

    ids, matrix = zip(*store.iter_embeddings(DIM))
    ids, matrix = np.concatenate(ids), np.concatenate(matrix)
    owner = dict(store.conn.execute("SELECT c.id, d.path FROM chunks c JOIN documents d ON d.id = c.document_id"))

    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores; {total:,} chunks in "
          f"{DOCUMENTS:,} documents; top-k {TOP_K}; {args.queries} questions per row; 1 thread")
    print(f"{'filter':<8} {'glob':<14} {'chunks':>7} {'mode':<8} {'first ms':>8} {'p50 ms':>7} {'p95 ms':>7}  exact")
    for name, glob in FILTERS:
        filters = Filters.build(paths=[glob]) if glob else None
        in_scope = np.array([_matches(owner[int(c)], glob) for c in ids]) if glob else np.ones(len(ids), bool)
        for mode in MODES:
            retriever.scopes = type(retriever.scopes)(store)  # forget resolved filters: "first" pays again
            times, exact = [], True
            for n, question in enumerate(questions):
                query_vector = retriever.embedder.embed_query(question)
                started = time.perf_counter()
                result = retriever.search(question, TOP_K, mode, filters=filters, query_vector=query_vector)
                times.append((time.perf_counter() - started) * 1000)
                exact &= all(_matches(h.path, glob) for h in result.hits) if glob else True
                if mode == "dense" and n < 20:  # the leg itself against numpy over the chunks in scope
                    scope = retriever.scopes.resolve(filters) if filters else None
                    got = [cid for cid, _ in retriever.dense(query_vector, 50, None if scope is None or scope.everything
                                                             else scope)]
                    scores = matrix[in_scope] @ query_vector
                    want = ids[in_scope][np.argsort(-scores, kind="stable")[:50]]
                    exact &= got == want.tolist()
            first, rest = times[0], times[1:]
            print(f"{name:<8} {glob or '-':<14} {int(in_scope.sum()):>7,} {mode:<8} {first:>8.1f} "
                  f"{statistics.median(rest):>7.1f} {_p95(rest):>7.1f}  {'yes' if exact else 'NO'}", flush=True)
    keyword_sql(retriever, questions[:3])
    print(f"load average {os.getloadavg()[0]:.2f} at the end")


def keyword_sql(retriever, questions: list[str]) -> None:
    """Why rag.storage.store restricts FTS5 with `+rowid IN (...)`: the bare `rowid IN (...)` lets
    SQLite run the MATCH once per listed id. Timed on the 1% filter's chunk ids."""
    from rag.filters import Filters
    from rag.retrieval.search import fts_query

    scope = retriever.scopes.resolve(Filters.build(paths=["h42/"]))
    listed = scope.ids_json(retriever.store)
    print(f"\nkeyword leg restricted to the 1% filter's {scope.chunks:,} chunk ids, one query each:")
    for form in ("+rowid", "rowid"):
        sql = (f"SELECT rowid, -bm25(chunks_fts) FROM chunks_fts WHERE chunks_fts MATCH ? AND {form} IN "
               f"(SELECT value FROM json_each(?)) ORDER BY bm25(chunks_fts) LIMIT 50")
        times = []
        for question in questions:
            started = time.perf_counter()
            retriever.store.conn.execute(sql, (fts_query(question), listed)).fetchall()
            times.append((time.perf_counter() - started) * 1000)
        print(f"  {form + ' IN (...)':<16} median {statistics.median(times):9.1f} ms over {len(times)} questions",
              flush=True)


def _matches(path: str, glob: str | None) -> bool:
    if glob is None:
        return True
    if glob.endswith("/"):
        return f"/{glob}" in path
    return path.endswith("/" + glob)


def _p95(values: list[float]) -> float:
    return sorted(values)[max(0, int(round(0.95 * len(values))) - 1)]


if __name__ == "__main__":
    main()
