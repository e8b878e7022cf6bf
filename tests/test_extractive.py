"""Extractive answers that answer: the sentences that answer the question, the command with the
line that introduces it, the table row that holds the value; on real files through the real
loaders, chunker, index and `Index.answer` (no LLM)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from rag.answer.extractive import choose, extractive_answer
from rag.markup import excerpt, excerpt_spans
from rag.types import Hit

DATA = Path(__file__).parent / "data"

LOCALE_PAGE = """<!DOCTYPE html>
<html><head><title>System configuration</title></head><body>
<h1>System configuration</h1>
<h2>The locale</h2>
<p>The system-wide default locale decides the language of messages, the character set of the
terminal and how dates, numbers and money are written for every user who does not set their own.
Each user can override the default locale with the LANG and LC_* variables in their shell profile,
and graphical desktops offer their own settings panel for it, which writes the same variables into
the session. Programs read the locale when they start, so a change of the default only shows in
programs started after it. Not every locale is generated on a fresh system: only those chosen at
installation time are. To generate more locales and set the system-wide default, reconfigure the
locales package as follows:</p>
<pre>$ sudo dpkg-reconfigure locales</pre>
<p>Select the locales to generate with the space bar, then choose the default among them. The
default is written to /etc/default/locale and applies to the next login.</p>
<h2>The keyboard</h2>
<p>The keyboard layout of the console is set in /etc/default/keyboard; desktops keep their own
layout per user. After editing the file, apply it to the running console with setupcon.</p>
</body></html>
"""

SIZES_PAGE = """<!DOCTYPE html>
<html><head><title>Installed packages</title></head><body>
<h1>Installed packages</h1>
<p>The packages below encrypt file systems. The version column gives the version in the stable (V)
and in the testing (I) distribution; the size is the installed size in KiB.</p>
<table>
<tr><th>Package</th><th>Version</th><th>Size</th><th>Description</th></tr>
<tr><td>cryptsetup</td><td>V:19, I:79</td><td>417</td><td>disk encryption support, startup scripts</td></tr>
<tr><td>cryptmount</td><td>V:3, I:4</td><td>231</td><td>mount and unmount of encrypted file systems by normal users</td></tr>
<tr><td>ecryptfs-utils</td><td>V:5, I:6</td><td>396</td><td>cryptographic stacked file system utilities</td></tr>
<tr><td>gocryptfs</td><td>V:2, I:3</td><td>5120</td><td>encrypted overlay file system written in Go</td></tr>
</table>
<p>All of them need the dm-crypt kernel module, which every stock kernel ships.</p>
</body></html>
"""


def make_hit(text: str, n: int = 1, similarity: float = 0.6) -> Hit:
    return Hit(chunk_id=n, path=f"docs/page{n}.html", page=None, heading=(), text=text, title="", score=1.0,
               similarity=similarity)


@pytest.fixture(scope="module")
def docs_index(tmp_path_factory, embedder):
    """An index over real files: the Python docs' csv page (reST), an HTML page with a command
    after "as follows:" and one with a table."""
    from ingest.chunk import ChunkSettings
    from ingest.pipeline import run_ingest
    from rag import Index
    from rag.config import load_settings
    from rag.storage.store import Store

    root = tmp_path_factory.mktemp("extractive")
    docs = root / "docs"
    docs.mkdir()
    shutil.copy(DATA / "csv.rst", docs / "csv.rst")
    (docs / "locale.html").write_text(LOCALE_PAGE, encoding="utf-8")
    (docs / "packages.html").write_text(SIZES_PAGE, encoding="utf-8")
    store = Store.open(root / "indexes" / "default", create=True)
    report = run_ingest([docs], store, embedder, ChunkSettings())
    assert report.ok, report.failures
    store.close()
    index = Index.open(load_settings({"index_dir": root / "indexes", "index": "default"}, environ={}))
    yield index
    index.close()


def answer(index, question: str) -> str:
    result = index.answer(question).result()
    assert result.mode == "extractive"
    return result.answer


def test_the_csv_question_is_answered_by_what_dictreader_does(docs_index):
    text = answer(docs_index, "How do I read rows of a CSV file as dictionaries?")

    reader = next(part for part in re.split(r"\[\d+\]", text) if "regular reader" in part)
    assert "Create an object that operates like a regular reader but maps the" in reader
    assert ".. class:: DictReader(f, fieldnames=None, restkey=None, restval=None, \\\n" in reader  # its signature whole
    assert "regular writer" not in text  # the question is about reading


def test_a_command_after_as_follows_is_quoted_with_its_introduction(docs_index):
    text = answer(docs_index, "How do I set the default locale for the whole system?")

    assert "reconfigure the locales package as follows:\n\n$ sudo dpkg-reconfigure locales" in text


def test_a_table_row_is_quoted_with_its_column_labels(docs_index):
    text = answer(docs_index, "What is the installed size of the cryptmount package?")

    assert "Package: cryptmount; Version: V:3, I:4; Size: 231;" in text


def test_an_introduction_is_never_a_piece_without_what_it_introduces():
    text = "Use the following command.\n\n$ git stash pop\n\nTo see what is stashed:\n\n$ git stash list\n"

    pieces = [excerpt(text, a, b) for a, b in excerpt_spans(text)]

    assert pieces == ["Use the following command.\n\n$ git stash pop", "To see what is stashed:\n\n$ git stash list"]


def test_a_term_on_a_line_of_its_own_stays_with_its_description():
    text = ("--depth <depth>\n\nCreate a shallow clone with a history truncated to the specified number of "
            "commits.\n\n--single-branch\n\nClone only the history leading to the tip of a single branch.")

    text_answer = extractive_answer("How do I clone only the most recent commits?", [make_hit(text)])

    assert text_answer.startswith("--depth <depth>\n\nCreate a shallow clone")


def test_the_sentence_that_answers_wins_over_the_one_that_repeats_the_question():
    passage = ("Sometimes you want to keep your uncommitted changes aside and come back to them later. "
               "The git stash push command saves them and resets the working tree to HEAD. "
               "Changes kept aside this way are listed by git stash list.")
    hits = [make_hit(passage), make_hit("Uncommitted changes are shown by git status.", 2, similarity=0.4)]

    pieces = choose("Which command keeps my uncommitted changes aside?", hits)

    first = hits[pieces[0].n - 1].text[pieces[0].start:pieces[0].end]
    assert "git stash push" in first and pieces[0].n == 1


def test_a_passage_that_shares_nothing_with_the_question_is_not_quoted():
    hits = [make_hit("Bake the loaf for forty minutes at 250 degrees."),
            make_hit("Tomatoes need six hours of sun.", 2, similarity=0.5)]

    assert extractive_answer("How long do I bake the loaf?", hits) == "Bake the loaf for forty minutes at 250 degrees. [1]"


TEMP_STORE = """SQLITE_TEMP_STORE=<0 through 3>

