"""Second stage: a local cross-encoder re-scores the fused top candidates.

No cross-encoder ships with `rag` (none is in any package here), so this is opt-in:
`--rerank-model PATH` / `RAG_RERANK_MODEL` names a local sentence-transformers `CrossEncoder`
folder (for example a copy of cross-encoder/ms-marco-MiniLM-L6-v2). The first-stage ranking
(hybrid, dense or keyword) picks the top `DEPTH` chunks; the cross-encoder reads each as a
(question, passage) pair, and its scores order them. Loading it imports torch and
sentence-transformers (seconds, once per process); scoring 50 passages costs what embedding 50
passages does with a model of its size.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Sequence

from rag.config import rerank_folder_problem
from rag.errors import ModelNotFound
from rag.text import heading_path

DEPTH = 50  # first-stage candidates the cross-encoder re-scores
BATCH = 16


def passage_text(heading: Sequence[str], text: str) -> str:
    """What the cross-encoder reads for a chunk: its heading path, then its text."""
    return f"{heading_path(heading)}\n{text}" if heading else text


class CrossEncoderReranker:
    """A sentence-transformers CrossEncoder from a local folder, loaded on first use."""

    def __init__(self, path: str | Path, threads: int | None = None):
        self.path = Path(path).expanduser()
        self.threads = threads
        self._model = None
        self._loading = threading.Lock()

    @property
    def name(self) -> str:
        return str(self.path)

    def load(self) -> "CrossEncoderReranker":
        if self._model is None:
            with self._loading:
                if self._model is None:
                    self._model = self._load()
        return self

    def _load(self):
        problem = rerank_folder_problem(self.path)
        if problem:
            raise ModelNotFound(problem)
        from rag.embedding.embedder import quiet_sentence_transformers

        CrossEncoder = quiet_sentence_transformers().CrossEncoder
        if self.threads:
            import torch

            torch.set_num_threads(self.threads)
        try:
            return CrossEncoder(str(self.path), device="cpu", local_files_only=True)
        except Exception as exc:  # OSError, ValueError, safetensors' SafetensorError (an Exception): "not one here"
            raise ModelNotFound(
                f"cannot load rerank model {self.path} as a sentence-transformers CrossEncoder "
                f"[{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}]: "
                f"fix --rerank-model/RAG_RERANK_MODEL or leave it unset"
            ) from exc

    def scores(self, question: str, passages: Sequence[str]) -> list[float]:
        """One relevance score per passage (higher is better)."""
        if not passages:
            return []
        model = self.load()._model
        pairs = [(question, passage) for passage in passages]
        return [float(s) for s in model.predict(pairs, batch_size=BATCH, show_progress_bar=False)]
