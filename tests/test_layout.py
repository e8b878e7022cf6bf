"""The layering rule of DESIGN.md, enforced by walking every module's imports (lazy ones too).

- `ingest/` may import the `rag` core, never `rag.cli`, `rag.index`, `rag.render` or `rag.chat`.
- Nothing in `rag/` imports `ingest` except the composition roots, rag/index.py and rag/cli.py
  (and the interfaces built on them, which only reach ingest through Index).
- Core modules never import click or rag.render: only the presentation layer does.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
COMPOSITION_ROOTS = {"rag/index.py", "rag/cli.py"}
# The presentation layer: what prints to a terminal (or serves a page) may use click and render.
PRESENTATION = {"rag/cli.py", "rag/render.py", "rag/chat.py", "rag/display.py", "rag/map.py", "rag/mcp_server.py",
                "rag/serve.py"}
INGEST_MAY_NOT = ("rag.cli", "rag.index", "rag.render", "rag.chat", "rag.serve", "rag.mcp_server")


def imports(path: Path) -> set[str]:
    """Every module a file imports, at any depth (function-level imports included)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def violations(root: Path) -> list[str]:
    problems = []
    for path in sorted((root / "rag").rglob("*.py")) + sorted((root / "ingest").rglob("*.py")):
        rel = path.relative_to(root).as_posix()
        names = imports(path)
        if rel.startswith("ingest/"):
            problems += [f"{rel} imports {n}" for n in names if n.startswith(INGEST_MAY_NOT)]
        else:
            if rel not in COMPOSITION_ROOTS:
                problems += [f"{rel} imports {n}" for n in names if n == "ingest" or n.startswith("ingest.")]
            if rel not in PRESENTATION:
                problems += [f"{rel} imports {n}" for n in names
                             if n == "click" or n.startswith("click.") or n.startswith("rag.render")]
    return problems


def test_the_code_follows_the_layering_rule():
    assert violations(ROOT) == []


@pytest.mark.parametrize(
    "module, source, expected",
    [
        ("rag/retrieve.py", "from ingest.chunk import ChunkSettings\n", "rag/retrieve.py imports ingest.chunk"),
        ("rag/generate.py", "def f():\n    from rag.render import location\n", "rag/generate.py imports rag.render"),
        ("rag/store.py", "import click\n", "rag/store.py imports click"),
        ("ingest/chunk.py", "from rag.index import Index\n", "ingest/chunk.py imports rag.index"),
    ],
)
def test_a_forbidden_import_is_caught(tmp_path, module, source, expected):
    for package in ("rag", "ingest"):
        (tmp_path / package).mkdir()
    (tmp_path / module).write_text(source, encoding="utf-8")
    assert expected in violations(tmp_path)