This option controls whether temporary files are stored on disk or in memory, for the temporary
tables, indices and views a statement needs, and for the files a VACUUM or a sort writes. The
meanings for various settings of this compile-time option are as follows:

SQLITE_TEMP_STORE: 0; Meaning: Always use temporary files
SQLITE_TEMP_STORE: 1; Meaning: Use files by default but allow the PRAGMA temp_store command to override
SQLITE_TEMP_STORE: 2; Meaning: Use memory by default but allow the PRAGMA temp_store command to override
SQLITE_TEMP_STORE: 3; Meaning: Always use memory

The default setting is 1."""


def test_the_row_a_question_names_by_a_single_digit_follows_the_table_introduction():
    # the introduction grows into the first rows only; the row the question names ("set to 3")
    # must still be quoted, and a one-digit number is a word of the question like any other
    others = [make_hit("The SQLITE_TEMP_STORE compile-time parameter is a #define whose value is an integer between 0 "
                       "and 3, inclusive. The meaning of the SQLITE_TEMP_STORE compile-time parameter is as follows.", 2),
              make_hit("Temporary files are always stored on disk regardless of the setting of the temp_store pragma.", 3),
              make_hit("The default value of the SQLITE_TEMP_STORE compile-time parameter is 1, which means to store "
                       "temporary files on disk.", 4)]
    answer = extractive_answer("If SQLite is compiled with SQLITE_TEMP_STORE set to 3, where are temporary files kept?",
                               [make_hit(TEMP_STORE), *others])
    assert "SQLITE_TEMP_STORE: 3; Meaning: Always use memory" in answer
    assert answer.index("as follows:") < answer.index("Always use memory")


def test_the_same_words_in_two_passages_are_quoted_once():
    # two identical pages (SQLite ships fileformat.html and fileformat2.html) must not fill the
    # answer with one excerpt twice and push out the sentence that answers
    repeated = ("The 4-byte big-endian integer at offset 28 into the header stores the size of the database "
                "file in pages. Older versions of SQLite ignored the in-header database size.")
    hits = [make_hit(repeated, 1, 0.62), make_hit(repeated, 2, 0.62),
            make_hit("The first 100 bytes of the database file comprise the database file header. The header "
                     "is divided into fields.", 3, 0.58)]
    answer = extractive_answer("How big is the header at the start of an SQLite database file?", hits)
    assert answer.count("offset 28 into the header") <= 1
    assert "100 bytes" in answer


def test_what_a_code_means_is_answered_by_the_sentence_that_says_what_it_indicates():
    passage = ("The SQLITE_BUSY result code: compare it with SQLITE_LOCKED in your error handler when a write fails.\n\n"
               "Extended result codes carry more detail in their upper bits.\n\n"
               "The SQLITE_BUSY result code indicates that the database file could not be written because of "
               "concurrent activity.")
    chosen = choose("What does the result code SQLITE_BUSY mean?", [make_hit(passage)], budget=120)
    assert "could not be written" in passage[chosen[0].start:chosen[0].end]


def test_a_command_example_is_quoted_with_the_paragraph_before_it():
    # no colon introduces the example, yet the paragraph says why it is there and the example how
    passage = ("The shell prints query results as columns unless told otherwise.\n\n"
               "Spreadsheets read another format, so set the mode first.\n\n"
               "sqlite> .mode csv\nsqlite> .once out.csv\nsqlite> SELECT * FROM tab1;\n\n"
               "Other modes are listed by .help mode.")

    chosen = choose("How do I get csv out of the shell?", [make_hit(passage)], budget=200)

    assert "so set the mode first.\n\nsqlite> .mode csv" in passage[chosen[0].start:chosen[0].end]


def test_the_prompt_of_an_example_is_not_a_word_of_the_question():
    # "sqlite>" before an unrelated example must not match the question's "sqlite3"
    hits = [make_hit("That only works on Windows. The equivalent line on a Mac would be:\n\nsqlite> .system open data.csv"),
            make_hit("To read a CSV file into a table, use .import with the file name and the table name.", 2)]

    text = extractive_answer("How do I import a csv into sqlite3?", hits)

    assert text.startswith("To read a CSV file into a table, use .import")


def test_which_tool_is_answered_by_the_sentence_that_names_one():
    # a piece that names an instance of the kind asked for ("the Valgrind tool") answers "which
    # tool"; the one that only repeats the question's words does not
    hits = [make_hit("Memory leaks in a C program are common when buffers are allocated in a loop and never freed."),
            make_hit("The Valgrind tool reports each memory block a program never freed, with where it was allocated.", 2)]

    text = extractive_answer("Which tool finds the memory leaks of a C program?", hits)

    assert text.startswith("The Valgrind tool reports")


def test_a_manual_page_that_names_the_command_for_the_task_is_quoted():
    # "rsync - a fast, versatile, remote (and local) file-copying tool": the name and what it does,
    # the answer to a how-to even though other words of the question are elsewhere
    hits = [make_hit("Files copied to another machine keep their names, and a copy is only as fast as the network.",
                     1, 0.62),
            make_hit("rsync - a fast, versatile, remote (and local) file-copying tool\n\nSYNOPSIS\n\n"
                     "rsync [OPTION...] SRC... [USER@]HOST:DEST", 2, 0.6)]

    text = extractive_answer("How do I copy files to another machine?", hits)

    assert "rsync - a fast, versatile, remote (and local) file-copying tool" in text


def test_a_how_to_is_answered_by_the_piece_that_names_the_clause_to_use():
    # "an ON CONFLICT DO NOTHING clause": a name in code form beside the kind of thing one types
    hits = [make_hit("An insert that hits a duplicate key is rolled back, and the old row is kept as it was."),
            make_hit("To let the insert skip a duplicate key without an error, give it an ON CONFLICT DO NOTHING "
                     "clause.", 2)]

    text = extractive_answer("How do I keep the old row when an insert hits a duplicate key?", hits)

    assert "give it an ON CONFLICT DO NOTHING clause. [2]" in text


FUNCTOOLS_PASSAGE = """   For sorting examples and a brief sorting tutorial, see :ref:`sortinghowto`.

   .. versionadded:: 3.2


