"""Compare HTML readers on a labelled set: ours (ingest.formats.html), trafilatura, selectolax.

usage: python bench/html_readers.py CORPUS_DIR QUESTIONS.jsonl WORK_DIR [--readers ours,trafilatura,selectolax]
       [--parse-only]

For each reader: the time to turn every .html file of the corpus into sections (parse only, the
best of --repeat runs), then an index built with that reader in WORK_DIR/<reader> and hit@5 /
MRR@5 per retrieval mode through `rag.evaluation.metrics.run_eval`, the same measure as bench/quality.py.
The readers differ only in how a page becomes (title, sections); chunking, the model and the
retrieval are the project's. trafilatura and selectolax are bench-only dependencies.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

from ingest.formats.html import (  # noqa: E402
    BLOCK_TAGS, CHROME_ROLES, CHROME_WORDS, HEADING_TAGS, SKIP_TAGS, html_sections,
)
from ingest.formats.text import decode_text, require_text, sections_from_headings  # noqa: E402
from rag.types import Section  # noqa: E402

TITLE = re.compile(r"<title[^>]*>(.*?)</title>", re.S | re.I)


def read_ours(markup: str) -> tuple[str, list[Section]]:
    return html_sections(markup)


def read_trafilatura(markup: str) -> tuple[str, list[Section]]:
    import trafilatura

    from ingest.formats.markdown import markdown_sections

    text = trafilatura.extract(markup, output_format="markdown", include_tables=True, include_formatting=True,
                               include_comments=False) or ""
    heading_title, sections = markdown_sections(text)
    title = " ".join(m.group(1).split()) if (m := TITLE.search(markup)) else (heading_title or "")
    return title, sections


def read_selectolax(markup: str) -> tuple[str, list[Section]]:
    """Lexbor's parser with our rules: invisible elements and chrome removed, blocks and headings kept."""
    from selectolax.lexbor import LexborHTMLParser

    tree = LexborHTMLParser(markup)
    title_node = tree.css_first("title")
    title = " ".join(title_node.text().split()) if title_node else ""
    tree.strip_tags(sorted(SKIP_TAGS))
    body = tree.body or tree.root
    chrome = ["nav"] + [f'[role="{r}" i]' for r in sorted(CHROME_ROLES)] + [f'[class~="{w}" i]' for w in sorted(CHROME_WORDS)]
    for node in body.css(", ".join(chrome)):
        if node.tag not in HEADING_TAGS and node.parent is not None:
            node.decompose()
    for tag, level in HEADING_TAGS.items():
        for node in body.css(tag):
            node.insert_before(f"\n\n\x01{level}\x02")
            node.insert_after("\x03\n\n")
    for node in body.css(", ".join(sorted(BLOCK_TAGS))):
        node.insert_before("\n\n")
        node.insert_after("\n\n")
    raw = body.text(deep=True)
    raw = re.sub(r"[ \t\r\f\v]+", " ", raw)
    raw = re.sub(r" *\n[ \n]*\n *", "\n\n", raw)
    parts, headings, length = [], [], 0
    for piece in re.split(r"(\x01\d\x02.*?\x03)", raw, flags=re.S):
        if m := re.fullmatch(r"\x01(\d)\x02(.*?)\x03", piece, re.S):
            start = length
            name = " ".join(m.group(2).split())
            parts.append(name + "\n\n")
            length += len(name) + 2
            if name:
                headings.append((start, length, int(m.group(1)), name))
        else:
            parts.append(piece)
            length += len(piece)
    return title, sections_from_headings("".join(parts), headings)


READERS = {"ours": read_ours, "trafilatura": read_trafilatura, "selectolax": read_selectolax}


def html_loader(reader):
    from rag.errors import LoadError

    def load(path: Path, data: bytes):
        title, sections = reader(decode_text(data))
        if not sections:
            raise LoadError("reader returned no text")
        return title or path.stem, require_text(sections), None

    return load


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("corpus", type=Path)
    parser.add_argument("questions", type=Path)
    parser.add_argument("work", type=Path)
    parser.add_argument("--readers", default="ours,trafilatura,selectolax")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("-k", type=int, default=5)
    parser.add_argument("--parse-only", action="store_true", help="time the readers; build no index")
    args = parser.parse_args()

    from ingest import loaders
    from ingest.chunk import ChunkSettings
    from ingest.pipeline import run_ingest
    from rag.config import MODES, load_settings
    from rag.embedding.embedder import Embedder
    from rag.evaluation.metrics import load_questions, run_eval
    from rag.retrieval.search import Retriever
    from rag.storage.store import Store

    files = sorted(p for p in args.corpus.rglob("*.htm*"))
    pages = [(p, p.read_bytes()) for p in files]
    items = load_questions(args.questions)
    embedder = Embedder("all-MiniLM-L6-v2")
    print(f"{args.corpus}: {len(files)} pages, {sum(len(d) for _, d in pages) / 2**20:.1f} MB; "
          f"{args.questions.name}: {len(items)} questions, k={args.k}", flush=True)
    print(f"{'reader':<12} {'parse s':>8} {'chars':>9} {'failed':>6} {'chunks':>6}  "
          + "  ".join(f"{m + ' hit/MRR':>17}" for m in MODES), flush=True)
    for name in args.readers.split(","):
        load = html_loader(READERS[name])
        best, chars, failed = float("inf"), 0, 0
        for _ in range(args.repeat):
            chars, failed = 0, 0
            started = time.perf_counter()
            for path, data in pages:
                try:
                    _, sections, _ = load(path, data)
                    chars += sum(len(s.text) for s in sections)
                except Exception:
                    failed += 1
            best = min(best, time.perf_counter() - started)
        if args.parse_only:
            print(f"{name:<12} {best:>8.2f} {chars:>9} {failed:>6}", flush=True)
            continue
        loaders.LOADERS[".html"] = loaders.LOADERS[".htm"] = load
        index_dir = args.work / name
        store = Store.open(index_dir / "default", create=True)
        report = run_ingest([args.corpus], store, embedder, ChunkSettings())
        store.close()
        retriever = Retriever.open(load_settings({"index_dir": index_dir}), embedder=embedder)
        scores = []
        for mode in MODES:
            r = run_eval(retriever.search, items, args.k, mode)
            scores.append(f"{r.hit_at_k:.3f} / {r.mrr_at_k:.3f}")
        chunks = retriever.store.chunk_count()
        retriever.store.close()
        print(f"{name:<12} {best:>8.2f} {chars:>9} {report.failed:>6} {chunks:>6}  "
              + "  ".join(f"{s:>17}" for s in scores), flush=True)


if __name__ == "__main__":
    main()
