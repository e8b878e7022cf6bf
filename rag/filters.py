"""Filters: which part of an index a question is asked of (folders and files, types, dates, pages).

`Filters` is what every interface hands to `Index.search`/`Index.answer`: built once by
`Filters.build` from what a user typed (flags, MCP arguments, HTTP request fields), validated
there, so that retrieval only ever sees a well-formed value. The invariant the rest of rag keeps
(rag.retrieval.scope): a filter narrows both retrieval legs before the top-k is taken, and a
filter that matches nothing searches nothing.

- `paths`: gitignore-style globs (pathspec's GitIgnoreSpec), matched against each document's path
  as `rag ls --json` labels it (relative to the folder it was ingested from, that folder's name
  first) and against the same path without that first folder, so `library/**` and
  `pydocs/library/**` both name the Python docs' library folder. Several globs are one gitignore
  file: a document is in when the last pattern that matches it includes it (`!` excludes).
- `types`: document types by extension (`pdf`, `md`), aliases folded (`markdown` is `md`, `htm`
  is `html`); Sphinx's `.rst.txt` sources are `rst`.
- `modified_since` / `modified_before`: the file's modification time when it was ingested,
  `since` inclusive, `before` exclusive; stored as ISO 8601 with the offset, so JSON shows a date.
- `pages`: a page range (slides, chapters) of one document: the other filters must name exactly one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Iterable

from rag.errors import ConfigError

TYPE_ALIASES = {"markdown": "md", "htm": "html", "text": "txt"}
RELATIVE = re.compile(r"(\d+)\s*(h|d|w)", re.I)  # 36h, 7d, 2w: that long before now
UNITS = {"h": "hours", "d": "days", "w": "weeks"}
PAGES = re.compile(r"\s*(\d+)\s*(?:(?:-|–|\.\.)\s*(\d+)\s*)?")


def document_type(path: str) -> str:
    """The type `--type` names a document by: its extension, lower case, aliases folded."""
    name = path.rsplit("/", 1)[-1].lower()
    if name.endswith(".rst.txt"):  # Sphinx ships its reST sources under this name (as ingest reads them)
        return "rst"
    suffix = name.rsplit(".", 1)[-1] if "." in name else ""
    return TYPE_ALIASES.get(suffix, suffix)


@dataclass(frozen=True)
class PageRange:
    first: int
    last: int

    def __str__(self) -> str:
        return str(self.first) if self.first == self.last else f"{self.first}-{self.last}"


@dataclass(frozen=True)
class Filters:
    paths: tuple[str, ...] = ()
    types: tuple[str, ...] = ()
    modified_since: str | None = None
    modified_before: str | None = None
    pages: PageRange | None = None

    @classmethod
    def build(
        cls,
        paths: Iterable[str] | str | None = None,
        types: Iterable[str] | str | None = None,
        modified_since: str | datetime | None = None,
        modified_before: str | datetime | None = None,
        pages: str | int | PageRange | None = None,
        now: datetime | None = None,
    ) -> "Filters":
        """Filters from what a user gave; None or empty means "no such filter". Bad input raises
        ConfigError naming the filter and the accepted form."""
        now = now or datetime.now().astimezone()
        filters = cls(
            paths=_globs(paths),
            types=_types(types),
            modified_since=_date(modified_since, "--modified-since", now),
            modified_before=_date(modified_before, "--modified-before", now),
            pages=_pages(pages),
        )
        if filters.modified_since and filters.modified_before and \
                filters.since_timestamp >= filters.before_timestamp:
            raise ConfigError(f"--modified-since {filters.modified_since} is not before --modified-before "
                              f"{filters.modified_before}: nothing could match")
        return filters

    @property
    def empty(self) -> bool:
        return not (self.paths or self.types or self.modified_since or self.modified_before or self.pages)

    @property
    def since_timestamp(self) -> float | None:
        return datetime.fromisoformat(self.modified_since).timestamp() if self.modified_since else None

    @property
    def before_timestamp(self) -> float | None:
        return datetime.fromisoformat(self.modified_before).timestamp() if self.modified_before else None

    def describe(self) -> str:
        """The filters as flags, for messages: `--path 'library/**' --type pdf`."""
        parts = [f"--path {_quoted(p)}" for p in self.paths]
        if self.types:
            parts.append(f"--type {','.join(self.types)}")
        if self.modified_since:
            parts.append(f"--modified-since {self.modified_since}")
        if self.modified_before:
            parts.append(f"--modified-before {self.modified_before}")
        if self.pages:
            parts.append(f"--pages {self.pages}")
        return " ".join(parts) or "no filter"


def _quoted(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"


def _listed(value: Iterable[str] | str | None, flag: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    items = list(value) if isinstance(value, (list, tuple)) else None
    if items is None or not all(isinstance(item, str) for item in items):
        raise ConfigError(f"{flag} takes text, or a list of texts")
    return items


def _globs(value: Iterable[str] | str | None) -> tuple[str, ...]:
    globs = []
    for glob in _listed(value, "--path"):
        if not glob.strip():
            raise ConfigError("--path is empty: give a glob such as 'notes/**' or '*.pdf' (see `rag ls`)")
        if "\n" in glob or "\r" in glob or "\0" in glob:
            raise ConfigError(f"--path {glob!r} holds a line break: give one glob per --path")
        if glob.strip() in ("!", "/", "!/"):
            raise ConfigError(f"--path {glob!r} names nothing: give a glob such as 'notes/**'")
        globs.append(glob)
    if globs:
        import pathspec

        try:
            pathspec.GitIgnoreSpec.from_lines(globs)
        except ValueError as exc:  # pathspec's GitWildMatchPatternError is a ValueError
            raise ConfigError(f"--path: {exc}") from None
    return tuple(dict.fromkeys(globs))


def _types(value: Iterable[str] | str | None) -> tuple[str, ...]:
    found = []
    for item in _listed(value, "--type"):
        for name in item.split(","):
            name = name.strip().lower().lstrip(".")
            if not name:
                continue
            if not re.fullmatch(r"[a-z0-9][a-z0-9.]*", name):
                raise ConfigError(f"--type {name!r} is not a file type: give extensions such as pdf,md")
            found.append(TYPE_ALIASES.get(name, "rst" if name == "rst.txt" else name))
    if _listed(value, "--type") and not found:
        raise ConfigError("--type is empty: give extensions such as pdf,md")
    return tuple(dict.fromkeys(found))


def _date(value: str | datetime | None, flag: str, now: datetime) -> str | None:
    """ISO 8601 with the offset; a date alone is midnight local time; 7d, 36h, 2w count back from now."""
    if value is None:
        return None
    if isinstance(value, datetime):
        moment = value
    elif not isinstance(value, str):
        raise ConfigError(f"{flag} takes a date as text, such as 2025-01-31 or 7d")
    else:
        text = value.strip()
        if not text:
            raise ConfigError(f"{flag} is empty: give a date such as 2025-01-31, or 7d for a week ago")
        relative = RELATIVE.fullmatch(text)
        if relative:
            moment = now - timedelta(**{UNITS[relative[2].lower()]: int(relative[1])})
        else:
            try:
                moment = datetime.fromisoformat(text.replace("Z", "+00:00") if text.endswith("Z") else text)
            except ValueError:
                raise ConfigError(f"{flag} {text!r} is not a date: give 2025-01-31, 2025-01-31T18:00, or "
                                  f"7d / 36h / 2w for that long ago") from None
    if moment.tzinfo is None:
        moment = moment.astimezone()  # local time, as the user reads their clock
    return moment.isoformat(timespec="seconds")


def _pages(value: str | int | PageRange | None) -> PageRange | None:
    if value is None or isinstance(value, PageRange):
        return value
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise ConfigError("--pages takes a page or a range such as 12-20")
    if isinstance(value, int):
        first = last = value
    else:
        if not value.strip():
            return None
        match = PAGES.fullmatch(value)
        if not match:
            raise ConfigError(f"--pages {value!r} is not a page range: give 12 or 12-20")
        first = int(match[1])
        last = int(match[2]) if match[2] else first
    if first < 1 or last < first:
        raise ConfigError(f"--pages {value} is not a page range: pages count from 1, the first before the last")
    return PageRange(first, last)
