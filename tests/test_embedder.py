"""The embedding runtimes: exported models agree with torch, the cache heals, queries need no torch.

The exports land in the test session's model cache (tests/conftest.py), one per runtime per session;
the tests that need the int8 exports (NNCF calibration, the slowest) are marked slow."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from rag.config import load_settings, model_cache_dir
from rag.embedding.embedder import get_embedder
from rag.errors import ConfigError
from rag.runtimes import auto_runtime, cpu_supports_bf16, parse_runtime
from tests.helpers import CORPUS, ROOT, make_corpus

MODEL = "all-MiniLM-L6-v2"
EXPORTED = ("onnx-fp32", "onnx-int8", "openvino-fp32", "openvino-int8")


def passages() -> list[str]:
    """Real paragraphs: the demo corpus (sample-docs/) and the test corpus, markup and all."""
    texts = []
    for path in sorted((ROOT / "sample-docs").iterdir()):
        if path.suffix in (".md", ".rst", ".txt"):
            texts += path.read_text(encoding="utf-8").split("\n\n")
    for text in CORPUS.values():
        texts += text.split("\n\n")
    return [t.strip() for t in texts if len(t.strip()) > 40]


@pytest.fixture(scope="session")
def torch_vectors():
    return get_embedder(MODEL, "torch").embed_documents(passages())


@pytest.mark.slow
@pytest.mark.parametrize("runtime", EXPORTED)
def test_exported_runtime_vectors_agree_with_torch(runtime, torch_vectors):
    embedder = get_embedder(MODEL, runtime)
    vectors = embedder.embed_documents(passages())
    assert vectors.dtype == np.float32 and vectors.shape == torch_vectors.shape
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    cosines = (vectors * torch_vectors).sum(axis=1)
    if runtime.endswith("fp32"):
        assert cosines.min() > 0.9999, (runtime, float(cosines.min()))
    else:
        assert cosines.mean() > 0.99 and cosines.min() > 0.95, (runtime, float(cosines.mean()), float(cosines.min()))


def bf16_or_skip() -> None:
    if not cpu_supports_bf16():
        pytest.skip("this CPU runs no bf16 (OpenVINO's OPTIMIZATION_CAPABILITIES)")


def test_bf16_document_vectors_agree_with_the_onnx_fp32_questions():
    bf16_or_skip()
    # Questions on a bf16 index go through onnx-fp32 (rag.runtimes.query_runtime): what matters is
    # how far bf16 document vectors are from what fp32 makes of the same text.
    texts = passages()
    bf16 = get_embedder(MODEL, "openvino-bf16").embed_documents(texts)
    fp32 = get_embedder(MODEL, "onnx-fp32").embed_documents(texts)
    assert bf16.dtype == np.float32 and np.allclose(np.linalg.norm(bf16, axis=1), 1.0, atol=1e-5)
    cosines = (bf16 * fp32).sum(axis=1)
    assert cosines.min() > 0.999 and np.median(cosines) > 0.9999, (float(cosines.min()), float(np.median(cosines)))
    assert cosines.min() < 0.999999  # bf16 really ran: identical vectors would mean f32 in disguise


def test_bf16_compiles_the_fp32_export_and_caches_no_model_of_its_own():
    from rag.embedding.export import COMPILED

    bf16_or_skip()
    get_embedder(MODEL, "openvino-bf16").load()
    exports = {p.name for p in model_cache_dir().glob("*/openvino-*")} - {COMPILED}  # compiled blobs: below
    assert exports <= {"openvino-fp32", "openvino-int8"}
    assert any(model_cache_dir().glob("*/openvino-fp32"))


def test_an_fp32_index_stays_fp32_under_auto_and_refuses_a_bf16_ingest(tmp_path):
    from rag import Index, Settings
    from rag.errors import IndexMismatch

    folder = make_corpus(tmp_path / "corpus")
    with Index.open(Settings(index_dir=tmp_path / "indexes", embed_backend="openvino-fp32"), create=True) as idx:
        idx.ingest([folder / "cooking.md"])
    with Index.open(Settings(index_dir=tmp_path / "indexes")) as idx:  # auto, on a machine where auto is int8 or bf16
        idx.ingest([folder])
        assert idx.status().runtime == "openvino-fp32"
    with pytest.raises(IndexMismatch) as caught:
        with Index.open(Settings(index_dir=tmp_path / "indexes", embed_backend="openvino-bf16")) as idx:
            idx.ingest([folder], rebuild=True)
    assert "was embedded with the openvino-fp32 runtime, not openvino-bf16: use --embed-backend openvino-fp32 " \
           "(or auto), or another --index" in str(caught.value)


@pytest.mark.slow
@pytest.mark.parametrize("runtime", ("onnx-int8", "openvino-fp32"))
def test_token_offsets_agree_with_the_torch_tokenizer(runtime):
    texts = passages() + ["Crème brûlée, naïve café — 東京 🙂 tab\there", "x" * 3000]
    torch_embedder, exported = get_embedder(MODEL, "torch"), get_embedder(MODEL, runtime)
    assert exported.token_offsets(texts) == torch_embedder.token_offsets(texts)
    assert exported.count_tokens(texts) == torch_embedder.count_tokens(texts)
    assert (exported.max_tokens, exported.dim) == (torch_embedder.max_tokens, torch_embedder.dim) == (254, 384)


def test_a_query_is_one_normalised_row_of_the_document_vectors():
    embedder = get_embedder(MODEL, "onnx-fp32")
    texts = passages()[:5]
    assert np.allclose(embedder.embed_query(texts[3]), embedder.embed_documents(texts)[3], atol=1e-5)


def test_duplicate_texts_are_embedded_once_and_rows_keep_input_order():
    # fp32: dynamic int8 scales activations per batch, so its rows depend slightly on their batch-mates
    embedder = get_embedder(MODEL, "onnx-fp32").load()
    seen: list[list[str]] = []
    engine = embedder._engine
    real_encode = engine.encode
    engine.encode = lambda texts, batch_size: seen.append(texts) or real_encode(texts, batch_size)
    try:
        vectors = embedder.embed_documents(["short", "a much longer text about bread", "short", "short"])
    finally:
        engine.encode = real_encode
    assert seen == [["short", "a much longer text about bread"]]
    assert np.array_equal(vectors[0], vectors[2]) and np.array_equal(vectors[0], vectors[3])
    assert np.allclose(vectors[1], embedder.embed_query("a much longer text about bread"), atol=1e-5)


@pytest.mark.slow
def test_a_corrupt_cached_model_is_rebuilt_the_same(tmp_path):
    get_embedder(MODEL, "onnx-int8").load()  # the export exists in the session's cache
    cache = tmp_path / "cache"
    source = next(p for p in model_cache_dir().iterdir() if (p / "onnx-int8").is_dir())
    for runtime in ("onnx-fp32", "onnx-int8"):
        shutil.copytree(source / runtime, cache / source.name / runtime)
    model = cache / source.name / "onnx-int8" / "model.onnx"
    marker = json.loads((model.parent / "rag-export.json").read_text())
    data = bytearray(model.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size, one byte wrong: only the hash can tell
    model.write_bytes(bytes(data))

    from rag.embedding.embedder import Embedder

    rebuilt = Embedder(MODEL, "onnx-int8", cache_dir=cache)
    vector = rebuilt.embed_query("How long does sourdough bake?")
    assert np.allclose(vector, get_embedder(MODEL, "onnx-int8").embed_query("How long does sourdough bake?"), atol=1e-6)
    # Deterministic: the rebuilt file is byte for byte the one exported before.
    assert json.loads((model.parent / "rag-export.json").read_text())["files"] == marker["files"]
    assert not [p.name for p in model.parent.parent.iterdir() if p.name.startswith((".tmp-", ".stale-"))]


@pytest.mark.slow  # an ONNX export in a fresh process: transformers' progress bars are per process
def test_a_first_use_export_prints_no_progress_bar(tmp_path):
    code = ("from pathlib import Path; from rag.embedding.embedder import Embedder; "
            f"Embedder({MODEL!r}, 'onnx-fp32', cache_dir=Path({str(tmp_path)!r})).embed_query('How long does sourdough bake?')")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=ROOT)

    assert done.returncode == 0, done.stderr
    assert "exporting the embedding model to onnx-fp32" in done.stderr  # the one line a user is told
    assert "Loading weights" not in done.stderr and "it/s" not in done.stderr


@pytest.mark.slow
@pytest.mark.parametrize("runtime", ("onnx-int8", "openvino-int8"))
def test_embedding_a_query_loads_no_torch_and_leaves_nothing_in_home(runtime, tmp_path):
    get_embedder(MODEL, runtime).load()  # the export exists
    home = tmp_path / "home"
    home.mkdir()
    code = (
        "import json, sys\n"
        "from rag.embedding.embedder import Embedder\n"
        f"vector = Embedder({MODEL!r}, {runtime!r}, threads=1).embed_query('How do I bake bread?')\n"
        "heavy = [m for m in ('torch', 'sentence_transformers', 'transformers', 'optimum', 'nncf') if m in sys.modules]\n"
        "print(json.dumps({'dim': len(vector), 'heavy': heavy,\n"
        "                  'telemetry': sys.modules.get('openvino_telemetry') is not None}))\n"
    )
    # ONNX Runtime wrote a device id and a telemetry database under ~/.cache/Microsoft on import
    env = {**os.environ, "HOME": str(home), "XDG_CACHE_HOME": str(home / ".cache"), "RAG_CACHE_DIR": str(model_cache_dir())}
    env.pop("ORT_DISABLE_TELEMETRY", None)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=120,
                          env=env)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"dim": 384, "heavy": [], "telemetry": False}
    assert [str(p.relative_to(home)) for p in home.rglob("*")] == []


def test_backend_names_resolve_to_one_runtime():
    assert parse_runtime("auto") == parse_runtime(auto_runtime())
    assert parse_runtime("OpenVINO-bf16").name == "openvino-bf16"
    assert parse_runtime("torch-fp32").name == parse_runtime("torch").name == "torch"
    assert parse_runtime("onnx").name == "onnx-fp32"
    assert parse_runtime("OpenVINO-int8").name == "openvino-int8"
    assert parse_runtime("numpy").name == "numpy-fp32"
    assert get_embedder(MODEL, "onnx") is get_embedder("sentence-transformers/all-MiniLM-L6-v2", "onnx-fp32")


def no_int8() -> bool:
    return False


def test_auto_ingests_in_int8_where_the_cpu_runs_it_fast_and_nncf_can_export_it():
    assert auto_runtime(supports_bf16=lambda: True, cuda=lambda: False, supports_int8=lambda: True,
                        int8_export=lambda: True) == "openvino-int8"


@pytest.mark.parametrize("fast_int8, nncf", ((True, False), (False, True)))
def test_auto_ingests_in_bf16_where_int8_is_slow_or_cannot_be_exported(fast_int8, nncf):
    assert auto_runtime(supports_bf16=lambda: True, cuda=lambda: False, supports_int8=lambda: fast_int8,
                        int8_export=lambda: nncf) == "openvino-bf16"


def test_auto_ingests_in_fp32_where_the_cpu_has_no_bf16():
    assert auto_runtime(supports_bf16=lambda: False, cuda=lambda: False, supports_int8=no_int8) == "openvino-fp32"


def test_a_cpu_without_vnni_or_amx_is_not_fast_at_int8_whatever_openvino_lists(monkeypatch):
    import rag.runtimes

    # OpenVINO lists INT8 on any x86 CPU (AVX2 emulates it); only VNNI or AMX make it faster than bf16
    monkeypatch.setattr(rag.runtimes, "_cpu_flags", lambda: ["sse4_2", "avx2", "avx512f", "avx512_bf16"])
    assert rag.runtimes.cpu_supports_int8.__wrapped__() is False
    monkeypatch.setattr(rag.runtimes, "_cpu_flags", lambda: ["avx2", "avx_vnni"])
    assert rag.runtimes.cpu_supports_int8.__wrapped__() is True  # and OpenVINO here lists INT8


def test_without_nncf_the_int8_export_cannot_be_made(monkeypatch):
    from rag.runtimes import nncf_installed

    assert nncf_installed()  # rag[int8] is installed for the tests (make install)
    monkeypatch.setitem(sys.modules, "nncf", None)
    assert not nncf_installed()


# -- a GPU: none on these machines, so the device query is faked -------------------------------------

def test_auto_ingests_on_the_gpu_where_torch_can_use_one():
    from rag.runtimes import torch_device

    assert auto_runtime(supports_bf16=lambda: True, cuda=lambda: True, supports_int8=lambda: True,
                        int8_export=lambda: True) == "torch"
    assert torch_device(cuda=lambda: True) == "cuda"
    assert torch_device(cuda=lambda: False) == "cpu"


def test_without_the_nvidia_driver_files_torch_is_never_imported_to_ask(tmp_path):
    code = ("import sys\nfrom rag.runtimes import cuda_usable\n"
            f"print(cuda_usable(({str(tmp_path / 'nvidiactl')!r},)), 'torch' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["False", "False"]


@pytest.mark.parametrize("torch_says", (True, False))
def test_with_the_driver_files_torch_decides(torch_says, tmp_path, monkeypatch):
    import types

    from rag.runtimes import cuda_usable

    device = tmp_path / "nvidiactl"
    device.write_text("")
    fake = types.SimpleNamespace(cuda=types.SimpleNamespace(is_available=lambda: torch_says))
    monkeypatch.setitem(sys.modules, "torch", fake)
    assert cuda_usable((str(device),)) is torch_says


@pytest.mark.parametrize("value", ("cuda", "torch-int8", "onnx-fp16", "onnx-bf16", "torch-bf16", "numpy-int8"))
def test_an_unknown_backend_is_a_clear_error(value):
    with pytest.raises(ConfigError) as caught:
        load_settings(environ={"RAG_EMBED_BACKEND": value}, dotenv_path=Path("/nonexistent/.env"))
    assert str(caught.value) == (
        f"unknown embedding backend {value!r}: use auto, torch, onnx-fp32, onnx-int8, openvino-fp32, openvino-bf16, "
        "openvino-int8, numpy-fp32 (RAG_EMBED_BACKEND / --embed-backend)"
    )


def test_an_unwritable_model_cache_is_one_clear_error(tmp_path):
    from rag.embedding.embedder import Embedder
    from rag.embedding.export import ExportError

    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the cache folder should be")
    with pytest.raises(ExportError) as caught:
        Embedder(MODEL, "onnx-int8", cache_dir=blocker / "models").load()
    assert str(caught.value).startswith(f"cannot write the model cache at {blocker / 'models'} (")
    assert str(caught.value).endswith("set RAG_CACHE_DIR to a writable folder, or use --embed-backend torch")


def test_questions_on_fp32_bf16_and_openvino_int8_indexes_go_through_numpy_and_onnx_int8_through_its_own():
    from rag.runtimes import parse_runtime, query_runtime

    for built_with in ("torch", "onnx-fp32", "openvino-fp32", "openvino-bf16", "openvino-int8", "numpy-fp32"):
        assert query_runtime(parse_runtime(built_with)).name == "numpy-fp32"
        assert query_runtime(parse_runtime(built_with), "onnx-fp32").name == "onnx-fp32"  # chat, serve, mcp
    assert query_runtime(parse_runtime("onnx-int8")).name == "onnx-int8"
    assert query_runtime(parse_runtime("onnx-int8"), "onnx-fp32").name == "onnx-int8"


def test_a_bf16_index_stays_bf16_where_auto_now_means_int8(tmp_path, monkeypatch):
    import rag.runtimes
    from rag import Index, Settings

    bf16_or_skip()
    folder = make_corpus(tmp_path / "corpus")
    with Index.open(Settings(index_dir=tmp_path / "indexes", embed_backend="openvino-bf16"), create=True) as idx:
        idx.ingest([folder / "cooking.md"])
    monkeypatch.setattr(rag.runtimes, "auto_runtime", lambda: "openvino-int8")
    with Index.open(Settings(index_dir=tmp_path / "indexes")) as idx:
        idx.ingest([folder])
        assert idx.status().runtime == "openvino-bf16"
        assert idx._query_embedder().runtime == "numpy-fp32"


def asked_through_numpy_and_through(runtime: str, tmp_path: Path) -> list:
    """An index of the test corpus built on `runtime`, asked three questions the default way (which
    must be numpy-fp32) and through `runtime` itself: (default, own) dense results per question."""
    from rag import Index, Settings
    from rag.retrieval.search import Retriever

    folder = make_corpus(tmp_path / "corpus")
    settings = Settings(index_dir=tmp_path / "indexes", embed_backend=runtime)
    questions = ["How long do I bake sourdough?", "what's the biggest world orbiting the sun", "grinding fan"]
    with Index.open(settings, create=True) as idx:
        idx.ingest([folder])
        assert idx.status().runtime == runtime
        assert idx._query_embedder().runtime == "numpy-fp32"
        own = Retriever.open(settings, idx._db, get_embedder(MODEL, runtime))
        return [(idx.search(q, top_k=5, mode="dense"), own.search(q, 5, "dense")) for q in questions]


@pytest.mark.slow  # the openvino-int8 export (NNCF calibration)
def test_an_openvino_int8_index_is_asked_in_fp32_and_finds_what_int8_questions_find(tmp_path):
    for fp32, int8 in asked_through_numpy_and_through("openvino-int8", tmp_path):
        assert fp32.hits[0].chunk_id == int8.hits[0].chunk_id
        assert fp32.hits[0].similarity == pytest.approx(int8.hits[0].similarity, abs=0.02)


def test_an_openvino_index_asked_through_numpy_finds_what_openvino_finds(tmp_path):
    for result, reference in asked_through_numpy_and_through("openvino-fp32", tmp_path):
        assert [h.chunk_id for h in result.hits] == [h.chunk_id for h in reference.hits]
        for a, b in zip(result.hits, reference.hits):
            assert a.similarity == pytest.approx(b.similarity, abs=1e-4)


# -- numpy-fp32: BERT in numpy, how questions are embedded ------------------------------------------

def test_numpy_vectors_agree_with_torch_and_onnx_in_batches_of_mixed_lengths(torch_vectors):
    texts = passages()
    vectors = get_embedder(MODEL, "numpy-fp32", batch_size=16).embed_documents(texts)  # padded batches
    onnx = get_embedder(MODEL, "onnx-fp32").embed_documents(texts)
    assert vectors.dtype == np.float32 and vectors.shape == torch_vectors.shape
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert (vectors * torch_vectors).sum(axis=1).min() > 0.99999
    assert (vectors * onnx).sum(axis=1).min() > 0.99999
    one = get_embedder(MODEL, "numpy-fp32").embed_query("How many moons does Mars have?")
    alone = get_embedder(MODEL, "onnx-fp32").embed_query("How many moons does Mars have?")
    assert float(one @ alone) > 0.99999


def test_numpy_runs_the_weights_file_itself_and_caches_nothing(tmp_path):
    from rag.embedding.embedder import Embedder

    cache = tmp_path / "models"
    embedder = Embedder(MODEL, "numpy-fp32", cache_dir=cache).load()
    assert embedder.runtime == "numpy-fp32" and embedder.dim == 384
    assert embedder.embed_query("a question").shape == (384,)
    assert not cache.exists()


def test_a_model_numpy_cannot_run_is_asked_through_onnx(tmp_path):
    from rag.embedding import numpy_bert
    from rag.embedding.embedder import Embedder, _resolve

    folder = tmp_path / "model"
    shutil.copytree(_resolve(MODEL)[0], folder)
    assert numpy_bert.supports(folder)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps(config | {"position_embedding_type": "relative_key"}))
    assert not numpy_bert.supports(folder)  # relative positions: a forward pass numpy_bert does not compute

    embedder = Embedder(str(folder), "numpy-fp32").load()
    assert embedder.runtime == "onnx-fp32"
    reference = get_embedder(MODEL, "onnx-fp32").embed_query("a question")
    assert float(embedder.embed_query("a question") @ reference) > 0.9999


def test_numpy_erf_is_exact_to_float32():
    import math

    from rag.embedding.numpy_bert import _erf

    x = np.linspace(-6, 6, 20001, dtype=np.float32)
    exact = np.array([math.erf(float(v)) for v in x])
    assert np.abs(_erf(x) - exact).max() < 2e-7
    assert _erf(np.zeros(3, dtype=np.float32)).tolist() == [0.0, 0.0, 0.0]


# -- OpenVINO for an ingest: several streams fed from a queue ---------------------------------------

def test_an_ingest_runs_openvino_as_streams_that_make_the_vectors_one_stream_makes():
    from rag.embedding.embedder import Embedder

    texts = passages()
    streams = Embedder(MODEL, "openvino-fp32", batch_size=8).embed_documents(texts)  # many batches in flight
    one = Embedder(MODEL, "openvino-fp32", batch_size=8, threads=2).embed_documents(texts)
    assert streams.shape == one.shape
    assert (streams * one).sum(axis=1).min() > 0.99999


def test_a_failure_inside_a_stream_reaches_the_caller():
    from rag.embedding import export
    from rag.embedding.embedder import _local_folder, _openvino_each

    runtime = parse_runtime("openvino-fp32")
    folder = export.exported_model(_local_folder(MODEL), runtime, model_cache_dir())
    each = _openvino_each(export.model_file(folder, runtime), threads=None)
    ids = np.array([[101, 7592, 102]] * 2)
    batches = [(np.array([i]), ids, np.ones_like(ids)) for i in range(6)]

    def done(key, mask, hidden):
        raise ValueError(f"pooling failed for batch {int(key[0])}")

    with pytest.raises(ValueError, match="pooling failed for batch"):
        each(batches, done)


def test_an_interrupted_ingest_stops_its_streams_after_the_batch_in_hand():
    import _thread
    import time

    from rag.embedding import export
    from rag.embedding.embedder import _local_folder, _openvino_each

    runtime = parse_runtime("openvino-fp32")
    folder = export.exported_model(_local_folder(MODEL), runtime, model_cache_dir())
    each = _openvino_each(export.model_file(folder, runtime), threads=None)
    ids = np.array([[101, 7592, 102]] * 2)
    taken = []

    def batches():
        for i in range(100_000):
            taken.append(i)
            yield np.array([i]), ids, np.ones_like(ids)

    def done(key, mask, hidden):
        if int(key[0]) == 3:
            _thread.interrupt_main()  # Ctrl-C, delivered to the caller's thread as the streams work

    with pytest.raises(KeyboardInterrupt):
        each(batches(), done)
    stopped_at = len(taken)
    time.sleep(0.5)
    assert len(taken) == stopped_at < 100_000  # nothing goes on embedding behind the caller's back


# -- OpenVINO's compiled model, cached beside the export --------------------------------------------

def compiled_blobs() -> list[Path]:
    from rag.embedding.export import COMPILED

    return sorted(model_cache_dir().glob(f"*/{COMPILED}/*/openvino-fp32.THROUGHPUT.f32-*/*.blob"))


def ingest_streams() -> np.ndarray:
    """A fresh openvino-fp32 ingest embedder (threads None: THROUGHPUT, the cached compile)."""
    from rag.embedding.embedder import Embedder

    return Embedder(MODEL, "openvino-fp32").embed_documents(passages())


def test_an_ingest_caches_its_compiled_model_and_compiles_from_it_next_time():
    from rag.embedding.export import COMPILED

    shutil.rmtree(next(model_cache_dir().glob("*/openvino-fp32")).parent / COMPILED, ignore_errors=True)
    first = ingest_streams()
    blobs = compiled_blobs()
    assert len(blobs) == 1
    made = blobs[0].stat().st_mtime_ns
    again = ingest_streams()
    assert compiled_blobs() == blobs and blobs[0].stat().st_mtime_ns == made  # read, not written again
    assert np.array_equal(first, again)


def test_openvino_keeps_compiled_kernels_for_a_few_input_shapes_only(monkeypatch):
    # its default (5,000 shapes) grew an int8 ingest of the Python docs past 1.5 GB: an ingest meets
    # a new shape with nearly every batch length. The compiled model does not report the setting,
    # so what reaches OpenVINO is recorded on the way in, and the real compile runs.
    import openvino

    from rag.embedding.embedder import RUNTIME_CACHE_SHAPES

    configs = []
    compile_model = openvino.Core.compile_model

    def recording(self, model, device=None, config=None, *args, **kwargs):
        configs.append(dict(config or {}))
        return compile_model(self, model, device, config, *args, **kwargs)

    monkeypatch.setattr(openvino.Core, "compile_model", recording)
    ingest_streams()

    assert configs and all(c.get("CPU_RUNTIME_CACHE_CAPACITY") == RUNTIME_CACHE_SHAPES for c in configs)
    assert RUNTIME_CACHE_SHAPES <= 20


def test_a_damaged_compiled_model_is_deleted_and_compiled_again(caplog):
    # OpenVINO itself reads such a blob without a word (bytes zeroed in it gave NaN vectors)
    want = ingest_streams()
    blob = compiled_blobs()[0]
    data = bytearray(blob.read_bytes())
    data[len(data) * 3 // 4:len(data) * 3 // 4 + 200_000] = b"\x7f" * 200_000
    blob.chmod(0o600)  # OpenVINO writes it read-only
    blob.write_bytes(bytes(data))
    with caplog.at_level("WARNING", logger="rag.embedding.export"):
        got = ingest_streams()
    assert "is not the one recorded; compiling again" in caplog.text
    assert np.isfinite(got).all() and (got * want).sum(axis=1).min() > 0.99999
    assert compiled_blobs()[0].read_bytes() != bytes(data)


def test_a_compiled_model_cache_that_cannot_be_written_is_done_without(tmp_path, caplog):
    from rag.embedding import export
    from rag.embedding.embedder import _local_folder, _openvino_each

    runtime = parse_runtime("openvino-fp32")
    folder = export.exported_model(_local_folder(MODEL), runtime, model_cache_dir())
    copy = tmp_path / "openvino-fp32"
    shutil.copytree(folder, copy)
    (tmp_path / export.COMPILED).write_text("a file where the cache folder goes")  # unwritable, even for root
    with caplog.at_level("WARNING", logger="rag.embedding.export"):
        each = _openvino_each(export.model_file(copy, runtime), threads=None, cache_compiled=True)
    assert "compiling without it" in caplog.text
    ids = np.array([[101, 7592, 102]])
    out = []
    each([(np.array([0]), ids, np.ones_like(ids))], lambda key, mask, hidden: out.append(hidden))
    assert out and np.isfinite(out[0]).all()


def test_chunks_tokenized_ahead_embed_as_they_would_have_anyway():
    from rag.embedding.embedder import Embedder

    texts = passages()
    plain = Embedder(MODEL, "onnx-fp32").embed_documents(texts)
    ahead = Embedder(MODEL, "onnx-fp32")
    ahead.tokenize_ahead(texts[: len(texts) // 2] + ["never embedded"])
    assert np.array_equal(ahead.embed_documents(texts), plain)
    assert list(ahead._engine._ahead) == ["never embedded"]  # the rest were taken, once
