"""Markup as text: reST and Markdown shown as plain lines, and the blocks an excerpt is made of.

- `plain(text)`: reST and Markdown markup shown as text, keeping line structure: code blocks keep
  their lines and indentation, lists keep their lines.
- `inline(text)`: inline markup (roles, links, emphasis, code spans) as its words.
- `clip_lines(text, max_chars, max_lines)`: clipped at a line boundary (a word boundary inside a
  single too-long line), with an ellipsis, never mid-word.
- `excerpt_spans(text)` / `excerpt(text, start, end)`: the paragraphs, sentences and code blocks
  (with the line that introduces them) that extractive answers and Sources quote.

Display only: what is indexed and embedded is never passed through these. Output may contain
characters decoded from HTML entities, so a terminal caller applies `safe()` last.

One module past 400 lines because `plain`, `clip_lines` and the excerpts read one block grammar
(fences, directives, literal blocks, indentation: `FENCE`, `DIRECTIVE`, `_indent`, `_dedent`);
split, a new construct would have to be taught to two modules that must agree.
"""

from __future__ import annotations

import re

from rag.text import LazyPattern as _LazyPattern

ELLIPSIS = "…"


FENCE = _LazyPattern(r"^(\s*)(`{3,}|~{3,})")
DIRECTIVE = _LazyPattern(r"^(\s*)\.\.[ \t]+([\w:.+-]+)::(?:[ \t]+(.*))?$")
COMMENT = _LazyPattern(r"^(\s*)\.\.(?:[ \t]+.*)?$")  # a comment, a target (.. _x:), a substitution
OPTION = _LazyPattern(r"^\s*:[\w-]+:(?:\s.*)?$")
ADORNMENT_CHARS = "=-`:'\"~^_*+#<>."
LIST_ITEM = _LazyPattern(r"^\s*(?:[-*+•]|\d+[.)]|#\.)\s")
ATX_HEADING = _LazyPattern(r"^(\s{0,3})#{1,6}\s+(.*?)(?:\s+#+)?\s*$")

ADMONITIONS = {
    "note": "Note", "warning": "Warning", "tip": "Tip", "hint": "Hint", "important": "Important",
    "caution": "Caution", "attention": "Attention", "danger": "Danger", "error": "Error",
    "seealso": "See also", "todo": "To do", "admonition": "",
}
VERSIONS = {
    "versionadded": "Added in version", "versionchanged": "Changed in version",
    "deprecated": "Deprecated since version", "versionremoved": "Removed in version",
    "deprecated-removed": "Deprecated since version",
}
CODE_DIRECTIVES = {"code-block", "code", "sourcecode", "doctest", "testcode", "testoutput", "literalinclude",
                   "productionlist", "parsed-literal"}
# Directives that show nothing where they stand (metadata, navigation, includes).
SILENT_DIRECTIVES = {"module", "currentmodule", "sectionauthor", "moduleauthor", "index", "toctree",
                     "highlight", "include", "only", "meta", "contents", "raw", "image", "figure",
                     "default-role", "role", "autosummary", "testsetup", "testcleanup", "audit-event",
                     "impl-detail", "rubric"}

ROLE = _LazyPattern(r":(?:[\w-]+:)?([\w-]+):`([^`\n]+)`")
RST_LINK = _LazyPattern(r"`([^`<\n]+?)\s*<[^>\n]+>`__?")
RST_REFERENCE = _LazyPattern(r"`([^`\n]+)`__?(?!\w)")
DOUBLE_BACKTICK = _LazyPattern(r"``(?=\S)(.+?)(?<=\S)``")
MD_IMAGE = _LazyPattern(r"!\[([^\]\n]*)\]\([^)\n]*\)")
MD_LINK = _LazyPattern(r"\[([^\]\n]+)\]\((?:[^()\s]|\([^()\s]*\))*(?:\s+\"[^\"\n]*\")?\)")
MD_REF_LINK = _LazyPattern(r"\[(?!\d+\])([^\]\n]+)\]\[[^\]\n]*\]")  # not citations: [1][2]
AUTOLINK = _LazyPattern(r"<((?:https?|ftp|mailto):[^>\s]+)>")
STRONG = _LazyPattern(r"(?<![\w*\\])\*\*(?=[^\s*])(.+?)(?<=[^\s*\\])\*\*(?![\w*])")
EMPHASIS = _LazyPattern(r"(?<![\w*\\])\*(?=[^\s*])(.+?)(?<=[^\s*\\])\*(?![\w*])")
# `_em_` only: `__strong__` would eat Python's dunder names (__init__)
UNDERSCORE = _LazyPattern(r"(?<![\w\\])_(?=[^\s_])([^_\n]+?)(?<=[^\s_\\])_(?!\w)")
INLINE_CODE = _LazyPattern(r"(`+)(.+?)\1")
SPACED_DASHES = _LazyPattern(r"(?<=\s)---?(?=\s)")


