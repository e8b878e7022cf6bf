"""`rag map`: a picture of what an index holds: clusters, duplicates and a 2-D projection (build,
projection), written as a self-contained page (page.html) or a PNG."""
