"""rag: chat with a folder of documents from the terminal, offline by default.

The library API is `Index` (rag/index.py); importing this package loads nothing heavy.
"""

from rag.config import Settings, load_settings
from rag.errors import RagError
from rag.index import Index
from rag.types import Answer, Hit, IndexStatus, IngestReport, Retrieval, Source

__all__ = ["Index", "Settings", "load_settings", "RagError", "Answer", "Hit", "IndexStatus", "IngestReport",
           "Retrieval", "Source", "__version__"]


def __getattr__(name: str):
    if name == "__version__":  # read on demand: package metadata costs an import nobody else needs
        from rag.config import version

        return version()
    raise AttributeError(f"module 'rag' has no attribute {name!r}")
