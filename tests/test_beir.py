"""BEIR evaluation: the metrics on hand-computed examples, and `rag eval --beir` end to end."""

from __future__ import annotations

import json
import math

import pytest
from click.testing import CliRunner

from rag.evaluation.beir import documents_of, ndcg, recall, reciprocal_rank
from rag.terminal.cli import main
from rag.types import Hit


def test_ndcg_with_graded_relevance_matches_the_hand_computed_value():
    ranked = ["d3", "d1", "d9", "d2"]
    relevant = {"d1": 2, "d2": 1, "d4": 1}
    # DCG = 2/log2(3) + 1/log2(5); ideal order 2, 1, 1 -> 2/log2(2) + 1/log2(3) + 1/log2(4)
    expected = (2 / math.log2(3) + 1 / math.log2(5)) / (2 + 1 / math.log2(3) + 0.5)
    assert ndcg(ranked, relevant) == pytest.approx(expected)
    assert ndcg(["d1", "d2", "d4"], relevant) == pytest.approx(1.0)


def test_a_query_with_nothing_relevant_retrieved_scores_zero():
    assert ndcg([], {"d1": 1}) == 0.0
    assert recall([], {"d1": 1}) == 0.0
    assert reciprocal_rank(["d7", "d8"], {"d1": 1}) == 0.0


def test_recall_and_mrr_respect_their_cut_offs():
    ranked = [f"x{i}" for i in range(12)] + ["d1"]
    assert reciprocal_rank(ranked, {"d1": 1}) == 0.0  # rank 13, beyond MRR@10
    assert reciprocal_rank(["x", "d1"], {"d1": 1}) == 0.5
    assert recall(ranked, {"d1": 1, "d2": 1}) == 0.5
    assert recall(ranked, {"d1": 1}, k=10) == 0.0


def test_chunks_fold_into_documents_at_their_best_rank():
    def hit(path):
        return Hit(chunk_id=0, path=path, page=None, heading=(), text="", title="", score=0, similarity=0)

    assert documents_of([hit("/c/7.md"), hit("/c/3.md"), hit("/c/7.md"), hit("/c/1.md")]) == ["7", "3", "1"]


def test_rag_eval_beir_scores_an_ingested_corpus(tmp_path):
    beir = tmp_path / "toy"
    (beir / "qrels").mkdir(parents=True)
    docs = {
        "101": ("Sourdough", "Sourdough bread rises with a starter of wild yeast fed with flour and water."),
        "102": ("Moons of Mars", "Mars has two small moons called Phobos and Deimos."),
        "103": ("Roses", "Prune roses in late winter just above an outward-facing bud."),
    }
    (beir / "corpus.jsonl").write_text("".join(
        json.dumps({"_id": i, "title": t, "text": x}) + "\n" for i, (t, x) in docs.items()))
    (beir / "queries.jsonl").write_text(
        json.dumps({"_id": "q1", "text": "What are the names of the moons of Mars?"}) + "\n"
        + json.dumps({"_id": "q2", "text": "When should I prune roses?"}) + "\n")
    (beir / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\r\nq1\t102\t1\r\nq2\t103\t1\r\n")
    folder = tmp_path / "files"
    folder.mkdir()
    for doc_id, (title, text) in docs.items():
        (folder / f"{doc_id}.md").write_text(f"# {title}\n\n{text}\n")
    runner = CliRunner()
    assert runner.invoke(main, ["ingest", str(folder), "--index-dir", str(tmp_path / "ix")]).exit_code == 0

    result = runner.invoke(main, ["eval", "--beir", str(beir), "--json", "--index-dir", str(tmp_path / "ix")])

    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert (report["queries"], report["ndcg_at_10"], report["recall_at_100"], report["mrr_at_10"]) == (2, 1.0, 1.0, 1.0)
    assert report["results"][0]["ranked"][0] == "102"


def test_eval_needs_questions_or_a_beir_folder(tmp_path):
    result = CliRunner().invoke(main, ["eval", "--index-dir", str(tmp_path)])
    assert result.exit_code == 2 and "give either QUESTIONS.jsonl or --beir DIR" in result.stderr
