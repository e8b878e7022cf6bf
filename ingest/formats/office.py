"""Office documents: .docx (python-docx), .pptx (python-pptx), .odt (odfpy), and the zip guard.

Every zip-based format (these three and EPUB) is opened through `open_zip`, which refuses a file
before anything is expanded when its members would unpack past MAX_UNPACKED_BYTES or compress
better than MAX_RATIO: the sizes it checks are the ones zipfile itself holds a member to (a member
longer than its header says fails its CRC), so memory stays bounded whatever the file claims.
A password-protected file (Office wraps those in an OLE container; ODF marks them in its manifest)
or a damaged one is one LoadError line. Headers, footers and comments are not read: they repeat
on every page or are not the document's text. Tables are read row by row, cells joined by " | ".
"""

from __future__ import annotations

import io
import re
import zipfile
from pathlib import Path

from ingest.formats.text import Loaded, Outline, short
from rag.errors import LoadError

MAX_UNPACKED_BYTES = 200 * 1024 * 1024
MAX_RATIO = 100  # uncompressed / compressed; real office XML compresses about 5-20 to 1
RATIO_FLOOR = 10 * 1024 * 1024  # below this, a high ratio costs little memory and is allowed
OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
PROTECTED = "the file is password-protected: save a copy without a password and ingest that"


def open_zip(data: bytes, kind: str) -> zipfile.ZipFile:
    """The archive, once its declared sizes are known to be safe to expand."""
    if data.startswith(OLE_MAGIC):
        # Office saves an encrypted .docx/.pptx as an OLE file holding an EncryptionInfo stream;
        # an OLE file without one is the old binary format under a new name
        if "EncryptionInfo".encode("utf-16-le") in data:
            raise LoadError(PROTECTED)
        raise LoadError(f"not a valid {kind}: this is an old binary Office file; save it as {kind}")
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        members = archive.infolist()
    except Exception as exc:  # BadZipFile, but also NotImplementedError, ValueError, OSError on damage
        raise LoadError(f"not a valid {kind} (corrupt zip)") from exc
    unpacked = sum(m.file_size for m in members)
    packed = sum(m.compress_size for m in members)
    if unpacked > MAX_UNPACKED_BYTES:
        raise LoadError(f"refused: it would unpack to {unpacked // 2**20} MB, over the "
                        f"{MAX_UNPACKED_BYTES // 2**20} MB limit for a {kind}")
    if unpacked > RATIO_FLOOR and unpacked > MAX_RATIO * max(packed, 1):
        raise LoadError(f"refused: compressed {unpacked // max(packed, 1)} to 1, over the {MAX_RATIO} to 1 "
                        f"limit for a {kind} (a zip bomb?)")
    return archive


def read_member(archive: zipfile.ZipFile, name: str, kind: str) -> bytes:
    """One member's bytes (b"" when there is none); a damaged member is a corrupt file."""
    try:
        return archive.read(name)
    except KeyError:
        return b""
    except Exception as exc:  # zlib.error, EOFError, a bad CRC...
        raise LoadError(f"not a valid {kind} (corrupt zip)") from exc


def _read(kind: str, read):
    """Run a library reader on a checked archive; its many failure types become one line."""
    try:
        return read()
    except LoadError:
        raise
    except zipfile.BadZipFile as exc:
        raise LoadError(f"not a valid {kind} (corrupt zip: {short(exc)})") from exc
    except Exception as exc:  # the readers raise KeyError, lxml errors, their own types...
        raise LoadError(f"not a valid {kind} ({short(exc)})") from exc


def _row_text(cells: list[str]) -> str:
    return " | ".join(" ".join(c.split()) for c in cells)


# -- .docx ------------------------------------------------------------------------------------

HEADING_STYLE = re.compile(r"^Heading ([1-9])$")


def load_docx(path: Path, data: bytes) -> Loaded:
    open_zip(data, ".docx").close()  # the size check; the library opens the bytes itself

    def read() -> Loaded:
        import docx
        from docx.table import Table

        document = docx.Document(io.BytesIO(data))
        outline = Outline()
        title = (document.core_properties.title or "").strip()
        for block in document.iter_inner_content():
            if isinstance(block, Table):
                outline.add(_docx_table(block))
                continue
            style = block.style.name if block.style is not None else ""
            text = block.text
            if style == "Title":
                title = title or " ".join(text.split())
                continue
            if level := _heading_level(block.style):
                outline.heading(level, text)
            else:
                outline.add(text)
        return title or path.stem, outline.done(), None

    return _read(".docx", read)


