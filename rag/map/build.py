"""The map of an index: its chunk embeddings projected to 2-D, written as one self-contained HTML page.

`build_map` reads the embeddings from SQLite (the truth; vectors.faiss is not needed), samples
large indexes stratified by document, projects (rag.map.projection), colours the points by document,
top-level folder or k-means cluster, finds near-duplicate chunks across files, optionally places a
question and rings the hits `rag ask` would get for it (rag.retrieval.search.Retriever), and renders
rag/map/page.html. Invariants: the page needs no network (its script is inlined), and every piece
of document text reaches it HTML-escaped or as JSON that the page's script only ever assigns with
`textContent`, so a document can never inject markup or script.

One module past 400 lines because it is one pipeline from SQLite rows to one page (sample,
colour, near-duplicates, render, and the same map as a PNG); the projection, the part with a life
of its own, is already rag.map.projection.
"""

from __future__ import annotations

import html
import json
import math
import os
import re
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Callable, NamedTuple, Sequence

import numpy as np

from rag.config import DEFAULT_TOP_K, Mode
from rag.errors import RagError
from rag.extras import require
from rag.map import DEFAULT_COLOR, DEFAULT_PROJECTION, DEFAULT_SAMPLE, Color, Projection
from rag.map.projection import Layout, fit, neighbourhood_preservation
from rag.storage.store import Store
from rag.text import heading_path
from rag.types import Retrieval

DUPLICATE_COSINE = 0.98
DUPLICATES_LISTED = 100  # the page lists the closest pairs; the count covers them all
PREVIEW_WORDS = 40
# Tableau 10 then its light tints: distinct on white, and still readable for most colour-blind eyes
PALETTE = ("#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7",
           "#9c755f", "#bab0ac", "#1f77b4", "#aec7e8", "#ffbb78", "#98df8a", "#ff9896", "#c5b0d5",
           "#c49c94", "#f7b6d2", "#dbdb8d", "#9edae5")
OTHER_COLOR = "#d0d0d0"
TEMPLATE = Path(__file__).with_name("page.html")
WORD = re.compile(r"[^\W\d_]{3,}", re.UNICODE)


@dataclass(frozen=True)
class MapOptions:
    out: Path = Path("map.html")
    color: Color = DEFAULT_COLOR
    query: str | None = None
    top_k: int = DEFAULT_TOP_K
    mode: Mode = "hybrid"  # the retrieval `rag ask` uses by default, so the rings match its sources
    sample: int = DEFAULT_SAMPLE
    png: Path | None = None
    projection: Projection = DEFAULT_PROJECTION
    seed: int = 0


@dataclass(frozen=True)
class MapReport:
    out: Path
    png: Path | None
    documents: int
    chunks_shown: int
    chunks_total: int
    sample_note: str  # "all 60 chunks" or how the sample was drawn
    projection: Projection
    neighbourhood: float  # share of 10 nearest neighbours kept by the projection (rag.map.projection)
    groups: int  # legend entries
    near_duplicates: int  # chunk pairs across different files with cosine > DUPLICATE_COSINE
    hits: int  # question hits ringed on the map
    seconds: float
    timings: dict[str, float] = field(default_factory=dict)  # seconds per step, for bench/map.py


@dataclass(frozen=True)
class _Points:
    """The shown chunks, row i of every array describing the same chunk."""

    ids: np.ndarray  # chunk ids
    vectors: np.ndarray  # (n, dim) float32, L2-normalised
    paths: list[str]  # as stored
    files: list[str]  # relative to the ingested folder, for display
    pages: list[int | None]
    headings: list[str]  # heading paths as shown (joined), for hover and lists
    texts: list[str]  # the first PREVIEW_WORDS words, for hover and lists
    words: list[str]  # the whole text, for naming clusters


class Query(NamedTuple):
    """How the map places a question (Index.map passes both): the search `rag ask` runs, minus the
    cut-off (the map shows the nearest passages even when none would pass it, so a user can see
    why), and the question's own vector in the index's model."""

    search: Callable[[str, int, Mode], Retrieval]
    embed: Callable[[str], np.ndarray]


def build_map(store: Store, query: Query | None, options: MapOptions) -> MapReport:
    """Write the map of `store` to options.out (and options.png); `query` is needed only for options.query."""
    if options.projection == "tsne":
        require("map", "rag map's t-SNE projection", "openTSNE", alternative="use --projection pca")
    if options.png is not None:
        require("map", "rag map --png", "matplotlib")
    from threadpoolctl import threadpool_limits

    # one BLAS/OpenMP thread for k-means and the duplicate search too (see rag.map.projection.fit)
    with threadpool_limits(limits=1):
        return _build_map(store, query, options)