def _role(match: re.Match[str]) -> str:
    name, target = match.group(1), match.group(2).strip()
    titled = re.fullmatch(r"(.+?)\s*<([^<>]+)>", target)
    if titled:
        return titled.group(1)
    target = target.lstrip("!")
    if name == "pep":
        return f"PEP {target}"
    if name == "rfc":
        return f"RFC {target}"
    if target.startswith("~"):  # Sphinx: show only the last component
        return target[1:].rsplit(".", 1)[-1]
    return target


def inline(text: str) -> str:
    """One line of prose with its inline markup shown as text; `code` spans kept as `code`."""
    # Each rule runs (and its pattern is compiled) only when its marker character is present:
    # most lines have none, and a cold `rag ask` would otherwise spend milliseconds compiling.
    spans: list[str] = []
    if "`" in text:
        text = ROLE.sub(_role, text)
        text = RST_LINK.sub(r"\1", text)
        text = DOUBLE_BACKTICK.sub(r"`\1`", text)

        def keep(match: re.Match[str]) -> str:  # code spans are verbatim: out of the way of the rest
            spans.append(match.group(0) if match.group(1) == "`" else f"`{match.group(2)}`")
            return f"\x00{len(spans) - 1}\x00"

        text = INLINE_CODE.sub(keep, text)
        text = RST_REFERENCE.sub(r"\1", text)
    if "[" in text:
        text = MD_IMAGE.sub(r"\1", text)
        text = MD_LINK.sub(r"\1", text)
        text = MD_REF_LINK.sub(r"\1", text)
    if "<" in text:
        text = AUTOLINK.sub(r"\1", text)
    if "*" in text:
        text = STRONG.sub(r"\1", text)
        text = EMPHASIS.sub(r"\1", text)
    if "_" in text:
        text = UNDERSCORE.sub(r"\1", text)
    if "&" in text:
        import html  # its entity table is the slowest import here: only when there is an entity

        text = html.unescape(text)
    if spans:
        text = re.sub(r"\x00(\d+)\x00", lambda m: spans[int(m.group(1))], text)
    return text


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def _block_end(lines: list[str], start: int, parent_indent: int) -> int:
    """First line from `start` that is not blank and not indented deeper than `parent_indent`."""
    end = start
    while end < len(lines) and (not lines[end].strip() or _indent(lines[end]) > parent_indent):
        end += 1
    while end > start and not lines[end - 1].strip():  # trailing blank lines belong to what follows
        end -= 1
    return end


def _dedent(lines: list[str]) -> list[str]:
    depth = min((_indent(line) for line in lines if line.strip()), default=0)
    return [line[depth:] for line in lines]


def _literal_intro(line: str) -> str:
    """reST `text::` reads `text:`; `text ::` reads `text`; a lone `::` disappears."""
    body = line[:-2].rstrip()
    if not body.strip():
        return ""
    return body if line[: -2] != line[: -2].rstrip() else body + ":"


def _lines(lines: list[str]) -> list[str]:
    out: list[str] = []
    i, n = 0, len(lines)
    literal_after: int | None = None  # a `::` paragraph at this indentation opens a literal block
    prev_text = ""  # last non-blank source line, for Markdown's indented code
    while i < n:
        line = lines[i]
        stripped = line.strip()
        indent = _indent(line)
        if not stripped:
            out.append("")
            i += 1
            continue
        fence = FENCE.match(line) if stripped[:3] in ("```", "~~~") else None
        if fence:
            marker = fence.group(2)
            end = i + 1
            while end < n and not lines[end].strip().startswith(marker[0] * len(marker)):
                end += 1
            out.extend(lines[i:end + 1])
            i, prev_text = end + 1, line
            continue
        if literal_after is not None and indent > literal_after:
            end = _block_end(lines, i, literal_after)
            out.extend(lines[i:end])
            i, literal_after, prev_text = end, None, lines[end - 1]
            continue
        literal_after = None
        directive = DIRECTIVE.match(line) if stripped.startswith("..") else None
        if directive:
            i = _directive(lines, i, directive, out)
            prev_text = line
            continue
        if stripped.startswith("..") and COMMENT.match(line):  # comments and link targets are not shown; nor is their body
            i, prev_text = _block_end(lines, i + 1, indent), line
            continue
        if stripped.startswith(">>>"):  # a doctest block runs to the next blank line
            end = i
            while end < n and lines[end].strip():
                end += 1
            out.extend(lines[i:end])
            i, prev_text = end, lines[end - 1]
            continue
        if (indent >= _indent(prev_text) + 4 and (i == 0 or not lines[i - 1].strip())
                and not LIST_ITEM.match(prev_text)):  # Markdown indented code
            end = _block_end(lines, i, indent - 1)
            out.extend(lines[i:end])
            i, prev_text = end, lines[end - 1]
            continue
        if len(stripped) >= 3 and stripped[0] in ADORNMENT_CHARS and len(set(stripped)) == 1:
            # a reST section over/underline, a Markdown rule
            i += 1
            continue
        heading = ATX_HEADING.match(line) if stripped.startswith("#") else None
        if heading:
            out.append(inline(heading.group(2)))
        elif stripped.endswith("::"):
            intro = _literal_intro(line)
            if intro.strip():
                out.append(inline(intro))
            literal_after = indent
        else:
            out.append(inline(line))
        prev_text = line
        i += 1
    return out


