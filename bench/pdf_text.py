"""Which PDF text extraction reads words best: pypdf (plain and layout modes) against PDFium
(pypdfium2, as ingest/formats/pdf.py uses it), by words matched against a reference.

Reference: the Git manual's HTML pages (/work/corpus/git) are the text; Chromium prints each page
to PDF (headless, no header or footer), and each extractor reads the PDF back. A word counts as
matched when the reference has it too (multisets of [A-Za-z0-9]+ tokens, case kept), so a glued
pair ("Setthesystem") or a word cut by a line-end hyphen ("pack-" "ages") costs both recall and
precision. Also printed, for two TeX-made books with no reference edition here (R-intro.pdf,
R-exts.pdf): how many words each extractor leaves cut by a hyphen although the book spells them
whole elsewhere (hyphenation at a line end), and seconds per page.

    python bench/pdf_text.py [--pages 30] [--work /work/scratch/NAME/pdf_text]
"""

from __future__ import annotations

import argparse
import io
import re
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]  # bench/ingest.py is not `ingest`
sys.path.insert(0, str(HERE.parent))

TOKEN = re.compile(r"[A-Za-z0-9]+")
HYPHENATED = re.compile(r"(\w+)-[ \t]*\n?[ \t]*(\w+)")


def broken_words(text: str) -> int:
    """Words a reader sees whole that the text has cut by a hyphen: "pack-ages" or "pack-" "ages"
    where the same text spells "packages" elsewhere (a compound such as "git-config" does not count)."""
    seen = Counter(w.lower() for w in re.findall(r"\w+", text))
    return sum(1 for left, right in HYPHENATED.findall(text) if seen[(left + right).lower()])


def html_words(path: Path) -> Counter:
    import lxml.html

    tree = lxml.html.fromstring(path.read_bytes())
    for bad in tree.xpath("//script|//style|//title"):
        bad.drop_tree()
    return Counter(TOKEN.findall(tree.text_content()))


def print_pdf(html: Path, out: Path) -> None:
    if out.exists():
        return
    subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--no-pdf-header-footer",
                    f"--print-to-pdf={out}", html.as_uri()], check=True, capture_output=True, timeout=120)


def extract(kind: str, data: bytes) -> tuple[list[str], float]:
    """The text of each page, and the seconds it took."""
    started = time.perf_counter()
    if kind == "pdfium (rag)":
        from ingest.formats.pdf import load_pdf

        _, sections, *_ = load_pdf(Path("x.pdf"), data)
        pages = [s.text for s in sections]
    else:
        from pypdf import PdfReader

        mode = kind.split()[-1]
        pages = [page.extract_text(extraction_mode=mode) or "" for page in PdfReader(io.BytesIO(data)).pages]
    return pages, time.perf_counter() - started


KINDS = ["pypdf plain", "pypdf layout", "pdfium (rag)"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--git", type=Path, default=Path("/work/corpus/git"))
    parser.add_argument("--pages", type=int, default=30, help="Git manual pages to print (evenly spread)")
    parser.add_argument("--books", type=Path, nargs="*",
                        default=[Path("/work/corpus/rintro/R-intro.pdf"), Path("/work/corpus/rexts/R-exts.pdf")])
    parser.add_argument("--work", type=Path, default=Path("/work/scratch/reading/pdf_text"))
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)

    htmls = sorted(args.git.glob("*.html"))
    htmls = htmls[:: max(1, len(htmls) // args.pages)][: args.pages]
    totals = {k: Counter() for k in KINDS}
    seconds = Counter()
    pdf_pages = 0
    for html in htmls:
        pdf = args.work / (html.stem + ".pdf")
        print_pdf(html, pdf)
        data = pdf.read_bytes()
        reference = html_words(html)
        from pypdf import PdfReader

        pdf_pages += len(PdfReader(io.BytesIO(data)).pages)
        totals_ref = sum(reference.values())
        for kind in KINDS:
            pages, took = extract(kind, data)
            got = Counter(TOKEN.findall("\n".join(pages)))
            matched = sum((got & reference).values())
            totals[kind].update(ref=totals_ref, got=sum(got.values()), matched=matched)
            seconds[kind] += took
    print(f"Git manual: {len(htmls)} HTML pages printed by Chromium to {pdf_pages} PDF pages; "
          f"reference = the HTML text ({totals[KINDS[0]]['ref']} words)")
    print(f"{'extractor':<14} {'recall':>7} {'precision':>9} {'F1':>6} {'ms/page':>8}")
    for kind in KINDS:
        t = totals[kind]
        recall, precision = t["matched"] / t["ref"], t["matched"] / max(1, t["got"])
        f1 = 2 * recall * precision / (recall + precision)
        print(f"{kind:<14} {recall:>7.4f} {precision:>9.4f} {f1:>6.4f} {1000 * seconds[kind] / pdf_pages:>8.1f}")

    for book in args.books:
        data = book.read_bytes()
        from pypdf import PdfReader

        count = len(PdfReader(io.BytesIO(data)).pages)
        print(f"\n{book.name}: {count} pages, no reference edition; words cut by hyphenation")
        print(f"{'extractor':<14} {'words':>7} {'split':>6} {'ms/page':>8}")
        for kind in KINDS:
            pages, took = extract(kind, data)
            text = "\n".join(pages)
            print(f"{kind:<14} {len(TOKEN.findall(text)):>7} {broken_words(text):>6} "
                  f"{1000 * took / count:>8.1f}")


if __name__ == "__main__":
    main()
