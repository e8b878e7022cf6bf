"""Scope: `Filters` (rag.filters) resolved against one index into the documents and chunks they keep.

Invariant: a filtered search ranks exactly the chunks in scope, in both legs, before the top-k
is taken, so it never returns a chunk outside the filter nor fewer hits than the filter holds.
Two ways to get there, chosen per filter by the share of the index it keeps (bench/filters.py):

- narrow (under BROAD of the chunks): the legs are restricted inside FAISS (an ID selector) and
  SQLite (the FTS5 match limited to the chunk ids), which costs less than an unfiltered search;
- broad: each leg searches unfiltered, deep enough that its top-k in scope is expected among
  the results (limit / share x SLACK), and keeps those in scope. The first k in scope of an
  exact ranking are the exact top k in scope; when fewer come back, the restricted search runs.
  Listing half of a 100k-chunk index's ids for a selector would cost more than the search.

Resolving reads every document's path, mtime and chunk count once per index generation, and
keeps the last SCOPES_KEPT scopes: a chat or an agent asking many questions of one folder pays
for its globs once.
"""

from __future__ import annotations

import json
import math
from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np

from rag.errors import RagError
from rag.filters import Filters, document_type
from rag.storage.store import Store, labels_for

BROAD = 0.25  # share of the index from which a leg searches unfiltered and keeps what is in scope
SLACK = 2.0  # how much deeper than limit / share a broad search looks
SCOPES_KEPT = 16


@dataclass
class Scope:
    """The chunks a filter keeps in one index: whole documents, or (pages) listed chunks."""

    filters: Filters
    documents: np.ndarray  # sorted document ids
    chunks: int  # chunks in scope
    total: int  # chunks in the index
    everything: bool = False  # every document is in (a page range never is)
    reason: str = ""  # why nothing is in scope, in one line ("" when something is)
    listed: np.ndarray | None = None  # the chunk ids, when a page range chose them
    _ids: np.ndarray | None = field(default=None, repr=False)
    _json: str | None = field(default=None, repr=False)
    _selection: object = field(default=None, repr=False)

    @property
    def share(self) -> float:
        return self.chunks / self.total if self.total else 0.0

    @property
    def broad(self) -> bool:
        return self.share >= BROAD

    def depth(self, limit: int) -> int:
        """How deep a broad leg searches unfiltered for `limit` hits in scope."""
        return math.ceil(limit / max(self.share, 1e-9) * SLACK)

    def ids(self, store: Store) -> np.ndarray:
        if self._ids is None:
            self._ids = self.listed if self.listed is not None else store.chunk_ids_of(self.documents)
        return self._ids

    def ids_json(self, store: Store) -> str:
        if self._json is None:
            self._json = json.dumps(self.ids(store).tolist())
        return self._json

    def selection(self, store: Store):
        if self._selection is None:
            from rag.storage.vectors import Selection

            self._selection = Selection(self.ids(store))
        return self._selection

    def keep(self, store: Store, found: list[tuple[int, float]]) -> list[tuple[int, float]]:
        """The (chunk id, score) pairs of `found` that are in scope, in their order."""
        if not found:
            return []
        ids = np.fromiter((cid for cid, _ in found), dtype=np.int64, count=len(found))
        if self.listed is not None:
            inside = np.isin(ids, self.listed)
        else:
            owner = store.document_ids(ids.tolist())
            inside = np.isin(np.array([owner.get(int(cid), -1) for cid in ids], dtype=np.int64), self.documents)
        return [pair for pair, ok in zip(found, inside) if ok]


