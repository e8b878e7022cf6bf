"""Chunks that hold nothing worth retrieving, per index: how many of an index's chunks are

- inside the one before (a span within the previous chunk's span of the same document and page),
- a title alone (every word in the document's title and the chunk's heading path),
- page furniture (a PDF's running header or bare page number as the chunk's whole text),
- reST markup alone (targets, comments, `.. highlight::` lines),
- under 40 characters, whatever they are,

and, over all chunks, how many carry a running header inside their text ("Chapter 5: Arrays and
matrices 21" between two sentences). Reads each index's SQLite store as it is (read-only); run it
over the indexes one code built and over those another built to compare them.

usage: python bench/chunk_hygiene.py INDEX_DIR [INDEX_DIR ...] [--index NAME ...]
"""

from __future__ import annotations

import argparse
import json
import re
import sqlite3
from pathlib import Path

WORD = re.compile(r"\w+")
FURNITURE = re.compile(r"^\s*(?:(?:Chapter|Appendix) [^\n]{1,80} \d{1,4}|\d{1,4}|[ivxlc]{1,7})\s*$", re.I)
RUNNING_HEADER = re.compile(r"(?m)^(?:Chapter|Appendix) [^\n]{1,80} \d{1,4}$")
RST_MARKUP = re.compile(r"^\s*(?:\.\.\s+(?:_[^\n]*|highlight::[^\n]*|[^\n:]*)\s*)+$")
SHORT = 40


def measure(path: Path) -> dict[str, int]:
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    rows = db.execute("SELECT c.document_id, c.page, c.char_start, c.char_end, c.heading, c.text, d.title "
                      "FROM chunks c JOIN documents d ON d.id = c.document_id "
                      "ORDER BY c.document_id, c.ordinal").fetchall()
    counts = dict(chunks=len(rows), inside_previous=0, title_alone=0, furniture=0, rst_markup=0, short=0,
                  with_running_header=0)
    previous = None
    for document, page, start, end, heading, text, title in rows:
        if previous and previous[0] == document and previous[1] == page and previous[2] <= start and end <= previous[3]:
            counts["inside_previous"] += 1
        previous = (document, page, start, end)
        words = set(WORD.findall(text.lower()))
        names = set(WORD.findall(f"{title} {' '.join(json.loads(heading))}".lower()))
        if words and words <= names and len(text) <= 160:
            counts["title_alone"] += 1
        if FURNITURE.match(text):
            counts["furniture"] += 1
        if RST_MARKUP.match(text):
            counts["rst_markup"] += 1
        counts["short"] += len(text.strip()) < SHORT
        counts["with_running_header"] += bool(RUNNING_HEADER.search(text))
    db.close()
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("index_dirs", nargs="+", type=Path)
    parser.add_argument("--index", action="append", help="only these indexes (default: every one found)")
    args = parser.parse_args()
    columns = ["chunks", "inside_previous", "title_alone", "furniture", "rst_markup", "short", "with_running_header"]
    print("| index dir | index | " + " | ".join(columns) + " |")
    print("|---" * (len(columns) + 2) + "|")
    for index_dir in args.index_dirs:
        for store in sorted(index_dir.glob("*/rag.sqlite")):
            name = store.parent.name
            if args.index and name not in args.index:
                continue
            counts = measure(store)
            print(f"| {index_dir} | {name} | " + " | ".join(str(counts[c]) for c in columns) + " |")


if __name__ == "__main__":
    main()
