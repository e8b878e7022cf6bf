"""Chunking, measured with the real model's tokenizer: every chunk fits, nothing is lost."""

from __future__ import annotations

import base64
import random
import re
import string
import subprocess
import sys
from pathlib import Path

import pytest

from ingest.chunk import ChunkSettings, chunk_sections
from rag.types import Section
from tests.helpers import ROOT

WORDS = (
    "river mountain cloud engine harbor lantern copper meadow signal orbit garden violet "
    "kernel thunder pocket ribbon saddle walnut glacier compass biscuit tunnel marble falcon"
).split()


def prose(seed: int, sentences: int, per_sentence: int = 14) -> str:
    rnd = random.Random(seed)
    return " ".join(
        " ".join(rnd.choice(WORDS) for _ in range(per_sentence)).capitalize() + "." for _ in range(sentences)
    )


def glued_identifiers(seed: int) -> str:
    """Code-like text without spaces: long letter runs joined by punctuation (minified JS, URLs)."""
    rnd = random.Random(seed)
    return "-".join("".join(rnd.choice(WORDS) for _ in range(rnd.randrange(1, 7))) for _ in range(400))


HOSTILE_TEXTS = {
    "one long paragraph": prose(1, 120),
    "many paragraphs": "\n\n".join(prose(i, 4) for i in range(40)),
    "giant base64 word": base64.b64encode(random.Random(0).randbytes(3750)).decode(),
    "many tiny lines": "\n".join(random.Random(2).choice(WORDS) for _ in range(3000)),
    "glued identifiers": glued_identifiers(3),
    "base64 inside prose": prose(4, 6) + " " + base64.b64encode(random.Random(4).randbytes(3000)).decode() + " " + prose(5, 6),
    "text without spaces (CJK)": "".join(chr(0x4E00 + random.Random(6).randrange(3000)) for _ in range(3000)),
    # each 99-letter "word" is about 60 word pieces: more than a small chunk can hold
    "hash-like words": " ".join(
        "".join(random.Random(7 + i).choice(string.ascii_lowercase) for _ in range(99)) for i in range(30)
    ),
}


def chunk(embedder, text: str, settings: ChunkSettings = ChunkSettings(), title: str = "Manual",
          heading: tuple[str, ...] = ("Setup", "Details"), page: int | None = None):
    return chunk_sections(title, [Section(text=text, heading=heading, page=page)], embedder.token_offsets,
                          embedder.max_tokens, settings)


def test_the_model_window_is_smaller_than_the_largest_chunk_size_tried_below(embedder):
    # all-MiniLM-L6-v2 reads 256 word pieces, two of them its own markers: chunks of 1000 tokens
    # must be cut to fit, or the model silently drops their end
    assert embedder.max_tokens == 254 < 1000


@pytest.mark.parametrize("text", HOSTILE_TEXTS.values(), ids=HOSTILE_TEXTS.keys())
@pytest.mark.parametrize("chunk_tokens", [200, 1000], ids=["default size", "larger than the model"])
def test_every_chunk_fits_the_model_window(embedder, text, chunk_tokens):
    chunks = chunk(embedder, text, ChunkSettings(chunk_tokens, 30))

    assert max(embedder.count_tokens([c.embed_text for c in chunks])) <= embedder.max_tokens


@pytest.mark.parametrize("text", HOSTILE_TEXTS.values(), ids=HOSTILE_TEXTS.keys())
@pytest.mark.parametrize("chunk_tokens", [32, 64, 200])
def test_chunk_tokens_bounds_every_chunk(embedder, text, chunk_tokens):
    chunks = chunk(embedder, text, ChunkSettings(chunk_tokens, 16))

    assert max(embedder.count_tokens([c.text for c in chunks])) <= chunk_tokens


