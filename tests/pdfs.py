"""A tiny PDF writer for tests and the demo corpus: real PDF files that pypdf reads, no dependency.

Each page is a list of text lines set in Helvetica. Only Latin-1 text survives; anything else
becomes '?', which is enough for exercising page numbers, extraction and hostile inputs.
"""

from __future__ import annotations

import io
from pathlib import Path

TWO_PAGES = [["Chapter one", "The engine needs oil."], ["Chapter two", "Check the tyres monthly."]]


def _escape(line: str) -> str:
    text = line.encode("latin-1", "replace").decode("latin-1")
    return text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


def _kerned(line: str) -> str:
    """The line as a TJ array whose word spaces are displacements, not space characters: how many
    typesetters write text, and where an extractor that only copies characters glues words."""
    words = [f"({_escape(word)})" for word in line.split()]
    return "[" + " -278 ".join(words) + "] TJ T*"  # 278/1000 em: Helvetica's own space width


def pdf_bytes(pages: list[list[str]], title: str | None = None, spaces: str = "characters") -> bytes:
    """spaces="kerning" writes word spaces as glyph displacements instead of space characters."""
    objects: list[bytes] = []
    page_ids = [4 + 2 * i for i in range(len(pages))]
    objects.append(b"<< /Type /Catalog /Pages 2 0 R >>")
    kids = " ".join(f"{pid} 0 R" for pid in page_ids)
    objects.append(f"<< /Type /Pages /Kids [{kids}] /Count {len(pages)} >>".encode())
    objects.append(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>")
    for i, lines in enumerate(pages):
        content_id = page_ids[i] + 1
        objects.append(
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
            f"/Resources << /Font << /F1 3 0 R >> >> /Contents {content_id} 0 R >>".encode()
        )
        ops = ["BT", "/F1 11 Tf", "14 TL", "72 740 Td"]
        for line in lines:
            ops.append(_kerned(line) if spaces == "kerning" else f"({_escape(line)}) Tj T*")
        ops.append("ET")
        stream = "\n".join(ops).encode("latin-1")
        objects.append(b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream")
    info_id = None
    if title:
        objects.append(f"<< /Title ({_escape(title)}) >>".encode("latin-1"))
        info_id = len(objects)

    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref_at = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    for offset in offsets:
        out += b"%010d 00000 n \n" % offset
    trailer = f"<< /Size {len(objects) + 1} /Root 1 0 R"
    if info_id:
        trailer += f" /Info {info_id} 0 R"
    out += f"trailer\n{trailer} >>\nstartxref\n{xref_at}\n%%EOF\n".encode()
    return bytes(out)


def write_pdf(path: Path, pages: list[list[str]], title: str | None = None, spaces: str = "characters") -> Path:
    path.write_bytes(pdf_bytes(pages, title, spaces))
    return path


# -- damaged and locked PDFs, for the tests of what ingest refuses -------------------------------


def encrypted_pdf() -> bytes:
    """TWO_PAGES locked with a user password (RC4-128): pypdf opens it, but cannot read it."""
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(pdf_bytes(TWO_PAGES))))
    writer.encrypt(user_password="secret", owner_password="owner", algorithm="RC4-128")
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def truncated_pdf() -> bytes:
    whole = pdf_bytes(TWO_PAGES)
    return whole[: len(whole) // 2]


def tangled_pdf() -> bytes:
    """A PDF damaged so that pypdf meets a self-referencing object (it raises LimitReachedError)."""
    whole = pdf_bytes([["Page one line", "more"], ["Two"]], title="Tit")
    damaged = whole.replace(b"<< /Type /Catalog", b"<< /T\x84pe /Catalog", 1)
    return damaged.replace(b"6 0 obj\n<<", b"6 0 obj\nZ<", 1)
