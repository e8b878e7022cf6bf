"""Settings: flags > environment > .env > defaults, validated once, and the key never shown."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from rag.config import DEFAULT_MIN_SCORE, DEFAULT_TOP_K, ENV, Settings, load_settings, model_cache_dir
from rag.errors import ConfigError


def write_dotenv(folder: Path, text: str) -> Path:
    path = folder / ".env"
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_apply_when_nothing_is_set(tmp_path):
    settings = load_settings({}, environ={}, dotenv_path=tmp_path / "missing.env")

    assert settings.top_k == DEFAULT_TOP_K
    assert settings.min_score == DEFAULT_MIN_SCORE
    assert settings.index_path == Path("indexes") / "default"
    assert settings.api_key is None and not settings.llm_configured


def test_dotenv_overrides_defaults(tmp_path):
    dotenv = write_dotenv(tmp_path, "RAG_TOP_K=7\nRAG_LLM_MODEL=llama3\n")

    settings = load_settings({}, environ={}, dotenv_path=dotenv)

    assert (settings.top_k, settings.llm_model) == (7, "llama3")


def test_environment_overrides_dotenv(tmp_path):
    dotenv = write_dotenv(tmp_path, "RAG_TOP_K=7\nRAG_LLM_MODEL=llama3\n")

    settings = load_settings({}, environ={"RAG_TOP_K": "3"}, dotenv_path=dotenv)

    assert settings.top_k == 3
    assert settings.llm_model == "llama3"  # what the environment does not set still comes from .env


def test_flags_override_environment_and_dotenv(tmp_path):
    dotenv = write_dotenv(tmp_path, "RAG_TOP_K=7\nRAG_INDEX_DIR=from-dotenv\n")

    settings = load_settings({"top_k": 2, "index_dir": "from-flag"}, environ={"RAG_TOP_K": "3"}, dotenv_path=dotenv)

    assert settings.top_k == 2
    assert settings.index_dir == Path("from-flag")


def test_a_flag_left_unset_does_not_hide_the_environment(tmp_path):
    settings = load_settings({"top_k": None}, environ={"RAG_TOP_K": "3"}, dotenv_path=tmp_path / "none")

    assert settings.top_k == 3


def test_dotenv_is_read_into_settings_not_into_the_process_environment(tmp_path):
    dotenv = write_dotenv(tmp_path, "OPENAI_BASE_URL=http://localhost:11434/v1\n")

    settings = load_settings({}, environ={}, dotenv_path=dotenv)

    assert settings.base_url == "http://localhost:11434/v1"
    assert "OPENAI_BASE_URL" not in os.environ


def test_a_dotenv_in_the_working_folder_is_read_by_default(tmp_path):
    write_dotenv(tmp_path, "RAG_TOP_K=9\n")  # clean_environment made tmp_path the working folder

    assert load_settings({}, environ={}).top_k == 9


def test_an_endpoint_without_a_key_counts_as_a_configured_llm(tmp_path):
    settings = load_settings({}, environ={"OPENAI_BASE_URL": "http://127.0.0.1:8080/v1"}, dotenv_path=tmp_path / "x")

    assert settings.llm_configured


@pytest.mark.parametrize("raw", ["five", "2.5", "1e3"])
def test_a_top_k_that_is_not_a_whole_number_is_one_clear_error(tmp_path, raw):
    with pytest.raises(ConfigError) as error:
        load_settings({}, environ={"RAG_TOP_K": raw}, dotenv_path=tmp_path / "x")

    assert str(error.value) == f"RAG_TOP_K={raw!r} is not a whole number: fix it in the environment or .env"


def test_a_top_k_below_one_names_the_setting_to_fix(tmp_path):
    with pytest.raises(ConfigError) as error:
        load_settings({}, environ={"RAG_TOP_K": "0"}, dotenv_path=tmp_path / "x")

    assert "RAG_TOP_K" in str(error.value)
    assert "between 1 and 100" in str(error.value)


def test_a_top_k_above_the_cap_is_refused(tmp_path):
    # unbounded, -k 10000 fetched 100k keyword hits and bound them all into one SQL statement
    with pytest.raises(ConfigError, match=r"between 1 and 100 \(got 101\)"):
        load_settings({"top_k": 101}, environ={}, dotenv_path=tmp_path / "x")


def test_temperature_and_max_tokens_are_unset_unless_given(tmp_path):
    settings = load_settings({}, environ={}, dotenv_path=tmp_path / "x")
    assert (settings.temperature, settings.max_tokens) == (None, None)
    settings = load_settings({}, environ={"RAG_TEMPERATURE": "0.3", "RAG_MAX_TOKENS": "512"},
                             dotenv_path=tmp_path / "x")
    assert (settings.temperature, settings.max_tokens) == (0.3, 512)


def test_a_bad_top_k_in_dotenv_is_reported_like_one_in_the_environment(tmp_path):
    dotenv = write_dotenv(tmp_path, "RAG_TOP_K=lots\n")

    with pytest.raises(ConfigError, match="RAG_TOP_K='lots' is not a whole number"):
        load_settings({}, environ={}, dotenv_path=dotenv)


def test_a_min_score_outside_cosine_range_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="RAG_MIN_SCORE"):
        load_settings({}, environ={"RAG_MIN_SCORE": "3"}, dotenv_path=tmp_path / "x")


def test_a_timeout_that_is_not_positive_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="RAG_TIMEOUT must be positive"):
        load_settings({}, environ={"RAG_TIMEOUT": "0"}, dotenv_path=tmp_path / "x")


def test_settings_repr_never_shows_the_api_key(tmp_path):
    settings = load_settings({}, environ={"OPENAI_API_KEY": "sk-very-secret-0123456789"}, dotenv_path=tmp_path / "x")

    shown = repr(settings) + str(settings) + f"{settings}"

    assert "sk-very-secret-0123456789" not in shown
    assert "sk-very" not in shown
    assert "api_key=set" in repr(settings)


def test_exported_models_are_cached_in_rag_cache_dir_else_under_xdg_cache_home_else_home(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))

    assert model_cache_dir({"RAG_CACHE_DIR": "~/models", "XDG_CACHE_HOME": "/x"}) == tmp_path / "home" / "models"
    assert model_cache_dir({"XDG_CACHE_HOME": str(tmp_path / "xdg")}) == tmp_path / "xdg" / "rag" / "models"
    assert model_cache_dir({"RAG_CACHE_DIR": "", "XDG_CACHE_HOME": ""}) == tmp_path / "home" / ".cache" / "rag" / "models"


def test_every_environment_variable_sets_its_setting(tmp_path):
    samples = {"_int": "7", "_float": "0.5", "_path": str(tmp_path / "somewhere"), "_text": "a-value", "_bool": "true"}
    folder = tmp_path / "reranker"
    folder.mkdir()
    special = {"RAG_EMBED_BACKEND": "onnx-int8", "RAG_QUERY_BACKEND": "onnx-fp32", "RAG_INDEX": "notes",
               "RAG_RERANK_MODEL": str(folder)}
    for variable, (field, parse) in ENV.items():
        raw = special.get(variable, samples[parse.__name__])

        settings = load_settings({}, environ={variable: raw}, dotenv_path=tmp_path / "x")

        assert getattr(settings, field) == parse(variable, raw) != getattr(Settings(), field), variable


@pytest.mark.parametrize("value", ("onnx-int8", "openvino-bf16", "gpu"))
def test_questions_embed_in_fp32_only(value, tmp_path):
    with pytest.raises(ConfigError) as caught:
        load_settings({}, environ={"RAG_QUERY_BACKEND": value}, dotenv_path=tmp_path / "x")
    assert str(caught.value) == (f"unknown question runtime {value!r} (RAG_QUERY_BACKEND): use auto, torch, onnx-fp32, "
                                 "openvino-fp32, numpy-fp32")


def test_chat_and_the_servers_ask_through_onnx_unless_told_otherwise():
    from rag.config import for_many_questions

    assert for_many_questions(Settings()).query_backend == "onnx-fp32"
    assert for_many_questions(Settings(query_backend=" Auto")).query_backend == "onnx-fp32"  # as the rest reads it
    assert for_many_questions(Settings(query_backend="numpy-fp32")).query_backend == "numpy-fp32"
