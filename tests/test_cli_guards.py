"""Cheap guards on the command line: fast start, help everywhere, clean errors."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from rag.terminal.cli import main

HEAVY = ("torch", "sentence_transformers", "faiss", "openai", "transformers")


def test_importing_the_cli_loads_no_heavy_library():
    code = f"import sys, rag.terminal.cli; print([m for m in {HEAVY + ('numpy',)!r} if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


@pytest.mark.parametrize("command", sorted(main.commands))
def test_every_command_has_help_text(command, rag_cli, tmp_path):
    assert main.commands[command].help, command
    result = rag_cli(command, "--help", cwd=tmp_path)
    assert result.returncode == 0
    assert "Usage: rag" in result.stdout


def test_status_without_an_index_says_to_ingest_first(rag_cli, tmp_path):
    result = rag_cli("status", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.strip() == "Error: no index at indexes/default: run `rag ingest PATH` first"


def test_status_loads_no_heavy_library(built_index):
    code = (
        "import sys\nfrom click.testing import CliRunner\nfrom rag.terminal.cli import main\n"
        "r = CliRunner().invoke(main, ['status', '--json'])\n"
        f"print(r.output.strip()); print([m for m in {HEAVY!r} if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=built_index).stdout.splitlines()
    assert json.loads(out[0])["documents"] == 5
    assert out[1] == "[]"


def test_a_bad_setting_in_the_environment_is_one_line(rag_cli, built_index):
    result = rag_cli("ask", "anything", cwd=built_index, env={"RAG_TOP_K": "many"})
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "Error: RAG_TOP_K='many' is not a whole number: fix it in the environment or .env"
    )