def _build_map(store: Store, query: Query | None, options: MapOptions) -> MapReport:
    started = time.perf_counter()
    timings: dict[str, float] = {}
    total = store.chunk_count()
    if total == 0:
        raise RagError(f"the index at {store.root} is empty: run `rag ingest PATH` first")
    if options.query is not None and query is None:
        raise ValueError("a question on the map needs a Query")
    dim = int(store.get_meta("dim") or 0)

    retrieval = query.search(options.query, options.top_k, options.mode) if query and options.query else None
    hit_ids = [hit.chunk_id for hit in retrieval.hits] if retrieval else []
    chosen, documents = _sample(store, options.sample, hit_ids, options.seed)
    points = _read_points(store, chosen, dim)
    timings["read"] = time.perf_counter() - started

    mark = time.perf_counter()
    layout = fit(points.vectors, options.projection, options.seed)
    timings["projection"] = time.perf_counter() - mark
    kept = neighbourhood_preservation(points.vectors, layout.points, seed=options.seed)
    query_at = layout.place(query.embed(retrieval.question))[0] if retrieval else None

    mark = time.perf_counter()
    group_of, groups = _groups(points, options.color, options.seed)
    timings["colour"] = time.perf_counter() - mark
    mark = time.perf_counter()
    pairs, pair_count = near_duplicates(points.vectors, points.paths)
    timings["duplicates"] = time.perf_counter() - mark

    shown = len(points.ids)
    note = (f"all {total:,} chunks" if shown == total else
            f"{shown:,} of {total:,} chunks, sampled in proportion to each document's chunks"
            + (" (the question's hits always included)" if hit_ids else ""))
    row_of = {int(cid): row for row, cid in enumerate(points.ids)}
    hits = [(row_of[cid], rank) for rank, cid in enumerate(hit_ids, start=1) if cid in row_of]
    page = _render(points, layout, kept, group_of, groups, pairs, pair_count, note, documents, total,
                   options, retrieval, query_at, hits)
    _write_atomically(options.out, page.encode("utf-8"))
    if options.png:
        mark = time.perf_counter()
        write_png(options.png, layout.points, group_of, groups, query_at, [row for row, _ in hits])
        timings["png"] = time.perf_counter() - mark
    return MapReport(out=options.out, png=options.png, documents=documents, chunks_shown=shown,
                     chunks_total=total, sample_note=note, projection=layout.projection,
                     neighbourhood=round(kept, 3), groups=len(groups), near_duplicates=pair_count,
                     hits=len(hits), seconds=time.perf_counter() - started, timings=timings)


# -- reading -------------------------------------------------------------------------------


def _sample(store: Store, limit: int, keep: Sequence[int], seed: int) -> tuple[np.ndarray, int]:
    """Chunk ids to show (sorted), and the number of documents in the index.

    Every document keeps at least one chunk when the sample has room for one each, and the rest
    of the sample is shared in proportion to their chunks (largest remainder), so a big document
    cannot crowd out the small ones; `keep` (the question's hits) is always in.
    """
    # One read-only query for (chunk, document) pairs: Store has no call that returns them
    # without the text, and reading 20k texts to sample them would cost more than the rest.
    rows = np.array(store.conn.execute("SELECT id, document_id FROM chunks ORDER BY id").fetchall(), dtype=np.int64)
    ids, owners = rows[:, 0], rows[:, 1]
    documents = len(np.unique(owners))
    if len(ids) <= limit:
        return ids, documents
    rng = np.random.default_rng(seed)
    keep_set = set(int(cid) for cid in keep)
    budget = max(limit - len(keep_set), 0)
    candidates = ~np.isin(ids, list(keep_set))
    doc_ids, counts = np.unique(owners[candidates], return_counts=True)
    # one chunk of every document first when the sample has room, then the rest in proportion
    floor = np.ones_like(counts) if budget >= len(counts) else np.zeros_like(counts)
    quota = (counts - floor) * (budget - floor.sum()) / max((counts - floor).sum(), 1)
    take = floor + np.floor(quota).astype(int)
    for index in np.argsort(-(quota - np.floor(quota)), kind="stable")[: budget - take.sum()]:
        take[index] += 1
    chosen = [np.array(sorted(keep_set), dtype=np.int64)]
    for doc, count in zip(doc_ids, take):
        if count:
            own = ids[candidates & (owners == doc)]
            chosen.append(rng.choice(own, size=count, replace=False))
    return np.sort(np.concatenate(chosen)), documents


