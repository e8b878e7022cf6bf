"""Plain text, Markdown and reStructuredText: the text cut at its headings, with heading paths.

Markdown: front matter's title, ATX and setext headings, fenced code never read as headings; what
renders as nothing (HTML comments, link reference definitions) is blanked, as reST's is.
reST: underlined (and over-and-underlined) titles, their levels in order of first appearance.
"""

from __future__ import annotations

import re
from pathlib import Path

from ingest.formats.text import Loaded, decode_text, require_text, sections_from_headings
from rag.types import Section


def load_text(path: Path, data: bytes) -> Loaded:
    text = decode_text(data)
    return path.stem, require_text([Section(text=text, start=0)]), None


def _blank(text: str) -> str:
    """`text` as spaces and its own line ends: positions into the file stay true."""
    return re.sub(r"[^\n]", " ", text)


# -- Markdown ---------------------------------------------------------------------------------

# The opening of an ATX heading; the rest of the line is its title, less a closing run of #s
# (_atx_title). One regex for the whole line (`(.*?)[ \t#]*$`) backtracked quadratically: an
# 80 KB heading line of #s took 31 s.
ATX = re.compile(r" {0,3}(#{1,6})[ \t]+")
SETEXT = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")
FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
FRONT_MATTER = re.compile(r"\A---\r?\n(.*?)\r?\n(?:---|\.\.\.)[ \t]*(?:\r?\n|\Z)", re.S)


FRONT_TITLE = re.compile(r"^title:(.*)$", re.M)


def _unquoted(value: str) -> str:
    value = value.strip()
    value = value[1:] if value[:1] in ("'", '"') else value
    return (value[:-1] if value[-1:] in ("'", '"') else value).strip()


def _atx_title(rest: str) -> str:
    """An ATX heading's title: the line after its opening, less a closing run of #s, which (as in
    CommonMark) counts only after a space: `# Learn C#` is about C#."""
    title = rest.rstrip(" \t")
    body = title.rstrip("#")
    if not body or body[-1] in " \t":
        title = body
    return title.strip()


def load_markdown(path: Path, data: bytes) -> Loaded:
    title, sections = markdown_sections(decode_text(data))
    return title or path.stem, require_text(sections), None


# What a Markdown renderer shows nothing of, outside code: an HTML comment (Node.js's API docs hold
# 2,697 of them in 7,259 chunks: `<!-- YAML added: v8.0.0 changes: ... -->` version histories,
# `<!-- eslint-skip -->`; READMEs hold `<!-- TOC -->`, `<!-- markdownlint-disable -->`) and a
# link reference definition (`[`Duplex`]: stream.md#class-streamduplex`; Node's files end with a
# hundred). Left in, they made passages, and so answers, of markup and version numbers. A
# footnote (`[^1]: ...`) is rendered, and kept; so is a line like a definition that continues a
# paragraph (a definition cannot interrupt one).
COMMENT_OPEN, COMMENT_CLOSE = "<!--", "-->"
LINK_DEFINITION = re.compile(r" {0,3}\[(?!\^)[^\]\n]+\]:[ \t]*\S")


def _uncommented(line: str, inside: bool) -> tuple[str, bool]:
    """`line` with the HTML comments in it blanked (`inside`: a comment is open at its start), and
    whether a comment is still open at its end."""
    out, at = [], 0
    while at < len(line):
        if inside:
            close = line.find(COMMENT_CLOSE, at)
            end = len(line.rstrip("\r\n")) if close < 0 else close + len(COMMENT_CLOSE)
            out.append(" " * (end - at))
            at, inside = end, close < 0
            if inside:
                break
        else:
            opened = line.find(COMMENT_OPEN, at)
            if opened < 0:
                break
            out.append(line[at:opened])
            at, inside = opened, True
    out.append(line[at:])
    return "".join(out), inside


