"""Tables as rows: every format's table reads as one line per row, each cell with its column's label.

A passage that holds "cryptmount / V:3, I:4 / 231", one cell per line, has lost which number is
what; a row that reads "Package: cryptmount; Version: V:3, I:4; Size: 231" keeps it wherever the
chunker puts it, in a passage, in an answer, and for the embedding model. `table_text(grid,
header_rows)` is the one formatter: HTML (ingest.formats.html), docx, odt and pptx
(ingest.formats.office) hand it their cells.

- Under a header row, each cell is "Label: value" and the cells of a row are joined by "; "; a
  column without a label (a row-label column) shows its value alone. Several header rows (a
  spanning group label above its columns) make one label: "Double-Quoted Strings Allowed In DDL".
- Without a header, two columns read "term: description" (a definition table), more read
  "a | b | c".
- Columns empty in every row (spacers) are dropped; a row with no text is left out.

Invariant: one row, one line (a cell's own line breaks become ", "), so a row is never split and
`ingest.chunk` keeps it whole (rag.markup.LABELLED_ROW and PIPE_ROW match these lines).
"""

from __future__ import annotations

from typing import Sequence

PAIR = "; "
CELL = " | "


def cell_text(text: str, label: bool = False) -> str:
    """A cell's text on one line: its own lines joined by ", " (a list of values; a space after
    punctuation), a label's by a space (a header broken over lines to fit its column)."""
    parts = [" ".join(line.split()) for line in text.splitlines()]
    out = ""
    for part in parts:
        if not part:
            continue
        if not out:
            out = part
        elif label or out[-1] in ".:;,!?" or part[0] in ".,;:)":
            out += " " + part
        else:
            out += ", " + part
    return out


def _labels(header: Sequence[Sequence[str]], width: int) -> list[str]:
    labels = []
    for column in range(width):
        words: list[str] = []
        for row in header:
            text = row[column] if column < len(row) else ""
            if text and (not words or words[-1] != text):
                words.append(text)
        labels.append(" ".join(words))
    return labels


def _pair(label: str, value: str) -> str:
    if not label or label == value:
        return value
    return f"{label} {value}" if label.endswith(":") else f"{label}: {value}"


def table_text(grid: Sequence[Sequence[str]], header_rows: int = 0) -> str:
    """The table's rows as lines of text (see the module docstring). `grid` holds each row's cells
    (already one per grid column: a cell spanning columns or rows repeated where it spans), the
    first `header_rows` of them being the header."""
    rows = [[cell_text(c, label=n < header_rows) for c in row] for n, row in enumerate(grid)]
    width = max((len(r) for r in rows), default=0)
    rows = [r + [""] * (width - len(r)) for r in rows]
    keep = [c for c in range(width) if any(r[c] for r in rows)]
    rows = [[r[c] for c in keep] for r in rows]
    header, body = rows[:header_rows], [r for r in rows[header_rows:] if any(r)]
    if header and not body:  # a header alone is still the table's text
        body, header = header, []
    lines = []
    if header:
        labels = _labels(header, len(keep))
        for row in body:
            lines.append(PAIR.join(_pair(label, value) for label, value in zip(labels, row) if value))
    elif len(keep) == 2:
        for term, description in body:
            lines.append(_pair(term, description) if term and description else term or description)
    else:
        for row in body:
            lines.append(CELL.join(value for value in row if value))
    return "\n".join(lines)
