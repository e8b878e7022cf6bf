"""The formats `rag` reads: the one dispatch from a file's extension to the function that reads it.

LOADERS maps an extension to a loader `(path, data) -> (title, sections, pages)`; PAGE_KINDS says
what a format's numbered locations are (a slide, a chapter; a page otherwise). One module per
family: markdown (plain text, Markdown, reST), pdf, html, office (docx, pptx, odt), epub, notebook,
tabular (CSV/TSV), mail (whose attachments are read through this same dispatch, passed in), image
(through OCR, which PDF scans share) and code (source files cut by their syntax).
Every text format goes through `ingest.formats.text.decode_text`. A loader raises LoadError with a
reason the user can act on; it never returns an empty document silently.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

from ingest.formats import code, epub, image, mail, notebook, office, tabular
from ingest.formats.html import load_html
from ingest.formats.markdown import load_markdown, load_rst, load_text
from ingest.formats.pdf import load_pdf
from ingest.formats.text import Loader
from rag.types import PageKind

LOADERS: dict[str, Loader] = {
    ".txt": load_text,
    ".text": load_text,
    ".md": load_markdown,
    ".markdown": load_markdown,
    ".rst": load_rst,
    ".html": load_html,
    ".htm": load_html,
    ".pdf": load_pdf,
    ".docx": office.load_docx,
    ".pptx": office.load_pptx,
    ".odt": office.load_odt,
    ".epub": epub.load_epub,
    ".ipynb": notebook.load_notebook,
    ".csv": tabular.load_csv,
    ".tsv": tabular.load_csv,
    ".eml": partial(mail.load_eml, read_attachment=lambda path: loader_for(path)),
    ".mbox": partial(mail.load_mbox, read_attachment=lambda path: loader_for(path)),
    **{suffix: image.load_image for suffix in (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".webp", ".bmp", ".gif")},
    **{suffix: code.load_code for suffix in code.EXTENSIONS},
}
# What a section's `page` counts, by format; every other format counts pages (or has none).
PAGE_KINDS: dict[str, PageKind] = {".pptx": "slide", ".epub": "chapter"}


def loader_for(path: Path) -> Loader | None:
    name = path.name.lower()
    if name.endswith(".rst.txt"):  # Sphinx ships its reST sources under this name
        return load_rst
    return LOADERS.get(path.suffix.lower())


def page_kind_for(path: Path) -> PageKind:
    return PAGE_KINDS.get(path.suffix.lower(), "page")
