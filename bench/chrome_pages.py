"""Which HTML pages the navigation-page rule (ingest/formats/chrome.py) leaves out, on real doc trees.

For every page: its words outside chrome elements, the share of them that is link text, its prose
(words outside links) and the verdict. Prints every page left out, and the pages nearest the
threshold that are kept, so a change of LINK_SHARE / PROSE_WORDS can be judged page by page.

    python bench/chrome_pages.py /work/corpus/git /work/corpus/sqlite /usr/share/doc/python3.11/html
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]  # bench/ingest.py is not `ingest`
sys.path.insert(0, str(HERE.parent))


def main() -> None:
    from ingest.formats.chrome import LINK_SHARE, not_content, page_shape
    from ingest.formats.text import decode_text
    from rag.errors import LoadError

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folders", nargs="+", type=Path)
    parser.add_argument("--near", type=int, default=10, help="kept pages nearest the threshold to show")
    args = parser.parse_args()
    for folder in args.folders:
        rows = []
        for path in sorted(folder.rglob("*.htm*")):
            if any(part.startswith(("_static", ".")) for part in path.relative_to(folder).parts):
                continue
            try:
                shape = page_shape(decode_text(path.read_bytes()))
            except LoadError:  # a binary file named .html: the loader refuses it anyway
                continue
            share = shape.link_words / max(1, shape.words)
            rows.append((share, shape, not_content(shape), path.relative_to(folder).as_posix()))
        verdicts = Counter(r[2] for r in rows if r[2])
        print(f"\n{folder}: {len(rows)} pages, {sum(verdicts.values())} left out {dict(verdicts)}")
        print(f"{'links':>6} {'words':>7} {'prose':>6} {'links#':>6}  verdict          page")
        shown = [r for r in rows if r[2]] + sorted((r for r in rows if not r[2] and r[0] >= LINK_SHARE / 2),
                                                   key=lambda r: -r[0])[: args.near]
        for share, shape, verdict, name in sorted(shown, key=lambda r: -r[0]):
            print(f"{share:>6.2f} {shape.words:>7} {shape.words - shape.link_words:>6} {shape.links:>6}  "
                  f"{verdict or 'kept':<16} {name}")


if __name__ == "__main__":
    main()