def _heading_level(style) -> int:
    """1-9 for a Heading style, or a style built on one (a house "Chapter" style); else 0."""
    for _ in range(10):  # a base-style chain is short; a cyclic one in a damaged file must end
        if style is None:
            return 0
        if m := HEADING_STYLE.match(style.name or ""):
            return int(m.group(1))
        style = style.base_style
    return 0


def _docx_table(table) -> str:
    rows = []
    for row in table.rows:
        cells, seen = [], set()
        for cell in row.cells:
            if id(cell._tc) in seen:  # a merged cell is returned once per grid column it spans
                continue
            seen.add(id(cell._tc))
            cells.append(cell.text)
        if any(c.strip() for c in cells):
            rows.append(_row_text(cells))
    return "\n".join(rows)


# -- .pptx ------------------------------------------------------------------------------------


def load_pptx(path: Path, data: bytes) -> Loaded:
    open_zip(data, ".pptx").close()  # the size check; the library opens the bytes itself

    def read() -> Loaded:
        import pptx

        deck = pptx.Presentation(io.BytesIO(data))
        outline = Outline()
        first_title = ""
        count = 0
        for number, slide in enumerate(deck.slides, start=1):
            count = number
            title_shape = slide.shapes.title
            title = " ".join((title_shape.text_frame.text if title_shape is not None else "").split())
            first_title = first_title or title
            outline.set_page(number, (title,) if title else (f"Slide {number}",))
            for shape in slide.shapes:
                if title_shape is not None and shape.shape_id == title_shape.shape_id:
                    continue
                for text in _shape_texts(shape):
                    outline.add(text)
            if slide.has_notes_slide and (notes := slide.notes_slide.notes_text_frame) is not None:
                outline.add(notes.text)
        if count == 0:
            raise LoadError("no text to index (the presentation has no slides)")
        title = (deck.core_properties.title or "").strip() or first_title or path.stem
        return title, outline.done(), count

    return _read(".pptx", read)


def _shape_texts(shape) -> list[str]:
    from pptx.enum.shapes import MSO_SHAPE_TYPE

    if shape.shape_type == MSO_SHAPE_TYPE.GROUP:
        return [t for inner in shape.shapes for t in _shape_texts(inner)]
    if getattr(shape, "has_table", False) and shape.has_table:
        return ["\n".join(_row_text([c.text for c in row.cells]) for row in shape.table.rows)]
    if getattr(shape, "has_text_frame", False) and shape.has_text_frame:
        return [shape.text_frame.text]
    return []


# -- .odt -------------------------------------------------------------------------------------


def load_odt(path: Path, data: bytes) -> Loaded:
    with open_zip(data, ".odt") as archive:
        manifest = read_member(archive, "META-INF/manifest.xml", ".odt")
    if b"encryption-data" in manifest:  # ODF encrypts each part and says so here
        raise LoadError(PROTECTED)

    def read() -> Loaded:
        from odf import teletype
        from odf.namespaces import TABLENS, TEXTNS
        from odf.opendocument import load

        document = load(io.BytesIO(data))
        outline = Outline()

        def walk(node) -> None:
            for child in node.childNodes:
                if child.nodeType != child.ELEMENT_NODE:
                    continue
                if child.qname == (TEXTNS, "h"):
                    level = child.getAttrNS(TEXTNS, "outline-level")
                    outline.heading(int(level) if level and level.isdigit() else 1, teletype.extractText(child))
                elif child.qname == (TEXTNS, "p"):
                    outline.add(teletype.extractText(child))
                elif child.qname == (TABLENS, "table"):
                    outline.add(_odt_table(child, teletype))
                elif child.qname[0] in (TEXTNS, TABLENS) or child.qname[1] in ("section",):
                    walk(child)  # lists, list items, sections: their paragraphs are the text

        walk(document.text)
        return _odt_title(document) or path.stem, outline.done(), None

    return _read(".odt", read)


def _odt_table(table, teletype) -> str:
    from odf.namespaces import TABLENS
    from odf.table import TableRow

    rows = []
    for row in table.getElementsByType(TableRow):
        cells = [teletype.extractText(c) for c in row.childNodes
                 if c.nodeType == c.ELEMENT_NODE and c.qname == (TABLENS, "table-cell")]
        if any(c.strip() for c in cells):
            rows.append(_row_text(cells))
    return "\n".join(rows)


def _odt_title(document) -> str:
    from odf import dc, teletype

    titles = document.meta.getElementsByType(dc.Title)
    return " ".join(teletype.extractText(titles[0]).split()) if titles else ""
