"""Write a BEIR corpus as one Markdown file per document, named by its id, ready for `rag ingest`.

    .venv/bin/python bench/beir_corpus.py ../shared/eval/beir/scifact /tmp/scifact-docs
    .venv/bin/rag ingest /tmp/scifact-docs --index scifact
    .venv/bin/rag eval --beir ../shared/eval/beir/scifact --split test --index scifact

Each file holds `# title`, a blank line, then the text: a document the way a user keeps it.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rag.evaluation.beir import read_corpus  # noqa: E402


def main(source: Path, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    count = 0
    for doc_id, title, text in read_corpus(source):
        (out / f"{doc_id}.md").write_text(f"# {title}\n\n{text}\n" if title else f"{text}\n", encoding="utf-8")
        count += 1
    print(f"wrote {count} documents to {out}")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
