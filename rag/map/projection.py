"""2-D projections of chunk embeddings for `rag map`, and the measure used to choose among them.

Invariant: a projection is fitted once per map. Anything placed afterwards (a question) goes
through `Layout.place`, which never refits, so the points already drawn do not move. PCA places a
new vector with its own linear transform; t-SNE places it at the similarity-weighted mean of the
2-D positions of its nearest neighbours in embedding space.

t-SNE (openTSNE) is the default, chosen by bench/map.py against PCA, scikit-learn's t-SNE and
UMAP (umap-learn) on neighbourhood preservation (the share of each point's 10 nearest neighbours
in 384-d still among its 10 nearest in 2-D) and CPU time, one thread: it kept the most
neighbourhoods per CPU second, and UMAP spends most of its time compiling with numba on every
run. 250 iterations after the early exaggeration kept as much as openTSNE's 500 in far less time,
which brings the default sample (rag.map.DEFAULT_SAMPLE) within the minute `rag map` is allowed;
fitting a sample and placing the rest from their neighbours lost too much. Figures:
bench/RESULTS.md, "rag map".
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

import numpy as np

from rag.map import DEFAULT_PROJECTION, Projection
TSNE_ITERATIONS = 250  # after 250 of early exaggeration; openTSNE's default 500 bought nothing here
NEIGHBOURS = 10  # the neighbourhood the preservation measure and query placement look at
# Below this many points t-SNE has no neighbourhoods to keep; PCA is exact enough.
MIN_NONLINEAR = 30


@dataclass(frozen=True)
class Layout:
    points: np.ndarray  # (n, 2) float32, one row per input vector
    projection: Projection  # what actually ran (tiny inputs fall back to PCA)
    seconds: float
    place: Callable[[np.ndarray], np.ndarray]  # (m, d) vectors -> (m, 2), without refitting


def fit(vectors: np.ndarray, projection: Projection = DEFAULT_PROJECTION, seed: int = 0, threads: int = 1) -> Layout:
    """Project L2-normalised `vectors` to 2-D.

    One thread by default, BLAS included: on these shared 2-core machines a second thread cost far
    more in spin-waits than it gained (bench/RESULTS.md, "rag map"), the same finding as the query
    path's (rag.index.limit_threads).
    """
    from threadpoolctl import threadpool_limits

    started = time.perf_counter()
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    with threadpool_limits(limits=threads):
        return _fit(vectors, projection, seed, threads, started)


def _fit(vectors: np.ndarray, projection: Projection, seed: int, threads: int, started: float) -> Layout:
    if projection == "pca" or len(vectors) < MIN_NONLINEAR:
        points, place = _pca(vectors)
        projection = "pca"
    elif projection == "tsne":
        points = _tsne(vectors, seed, threads)
        place = _neighbour_placer(vectors, points)
    else:
        raise ValueError(f"unknown projection {projection!r}")
    return Layout(np.asarray(points, dtype=np.float32), projection, time.perf_counter() - started, place)


def _pca(vectors: np.ndarray) -> tuple[np.ndarray, Callable[[np.ndarray], np.ndarray]]:
    mean = vectors.mean(axis=0)
    centred = vectors - mean
    if len(vectors) < 2:
        axes = np.zeros((vectors.shape[1], 2), dtype=np.float32)
    else:
        # eigenvectors of the d x d covariance: cheaper than an SVD of the n x d data when n >> d
        # (and two BLAS threads made it a hundred times slower on a busy machine: see fit)
        _, eigenvectors = np.linalg.eigh(centred.T @ centred)
        axes = eigenvectors[:, ::-1][:, :2].astype(np.float32)
    return centred @ axes, lambda new: (np.atleast_2d(new) - mean) @ axes


def _tsne(vectors: np.ndarray, seed: int, threads: int) -> np.ndarray:
    from openTSNE import TSNE

    perplexity = min(30.0, (len(vectors) - 1) / 3.0)
    embedding = TSNE(n_components=2, perplexity=perplexity, metric="cosine", initialization="pca",
                     n_iter=TSNE_ITERATIONS, n_jobs=threads, random_state=seed, verbose=False).fit(vectors)
    return np.asarray(embedding)


def _neighbour_placer(vectors: np.ndarray, points: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    def place(new: np.ndarray) -> np.ndarray:
        new = np.atleast_2d(np.asarray(new, dtype=np.float32))
        similarity = new @ vectors.T
        k = min(NEIGHBOURS, len(vectors))
        nearest = np.argpartition(-similarity, k - 1, axis=1)[:, :k]
        weights = np.maximum(np.take_along_axis(similarity, nearest, axis=1), 1e-6)
        return (points[nearest] * weights[:, :, None]).sum(axis=1) / weights.sum(axis=1, keepdims=True)

    return place


def neighbourhood_preservation(vectors: np.ndarray, points: np.ndarray, probes: int = 1000, seed: int = 0) -> float:
    """Mean share of a point's NEIGHBOURS nearest neighbours by cosine that stay among its nearest in 2-D.

    Measured on `probes` points drawn at random (exact neighbours, searched among all points), so
    the figure costs a fraction of a second even on 20k points. 1.0 when every neighbourhood
    survives; about k/n for a random layout.
    """
    n = len(vectors)
    k = min(NEIGHBOURS, n - 1)
    if k < 1:
        return 1.0
    chosen = np.random.default_rng(seed).choice(n, size=min(probes, n), replace=False)
    high = vectors[chosen] @ vectors.T
    points = np.asarray(points, dtype=np.float64)
    # -|a-b|^2 up to a per-row constant, without an (m, n, 2) intermediate
    low = 2 * points[chosen] @ points.T - (points**2).sum(axis=1)[None, :]
    rows = np.arange(len(chosen))
    high[rows, chosen] = -np.inf  # a point is not its own neighbour
    low[rows, chosen] = -np.inf
    near_high = np.argpartition(-high, k - 1, axis=1)[:, :k]
    near_low = np.argpartition(-low, k - 1, axis=1)[:, :k]
    kept = [len(np.intersect1d(a, b, assume_unique=True)) for a, b in zip(near_high, near_low)]
    return float(np.mean(kept) / k)
