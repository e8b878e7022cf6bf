"""Answer quality with a real local LLM: facts, citations, refusals and time per answer.

usage: python bench/answers.py --index-dir DIR [--start-server | --base-url URL] [--modes llm,extractive]
           [--system-prompt FILE] [--limit N] [--out results.jsonl] [QUESTIONS.jsonl ...]

Each labelled question (bench/questions/answers_*.jsonl; the part of the file name after
"answers_" names the index to ask, e.g. answers_git.jsonl asks --index git) is put to
`rag ask --json` in a subprocess, as a user would, and the answer is scored. A line:
  {"id": "git-12", "question": "...", "facts": [["900", "15 minutes"], ["--timeout"]],
   "sources": ["git-credential-cache.html"]}           (R-intro lines add "pages": [12, 13])
  {"id": "git-u1", "question": "...", "answerable": false, "facts": [], "sources": []}
Each fact lists the spellings that count; every fact was checked to occur in a labelled source.
- facts: share of the question's facts the answer contains (each fact is a list of accepted
  spellings; matched ignoring case and white space);
- supported: share of the answer's citations that rag.answer.citations finds supported by the cited
  passage's text (sources[].text of the JSON; computed here, so the bench works whether or not
  `rag ask --json` reports citations itself);
- labelled: share of citations (of answerable questions) pointing at a labelled source
  (path suffix, and page when the label has pages);
- not covered: share of unanswerable questions answered "the documents do not cover this"
  (and, beside it, the share of answerable ones wrongly refused);
- seconds per answer: wall time of the `rag ask` process, and the generation time it reports.
`--modes extractive` (`--no-llm`) is the floor. `--start-server` runs llama.cpp's server
(bench/llm_server.py: Qwen2.5-Coder-0.5B-Instruct Q4_K_M, one thread) for the run.
`--system-prompt FILE` runs the same CLI with rag.answer.generate.SYSTEM_PROMPT replaced, to measure a
prompt without editing the code. `--in-process` runs the command through click's CliRunner in
this process (same code, same JSON; torch is imported once instead of once per question, which
matters on a loaded 2-core machine). Never part of the test suite.

One run per server: llama-cpp-python's server returned empty streamed answers to every request
while two runs shared it (measured 2026-12-01); to compare prompts, start a server for each.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
sys.path.insert(0, str(HERE.parent))

from rag.answer.citations import (CitationReport, answer_sentences, check_written, quote_for_extractive,  # noqa: E402
                                  split_written)
from rag.answer.context import FOCUS_CHARS as DEFAULT_FOCUS  # noqa: E402
from rag.answer.generate import NOT_COVERED, SYSTEM_PROMPT as DEFAULT_PROMPT, checked_texts  # noqa: E402
from rag.types import Hit  # noqa: E402

QUESTIONS = sorted((HERE / "questions").glob("answers_*.jsonl"))
MODEL_ALIAS = "qwen2.5-coder-0.5b"
# `python -m rag` rather than the installed script, so that PYTHONPATH=/work/before runs the old code
# (whose CLI lives elsewhere); run from a neutral folder, so the checkout in the working folder does
# not shadow it
RAG = [sys.executable, "-m", "rag"]
NEUTRAL_CWD = Path(os.environ.get("TMPDIR", "/tmp"))
# the CLI with another system prompt or passage size: the same code path, globals swapped before it runs
WITH_PROMPT = (
    "import sys, rag.answer.generate as g, rag.answer.context as c; prompt, chars = sys.argv.pop(1), sys.argv.pop(1); "
    "g.SYSTEM_PROMPT = open(prompt, encoding='utf-8').read().strip() if prompt else g.SYSTEM_PROMPT; "
    "c.FOCUS_CHARS = int(chars) if chars else c.FOCUS_CHARS; "
    "from rag.terminal.cli import main; sys.argv[0] = 'rag'; main()"
)


@dataclass
class Result:
    id: str
    index: str
    mode: str
    answerable: bool
    answer: str
    facts_found: int
    facts_total: int
    citations: int
    supported: int
    labelled: int
    refused: bool
    wall_s: float
    generation_s: float
    error: str = ""
    details: list[dict] = field(default_factory=list)
    fact_sentences: int = 0  # sentences of the answer that state something (rag.answer.citations kinds)
    grounded_sentences: int = 0  # ... of which every citation is supported (and there is one)
    attributed_sentences: int = 0  # ... whose citation rag wrote (`sentences[].cited_by` of the JSON)


def norm(text: str) -> str:
    return re.sub(r"\s+", "", text).lower().replace("\u2019", "'")


def refused(answer: str, mode: str) -> bool:
    """The answer says the documents do not cover the question: a written one in one of its
    sentences, without citing a passage; an extractive one, which otherwise only quotes passages,
    by rag's own lines before the quotes ("not covered", or that no passage mentions a name the
    question asks about, as a written answer says it too)."""
    if answer.startswith(NOT_COVERED):
        return True
    said = split_written(answer)[0] if mode == "extractive" else answer
    if mode == "extractive" and said == answer:
        return False  # quotes alone
    return not said.strip() or any(s.kind == "refusal" and not s.numbers for s in answer_sentences(said))


def labelled_source(source: dict, question: dict) -> bool:
    path = source["path"].replace("\\", "/")
    if not any(path.endswith(s) for s in question["sources"]):
        return False
    return "pages" not in question or source.get("page") in question["pages"]


def ask(question: dict, index: str, mode: str, args, env: dict) -> dict:
    """`rag ask --json` for one question: in a subprocess, or (--in-process) through click's runner
    in this process, which runs the same command code but imports torch once instead of per question."""
    cmd = ["ask", "--json", "--index-dir", str(args.index_dir.resolve()), "--index", index]
    cmd += ["--no-llm"] if mode == "extractive" else ["--model", MODEL_ALIAS]
    if args.top_k:
        cmd += ["-k", str(args.top_k)]
    if args.strict and mode == "llm":
        cmd.append("--strict")
    cmd.append(question["question"])
    started = time.perf_counter()
    if args.in_process:
        from click.testing import CliRunner

        import rag.answer.context
        import rag.answer.generate
        from rag.terminal.cli import main

        rag.answer.generate.SYSTEM_PROMPT = args.system_prompt.read_text(encoding="utf-8").strip() if args.system_prompt \
            else DEFAULT_PROMPT
        rag.answer.context.FOCUS_CHARS = args.focus_chars or DEFAULT_FOCUS
        done = CliRunner().invoke(main, cmd, env=env)
        status, stdout, stderr = done.exit_code, done.stdout, done.stderr
    else:
        swapped = args.system_prompt or args.focus_chars
        base = RAG if not swapped else [sys.executable, "-c", WITH_PROMPT, str(args.system_prompt or ""),
                                        str(args.focus_chars or "")]
        ran = subprocess.run([*base, *cmd], capture_output=True, text=True, env=env, timeout=1800, cwd=NEUTRAL_CWD)
        status, stdout, stderr = ran.returncode, ran.stdout, ran.stderr
    wall = time.perf_counter() - started
    if status != 0:
        return {"error": (stderr.strip().splitlines() or [f"exit {status}"])[-1], "wall_s": wall}
    return {**json.loads(stdout), "wall_s": wall}


def score(question: dict, index: str, mode: str, reply: dict) -> Result:
    answerable = question.get("answerable", True)
    if "error" in reply:
        return Result(question["id"], index, mode, answerable, "", 0, len(question["facts"]), 0, 0, 0, False,
                      reply["wall_s"], 0.0, error=reply["error"])
    answer, sources = reply["answer"], reply["sources"]
    if reply["mode"] == "llm" and not answer.strip():
        # llama-cpp-python's server sometimes ends a stream at once ("Disconnected from client"
        # in its log): no answer to score, which is not the model refusing
        reply = {"error": "empty answer from the LLM server", "wall_s": reply["wall_s"]}
        return score(question, index, mode, reply)
    # checked as rag checks it: each passage under its heading path (generate.checked_texts), a written
    # sentence with the question it answers (citations.answered)
    passages = checked_texts([Hit(chunk_id=0, path=s["path"], page=s["page"], heading=tuple(s["heading"]),
                                  text=s["text"], title="", score=0.0, similarity=0.0) for s in sources])
    report: CitationReport = quote_for_extractive(answer, passages) if reply["mode"] == "extractive" else \
        check_written(answer, passages, reply.get("question") or question["question"])
    text = norm(answer)
    found = sum(any(norm(alt) in text for alt in alts) for alts in question["facts"])
    labelled = sum(1 <= c.n <= len(sources) and labelled_source(sources[c.n - 1], question) for c in report.citations)
    details = [{"n": c.n, "supported": c.supported, "reason": c.reason, "quote": c.quote[:120]} for c in report.citations]
    facts, grounded = grounded_sentences(answer, report, reply["mode"])
    attributed = sum(s.get("cited_by") == "rag" and s.get("kind") == "fact" for s in reply.get("sentences", []))
    return Result(
        question["id"], index, mode, answerable, answer, found, len(question["facts"]), len(report.citations),
        sum(c.supported for c in report.citations), labelled, refused(answer, mode),
        round(reply["wall_s"], 2), reply.get("timings", {}).get("generation_s", 0.0),
        details=details + [{"uncited_sentences": report.uncited_sentences}],
        fact_sentences=facts, grounded_sentences=grounded, attributed_sentences=attributed,
    )


def grounded_sentences(answer: str, report: CitationReport, mode: str) -> tuple[int, int]:
    """(sentences stating something, those cited with every citation supported). An extractive
    answer's unit is its cited excerpt (rag.answer.citations.quote_for_extractive)."""
    if mode == "extractive":
        return len(report.citations), sum(c.supported for c in report.citations)
    written, quoted = split_written(answer)  # a written answer nothing supported, then the passages' words
    facts = [s for s in answer_sentences(written) if s.kind == "fact"]
    checked: dict[str, list[bool]] = {}
    for c in report.citations:
        checked.setdefault(c.sentence, []).append(c.supported)
    paragraphs = {p.strip() for p in re.split(r"\n\s*\n", quoted)} if quoted else set()
    units = [c for c in report.citations if c.sentence in paragraphs]  # each quoted excerpt, as extractive
    return (len(facts) + len(units),
            sum(bool(s.numbers) and all(checked.get(s.text, [False])) for s in facts) + sum(c.supported for c in units))


