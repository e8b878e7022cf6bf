"""OCR: the text of a page image, through Tesseract (Debian's `tesseract-ocr`, driven by pytesseract).

Used for PDF pages without a text layer (ingest.formats.pdf) and for image files
(ingest.formats.image). Invariant: a page that needs OCR is never silently empty. When the
`tesseract` program is missing, the loader counts such pages and says how to read them
(`install tesseract-ocr to read 12 scanned pages`); a document with nothing else to read fails
with that message (NeedsOCR), one with other pages is indexed and reports them as unread.
"""

from __future__ import annotations

import re
from functools import lru_cache

from rag.errors import LoadError, NeedsOCR, unread_message  # noqa: F401  (NeedsOCR: raised here, caught by ingest)

DPI = 300  # what Tesseract is trained for; PDF pages are rendered at this resolution
FIX = "install tesseract-ocr (apt-get install tesseract-ocr)"
# A word split over two lines by a hyphen ("exam-\nple"): the reader sees one word, so does the
# index (pypdfium2 joins such words in text layers the same way). Only lower-case on both sides,
# so "S-\nPlus" and list dashes stay.
LINE_HYPHEN = re.compile(r"(?<=[a-z])-\n(?=[a-z])")


@lru_cache(maxsize=1)
def _version() -> str | None:
    import pytesseract

    try:
        return str(pytesseract.get_tesseract_version())
    except (pytesseract.TesseractNotFoundError, OSError):
        return None


def available() -> bool:
    """Whether the `tesseract` program runs (looked up once per process)."""
    return _version() is not None


def read_image(image) -> tuple[str, list[float]]:
    """The text of a PIL image, and the confidence (0-100) of each word Tesseract read.

    Lines keep their breaks and paragraphs are separated by a blank line, as Tesseract laid them
    out; words broken over a line end are joined.
    """
    import pytesseract

    image = flatten(image)
    try:
        data = pytesseract.image_to_data(image, output_type=pytesseract.Output.DICT)
    except pytesseract.TesseractNotFoundError:
        _version.cache_clear()
        raise NeedsOCR(1) from None
    except (pytesseract.TesseractError, RuntimeError, OSError) as exc:
        raise LoadError(f"OCR failed ({' '.join(str(exc).split())[:120]})") from None
    paragraphs: dict[tuple[int, int], dict[int, list[str]]] = {}
    confidences: list[float] = []
    for word, conf, block, par, line in zip(data["text"], data["conf"], data["block_num"], data["par_num"],
                                            data["line_num"]):
        word = word.strip()
        if not word:
            continue
        paragraphs.setdefault((block, par), {}).setdefault(line, []).append(word)
        confidences.append(float(conf))
    text = "\n\n".join("\n".join(" ".join(words) for words in lines.values()) for lines in paragraphs.values())
    return LINE_HYPHEN.sub("", text), confidences


def flatten(image):
    """Grey or RGB pixels on white: text drawn on a transparent background would turn black on
    black if its alpha were simply dropped."""
    from PIL import Image

    if image.mode in ("L", "RGB"):
        return image
    if image.mode in ("1", "I", "I;16", "F"):
        return image.convert("L")
    rgba = image.convert("RGBA")
    background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    return Image.alpha_composite(background, rgba).convert("RGB")
