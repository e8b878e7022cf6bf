"""Office documents: .docx (python-docx), .pptx (python-pptx), .odt (odfpy), and the zip guard.

Every zip-based format (these three and EPUB) is opened through `open_zip`, which refuses a file
before anything is expanded when its members would unpack past MAX_UNPACKED_BYTES or compress
better than MAX_RATIO: the sizes it checks are the ones zipfile itself holds a member to (a member
longer than its header says fails its CRC), so memory stays bounded whatever the file claims.
A password-protected file (Office wraps those in an OLE container; ODF marks them in its manifest)
or a damaged one is one LoadError line. Headers, footers and comments are not read: they repeat
on every page or are not the document's text. Tables are read row by row, each cell labelled by its
column's header (ingest.formats.tables). A header row is the one the file marks as such (docx:
"repeat as header row" or all bold; odt: table-header-rows; pptx: the first-row style), or, in a
table of three or more columns, a first row of short labels; a two-column table without one
reads "term: description".
"""

from __future__ import annotations

import io
import re
import zipfile
from pathlib import Path

from ingest.formats.tables import table_text
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


MAX_LABEL_CHARS = 60


def _looks_like_labels(grid: list[list[str]]) -> bool:
    """A first row of short, distinct, non-numeric labels over a table of three or more columns."""
    if len(grid) < 2:
        return False
    first = [" ".join(c.split()) for c in grid[0]]
    filled = [c for c in first if c]
    return (len(filled) >= 3 and len(filled) == len(first) and len(set(filled)) == len(filled)
            and all(len(c) <= MAX_LABEL_CHARS and not c.replace(".", "").replace(",", "").isdigit() for c in filled))


def _table(grid: list[list[str]], marked_header: int) -> str:
    """Rows as text; the header is the rows the file marks, else a first row that looks like one."""
    header = marked_header if 0 < marked_header < len(grid) else int(_looks_like_labels(grid))
    return table_text(grid, header)


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
    from docx.oxml.ns import qn

    grid = [[cell.text for cell in row.cells] for row in table.rows]  # a merged cell once per column it spans
    marked = 0
    for row in table.rows:
        properties = row._tr.trPr
        repeated = properties is not None and properties.find(qn("w:tblHeader")) is not None
        runs = [r for cell in row.cells for p in cell.paragraphs for r in p.runs if r.text.strip()]
        if not (repeated or (runs and all(r.bold for r in runs))):
            break
        marked += 1
    return _table(grid, marked)


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
        table = shape.table
        return [_table([[c.text for c in row.cells] for row in table.rows], int(table.first_row))]
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

    def repeat(node, attribute: str) -> int:
        value = node.getAttrNS(TABLENS, attribute)
        return max(1, min(int(value), 100)) if value and value.isdigit() else 1

    grid: list[list[str]] = []
    marked = 0
    for row in table.getElementsByType(TableRow):
        if row.parentNode is not None and row.parentNode.qname == (TABLENS, "table-header-rows"):
            marked += 1
        cells: list[str] = []
        spanned = 0  # covered cells still to skip: the spanning cell was already repeated
        for cell in row.childNodes:
            if cell.nodeType != cell.ELEMENT_NODE:
                continue
            if cell.qname == (TABLENS, "table-cell"):
                text = "\n".join(teletype.extractText(p) for p in cell.childNodes if p.nodeType == p.ELEMENT_NODE)
                span = repeat(cell, "number-columns-spanned")
                cells += [text] * span * repeat(cell, "number-columns-repeated")
                spanned = span - 1
            elif cell.qname == (TABLENS, "covered-table-cell"):
                for _ in range(repeat(cell, "number-columns-repeated")):
                    if spanned:
                        spanned -= 1
                        continue
                    above = grid[-1][len(cells)] if grid and len(cells) < len(grid[-1]) else ""
                    cells.append(above)  # under a cell spanning rows: its text
        grid.append(cells)
    return _table(grid, marked)


def _odt_title(document) -> str:
    from odf import dc, teletype

    titles = document.meta.getElementsByType(dc.Title)
    return " ".join(teletype.extractText(titles[0]).split()) if titles else ""
