"""Storage: the index on disk. rag.sqlite is the truth (documents, chunks, FTS5, meta, migrations);
vectors.faiss is derived from it and rebuilt whenever it is missing, stale or damaged."""
