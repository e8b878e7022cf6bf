"""OCR word accuracy and seconds per page, on pages of a real PDF rendered to pictures.

Each chosen page of the book is rendered at --dpi (300 by default, as ingest renders scans) and read
by Tesseract through ingest/formats/ocr.py, exactly as a scanned page is read at ingest; the
reference is the same page's text layer (PDFium). Both sides are normalised alike (NFKC, curly
quotes made straight, dot leaders collapsed) and compared word by word:

- word accuracy = 1 - word error rate (Levenshtein distance over the word sequences / reference words),
  on whitespace-separated words (punctuation attached, the strict view);
- words right = reference words found in order (longest common subsequence / reference words), on
  [A-Za-z0-9]+ tokens (what keyword search and a reader see).

    python bench/ocr_accuracy.py [--pdf /work/corpus/rintro/R-intro.pdf] [--every 8] [--dpi 300]
"""

from __future__ import annotations

import argparse
import re
import sys
import time
import unicodedata
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]  # bench/ingest.py is not `ingest`
sys.path.insert(0, str(HERE.parent))

QUOTES = str.maketrans({"‘": "'", "’": "'", "“": '"', "”": '"', "–": "-", "—": "-"})
TOKEN = re.compile(r"[A-Za-z0-9]+")


def normal(text: str) -> str:
    from ingest.formats.pdf import DOT_LEADER

    # dot leaders of a contents page are collapsed as ingest collapses them ("Intro ... 5")
    return DOT_LEADER.sub(" ... ", unicodedata.normalize("NFKC", text).translate(QUOTES))


def main() -> None:
    import pypdfium2 as pdfium
    from rapidfuzz.distance import LCSseq, Levenshtein

    from ingest.formats import ocr
    from ingest.formats.pdf import _clean

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pdf", type=Path, default=Path("/work/corpus/rintro/R-intro.pdf"))
    parser.add_argument("--every", type=int, default=8, help="read every Nth page, starting with the 5th")
    parser.add_argument("--dpi", type=int, default=ocr.DPI)
    args = parser.parse_args()
    if not ocr.available():
        sys.exit("tesseract is not installed: apt-get install tesseract-ocr")

    document = pdfium.PdfDocument(args.pdf.read_bytes())
    numbers = list(range(4, len(document), args.every))
    print(f"{args.pdf.name}: {len(numbers)} of {len(document)} pages at {args.dpi} dpi, tesseract {ocr._version()}")
    print(f"{'page':>5} {'words':>6} {'accuracy':>9} {'right':>7} {'seconds':>8}")
    all_ref = all_err = all_tok = all_right = 0
    spent = 0.0
    for number in numbers:
        page = document[number]
        reference = normal(_clean(page.get_textpage().get_text_range()))
        started = time.perf_counter()
        image = page.render(scale=args.dpi / 72, grayscale=True).to_pil()
        text, _ = ocr.read_image(image)
        took = time.perf_counter() - started
        text = normal(text)
        ref_words, got_words = reference.split(), text.split()
        errors = Levenshtein.distance(ref_words, got_words)
        ref_tokens, got_tokens = TOKEN.findall(reference), TOKEN.findall(text)
        right = LCSseq.similarity(ref_tokens, got_tokens)
        all_ref += len(ref_words)
        all_err += errors
        all_tok += len(ref_tokens)
        all_right += right
        spent += took
        print(f"{number + 1:>5} {len(ref_words):>6} {1 - errors / max(1, len(ref_words)):>9.4f} "
              f"{right / max(1, len(ref_tokens)):>7.4f} {took:>8.2f}")
    print(f"{'all':>5} {all_ref:>6} {1 - all_err / all_ref:>9.4f} {all_right / all_tok:>7.4f} "
          f"{spent / len(numbers):>8.2f} s/page")


if __name__ == "__main__":
    main()