def _directive(lines: list[str], i: int, match: re.Match[str], out: list[str]) -> int:
    """Show one directive and its body; returns the line after it."""
    pad, name, argument = match.group(1), match.group(2).lower(), (match.group(3) or "").strip()
    name = name.split(":")[-1]  # py:function -> function
    end = _block_end(lines, i + 1, len(pad))
    body = lines[i + 1:end]
    while body and (OPTION.match(body[0]) or (not body[0].strip() and body[1:2] and OPTION.match(body[1]))):
        body = body[1:]  # :synopsis:, :linenos: and other options are settings, not text
    body = _dedent(body)
    while body and not body[0].strip():
        body = body[1:]
    if name in SILENT_DIRECTIVES:
        return end
    if name in CODE_DIRECTIVES:
        out.extend(pad + "   " + line if line.strip() else "" for line in body)
        return end
    shown = [pad + line if line.strip() else "" for line in _lines(body)]
    if name in ADMONITIONS or name in VERSIONS:
        if name in VERSIONS:
            version, _, rest = argument.partition(" ")
            label = f"{VERSIONS[name]} {version}:" if version else f"{VERSIONS[name]}:"
            argument = rest.strip()
        else:
            label = f"{ADMONITIONS[name] or argument}:" if (ADMONITIONS[name] or argument) else ""
            if name == "admonition":
                argument = ""
        first = inline(argument) if argument else (shown.pop(0).strip() if shown and shown[0].strip() else "")
        out.append(pad + " ".join(part for part in (label, first) if part))
        out.extend(shown)
        return end
    # Python domain and the like (function, class, method, data...): the signature, then the text.
    if argument:
        out.append(pad + argument)
    out.extend("   " + line if line.strip() else "" for line in shown)
    return end


def plain(text: str) -> str:
    """reST and Markdown markup shown as text, line structure kept; for display only."""
    # dedented first: a chunk cut inside a directive's body is prose, not Markdown's indented code
    lines = _dedent(text.replace("\r\n", "\n").split("\n"))
    out = _lines(lines)
    # Collapse the runs of blank lines that dropped directives and comments leave behind.
    result: list[str] = []
    for line in out:
        line = line.rstrip()
        if line or (result and result[-1]):
            result.append(line)
    while result and not result[-1]:
        result.pop()
    return "\n".join(result)


def heading_text(heading: str) -> str:
    """One heading as read: `:mod:`csv` --- CSV File Reading and Writing` reads `csv — CSV File Reading
    and Writing`."""
    text = inline(" ".join(heading.split()))
    if "--" in text:
        text = SPACED_DASHES.sub(lambda m: "—" if m.group(0) == "---" else "–", text)
    return text


def clip_lines(text: str, max_chars: int, max_lines: int) -> str:
    """At most `max_lines` lines and `max_chars` characters, cut between lines (or words), with an
    ellipsis when anything was left out."""
    text = text.strip("\n").rstrip()
    lines = text.split("\n")
    if len(text) <= max_chars and len(lines) <= max_lines:
        return text
    kept: list[str] = []
    used = 0
    for line in lines[:max_lines]:
        if used + len(line) > max_chars:
            break
        kept.append(line)
        used += len(line) + 1
    while kept and not kept[-1].strip():
        kept.pop()
    if kept:  # the ellipsis on a line of its own, aligned with the last line kept (code stays code)
        return "\n".join(kept) + "\n" + " " * _indent(kept[-1]) + ELLIPSIS
    cut = lines[0][:max_chars]
    space = cut.rstrip().rfind(" ")
    if not lines[0][max_chars:max_chars + 1].isspace() and space > _indent(cut):
        cut = cut[:space]  # not inside a word; one word longer than the limit (a URL) is cut anyway
    return cut.rstrip() + " " + ELLIPSIS


