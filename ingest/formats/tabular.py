"""CSV and TSV tables (stdlib csv with dialect sniffing): rows grouped into bounded sections.

The first row is taken as the header. Rows are grouped into sections of at most SECTION_CHARS
characters (always at least one row), and every section's text starts with the header line, so a
chunk holding "1042 | Oslo | 7.5" also says which column is which. Each section's heading names
its rows ("rows 2-14", numbered as a spreadsheet numbers them: the header is row 1 when it
opens the file), which is where the Sources line points.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

from ingest.formats.text import Loaded, decode_text, require_text
from rag.errors import LoadError
from rag.types import Section

# Below the default chunk (about 200 tokens, 4 characters each) so the chunker rarely splits a
# section and leaves a part without its header line.
SECTION_CHARS = 600
SNIFF_CHARS = 64 * 1024


def _dialect(text: str, suffix: str):
    try:
        return csv.Sniffer().sniff(text[:SNIFF_CHARS], delimiters=",;\t|")
    except csv.Error:  # one column, or too irregular to tell: the extension decides
        return csv.excel_tab if suffix == ".tsv" else csv.excel


def _line(cells: list[str]) -> str:
    return " | ".join(" ".join(c.split()) for c in cells)


def load_csv(path: Path, data: bytes) -> Loaded:
    text = decode_text(data)
    try:
        rows = [(n, r) for n, r in enumerate(csv.reader(io.StringIO(text, newline=""), _dialect(text, path.suffix.lower())), start=1)
                if any(c.strip() for c in r)]
    except csv.Error as exc:
        raise LoadError(f"not a valid {path.suffix.lower()} table ({exc})") from exc
    if not rows:
        raise LoadError("no text to index (empty file)")
    header = _line(rows[0][1])
    sections: list[Section] = []
    offset = len(header) + 1
    group: list[tuple[int, str]] = []

    def close() -> None:
        nonlocal offset
        body = "\n".join(line for _, line in group)
        first, last = group[0][0], group[-1][0]
        heading = f"rows {first}-{last}" if last > first else f"row {first}"
        sections.append(Section(text=f"{header}\n{body}", heading=(heading,), start=offset))
        offset += len(body) + 1

    for number, row in rows[1:]:
        line = _line(row)
        if group and len(header) + sum(len(g) + 1 for _, g in group) + len(line) > SECTION_CHARS:
            close()
            group = []
        group.append((number, line))
    if group:
        close()
    if not sections:  # a header and nothing under it is still the table's text
        sections.append(Section(text=header, start=0))
    return path.stem, require_text(sections), None
