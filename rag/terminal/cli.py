"""The `rag` command: parse options, call `rag.Index`, print `render.*` or `asdict()` as JSON.

Heavy libraries (torch, sentence-transformers, faiss, openai) are imported inside the commands
that need them, so `rag --help` and `rag status` start instantly. RagError becomes one line on
stderr and exit 1 (a PartialFailure exits with its own status); usage errors exit 2; Ctrl-C prints
"[stopped]" and exits 130. Option defaults shown in --help come from the constants that define
them (rag.config, rag.runtimes, rag.map), and every option group is built one way (`options`).

One module past 400 lines because it is the commands themselves, one function each: most of its
length is option declarations and help text, and each body parses, calls `rag.Index` and prints
through rag.terminal.render (`watch` also owns its signals).
"""

from __future__ import annotations

import json
import logging
import sys
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Callable

import click

from rag.config import (DEFAULT_CHUNK_TOKENS, DEFAULT_OVERLAP_TOKENS, ENV, MAX_TOP_K, MIN_CHUNK_TOKENS, MODES, Settings,
                        for_many_questions, load_settings)
from rag.errors import PartialFailure, RagError
from rag.extras import require
from rag.map import COLORS, DEFAULT_COLOR, DEFAULT_PROJECTION, DEFAULT_SAMPLE, PROJECTIONS
from rag.runtimes import RUNTIME_NAMES
from rag.safety import safe
from rag.text import readable


class StderrLines(logging.Handler):
    """rag's warnings (a vector file rebuilt, and why) as plain lines on stderr, wherever stderr is now."""

    def emit(self, record: logging.LogRecord) -> None:
        click.echo(safe(record.getMessage()), err=True)


def show_warnings() -> None:
    log = logging.getLogger("rag")
    if not any(isinstance(handler, StderrLines) for handler in log.handlers):
        log.addHandler(StderrLines(logging.WARNING))


