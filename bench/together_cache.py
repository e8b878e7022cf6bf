"""Cache what each index's own search sees of labelled questions, for replaying rankings of several
indexes searched together offline (bench/together_replay.py) instead of searching again per variant.

usage: python bench/together_cache.py --index-dir DIR --indexes NAME ... --sets INDEX=QUESTIONS.jsonl[,...] ...
                                      [--also NAME=DIR ...] --out CACHE.pkl [-k 5]

For every question of every set, in every index (those of --indexes, and the --also ones, each
opened from its own folder): the hits `Retriever.search_pooled` returns (what
rag.retrieval.together interleaves) with its Claim; the dense and keyword legs' top 50 (the fetch
depth) with every candidate's cosine, path, page and document; and, per keyword phrase, how many
passages hold it and each candidate's BM25 for that phrase alone (so that keyword scores can be
recounted with the statistics of all indexes pooled). Each index's calibration and model are kept.
"""

from __future__ import annotations

import argparse
import pickle
import re
import sys
from pathlib import Path

sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

from rag.config import NO_CUTOFF, load_settings  # noqa: E402
from rag.evaluation.metrics import load_questions  # noqa: E402
from rag.index import Index, limit_threads  # noqa: E402
from rag.retrieval.search import MIN_FETCH, fts_query  # noqa: E402

PHRASE = re.compile(r'"((?:[^"]|"")*)"')


def leg_data(retriever, question: str, vector) -> dict:
    dense = retriever.dense(vector, MIN_FETCH)
    keyword = retriever.keyword(question, MIN_FETCH)
    ids = list(dict.fromkeys([cid for cid, _ in dense] + [cid for cid, _ in keyword]))
    cosine = dict(dense)
    retriever._add_similarity(cosine, ids, vector)
    rows = retriever.store.chunks(ids)
    conn = retriever.store.conn
    match = fts_query(question)
    phrases = [p.replace('""', '"') for p in PHRASE.findall(match)] if match else []
    holding, per_phrase = {}, {}
    keyword_ids = [cid for cid, _ in keyword]
    for phrase in phrases:
        quoted = '"' + phrase.replace('"', '""') + '"'
        holding[phrase] = conn.execute("SELECT count(*) FROM chunks_fts WHERE chunks_fts MATCH ?", (quoted,)).fetchone()[0]
        if keyword_ids:
            for cid, score in conn.execute(
                    "SELECT rowid, -bm25(chunks_fts) FROM chunks_fts WHERE chunks_fts MATCH ? AND "
                    "+rowid IN (SELECT value FROM json_each(?))", (quoted, str(keyword_ids))):
                per_phrase.setdefault(cid, {})[phrase] = score
    return dict(dense=dense, keyword=keyword, cosine=cosine,
                where={cid: (rows[cid].path, rows[cid].page) for cid in ids if cid in rows},
                documents=retriever.store.document_ids(ids), phrases=phrases, holding=holding,
                per_phrase=per_phrase)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--index-dir", type=Path, required=True)
    parser.add_argument("--indexes", nargs="+", required=True)
    parser.add_argument("--also", nargs="*", default=[], metavar="NAME=DIR")
    parser.add_argument("--sets", nargs="+", required=True, metavar="INDEX=QUESTIONS.jsonl[,...]")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("-k", type=int, default=5)
    args = parser.parse_args()

    settings = load_settings({"index_dir": args.index_dir, "index": args.indexes[0]})
    limit_threads(settings.query_threads)
    opened = {index.name: index for index in Index.open_together(settings, args.indexes)}
    for spec in args.also:
        name, _, folder = spec.partition("=")
        opened[name] = Index.open_together(load_settings({"index_dir": Path(folder), "index": name}), [name])[0]
    retrievers = {name: index._searcher() for name, index in opened.items()}
    cache = {"indexes": {name: dict(calibration=r.current_calibration(), model=r.embedder.id,
                                    passages=r.store.chunk_count()) for name, r in retrievers.items()},
             "sets": {}}
    for spec in args.sets:
        home, _, files = spec.partition("=")
        for path in map(Path, files.split(",")):
            rows = []
            for item in load_questions(path):
                vectors, per_index = {}, {}
                for name, retriever in retrievers.items():
                    if name != home and name not in args.indexes:
                        continue  # an --also index is searched only with its own sets
                    key = retriever.embedder.id
                    if key not in vectors:
                        vectors[key] = retriever.embed(item.question)
                    result, claim = retriever.search_pooled(item.question, args.k, "hybrid", NO_CUTOFF,
                                                            query_vector=vectors[key])
                    per_index[name] = dict(hits=[(h.chunk_id, h.path, h.page, h.score, h.similarity)
                                                 for h in result.hits], claim=claim,
                                           legs=leg_data(retriever, item.question, vectors[key]))
                rows.append(dict(question=item.question, sources=item.sources, pages=item.pages, per_index=per_index))
            cache["sets"][f"{home}:{path.stem}"] = dict(home=home, rows=rows)
            print(f"{path.stem}: {len(rows)} questions", flush=True)
    args.out.write_bytes(pickle.dumps(cache))
    for index in opened.values():
        index.close()


if __name__ == "__main__":
    main()