@pytest.mark.parametrize("filler", range(236, 256))
def test_a_run_cut_next_to_an_odd_word_still_fits_the_window(embedder, filler):
    # Inside a word, "zzled" is one piece; cut loose from "issuedayo" it becomes z ##zle ##d:
    # a chunk that started there would cost more tokens than it was given.
    text = ".".join(["x"] * filler) + ".issuedayozzledruedrstdee." + ".".join(["x"] * 400)

    chunks = chunk(embedder, text, ChunkSettings(1000, 0), heading=())

    assert max(embedder.count_tokens([c.embed_text for c in chunks])) <= embedder.max_tokens


def test_smaller_chunk_tokens_make_more_chunks(embedder):
    text = HOSTILE_TEXTS["one long paragraph"]

    assert len(chunk(embedder, text, ChunkSettings(64, 8))) > 2 * len(chunk(embedder, text, ChunkSettings(200, 8)))


@pytest.mark.parametrize("name", ["one long paragraph", "many paragraphs", "many tiny lines", "base64 inside prose"])
def test_no_word_of_the_source_is_lost(embedder, name):
    text = HOSTILE_TEXTS[name]
    words = set(re.findall(r"[A-Za-z]+", text))

    chunks = chunk(embedder, text)

    assert words <= {w for c in chunks for w in re.findall(r"[A-Za-z]+", c.text)}


@pytest.mark.parametrize(
    "name", ["giant base64 word", "glued identifiers", "text without spaces (CJK)", "hash-like words"]
)
def test_words_longer_than_a_chunk_are_covered_end_to_end(embedder, name):
    text = HOSTILE_TEXTS[name]

    chunks = chunk(embedder, text)

    assert chunks[0].char_start == 0 and chunks[-1].char_end == len(text)
    for before, after in zip(chunks, chunks[1:]):
        assert text[before.char_end : after.char_start].strip() == ""  # overlapping, or only a space between
    assert all(text[c.char_start : c.char_end] == c.text for c in chunks)


@pytest.mark.parametrize("name", ["one long paragraph", "many paragraphs", "many tiny lines"])
def test_chunks_never_start_or_end_inside_a_word(embedder, name):
    text = HOSTILE_TEXTS[name]
    source_words = set(text.split())

    chunks = chunk(embedder, text)

    assert len(chunks) > 1
    assert all(set(c.text.split()) <= source_words for c in chunks)


def test_long_run_without_spaces_is_cut_at_punctuation(embedder):
    text = HOSTILE_TEXTS["glued identifiers"]
    pieces = set(text.split("-"))

    chunks = chunk(embedder, text)

    assert len(chunks) > 1
    assert all(set(c.text.strip("-").split("-")) <= pieces for c in chunks)


def test_consecutive_chunks_of_a_long_section_overlap(embedder):
    chunks = chunk(embedder, HOSTILE_TEXTS["one long paragraph"], ChunkSettings(100, 30))

    assert len(chunks) > 3
    for before, after in zip(chunks, chunks[1:]):
        shared = before.char_end - after.char_start
        assert shared > 0
        assert after.text[:shared].strip() in before.text


def test_no_overlap_when_overlap_tokens_is_zero(embedder):
    chunks = chunk(embedder, HOSTILE_TEXTS["one long paragraph"], ChunkSettings(100, 0))

    assert all(after.char_start >= before.char_end for before, after in zip(chunks, chunks[1:]))


def test_overlap_starts_at_a_sentence_when_one_is_near(embedder):
    chunks = chunk(embedder, HOSTILE_TEXTS["one long paragraph"], ChunkSettings(100, 30))

    assert all(c.text[0].isupper() for c in chunks[1:])


