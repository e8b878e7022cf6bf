"""`rag mcp` through the SDK's own client: a real `rag mcp` subprocess over stdio, the bundled model."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.helpers import NEW_DOC, RAG, clean_env, copy_index, mcp_client

@pytest.fixture(scope="module")
def index_root(built_index, tmp_path_factory) -> Path:
    """A copy of the shared index that this module may write to (the ingest test adds a document)."""
    root = tmp_path_factory.mktemp("mcp")
    copy_index(built_index / "indexes", root / "indexes")
    return root


@pytest.fixture(scope="module")
def mcp(index_root, tmp_path_factory):
    with mcp_client(["--index-dir", str(index_root / "indexes")], index_root, tmp_path_factory.mktemp("mcp-log")) \
            as client:
        yield client


def test_the_server_lists_its_four_tools_with_described_arguments(mcp):
    tools = mcp.tools()
    assert set(tools) == {"search", "ask", "list_documents", "index_status"}
    search = tools["search"].input_schema
    assert search["required"] == ["query"]
    assert search["properties"]["k"]["minimum"] == 1 and search["properties"]["k"]["default"] == 5
    assert set(search["properties"]["mode"]["enum"]) == {"hybrid", "dense", "keyword"}
    assert all(tool.description for tool in tools.values())


def test_search_returns_ranked_passages_with_relative_paths(mcp):
    data = mcp.data("search", {"query": "What code means the upload quota is exhausted?", "k": 3})
    passages = data["passages"]
    assert len(passages) == 3
    assert passages[0]["path"] == "corpus/errors.rst"
    assert "ZX-4411" in passages[0]["text"]
    assert [p["rank"] for p in passages] == [1, 2, 3]
    assert passages[0]["score"] >= passages[1]["score"] >= passages[2]["score"]
    assert not any(p["path"].startswith("/") for p in passages)


def test_an_off_topic_search_says_why_nothing_is_relevant(mcp):
    data = mcp.data("search", {"query": "What is the capital of Mongolia's cricket team coach?"})
    assert data["below_cutoff"] and data["passages"] == []
    assert data["cutoff_reason"] == 'no passage mentions "Mongolia"'
    covered = mcp.data("search", {"query": "What code means the upload quota is exhausted?"})
    assert not covered["below_cutoff"] and covered["cutoff_reason"] == ""


def test_search_carries_the_pdf_page(mcp):
    passages = mcp.data("search", {"query": "grinding noise from the fan", "k": 1, "mode": "keyword"})["passages"]
    assert passages[0]["path"] == "corpus/manual.pdf"
    assert passages[0]["page"] == 2


def test_ask_without_an_llm_says_the_answer_is_extractive(mcp):
    data = mcp.data("ask", {"question": "How many moons does Mars have?"})
    assert data["mode"] == "extractive"
    assert "no LLM is configured" in data["note"]
    assert "Phobos" in data["answer"]
    cited = [c for c in data["citations"] if c["cited"]]
    assert cited and cited[0]["path"] == "corpus/astronomy.txt"
    assert "file" not in cited[0]  # the absolute path stays on this machine


def test_list_documents_names_every_file_relative_to_the_corpus(mcp):
    paths = {d["path"] for d in mcp.data("list_documents")["documents"]}
    assert {"corpus/cooking.md", "corpus/astronomy.txt", "corpus/errors.rst", "corpus/garden.html",
            "corpus/manual.pdf"} <= paths


def test_index_status_reports_the_model_and_counts(mcp):
    status = mcp.data("index_status")
    assert status["model"].endswith("all-MiniLM-L6-v2")
    assert status["documents"] >= 5 and status["chunks"] >= status["documents"]


@pytest.mark.parametrize("arguments, expected", [
    ({"query": "bread", "k": 0}, "k"),
    ({"query": "bread", "mode": "fuzzy"}, "mode"),
    ({"k": 3}, "query"),
    ({"query": "   "}, "the query is empty"),
])
def test_a_bad_call_is_an_error_result_and_the_server_keeps_answering(mcp, arguments, expected):
    result = mcp.call("search", arguments)
    assert result.is_error
    assert expected in result.content[0].text
    assert "Traceback" not in result.content[0].text
    assert mcp.data("search", {"query": "sourdough", "k": 1})["passages"]


def test_an_unknown_tool_is_an_error_not_a_crash(mcp):
    from mcp import MCPError

    try:
        result = mcp.call("delete_everything", {})
    except MCPError as exc:  # the SDK may answer with a protocol error instead of a result
        assert "delete_everything" in str(exc)
    else:
        assert result.is_error and "delete_everything" in result.content[0].text
    assert mcp.data("index_status")["documents"] >= 5


def test_searches_keep_answering_during_an_ingest_and_then_find_the_new_document(mcp, index_root):
    # last in this module: it adds a document to the module's index
    folder = index_root / "harbour"
    folder.mkdir()
    (folder / "logbook.txt").write_text(NEW_DOC, encoding="utf-8")
    ingest = subprocess.Popen([str(RAG), "ingest", str(folder), "--index-dir", str(index_root / "indexes")],
                              cwd=index_root, env=clean_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                              text=True)
    during = 0
    try:
        while ingest.poll() is None:
            assert mcp.data("search", {"query": "sourdough starter", "k": 2})["passages"]
            during += 1
    finally:
        _, stderr = ingest.communicate(timeout=300)
    assert ingest.returncode == 0, stderr
    assert during >= 1
    passages = mcp.data("search", {"query": "Who writes the tide times in the logbook?", "k": 1})["passages"]
    assert passages[0]["path"] == "harbour/logbook.txt"


def test_nothing_but_protocol_reaches_stdout_and_ask_uses_the_configured_llm(built_index, tmp_path, llm):
    """Raw JSON-RPC over the pipes: every stdout line is a protocol message, even while the model loads."""
    llm.reply = "Mars has two moons, Phobos and Deimos [1]."
    messages = [
        {"jsonrpc": "2.0", "id": 1, "method": "initialize",
         "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "test", "version": "1"}}},
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {"jsonrpc": "2.0", "id": 2, "method": "tools/call",
         "params": {"name": "ask", "arguments": {"question": "How many moons does Mars have?"}}},
    ]
    proc = subprocess.Popen([str(RAG), "mcp", "--index-dir", str(built_index / "indexes")], cwd=tmp_path,
                            env=clean_env(OPENAI_BASE_URL=llm.url, RAG_LLM_MODEL="test-model"),
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        for message in messages:
            proc.stdin.write(json.dumps(message) + "\n")
        proc.stdin.flush()
        lines = []
        while True:
            line = proc.stdout.readline()
            assert line, proc.stderr.read()
            lines.append(json.loads(line))  # anything but JSON here would break every MCP client
            if lines[-1].get("id") == 2:
                break
        proc.stdin.close()
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    result = lines[-1]["result"]
    data = json.loads(result["content"][0]["text"])
    assert data["mode"] == "llm" and data["model"] == "test-model"
    assert data["answer"] == llm.reply
    assert "Phobos" in llm.requests[-1]["messages"][-1]["content"]  # the passages reached the LLM
    assert proc.stdout.read() == ""


def test_rag_mcp_without_an_index_fails_with_one_line(tmp_path, rag_cli):
    result = rag_cli("mcp", "--index-dir", str(tmp_path / "nowhere"), cwd=tmp_path, input="")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [f"Error: no index at {tmp_path / 'nowhere' / 'default'}: "
                                                  f"run `rag ingest PATH` first"]
    assert result.stdout == ""


def test_ask_with_strict_leaves_out_what_no_passage_supports_and_counts_it(built_index, tmp_path, llm):
    llm.reply = "Mars has two moons, Phobos and Deimos [1]. Both moons are made of green cheese."
    with mcp_client(["--index-dir", str(built_index / "indexes")], tmp_path, tmp_path,
                    env={"OPENAI_BASE_URL": llm.url, "RAG_LLM_MODEL": "test-model"}) as client:
        marked = client.data("ask", {"question": "How many moons does Mars have?"})
        strict = client.data("ask", {"question": "How many moons does Mars have?", "strict": True})
    assert marked["answer"].endswith("green cheese. [unsupported]") and marked["unsupported_sentences"] == 1
    assert strict["answer"] == "Mars has two moons, Phobos and Deimos [1]." and strict["dropped_sentences"] == 1
