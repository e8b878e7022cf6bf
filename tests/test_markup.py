"""What reaches the terminal: no document, file name or LLM answer can drive it (every escape
sequence family is stripped, whole or cut between streamed pieces), markup reads as text with
its lines kept (reST roles and directives from Python-docs-style files, Markdown, HTML entities),
passages are clipped between lines, and the `rag` commands print none of it end to end.
"""

from __future__ import annotations

import io
import os
import random
import re

import pexpect
import pytest

from rag.markup import clip_lines, excerpt, excerpt_spans, heading_text, plain
from rag.safety import SafeStream, safe, safe_pieces
from rag.answer.extractive import extractive_answer
from rag.answer.sources import format_source, sources_block
from rag.terminal.render import answer_text, hit_block, passage, stream_markdown
from rag.types import Hit, Source
from tests.helpers import RAG

# What must never reach a terminal from a document: ESC, C1, BEL, backspace, NUL..., DEL, a CR
# that is not part of a line end, bidi overrides.
FORBIDDEN = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]|\r(?!\n)")

# One sample per family, as found in the wild (terminal test suites, CVE write-ups, ls --color).
SEQUENCES = {
    "CSI colour": "\x1b[1;31m",
    "CSI reset": "\x1b[0m",
    "CSI erase screen and home": "\x1b[2J\x1b[H",
    "CSI private mode (hide cursor)": "\x1b[?25l",
    "CSI cursor up, erase line": "\x1b[1A\x1b[2K",
    "OSC window title (BEL)": "\x1b]0;you have been pwned\x07",
    "OSC window title (ST)": "\x1b]2;title\x1b\\",
    "OSC 52 clipboard write": "\x1b]52;c;cm0gLXJmIH4K\x07",
    "OSC 8 hyperlink": "\x1b]8;;https://evil.example/\x1b\\",
    "DCS (DECRQSS)": "\x1bP$qm\x1b\\",
    "SOS": "\x1bXstart of string\x1b\\",
    "PM": "\x1b^privacy message\x1b\\",
    "APC": "\x1b_application command\x1b\\",
    "ESC c (full reset)": "\x1bc",
    "ESC ( 0 (line drawing charset)": "\x1b(0",
    "ESC # 8 (fill screen with E)": "\x1b#8",
    "ESC 7 (save cursor)": "\x1b7",
    "C1 CSI": "\x9b31m",
    "C1 OSC with C1 ST": "\x9d0;c1 title\x9c",
    "C1 DCS": "\x90q\x9c",
    "C1 NEL": "\x85",
    "BEL": "\x07",
    "backspaces": "\x08\x08\x08",
    "lone carriage return": "\r",
    "form feed, vertical tab, NUL, DEL": "\x0c\x0b\x00\x7f",
    "bidi override": "\u202e",
    "bidi isolate": "\u2066",
}


# -- safe --------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", SEQUENCES)
def test_every_escape_family_is_stripped_and_the_text_around_it_kept(name):
    shown = safe(f"before {SEQUENCES[name]}after")

    assert not FORBIDDEN.search(shown), repr(shown)
    assert shown.startswith("before ") and shown.endswith("after")


def test_string_sequences_leave_nothing_of_their_payload():
    shown = safe("a\x1b]0;you have been pwned\x07b\x1b]52;c;cm0gLXJmIH4K\x07c\x1bPpayload\x1b\\d")

    assert shown == "abcd"


def test_a_hyperlink_keeps_its_visible_text_but_not_its_target():
    assert safe("see \x1b]8;;https://evil.example/\x1b\\the docs\x1b]8;;\x1b\\ now") == "see the docs now"


def test_overwriting_tricks_are_undone():
    # `cat` would show only "rm -rf ~" after the carriage return, or erase "safe" with backspaces
    assert safe("echo safe\rrm -rf ~") == "echo saferm -rf ~"
    assert safe("safe\x08\x08\x08\x08evil") == "safeevil"


def test_newlines_tabs_and_unicode_text_are_untouched():
    text = "naïve café — 東京\n\tindented\r\nwindows line end"

    assert safe(text) == "naïve café — 東京\n\tindented\nwindows line end"


