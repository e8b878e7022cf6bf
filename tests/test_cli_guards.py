"""Cheap guards on the command line: fast start, help everywhere, help that tells the truth, clean errors.

In process (CliRunner) wherever a subprocess buys nothing; a subprocess only where the question is
what a fresh interpreter imports.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys

import click
import pytest
from click.testing import CliRunner

from rag.config import ENV, Settings
from rag.errors import RagError
from rag.terminal.cli import main
from tests.helpers import make_notes
from tests.llm_server import closed_port_url

HEAVY = ("torch", "sentence_transformers", "faiss", "openai", "transformers")


def test_importing_the_cli_loads_no_heavy_library():
    code = f"import sys, rag.terminal.cli; print([m for m in {HEAVY + ('numpy',)!r} if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


@pytest.mark.parametrize("command", sorted(main.commands))
def test_every_command_has_help_text(command):
    result = CliRunner().invoke(main, [command, "--help"])

    assert result.exit_code == 0, result.output
    assert main.commands[command].help, command
    assert result.stdout.startswith(f"Usage: main {command} ")  # CliRunner names the program `main`


def option_help(command: click.Command) -> dict[str, str]:
    return {param.opts[-1]: param.help or "" for param in command.params if isinstance(param, click.Option)}


@pytest.mark.parametrize("command", sorted(main.commands))
def test_defaults_in_help_are_the_settings_defaults(command):
    """`[default: X, RAG_Y]` in any help text must show the default of the setting RAG_Y sets."""
    defaults = Settings()
    for option, text in option_help(main.commands[command]).items():
        for shown, variable in re.findall(r"\[default: ([^,\]]+), ([A-Z_]+)\]", text):
            assert variable in ENV, (command, option, variable)
            assert shown == str(getattr(defaults, ENV[variable][0])), (command, option, shown, variable)


def test_the_chunk_and_runtime_help_shows_the_values_ingest_uses():
    from ingest.chunk import ChunkSettings
    from rag.runtimes import RUNTIME_NAMES

    text = option_help(main.commands["ingest"])
    assert text["--chunk-tokens"].endswith(f"[default: {ChunkSettings().chunk_tokens}]")
    assert text["--overlap-tokens"].endswith(f"[default: {ChunkSettings().overlap_tokens}]")
    assert all(name in text["--embed-backend"] for name in RUNTIME_NAMES)


def test_every_json_flag_is_spelled_alike():
    flags = [(name, param) for name, command in main.commands.items() for param in command.params
             if "--json" in param.opts]
    assert len(flags) == 8  # ingest, watch, ask, search, status, ls, rm, eval
    for name, param in flags:
        assert (param.name, param.is_flag, param.opts) == ("as_json", True, ["--json"]), name
        assert re.fullmatch(r"Print .+ as JSON\.", param.help), (name, param.help)


def test_status_without_an_index_says_to_ingest_first():
    result = CliRunner().invoke(main, ["status"])  # in an empty folder (conftest.clean_environment)

    assert result.exit_code == 1
    assert result.stderr == "Error: no index at indexes/default: run `rag ingest PATH` first\n"


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


def test_a_bad_setting_in_the_environment_is_one_line(built_index, monkeypatch):
    monkeypatch.chdir(built_index)

    result = CliRunner().invoke(main, ["ask", "anything"], env={"RAG_TOP_K": "many"})

    assert result.exit_code == 1
    assert result.stderr == "Error: RAG_TOP_K='many' is not a whole number: fix it in the environment or .env\n"


def test_an_invalid_overlap_leaves_no_empty_index_behind(tmp_path):
    notes = make_notes(tmp_path / "notes")

    result = CliRunner().invoke(main, ["ingest", str(notes), "--overlap-tokens", "250",
                                       "--index-dir", str(tmp_path / "ix")])

    assert result.exit_code == 1
    assert "must be at least 0 and smaller than the chunk size" in result.stderr
    assert not (tmp_path / "ix" / "default").exists()


def test_eval_has_no_min_score_flag_that_would_do_nothing(built_index, tmp_path):
    questions = tmp_path / "q.jsonl"
    questions.write_text('{"question": "bread", "sources": ["cooking.md"]}\n')

    result = CliRunner().invoke(main, ["eval", str(questions), "--min-score", "0.5",
                                       "--index-dir", str(built_index / "indexes")])

    assert result.exit_code == 2 and "No such option '--min-score'" in result.stderr


def test_debug_shows_the_cause_of_an_error(built_index, monkeypatch):
    monkeypatch.chdir(built_index)
    env = {"OPENAI_BASE_URL": closed_port_url(), "RAG_MAX_RETRIES": "0"}

    result = CliRunner().invoke(main, ["--debug", "ask", "How long do I bake bread?"], env=env)

    assert isinstance(result.exception, RagError)
    assert result.exception.__cause__ is not None  # the openai error that explains it
