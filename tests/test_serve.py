"""`rag serve` as its clients see it: the real `openai` client and plain HTTP against uvicorn on 127.0.0.1.

Two servers (tests/conftest.py) run in threads for the whole module over copies of the shared index: `plain` (no key,
no LLM: extractive answers) and `keyed` (an API key, and the loopback fake LLM upstream).
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx2 as httpx
import pytest

from tests.helpers import NEW_DOC, RAG, SERVER_KEY as KEY, START_TIMEOUT, Running, clean_env


def client(server: Running, key: str = "unused"):
    from openai import OpenAI

    return OpenAI(base_url=f"{server.url}/v1", api_key=key, max_retries=0, timeout=120)


def ask(question: str) -> list[dict]:
    return [{"role": "user", "content": question}]


# -- the OpenAI-compatible API, extractive -----------------------------------------------------


def test_models_lists_the_indexes_in_the_folder(plain):
    assert [m.id for m in client(plain).models.list()] == ["default", "other"]


def test_the_openai_client_gets_a_cited_answer_with_sources(plain):
    response = client(plain).chat.completions.create(model="default", messages=ask("How many moons does Mars have?"))
    content = response.choices[0].message.content
    assert "Phobos" in content and "[1]" in content
    assert "\n\nSources:\n[1] corpus/astronomy.txt" in content
    extra = response.model_extra
    assert extra["answer_mode"] == "extractive"
    assert extra["sources"][0]["path"] == "corpus/astronomy.txt" and extra["sources"][0]["cited"]
    assert "file" not in extra["sources"][0]


def test_a_streamed_answer_arrives_in_pieces_with_the_sources_last(plain):
    stream = client(plain).chat.completions.create(model="default", messages=ask("How many moons does Mars have?"),
                                                   stream=True)
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks)
    assert "Phobos" in text and "Sources:\n[1] corpus/astronomy.txt" in text
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert chunks[-1].model_extra["sources"][0]["path"] == "corpus/astronomy.txt"


def test_the_model_field_chooses_the_index(plain):
    response = client(plain).chat.completions.create(model="other", messages=ask("How long do I bake sourdough?"))
    assert response.model == "other"
    assert response.model_extra["sources"][0]["path"] == "corpus/cooking.md"


def test_an_unknown_index_is_a_404_naming_the_ones_there_are(plain):
    import openai

    with pytest.raises(openai.NotFoundError) as caught:
        client(plain).chat.completions.create(model="gpt-4o", messages=ask("anything"))
    assert caught.value.body["message"] == (f"no index named 'gpt-4o' in {plain.root / 'indexes'} "
                                            f"(indexes: default, other)")
    assert caught.value.body["code"] == "model_not_found"


def test_a_follow_up_is_answered_with_the_conversation_before_it(plain):
    messages = [
        {"role": "system", "content": "You are helpful."},
        {"role": "user", "content": "Which planet has the moons Phobos and Deimos?"},
        {"role": "assistant", "content": "Mars [1].\n\nSources:\n[1] corpus/astronomy.txt"},
        {"role": "user", "content": "and its size?"},
    ]
    response = client(plain).chat.completions.create(model="default", messages=messages)
    # without an LLM the previous question is carried along (rag.answer.generate.condense)
    assert response.model_extra["question"] == "Which planet has the moons Phobos and Deimos? and its size?"


def test_content_given_as_parts_is_read_as_text(plain):
    messages = [{"role": "user", "content": [{"type": "text", "text": "What does error code ZX-4411 mean?"}]}]
    response = client(plain).chat.completions.create(model="default", messages=messages)
    assert response.model_extra["sources"][0]["path"] == "corpus/errors.rst"


# -- search and health ----------------------------------------------------------------------------


def test_search_returns_ranked_passages_as_json(plain):
    reply = httpx.post(f"{plain.url}/v1/search", json={"query": "grinding noise from the fan", "k": 2})
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert [h["rank"] for h in body["hits"]] == [1, 2]
    assert body["hits"][0]["path"] == "corpus/manual.pdf" and body["hits"][0]["page"] == 2
    assert "BK-7" in body["hits"][0]["text"]


def test_an_off_topic_search_says_why_nothing_is_relevant(plain):
    reply = httpx.post(f"{plain.url}/v1/search", json={"query": "What is the capital of Mongolia's cricket team coach?"})
    body = reply.json()
    assert body["below_cutoff"] and body["hits"] == []
    assert body["cutoff_reason"] == 'no passage mentions "Mongolia"'


def test_health_names_the_default_index(plain):
    reply = httpx.get(f"{plain.url}/health")
    assert reply.json() == {"status": "ok", "default_index": "default", "indexes": ["default", "other"], "strict": False}


# -- bad requests -------------------------------------------------------------------------------


@pytest.mark.parametrize("path, body, status, message", [
    ("/v1/chat/completions", {"model": "default", "messages": []}, 400,
     "`messages` must be a non-empty list of {role, content} objects"),
    ("/v1/chat/completions", {"model": "default", "messages": [{"role": "assistant", "content": "hi"}]}, 400,
     "the last message must be the user's question"),
    ("/v1/chat/completions", {"model": "default", "messages": ask("   ")}, 400, "the question is empty"),
    ("/v1/search", {"query": "bread", "k": 0}, 400, "`k` must be a whole number from 1 to 100"),
    ("/v1/search", {"query": "bread", "mode": "fuzzy"}, 400, "`mode` must be one of hybrid, dense, keyword"),
    ("/v1/search", {"k": 3}, 400, "the query is empty"),
])
def test_a_bad_request_is_a_400_with_one_clear_line(plain, path, body, status, message):
    reply = httpx.post(f"{plain.url}{path}", json=body)
    assert reply.status_code == status
    assert reply.json()["error"]["message"] == message


def test_a_body_that_is_not_json_is_a_400(plain):
    reply = httpx.post(f"{plain.url}/v1/search", content=b"{not json", headers={"Content-Type": "application/json"})
    assert reply.status_code == 400
    assert reply.json()["error"]["message"] == "the request body is not valid JSON"


def test_a_question_over_the_length_limit_is_a_400_that_says_so(plain):
    import openai

    with pytest.raises(openai.BadRequestError) as caught:
        client(plain).chat.completions.create(model="default", messages=ask("why " * 1500))
    assert caught.value.body["message"] == ("the question is 6000 characters long; the limit is 4000: "
                                            "ask something shorter")


def test_a_body_over_the_size_limit_is_a_413(plain):
    reply = httpx.post(f"{plain.url}/v1/chat/completions", json={"model": "default", "messages": ask("x" * 1_200_000)})
    assert reply.status_code == 413
    assert reply.json()["error"]["message"] == "the request body is over the limit of 1000000 bytes"


def test_a_chunked_body_over_the_size_limit_is_a_413_too(plain):
    def pieces():  # no Content-Length: the server has to count
        for _ in range(20):
            yield b"x" * 100_000

    reply = httpx.post(f"{plain.url}/v1/search", content=pieces(), headers={"Content-Type": "application/json"})
    assert reply.status_code == 413


def test_a_body_that_is_not_declared_json_is_a_415(plain):
    # a cross-site <form> can post text/plain without asking CORS first; it gets nothing done here
    reply = httpx.post(f"{plain.url}/v1/search", content=b'{"query": "bread"}', headers={"Content-Type": "text/plain"})
    assert reply.status_code == 415
    assert reply.json()["error"]["message"] == "send the body as JSON, with `Content-Type: application/json`"


def test_without_a_key_only_loopback_names_are_answered(plain):
    # what a DNS-rebinding page would send: its own host name, resolved to 127.0.0.1
    reply = httpx.get(f"{plain.url}/health", headers={"Host": "attacker.example:8000"})
    assert reply.status_code == 403
    assert "only requests addressed to 127.0.0.1 or localhost" in reply.json()["error"]["message"]
    assert httpx.get(f"{plain.url}/health", headers={"Host": "localhost"}).status_code == 200


def test_an_unknown_route_is_a_json_404(plain):
    reply = httpx.get(f"{plain.url}/v1/embeddings")
    assert reply.status_code == 404
    assert reply.json()["error"]["message"] == "no route /v1/embeddings"


# -- load ---------------------------------------------------------------------------------------


def test_twenty_concurrent_clients_all_get_answers(plain):
    questions = {"How many moons does Mars have?": "corpus/astronomy.txt",
                 "When should roses be pruned?": "corpus/garden.html",
                 "What does error code ZX-4411 mean?": "corpus/errors.rst",
                 "How long does vegetable stock simmer?": "corpus/cooking.md"}

    def one_client(n: int) -> tuple[str, str]:
        question = list(questions)[n % len(questions)]
        search = httpx.post(f"{plain.url}/v1/search", json={"query": question, "k": 3}, timeout=120)
        search.raise_for_status()
        answer = client(plain).chat.completions.create(model="default", messages=ask(question))
        return search.json()["hits"][0]["path"], answer.model_extra["sources"][0]["path"], question

    with ThreadPoolExecutor(max_workers=20) as pool:
        results = list(pool.map(one_client, range(20)))
    assert len(results) == 20
    for searched, answered, question in results:
        assert searched == answered == questions[question]


def test_searches_keep_answering_during_an_ingest_and_then_find_the_new_document(plain):
    root = plain.root
    folder = root / "harbour"
    folder.mkdir()
    (folder / "logbook.txt").write_text(NEW_DOC, encoding="utf-8")
    ingest = subprocess.Popen([str(RAG), "ingest", str(folder), "--index", "other", "--index-dir",
                               str(root / "indexes")], cwd=root, env=clean_env(), stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True)
    during = 0
    try:
        while ingest.poll() is None:
            reply = httpx.post(f"{plain.url}/v1/search", json={"query": "sourdough", "index": "other"}, timeout=120)
            assert reply.status_code == 200, reply.text
            during += 1
    finally:
        _, stderr = ingest.communicate(timeout=300)
    assert ingest.returncode == 0, stderr
    assert during >= 1
    reply = httpx.post(f"{plain.url}/v1/search", json={"query": "Who writes the tide times?", "k": 1, "index": "other"})
    assert reply.json()["hits"][0]["path"] == "harbour/logbook.txt"


# -- auth ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong-key"}, {"Authorization": KEY},
                                     {"Authorization": f"Token {KEY}"}])
@pytest.mark.parametrize("method, path", [("GET", "/"), ("GET", "/health"), ("GET", "/v1/models"),
                                          ("POST", "/v1/search"), ("POST", "/v1/chat/completions"),
                                          ("GET", "/no/such/route")])
def test_every_route_needs_the_key(keyed, method, path, headers):
    reply = httpx.request(method, f"{keyed.url}{path}", headers=headers, json={"query": "x"})
    assert reply.status_code == 401
    assert reply.json()["error"]["code"] == "invalid_api_key"
    assert KEY not in reply.text


def test_the_right_key_opens_every_route(keyed):
    headers = {"Authorization": f"Bearer {KEY}"}
    assert httpx.get(f"{keyed.url}/health", headers=headers).status_code == 200
    assert httpx.get(f"{keyed.url}/", headers=headers).status_code == 200
    assert [m.id for m in client(keyed, KEY).models.list()] == ["default"]


def test_a_browser_may_give_the_key_as_its_basic_auth_password(keyed):
    assert httpx.get(f"{keyed.url}/", auth=("anyone", KEY)).status_code == 200
    refused = httpx.get(f"{keyed.url}/", auth=("anyone", "wrong"))
    assert refused.status_code == 401
    assert refused.headers["www-authenticate"] == 'Basic realm="rag"'  # so the browser asks for it


def test_the_openai_client_with_a_wrong_key_gets_an_authentication_error(keyed):
    import openai

    with pytest.raises(openai.AuthenticationError):
        client(keyed, "wrong-key").chat.completions.create(model="default", messages=ask("anything"))


# -- with an LLM upstream -------------------------------------------------------------------------


def test_the_llm_writes_the_answer_from_the_passages(keyed, llm):
    llm.reply = "Mars has two moons, Phobos and Deimos [1]."
    response = client(keyed, KEY).chat.completions.create(model="default", messages=ask("How many moons does Mars have?"))
    assert response.choices[0].message.content == llm.reply + "\n\nSources:\n[1] corpus/astronomy.txt"
    assert response.model_extra["answer_mode"] == "llm"
    prompt = llm.requests[-1]["messages"][-1]["content"]
    assert 'source="corpus/astronomy.txt"' in prompt and "Phobos" in prompt
    assert KEY not in json.dumps(llm.requests) + json.dumps(llm.headers)  # our key is ours, not the upstream's


def test_the_llm_answer_streams_word_by_word(keyed, llm):
    llm.reply = "Mars has two moons, Phobos and Deimos [1]."
    stream = client(keyed, KEY).chat.completions.create(model="default", messages=ask("How many moons does Mars have?"),
                                                        stream=True)
    deltas = [c.choices[0].delta.content for c in stream if c.choices[0].delta.content]
    assert deltas[:3] == ["Mars", " has", " two"]
    assert "".join(deltas) == llm.reply + "\n\nSources:\n[1] corpus/astronomy.txt"


def test_a_follow_up_is_condensed_by_the_llm_with_the_conversation(keyed, llm):
    llm.reply = "How many moons does Mars have?"  # the condensed question, then the answer
    messages = [{"role": "user", "content": "Tell me about Mars."},
                {"role": "assistant", "content": "Mars is a planet [1].\n\nSources:\n[1] corpus/astronomy.txt"},
                {"role": "user", "content": "How many moons does it have?"}]
    client(keyed, KEY).chat.completions.create(model="default", messages=messages)
    condense = llm.requests[0]["messages"][-1]["content"]
    assert "User: Tell me about Mars." in condense and "Assistant: Mars is a planet [1]." in condense
    assert "Sources:" not in condense  # our own Sources block is cut from the history
    assert "Question: How many moons does Mars have?" in llm.requests[1]["messages"][-1]["content"]


@pytest.mark.parametrize("upstream, status", [(401, 502), (429, 429), (500, 502), (400, 400)])
@pytest.mark.parametrize("stream", [False, True])
def test_an_upstream_failure_is_an_openai_error_with_the_right_status(keyed, llm, upstream, status, stream):
    llm.fail_with = upstream
    llm.retry_after_ms = 1
    reply = httpx.post(f"{keyed.url}/v1/chat/completions", headers={"Authorization": f"Bearer {KEY}"},
                       json={"model": "default", "messages": ask("How many moons does Mars have?"), "stream": stream},
                       timeout=120)
    assert reply.status_code == status
    error = reply.json()["error"]
    assert error["type"] == "upstream_error"
    assert "\n" not in error["message"] and "Traceback" not in error["message"]
    assert llm.url.removesuffix("/v1") in error["message"] or "context" in error["message"]


def test_a_stream_that_fails_half_way_ends_with_an_error_event(keyed, llm):
    import openai

    llm.reply = "Mars has two moons"
    llm.stream_error = "the model crashed"
    stream = client(keyed, KEY).chat.completions.create(model="default", messages=ask("How many moons does Mars have?"),
                                                        stream=True)
    pieces = []
    with pytest.raises(openai.APIError) as caught:
        for chunk in stream:
            pieces.append(chunk.choices[0].delta.content or "")
    assert "".join(pieces) == "Mars has two moons"
    assert "the model crashed" in str(caught.value)


def test_a_slow_answer_does_not_hold_up_other_requests(keyed, llm):
    llm.reply = "one two three four five six seven eight nine ten [1]"
    llm.delay = 1.0  # seconds between streamed words: about ten seconds in all
    first_piece, finished = threading.Event(), threading.Event()

    def slow():
        stream = client(keyed, KEY).chat.completions.create(
            model="default", messages=ask("How many moons does Mars have?"), stream=True)
        for chunk in stream:
            if chunk.choices[0].delta.content:
                first_piece.set()
        finished.set()

    thread = threading.Thread(target=slow)
    thread.start()
    try:
        assert first_piece.wait(120)
        reply = httpx.post(f"{keyed.url}/v1/search", headers={"Authorization": f"Bearer {KEY}"},
                           json={"query": "sourdough"}, timeout=120)
        assert reply.status_code == 200
        assert not finished.is_set()  # the search was answered while the slow answer was still streaming
    finally:
        thread.join(60)
    assert finished.is_set()


# -- the command ----------------------------------------------------------------------------------


def test_binding_beyond_loopback_without_a_key_is_refused(tmp_path, rag_cli):
    result = rag_cli("serve", "--host", "0.0.0.0", "--index-dir", str(tmp_path), cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.strip() == ("Error: binding to 0.0.0.0 exposes your documents to the network: set --api-key "
                                     "or RAG_API_KEY (or bind to 127.0.0.1)")


def test_rag_serve_takes_the_key_from_the_environment_and_never_logs_it(built_index, tmp_path):
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    log = tmp_path / "stderr.txt"
    with open(log, "w") as stderr:
        proc = subprocess.Popen([str(RAG), "serve", "--port", str(port), "--index-dir", str(built_index / "indexes")],
                                cwd=tmp_path, env=clean_env(RAG_API_KEY=KEY), stdout=subprocess.PIPE, stderr=stderr)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            assert proc.poll() is None, log.read_text()
            try:
                httpx.get(f"{url}/health", timeout=5)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "rag serve did not start"
                time.sleep(0.2)
        assert httpx.get(f"{url}/health").status_code == 401
        assert httpx.get(f"{url}/health", headers={"Authorization": f"Bearer {KEY}"}).status_code == 200
        assert httpx.get(f"{url}/health", headers={"Authorization": "Bearer nope"}).status_code == 401
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=30)
    assert out == b""
    logged = log.read_text()
    assert "GET /health HTTP/1.1" in logged and KEY not in logged