def test_an_unterminated_sequence_leaves_no_control_behind():
    for text in ("title \x1b]0;never ends", "\x1b[", "\x1bP no ST", "\x1b", "\x9b", "\x1b[31"):
        assert not FORBIDDEN.search(safe(text)), repr(text)


def test_random_mixtures_of_sequences_and_text_never_leak():
    rng = random.Random(19)
    parts = list(SEQUENCES.values()) + ["word ", "\n", "[", "]", "\\", ";", "0", "m", "é"]
    for _ in range(300):
        text = "".join(rng.choice(parts) for _ in range(rng.randint(1, 30)))
        assert not FORBIDDEN.search(safe(text)), repr(text)


# -- SafeStream --------------------------------------------------------------------------------

STREAMED = ("The answer\x1b[31m is \x1b]0;pwned\x07forty\x1b]8;;http://x\x1b\\ minutes\x1bP+q\x1b\\ [1]"
            "\x9b1m.\x1b(0\r\nDone\x1b")


def test_a_sequence_cut_between_streamed_pieces_is_still_removed():
    expected = safe(STREAMED)
    for cut in range(len(STREAMED) + 1):
        stream = SafeStream()
        shown = stream.feed(STREAMED[:cut]) + stream.feed(STREAMED[cut:]) + stream.flush()
        assert shown == expected, cut


def test_streaming_one_character_at_a_time_matches_the_whole():
    assert "".join(safe_pieces(iter(STREAMED))) == safe(STREAMED)


def test_plain_text_is_not_held_back_while_streaming():
    stream = SafeStream()

    assert stream.feed("Forty ") == "Forty "
    assert stream.feed("minutes\x1b[3") == "minutes"  # the CSI may end in the next piece
    assert stream.feed("1mat 250 degrees") == "at 250 degrees"


# -- plain: reST -------------------------------------------------------------------------------

CSV_CHUNK = """\
.. class:: DictReader(f, fieldnames=None, restkey=None, restval=None, dialect='excel', *args, **kwds)

   Create an object that operates like a regular reader but maps the
   information in each row to a :class:`dict` whose keys are given by the
   optional *fieldnames* parameter.

   .. versionchanged:: 3.8
      Returned rows are now of type :class:`dict`.

   .. note::
      Use :func:`open` with ``newline=''`` when reading files &mdash; see
      :ref:`the examples <csv-examples>`.

Reading rows of a CSV file as dictionaries::

   import csv
   with open('names.csv', newline='') as csvfile:
       reader = csv.DictReader(csvfile)
       for row in reader:
           print(row['first_name'], row['last_name'])

..
"""


def test_rest_roles_show_their_text():
    assert plain("Use :func:`csv.reader` or :py:class:`~csv.DictReader`.") == "Use csv.reader or DictReader."
    assert plain("See :ref:`the examples <csv-examples>` and :pep:`305`.") == "See the examples and PEP 305."


def test_rest_directives_read_as_python_docs_print_them():
    shown = plain(CSV_CHUNK).split("\n")

    assert shown[0] == "DictReader(f, fieldnames=None, restkey=None, restval=None, dialect='excel', *args, **kwds)"
    assert "   information in each row to a dict whose keys are given by the" in shown
    assert "   optional fieldnames parameter." in shown
    assert "   Changed in version 3.8: Returned rows are now of type dict." in shown
    assert "   Note: Use open with `newline=''` when reading files — see" in shown
    assert "   the examples." in shown
    assert not any(".." in line or "::" in line for line in shown)


def test_a_literal_block_keeps_its_lines_and_indentation():
    shown = plain(CSV_CHUNK)

    assert ("Reading rows of a CSV file as dictionaries:\n\n"
            "   import csv\n"
            "   with open('names.csv', newline='') as csvfile:\n"
            "       reader = csv.DictReader(csvfile)\n"
            "       for row in reader:\n"
            "           print(row['first_name'], row['last_name'])") in shown
    assert shown.endswith("row['last_name'])")  # the trailing `..` comment is gone


def test_code_is_never_rewritten_as_markup():
    text = "Example::\n\n    print(':func:`x`', **kwargs, '&amp;')\n    *args\n\nAfter :func:`x`."

    assert plain(text) == "Example:\n\n    print(':func:`x`', **kwargs, '&amp;')\n    *args\n\nAfter x."


