"""PDF: read page by page with pypdf; bookmarks, when the file has them, split the pages into
sections with heading paths. Encrypted files that need a password, and files with no text layer,
raise LoadError with what to do."""

from __future__ import annotations

import io
import re
from pathlib import Path

from ingest.formats.text import Loaded, short
from rag.errors import LoadError
from rag.types import Section



# Tables of contents and indexes pad entries with dot leaders (". . . . . 80"); dozens of
# dot tokens per line crowd real words out of a chunk and out of its embedding. The match may
# start only where a run of blanks starts (the lookbehind): otherwise every blank of a long run
# started one, and a page of 40,000 spaces took 25 s.
DOT_LEADER = re.compile(r"(?<![ \t])[ \t]*(?:\.[ \t]*){4,}")


def load_pdf(path: Path, data: bytes) -> Loaded:
    import logging

    from pypdf import PdfReader
    from pypdf.errors import DependencyError

    # pypdf logs every flaw it repairs, some at ERROR level, straight to the user's terminal; the
    # outcome that matters (the file is unreadable) is reported as one LoadError line instead
    logging.getLogger("pypdf").setLevel(logging.CRITICAL + 1)
    if not data.strip():
        raise LoadError("empty PDF (0 bytes)")
    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            try:
                opened = reader.decrypt("")
            except DependencyError as exc:
                raise LoadError("encrypted PDF (AES): install the `cryptography` package to read it") from exc
            except Exception:  # a damaged encryption dictionary: as good as a password we do not have
                opened = 0
            if not opened:
                raise LoadError("encrypted PDF: it needs a password; save a decrypted copy and ingest that")
        pages = reader.pages
        count = len(pages)
    except LoadError:
        raise
    except Exception as exc:  # pypdf raises many types (and some non-pypdf ones) on damaged files
        raise LoadError(f"unreadable PDF ({short(exc)})") from exc
    if count == 0:
        raise LoadError("PDF has no pages")
    starting = _outline_by_page(reader)
    sections: list[Section] = []
    heading: tuple[str, ...] = ()
    offset = 0
    failed = 0
    for number in range(count):
        try:
            text = DOT_LEADER.sub(" ... ", pages[number].extract_text() or "")
        except Exception:  # a broken page must not cost the rest of the document
            failed += 1
            continue
        # the page splits where each outline entry that starts on it has its title
        cuts = [(0, heading)]
        for entry in starting.get(number, []):
            found = _find_title(text, entry[-1], cuts[-1][0])
            cuts.append((cuts[-1][0] if found is None else found, entry))
        for (begin, under), (end, _) in zip(cuts, cuts[1:] + [(len(text), ())]):
            if text[begin:end].strip():
                sections.append(Section(text=text[begin:end], heading=under, page=number + 1, start=offset + begin))
        heading = cuts[-1][1]
        offset += len(text) + 1
    if not sections:
        reason = "pages could not be read" if failed else "no extractable text (scanned images?)"
        raise LoadError(f"PDF has {reason}")
    title = path.stem
    try:
        meta_title = (reader.metadata or {}).get("/Title")
        if isinstance(meta_title, str) and len(meta_title.strip()) > 3:
            title = meta_title.strip()
    except Exception:  # damaged metadata costs only the title
        pass
    return title, sections, count


def _outline_by_page(reader) -> dict[int, list[tuple[str, ...]]]:
    """The heading path of every outline (bookmark) entry, by the 0-based page it starts on."""
    starting: dict[int, list[tuple[str, ...]]] = {}

    def walk(items, parents: tuple[str, ...]) -> None:
        path = None
        for item in items:
            if isinstance(item, list):  # the children of the entry before it
                walk(item, path or parents)
                continue
            title = " ".join(str(getattr(item, "title", "") or "").split())
            path = parents + (title,) if title else parents
            try:
                page = reader.get_destination_page_number(item)
            except Exception:  # a destination pypdf cannot resolve: the entry has no page
                page = None
            if title and page is not None and page >= 0:
                starting.setdefault(page, []).append(path)

    try:
        walk(reader.outline, ())
    except Exception:  # a damaged outline costs the headings, never the text
        return {}
    return starting


def _find_title(text: str, title: str, start: int) -> int | None:
    """Where a heading line with this title (maybe numbered, maybe wrapped) begins, at or after start."""
    words = title.split()
    if not words:
        return None
    pattern = r"(?m)^[ \t]*(?:[0-9A-Z]{1,3}(?:\.[0-9]+)*\.?[ \t]+)?" + r"\s+".join(map(re.escape, words)) + r"[ \t]*$"
    match = re.compile(pattern).search(text, start)
    return match.start() if match else None
