"""Images (.png .jpg .jpeg .tif .tiff .webp .bmp .gif): their text, read by Tesseract (ingest.formats.ocr).

Each frame of a multi-page TIFF is a page of its own (Sources say "page 2"). An image in which
Tesseract finds no words it is sure of (a photo, a diagram without labels) is left out, counted in
the ingest summary rather than failed: documentation folders are full of such pictures. Without
Tesseract the image is not read, and the failure names the fix.
"""

from __future__ import annotations

import io
from pathlib import Path

from ingest.formats import ocr
from ingest.formats.text import Loaded, NotContent, short
from rag.errors import LoadError
from rag.types import Section

# Pillow refuses images over ~179 megapixels as decompression bombs; this is the same order (a
# 300 dpi A1 poster) and keeps a bad file from costing gigabytes.
MAX_PIXELS = 120_000_000
MAX_FRAMES = 2_000
# An image has text when Tesseract reads at least this many words with at least this confidence:
# on a photo it still reports a few "words", all of low confidence.
MIN_SURE_WORDS = 3
SURE = 60.0


def load_image(path: Path, data: bytes) -> Loaded:
    from PIL import Image, ImageSequence, UnidentifiedImageError

    if not data:
        raise LoadError("empty image (0 bytes)")
    Image.MAX_IMAGE_PIXELS = MAX_PIXELS
    try:
        image = Image.open(io.BytesIO(data))
        frames = getattr(image, "n_frames", 1)
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, ValueError) as exc:
        raise LoadError(f"unreadable image ({short(exc)})") from None
    if frames > MAX_FRAMES:
        raise LoadError(f"image has {frames} frames, over the {MAX_FRAMES} limit")
    # An animated GIF or WebP is one picture; only TIFF (and similar) frames are pages
    pages = frames if image.format in ("TIFF", "MPO") else 1
    if not ocr.available():
        raise ocr.NeedsOCR(pages)
    sections: list[Section] = []
    sure = 0
    offset = 0
    try:
        for number, frame in enumerate(ImageSequence.Iterator(image), start=1):
            if number > pages:
                break
            text, confidences = ocr.read_image(frame)
            sure += sum(c >= SURE for c in confidences)
            if text.strip():
                sections.append(Section(text=text, page=number if pages > 1 else None, start=offset))
                offset += len(text) + 2
    except (Image.DecompressionBombError, OSError, ValueError, EOFError) as exc:
        raise LoadError(f"unreadable image ({short(exc)})") from None
    if sure < MIN_SURE_WORDS:
        raise NotContent("image without text")
    return path.stem, sections, pages if pages > 1 else None