def test_code_block_directive_is_dropped_but_its_code_kept():
    text = ".. code-block:: python\n   :linenos:\n\n   for row in reader:\n       print(row)\n\nDone."

    assert plain(text) == "   for row in reader:\n       print(row)\n\nDone."


def test_version_directives_with_text_on_their_line():
    assert plain(".. deprecated:: 3.12 Use :func:`new` instead.") == "Deprecated since version 3.12: Use new instead."
    assert plain(".. versionadded:: 3.2") == "Added in version 3.2:"
    assert plain(".. seealso::\n\n   :pep:`305` - CSV File API") == "See also: PEP 305 - CSV File API"


def test_metadata_directives_comments_and_targets_show_nothing():
    text = (".. module:: csv\n   :synopsis: Write and read tabular data.\n\n.. _csv-examples:\n\n"
            ".. index:: single: csv\n\n.. This is a comment\n   that goes on.\n\nText.\n\n..")

    assert plain(text) == "Text."


def test_section_underlines_go_and_titles_stay():
    assert plain("Examples\n--------\n\nThe simplest example.") == "Examples\n\nThe simplest example."


def test_doctest_blocks_keep_their_lines():
    text = ">>> import csv\n>>> csv.list_dialects()\n['excel', 'excel-tab', 'unix']"

    assert plain(text) == text


# -- plain: Markdown and HTML entities ---------------------------------------------------------


def test_markdown_emphasis_and_links_read_as_text_and_code_stays_code():
    text = "Read the **[csv docs](https://docs.python.org/3/library/csv.html)**, *then* call `csv.reader(f)`."

    assert plain(text) == "Read the csv docs, then call `csv.reader(f)`."


def test_markdown_leaves_python_names_alone():
    text = "Pass *args and **kwargs to __init__ of snake_case_name; 2 * 3 * 4."

    assert plain(text) == text


def test_citations_are_not_mistaken_for_reference_links():
    assert plain("Bake it for forty minutes [1][2], see [the guide][guide].") == \
        "Bake it for forty minutes [1][2], see the guide."


def test_a_fenced_block_is_kept_verbatim():
    text = "Run:\n\n```python\nrow = {**defaults, 'a': 1}  # *not* emphasis\n```\n\n## Next step"

    assert plain(text) == "Run:\n\n```python\nrow = {**defaults, 'a': 1}  # *not* emphasis\n```\n\nNext step"


def test_markdown_indented_code_and_lists_keep_their_lines():
    text = "Steps:\n\n- open the file\n- read a row\n  and the next\n\n1. one\n2. two\n\n    x = 1\n        y = 2"

    assert plain(text) == text


def test_html_entities_become_characters():
    assert plain("Tom &amp; Jerry &lt;3 &mdash; caf&eacute; &#8364;5") == "Tom & Jerry <3 — café €5"


def test_an_entity_cannot_smuggle_an_escape_sequence_past_safe():
    text = "&#27;]0;pwned&#7; and &#x1b;[31mred&#x202e;"

    assert "\u202e" in plain(text)  # plain() decodes; this is why render applies safe() after it
    assert not FORBIDDEN.search(answer_text(text))
    assert not FORBIDDEN.search(passage(text))


# -- headings ----------------------------------------------------------------------------------


def test_sources_headings_read_like_the_rendered_docs():
    assert heading_text(":mod:`csv` --- CSV File Reading and Writing") == "csv — CSV File Reading and Writing"


def test_headings_keep_command_line_options_and_lose_escapes():
    assert safe(heading_text("--no-llm -- offline\x1b[31m **mode**")) == "--no-llm – offline mode"


# -- clipping ----------------------------------------------------------------------------------


def test_a_short_passage_is_not_clipped():
    assert clip_lines("one\ntwo", 100, 5) == "one\ntwo"


def test_a_long_code_block_is_clipped_between_lines():
    code = "\n".join(f"    line_{n} = read(row[{n}])" for n in range(30))

    shown = clip_lines(code, 200, 4).split("\n")

    assert shown[:-1] == code.split("\n")[: len(shown) - 1] and 1 <= len(shown) - 1 <= 4
    assert shown[-1] == "    …"


