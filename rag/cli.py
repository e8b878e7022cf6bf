"""The `rag` command: parse options, call one function of the library, print the result.

Heavy libraries (torch, sentence-transformers, faiss, openai) are imported inside the commands
that need them, so `rag --help` and `rag status` start instantly. RagError becomes one line on
stderr and exit 1; usage errors exit 2.
"""

from __future__ import annotations

import functools
import json
import sys
import time
from dataclasses import asdict
from pathlib import Path

import click

from rag.config import MODES, load_settings
from rag.errors import RagError


class RagGroup(click.Group):
    """The one error boundary: domain errors become `Error: message`, never a traceback."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except RagError as exc:
            if ctx.params.get("debug"):
                raise
            raise click.ClickException(str(exc)) from None


def index_options(func):
    @click.option("--index", "index", metavar="NAME", help="Index name (folder under --index-dir). [default: default]")
    @click.option("--index-dir", type=click.Path(file_okay=False, path_type=Path), help="Where indexes live. [default: ./indexes]")
    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        return func(*args, **kwargs)

    return wrapper


def embed_option(func):
    return click.option("--embed-model", metavar="NAME|PATH", help="Embedding model. [default: all-MiniLM-L6-v2, bundled]")(func)


def retrieval_options(func):
    func = click.option("-k", "--top-k", type=click.IntRange(min=1), help="Passages to retrieve. [default: 5, RAG_TOP_K]")(func)
    func = click.option("--mode", type=click.Choice(MODES), default="hybrid", show_default=True, help="Retrieval method.")(func)
    func = click.option("--min-score", type=click.FloatRange(-1, 1), help="Relevance cut-off (cosine). [default: 0.2, RAG_MIN_SCORE]")(func)
    return func


def settings_from(**flags):
    return load_settings({k: v for k, v in flags.items() if v is not None})


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
def ingest(paths, index, index_dir, embed_model, chunk_tokens, overlap_tokens, prune, rebuild):
    """Index files and folders (txt, md, rst, html, pdf), incrementally."""
    from ingest.chunk import ChunkSettings
    from ingest.loaders import loader_for
    from rag.render import TerminalProgress, display_path, err

    for path in paths:
        if not path.exists() and not path.is_symlink():
            raise click.BadParameter(f"{path} does not exist", param_hint="PATHS")
        if path.is_file() and loader_for(path) is None:
            raise click.BadParameter(
                f"{path}: unsupported file type {path.suffix or '(none)'} (rag reads .txt .md .rst .html .pdf)",
                param_hint="PATHS",
            )
    if chunk_tokens is not None and overlap_tokens is not None and overlap_tokens >= chunk_tokens:
        raise click.BadParameter("must be smaller than --chunk-tokens", param_hint="--overlap-tokens")
    settings = settings_from(index=index, index_dir=index_dir, embed_model=embed_model)

    from ingest.pipeline import run_ingest, stored_chunk_settings
    from rag.embedder import Embedder
    from rag.store import Store

    store = Store.open(settings.index_path, create=True)
    stored = stored_chunk_settings(store) or ChunkSettings()
    chunking = ChunkSettings(
        chunk_tokens=chunk_tokens if chunk_tokens is not None else stored.chunk_tokens,
        overlap_tokens=overlap_tokens if overlap_tokens is not None else stored.overlap_tokens,
    )
    if chunking.overlap_tokens >= chunking.chunk_tokens:
        raise click.BadParameter("must be smaller than --chunk-tokens", param_hint="--overlap-tokens")
    embedder = Embedder(settings.embed_model)
    report = run_ingest(list(paths), store, embedder, chunking, prune=prune, rebuild=rebuild,
                        progress=TerminalProgress())
    err(
        f"{display_path(str(settings.index_path))}: {report.added} added, {report.updated} updated, "
        f"{report.unchanged} unchanged, {report.removed} removed, {report.failed} failed"
        + (f", {report.skipped} skipped (other types)" if report.skipped else "")
        + f"; {report.chunks} chunks embedded in {report.seconds:.1f} s"
    )
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
    from rag.generate import LLM, build_answer, stream_answer
    from rag.render import err, sources_block
    from rag.retrieve import Retriever

    retriever = Retriever.open(settings)
    retrieval = retriever.search(question, settings.top_k, mode, settings.min_score)
    llm = LLM(settings) if settings.llm_configured and not no_llm else None
    started = time.perf_counter()
    pieces: list[str] = []
    try:
        for piece in stream_answer(question, retrieval, llm):
            pieces.append(piece)
            if not as_json:
                click.echo(piece, nl=False)
    except KeyboardInterrupt:
        click.echo("")
        err("[stopped]")
        sys.exit(130)
    answer = build_answer(question, retrieval, "".join(pieces), llm, time.perf_counter() - started)
    if as_json:
        click.echo(json.dumps(asdict(answer), ensure_ascii=False))
    else:
        click.echo("")
        if answer.sources:
            click.echo("\n" + sources_block(answer.sources))
    if answer.mode == "extractive" and not no_llm:
        err("hint: no LLM configured, so these are the best passages; set OPENAI_API_KEY, or OPENAI_BASE_URL "
            "for a local server (Ollama, llama.cpp), to get written answers")
    if retrieval.below_cutoff:
        err(f"hint: the best passage scored {retrieval.best_similarity:.2f}, under the cut-off "
            f"{settings.min_score:.2f} (--min-score)")


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

    run_chat(settings, mode=mode, use_llm=not no_llm)


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@index_options
def status(as_json, index, index_dir):
    """Show what the index holds: documents, chunks, model, size."""
    from ingest.pipeline import PARSER_VERSION
    from rag.render import display_path, human_size
    from rag.store import Store

    settings = settings_from(index=index, index_dir=index_dir)
    store = Store.open(settings.index_path)
    docs = store.documents()
    outdated = sum(d.parser < PARSER_VERSION for d in docs)
    last = store.get_meta("last_ingest")
    info = {
        "index": display_path(str(settings.index_path)),
        "documents": len(docs),
        "chunks": store.chunk_count(),
        "pages": sum(d.pages or 0 for d in docs),
        "model": store.get_meta("embed_model"),
        "dim": int(store.get_meta("dim") or 0) or None,
        "chunk_tokens": int(store.get_meta("chunk_tokens") or 0) or None,
        "overlap_tokens": int(store.get_meta("overlap_tokens") or 0) or None,
        "size_bytes": store.size_on_disk(),
        "last_ingest": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(float(last))) if last else None,
        "outdated_documents": outdated,
    }
    if as_json:
        click.echo(json.dumps(info))
        return
    rows = [
        ("index", info["index"]),
        ("documents", info["documents"]),
        ("chunks", info["chunks"]),
        ("model", f"{info['model']} ({info['dim']} dimensions)"),
        ("chunking", f"{info['chunk_tokens']} tokens, {info['overlap_tokens']} overlap"),
        ("size", human_size(info["size_bytes"])),
        ("last ingest", info["last_ingest"] or "never"),
    ]
    for name, value in rows:
        click.echo(f"{name:<12} {value}")
    if outdated:
        click.echo(
            f"hint: {outdated} document(s) were read by an older version of rag; ingesting their folders "
            f"again reads them the new way",
            err=True,
        )


@main.command(name="ls")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list.")
@index_options
def list_documents(as_json, index, index_dir):
    """List the indexed documents."""
    from rag.render import display_path
    from rag.store import Store

    settings = settings_from(index=index, index_dir=index_dir)
    docs = Store.open(settings.index_path).documents()
    if as_json:
        click.echo(json.dumps([
            {"path": display_path(d.path), "title": d.title, "chunks": d.chunks, "pages": d.pages, "size": d.size}
            for d in docs
        ]))
        return
    for d in docs:
        pages = f"{d.pages} pages, " if d.pages else ""
        click.echo(f"{display_path(d.path)}\t{pages}{d.chunks} chunks\t{d.title}")


@main.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@index_options
def rm(paths, index, index_dir):
    """Remove documents (or every document under a folder) from the index."""
    from rag.maintain import remove_documents
    from rag.render import display_path, err
    from rag.store import Store

    settings = settings_from(index=index, index_dir=index_dir)
    store = Store.open(settings.index_path)
    removed, unknown = remove_documents(store, list(paths))
    for path in removed:
        err(f"removed {display_path(path)}")
    if unknown:
        raise click.ClickException(
            "not in the index: " + ", ".join(str(p) for p in unknown) + " (see `rag ls`)"
        )


@main.command(name="eval")
@click.argument("questions", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@retrieval_options
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@index_options
@embed_option
def evaluate(questions, top_k, mode, min_score, as_json, index, index_dir, embed_model):
    """Measure retrieval on QUESTIONS.jsonl: hit@k, MRR@k, recall@k, latency."""
    from rag.evaluate import format_report, load_questions, run_eval
    from rag.retrieve import Retriever

    settings = settings_from(index=index, index_dir=index_dir, embed_model=embed_model, top_k=top_k)
    items = load_questions(questions)
    report = run_eval(Retriever.open(settings), items, settings.top_k, mode)
    if as_json:
        click.echo(json.dumps(asdict(report)))
    else:
        click.echo(format_report(report))


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
    from rag.map import MapOptions, build_map
    from rag.projection import DEFAULT_PROJECTION
    from rag.render import display_path, err
    from rag.store import Store

    store = Store.open(settings.index_path)
    embedder = None
    if query is not None:
        from rag.embedder import Embedder

        embedder = Embedder(settings.embed_model, threads=1)  # one question: see Retriever.open
    report = build_map(store, embedder, MapOptions(out=out, color=color, query=query, top_k=settings.top_k,
                                                   sample=sample, png=png, projection=projection or DEFAULT_PROJECTION))
    err(f"{report.chunks_shown:,} of {report.chunks_total:,} chunks from {report.documents:,} documents, "
        f"{report.projection} ({report.neighbourhood:.0%} of 10 nearest neighbours kept), "
        f"{report.near_duplicates:,} near-duplicate pairs; {report.seconds:.1f} s")
    click.echo(display_path(str(report.out)))
    if report.png:
        click.echo(display_path(str(report.png)))


if __name__ == "__main__":
    main()
