"""The layering rule of DESIGN.md, enforced by walking every module's imports (lazy ones too).

Every module belongs to a stage (its subpackage; the top-level modules of `rag/` are the core), and
a stage may import only the stages listed for it in ALLOWED: imports run one way, from the
interfaces down through Index to the stages and the core. Besides the stage table:

- the package facade (`from rag import ...`) is for users and the interfaces, never for the code
  the facade itself loads (that closes a circle: ingest -> rag/__init__ -> index -> ingest);
- two interfaces never import each other (servers.mcp and servers.http share servers.wire); only
  the CLI may start a server;
- click and rich belong to the terminal;
- within `ingest.formats`, no two modules import each other (the dispatch passes itself in).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CORE = "core"  # rag/errors, types, text, markup, config, runtimes: vocabulary every stage shares
STAGES = ("storage", "embedding", "retrieval", "answer", "evaluation", "map", "watch", "terminal", "servers")
ALLOWED: dict[str, set[str]] = {
    CORE: set(),
    "storage": {CORE},
    "embedding": {CORE},
    "ingest.formats": {CORE},
    "ingest": {CORE, "ingest.formats", "storage", "embedding"},
    "retrieval": {CORE, "storage", "embedding"},
    "answer": {CORE},
    "evaluation": {CORE},
    "map": {CORE, "storage"},
    "index": {CORE, "storage", "embedding", "retrieval", "answer", "evaluation", "map", "ingest", "ingest.formats"},
    "facade": {CORE, "index"},
    "watch": {CORE, "index"},
    "terminal": {CORE, "facade", "index", "answer", "evaluation", "map", "watch", "servers"},
    "servers": {CORE, "facade", "index", "answer", "watch"},
}
# The one interface that may reach another: `rag serve` and `rag mcp` are commands of the CLI.
STARTS_SERVERS = {"rag/terminal/cli.py"}
TERMINAL_ONLY = ("click", "rich")


def stage_of(module: str) -> str | None:
    """The stage a dotted module name belongs to (None: not ours)."""
    parts = module.split(".")
    if parts[0] == "ingest":
        return "ingest.formats" if parts[1:2] == ["formats"] else "ingest"
    if parts[0] != "rag":
        return None
    if len(parts) == 1:
        return "facade"
    if parts[1] in STAGES:
        return parts[1]
    if parts[1] in ("index", "__main__"):
        return "index" if parts[1] == "index" else "terminal"
    return CORE


def module_name(rel: str) -> str:
    return rel.removesuffix(".py").removesuffix("/__init__").replace("/", ".")


def imports(path: Path, root: Path) -> set[str]:
    """Every module a file imports, at any depth (function-level imports included); `from rag
    import x` is the facade unless x is a submodule (`from rag import markup`)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            folder = root.joinpath(*node.module.split("."))
            for alias in node.names:
                submodule = (folder / f"{alias.name}.py").exists() or (folder / alias.name / "__init__.py").exists()
                found.add(f"{node.module}.{alias.name}" if submodule else node.module)
    return found


def violations(root: Path) -> list[str]:
    problems = []
    files = sorted((root / "rag").rglob("*.py")) + sorted((root / "ingest").rglob("*.py"))
    for path in files:
        rel = path.relative_to(root).as_posix()
        me = module_name(rel)
        mine = stage_of(me)
        for name in sorted(imports(path, root)):
            if name.split(".")[0] in TERMINAL_ONLY and mine != "terminal":
                problems.append(f"{rel} imports {name} (only the terminal prints)")
                continue
            theirs = stage_of(name)
            if theirs is None or name == me:
                continue
            if theirs == mine:
                if mine == "servers" and {me, name} == {"rag.servers.http", "rag.servers.mcp"}:
                    problems.append(f"{rel} imports {name} (one interface imports another)")
                if mine == "ingest.formats" and me != "ingest.formats" and name == "ingest.formats":
                    problems.append(f"{rel} imports {name} (a format imports the dispatch)")
                continue
            if theirs == "facade" and mine != "facade" and mine not in ("terminal", "servers"):
                problems.append(f"{rel} imports {name} (the facade is for users and interfaces)")
            elif theirs not in ALLOWED.get(mine, set()):
                problems.append(f"{rel} imports {name} ({mine} may not import {theirs})")
            elif theirs == "servers" and rel not in STARTS_SERVERS:
                problems.append(f"{rel} imports {name} (one interface imports another)")
    return problems


def test_the_code_follows_the_layering_rule():
    assert violations(ROOT) == []


