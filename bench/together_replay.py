"""Replay rankings of several indexes searched together on what bench/together_cache.py cached.

usage: python bench/together_replay.py CACHE.pkl [CACHE.pkl ...] [-k 5]

Prints hit@k / MRR@k per set for: each set's own index alone (its cached search_pooled hits); the
interleaving of rag.retrieval.together on the same hits, with and without the legs' agreement
(it must match bench/scope_quality.py's "together" run on the same code); and the variants in
VARIANTS, among them "pooled": the candidates of every index ranked as one index holding every
corpus would rank them (bench/merged_quality.py measures such an index; the replay leaves out
the keyword evidence's lead, rag.retrieval.relevance.lead_with_evidence, so planted needles fall
further here than there). Labels match as rag.evaluation.metrics matches them (path suffixes,
pages); a hit counts only from the set's own index. A variant with a constant prints a row for
each of several values rather than the best one.
"""

from __future__ import annotations

import argparse
import pickle
import statistics
import sys
from dataclasses import replace
from pathlib import Path

sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

from rag.config import DEFAULT_MIN_SCORE  # noqa: E402
from rag.evaluation.metrics import _matches  # noqa: E402
from rag.retrieval.relevance import agreement, cosine_covers, idf  # noqa: E402
from rag.retrieval.search import DOCUMENT_WEIGHT, MIN_FETCH, fuse  # noqa: E402
from rag.retrieval.together import index_evidence, model_spreads  # noqa: E402


def relevant(where, row) -> bool:
    path, page = where
    return any(_matches(path, s) for s in row["sources"]) and (row["pages"] is None or page in row["pages"])


def rank_of(ranked, row, home) -> int | None:
    """`ranked`: (index, path, page) best first; a hit counts only from the set's own index."""
    for n, (index, path, page) in enumerate(ranked, start=1):
        if index == home and relevant((path, page), row):
            return n
    return None


# -- rankings: each takes (row, indexes info, home, k) and returns [(index, path, page)] -------------

def alone(row, info, home, k):
    return [(home, path, page) for _, path, page, _, _ in row["per_index"][home]["hits"]][:k]


def shared(data) -> int:
    """Passages in both legs' top 10 (rag.retrieval.relevance.agreement), from the cached legs."""
    legs = data["legs"]
    return agreement([c for c, _ in legs["dense"]], [c for c, _ in legs["keyword"]])


def lifts(row, info, corroboration=True):
    """Each index's evidence as rag.retrieval.together.index_evidence counts it (hybrid mode), with
    or without its legs' agreement."""
    names = list(row["per_index"])
    spreads = model_spreads([(info[n]["model"], info[n]["calibration"]) for n in names])
    out = {}
    for name in names:
        data = row["per_index"][name]
        claim = replace(data["claim"], shared=shared(data) if corroboration else None)
        out[name] = index_evidence(claim, info[name]["calibration"], "hybrid", spreads[info[name]["model"]])
    return out


def interleaved(row, info, home, k, lift=None):
    """rag.retrieval.together.interleave on the cached hits (indexes in their opening order, the
    home index first, as scope_quality opens them)."""
    lift = lift if lift is not None else lifts(row, info, corroboration=False)
    order = [home] + [n for n in row["per_index"] if n != home]
    pooled = []
    for o, name in enumerate(order):
        hits = row["per_index"][name]["hits"]
        floor, scored = float("-inf"), []
        for hit in reversed(hits):
            floor = max(floor, hit[3])
            scored.append(floor + lift[name])
        for position, (score, hit) in enumerate(zip(reversed(scored), hits)):
            pooled.append((score, o, position, (name, hit[1], hit[2])))
    pooled.sort(key=lambda item: (-item[0], item[1], item[2]))
    return [hit for *_, hit in pooled][:k]


