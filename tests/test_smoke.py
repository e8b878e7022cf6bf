def test_shared_index_answers(built_index, rag_cli):
    result = rag_cli("ask", "How long do I bake sourdough?", "--no-llm", cwd=built_index)
    assert result.returncode == 0, result.stderr
    assert "cooking.md" in result.stdout