.. decorator:: lru_cache(user_function)
               lru_cache(maxsize=128, typed=False)

   Decorator to wrap a function with a memoizing callable that saves up to the
   *maxsize* most recent calls.  It can save time when an expensive or I/O bound
   function is periodically called with the same arguments.

   The cache is threadsafe so the wrapped function can be used in multiple
   threads.
"""


def test_a_description_is_quoted_with_the_signature_it_describes():
    # the signature runs over two lines, so it is a piece of its own; the description names nothing
    question = "A function of mine is expensive and called again with the same arguments. How can I save time?"
    text = extractive_answer(question, [make_hit(FUNCTOOLS_PASSAGE)])

    assert "lru_cache(maxsize=128, typed=False)" in text
    assert text.index("lru_cache(user_function)") < text.index("Decorator to wrap a function")


def test_how_to_do_what_a_sentence_describes_is_quoted_with_it():
    # the GNU diffutils manual: the sentence that restates the question is followed by a
    # parenthesis and then by the one that names the option, past the room an excerpt grows by
    passage = ("If only one file exists, diff normally does not show its contents; it merely reports that one file "
               "exists but the other does not. You can make diff act as though the missing file is empty, so that it "
               "outputs the entire contents of the file that actually exists. (It is output as either an insertion "
               "or a deletion, depending on whether the missing file is in the first or the second position.) To do "
               "this, use the --new-file (-N) option. This option affects command-line arguments as well as files "
               "found via directory traversal.")
    question = ("When comparing two folders, how do I make a file that exists in only one of them show up as if the "
                "other copy were empty?")

    text = extractive_answer(question, [make_hit(passage)])

    assert "You can make diff act as though the missing file is empty" in text
    assert "To do this, use the --new-file (-N) option." in text


def test_a_sentence_ends_at_the_bracket_that_closes_after_its_stop():
    text = "First one here. (A remark in brackets ends here.) To do this, use the -N option. Last one."

    assert [text[a:b] for a, b in excerpt_spans(text, long=20)] == [
        "First one here.", "(A remark in brackets ends here.)", "To do this, use the -N option.", "Last one."]


def test_a_sentence_about_this_option_is_quoted_from_the_one_that_names_it():
    passage = ("The --ignore-space-change (-b) option ignores white space at line end. "
               "The --ignore-all-space (-w) option is stronger still. It ignores differences even if one line has "
               "white space where the other line has none. White space characters include tab, vertical tab, form "
               "feed, carriage return, and space; some locales may define additional characters to be white space. "
               "With this option, diff considers the following two lines to be equivalent, even inside lines "
               "where tabs and spaces differ:\n\n"
               "Here lyeth  muche  rychnesse in lytell space.--  John Heywood$\n"
               "  He relyeth much erychnes  seinly tells pace.  --John Heywood   ^M$\n\n"
               "These functions only work on text files.")
    question = "How do I compare two files but not care at all about spaces and tabs, even inside lines?"

    text = extractive_answer(question, [make_hit(passage)])

    assert "The --ignore-all-space (-w) option is stronger still." in text
    assert text.index("--ignore-all-space") < text.index("With this option")


PATCH_OPTIONS = (
    "See Merging Files with If-then-else. \n\n--dry-run\n\nPrint the results of applying the patches without actually "
    "changing any files. See Predicting what patch will do. \n\n-e\n\n--ed\n\nInterpret the patch file as an ed "
    "script. See Selecting the patch Input Format. \n\n-E\n\n--remove-empty-files\n\nRemove output files that are "
    "empty after the patches have been applied. See Creating and Removing Files. \n\n-f\n\n--force\n\nAssume that the "
    "user knows exactly what he or she is doing, and do not ask any questions. See Messages and Questions from "
    "patch. \n\n-F lines\n\n--fuzz=lines\n\nSet the maximum fuzz factor to lines. See Helping patch Find Inexact "
    "Matches. \n\n--help"
)


def test_an_options_list_is_quoted_one_entry_not_the_next_entries_its_room_reaches():
    # GNU diffutils' "Options to patch" (Texinfo HTML, a <dl>): the answer quoted --dry-run, then
    # -e/--ed, -E/--remove-empty-files and ended on "--force" with nothing after it
    answer = extractive_answer("How can I see what a patch would do without actually changing any of my files?",
                               [make_hit(PATCH_OPTIONS)])

    assert answer.startswith("--dry-run\n\nPrint the results of applying the patches without actually changing")
    assert "--ed" not in answer and "--force" not in answer and "--remove-empty-files" not in answer


def test_an_entry_asked_about_by_its_term_is_quoted_with_its_description():
    answer = extractive_answer("What does the --fuzz option of patch set?", [make_hit(PATCH_OPTIONS)])

    assert "-F lines\n\n--fuzz=lines\n\nSet the maximum fuzz factor to lines." in answer
    assert "--help" not in answer.split("fuzz factor to lines.")[1].split("[1]")[0]


DEBUG_PEERS = ("In /etc/postfix/main.cf, list the remote site name or address in the debug_peer_list parameter. For "
               "example, in order to make the software log a lot of information to the syslog daemon for connections "
               "from or to the loopback interface: \n\n\n/etc/postfix/main.cf:\n    debug_peer_list = 127.0.0.1\n\n\n\n"
               "You can specify one or more hosts, domains, addresses or net/masks. To make the change effective "
               "immediately, execute the command \"postfix reload\".")  # as Postfix's DEBUG_README reads in the index


def test_logging_is_a_word_for_log_and_an_example_is_quoted_with_what_it_illustrates():
    # Postfix's manual: "logging" was stemmed "logg", which matched no "log", so the answer quoted
    # only "You can specify one or more hosts ..." without the parameter it is about
    others = [  # the other four passages the Postfix index found, shortened
        make_hit("debug_peer_level (default: 2)\n\nThe increment in verbose logging level when a nexthop destination, "
                 "remote client or server name or network address matches a pattern given with the debug_peer_list "
                 "parameter. \n\nPer-nexthop debug logging is available in Postfix 3.6 and later.", 2, 0.447),
        make_hit("With a default per-destination concurrency limit of 20 connections, throughput falls to just over 1 "
                 "message per second. \n\nThe best way to avoid bottlenecks when one or more MX hosts is "
                 "non-responsive is to use connection caching.", 3, 0.232),
        make_hit("The scache(8) connection cache server logs statistics about the peak cache size and the cache hit "
                 "rates. \n\nHit rates for connection cache lookups by domain will tell you how useful connection "
                 "caching is. \n\nNo statistics are logged when no attempts are made to access the connection "
                 "cache.", 4, 0.359),
        make_hit("Postfix supports it own logging system as an alternative to syslog (which remains the default). "
                 "\n\nConfiguring logging to file \n\nConfiguring logging to stdout \n\nRotating logs", 5, 0.412)]
    answer = extractive_answer("How do I get much more detailed logging, but only for connections from one "
                               "particular host?", [make_hit(DEBUG_PEERS, 1, 0.559), *others], min_score=0.2)

    assert answer.startswith("In /etc/postfix/main.cf, list the remote site name or address in the debug_peer_list")
    assert "debug_peer_list = 127.0.0.1" in answer


def test_the_row_a_question_names_by_its_number_is_quoted_however_the_other_pieces_score():
    # once "settings" read as "set" (a word of the question), pieces about the temp_store setting
    # outscored the row of 3 and it fell under the share an excerpt must reach
    others = [make_hit("The default setting for the temp_store pragma is 0, which means to follow the recommendation "
                       "of the SQLITE_TEMP_STORE compile-time parameter when SQLite is compiled.", 2),
              make_hit("The temp_store pragma setting decides where temporary files are kept when SQLite was "
                       "compiled with SQLITE_TEMP_STORE set to 1 or 2: on disk or in memory.", 3)]
    answer = extractive_answer("If SQLite is compiled with SQLITE_TEMP_STORE set to 3, where are temporary files kept?",
                               [make_hit(TEMP_STORE), *others])

    assert "SQLITE_TEMP_STORE: 3; Meaning: Always use memory" in answer


def test_a_page_repeating_another_pages_instruction_is_quoted_once():
    # Postfix's BASIC_CONFIGURATION and INSTALL pages say the same with "as root" more or less;
    # quoted twice, the repeat took the place of the manual page's own words
    first = ("Whenever you make a change to the main.cf or master.cf file, execute the following command as root "
             "in order to refresh a running mail system:\n\n# postfix reload")
    again = ("Whenever you make a change to the main.cf or master.cf file, execute the following command in order "
             "to refresh a running mail system:\n\n# postfix reload")
    other = ("Unlike most Postfix daemon processes, the master(8) server does not automatically pick up changes "
             "to main.cf. Use the postfix reload command after a configuration change.")
    answer = extractive_answer("I changed main.cf. What do I run so that the running mail system picks up my change?",
                               [make_hit(first, 1, 0.62), make_hit(again, 2, 0.61), make_hit(other, 3, 0.55)])

    assert answer.count("# postfix reload") == 1 and "[2]" not in answer
    assert "does not automatically pick up changes" in answer


def test_the_example_after_an_excerpt_is_quoted_with_it():
    # Postfix's SOHO_README: the sentences that answer say what the mapping does; the setting to
    # type is in "The following example ...", a paragraph and a block the excerpt's room did not reach
    passage = ("Postfix 2.2 uses the generic(5) address mapping to replace local fantasy email addresses by valid "
               "Internet addresses. This mapping happens ONLY when mail leaves the machine; not when you send mail "
               "between users on the same machine. \n\n"
               "The following example presents additional configuration. You need to combine this with basic "
               "configuration information as discussed in the first half of this document. \n\n\n"
               "1 /etc/postfix/main.cf:\n2     smtp_generic_maps = hash:/etc/postfix/generic\n3 \n"
               "4 /etc/postfix/generic:\n5     his@localdomain.local             hisaccount@hisisp.example\n"
               "6     her@localdomain.local             heraccount@herisp.example\n\n\n\n"
               "When mail is sent to a remote host via SMTP: \n\nLine 5 replaces his@localdomain.local by his ISP "
               "mail address,")
    question = ("My machine's addresses look like user@box.local. How do I have them replaced by my real address at "
                "my ISP, only when mail leaves the machine?")

    text = extractive_answer(question, [make_hit(passage)])

    assert "This mapping happens ONLY when mail leaves the machine" in text
    assert "smtp_generic_maps = hash:/etc/postfix/generic" in text


ASYNC_PASSAGE = """entry point "main()" function (see the above example.)