class RagGroup(click.Group):
    """The one error boundary: domain errors become `Error: message`, never a traceback."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except PartialFailure as exc:  # the work that succeeded is kept and reported; the status says the rest failed
            if ctx.params.get("debug"):
                raise
            click.echo(f"Error: {safe(str(exc))}", err=True)
            ctx.exit(exc.exit_code)
        except RagError as exc:
            if ctx.params.get("debug"):
                raise
            raise click.ClickException(safe(str(exc))) from exc  # a file name may hold escapes
        except OSError as exc:  # a folder we may not write, a full disk: name it, no traceback
            if ctx.params.get("debug"):
                raise
            where = f" {exc.filename}" if exc.filename else ""
            raise click.ClickException(f"cannot access{where}: {exc.strerror or exc}") from exc
        except KeyboardInterrupt:
            click.echo("", err=True)
            click.echo("[stopped]", err=True)
            ctx.exit(130)


def options(*decorators: Callable) -> Callable:
    """One decorator applying `decorators` as if stacked in this order above a command."""

    def apply(func):
        for decorator in reversed(decorators):
            func = decorator(func)
        return func

    return apply


DEFAULTS = Settings()
SETTING_ENV = {field: key for key, (field, _) in ENV.items()}


def filters_from(paths=(), types=(), modified_since=None, modified_before=None, pages=None):
    """The filters the flags give (None: no filter); a malformed one is a usage error (exit 2)."""
    from rag.errors import ConfigError
    from rag.filters import Filters

    try:
        filters = Filters.build(paths=paths, types=types, modified_since=modified_since,
                                modified_before=modified_before, pages=pages)
    except ConfigError as exc:
        raise click.UsageError(safe(str(exc))) from None
    return None if filters.empty else filters


def open_indexes(settings, indexes: tuple[str, ...]):
    """The indexes to search: the first answers (its LLM, its settings), the rest are searched with it."""
    from rag.index import Index

    return Index.open_together(settings, list(indexes) or [settings.index])


def no_match_exit(retrieval, as_json: bool, value) -> None:
    """A filter that matches no document: one line (or the JSON, which says so too), exit 1."""
    from rag.terminal.render import err

    if as_json:
        print_json(value)
    else:
        err(f"Error: {safe(retrieval.no_match)} (see `rag ls`)")
    sys.exit(1)


def setting_help(text: str, field: str, default: object | None = None) -> str:
    """Help for an option backed by a setting: its default (the Settings field's, unless the option
    shows it another way) and the environment variable that also sets it."""
    shown = getattr(DEFAULTS, field) if default is None else default
    return f"{text} [default: {shown}, {SETTING_ENV[field]}]"


def json_option(what: str) -> Callable:
    return click.option("--json", "as_json", is_flag=True, help=f"Print {what} as JSON.")


index_options = options(
    click.option("--index", "index", metavar="NAME", help=setting_help("Index name (folder under --index-dir).", "index")),
    click.option("--index-dir", type=click.Path(file_okay=False, path_type=Path),
                 help=setting_help("Where indexes live.", "index_dir")),
)
embed_option = options(
    click.option("--embed-model", metavar="NAME|PATH",
                 help=setting_help("Embedding model (the default is bundled).", "embed_model")),
)
rerank_option = options(
    click.option("--rerank-model", metavar="PATH",
                 help="A local sentence-transformers CrossEncoder folder that re-scores the top 50 passages. "
                      f"[{SETTING_ENV['rerank_model']}]"),
)
llm_option = options(
    click.option("--model", "llm_model", metavar="NAME", help=setting_help("LLM model name.", "llm_model")),
)
top_k_option = click.option("-k", "--top-k", type=click.IntRange(1, MAX_TOP_K),
                            help=setting_help(f"Passages to retrieve (at most {MAX_TOP_K}).", "top_k"))
mode_option = click.option("--mode", type=click.Choice(MODES), default="hybrid", show_default=True,
                           help="Retrieval method.")
# -k and --mode without the cut-off: evaluation measures ranking, not the cut-off
ranking_options = options(top_k_option, mode_option)
retrieval_options = options(
    top_k_option,
    mode_option,
    click.option("--min-score", type=click.FloatRange(-1, 1), help=setting_help("Relevance cut-off (cosine).", "min_score")),
)
# ask, chat, search and mcp take several indexes at once
search_index_options = options(
    click.option("--index", "indexes", metavar="NAME", multiple=True,
                 help=setting_help("Index name (folder under --index-dir); repeat to search several together.", "index")),
    click.option("--index-dir", type=click.Path(file_okay=False, path_type=Path),
                 help=setting_help("Where indexes live.", "index_dir")),
)
# which part of the index to search (rag.filters): folders and files, types, dates, pages
filter_options = options(
    click.option("--path", "paths", metavar="GLOB", multiple=True,
                 help="Only documents matching this gitignore-style glob, relative to the ingested folder as "
                      "`rag ls --json` labels them (e.g. 'notes/**', '*.pdf', '!drafts/'); repeatable."),
    click.option("--type", "types", metavar="TYPES", multiple=True,
                 help="Only these document types, by extension: pdf,md (repeatable)."),
    click.option("--modified-since", metavar="DATE",
                 help="Only documents modified at or after DATE: 2025-01-31, 2025-01-31T18:00, or 7d/36h/2w ago."),
    click.option("--modified-before", metavar="DATE", help="Only documents modified before DATE (same forms)."),
    click.option("--pages", metavar="N[-M]", help="Only these pages of the one document the other filters name."),
)


def strict_option(func):
    return click.option("--strict", is_flag=True, default=None,
                        help="Leave out the sentences of a written answer that no passage supports (they are "
                             "marked [unsupported] otherwise). [RAG_STRICT]")(func)


def settings_from(**flags):
    return load_settings({k: v for k, v in flags.items() if v is not None})


def print_json(value) -> None:
    text = json.dumps(asdict(value) if is_dataclass(value) else value, ensure_ascii=False)
    click.echo(readable(text))  # a file name that is not UTF-8 must not crash the output


@click.group(cls=RagGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True, help="Show tracebacks for errors.")
@click.version_option(package_name="rag", message="rag %(version)s")
def main(debug: bool) -> None:
    """Ask questions about a folder of documents, with cited answers.

    \b
    rag ingest ./docs          index a folder (incremental)
    rag ask "question"         answer with citations
    rag chat                   an interactive conversation
    """
    show_warnings()


@main.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@index_options
@embed_option
@click.option("--chunk-tokens", type=click.IntRange(min=MIN_CHUNK_TOKENS),
              help=f"Chunk size in model tokens. [default: {DEFAULT_CHUNK_TOKENS}]")
@click.option("--overlap-tokens", type=click.IntRange(min=0),
              help=f"Tokens shared by neighbouring chunks. [default: {DEFAULT_OVERLAP_TOKENS}]")
@click.option("--prune/--no-prune", default=True, show_default=True, help="Forget files that vanished from a folder given again.")
@click.option("--rebuild", is_flag=True, help="Re-chunk and re-embed every file given (needed to change chunk sizes).")
@click.option("--embed-backend", metavar="RUNTIME",
              help=setting_help(f"Embedding runtime for a new index: auto (torch on a CUDA GPU; openvino-int8 on a "
                                f"CPU with VNNI or AMX when rag[int8] is installed; else openvino-bf16 on a CPU "
                                f"with bf16, else openvino-fp32), {', '.join(RUNTIME_NAMES)}.", "embed_backend"))
@json_option("the report (every failure with its reason)")
@click.option("--ray", "ray_address", metavar="ADDRESS",
              help="Load, chunk and embed on a Ray cluster: HOST:PORT, auto (this machine's) or local "
                   f"(a throwaway one); needs rag[ray]. [{SETTING_ENV['ray_address']}]")
def ingest(paths, index, index_dir, embed_model, chunk_tokens, overlap_tokens, prune, rebuild, embed_backend, as_json,
           ray_address):
    """Index files and folders, incrementally.

    \b
    Formats: txt md rst html pdf docx odt pptx epub ipynb csv tsv eml mbox; images (png jpg
    tiff webp bmp gif) and scanned PDF pages through OCR (tesseract-ocr); source code (py js ts go
    rs java c h cpp sh rb). Navigation and redirect pages are left out.
    """
    from rag.index import Index
    from rag.terminal.render import TerminalProgress, err, ingest_summary

    for path in paths:
        if not path.exists() and not path.is_symlink():
            raise click.BadParameter(f"{path} does not exist", param_hint="PATHS")
        if path.is_file() and not Index.reads(path):
            raise click.BadParameter(
                f"{path}: unsupported file type {path.suffix or '(none)'} (see `rag ingest --help`)",
                param_hint="PATHS",
            )
    if chunk_tokens is not None and overlap_tokens is not None and overlap_tokens >= chunk_tokens:
        raise click.BadParameter("must be smaller than --chunk-tokens", param_hint="--overlap-tokens")
    if ray_address is not None and not ray_address.strip():
        raise click.BadParameter("is empty: give HOST:PORT, auto or local", param_hint="--ray")
    settings = settings_from(index=index, index_dir=index_dir, embed_model=embed_model, embed_backend=embed_backend,
                             ray_address=ray_address)
    with Index.open(settings, create=True) as idx:
        report = idx.ingest(paths, chunk_tokens=chunk_tokens, overlap_tokens=overlap_tokens, prune=prune,
                            rebuild=rebuild, progress=TerminalProgress())
    if as_json:
        print_json(report)
    err(ingest_summary(report))
    if not report.ok:
        indexed = report.added + report.updated + report.unchanged
        rest = "; the rest are in the index" if indexed else ""
        raise PartialFailure(f"could not index {report.failed} of {report.failed + indexed} files (named above){rest}")


@main.command()
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@index_options
@embed_option
@click.option("--embed-backend", metavar="RUNTIME", help="Embedding runtime for a new index (see `rag ingest --help`).")
@click.option("--poll", is_flag=True,
              help="Poll for changes instead of waiting for file-system events: for network mounts (NFS, SMB) "
                   "and other file systems that send none.")
@click.option("--json", "as_json", is_flag=True, help="Print each change, failure and notice, one object per line, as JSON.")
def watch(paths, index, index_dir, embed_model, embed_backend, poll, as_json):
    """Keep an index fresh: ingest PATHS, then follow them and ingest every change.

    File-system events are batched (a burst of saves or a `git checkout` becomes a few ingests)
    and a file is read only once it has stopped changing; editors' temporary, swap and backup
    files and partial downloads are ignored, and `.ragignore` and hidden files are handled
    exactly as `rag ingest` handles them. Renamed and moved files keep their vectors; copies and
    unchanged sections reuse them. Without PATHS, the folders the index was built from are
    watched. Where a file system sends no events (network mounts), use --poll. Ctrl-C or
    SIGTERM stops after the batch in flight.
    """
    import signal
    import threading

    from rag.index import Index
    from rag.terminal.render import change_line, err
    from rag.watch.watcher import Watcher

    for path in paths:
        if not path.exists():
            raise click.BadParameter(f"{path} does not exist", param_hint="PATHS")
    settings = settings_from(index=index, index_dir=index_dir, embed_model=embed_model, embed_backend=embed_backend)
    with Index.open(settings, create=True) as idx:
        targets = list(paths) or (idx.status().roots if (settings.index_path / "rag.sqlite").exists() else [])
        if not targets:
            raise click.UsageError("give the folders to watch (the index has none recorded yet)")

        def on_report(report) -> None:
            try:
                _report(report)
            finally:
                sys.stdout.flush()  # one line per change, as it happens, also into a pipe

        def _report(report) -> None:
            for change in report.changes:
                click.echo(json.dumps(asdict(change) | {"event": change.kind}) if as_json else change_line(change))
            for failure in report.failures:
                click.echo(json.dumps(asdict(failure) | {"event": "failed"}) if as_json
                           else f"failed {failure.path}: {failure.reason}")
            if as_json:  # one line per run too: tools count batches by it
                click.echo(json.dumps({"event": "ingest"} | {k: v for k, v in asdict(report).items()
                                                             if k not in ("changes", "failures")}))

        def on_notice(message: str) -> None:
            if as_json:
                click.echo(json.dumps({"event": "notice", "message": message}))
                sys.stdout.flush()
            else:
                err(message)

        watcher = Watcher(idx, targets, poll=poll, on_report=on_report, on_notice=on_notice)
        stop = threading.Event()

        def stop_watching(signum, frame) -> None:
            stop.set()
            if watcher.ingesting:  # a long run stops now: what it committed stays
                raise KeyboardInterrupt

        signal.signal(signal.SIGTERM, stop_watching)
        signal.signal(signal.SIGINT, stop_watching)
        on_notice(f"watching {', '.join(str(t) for t in targets)}" + (" (polling)" if poll else "")
                  + ": Ctrl-C stops")
        try:
            stats = watcher.run(stop)
        except KeyboardInterrupt:
            stats = watcher.stats
        on_notice(f"stopped after {stats.runs} ingest(s)")


@main.command()
@click.argument("question")
@retrieval_options
@llm_option
@filter_options
@click.option("--no-llm", is_flag=True, help="Answer from the passages alone; never contact a server.")
@json_option("the answer, its sources and citations")
@click.option("--plain", is_flag=True, help="Print the answer as raw text, not rendered Markdown.")
@strict_option
@search_index_options
@embed_option
@rerank_option
def ask(question, top_k, mode, min_score, paths, types, modified_since, modified_before, pages, llm_model, no_llm,
        as_json, plain, strict, indexes, index_dir, embed_model, rerank_model):
    """Answer QUESTION from the index, citing the passages used."""
    if not question.strip():
        raise click.BadParameter("the question is empty", param_hint="QUESTION")
    filters = filters_from(paths, types, modified_since, modified_before, pages)
    settings = settings_from(index=indexes[0] if indexes else None, index_dir=index_dir, embed_model=embed_model,
                             top_k=top_k, min_score=min_score, llm_model=llm_model, rerank_model=rerank_model,
                             strict=strict)
    from contextlib import ExitStack

    from rag.index import limit_threads
    from rag.answer.sources import sources_block
    from rag.terminal.render import err, show_answer

    with ExitStack() as opened:
        idx, *others = [opened.enter_context(i) for i in open_indexes(settings, indexes)]
        limit_threads(settings.query_threads)
        llm = None if no_llm else idx.llm()
        stream = idx.answer(question, llm=llm, mode=mode, filters=filters, also=others)
        if stream.retrieval.no_match:
            no_match_exit(stream.retrieval, as_json, stream.result() if as_json else None)
        try:
            if as_json:
                for _ in stream:
                    pass
            else:  # made safe; Markdown on a terminal; extractive markup shown as text
                show_answer(stream, streamed=stream.mode == "llm", plain=plain)
        except KeyboardInterrupt:
            stream.stop()
        answer = stream.result()
    if as_json:
        print_json(answer)
    else:
        click.echo("")
        if answer.sources:
            click.echo("\n" + sources_block(answer.sources, answer.citations, quotes=answer.mode == "llm"))
    if answer.stopped:
        err("[stopped]")
        sys.exit(130)
    if answer.mode == "extractive" and not no_llm:
        err("hint: no LLM configured, so these are the best passages; set OPENAI_API_KEY, or OPENAI_BASE_URL "
            "for a local server (Ollama, llama.cpp), to get written answers")
    retrieval = stream.retrieval
    if retrieval.below_cutoff:
        err(f"hint: {retrieval.cutoff_reason}")


@main.command()
@retrieval_options
@llm_option
@filter_options
@click.option("--no-llm", is_flag=True, help="Extractive answers only; never contact a server.")
@strict_option
@search_index_options
@embed_option
@rerank_option
def chat(top_k, mode, min_score, paths, types, modified_since, modified_before, pages, llm_model, no_llm, strict,
         indexes, index_dir, embed_model, rerank_model):
    """An interactive conversation over the index (/help for commands; /path and /index change the scope)."""
    filters = filters_from(paths, types, modified_since, modified_before, pages)
    settings = settings_from(index=indexes[0] if indexes else None, index_dir=index_dir, embed_model=embed_model,
                             top_k=top_k, min_score=min_score, llm_model=llm_model, rerank_model=rerank_model,
                             strict=strict)
    settings = for_many_questions(settings)
    from contextlib import ExitStack

    from rag.terminal.chat import run_chat
    from rag.index import limit_threads

    with ExitStack() as opened:
        idx, *others = [opened.enter_context(i) for i in open_indexes(settings, indexes)]
        limit_threads(settings.query_threads)
        run_chat(idx, mode=mode, use_llm=not no_llm, filters=filters, also=others)


@main.command()
@click.argument("query")
@retrieval_options
@filter_options
@json_option("the passages, their scores and the filters")
@click.option("--plain", is_flag=True, help="Print passages as raw text, markup kept.")
@search_index_options
@embed_option
@rerank_option
def search(query, top_k, mode, min_score, paths, types, modified_since, modified_before, pages, as_json, plain,
           indexes, index_dir, embed_model, rerank_model):
    """Print the passages that best match QUERY, best first, with their scores (no answer)."""
    if not query.strip():
        raise click.BadParameter("the query is empty", param_hint="QUERY")
    filters = filters_from(paths, types, modified_since, modified_before, pages)
    settings = settings_from(index=indexes[0] if indexes else None, index_dir=index_dir, embed_model=embed_model,
                             top_k=top_k, min_score=min_score, rerank_model=rerank_model)
    from contextlib import ExitStack

    from rag.index import limit_threads
    from rag.terminal.render import err, hit_block

    with ExitStack() as opened:
        idx, *others = [opened.enter_context(i) for i in open_indexes(settings, indexes)]
        limit_threads(settings.query_threads)
        retrieval = idx.search(query, mode=mode, filters=filters, also=others)
    if retrieval.no_match:
        no_match_exit(retrieval, as_json, retrieval)
    if as_json:
        print_json(retrieval)
    else:
        click.echo("\n\n".join(hit_block(n, hit, plain=plain) for n, hit in enumerate(retrieval.hits, start=1)))
    if retrieval.below_cutoff:
        err(f"hint: {retrieval.cutoff_reason}")


@main.command()
@json_option("what the index holds")
@click.option("--check", is_flag=True,
              help="Also verify the index: SQLite's integrity check, the keyword index and the vector file "
                   "(rebuilt from rag.sqlite if wrong); exits 1 and says what to do when something is damaged.")
@index_options
def status(as_json, check, index, index_dir):
    """Show what the index holds: documents, chunks, model, size."""
    from rag.errors import IndexDamaged
    from rag.index import Index
    from rag.terminal.render import check_lines, err, status_table

    with Index.open(settings_from(index=index, index_dir=index_dir)) as idx:
        try:
            info = idx.status()
        except IndexDamaged:
            if not check:
                raise
            info = None  # the check says what is damaged, and what to do
        report = idx.check() if check else None
    if as_json:
        print_json(info if report is None else {"status": info and asdict(info), "check": asdict(report)})
    else:
        if info is not None:
            click.echo(status_table(info))
        if report is not None:
            click.echo(check_lines(report))
    if info is not None and not as_json:
        if info.outdated_documents:
            err(f"hint: {info.outdated_documents} document(s) were read by an older version of rag; ingesting "
                f"their folders again reads them the new way")
        if info.partial_documents:
            err(f"hint: {info.partial_documents} document(s) were committed only in part by an ingest that "
                f"stopped; ingesting them again carries on where it stopped")
    if report is not None and not report.ok:
        raise click.ClickException(safe(report.advice))


@main.command(name="ls")
@json_option("the list")
@index_options
def list_documents(as_json, index, index_dir):
    """List the indexed documents."""
    from rag.index import Index
    from rag.terminal.render import document_line

    with Index.open(settings_from(index=index, index_dir=index_dir)) as idx:
        docs = idx.documents()
    if as_json:
        print_json([asdict(d) for d in docs])
        return
    for doc in docs:
        click.echo(document_line(doc))


@main.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@json_option("what was removed")
@index_options
def rm(paths, as_json, index, index_dir):
    """Remove documents (or every document under a folder) from the index."""
    from rag.index import Index
    from rag.terminal.render import err, removal_lines

    with Index.open(settings_from(index=index, index_dir=index_dir)) as idx:
        removal = idx.remove(paths)
    if as_json:
        print_json(removal)
    else:
        for line in removal_lines(removal):
            err(line)
    if removal.unknown:
        raise PartialFailure("not in the index: " + ", ".join(removal.unknown) + " (see `rag ls`)")


@main.command(name="eval")
@click.argument("questions", required=False, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--beir", "beir_dir", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="A BEIR folder (corpus, queries.jsonl, qrels/): report nDCG@10, recall@100, MRR@10.")
@click.option("--split", default="test", show_default=True, help="With --beir: the qrels split to score.")
@ranking_options
@json_option("the report")
@index_options
@embed_option
@rerank_option
def evaluate(questions, beir_dir, split, top_k, mode, as_json, index, index_dir, embed_model, rerank_model):
    """Measure retrieval: hit@k, MRR@k, recall@k on QUESTIONS.jsonl, or BEIR metrics with --beir.

    \b
    For --beir, ingest the corpus first, one file per document named by its id:
      python bench/beir_corpus.py DIR docs-folder && rag ingest docs-folder --index NAME
    """
    if (questions is None) == (beir_dir is None):
        raise click.UsageError("give either QUESTIONS.jsonl or --beir DIR")
    from rag.index import Index, limit_threads

    settings = settings_from(index=index, index_dir=index_dir, embed_model=embed_model, top_k=top_k,
                             rerank_model=rerank_model)
    with Index.open(settings) as idx:
        limit_threads(settings.query_threads)
        if beir_dir is not None:
            from rag.evaluation.beir import format_beir, run_beir

            report = run_beir(ranking(idx), beir_dir, split, mode)
            text = format_beir(report)
        else:
            from rag.evaluation.metrics import format_report, load_questions, run_eval

            report = run_eval(ranking(idx), load_questions(questions), settings.top_k, mode)
            text = format_report(report)
    if as_json:
        print_json(report)
    else:
        click.echo(text)


def ranking(idx):
    """Index.search with the cut-off off: evaluation measures the ranking (bench/cutoff.py the cut-off)."""
    return lambda question, top_k, mode: idx.search(question, top_k=top_k, mode=mode, cutoff=False)


@main.command()
@search_index_options
@embed_option
@rerank_option
@click.option("--watch", is_flag=True, help="Keep the index fresh with the folders it was built from (see `rag watch`).")
@click.option("--poll", is_flag=True, help="With --watch: poll instead of file-system events (network mounts).")
def mcp(indexes, index_dir, embed_model, rerank_model, watch, poll):
    """Serve the index to AI agents over MCP (stdio): search, ask, list_documents, index_status.

    Several --index are searched together by `search` and `ask` (their `indexes` argument picks some).
    """
    require("mcp", "rag mcp", "mcp")
    from contextlib import ExitStack

    from rag.index import limit_threads
    from rag.servers.mcp import run_mcp

    settings = for_many_questions(settings_from(index=indexes[0] if indexes else None, index_dir=index_dir,
                                                embed_model=embed_model, rerank_model=rerank_model))
    with ExitStack() as opened:  # a missing index is an error now, before the client connects
        idx, *others = [opened.enter_context(i) for i in open_indexes(settings, indexes)]
        limit_threads(settings.query_threads)
        run_mcp(idx, others, watch=watch, poll=poll)


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind (anything but loopback needs --api-key).")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True, help="Port to listen on.")
@click.option("--api-key", envvar="RAG_API_KEY", show_envvar=True, metavar="KEY",
              help="Require `Authorization: Bearer KEY` on every request.")
@index_options
@embed_option
@rerank_option
@click.option("--watch", is_flag=True, help="Keep every index fresh with the folders it was built from (see `rag watch`).")
@click.option("--poll", is_flag=True, help="With --watch: poll instead of file-system events (network mounts).")
def serve(host, port, api_key, index, index_dir, embed_model, rerank_model, watch, poll):
    """Serve an OpenAI-compatible API (/v1/chat/completions, /v1/search) and a web chat at /.

    `model` in a request names the index (a folder under --index-dir); --index answers requests naming none.
    """
    require("serve", "rag serve", "starlette", "uvicorn")
    from rag.index import limit_threads
    from rag.servers.http import serve as run_server

    settings = for_many_questions(settings_from(index=index, index_dir=index_dir, embed_model=embed_model,
                                                rerank_model=rerank_model))
    limit_threads(settings.query_threads)
    run_server(settings, host=host, port=port, api_key=api_key or None, watch=watch, poll=poll)


@main.command(name="map")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default="map.html", show_default=True, help="The HTML page to write.")
@click.option("--color", type=click.Choice(COLORS), default=DEFAULT_COLOR, show_default=True, help="What the colours show.")
@click.option("--query", metavar="QUESTION", help="Place a question on the map and ring its top-k hits.")
@click.option("-k", "--top-k", type=click.IntRange(1, MAX_TOP_K), help=setting_help("Hits to ring for --query.", "top_k"))
@click.option("--sample", type=click.IntRange(min=1), default=DEFAULT_SAMPLE, show_default=True,
              help="Most chunks to show (stratified by document).")
@click.option("--png", type=click.Path(dir_okay=False, path_type=Path), help="Also write a static PNG image.")
@click.option("--projection", type=click.Choice(PROJECTIONS), default=DEFAULT_PROJECTION, show_default=True,
              help="2-D projection: t-SNE keeps neighbourhoods, PCA is instant.")
@index_options
@embed_option
def map_command(out, color, query, top_k, sample, png, projection, index, index_dir, embed_model):
    """Write a map of the index's embeddings (one HTML file; --query shows where a question lands)."""
    if query is not None and not query.strip():
        raise click.BadParameter("the question is empty", param_hint="--query")
    settings = settings_from(index=index, index_dir=index_dir, embed_model=embed_model, top_k=top_k)
    from rag.index import Index, limit_threads
    from rag.map.build import MapOptions
    from rag.answer.sources import display_path
    from rag.terminal.render import err

    with Index.open(settings) as idx:
        if query is not None:
            limit_threads(settings.query_threads)
        report = idx.map(MapOptions(out=out, color=color, query=query, top_k=settings.top_k, sample=sample, png=png,
                                    projection=projection))
    err(f"{report.chunks_shown:,} of {report.chunks_total:,} chunks from {report.documents:,} documents, "
        f"{report.projection} ({report.neighbourhood:.0%} of 10 nearest neighbours kept), "
        f"{report.near_duplicates:,} near-duplicate pairs; {report.seconds:.1f} s")
    click.echo(display_path(str(report.out)))
    if report.png:
        click.echo(display_path(str(report.png)))

