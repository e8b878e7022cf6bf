"""ingest: turn files into stored chunks (discover -> load -> chunk -> embed -> store)."""
