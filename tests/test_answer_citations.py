"""Checked citations as a user sees them: under Sources in `rag ask`, and in `--json`."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from rag.answer.citations import PASSAGES_SAY
from rag.terminal.cli import main

BREAD = "How long do I bake sourdough bread?"


@pytest.fixture
def ask(built_index, monkeypatch, embedder, llm):
    monkeypatch.chdir(built_index)

    def run(reply: str, *args: str):
        llm.reply = reply
        env = {"OPENAI_BASE_URL": llm.url, "RAG_LLM_MODEL": "test-model"}
        return CliRunner().invoke(main, ["ask", BREAD, "--plain", *args], env=env)

    return run


def test_a_supported_citation_shows_its_quote_under_the_source(ask):
    result = ask("Bake the loaf at 250 degrees Celsius for forty minutes [1].")

    assert result.exit_code == 0, result.output
    sources = result.stdout.split("Sources:\n", 1)[1].splitlines()
    assert sources[0].startswith("[1] corpus/cooking.md")
    assert sources[1].startswith('    "') and "forty minutes" in sources[1]


def test_a_number_that_differs_from_the_passage_is_marked_not_verified(ask):
    result = ask("Bake the loaf at 250 degrees Celsius for 45 minutes [1].", "--json")

    answer = json.loads(result.stdout)
    assert answer["unsupported"] == 1
    citation, *quoted = answer["citations"]  # the model's, then the passages' own words quoted after it
    assert (citation["n"], citation["path"], citation["supported"]) == (1, "corpus/cooking.md", False)
    assert "45" in citation["reason"]
    assert all(c["supported"] for c in quoted)


def test_a_citation_to_a_passage_never_given_is_flagged(ask):
    result = ask("Bake the loaf at 250 degrees Celsius for 45 minutes [9].")  # no passage supports it: [9] stays

    assert "[9] [not verified] the answer cites a passage it was never given" in result.stdout
    assert "[9] corpus" not in result.stdout.split("Sources", 1)[-1]
    assert PASSAGES_SAY in result.stdout  # nothing written was supported: the passages' own words follow


def test_json_citations_carry_quote_offsets_into_the_passage(ask):
    answer = json.loads(ask("Bake the loaf at 250 degrees Celsius for forty minutes, with steam for the first twenty [1]. "
                            "Let it rest.", "--json").stdout)

    [citation] = answer["citations"]
    source = answer["sources"][0]
    assert source["text"][citation["start"]:citation["end"]] == citation["quote"]
    assert set(citation) == {"n", "path", "page", "heading", "quote", "start", "end", "supported", "sentence", "reason"}
    assert answer["uncited_sentences"] == 0  # "Let it rest." states too little to count


def test_the_extractive_answer_quotes_exact_spans_of_its_passages(built_index, monkeypatch, embedder):
    monkeypatch.chdir(built_index)

    answer = json.loads(CliRunner().invoke(main, ["ask", BREAD, "--no-llm", "--json"]).stdout)

    assert answer["mode"] == "extractive" and answer["citations"]
    for citation in answer["citations"]:
        source = answer["sources"][citation["n"] - 1]
        assert citation["supported"]
        assert source["text"][citation["start"]:citation["end"]] == citation["quote"]