# -- excerpts that keep their lines -----------------------------------------------------------

# a sentence ends at its stop, or at the bracket or quote that closes after it ("...the second
# position.) To do this, use the --new-file option.")
SENTENCE_END = _LazyPattern(r"(?:(?<=[.!?])|(?<=[.!?][)\]\"'\u201d\u2019]))\s+")
# A table row as ingest.formats.tables writes it ("Offset: 0; Size: 16; Description: ..."), or a
# Markdown, grid or pipe-joined row ("| a | b |", "a | b | c"). The chunker keeps these lines whole.
LABELLED_ROW = _LazyPattern(r"^[ \t]*[^\n:;]{1,80}: [^\n]*?; [^\n:;]{1,80}: ")
PIPE_ROW = _LazyPattern(r"^[ \t]*\|.*\|[ \t]*$|\S[ \t]+\|[ \t]+\S.*\S[ \t]+\|[ \t]+\S")
# a two-column row without a header ("%j: day of year: 001-366"): a row only among others like it
TERM_ROW = _LazyPattern(r"^[ \t]*[^\s:][^\n:]{0,39}: \S")
# what introduces the next piece whatever it is ("as follows:", "Example::"), and what introduces
# a command or code ("Use the following command.")
INTRODUCES = _LazyPattern(r":\s*$")
# "the following" in the paragraph's last sentence (any case), or "the following example" in the
# one before ("The following example presents additional configuration. You need to combine this
# with basic configuration information as discussed in the first half of this document.")
INTRODUCES_CODE = _LazyPattern(r"\b(?i:the following|as follows|like this|like so|below|for example|for instance)\b"
                               r"[^.!?]*[.!?]?\s*$|\b(?i:the following(?:\s+\w+){0,2}?\s+examples?)\b[^.!?]*[.!?]"
                               r"\s+[^.!?]*[.!?]?\s*$")
CODE_START = _LazyPattern(r"^\s*(?:\$ |% |> |>>> |sqlite> |[A-Za-z]:\\\S*> )")
MAX_GLUED = 2  # pieces that may follow the one introducing them
MAX_TERM_CHARS = 80  # a line this short, alone, without a full stop, is a term over its description


def signature(piece: str) -> bool:
    """Whether the piece is a signature alone: a directive that describes a thing (`.. function::`,
    `.. class::`, `.. decorator::`, not a note or a code block) with its argument, continued over
    more lines ("lru_cache(user_function)" then "lru_cache(maxsize=128, typed=False)"), with no
    body. The body that follows describes what it names, and says it only through the signature."""
    lines = piece.strip("\n").split("\n")
    found = DIRECTIVE.match(lines[0])
    if not found or not found.group(3):
        return False
    name = found.group(2).lower().split(":")[-1]
    return (name not in ADMONITIONS and name not in VERSIONS and name not in CODE_DIRECTIVES
            and name not in SILENT_DIRECTIVES and all(_indent(line) > len(found.group(1)) for line in lines[1:]))


def table_row(line: str) -> bool:
    """Whether the line reads as a table row: labelled cells ("Offset: 0; Size: 16") or pipe-joined ones."""
    return bool(LABELLED_ROW.match(line) or ("|" in line and PIPE_ROW.search(line)))


def table_rows(lines: list[str]) -> bool:
    """Whether these lines (two or more) are the rows of a table."""
    filled = [line for line in lines if line.strip()]
    if len(filled) < 2:
        return False
    rows = sum(table_row(line) for line in filled)
    return 2 * rows >= len(filled) or all(TERM_ROW.match(line) for line in filled)