def _read_points(store: Store, chosen: np.ndarray, dim: int) -> _Points:
    parts = []
    for ids, vectors in store.iter_embeddings(dim):
        mask = np.isin(ids, chosen)
        if mask.any():
            parts.append((ids[mask], vectors[mask]))
    ids = np.concatenate([p[0] for p in parts])
    vectors = np.ascontiguousarray(np.concatenate([p[1] for p in parts]), dtype=np.float32)
    rows = {}
    id_list = [int(cid) for cid in ids]
    for start in range(0, len(id_list), 500):  # SQLite caps the parameters of one statement
        rows.update(store.chunks(id_list[start:start + 500]))
    paths = [rows[cid].path for cid in id_list]
    return _Points(
        ids=ids,
        vectors=vectors,
        paths=paths,
        files=_display_files(paths, _roots(store)),
        pages=[rows[cid].page for cid in id_list],
        headings=[heading_path(rows[cid].heading) for cid in id_list],
        texts=[_preview(rows[cid].text) for cid in id_list],
        words=[rows[cid].text for cid in id_list],
    )


def _roots(store: Store) -> list[str]:
    try:
        roots = json.loads(store.get_meta("roots") or "[]")
    except ValueError:
        return []
    # the deepest root first, so a file under nested ingested folders is shown from the nearest one
    return sorted((str(r) for r in roots), key=len, reverse=True)


def _display_files(paths: Sequence[str], roots: Sequence[str]) -> list[str]:
    """Each path relative to the ingested folder it came from (or, failing that, to the folder
    all such paths share), so that the first part of it is its top-level folder."""
    def under(path: str) -> str | None:
        for root in roots:
            if path.startswith(root.rstrip("/") + "/"):
                return path[len(root.rstrip("/")) + 1:]
        return None

    outside = sorted({p for p in paths if under(p) is None})
    base = os.path.commonpath([os.path.dirname(p) for p in outside]) if outside else ""
    return [under(p) or (os.path.relpath(p, base) if base else p) for p in paths]


def _preview(text: str) -> str:
    words = text.split()
    return " ".join(words[:PREVIEW_WORDS]) + (" …" if len(words) > PREVIEW_WORDS else "")


# -- colours -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Group:
    name: str
    color: str
    count: int


def _groups(points: _Points, color: Color, seed: int) -> tuple[np.ndarray, list[Group]]:
    """The legend entry of every point, and the legend (biggest first, the rest as one 'other')."""
    if color == "cluster":
        labels, names = clusters(points.vectors, points.words, seed)
    else:
        keys = points.files if color == "document" else [_folder(f) for f in points.files]
        names = sorted(set(keys))
        index = {name: i for i, name in enumerate(names)}
        labels = np.array([index[k] for k in keys], dtype=np.int64)
    counts = np.bincount(labels, minlength=len(names))
    order = sorted(range(len(names)), key=lambda i: (-counts[i], names[i]))
    named = order if len(order) <= len(PALETTE) else order[: len(PALETTE) - 1]
    position = {old: new for new, old in enumerate(named)}
    groups = [Group(names[old], PALETTE[new], int(counts[old])) for new, old in enumerate(named)]
    rest = [old for old in order if old not in position]
    if rest:
        groups.append(Group(f"{len(rest)} other {'folders' if color == 'folder' else 'documents'}",
                            OTHER_COLOR, int(sum(counts[old] for old in rest))))
    other = len(groups) - 1
    return np.array([position.get(int(label), other) for label in labels], dtype=np.int64), groups


def _folder(file: str) -> str:
    parts = PurePosixPath(file).parts
    return parts[0] + "/" if len(parts) > 1 else "(top level)"


def clusters(vectors: np.ndarray, texts: Sequence[str], seed: int = 0) -> tuple[np.ndarray, list[str]]:
    """k-means clusters of the vectors, each named by the words most distinctive of its chunks."""
    from sklearn.cluster import KMeans

    count = min(len(PALETTE), max(1, round(math.sqrt(len(vectors) / 4))))
    labels = KMeans(n_clusters=count, n_init=1, random_state=seed).fit_predict(vectors) if count > 1 \
        else np.zeros(len(vectors), dtype=np.int64)
    return labels.astype(np.int64), distinctive_words(labels, texts, count)


