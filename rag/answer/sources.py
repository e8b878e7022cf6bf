"""The Sources block: where each cited passage is (path, page, heading) and the quote that supports
it, or why the citation could not be verified. Shared by the terminal and the servers (for clients
that drop unknown fields); every string from a document passes through `rag.safety.safe`.
"""

from __future__ import annotations

import os
from typing import Sequence

from rag import markup
from rag.safety import safe
from rag.text import clip, heading_path
from rag.text import location as _location
from rag.types import Citation, Source


def display_path(path: str) -> str:
    """Relative to the working folder when inside it, else as stored."""
    try:
        rel = os.path.relpath(path)
    except ValueError:
        return path
    return path if rel.startswith("..") else rel


def location(path: str, page: int | None, page_kind: str = "page") -> str:
    """Where a passage is, as every command shows it: the path, and the page when there is one."""
    return _location(safe(display_path(path)), page, page_kind)


def heading(path: Sequence[str]) -> str:
    """A heading path as Sources show it: ` (csv — CSV File Reading and Writing > Examples)`."""
    shown = safe(heading_path([text for text in map(markup.heading_text, path) if text]))
    return f" ({shown})" if shown else ""


def format_source(source: Source) -> str:
    where = location(source.file or source.path, source.page, source.page_kind)
    where = f"{safe(source.index)}: {where}" if source.index else where  # several indexes searched together
    return f"[{source.rank}] {where}{heading(source.heading)}"


QUOTE_CHARS = 110


def one_line(text: str, limit: int = QUOTE_CHARS) -> str:
    return clip(" ".join(safe(text).split()), limit)


def sources_block(sources: Sequence[Source], citations: Sequence[Citation] = (), quotes: bool = True) -> str:
    """The cited sources; under each, the quote that supports it, or why it could not be verified.

    `quotes` False leaves supported quotes out (an extractive answer already is the quotes).
    """
    cited = [s for s in sources if s.cited] or list(sources)
    title = "Sources:" if any(s.cited for s in sources) else "Retrieved passages:"
    lines = [title]
    for source in cited:
        lines.append(format_source(source))
        mine = [c for c in citations if c.n == source.rank]
        failed = next((c for c in mine if not c.supported), None)
        if failed is not None:
            lines.append(f"    [not verified] {one_line(failed.reason)}")
        elif quotes and mine and mine[0].quote:
            lines.append(f'    "{one_line(mine[0].quote)}"')
    for n in sorted({c.n for c in citations if not 1 <= c.n <= len(sources)}):
        lines.append(f"[{n}] [not verified] the answer cites a passage it was never given")
    return "\n".join(lines)