* Awaiting on a coroutine.  The following snippet of code will
  print "hello" after waiting for 1 second, and then print "world"
  after waiting for *another* 2 seconds::

      import asyncio
      import time

      async def say_after(delay, what):
          await asyncio.sleep(delay)
          print(what)

      async def main():
          print(f"started at {time.strftime('%X')}")

          await say_after(1, 'hello')
          await say_after(2, 'world')

          print(f"finished at {time.strftime('%X')}")

      asyncio.run(main())

  Expected output::

      started at 17:13:52
      hello
      world
      finished at 17:13:55
"""


def test_an_example_too_long_to_show_keeps_the_line_that_runs_it():
    # The Python docs' asyncio-task.rst: clipped at SHOWN_CHARS, the example showed the coroutine
    # and not "asyncio.run(main())", the line that answers
    question = "How do I start an async main() coroutine from a normal synchronous script?"

    text = extractive_answer(question, [make_hit(ASYNC_PASSAGE)])

    assert "asyncio.run(main())" in text
    assert text.index("async def main():") < text.index("…") < text.index("asyncio.run(main())")
    assert len(text) < len(ASYNC_PASSAGE)


def test_a_clipped_option_list_or_continuation_line_is_not_brought_back():
    # an option list's entry, a comment and the inside of a call are no statement that answers
    options = "OPTIONS include:\n" + "".join(f"   -opt{k}                 set mode {k} for output\n" for k in range(40)) \
        + "   -cmd COMMAND         run \"COMMAND\" before reading the sqlite3 database (stdin)\n"
    question = "From the sqlite3 command-line tool, how do I run a command before reading stdin?"

    text = extractive_answer(question, [make_hit(options)])

    assert "-cmd COMMAND" not in text and text.removesuffix("[1]").rstrip().endswith("…")


def test_a_heading_is_shown_only_when_it_names_code_the_excerpt_does_not():
    from rag.answer.extractive import code_heading

    option = ("Command-line API", "Options", "`--max-old-space-size=SIZE` (in megabytes)")
    assert code_heading(option, "Sets the max memory size of V8's old memory section.") == \
        "`--max-old-space-size=SIZE` (in megabytes)"
    assert code_heading(option, "$ node --max-old-space-size=1536 index.js") == ""  # named already
    caveat = ("File system", "`fs.watch(filename[, options][, listener])`", "Caveats", "Availability")
    assert code_heading(caveat, "This feature depends on the operating system.") == \
        "`fs.watch(filename[, options][, listener])` > Caveats > Availability"
    # reST's literals and roles: their directive lines are in the text already
    assert code_heading(("Strings", "``s`` (:class:`str`) [const char \\*]"), "Convert a Unicode object.") == ""
    assert code_heading(("Guide", "Install"), "Run the installer.") == ""