def test_a_single_long_line_is_clipped_at_a_word_boundary():
    text = "The so-called CSV (Comma Separated Values) format is the most common import and export format."

    shown = clip_lines(text, 40, 3)

    assert shown.endswith(" …") and len(shown) <= 42
    kept = shown[:-2]
    assert text.startswith(kept) and text[len(kept)] == " "


def test_one_word_longer_than_the_limit_is_cut_anyway():
    assert clip_lines("https://example.com/" + "a" * 80, 30, 2) == "https://example.com/aaaaaaaaaa …"


# -- excerpts for extractive answers -----------------------------------------------------------


def test_an_excerpt_keeps_a_code_example_with_its_introduction():
    spans = [excerpt(CSV_CHUNK, a, b) for a, b in excerpt_spans(CSV_CHUNK)]

    assert ("Reading rows of a CSV file as dictionaries::\n\n   import csv\n"
            "   with open('names.csv', newline='') as csvfile:") in spans[-1]
    assert not any(span.strip() == ".." for span in spans)


def test_the_extractive_answer_shows_the_code_example_as_code():
    hit = Hit(chunk_id=1, path="docs/csv.rst", page=None, heading=("Examples",), text=CSV_CHUNK, title="csv",
              score=0.5, similarity=0.6)

    shown = answer_text(extractive_answer("How do I read rows of a CSV file as dictionaries?", [hit]))

    assert "       reader = csv.DictReader(csvfile)\n       for row in reader:\n" in shown
    assert shown.rstrip().endswith("[1]")


# -- render ------------------------------------------------------------------------------------


def test_sources_show_a_clean_heading_and_a_safe_file_name():
    source = Source(rank=1, path="docs/evil\x1b]0;pwned\x07\x1b[31m.rst", page=None,
                    heading=(":mod:`csv` --- CSV File Reading and Writing", "Examples"), score=0.5, text="", cited=True)

    assert format_source(source) == "[1] docs/evil.rst (csv — CSV File Reading and Writing > Examples)"
    assert sources_block([source]) == "Sources:\n" + format_source(source)


def test_a_retrieved_passage_is_shown_with_its_lines_under_its_source():
    hit = Hit(chunk_id=1, path="docs/csv.rst", page=None, heading=("Examples",), text=CSV_CHUNK, title="csv",
              score=0.52, similarity=0.61)

    block = hit_block(2, hit).split("\n")

    assert block[0] == "[2] docs/csv.rst (Examples)  score 0.52  similarity 0.61"
    assert block[1] == "    DictReader(f, fieldnames=None, restkey=None, restval=None, dialect='excel', *args, **kwds)"
    assert block[-1].strip() == "…" and len(block) <= 2 + 12


def test_plain_answers_keep_their_markup_but_not_their_escapes():
    assert answer_text("Use :func:`open` \x1b[2J**now**", plain=True) == "Use :func:`open` **now**"
    assert answer_text("Use :func:`open` \x1b[2J**now**") == "Use open now"


def markdown_answer() -> list[str]:
    return ["To read rows as dictionaries [1]:\n\n```python\nimport csv\n",
            "for row in csv.DictReader(open('a.csv')):\n    print(row)\n```\n\n",
            "See [the docs](https://docs.python.org/3/library/csv.html)\x1b]0;pwned\x07 **now**."]


def test_an_llm_answer_is_rendered_as_markdown_on_a_terminal():
    from rich.console import Console

    out = io.StringIO()
    pieces = markdown_answer()

    raw = stream_markdown(iter(pieces), Console(file=out, force_terminal=True, width=80, color_system="256"))

    assert raw == "".join(pieces)
    shown = out.getvalue()
    visible = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", shown)  # rich's own styling, to read the text
    assert "```" not in visible and "**" not in visible
    assert "import" in visible and "DictReader" in visible
    assert "https://docs.python.org/3/library/csv.html" in visible  # a link shows where it goes
    assert "\x1b[" in shown  # highlighted: rich styled the code
    assert "\x1b]" not in shown and "pwned" not in shown and "\x07" not in shown