def excerpt_spans(text: str, long: int = 400) -> list[tuple[int, int]]:
    """The pieces an excerpt is made of, as (start, end) offsets into `text`: paragraphs, lists and
    code blocks whole (a code block together with the line that introduces it, `Example::`), the
    rows of a table one by one (each carries its column labels), and the sentences of a prose
    paragraph longer than `long`. A piece that introduces what follows ("as follows:", "Use the
    following command.") is joined to it, so a command is never quoted without its introduction
    nor an introduction without its command. Joining neighbours keeps the lines."""
    blocks: list[list[int]] = []  # [start, end, first line's indentation, fenced]
    offset, fence, current = 0, "", None
    for line in text.splitlines(keepends=True):
        body = line.strip()
        if fence:
            current[1] = offset + len(line.rstrip())
            if body.startswith(fence):
                fence = ""
        elif not body:
            current = None
        else:
            if current is None:
                current = [offset + _indent(line), offset + len(line.rstrip()), _indent(line), 0]
                blocks.append(current)
            current[1] = offset + len(line.rstrip())
            opened = FENCE.match(line) if body[:3] in ("```", "~~~") else None
            if opened:
                fence, current[3] = opened.group(2)[0] * len(opened.group(2)), 1
        offset += len(line)
    # kind: 0 prose, 1 fenced code, 2 code with the line that introduces it, 3 a directive and
    # the first paragraph of its body (.. class:: Name(args) and what it does)
    merged: list[list[int]] = []
    for block in blocks:
        if merged:
            last = merged[-1]
            last_text = text[last[0]:last[1]]
            deeper = block[2] > last[2]
            code = block[3] == 1 or text[block[0]:block[1]].startswith(">>>")
            if (last_text.endswith(":") or last[3] == 2) and (deeper or code):
                last[1], last[3] = block[1], 2
                continue
            last_line = last_text.split("\n")[-1]
            if last[3] == 0 and deeper and last_line.lstrip().startswith("..") and DIRECTIVE.match(last_line):
                last[1], last[3] = block[1], 3
                continue
        merged.append(block)
    pieces: list[tuple[int, int, bool]] = []  # (start, end, ends in prose: may introduce the next)
    for start, end, depth, kind in merged:
        lines = text[start:end].split("\n")
        if kind == 0 and table_rows(lines):
            at = start
            for line in lines:
                if line.strip():
                    pieces.append((at + _indent(line), at + len(line.rstrip()), False))
                at += len(line) + 1
            continue
        if kind or end - start <= long or any(_indent(line) > depth for line in lines[1:]):
            pieces.append((start, end, kind in (0, 3)))
            continue
        at = start
        for match in SENTENCE_END.finditer(text, start, end):
            pieces.append((at, match.start(), True))
            at = match.end()
        pieces.append((at, end, True))
    # comments, targets, `.. module::` and the like show nothing: never the excerpt on their own
    pieces = [p for p in pieces if plain(excerpt(text, p[0], p[1])).strip()]
    spans: list[tuple[int, int]] = []
    glued, prose = 0, False
    for start, end, ends_in_prose in pieces:
        if spans and prose and glued < MAX_GLUED and _introduces(text, spans[-1], (start, end)):
            spans[-1] = (spans[-1][0], end)
            glued += 1
        else:
            spans.append((start, end))
            glued = 0
        prose = ends_in_prose
    return spans


def _introduces(text: str, piece: tuple[int, int], following: tuple[int, int]) -> bool:
    """Whether `piece` introduces the `following` one: it ends with a colon; it is a term on a
    line of its own (an option, a command, a label over its description: "--depth <depth>"); or it
    says "the following" (or "for example") and what follows is a command or code (a prompt,
    indented, or lines of its own)."""
    if INTRODUCES.search(text[max(piece[0], piece[1] - 4):piece[1]]):
        return True
    body = text[piece[0]:piece[1]]
    # a directive on its line (".. versionadded:: 3.2") is a marker, not a term: it describes
    # only its own body, which is joined to it already
    # nor is a line that holds a sentence ("...in lytell space.   -- John Heywood$", the last line
    # of an example a chunk begins with): a label has no full stop inside it either
    if (len(body) <= MAX_TERM_CHARS and "\n" not in body and body.rstrip()[-1:] not in ".!?;,"
            and "\n" in text[piece[1]:following[0]] and not COMMENT.match(body) and not SENTENCE_END.search(body)):
        return True
    if not INTRODUCES_CODE.search(text[max(piece[0], piece[1] - 240):piece[1]]):
        return False
    line_start = text.rfind("\n", 0, following[0]) + 1
    new_line = not text[line_start:following[0]].strip()
    body = text[following[0]:following[1]]
    return new_line and (bool(CODE_START.match(body)) or following[0] > line_start or "\n" in body)


def excerpt(text: str, start: int, end: int) -> str:
    """text[start:end] as a block of lines, dedented; a span that starts mid-line (a sentence)
    takes its line's indentation, so the lines after it keep their place."""
    line_start = text.rfind("\n", 0, start) + 1
    lead = text[line_start:start]
    pad = " " * (len(lead) if not lead.strip() else _indent(lead))
    return "\n".join(line.rstrip() for line in _dedent((pad + text[start:end]).split("\n")))