def misplaced_errors(root: Path) -> list[str]:
    """Exception classes defined anywhere but rag/errors.py, where every error class lives."""
    import builtins

    errors = root / "rag" / "errors.py"
    known = {name for name, value in vars(builtins).items() if isinstance(value, type) and issubclass(value, BaseException)}
    if errors.exists():
        known |= {node.name for node in ast.walk(ast.parse(errors.read_text(encoding="utf-8"))) if isinstance(node, ast.ClassDef)}
    problems = []
    for path in sorted((root / "rag").rglob("*.py")) + sorted((root / "ingest").rglob("*.py")):
        if path == errors:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if not isinstance(node, ast.ClassDef):
                continue
            bases = {base.id if isinstance(base, ast.Name) else getattr(base, "attr", "") for base in node.bases}
            if bases & known or any(base.endswith(("Error", "Exception")) for base in bases):
                problems.append(f"{path.relative_to(root).as_posix()}: {node.name} belongs in rag/errors.py")
    return problems


def test_every_error_class_is_in_errors_py():
    assert misplaced_errors(ROOT) == []


@pytest.mark.parametrize("source", ["class Busy(RagError):\n    pass\n", "class Bad(ValueError):\n    pass\n",
                                    "import click\nclass Odd(click.ClickException):\n    pass\n"])
def test_an_error_class_outside_errors_py_is_caught(tmp_path, source):
    (tmp_path / "rag" / "storage").mkdir(parents=True)
    (tmp_path / "ingest").mkdir()
    (tmp_path / "rag" / "errors.py").write_text("class RagError(Exception):\n    pass\n", encoding="utf-8")
    (tmp_path / "rag" / "storage" / "store.py").write_text(source, encoding="utf-8")
    assert [line.split(":")[0] for line in misplaced_errors(tmp_path)] == ["rag/storage/store.py"]


def test_every_stage_is_a_package_with_a_docstring():
    for stage in STAGES:
        init = ROOT / "rag" / stage / "__init__.py"
        assert ast.get_docstring(ast.parse(init.read_text(encoding="utf-8"))), init


@pytest.mark.parametrize(
    "module, source, expected",
    [
        # a stage reaching up: retrieval does not know how files are read, nor answers about search
        ("rag/retrieval/search.py", "from ingest.chunk import ChunkSettings\n", "retrieval may not import ingest"),
        ("rag/answer/citations.py", "from rag.retrieval.search import STOPWORDS\n", "answer may not import retrieval"),
        ("rag/answer/generate.py", "def f():\n    from rag.terminal.render import location\n",
         "answer may not import terminal"),
        ("rag/config.py", "from rag.retrieval.rerank import x\n", "core may not import retrieval"),
        ("rag/storage/store.py", "import click\n", "only the terminal prints"),
        ("rag/servers/http.py", "from rag.terminal.render import sources_block\n", "servers may not import terminal"),
        ("rag/map/build.py", "from rag.retrieval.search import Retriever\n", "map may not import retrieval"),
        # ingest: the facade closes a circle, and Index is above it
        ("ingest/pipeline.py", "from rag import Index\n", "the facade is for users and interfaces"),
        ("ingest/distributed.py", "def f():\n    import rag\n", "the facade is for users and interfaces"),
        ("ingest/chunk.py", "from rag.index import Index\n", "ingest may not import index"),
        ("rag/index.py", "from rag import __version__\n", "the facade is for users and interfaces"),
        # interfaces
        ("rag/servers/mcp.py", "from rag.servers.http import load_model\n", "one interface imports another"),
        ("rag/terminal/chat.py", "from rag.servers.http import serve\n", "one interface imports another"),
        # formats
        ("ingest/formats/mail.py", "def f():\n    from ingest.formats import loader_for\n",
         "a format imports the dispatch"),
        ("ingest/formats/pdf.py", "from ingest.pipeline import run_ingest\n", "ingest.formats may not import ingest"),
    ],
)
def test_a_forbidden_import_is_caught(tmp_path, module, source, expected):
    (tmp_path / "rag").mkdir()
    (tmp_path / "ingest").mkdir()
    target = tmp_path / module
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(source, encoding="utf-8")
    found = violations(tmp_path)
    assert any(module in line and expected in line for line in found), found


def test_an_allowed_import_passes(tmp_path):
    for module, source in [("rag/retrieval/search.py", "from rag.storage.store import Store\n"),
                           ("rag/terminal/cli.py", "def f():\n    from rag.servers.http import serve\n"),
                           ("ingest/formats/__init__.py", "from ingest.formats import mail\n"),
                           ("rag/servers/mcp.py", "from rag.servers.wire import passage\n")]:
        target = tmp_path / module
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(source, encoding="utf-8")
    (tmp_path / "ingest").mkdir(exist_ok=True)
    assert violations(tmp_path) == []