def distinctive_words(labels: np.ndarray, texts: Sequence[str], count: int, words: int = 3) -> list[str]:
    """Per cluster, the words whose share of its chunks most exceeds their share of all chunks."""
    from rag.text import STOPWORDS

    seen = [set(w.lower() for w in WORD.findall(text)) - STOPWORDS for text in texts]
    everywhere = Counter(w for chunk in seen for w in chunk)
    names = []
    for cluster in range(count):
        members = [s for s, label in zip(seen, labels) if label == cluster]
        inside = Counter(w for chunk in members for w in chunk)
        # share inside the cluster, weighted by how rare the word is overall (a class-based tf-idf);
        # words in a single chunk say nothing about a cluster
        score = {w: (n / len(members)) * math.log(len(texts) / everywhere[w]) for w, n in inside.items() if n > 1}
        best = sorted(score, key=lambda w: (-score[w], w))[:words]
        names.append(", ".join(best) if best else f"cluster {cluster + 1}")
    return names


# -- near duplicates -----------------------------------------------------------------------


def near_duplicates(vectors: np.ndarray, paths: Sequence[str], threshold: float = DUPLICATE_COSINE,
                    block: int = 2048) -> tuple[list[tuple[float, int, int]], int]:
    """(cosine, row, row) of the closest pairs across different files, best first, and how many there are."""
    owner = np.unique(np.asarray(paths), return_inverse=True)[1]
    found: list[tuple[float, int, int]] = []
    count = 0
    for start in range(0, len(vectors), block):
        # only the upper triangle: row i is compared with rows after it
        similarity = vectors[start:start + block] @ vectors[start:].T
        rows, cols = np.nonzero(similarity > threshold)
        keep = (cols + start > rows + start) & (owner[rows + start] != owner[cols + start])
        rows, cols = rows[keep], cols[keep]
        scores = similarity[rows, cols]
        count += len(scores)
        # an index full of copied boilerplate can hold millions of pairs: keep only the best per block
        best = np.argsort(-scores, kind="stable")[:DUPLICATES_LISTED]
        found.extend(zip(scores[best].tolist(), (rows[best] + start).tolist(), (cols[best] + start).tolist()))
    found.sort(key=lambda pair: -pair[0])
    return found[:DUPLICATES_LISTED], count


# -- output --------------------------------------------------------------------------------


def _render(points: _Points, layout: Layout, kept: float, group_of: np.ndarray, groups: list[Group],
            pairs, pair_count: int, note: str, documents: int, total: int, options: MapOptions,
            retrieval, query_at, hits: list[tuple[int, int]]) -> str:
    xy = _normalise(layout.points, query_at)
    files = sorted(set(points.files))
    file_index = {f: i for i, f in enumerate(files)}
    headings = sorted(set(points.headings))
    heading_index = {h: i for i, h in enumerate(headings)}
    data = {
        "files": files,
        "headings": headings,
        "groups": [{"name": g.name, "color": g.color} for g in groups],
        # x, y, group, file, page, heading, preview, chunk id: arrays, not objects, keep 20k points small
        "points": [[xy[i][0], xy[i][1], int(group_of[i]), file_index[points.files[i]], points.pages[i],
                    heading_index[points.headings[i]], points.texts[i], int(points.ids[i])]
                   for i in range(len(points.ids))],
        "query": {"x": xy[-1][0], "y": xy[-1][1], "text": retrieval.question} if retrieval else None,
        "hits": [{"point": row, "rank": rank} for row, rank in hits],
    }
    e = html.escape
    stats = [("documents", f"{documents:,}"), ("chunks shown", f"{len(points.ids):,} of {total:,}"),
             ("sample", note), ("colour", options.color),
             ("projection", f"{layout.projection}, {kept:.0%} of 10 nearest neighbours kept"),
             ("near-duplicates", f"{pair_count:,} pairs across files (cosine > {DUPLICATE_COSINE})")]
    legend = "".join(
        f'<li data-group="{i}"><span class="swatch" style="background:{g.color}"></span>'
        f'<span class="name">{e(g.name)}</span> <span class="count">{g.count:,}</span></li>'
        for i, g in enumerate(groups))
    hit_items = "".join(
        f'<li data-rank="{rank}"><b>[{rank}]</b> {e(_where(points, row))}<br><span class="words">'
        f'{e(points.texts[row][:160])}</span></li>' for row, rank in hits)
    question = (f'<h2>Question</h2><p class="question">{e(retrieval.question)}</p>'
                f'<p class="hint">best cosine {retrieval.best_similarity or 0:.2f}; '
                f'{options.mode} search, top {options.top_k}</p><ol class="hits">{hit_items}</ol>') if retrieval else ""
    duplicate_items = "".join(
        f'<li data-pair="{a},{b}"><b>{cos:.3f}</b> {e(_where(points, a))} ↔ {e(_where(points, b))}'
        f'<br><span class="words">{e(points.texts[a][:120])}</span></li>' for cos, a, b in pairs)
    shown_pairs = f" (the {len(pairs)} closest)" if pair_count > len(pairs) else ""
    replacements = {
        "TITLE": e(f"rag map: {documents} documents, {len(points.ids):,} chunks"),
        "STATS": "".join(f"<dt>{e(k)}</dt><dd>{e(v)}</dd>" for k, v in stats),
        "LEGEND": legend,
        "QUESTION": question,
        "DUPLICATES": (f"<h2>Near-duplicates{shown_pairs}</h2><ol class=\"pairs\">{duplicate_items}</ol>"
                       if pairs else "<h2>Near-duplicates</h2><p class=\"hint\">none across files</p>"),
        # inside <script>, JSON with <, > and & escaped can close no tag and open no comment
        "DATA": json.dumps(data, ensure_ascii=False, separators=(",", ":"))
        .replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026"),
    }
    page = TEMPLATE.read_text(encoding="utf-8")
    for key, value in replacements.items():
        page = page.replace(f"@@{key}@@", value)
    return page


