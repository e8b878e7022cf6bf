"""Keeping an index fresh: `rag watch`, and `rag serve --watch` / `rag mcp --watch` (watcher).

File-system events (watchfiles; polling where a file system sends none) are debounced into
batches, each one incremental ingest through `Index.ingest`, the same run `rag ingest` makes, so
the ignore rules, the one-writer lock and the batch transactions are exactly the ingest's.
"""
