"""`rag map`: the page opens in a real headless Chromium with one point per shown chunk and a
legend, a question rings exactly the hits `rag ask` gets, the PNG is a real image, document text
cannot inject script, near-duplicates across files are listed, and an empty index is one line.

The shared corpus is small (under 30 chunks), so the map falls back to PCA and stays quick;
test_projections_keep_neighbourhoods covers t-SNE.
"""

from __future__ import annotations

import json
import re
import struct
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from ingest.chunk import ChunkSettings
from ingest.pipeline import run_ingest
from rag.terminal.cli import main
from rag.config import Settings
from rag.map.build import MapOptions, build_map
from rag.map.projection import fit, neighbourhood_preservation
from rag.retrieval.search import Retriever
from rag.storage.store import Store
from tests.helpers import CORPUS, run_rag

BREAD = "How long do I bake sourdough bread?"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def rag_map(built_index, monkeypatch, embedder):
    """Run `rag map ...` in-process from the folder that holds ./indexes/default."""
    # `embedder` loads the model once for the session, so the command's own Embedder is cheap
    monkeypatch.chdir(built_index)

    def run(*args: str):
        return CliRunner().invoke(main, ["map", *args])

    return run


def page_data(html_path: Path) -> dict:
    """The JSON the page's script draws from."""
    found = re.search(r'<script id="map-data" type="application/json">(.*?)</script>', html_path.read_text(), re.S)
    return json.loads(found.group(1))


def chunk_total(index_root: Path) -> int:
    store = Store.open(index_root / "indexes" / "default")
    try:
        return store.chunk_count()
    finally:
        store.close()


@pytest.mark.slow  # Chromium
def test_map_opens_in_chromium_with_one_point_per_chunk_and_a_legend(rag_map, built_index, tmp_path, browser_page):
    out = tmp_path / "map.html"
    result = rag_map("--out", str(out))
    assert result.exit_code == 0, result.output
    assert result.stdout.strip().endswith("map.html")
    total = chunk_total(built_index)

    browser_page.goto(out.as_uri())
    assert browser_page.locator("svg#map circle.pt").count() == total
    assert browser_page.locator("circle.pt[data-chunk]").count() == total
    legend = browser_page.locator("#legend li")
    assert legend.count() == len(CORPUS) + 1  # one entry per document (the corpus plus manual.pdf)
    assert "cooking.md" in browser_page.locator("#legend").inner_text()
    assert f"{total} of {total}" in browser_page.locator("#stats").inner_text()
    assert browser_page.errors == []


@pytest.mark.slow  # Chromium
def test_hovering_a_point_shows_its_file_heading_and_first_words(rag_map, tmp_path, browser_page):
    out = tmp_path / "map.html"
    assert rag_map("--out", str(out)).exit_code == 0
    data = page_data(out)
    bread = next(i for i, p in enumerate(data["points"]) if "Sourdough" in p[6])

    browser_page.goto(out.as_uri())
    browser_page.locator(f'circle.pt[data-i="{bread}"]').hover(force=True)
    tip = browser_page.locator("#tip")
    assert tip.is_visible()
    assert "cooking.md" in tip.inner_text()
    assert "Bread" in tip.inner_text()
    assert "Sourdough bread needs a starter" in tip.inner_text()


@pytest.mark.slow  # Chromium
def test_query_rings_exactly_k_hits_the_ones_ask_retrieves(rag_map, built_index, tmp_path, browser_page, embedder):
    out = tmp_path / "map.html"
    result = rag_map("--out", str(out), "--query", BREAD, "-k", "3")
    assert result.exit_code == 0, result.output

    browser_page.goto(out.as_uri())
    rings = browser_page.locator("circle.ring[data-hit]")
    assert rings.count() == 3
    assert browser_page.locator("path.query").count() == 1
    data = page_data(out)
    ringed = [data["points"][int(rings.nth(i).get_attribute("data-i"))][7] for i in range(3)]
    store = Store.open(built_index / "indexes" / "default")
    retrieval = Retriever.open(Settings(), store=store, embedder=embedder).search(BREAD, 3, "hybrid")
    store.close()
    assert ringed == [hit.chunk_id for hit in retrieval.hits]
    assert "Sourdough" in browser_page.locator("ol.hits li").first.inner_text()


def test_png_is_a_valid_image(rag_map, tmp_path):
    from PIL import Image

    png = tmp_path / "map.png"
    result = rag_map("--out", str(tmp_path / "map.html"), "--png", str(png), "--query", BREAD)
    assert result.exit_code == 0, result.output
    header = png.read_bytes()[:24]
    assert header[:8] == PNG_SIGNATURE
    width, height = struct.unpack(">II", header[16:24])
    with Image.open(png) as image:
        image.verify()
    assert (width, height) == Image.open(png).size
    assert width >= 800 and height >= 600


def test_empty_index_is_a_one_line_error(tmp_path):
    Store.open(tmp_path / "indexes" / "default", create=True).close()
    result = run_rag("map", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        "Error: the index at indexes/default is empty: run `rag ingest PATH` first"
    ]
    assert not (tmp_path / "map.html").exists()