def test_a_chunk_never_starts_or_ends_inside_a_line_of_an_html_pre_block(embedder):
    # a <pre> line has no prompt and no indentation, yet it holds sentence stops ("space.   --
    # John Heywood$") and spaces: the diffutils manual's chunks began at "-- John Heywood$" and at
    # "2002-03-17 20:49:32 -0800", halfway along a line
    from ingest.formats.html import load_html

    line = "Here lyeth  muche rychnesse  in lytell space.   -- John Heywood{n}$ +++ v2.0.{n}/prog/README\t2002-03-17 -0800"
    prose = " ".join(f"Sentence {i} says the patch option changes the output of diff in a way." for i in range(6))
    page = "<title>T</title><h1>Blank lines</h1>" + "".join(
        f"<p>{prose}</p><pre class='example'>" + "\n".join(line.format(n=f"{k}{j}") for j in range(8)) + "\n</pre>"
        for k in range(4))
    _, sections, _ = load_html(Path("Comparison.html"), page.encode())
    lines = {text.strip() for s in sections for text in s.text.split("\n") if "Heywood" in text}

    chunks = chunk_sections("T", sections, embedder.token_offsets, embedder.max_tokens, ChunkSettings(100, 30))

    assert len(chunks) > 4 and all(s.code for s in sections)
    for c in chunks:
        first, last = c.text.split("\n")[0].strip(), c.text.split("\n")[-1].strip()
        assert "Heywood" not in first or first in lines, first
        assert "Heywood" not in last or last in lines, last


def test_chunks_keep_the_heading_path_and_page(embedder):
    chunks = chunk(embedder, HOSTILE_TEXTS["one long paragraph"], heading=("Setup", "Wiring"), page=7)

    assert {(c.heading, c.page) for c in chunks} == {(("Setup", "Wiring"), 7)}


def test_the_model_reads_title_and_heading_path_before_each_chunk(embedder):
    chunks = chunk(embedder, HOSTILE_TEXTS["one long paragraph"], title="Manual", heading=("Setup", "Wiring"))

    assert all(c.embed_text == f"Manual > Setup > Wiring\n{c.text}" for c in chunks)


def test_chunk_positions_point_into_the_document(embedder):
    text = "Intro line.\n\n" + prose(9, 40)
    sections = [Section(text=text[:13], start=0), Section(text=text[13:], heading=("Body",), start=13)]

    chunks = chunk_sections("T", sections, embedder.token_offsets, embedder.max_tokens, ChunkSettings())

    assert [c.ordinal for c in chunks] == list(range(len(chunks)))
    assert all(text[c.char_start : c.char_end].strip() == c.text for c in chunks)


def test_blank_sections_make_no_chunks(embedder):
    sections = [Section(text="  \n\n "), Section(text="Real words here.", heading=("H",))]

    chunks = chunk_sections("T", sections, embedder.token_offsets, embedder.max_tokens, ChunkSettings())

    assert [c.text for c in chunks] == ["Real words here."]


def test_a_one_line_section_is_folded_into_the_next_with_its_heading_kept_in_the_text():
    from ingest.chunk import merge_small_sections

    sections = [
        Section("git-worktree - Manage multiple working trees", ("git-worktree(1)", "NAME"), None, 0),
        Section("git worktree add <path> [<commit-ish>]\n" * 5, ("git-worktree(1)", "SYNOPSIS"), None, 60),
        Section("A repository can support many working trees. " * 30, ("git-worktree(1)", "DESCRIPTION"), None, 300),
    ]
    merged = merge_small_sections(sections, chunk_tokens=200)

    assert len(merged) == 2
    assert merged[0].heading == ("git-worktree(1)",)
    assert merged[0].text.startswith("git-worktree - Manage multiple working trees\n\nSYNOPSIS\n\ngit worktree add")
    assert merged[1] == sections[2]


def test_small_sections_on_different_pdf_pages_are_not_merged():
    from ingest.chunk import merge_small_sections

    sections = [Section("Short page one.", (), 1, 0), Section("Short page two.", (), 2, 16)]
    assert merge_small_sections(sections, chunk_tokens=200) == sections


# -- bounded memory per file --------------------------------------------------------------------------