def pct(part: float, whole: float) -> str:
    return f"{100 * part / whole:5.1f}" if whole else "    -"


def table(results: list[Result], label: str) -> str:
    rows = [f"| {label} | n | facts % | all facts % | sentences cited and supported % | cited by rag % | "
            f"citations supported % | cites labelled source % | "
            f"unanswerable -> not covered % | answerable refused % | s/answer (median wall) | s/answer (mean generation) |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    groups: dict[str, list[Result]] = {}
    for r in results:
        if not r.error:  # errors are counted below, not scored as wrong answers
            groups.setdefault(f"{r.mode} {r.index}", []).append(r)
            groups.setdefault(f"{r.mode} (all)", []).append(r)
    if len({r.index for r in results}) == 1:  # one set: its rows are the totals
        groups = {name: rs for name, rs in groups.items() if not name.endswith("(all)")}
    for mode, rs in sorted(groups.items()):
        ans = [r for r in rs if r.answerable]
        una = [r for r in rs if not r.answerable]
        # the median: the first answer of a run also pays for importing torch and loading the model
        wall = sorted(r.wall_s for r in rs)[len(rs) // 2]
        gen = sum(r.generation_s for r in rs) / len(rs)
        rows.append(
            f"| {mode} | {len(rs)} | {pct(sum(r.facts_found for r in ans), sum(r.facts_total for r in ans))} | "
            f"{pct(sum(r.facts_found == r.facts_total for r in ans), len(ans))} | "
            f"{pct(sum(r.grounded_sentences for r in rs), sum(r.fact_sentences for r in rs))} | "
            f"{pct(sum(r.attributed_sentences for r in rs), sum(r.grounded_sentences for r in rs))} | "
            f"{pct(sum(r.supported for r in rs), sum(r.citations for r in rs))} | "
            f"{pct(sum(r.labelled for r in ans), sum(r.citations for r in ans))} | "
            f"{pct(sum(r.refused for r in una), len(una))} | {pct(sum(r.refused for r in ans), len(ans))} | "
            f"{wall:.1f} | {gen:.1f} |"
        )
    errors = sum(bool(r.error) for r in results)
    citations = sum(r.citations for r in results)
    rows.append(f"\n{len(results)} answers, {citations} citations, {errors} errors")
    return "\n".join(rows)


def load(paths: list[Path]) -> list[tuple[str, dict]]:
    items = []
    for path in paths:
        index = path.stem.removeprefix("answers_")
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                items.append((index, json.loads(line)))
    return items


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("questions", nargs="*", type=Path, default=QUESTIONS)
    parser.add_argument("--index-dir", type=Path, help="where the indexes named by the question files live")
    parser.add_argument("--modes", default="llm,extractive")
    parser.add_argument("--base-url", help="an OpenAI-compatible server already running (e.g. http://127.0.0.1:8089/v1)")
    parser.add_argument("--start-server", action="store_true", help="run llama.cpp's server for the run (one thread)")
    parser.add_argument("--port", type=int, default=8089)
    parser.add_argument("--system-prompt", type=Path, help="a file whose text replaces rag.answer.generate.SYSTEM_PROMPT")
    parser.add_argument("--focus-chars", type=int,
                        help="characters of each passage the model reads when the extractive chooser picks "
                             "nothing (rag.answer.context.FOCUS_CHARS; a large number passes whole passages)")
    parser.add_argument("--strict", action="store_true", help="ask with --strict (llm mode)")
    parser.add_argument("-k", "--top-k", type=int)
    parser.add_argument("--limit", type=int, help="only the first N questions of each file")
    parser.add_argument("--out", type=Path, help="write one JSON line per answer here (appended as it goes)")
    parser.add_argument("--label", default="mode")
    parser.add_argument("--report", nargs="+", type=Path, metavar="RESULTS.jsonl",
                        help="print the table of results saved by --out, asking nothing")
    parser.add_argument("--in-process", action="store_true",
                        help="run `rag ask` through click's runner in this process (torch imported once)")
    args = parser.parse_args()

    if args.report:
        saved = [Result(**json.loads(line)) for path in args.report for line in path.read_text().splitlines() if line]
        for r in saved:  # scored again with this version's rule
            if r.mode == "llm" and not r.answer.strip() and not r.error:
                r.error = "empty answer from the LLM server"
            r.refused = r.refused if r.error else refused(r.answer, r.mode)
        print(table(saved, args.label))
        return
    if args.index_dir is None:
        parser.error("--index-dir is required to ask questions")
    modes = args.modes.split(",")
    items = load(args.questions)
    if args.limit:
        per: dict[str, int] = {}
        items = [(i, q) for i, q in items if (per.__setitem__(i, per.get(i, 0) + 1) or per[i]) <= args.limit]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "RAG_TIMEOUT": "900",
           "OPENAI_API_KEY": "no-key", "RAG_LLM_MODEL": MODEL_ALIAS}
    server = None
    if "llm" in modes:
        if args.start_server:
            from bench.llm_server import start_server

            server, env["OPENAI_BASE_URL"] = start_server(args.port, log=Path(f"/tmp/llama-server-{args.port}.log"))
        elif args.base_url:
            env["OPENAI_BASE_URL"] = args.base_url
        else:
            parser.error("mode llm needs --base-url URL or --start-server")
    results: list[Result] = []
    try:
        for mode in modes:
            for index, question in items:
                result = score(question, index, mode, ask(question, index, mode, args, env))
                results.append(result)
                line = json.dumps(result.__dict__, ensure_ascii=False)
                if args.out:
                    with args.out.open("a", encoding="utf-8") as f:
                        f.write(line + "\n")
                print(f"{mode:<10} {result.id:<8} facts {result.facts_found}/{result.facts_total} "
                      f"cites {result.supported}/{result.citations} labelled {result.labelled} "
                      f"refused {result.refused} {result.wall_s:.1f}s {result.error}", file=sys.stderr, flush=True)
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=30)
    print(table(results, args.label))


if __name__ == "__main__":
    main()