def test_commands_at_a_prompt_keep_their_lines_and_prompt_on_a_terminal():
    # as Markdown, root's "# postfix reload" was a heading (its "#" gone) and two "$" lines one line
    from rich.console import Console

    out = io.StringIO()
    text = ("Make a local clone:\n\n$ git clone -l -s -n . ../copy\n$ cd ../copy [2]\n\n"
            "Then reload as root:\n\n# postfix reload [1]\n")

    raw = stream_markdown(iter(pieces(text)), Console(file=out, force_terminal=True, width=80))

    shown = [line.strip() for line in screen(out.getvalue()) if line.strip()]
    assert raw == text
    assert "$ git clone -l -s -n . ../copy" in shown and "$ cd ../copy" in shown
    assert "# postfix reload" in shown and "[1]" in shown and "[2]" in shown


def screen(output: str) -> list[str]:
    """The lines a terminal ends up showing for `output`: enough of one for rich.live's redraws
    (newline, carriage return, erase line, cursor up; colours and cursor visibility ignored)."""
    rows, row, col = [""], 0, 0
    for token in re.findall(r"\x1b\[[0-9;?]*[A-Za-z]|\r|\n|[^\x1b\r\n]+", output):
        if token == "\n":
            row += 1
            col = 0
            rows += [""] * (row + 1 - len(rows))
        elif token == "\r":
            col = 0
        elif token.startswith("\x1b["):
            if token.endswith("A"):
                row = max(0, row - int(token[2:-1] or 1))
            elif token == "\x1b[2K":
                rows[row] = ""
        else:
            line = rows[row].ljust(col)
            rows[row] = line[:col] + token + line[col + len(token):]
            col += len(token)
    return [r.rstrip() for r in rows]


def test_a_long_streamed_answer_ends_on_screen_whole_and_once():
    from rich.console import Console

    out = io.StringIO()
    lines = [f"{n}. step {n} of reading the file" for n in range(1, 31)]
    text = "Steps:\n\n" + "\n".join(lines) + "\n\nDone [1]."

    stream_markdown(iter(pieces(text)), Console(file=out, force_terminal=True, width=60, height=10))

    shown = [line for line in screen(out.getvalue()) if line.strip()]
    assert shown[0] == "Steps:" and shown[-1] == "Done [1]."
    steps = [re.search(r"step \d+ of reading the file", line) for line in shown[1:-1]]
    assert [m.group(0) if m else line for m, line in zip(steps, shown[1:-1])] == [l.split(". ", 1)[1] for l in lines]


def pieces(text: str, size: int = 7) -> list[str]:
    return [text[i:i + size] for i in range(0, len(text), size)]


def test_off_a_terminal_the_llm_answer_is_the_raw_text_made_safe():
    from rich.console import Console

    out = io.StringIO()
    pieces = markdown_answer()

    raw = stream_markdown(iter(pieces), Console(file=out, force_terminal=False))

    assert raw == "".join(pieces)
    assert out.getvalue() == safe("".join(pieces))


# -- end to end: nothing from a hostile file reaches the terminal -----------------------------

HOSTILE_NAME = "notes\x1b]0;pwned\x07\x1b[31m\x9b2J\u202e.md"
HOSTILE_TEXT = """# Sourdough \x1b[1;31mbaking\x1b[0m guide

Bake the sourdough loaf\x1b]0;you have been pwned\x07 at 250 degrees for forty minutes.\x1b]52;c;cm0gLXJmIH4K\x07
Let it cool\x1b[2J\x1b[H on a rack\x08\x08\x08 for an hour before slicing.\rOVERWRITTEN
Feed the starter \x1bPq#0;2;0;0;0\x1b\\ with flour \x9b31m and water\x1b]8;;https://evil.example/\x1b\\ every day.\x1bc

## Oven \u202eedutitlum\u202c

Preheat the oven with a baking stone\x1b_apc\x1b\\ for forty-five minutes\x1b^pm\x1b\\ so the loaf rises.
"""
FAILING_NAME = "broken\x1b[2J\x07\x9b31m.pdf"


def assert_clean(result, what: str) -> None:
    for stream, text in (("stdout", result.stdout), ("stderr", result.stderr)):
        leak = FORBIDDEN.search(text)
        assert leak is None, f"{what} {stream} leaks {leak.group(0)!r}: {text!r}"


