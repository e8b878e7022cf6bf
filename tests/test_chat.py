"""`rag chat` driven as a user drives it: in-process with piped input for the behaviours, and a
real pseudo-terminal (pexpect) for what only a terminal shows: readline, Ctrl-C, Ctrl-D."""

from __future__ import annotations

import os
import re
import shutil
import sys
from pathlib import Path

import pexpect
import pytest
from click.testing import CliRunner

from rag.terminal.cli import main
from tests.helpers import CORPUS, RAG, clean_env

PROMPT = "you> "


@pytest.fixture
def workdir(built_index, tmp_path) -> Path:
    """A private copy of the shared index, since chat writes its history file beside it."""
    dest = tmp_path / "work"
    shutil.copytree(built_index, dest)
    return dest


def spawn_chat(workdir: Path, llm_url: str | None = None, *args: str) -> pexpect.spawn:
    env = clean_env(XDG_STATE_HOME=str(workdir / "state"))
    if llm_url:
        env["OPENAI_BASE_URL"] = llm_url
        env["RAG_LLM_MODEL"] = "test-model"
    child = pexpect.spawn(str(RAG), ["chat", *args], cwd=str(workdir), env=env, encoding="utf-8",
                          timeout=60, dimensions=(40, 200))
    child.logfile_read = sys.stdout if os.environ.get("RAG_TEST_VERBOSE") else None
    child.expect_exact(PROMPT)
    return child


def streamed_requests(llm) -> list[dict]:
    return [r for r in llm.requests if r.get("stream")]


def test_question_follow_up_sources_and_exit_against_an_llm(workdir, llm):
    child = spawn_chat(workdir, llm.url)
    llm.reply = "Bake it at 250 degrees for forty minutes [1]."
    child.sendline("How long do I bake sourdough bread?")
    child.expect_exact("forty minutes [1].")
    child.expect_exact("Sources:")
    child.expect(r"\[1\] \S*corpus/cooking\.md")
    child.expect_exact(PROMPT)

    # The follow-up is condensed by the LLM (non-streamed request) with the earlier turn in view.
    llm.reply = "What temperature should sourdough bread be baked at?"
    child.sendline("and at what temperature?")
    child.expect_exact(PROMPT)
    condense = [r for r in llm.requests if not r.get("stream")][-1]
    transcript = condense["messages"][-1]["content"]
    assert "How long do I bake sourdough bread?" in transcript
    assert "and at what temperature?" in transcript
    answer_request = streamed_requests(llm)[-1]
    assert "Question: What temperature should sourdough bread be baked at?" in answer_request["messages"][-1]["content"]
    # the conversation so far rides along as history, after the prompt's worked example
    roles = [m["role"] for m in answer_request["messages"]]
    assert roles == ["system", "user", "assistant", "user", "assistant", "user"]

    child.sendline("/sources")
    child.expect(r"\[1\] \S*corpus/cooking\.md \(Kitchen notes > Bread\)  score")
    child.expect_exact(PROMPT)
    child.sendline("/exit")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0


def chat_in_process(workdir: Path, lines: list[str], llm=None):
    """`rag chat` in this process with piped input: the CLI, the loop and the Index, minus the pty."""
    env = {"OPENAI_BASE_URL": llm.url, "RAG_LLM_MODEL": "test-model"} if llm else {}
    return CliRunner().invoke(main, ["chat", "--index-dir", str(workdir / "indexes")],
                              input="".join(line + "\n" for line in lines), env=env)


def test_reset_forgets_the_conversation(workdir, llm):
    result = chat_in_process(workdir, ["How long do I bake sourdough bread?", "/reset", "How do I prune roses?"], llm)

    assert result.exit_code == 0
    assert "(conversation cleared)" in result.stdout
    assert [r["stream"] for r in llm.requests] == [True, True], "no condensing after a reset: nothing to condense"
    assert [m["role"] for m in llm.requests[-1]["messages"]] == ["system", "user", "assistant", "user"]  # the example


def test_an_llm_error_is_one_line_and_the_conversation_goes_on(workdir, llm):
    llm.fail_with = 401
    llm.fail_times = 1
    llm.reply = "Six hours of sun [1]."

    result = chat_in_process(workdir, ["How long do I bake sourdough bread?", "How much sun do tomatoes need?"], llm)

    assert result.exit_code == 0
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and "rejected the API key (401)" in errors[0]
    assert "Traceback" not in result.output
    assert "Six hours of sun [1]." in result.stdout


def test_ctrl_c_stops_the_answer_but_not_the_session(workdir, llm):
    child = spawn_chat(workdir, llm.url)
    llm.reply = " ".join(f"word{i}" for i in range(200))
    llm.delay = 0.05
    child.sendline("How long do I bake sourdough bread?")
    child.expect_exact("word3")
    child.sendintr()
    child.expect_exact("[stopped]")
    child.expect_exact(PROMPT)
    assert "word199" not in child.before
    llm.delay = 0.0
    llm.reply = "Prune in late winter [1]."
    child.sendline("When should roses be pruned?")
    child.expect_exact("Prune in late winter [1].")
    child.expect_exact(PROMPT)
    child.sendintr()  # Ctrl-C at the prompt only clears the line
    child.expect_exact(PROMPT)
    child.sendline("/exit")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0


