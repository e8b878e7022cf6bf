"""Optional parts (pyproject.toml's extras): each command that needs one it lacks says which, in one
line, before doing any work; `make install` installs them all. A missing package is simulated by
setting its name to None in sys.modules, which makes both `import` and find_spec fail as if it
were not installed."""

from __future__ import annotations

import ast
import re
import sys
import tomllib

import pytest
from click.testing import CliRunner

from rag.errors import MissingExtra
from rag.terminal.cli import main
from tests.helpers import ROOT


def required_extras() -> set[str]:
    """The extras named by every require(...) call in rag/ and ingest/."""
    found = set()
    for path in [*(ROOT / "rag").rglob("*.py"), *(ROOT / "ingest").rglob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "require":
                found.add(node.args[0].value)
    return found


def test_every_extra_the_code_asks_for_is_declared_and_make_install_installs_it():
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["optional-dependencies"]
    asked = required_extras()

    assert asked == {"map", "serve", "mcp", "ray", "int8"}
    assert asked <= set(extras)
    assert extras["all"] == [f"rag[{','.join(sorted(asked))}]"]
    assert re.search(r"-e '\.\[all,test\]'", (ROOT / "Makefile").read_text(encoding="utf-8"))


def missing(monkeypatch, *modules: str) -> None:
    for module in modules:
        monkeypatch.setitem(sys.modules, module, None)


def test_map_without_opentsne_names_the_extra_and_the_projection_that_needs_none(built_index, monkeypatch, tmp_path):
    missing(monkeypatch, "openTSNE")
    monkeypatch.chdir(built_index)

    result = CliRunner().invoke(main, ["map", "--out", str(tmp_path / "map.html")])

    assert result.exit_code == 1
    assert result.stderr == "Error: rag map's t-SNE projection needs rag[map]: pip install 'rag[map]', or use --projection pca\n"
    assert not (tmp_path / "map.html").exists()


def test_map_png_without_matplotlib_names_the_extra(built_index, monkeypatch, tmp_path):
    missing(monkeypatch, "matplotlib")
    monkeypatch.chdir(built_index)

    result = CliRunner().invoke(main, ["map", "--projection", "pca", "--out", str(tmp_path / "map.html"),
                                       "--png", str(tmp_path / "map.png")])

    assert result.exit_code == 1
    assert result.stderr == "Error: rag map --png needs rag[map]: pip install 'rag[map]'\n"
    assert not (tmp_path / "map.html").exists()


def test_map_with_pca_needs_no_extra(built_index, monkeypatch, tmp_path):
    missing(monkeypatch, "openTSNE", "matplotlib")
    monkeypatch.chdir(built_index)

    result = CliRunner().invoke(main, ["map", "--projection", "pca", "--out", str(tmp_path / "map.html")])

    assert result.exit_code == 0, result.output
    assert (tmp_path / "map.html").is_file()


@pytest.mark.parametrize("command, modules, extra", [
    (["serve"], ("starlette",), "serve"),
    (["serve"], ("uvicorn",), "serve"),
    (["mcp"], ("mcp",), "mcp"),
])
def test_a_server_without_its_extra_is_one_line(built_index, monkeypatch, command, modules, extra):
    missing(monkeypatch, *modules)
    monkeypatch.chdir(built_index)

    result = CliRunner().invoke(main, command)

    assert result.exit_code == 1
    assert result.stderr == f"Error: rag {command[0]} needs rag[{extra}]: pip install 'rag[{extra}]'\n"


def test_ingest_on_ray_without_ray_names_the_extra(monkeypatch, tmp_path):
    missing(monkeypatch, "ray")
    (tmp_path / "notes.md").write_text("# Notes\n\nThe kettle needs descaling every month.\n", encoding="utf-8")

    result = CliRunner().invoke(main, ["ingest", "notes.md", "--ray", "local"])

    assert result.exit_code == 1
    assert result.stderr == "Error: rag ingest --ray needs rag[ray]: pip install 'rag[ray]'\n"


def test_the_int8_openvino_export_without_nncf_names_the_extra_before_any_work(monkeypatch, tmp_path):
    from rag.embedding.export import _quantize_openvino

    missing(monkeypatch, "nncf")

    with pytest.raises(MissingExtra) as caught:
        _quantize_openvino(tmp_path / "model", tmp_path / "model.onnx", tmp_path / "out.xml")

    assert str(caught.value) == ("exporting the openvino-int8 runtime needs rag[int8]: pip install 'rag[int8]', "
                                 "or use --embed-backend onnx-int8")
    assert list(tmp_path.iterdir()) == []
