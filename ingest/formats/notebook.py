"""Jupyter notebooks (.ipynb, nbformat 4): markdown and code cells in order, outputs left out.

The notebook is rewritten as one Markdown text (markdown cells as they are, code cells as fenced
blocks in the kernel's language) and read by the Markdown loader, so its headings become the
heading path and a `#` comment inside code never does. Outputs (tables, tracebacks, base64 images)
are results, not the author's words, and are often huge: they are never read.
"""

from __future__ import annotations

import json
from pathlib import Path

from ingest.formats.markdown import markdown_sections
from ingest.formats.text import Loaded, decode_text, require_text
from rag.errors import LoadError


def notebook_markdown(data: bytes) -> str:
    try:
        notebook = json.loads(decode_text(data))
    except json.JSONDecodeError as exc:
        raise LoadError(f"not a valid notebook (invalid JSON at line {exc.lineno})") from exc
    except RecursionError as exc:
        raise LoadError("not a valid notebook (its JSON nests too deeply)") from exc
    if not isinstance(notebook, dict) or not isinstance(notebook.get("cells"), list):
        if isinstance(notebook, dict) and "worksheets" in notebook:
            raise LoadError("an old notebook format (nbformat 3): open and save it in Jupyter to upgrade it")
        raise LoadError("not a valid notebook (no list of cells)")
    metadata = _mapping(notebook.get("metadata"))
    language = _mapping(metadata.get("kernelspec")).get("language") or _mapping(metadata.get("language_info")).get("name")
    language = language.split()[0] if isinstance(language, str) and language.split() else ""  # one word: a fence's info
    blocks = []
    for number, cell in enumerate(notebook["cells"], start=1):
        if not isinstance(cell, dict):
            continue
        source = cell.get("source", "")
        if isinstance(source, list) and all(isinstance(line, str) for line in source):
            source = "".join(source)
        elif not isinstance(source, str):
            raise LoadError(f"not a valid notebook (the source of cell {number} is not text)")
        if not source.strip():
            continue
        if cell.get("cell_type") == "markdown":
            blocks.append(source.strip("\n"))
        elif cell.get("cell_type") == "code":
            fence = "````" if "```" in source else "```"  # a fence the code itself cannot close
            blocks.append(f"{fence}{language}\n{source.rstrip()}\n{fence}")
    return "\n\n".join(blocks) + "\n"


def _mapping(value) -> dict:
    """A metadata entry that should be an object; anything else (a string, a list) counts as absent."""
    return value if isinstance(value, dict) else {}


def load_notebook(path: Path, data: bytes) -> Loaded:
    title, sections = markdown_sections(notebook_markdown(data))
    return title or path.stem, require_text(sections), None
