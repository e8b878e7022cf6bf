"""CSV and TSV tables (stdlib csv with dialect sniffing): rows grouped into bounded sections.

The first row is taken as the header. Rows are grouped into sections of at most SECTION_CHARS
characters (always at least one row), and every section's text starts with the header line, so a
chunk holding "1042 | Oslo | 7.5" also says which column is which. Each section's heading names
its rows ("rows 2-14", numbered as a spreadsheet numbers them: the header is row 1 when it
opens the file), which is where the Sources line points.
"""

from __future__ import annotations

import csv
import re
from collections import Counter
from itertools import islice
from pathlib import Path
from typing import Iterator

from ingest.formats.text import Loaded, decode_text, require_text
from rag.errors import LoadError
from rag.types import Section

# Below the default chunk (about 200 tokens, 4 characters each) so the chunker rarely splits a
# section and leaves a part without its header line.
SECTION_CHARS = 600
SNIFF_CHARS = 64 * 1024
SNIFF_ROWS = 50
DELIMITERS = ",;\t|"
# A cell may be as large as a file we read (the csv module refuses cells over 128 KB by default:
# a table with one long text cell was refused whole); the chunker cuts it to size.
FIELD_LIMIT = 512 * 1024 * 1024
LINE = re.compile(r"[^\r\n]*(?:\r\n?|\n)|[^\r\n]+")


def _delimiter(text: str, suffix: str) -> str:
    """The delimiter that splits the first rows into the most rows of one width (two or more
    columns); ties go to the wider table, then to the order of DELIMITERS. Linear in the sample:
    csv.Sniffer's quote regexes backtracked quadratically (10 KB of `,"a` took 1.2 s)."""
    sample = text[:SNIFF_CHARS]
    best, best_score = None, (0, 0)
    for delimiter in DELIMITERS:
        widths: Counter[int] = Counter()
        try:
            for row in islice(csv.reader(_lines(sample), delimiter=delimiter), SNIFF_ROWS):
                if any(c.strip() for c in row):
                    widths[len(row)] += 1
        except csv.Error:
            continue
        for width, rows in widths.most_common(1):
            if width > 1 and (rows, width) > best_score:
                best, best_score = delimiter, (rows, width)
    return best or ("\t" if suffix == ".tsv" else ",")


def _lines(text: str) -> Iterator[str]:
    """The text's lines with their ends, as csv.reader wants them, without a copy of the text."""
    return (m.group() for m in LINE.finditer(text))


def _line(cells: list[str]) -> str:
    return " | ".join(" ".join(c.split()) for c in cells)


def load_csv(path: Path, data: bytes) -> Loaded:
    text = decode_text(data)
    if csv.field_size_limit() < FIELD_LIMIT:
        csv.field_size_limit(FIELD_LIMIT)
    reader = csv.reader(_lines(text), delimiter=_delimiter(text, path.suffix.lower()))
    header: str | None = None
    sections: list[Section] = []
    offset = 0
    group: list[tuple[int, str]] = []
    group_chars = 0

    def close() -> None:
        nonlocal offset
        body = "\n".join(line for _, line in group)
        first, last = group[0][0], group[-1][0]
        heading = f"rows {first}-{last}" if last > first else f"row {first}"
        sections.append(Section(text=f"{header}\n{body}", heading=(heading,), start=offset))
        offset += len(body) + 1

    try:  # row by row: a large table never sits in memory as cells
        for number, row in enumerate(reader, start=1):
            if not any(c.strip() for c in row):
                continue
            line = _line(row)
            if header is None:
                header, offset = line, len(line) + 1
                continue
            if group and len(header) + group_chars + len(line) > SECTION_CHARS:
                close()
                group, group_chars = [], 0
            group.append((number, line))
            group_chars += len(line) + 1
    except csv.Error as exc:
        raise LoadError(f"not a valid {path.suffix.lower()} table ({exc})") from exc
    if header is None:
        raise LoadError("no text to index (empty file)")
    if group:
        close()
    if not sections:  # a header and nothing under it is still the table's text
        sections.append(Section(text=header, start=0))
    return path.stem, require_text(sections), None
