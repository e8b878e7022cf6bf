"""Index maintenance outside an ingest run: removing documents.

Holds the same writer lock as an ingest and rebuilds the vector file after the change, so the
index is never left half-updated.
"""

from __future__ import annotations

import os
from pathlib import Path

from rag import vectors
from rag.store import Store


def remove_documents(store: Store, paths: list[Path]) -> tuple[list[str], list[Path]]:
    """Remove the named documents (a folder names everything under it); return (removed, unknown)."""
    removed: list[str] = []
    unknown: list[Path] = []
    with store.writer_lock():
        stored = [d.path for d in store.documents()]
        doomed: list[str] = []
        for given in paths:
            target = os.path.abspath(given)
            matches = [p for p in stored if p == target or p.startswith(target.rstrip(os.sep) + os.sep)]
            if not matches:
                unknown.append(given)
            doomed += [p for p in matches if p not in doomed]
        if doomed:  # nothing to remove: leave the generation (and so the vector file) alone
            with store.transaction():
                removed = [path for path in doomed if store.delete_document(path)]
        vectors.refresh_file(store)
    return removed, unknown