def _where(points: _Points, row: int) -> str:
    page = points.pages[row]
    return points.files[row] + (f", page {page}" if page else "") + (f" › {points.headings[row]}" if points.headings[row] else "")


def _normalise(points: np.ndarray, query_at) -> list[list[float]]:
    """Coordinates in 0..1000 on the longer axis (same scale on both, so distances are not bent),
    y pointing down as on screen; the query, when there is one, is the last row."""
    allxy = np.vstack([points, query_at[None, :]]) if query_at is not None else points
    low = allxy.min(axis=0)
    span = float((allxy.max(axis=0) - low).max()) or 1.0
    scaled = (allxy - low) / span * 1000
    scaled[:, 1] = scaled[:, 1].max() - scaled[:, 1]
    return np.round(scaled, 1).tolist()


def write_png(path: Path, points: np.ndarray, group_of: np.ndarray, groups: list[Group], query_at,
              hit_rows: Sequence[int]) -> None:
    """A static image of the same map, drawn with matplotlib (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    size = max(3.0, min(40.0, 6000 / max(len(points), 1)))
    figure, axes = plt.subplots(figsize=(11, 7.5), dpi=120)
    colors = np.array([groups[g].color for g in group_of])
    axes.scatter(points[:, 0], points[:, 1], s=size, c=colors, linewidths=0, alpha=0.85)
    if len(hit_rows):
        hit = points[list(hit_rows)]
        axes.scatter(hit[:, 0], hit[:, 1], s=size * 6 + 40, facecolors="none", edgecolors="black", linewidths=1.4)
    if query_at is not None:
        axes.scatter([query_at[0]], [query_at[1]], s=180, marker="*", c="black", zorder=3)
    axes.set_xticks([])
    axes.set_yticks([])
    handles = [Line2D([], [], marker="o", linestyle="", color=g.color, label=_clip(g.name, 40)) for g in groups]
    axes.legend(handles=handles, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False, fontsize=8)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        figure.savefig(temp, format="png")
        os.replace(temp, path)
    finally:
        plt.close(figure)
        temp.unlink(missing_ok=True)


def _clip(text: str, width: int) -> str:
    """The end of a long name: a file's own name says more than the folders above it."""
    return text if len(text) <= width else "…" + text[-(width - 1):]


def _write_atomically(path: Path, payload: bytes) -> None:
    # a sibling temporary file opened the ordinary way, so the page gets the user's usual
    # permissions (mkstemp would make it private) and readers never see half of it
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        temp.write_bytes(payload)
        os.replace(temp, path)
    finally:
        temp.unlink(missing_ok=True)
