"""`rag map`: a picture of what an index holds: clusters, duplicates and a 2-D projection (build,
projection), written as a self-contained page (page.html) or a PNG.

The choices a user names (`--color`, `--projection`) and their defaults live here, where the CLI
can read them for its help without importing numpy.
"""

from typing import Literal

Projection = Literal["pca", "tsne"]
PROJECTIONS: tuple[Projection, ...] = ("pca", "tsne")
DEFAULT_PROJECTION: Projection = "tsne"  # chosen by bench/map.py (rag/map/projection.py says why)
Color = Literal["document", "folder", "cluster"]
COLORS: tuple[Color, ...] = ("document", "folder", "cluster")
DEFAULT_COLOR: Color = "document"
DEFAULT_SAMPLE = 20_000  # chunks drawn at most: t-SNE on this many fits in the minute `rag map` is allowed