def test_no_escape_sequence_from_a_file_or_its_name_reaches_the_terminal(tmp_path, rag_cli):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / HOSTILE_NAME).write_text(HOSTILE_TEXT, encoding="utf-8")
    (docs / FAILING_NAME).write_bytes(b"%PDF-1.4\n\x1b]0;pwned\x07 this is not really a PDF\n")

    ingest = rag_cli("ingest", "docs", cwd=tmp_path)
    assert ingest.returncode == 1, ingest.stderr  # the broken PDF fails, the rest is indexed
    assert "failed: docs/broken" in ingest.stderr and "1 added" in ingest.stderr
    assert_clean(ingest, "rag ingest")

    ask = rag_cli("ask", "How long do I bake the sourdough loaf?", "--no-llm", cwd=tmp_path)
    assert ask.returncode == 0, ask.stderr
    assert "at 250 degrees for forty minutes" in ask.stdout and "docs/notes" in ask.stdout
    assert_clean(ask, "rag ask")

    listing = rag_cli("ls", cwd=tmp_path)
    assert listing.returncode == 0, listing.stderr
    assert listing.stdout.startswith("docs/notes") and "Sourdough baking guide" in listing.stdout
    assert_clean(listing, "rag ls")

    chat = rag_cli("chat", "--no-llm", cwd=tmp_path, input="How long do I bake the sourdough loaf?\n/sources\n")
    assert chat.returncode == 0, chat.stderr
    assert "forty minutes" in chat.stdout and "similarity" in chat.stdout
    assert_clean(chat, "rag chat")

    # click strips CSI sequences itself when stdout is not a terminal, so look at a terminal too
    for args in (["ask", "How long do I bake the sourdough loaf?", "--no-llm"], ["ls"]):
        output, status = pexpect.run(str(RAG), args=args, cwd=str(tmp_path), env=dict(os.environ), encoding="utf-8",
                                     withexitstatus=True, timeout=120)
        assert status == 0, output
        leak = FORBIDDEN.search(output.replace("\r\n", "\n"))
        assert leak is None, f"rag {args[0]} on a terminal leaks {leak.group(0)!r}: {output!r}"


def test_a_directive_line_introduces_only_its_own_body():
    # ".. versionadded:: 3.2" is short and has no full stop, as a term over its description has,
    # but what follows it is the next entry's signature, not its description
    text = "   .. versionadded:: 3.2\n\n\n.. decorator:: lru_cache(user_function)\n               lru_cache(maxsize=128)\n"
    pieces = [text[a:b] for a, b in excerpt_spans(text)]

    assert pieces[0] == ".. versionadded:: 3.2"
    assert pieces[1].startswith(".. decorator:: lru_cache(user_function)")


def test_the_last_line_of_an_example_is_not_a_term_over_the_next_paragraph():
    # A diffutils chunk begins with the last line of the example before it; short and without a
    # final full stop, it read as a term and was glued to the next sentence, so the piece that
    # names the option ("The --ignore-all-space (-w) option is stronger still.") could not be
    # quoted with the sentence about it
    text = ("Here lyeth muche rychnesse in lytell space. -- John Heywood   $\n\n\n\n"
            "The --ignore-all-space (-w) option is stronger still. " + "It ignores white space. " * 20)
    pieces = [text[a:b] for a, b in excerpt_spans(text)]

    assert pieces[0].endswith("John Heywood   $")
    assert pieces[1] == "The --ignore-all-space (-w) option is stronger still."
    # a term over its description is still one
    term = "--ignore-all-space\n\n   Ignore white space when comparing lines."
    assert [term[a:b] for a, b in excerpt_spans(term)] == [term]


def test_the_following_introduces_what_follows_at_a_sentence_start_too():
    # SQLite's nulls.html: "The following table shows ..." (capitalised) was not read as introducing
    # the table, so its rows were quoted without the sentence that says what they are
    text = ("The following table shows the results of the NULL handling experiments.\n\n"
            "Adding anything to null gives null; SQLite: Yes; PostgreSQL: Yes\n"
            "nulls are distinct in a UNIQUE column; SQLite: Yes; PostgreSQL: Yes\n")

    assert excerpt_spans(text) == [(0, len(text.rstrip()))]
