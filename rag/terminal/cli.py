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
from rag.safety import safe
from rag.errors import RagError
from rag.text import readable


class RagGroup(click.Group):
    """The one error boundary: domain errors become `Error: message`, never a traceback."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
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


def index_options(func):
    @click.option("--index", "index", metavar="NAME", help="Index name (folder under --index-dir). [default: default]")
    @click.option("--index-dir", type=click.Path(file_okay=False, path_type=Path), help="Where indexes live. [default: ./indexes]")
    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        return func(*args, **kwargs)

    return wrapper


def embed_option(func):
    return click.option("--embed-model", metavar="NAME|PATH", help="Embedding model. [default: all-MiniLM-L6-v2, bundled]")(func)


def rerank_option(func):
    return click.option("--rerank-model", metavar="PATH",
                        help="A local sentence-transformers CrossEncoder folder that re-scores the top 50 passages. "
                             "[RAG_RERANK_MODEL]")(func)


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


@main.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@index_options
@embed_option
@click.option("--chunk-tokens", type=click.IntRange(min=32), help="Chunk size in model tokens. [default: 200]")
@click.option("--overlap-tokens", type=click.IntRange(min=0), help="Tokens shared by neighbouring chunks. [default: 30]")
@click.option("--prune/--no-prune", default=True, show_default=True, help="Forget files that vanished from a folder given again.")
@click.option("--rebuild", is_flag=True, help="Re-chunk and re-embed every file given (needed to change chunk sizes).")
@click.option("--embed-backend", metavar="RUNTIME",
              help="Embedding runtime for a new index: auto, torch, onnx-fp32, onnx-int8, openvino-fp32, "
                   "openvino-int8. [default: auto, RAG_EMBED_BACKEND]")
@click.option("--json", "as_json", is_flag=True, help="Print the report (every failure with its reason) as JSON.")
@click.option("--ray", "ray_address", metavar="ADDRESS",
              help="Load, chunk and embed on a Ray cluster: HOST:PORT, auto (this machine's) or local "
                   "(a throwaway one); needs rag[ray]. [RAG_RAY_ADDRESS]")
def ingest(paths, index, index_dir, embed_model, chunk_tokens, overlap_tokens, prune, rebuild, embed_backend, as_json,
           ray_address):
    """Index files and folders, incrementally.

    \b
    Formats: txt md rst html pdf docx odt pptx epub ipynb csv tsv eml mbox.
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
        sys.exit(1)