def test_missing_index_is_a_one_line_error(tmp_path):
    result = run_rag("map", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.splitlines() == ["Error: no index at indexes/default: run `rag ingest PATH` first"]


def test_sample_is_stated_and_keeps_every_document(built_index, tmp_path):
    store = Store.open(built_index / "indexes" / "default")
    out = tmp_path / "map.html"
    report = build_map(store, None, MapOptions(out=out, sample=len(CORPUS) + 1))
    store.close()
    assert report.chunks_shown == len(CORPUS) + 1
    assert report.chunks_total > report.chunks_shown
    data = page_data(out)
    assert len({p[3] for p in data["points"]}) == len(CORPUS) + 1  # one chunk from each document
    assert f"{report.chunks_shown} of {report.chunks_total} chunks, sampled" in out.read_text()


def test_clusters_are_named_by_their_words(built_index, tmp_path):
    store = Store.open(built_index / "indexes" / "default")
    report = build_map(store, None, MapOptions(out=tmp_path / "map.html", color="cluster"))
    store.close()
    names = [g["name"] for g in page_data(tmp_path / "map.html")["groups"]]
    assert report.groups == len(names) >= 2
    corpus_words = set(re.findall(r"[a-z]+", " ".join(CORPUS.values()).lower()))
    for name in names:
        assert set(name.split(", ")) <= corpus_words, name


@pytest.fixture
def tricky_index(tmp_path, embedder) -> Path:
    """Two folders holding the same section word for word, and a document that tries to inject script."""
    shared = ("The backup job copies every database to the archive server at two in the morning and keeps "
              "thirty daily copies before the oldest one is deleted.")
    folder = tmp_path / "docs"
    (folder / "ops").mkdir(parents=True)
    (folder / "old").mkdir()
    (folder / "ops" / "backup.md").write_text(f"# Backups\n\n{shared}\n", encoding="utf-8")
    (folder / "old" / "backup-copy.md").write_text(f"# Backups\n\n{shared}\n", encoding="utf-8")
    (folder / "evil.md").write_text(
        '# <img src=x onerror="window.injected=1">\n\n'
        "Harmless words <script>window.injected=2</script> and </script><script>window.injected=3</script>.\n",
        encoding="utf-8",
    )
    store = Store.open(tmp_path / "indexes" / "default", create=True)
    assert run_ingest([folder], store, embedder, ChunkSettings()).ok
    store.close()
    return tmp_path


@pytest.mark.slow  # Chromium
def test_document_text_cannot_inject_script(tricky_index, browser_page):
    store = Store.open(tricky_index / "indexes" / "default")
    out = tricky_index / "map.html"
    build_map(store, None, MapOptions(out=out))
    store.close()

    browser_page.goto(out.as_uri())
    assert browser_page.evaluate("window.injected") is None
    assert browser_page.locator("aside img, aside script").count() == 0
    evil = next(i for i, p in enumerate(page_data(out)["points"]) if "Harmless" in p[6])
    browser_page.locator(f'circle.pt[data-i="{evil}"]').hover(force=True)
    assert "<script>window.injected=2</script>" in browser_page.locator("#tip").inner_text()
    assert browser_page.errors == []


@pytest.mark.slow  # Chromium
def test_near_duplicates_across_files_are_listed(tricky_index, browser_page):
    store = Store.open(tricky_index / "indexes" / "default")
    out = tricky_index / "map.html"
    report = build_map(store, None, MapOptions(out=out, color="folder"))
    store.close()
    assert report.near_duplicates == 1

    browser_page.goto(out.as_uri())
    pair = browser_page.locator("ol.pairs li")
    assert pair.count() == 1
    assert "ops/backup.md" in pair.inner_text() and "old/backup-copy.md" in pair.inner_text()
    legend = browser_page.locator("#legend").inner_text()
    assert "ops/" in legend and "old/" in legend and "(top level)" in legend


def test_projections_keep_neighbourhoods(embedder):
    """On 40 short texts about four topics, every projection keeps more neighbours than a random
    layout would, and a new text lands nearer its own topic than the others."""
    topics = {
        "bread": ["sourdough loaf", "baking bread in an oven", "flour water and yeast", "kneading dough"],
        "space": ["the planet Mars", "moons of Jupiter", "a light-year of distance", "stars in a galaxy"],
        "code": ["a Python function", "compiling C programs", "a bug in the parser", "unit tests for a module"],
        "garden": ["pruning roses", "watering tomatoes", "compost for the soil", "planting tulip bulbs"],
    }
    texts = [f"{phrase} ({n})" for phrases in topics.values() for phrase in phrases for n in range(10)]
    vectors = embedder.embed_documents(texts)
    for projection in ("pca", "tsne"):
        layout = fit(vectors, projection)
        assert layout.projection == projection
        assert layout.points.shape == (len(texts), 2) and np.isfinite(layout.points).all()
        assert neighbourhood_preservation(vectors, layout.points) > 0.5, projection
        placed = layout.place(embedder.embed_query("a crusty loaf of rye bread"))[0]
        centres = [layout.points[i * 40:(i + 1) * 40].mean(axis=0) for i in range(4)]
        assert int(np.argmin([np.linalg.norm(placed - c) for c in centres])) == 0, projection