def pooled_fusion(row, info, home, k, global_bm25=True, document_weight=DOCUMENT_WEIGHT, lift_weight=0.0):
    """As one index holding every corpus would rank: cosines pooled as they are, BM25 recounted
    with every index's passages and phrase counts summed (or left per index), fused as
    rag.retrieval.search fuses one index's legs."""
    per = row["per_index"]
    names = list(per)
    key = {name: n * 10**9 for n, name in enumerate(names)}  # one chunk id space over every index
    dense = [(key[name] + cid, cos) for name in per for cid, cos in per[name]["legs"]["dense"]]
    dense = sorted(dense, key=lambda x: -x[1])[:MIN_FETCH]
    total = sum(info[n]["passages"] for n in per)
    phrases = next(iter(per.values()))["legs"]["phrases"]  # the same question: the same phrases
    holding = {p: sum(per[n]["legs"]["holding"].get(p, 0) for n in per) for p in phrases}
    keyword = []
    for name in per:
        legs = per[name]["legs"]
        for cid, bm25 in legs["keyword"]:
            if global_bm25:
                parts = legs["per_phrase"].get(cid, {})
                bm25 = sum(s / idf(legs["holding"][p], info[name]["passages"]) * idf(holding[p], total)
                           for p, s in parts.items())
            keyword.append((key[name] + cid, bm25))
    keyword = sorted(keyword, key=lambda x: -x[1])[:MIN_FETCH]
    cosine = {key[name] + cid: c for name in per for cid, c in per[name]["legs"]["cosine"].items()}
    documents = {key[name] + cid: key[name] + d for name in per for cid, d in per[name]["legs"]["documents"].items()}
    scored = fuse(dense, keyword, cosine, keyword_complete=len(keyword) < MIN_FETCH, documents=documents,
                  document_weight=document_weight)
    if lift_weight:
        lift = lifts(row, info, corroboration=False)
        scored = {cid: s + lift_weight * lift[names[cid // 10**9]] for cid, s in scored.items()}
    ranked = sorted(scored, key=lambda cid: -scored[cid])[:k]
    return [(names[cid // 10**9], *per[names[cid // 10**9]]["legs"]["where"][cid % 10**9]) for cid in ranked]


def oracle(row, info, home, k):
    """The bound of any evidence of indexes: the set's own index given the highest."""
    lift = lifts(row, info, corroboration=False)
    lift[home] = max(lift.values()) + 1e-9
    return interleaved(row, info, home, k, lift)


def evidence_or_pooled(row, info, home, k, apart):
    """Today's interleaving when the best index's evidence stands `apart` spreads or more above the
    next, else the pooled ranking."""
    lift = sorted(lifts(row, info, corroboration=False).values(), reverse=True)
    if len(lift) < 2 or lift[0] - lift[1] >= apart:
        return interleaved(row, info, home, k)
    return pooled_fusion(row, info, home, k)


def agreement_penalty(row, info, home, k, penalty=1.0):
    """An index whose legs share no passage in their top 10 counted `penalty` spreads lower (on
    whatever its keyword evidence counts as)."""
    lift = lifts(row, info, corroboration=False)
    for name, data in row["per_index"].items():
        if not shared(data):
            lift[name] -= penalty
    return interleaved(row, info, home, k, lift)


def covers(data, calibration) -> bool:
    """The index's own cut-off at the default floor (rag.retrieval.relevance.judge, less the names rule)."""
    legs = data["legs"]
    shared = agreement([c for c, _ in legs["dense"]], [c for c, _ in legs["keyword"]])
    best = max((hit[4] for hit in data["hits"]), default=None)
    return data["claim"].words_cover or cosine_covers(best, DEFAULT_MIN_SCORE, shared, calibration)


def covering_first(row, info, home, k, behind=1000.0):
    """Today's, the passages of an index its own cut-off would cut ranked after the others'."""
    lift = lifts(row, info, corroboration=False)
    for name, data in row["per_index"].items():
        if not covers(data, info[name]["calibration"]):
            lift[name] -= behind
    return interleaved(row, info, home, k, lift)


def pooled_leaders(row, info, home, k, within):
    """The pooled ranking of the indexes whose evidence (legs' agreement counted) is within
    `within` spreads of the best; the others' passages after them, interleaved."""
    lift = lifts(row, info)
    best = max(lift.values())
    leaders = {n for n, v in lift.items() if v >= best - within}
    first = pooled_fusion(dict(row, per_index={n: d for n, d in row["per_index"].items() if n in leaders}),
                          info, home, k)
    rest = [h for h in interleaved(row, info, home, 2 * k, lift) if h[0] not in leaders]
    return (first + rest)[:k]


VARIANTS = {
    **{f"pooled within {x} of the best": (lambda x: lambda row, info, home, k:
                                          pooled_leaders(row, info, home, k, x))(x) for x in (0.5, 1, 2)},
    "alone": alone,
    "together, before": interleaved,
    "together, legs' agreement": lambda row, info, home, k: interleaved(row, info, home, k, lifts(row, info)),
    "oracle: own index's first": oracle,
    "pooled, BM25 recounted": pooled_fusion,
    "pooled, BM25 per index": lambda row, info, home, k: pooled_fusion(row, info, home, k, global_bm25=False),
    "pooled + evidence": lambda row, info, home, k: pooled_fusion(row, info, home, k, lift_weight=1.0),
    **{f"evidence if {x} apart, else pooled": (lambda x: lambda row, info, home, k:
                                               evidence_or_pooled(row, info, home, k, x))(x) for x in (0.5, 1, 2, 4)},
    "not covered: after the rest": covering_first,
    **{f"legs share none: -{x}": (lambda x: lambda row, info, home, k:
                                  agreement_penalty(row, info, home, k, x))(x) for x in (0.25, 0.5, 1, 2, 4)},
}


def score(cache, ranking, k):
    out = {}
    for name, data in cache["sets"].items():
        ranks = [rank_of(ranking(row, cache["indexes"], data["home"], k), row, data["home"]) for row in data["rows"]]
        n = len(ranks)
        out[name] = (sum(r is not None for r in ranks) / n, sum(1 / r for r in ranks if r) / n, ranks)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("caches", nargs="+", type=Path)
    parser.add_argument("-k", type=int, default=5)
    args = parser.parse_args()
    for path in args.caches:
        cache = pickle.loads(path.read_bytes())
        print(f"\n{path}")
        results = {label: score(cache, ranking, args.k) for label, ranking in VARIANTS.items()}
        sets = list(cache["sets"])
        print(f"{'variant':<28}" + "".join(f"{s.split(':')[1][:16]:>18}" for s in sets) + f"{'average':>18}")
        for label, per_set in results.items():
            cells = [f"{per_set[s][0]:.3f} / {per_set[s][1]:.3f}" for s in sets]
            avg = (statistics.mean(per_set[s][0] for s in sets), statistics.mean(per_set[s][1] for s in sets))
            print(f"{label:<28}" + "".join(f"{c:>18}" for c in cells) + f"{avg[0]:>10.3f} / {avg[1]:.3f}")


if __name__ == "__main__":
    main()