def markdown_sections(text: str) -> tuple[str | None, list[Section]]:
    """The title (front matter, else the first level-1 heading) and the text cut at its headings."""
    title = None
    offset = 0
    if m := FRONT_MATTER.match(text):
        if t := FRONT_TITLE.search(m.group(1)):
            title = _unquoted(t.group(1))
        offset = m.end()
    headings: list[tuple[int, int, int, str]] = []
    lines = text[offset:].splitlines(keepends=True)
    shown: list[str] = [text[:offset]]  # the text as it renders: front matter and unrendered markup blanked later
    pos = offset
    in_fence = None  # the opening fence while inside a code block
    in_comment = False  # an HTML comment is open
    previous: tuple[int, str] | None = None  # (start, text) of the last non-blank paragraph line
    for line in lines:
        if not in_fence and (in_comment or COMMENT_OPEN in line):
            line, in_comment = _uncommented(line, in_comment)
        if not in_fence and previous is None and LINK_DEFINITION.match(line):  # no paragraph goes on
            line = _blank(line)
        shown.append(line)
        stripped = line.rstrip("\r\n")
        fence = FENCE.match(stripped)
        if in_fence:
            # only a fence of the same character, at least as long and with no info string, closes
            if fence and fence.group(1)[0] == in_fence[0] and len(fence.group(1)) >= len(in_fence) \
                    and not stripped[fence.end():].strip():
                in_fence = None
        elif fence:
            in_fence = fence.group(1)
            previous = None
        elif m := ATX.match(stripped):
            headings.append((pos, pos + len(line), len(m.group(1)), _atx_title(stripped[m.end():])))
            previous = None
        elif (m := SETEXT.match(stripped)) and previous and not previous[1].startswith((" ", "\t", "-", "*", ">")):
            level = 1 if m.group(1)[0] == "=" else 2
            headings.append((previous[0], pos + len(line), level, previous[1].strip()))
            previous = None
        else:
            previous = (pos, stripped) if stripped.strip() else None
        pos += len(line)
    if title is None:
        title = next((t for _, _, lvl, t in headings if lvl == 1), None)
    # front matter is metadata, not text to search
    return title, sections_from_headings("".join(shown), headings, body_start=offset)


# -- reStructuredText -------------------------------------------------------------------------

RST_ADORNMENT_CHARS = frozenset("=-`:'\"~^_*+#<>.")


def _adornment(line: str) -> str | None:
    """The character of a reST adornment line (three or more of one punctuation mark), or None.
    Not a regex: `^(.)\1{2,}[ \t]*$` backtracked quadratically over a long line of one mark."""
    mark = line.rstrip(" \t")
    if len(mark) >= 3 and mark[0] in RST_ADORNMENT_CHARS and not mark.strip(mark[0]):
        return mark[0]
    return None


# What Sphinx renders as nothing: a hyperlink target (".. _descriptor-objects:"), a comment (".. XXX
# document these!", with its indented lines) and directives that only set how the rest renders
# (".. highlight:: c"). Left in, they made chunks of their own in the Python docs (132 of them:
# ".. highlight:: c .. _apiabiversion:") and put markup words into the ones they fell in.
RST_UNRENDERED = re.compile(
    r"^\.\.(?:[ \t]+(?:_[^\n]*|(?!\[|\||[\w:.+-]+::)[^\n]*|(?:highlight|sectionauthor|moduleauthor)::[^\n]*))?[ \t]*\n"
    r"(?:[ \t]+\S[^\n]*\n)*",
    re.M,
)


def load_rst(path: Path, data: bytes) -> Loaded:
    text = decode_text(data)
    text = RST_UNRENDERED.sub(lambda found: _blank(found.group(0)), text if text.endswith("\n") else text + "\n")
    lines = text.splitlines(keepends=True)
    starts = [0]
    for line in lines:
        starts.append(starts[-1] + len(line))
    styles: list[tuple[str, bool]] = []  # heading styles in order of first use = their level
    headings: list[tuple[int, int, int, str]] = []
    i = 0
    while i < len(lines) - 1:
        title_line = lines[i].rstrip("\r\n")
        under = lines[i + 1].rstrip("\r\n")
        # an overline must repeat the underline exactly; anything else above is not part of it
        over = i > 0 and lines[i - 1].rstrip() == under.rstrip()
        if (
            title_line.strip()
            and not _adornment(title_line)
            and (mark := _adornment(under))
            and len(under.rstrip()) >= len(title_line.rstrip())
        ):
            style = (mark, over)
            if style not in styles:
                styles.append(style)
            begin = starts[i - 1] if over else starts[i]
            headings.append((begin, starts[i + 2], styles.index(style) + 1, title_line.strip()))
            i += 2
            continue
        i += 1
    title = headings[0][3] if headings else path.stem
    return title, require_text(sections_from_headings(text, headings)), None
