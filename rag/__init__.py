"""rag: chat with a folder of documents from the terminal, offline by default."""

__version__ = "0.1.0"