def test_without_an_llm_chat_says_so_once_and_answers_from_passages(workdir):
    result = chat_in_process(workdir, [
        "How long do I bake sourdough bread?", "/k 1", "/mode keyword", "/mode nonsense", "What is error ZX-4411?",
    ])

    assert result.exit_code == 0, result.output
    assert result.stderr.count("extractive answers") == 1
    out = result.stdout
    assert out.index("forty minutes") < out.index("Sources:") < out.index("(retrieving 1 passages per question)")
    assert "(retrieval mode: keyword)" in out
    assert "usage: /mode hybrid|dense|keyword" in result.stderr
    after = out[out.index("(retrieval mode: keyword)"):]
    assert re.search(r"\[1\] \S*corpus/errors\.rst", after) and "[2]" not in after


def test_piped_questions_are_answered_in_order(workdir, rag_cli):
    result = rag_cli("chat", "--no-llm", cwd=workdir,
                     input="How long do I bake sourdough bread?\n/sources\nWhat is error ZX-4411?\n")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert out.index("forty minutes") < out.index("score") < out.index("ZX-4411")
    assert "you>" not in out
    assert "Traceback" not in result.stderr


def test_follow_up_without_llm_carries_the_earlier_subject():
    from rag.terminal.chat import Conversation, Turn
    from rag.answer.generate import condense

    conversation = Conversation()
    conversation.add(Turn("How do I prune roses?", "How do I prune roses?", "In late winter [1]."))
    history = conversation.messages()
    assert condense("and when is it best?", history, None) == "How do I prune roses? and when is it best?"
    assert condense("why?", history, None) == "How do I prune roses? why?"
    # an unrelated, self-contained question is left alone, however short
    assert condense("What is error ZX-4411?", history, None) == "What is error ZX-4411?"
    assert condense("How much sun do tomatoes need every day?", history, None) == (
        "How much sun do tomatoes need every day?"
    )


def test_history_stays_bounded_in_long_sessions():
    from rag.terminal.chat import HISTORY_TURNS, Conversation, Turn

    conversation = Conversation()
    for i in range(100):
        conversation.add(Turn(f"q{i}", f"q{i}", "x" * 10_000))
    messages = conversation.messages()
    assert len(messages) == 2 * HISTORY_TURNS
    assert all(len(m["content"]) <= 1600 for m in messages)
    assert len(conversation.turns) <= 2 * HISTORY_TURNS


def test_the_model_is_loaded_before_the_first_prompt(workdir, monkeypatch):
    """The greeting means "ready": the model loads before it, not when the first question arrives
    (Embedder is lazy, and opening the retriever alone does not load it)."""
    from rag.embedding.embedder import Embedder

    events: list[str] = []
    real_load = Embedder.load

    def load(self):
        events.append("model loaded")
        return real_load(self)

    monkeypatch.setattr(Embedder, "load", load)
    monkeypatch.setattr("rag.terminal.chat.Chat.warn", lambda self, text: events.append(f"said: {text[:20]}"))
    result = chat_in_process(workdir, [])

    assert result.exit_code == 0, result.output
    assert events and events[0] == "model loaded", events


STASH_GUIDE = """# Keeping work aside

## Putting work aside

When you are in the middle of something and must switch branches, you can put your uncommitted
changes aside and get a clean working tree with `git stash push`. The changes are saved on a
stack of stashes, newest first, and both staged and unstaged edits are recorded. Untracked files
stay where they are unless you add the `--include-untracked` option.

## Getting the changes back

To undo a stash and bring the changes back into your working tree, run `git stash pop`. It
applies the newest stash and removes it from the stack. If the changes conflict with what you
did since, the stash is kept until you resolve the conflict and drop it with `git stash drop`.
"""


@pytest.fixture(scope="module")
def stash_index(tmp_path_factory, embedder) -> Path:
    from ingest.chunk import ChunkSettings
    from ingest.pipeline import run_ingest
    from rag.storage.store import Store

    root = tmp_path_factory.mktemp("stash")
    (root / "docs").mkdir()
    (root / "docs" / "stash.md").write_text(STASH_GUIDE, encoding="utf-8")
    (root / "docs" / "cooking.md").write_text(CORPUS["cooking.md"], encoding="utf-8")
    store = Store.open(root / "indexes" / "default", create=True)
    assert run_ingest([root / "docs"], store, embedder, ChunkSettings()).ok
    store.close()
    return root


def test_a_follow_up_without_llm_is_searched_with_its_subject_and_answers_itself(stash_index):
    result = chat_in_process(stash_index, ["How do I put my uncommitted changes aside?", "and how do I undo that?"])

    assert result.exit_code == 0, result.output
    assert "(searched for: and how do I undo that? (about: put uncommitted changes aside))" in result.stderr
    first, second = result.stdout.split("Sources:")[:2]
    assert "git stash push" in first
    follow_up = second.split("\n\n", 1)[1]  # after the first answer's sources
    assert follow_up.lstrip().startswith("To undo a stash and bring the changes back")
    assert "git stash pop" in follow_up and first.strip() not in follow_up


def test_a_follow_up_that_finds_the_same_excerpts_says_so_instead_of_repeating_them(workdir):
    result = chat_in_process(workdir, ["How long do I bake sourdough bread?", "and then?"])

    assert result.exit_code == 0, result.output
    assert "(searched for: and then? (about: long bake sourdough bread))" in result.stderr
    assert result.stdout.count("forty minutes") == 1
    assert "answer it with the same excerpts as above" in result.stdout