@main.command()
@click.argument("question")
@retrieval_options
@click.option("--model", "llm_model", metavar="NAME", help="LLM model name. [default: gpt-4o-mini, RAG_LLM_MODEL]")
@click.option("--no-llm", is_flag=True, help="Answer from the passages alone; never contact a server.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of text.")
@click.option("--plain", is_flag=True, help="Print the answer as raw text, not rendered Markdown.")
@strict_option
@index_options
@embed_option
@rerank_option
def ask(question, top_k, mode, min_score, llm_model, no_llm, as_json, plain, strict, index, index_dir, embed_model,
        rerank_model):
    """Answer QUESTION from the index, citing the passages used."""
    if not question.strip():
        raise click.BadParameter("the question is empty", param_hint="QUESTION")
    settings = settings_from(index=index, index_dir=index_dir, embed_model=embed_model, top_k=top_k,
                             min_score=min_score, llm_model=llm_model, rerank_model=rerank_model, strict=strict)
    from rag.index import Index, limit_threads
    from rag.answer.sources import sources_block
    from rag.terminal.render import err, show_answer

    with Index.open(settings) as idx:
        limit_threads(settings.query_threads)
        llm = None if no_llm else idx.llm()
        stream = idx.answer(question, llm=llm, mode=mode)
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
@click.option("--model", "llm_model", metavar="NAME", help="LLM model name. [default: gpt-4o-mini, RAG_LLM_MODEL]")
@click.option("--no-llm", is_flag=True, help="Extractive answers only; never contact a server.")
@strict_option
@index_options
@embed_option
@rerank_option
def chat(top_k, mode, min_score, llm_model, no_llm, strict, index, index_dir, embed_model, rerank_model):
    """An interactive conversation over the index (/help for commands)."""
    settings = settings_from(index=index, index_dir=index_dir, embed_model=embed_model, top_k=top_k,
                             min_score=min_score, llm_model=llm_model, rerank_model=rerank_model, strict=strict)
    from rag.terminal.chat import run_chat
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
    from rag.terminal.render import err, status_table

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
    from rag.terminal.render import document_line

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
    from rag.terminal.render import err, removal_lines

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
@click.argument("questions", required=False, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--beir", "beir_dir", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="A BEIR folder (corpus, queries.jsonl, qrels/): report nDCG@10, recall@100, MRR@10.")
@click.option("--split", default="test", show_default=True, help="With --beir: the qrels split to score.")
@ranking_options
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
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
@index_options
@embed_option
@rerank_option
def mcp(index, index_dir, embed_model, rerank_model):
    """Serve the index to AI agents over MCP (stdio): search, ask, list_documents, index_status."""
    from rag.index import Index, limit_threads
    from rag.servers.mcp import run_mcp

    settings = settings_from(index=index, index_dir=index_dir, embed_model=embed_model, rerank_model=rerank_model)
    with Index.open(settings) as idx:  # a missing index is an error now, before the client connects
        limit_threads(settings.query_threads)
        run_mcp(idx)


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind (anything but loopback needs --api-key).")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True, help="Port to listen on.")
@click.option("--api-key", envvar="RAG_API_KEY", show_envvar=True, metavar="KEY",
              help="Require `Authorization: Bearer KEY` on every request.")
@index_options
@embed_option
@rerank_option
def serve(host, port, api_key, index, index_dir, embed_model, rerank_model):
    """Serve an OpenAI-compatible API (/v1/chat/completions, /v1/search) and a web chat at /.

    `model` in a request names the index (a folder under --index-dir); --index answers requests naming none.
    """
    from rag.index import limit_threads
    from rag.servers.http import serve as run_server

    settings = settings_from(index=index, index_dir=index_dir, embed_model=embed_model, rerank_model=rerank_model)
    limit_threads(settings.query_threads)
    run_server(settings, host=host, port=port, api_key=api_key or None)


@main.command(name="map")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default="map.html", show_default=True, help="The HTML page to write.")
@click.option("--color", type=click.Choice(["document", "folder", "cluster"]), default="document", show_default=True, help="What the colours show.")
@click.option("--query", metavar="QUESTION", help="Place a question on the map and ring its top-k hits.")
@click.option("-k", "--top-k", type=click.IntRange(min=1), help="Hits to ring for --query. [default: 5, RAG_TOP_K]")
@click.option("--sample", type=click.IntRange(min=1), default=20000, show_default=True, help="Most chunks to show (stratified by document).")
@click.option("--png", type=click.Path(dir_okay=False, path_type=Path), help="Also write a static PNG image.")
@click.option("--projection", type=click.Choice(["tsne", "pca"]), help="2-D projection: t-SNE keeps neighbourhoods, PCA is instant. [default: tsne]")
@index_options
@embed_option
def map_command(out, color, query, top_k, sample, png, projection, index, index_dir, embed_model):
    """Write a map of the index's embeddings (one HTML file; --query shows where a question lands)."""
    if query is not None and not query.strip():
        raise click.BadParameter("the question is empty", param_hint="--query")
    settings = settings_from(index=index, index_dir=index_dir, embed_model=embed_model, top_k=top_k)
    from rag.index import Index, limit_threads
    from rag.map.build import MapOptions
    from rag.map.projection import DEFAULT_PROJECTION
    from rag.answer.sources import display_path
    from rag.terminal.render import err

    with Index.open(settings) as idx:
        if query is not None:
            limit_threads(settings.query_threads)
        report = idx.map(MapOptions(out=out, color=color, query=query, top_k=settings.top_k, sample=sample, png=png,
                                    projection=projection or DEFAULT_PROJECTION))
    err(f"{report.chunks_shown:,} of {report.chunks_total:,} chunks from {report.documents:,} documents, "
        f"{report.projection} ({report.neighbourhood:.0%} of 10 nearest neighbours kept), "
        f"{report.near_duplicates:,} near-duplicate pairs; {report.seconds:.1f} s")
    click.echo(display_path(str(report.out)))
    if report.png:
        click.echo(display_path(str(report.png)))


if __name__ == "__main__":
    main()