CHUNK_BIG_FILE = """
import re, sys
from ingest.chunk import ChunkSettings, chunk_sections
from rag.embedding.embedder import Embedder
from rag.types import Section
embedder = Embedder("all-MiniLM-L6-v2", "torch")  # the engine the bug was found on
text = ("lorem ipsum dolor sit amet consectetur " * 420_000)  # 16 MB, one line
chunks = chunk_sections("big", [Section(text)], embedder.token_offsets, embedder.max_tokens, ChunkSettings())
# VmHWM, not ru_maxrss: Linux carries the parent's peak across fork and exec into ru_maxrss
peak_kb = int(re.search(r"VmHWM:\\s+(\\d+) kB", open("/proc/self/status").read()).group(1))
print(len(chunks), peak_kb // 1024)
"""


def test_one_huge_one_line_file_is_chunked_in_bounded_memory(tmp_path):
    # tokenizing a 15 MB one-line file whole reached 2.3 GB RSS; windows keep it flat
    result = subprocess.run([sys.executable, "-c", CHUNK_BIG_FILE], cwd=ROOT, capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stderr
    chunks, peak_mb = map(int, result.stdout.split())
    assert chunks > 10_000
    assert peak_mb < 1500, f"peak RSS {peak_mb} MB"
# -- structure a chunk never cuts -----------------------------------------------------------------


def structured_text(seed: int) -> tuple[str, list[tuple[int, int]]]:
    """reST-like text mixing wrapped prose with the units a chunk must keep whole: multi-line
    signatures, code lines and table rows (each tempting a cut with "; ", ": " and ". " inside),
    and the spans of those units as the generator placed them."""
    rnd = random.Random(seed)
    text, units = "", []

    def add(piece: str, unit: bool = False) -> None:
        nonlocal text
        if unit:
            units.append((len(text) + len(piece) - len(piece.lstrip()), len(text) + len(piece.rstrip())))
        text += piece

    for n in range(30):
        kind = rnd.choice(["prose", "signature", "code", "rows", "command"])
        if kind == "prose":
            words = prose(seed * 100 + n, 4).split()
            add("\n".join(" ".join(words[i:i + 11]) for i in range(0, len(words), 11)) + "\n\n")
        elif kind == "signature":
            add(f".. function:: compute_{n}(alpha, beta=None, gamma='a; b: c. d', \\\n"
                f"                 delta=0, *args, epsilon='x. Y', **kwargs)", unit=True)
            add("\n\n   " + prose(seed + n, 2) + "\n\n")
        elif kind == "code":
            add("An example::\n\n")
            for line in range(4):
                add(f"    total_{line} = merge(left, right); check: {line} == done. Then {WORDS[line]}", unit=True)
                add("\n")
            add("\n")
        elif kind == "rows":
            for row in range(5):
                add(f"Name: {WORDS[row]} {n}; Size: {row * 7}; Notes: fits: yes. Really {WORDS[row + 5]}", unit=True)
                add("\n")
            add("\n")
        else:
            add("Install it as follows:\n\n")
            add(f"$ sudo tool --flag {n}; echo done. Next {WORDS[n % 10]} step", unit=True)
            add("\n\n")
    return text, units


@pytest.mark.parametrize("chunk_tokens", [64, 120, 200])
@pytest.mark.parametrize("seed", range(4))
def test_a_chunk_never_begins_or_ends_inside_a_signature_a_code_line_or_a_table_row(embedder, seed, chunk_tokens):
    text, units = structured_text(seed)

    chunks = chunk(embedder, text, ChunkSettings(chunk_tokens, 30), heading=())

    assert len(chunks) > 3
    for c in chunks:
        for a, b in units:
            assert not a < c.char_start < b, f"starts inside {text[a:b]!r}: {c.text[:60]!r}"
            assert not a < c.char_end < b, f"ends inside {text[a:b]!r}: {c.text[-60:]!r}"
        assert not c.text.endswith(":"), f"ends on what introduces the next chunk: {c.text[-60:]!r}"


EXAMPLE = """For example, the following snippet of code prints "hello", waits 1 second,
and then prints "world"::

    >>> import asyncio

    >>> async def main():
    ...     print('hello')
    ...     await asyncio.sleep(1)
    ...     print('world')

    >>> asyncio.run(main())
    hello
    world

"""


@pytest.mark.parametrize("chunk_tokens", [160, 200])
@pytest.mark.parametrize("lead", range(0, 12, 3))
def test_a_short_example_is_never_cut_at_a_blank_line_inside_it(embedder, lead, chunk_tokens):
    # The Python docs' asyncio-task.rst: a chunk ended at the blank line before ">>> asyncio.run(main())",
    # so the passage that showed the coroutine never showed how to run it, and the next chunk began
    # at "...     await asyncio.sleep(1)". Wherever the example falls, it is in one chunk whole.
    text = prose(lead, lead + 1) + "\n\n" + EXAMPLE + prose(lead + 50, 12)
    block = text[text.index(">>> import"):text.index("    world") + len("    world")]

    chunks = chunk(embedder, text, ChunkSettings(chunk_tokens, 30), heading=())

    assert any(block in c.text for c in chunks), [c.text[-80:] for c in chunks]
    assert not any(c.text.startswith(("...", "world", "hello", ">>> asyncio.run")) for c in chunks)


def test_a_doctest_and_a_run_of_prompts_are_kept_whole_and_a_long_block_is_still_cut(embedder):
    session = "$ make\ncc -o tool tool.c\n$ make install\ninstall -m 755 tool /usr/local/bin\n$ tool --version\ntool 1.0"
    doctest = ">>> total = 0\n>>> for n in range(3):\n...     total += n\n>>> total\n3"
    text = "\n\n".join([prose(1, 5), session, prose(2, 4), doctest, prose(3, 5)])
    long_block = "Run these::\n\n" + "\n\n".join(f"    step_{k} = run(stage={k}, retries=3)  # stage {k}"
                                                     for k in range(60)) + "\n"

    chunks = chunk(embedder, text, ChunkSettings(64, 16), heading=())
    long_chunks = chunk(embedder, long_block, ChunkSettings(64, 16), heading=())

    assert any(session in c.text for c in chunks) and any(doctest in c.text for c in chunks)
    assert len(long_chunks) > 3  # longer than half a chunk: cut between its lines, as before
    assert all(c.text.split("\n")[0].strip().startswith(("step_", "Run these")) for c in long_chunks)


def test_the_python_docs_dictreader_chunk_starts_with_its_whole_signature(embedder):
    from pathlib import Path

    from ingest.formats.markdown import load_rst

    path = Path(__file__).parent / "data" / "csv.rst"
    _, sections, _ = load_rst(path, path.read_bytes())

    chunks = chunk_sections("csv", sections, embedder.token_offsets, embedder.max_tokens, ChunkSettings())

    described = [c for c in chunks if "Create an object that operates like a regular reader" in c.text]
    assert described and all(".. class:: DictReader(f, fieldnames=None, restkey=None, restval=None, \\\n"
                                 "                      dialect='excel', *args, **kwds)" in c.text for c in described)
    assert not any(c.text.startswith(("restkey=None", "dialect='excel'")) for c in chunks)


def test_a_short_stretch_before_an_uncuttable_block_makes_one_chunk_not_a_shrinking_tail(embedder):
    # The Python docs' c-api/descriptor.rst: a sentence, then a run of directive signatures the
    # chunker may not cut between. The cut before the run left a small chunk, and its overlap
    # stepped back one word at a time: "type object for the built-in descriptor types.", "object
    # for the built-in ...", ..., "types.", seven chunks each inside the one before
    from pathlib import Path

    from ingest.formats.markdown import load_rst

    path = Path(__file__).parent / "data" / "descriptor.rst"
    _, sections, _ = load_rst(path, path.read_bytes())

    chunks = chunk_sections("descriptor", sections, embedder.token_offsets, embedder.max_tokens, ChunkSettings())

    spans = [(c.char_start, c.char_end) for c in chunks]
    assert not [(a, b) for a, b in zip(spans, spans[1:]) if b[1] <= a[1]], spans
    assert sum("descriptor types." in c.text for c in chunks) == 1


def test_a_page_title_alone_before_a_long_section_makes_no_chunk(embedder):
    # every SQLite page: its title in a <div class="fancy_title">, a table of contents, then a first
    # <h1> section too long to fold the title into; the title alone was a chunk that resembled
    # every question about WAL and held no answer
    from ingest.formats.html import load_html

    body = " ".join(f"A write-ahead log appends changes to a separate file, number {n}." for n in range(60))
    page = (f"<html><head><title>Write-Ahead Logging</title></head><body><div class=fancy>"
            f"<div class=nosearch><div class=\"fancy_title\">\nWrite-Ahead Logging\n</div>"
            f"<div class=\"fancy_toc\"><a onclick=\"toggle_toc()\">Table Of Contents</a>"
            f"<div id=\"toc_sub\"><div class=\"fancy-toc1\"><a href=\"#overview\">1. Overview</a></div></div>"
            f"</div></div><h1 id=\"overview\"><span>1. </span>Overview</h1><p>{body}</p></div></body></html>").encode()
    title, sections, _ = load_html(Path("wal.html"), page)

    chunks = chunk_sections(title, sections, embedder.token_offsets, embedder.max_tokens, ChunkSettings())

    assert len(chunks) > 1
    assert all("number" in c.text for c in chunks)
    assert chunks[0].heading[-1] == "1. Overview"


def test_a_document_that_is_only_its_title_still_makes_its_chunk(embedder):
    chunks = chunk_sections("Release notes", [Section(text="Release Notes", heading=("Release notes",))],
                            embedder.token_offsets, embedder.max_tokens, ChunkSettings())

    assert [c.text for c in chunks] == ["Release Notes"]


def test_a_chunk_inside_a_long_option_description_is_read_under_the_option(embedder):
    # A manual page's "-d queue_id" entry runs over several chunks; the chunk holding 'Specify
    # "-d ALL" to remove all messages' began mid-sentence and never said which option it was about
    entry = "       -d queue_id\n" + "\n\n".join(
        "              " + prose(k, 3).replace(". ", ".\n              ") for k in range(6)) \
        + '\n\n              Specify "-d ALL" to remove all messages.\n'
    short = "       -v     Enable verbose logging for debugging purposes.\n" \
            "              Multiple -v options make the software increasingly verbose.\n"
    text = "       The command does maintenance jobs on the queue.\n\n" + entry + "\n" + short
    section = Section(text=text, heading=("DESCRIPTION",), code=((0, len(text)),))

    chunks = chunk_sections("postsuper(1)", [section], embedder.token_offsets, embedder.max_tokens,
                            ChunkSettings(100, 20))

    inside = [c for c in chunks if not c.text.startswith(("-d queue_id", "The command"))
              and "-v     Enable" not in c.text[:20]]
    assert len(chunks) > 3 and inside
    for c in chunks:
        if c.char_start > text.index("-d queue_id") and c.char_start < text.index("-v     Enable"):
            assert c.heading == ("DESCRIPTION", "-d queue_id"), (c.heading, c.text[:40])
            assert c.embed_text.startswith("postsuper(1) > DESCRIPTION > -d queue_id\n")
    assert any(c.heading == ("DESCRIPTION", "-d queue_id") and '"-d ALL"' in c.text for c in chunks)


def test_a_list_item_or_a_line_of_prose_is_no_term_to_read_a_chunk_under(embedder):
    # the Python docs' bullets ("* The sort routines use ``<`` when making comparisons") and
    # wrapped prose over an indented block were read as terms: 814 chunks carried a sentence's
    # first line in their heading path
    from ingest.chunk import _Structure

    text = ("* The sort routines use ``<`` when making comparisons\n  between two objects, so it is easy.\n\n"
            "- Install the package\n  with pip.\n\n"
            "Here is the command that you will want to run every day\n    $ make\n    $ make install\n\n"
            "       -d queue_id\n              Delete one message.\n\n"
            "parameter\n   A named entity in a function definition.\n")

    assert [term for _, _, term in _Structure(text).terms] == ["-d queue_id", "parameter"]
