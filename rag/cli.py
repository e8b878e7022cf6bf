"""The `rag` command: parse options, call `rag.Index`, print `render.*` or `asdict()` as JSON.

Heavy libraries (torch, sentence-transformers, faiss, openai) are imported inside the commands
that need them, so `rag --help` and `rag status` start instantly. RagError becomes one line on
stderr and exit 1; usage errors exit 2; Ctrl-C prints "[stopped]" and exits 130.
"""

from __future__ import annotations

import functools
import json
import sys
from dataclasses import asdict, is_dataclass
from pathlib import Path

import click

from rag.config import MAX_TOP_K, MODES, load_settings
from rag.errors import RagError


class RagGroup(click.Group):
    """The one error boundary: domain errors become `Error: message`, never a traceback."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except RagError as exc:
            if ctx.params.get("debug"):
                raise
            raise click.ClickException(str(exc)) from exc
        except OSError as exc:  # a folder we may not write, a full disk: name it, no traceback
            if ctx.params.get("debug"):
                raise
            where = f" {exc.filename}" if exc.filename else ""
            raise click.ClickException(f"cannot access{where}: {exc.strerror or exc}") from exc
        except KeyboardInterrupt:
            click.echo("", err=True)
            click.echo("[stopped]", err=True)
            ctx.exit(130)


def index_options(func):
    @click.option("--index", "index", metavar="NAME", help="Index name (folder under --index-dir). [default: default]")
    @click.option("--index-dir", type=click.Path(file_okay=False, path_type=Path), help="Where indexes live. [default: ./indexes]")
    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        return func(*args, **kwargs)

    return wrapper


def embed_option(func):
    return click.option("--embed-model", metavar="NAME|PATH", help="Embedding model. [default: all-MiniLM-L6-v2, bundled]")(func)


def retrieval_options(func, cutoff: bool = True):
    func = click.option("-k", "--top-k", type=click.IntRange(1, MAX_TOP_K),
                        help=f"Passages to retrieve (at most {MAX_TOP_K}). [default: 5, RAG_TOP_K]")(func)
    func = click.option("--mode", type=click.Choice(MODES), default="hybrid", show_default=True, help="Retrieval method.")(func)
    if cutoff:
        func = click.option("--min-score", type=click.FloatRange(-1, 1),
                            help="Relevance cut-off (cosine). [default: 0.2, RAG_MIN_SCORE]")(func)
    return func


def ranking_options(func):
    """-k and --mode without the cut-off: evaluation measures ranking, not the cut-off."""
    return retrieval_options(func, cutoff=False)


def settings_from(**flags):
    return load_settings({k: v for k, v in flags.items() if v is not None})


def print_json(value) -> None:
    click.echo(json.dumps(asdict(value) if is_dataclass(value) else value, ensure_ascii=False))


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


@main.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@index_options
@embed_option
@click.option("--chunk-tokens", type=click.IntRange(min=32), help="Chunk size in model tokens. [default: 200]")
@click.option("--overlap-tokens", type=click.IntRange(min=0), help="Tokens shared by neighbouring chunks. [default: 30]")
@click.option("--prune/--no-prune", default=True, show_default=True, help="Forget files that vanished from a folder given again.")
@click.option("--rebuild", is_flag=True, help="Re-chunk and re-embed every file given (needed to change chunk sizes).")
@click.option("--json", "as_json", is_flag=True, help="Print the report (every failure with its reason) as JSON.")
@click.option("--ray", "ray_address", metavar="ADDRESS",
              help="Load, chunk and embed on a Ray cluster: HOST:PORT, auto (this machine's) or local "
                   "(a throwaway one); needs rag[ray]. [RAG_RAY_ADDRESS]")
def ingest(paths, index, index_dir, embed_model, chunk_tokens, overlap_tokens, prune, rebuild, as_json, ray_address):
    """Index files and folders (txt, md, rst, html, pdf), incrementally."""
    from ingest.loaders import loader_for
    from rag.index import Index
    from rag.render import TerminalProgress, err, ingest_summary

    for path in paths:
        if not path.exists() and not path.is_symlink():
            raise click.BadParameter(f"{path} does not exist", param_hint="PATHS")
        if path.is_file() and loader_for(path) is None:
            raise click.BadParameter(
                f"{path}: unsupported file type {path.suffix or '(none)'} (see `rag ingest --help`)",
                param_hint="PATHS",
            )
    if chunk_tokens is not None and overlap_tokens is not None and overlap_tokens >= chunk_tokens:
        raise click.BadParameter("must be smaller than --chunk-tokens", param_hint="--overlap-tokens")
    if ray_address is not None and not ray_address.strip():
        raise click.BadParameter("is empty: give HOST:PORT, auto or local", param_hint="--ray")
    settings = settings_from(index=index, index_dir=index_dir, embed_model=embed_model, ray_address=ray_address)
    with Index.open(settings, create=True) as idx:
        report = idx.ingest(paths, chunk_tokens=chunk_tokens, overlap_tokens=overlap_tokens, prune=prune,
                            rebuild=rebuild, progress=TerminalProgress())
    if as_json:
        print_json(report)
    err(ingest_summary(report))
    if not report.ok:
        sys.exit(1)


@main.command()
@click.argument("question")
@retrieval_options
@click.option("--model", "llm_model", metavar="NAME", help="LLM model name. [default: gpt-4o-mini, RAG_LLM_MODEL]")
@click.option("--no-llm", is_flag=True, help="Answer from the passages alone; never contact a server.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of text.")
@index_options
@embed_option
def ask(question, top_k, mode, min_score, llm_model, no_llm, as_json, index, index_dir, embed_model):
    """Answer QUESTION from the index, citing the passages used."""
    if not question.strip():
        raise click.BadParameter("the question is empty", param_hint="QUESTION")
    settings = settings_from(index=index, index_dir=index_dir, embed_model=embed_model, top_k=top_k,
                             min_score=min_score, llm_model=llm_model)
    from rag.index import Index, limit_threads
    from rag.render import err, sources_block

    with Index.open(settings) as idx:
        limit_threads(settings.query_threads)
        llm = None if no_llm else idx.llm()
        stream = idx.answer(question, llm=llm, mode=mode)
        try:
            for piece in stream:
                if not as_json:
                    click.echo(piece, nl=False)
        except KeyboardInterrupt:
            stream.stop()
        answer = stream.result()
    if as_json:
        print_json(answer)
    else:
        click.echo("")
        if answer.sources:
            click.echo("\n" + sources_block(answer.sources))
    if answer.stopped:
        err("[stopped]")
        sys.exit(130)
    if answer.mode == "extractive" and not no_llm:
        err("hint: no LLM configured, so these are the best passages; set OPENAI_API_KEY, or OPENAI_BASE_URL "
            "for a local server (Ollama, llama.cpp), to get written answers")
    retrieval = stream.retrieval
    if retrieval.below_cutoff:
        err(f"hint: the best passage scored {retrieval.best_similarity:.2f}, under the cut-off "
            f"{retrieval.min_score:.2f} (--min-score)")


@main.command()
@retrieval_options
@click.option("--model", "llm_model", metavar="NAME", help="LLM model name. [default: gpt-4o-mini, RAG_LLM_MODEL]")
@click.option("--no-llm", is_flag=True, help="Extractive answers only; never contact a server.")
@index_options
@embed_option
def chat(top_k, mode, min_score, llm_model, no_llm, index, index_dir, embed_model):
    """An interactive conversation over the index (/help for commands)."""
    settings = settings_from(index=index, index_dir=index_dir, embed_model=embed_model, top_k=top_k,
                             min_score=min_score, llm_model=llm_model)
    from rag.chat import run_chat
    from rag.index import Index, limit_threads

    with Index.open(settings) as idx:
        limit_threads(settings.query_threads)
        run_chat(idx, mode=mode, use_llm=not no_llm)


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@index_options
def status(as_json, index, index_dir):
    """Show what the index holds: documents, chunks, model, size."""
    from rag.index import Index
    from rag.render import err, status_table

    with Index.open(settings_from(index=index, index_dir=index_dir)) as idx:
        info = idx.status()
    if as_json:
        print_json(info)
        return
    click.echo(status_table(info))
    if info.outdated_documents:
        err(f"hint: {info.outdated_documents} document(s) were read by an older version of rag; ingesting their "
            f"folders again reads them the new way")


@main.command(name="ls")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list.")
@index_options
def list_documents(as_json, index, index_dir):
    """List the indexed documents."""
    from rag.index import Index
    from rag.render import document_line

    with Index.open(settings_from(index=index, index_dir=index_dir)) as idx:
        docs = idx.documents()
    if as_json:
        click.echo(json.dumps([asdict(d) for d in docs], ensure_ascii=False))
        return
    for doc in docs:
        click.echo(document_line(doc))


@main.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print what was removed as JSON.")
@index_options
def rm(paths, as_json, index, index_dir):
    """Remove documents (or every document under a folder) from the index."""
    from rag.index import Index
    from rag.render import err, removal_lines

    with Index.open(settings_from(index=index, index_dir=index_dir)) as idx:
        removal = idx.remove(paths)
    if as_json:
        print_json(removal)
    else:
        for line in removal_lines(removal):
            err(line)
    if removal.unknown:
        raise click.ClickException("not in the index: " + ", ".join(removal.unknown) + " (see `rag ls`)")


@main.command(name="eval")
@click.argument("questions", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@ranking_options
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@index_options
@embed_option
def evaluate(questions, top_k, mode, as_json, index, index_dir, embed_model):
    """Measure retrieval on QUESTIONS.jsonl: hit@k, MRR@k, recall@k, latency (no cut-off)."""
    from rag.evaluate import format_report, load_questions, run_eval
    from rag.index import Index, limit_threads

    settings = settings_from(index=index, index_dir=index_dir, embed_model=embed_model, top_k=top_k)
    items = load_questions(questions)
    with Index.open(settings) as idx:
        limit_threads(settings.query_threads)
        report = run_eval(idx.retriever(), items, settings.top_k, mode)
    if as_json:
        print_json(report)
    else:
        click.echo(format_report(report))


if __name__ == "__main__":
    main()