class Scopes:
    """Resolves filters for one store, caching the documents' facts per generation."""

    def __init__(self, store: Store):
        self.store = store
        self._generation: int | None = None
        self._facts: list[tuple[int, str, str, str, float, int]] = []  # id, label, in-root label, path, mtime, chunks
        self._total = 0
        self._kept: OrderedDict[Filters, Scope] = OrderedDict()

    def resolve(self, filters: Filters) -> Scope:
        with self.store.snapshot():
            generation = self.store.generation
            if generation != self._generation:
                self._load()
                self._generation = generation
                self._kept.clear()
            if filters in self._kept:
                self._kept.move_to_end(filters)
                return self._kept[filters]
            scope = self._resolve(filters)
        self._kept[filters] = scope
        while len(self._kept) > SCOPES_KEPT:
            self._kept.popitem(last=False)
        return scope

    def _load(self) -> None:
        rows = self.store.document_facts()
        facts = []
        total = 0
        for (doc_id, path, mtime, chunks), label in zip(rows, labels_for([row[1] for row in rows], self.store.roots())):
            # the path below the ingested folder too, so `library/**` works as well as `pydocs/library/**`
            inner = label.split("/", 1)[1] if "/" in label else ""
            facts.append((doc_id, label, inner, path, float(mtime), int(chunks)))
            total += int(chunks)
        self._facts = facts
        self._total = total

    def _resolve(self, filters: Filters) -> Scope:
        chosen = self._facts
        if filters.paths:
            import pathspec

            spec = pathspec.GitIgnoreSpec.from_lines(filters.paths)
            chosen = _matching(spec, chosen)
        if filters.types:
            chosen = [f for f in chosen if document_type(f[3]) in filters.types]
        since, before = filters.since_timestamp, filters.before_timestamp
        if since is not None:
            chosen = [f for f in chosen if f[4] >= since]
        if before is not None:
            chosen = [f for f in chosen if f[4] < before]
        documents = np.array(sorted(f[0] for f in chosen), dtype=np.int64)
        chunks = sum(f[5] for f in chosen)
        scope = Scope(filters, documents, chunks, self._total,
                      everything=len(chosen) == len(self._facts) and filters.pages is None)
        if not chosen:
            scope.reason = f"no indexed document matches {filters.describe()}"
            return scope
        if filters.pages is not None:
            if len(chosen) > 1:
                named = ", ".join(f[1] for f in sorted(chosen, key=lambda f: f[1])[:3])
                raise RagError(f"--pages {filters.pages} is a range in one document, but the other filters match "
                               f"{len(chosen)} ({named}{', ...' if len(chosen) > 3 else ''}): name one with --path")
            listed = self.store.chunk_ids_on_pages(chosen[0][0], filters.pages.first, filters.pages.last)
            scope.listed = listed
            scope.chunks = len(listed)
            if not len(listed):
                scope.reason = f"no passage of {chosen[0][1]} lies on pages {filters.pages}"
        return scope


def _matching(spec, facts: list) -> list:
    """The documents the globs keep. Each pattern's regular expression runs over every label first
    (10,000 documents: a few milliseconds a pattern, a twentieth of asking pathspec per file); only
    when some pattern excludes (`!`) are the documents any pattern touched decided one by one."""
    patterns = [pattern for pattern in spec.patterns if pattern.include is not None]
    touched: set[int] = set()
    for pattern in patterns:
        match = pattern.regex.match
        touched.update(i for i, f in enumerate(facts) if match(f[1]) or (f[2] and match(f[2])))
    if all(pattern.include for pattern in patterns):
        return [facts[i] for i in sorted(touched)]
    return [facts[i] for i in sorted(touched) if _included(spec, facts[i][1], facts[i][2])]


def _included(spec, label: str, inner: str) -> bool:
    """As in a .gitignore, the last pattern that matches decides; a pattern may match the label
    (`pydocs/library/os.rst.txt`) or the path below the ingested folder (`library/os.rst.txt`), so
    `library/**` then `!library/os*` keeps the library but os."""
    results = [spec.check_file(label)] + ([spec.check_file(inner)] if inner else [])
    decided = [result for result in results if result.include is not None]
    return bool(max(decided, key=lambda result: result.index).include) if decided else False
