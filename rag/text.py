"""Words, stopwords and text hygiene shared by retrieval, generation and chat.

Pure functions over strings; nothing here imports a heavy library.
"""

from __future__ import annotations

import re
from typing import Sequence


class LazyPattern:
    """A regular expression compiled on first use: importing a module of them (which every `rag`
    command may pay) stays well under a millisecond; compiling all of them costs a few."""

    def __init__(self, pattern: str) -> None:
        self._pattern = pattern
        self._compiled: re.Pattern[str] | None = None

    def __getattr__(self, name: str):
        if self._compiled is None:
            self._compiled = re.compile(self._pattern)
        return getattr(self._compiled, name)


# Function words carry no topic; OR-ing them in only adds noise matches. Kept short on purpose.
STOPWORDS = frozenset(
    """a an and are as at be but by can could do does did for from had has have how i if in into is
    it its me my no not of on or our so such than that the their them then there these they this
    those to was we were what when where which while who whom why will with would you your yours
    should shall may might must am been being about after before over under up down out off again
    further once here all any both each few more most other some only own same too very just also
    get got let lets want need""".split()
)
WORD = re.compile(r"\w+", re.UNICODE)


def readable(text: str) -> str:
    """Text the tokenizer and SQLite accept: undecodable bytes from the shell become '?'."""
    # Python hands bytes that are not UTF-8 to us as lone surrogates; the tokenizer rejects them
    return text.encode("utf-8", "replace").decode("utf-8")


def clip(text: str, limit: int) -> str:
    """`text` cut to at most about `limit` characters at a word boundary, marked with " ..."."""
    return text if len(text) <= limit else text[:limit].rsplit(" ", 1)[0] + " ..."


def content_words(text: str) -> list[str]:
    return [w for w in WORD.findall(text) if w.lower() not in STOPWORDS]


def location(path: str, page: int | None, page_kind: str = "page") -> str:
    """Where a passage is: the path, and the page (slide, chapter) when there is one."""
    return path + (f", {page_kind} {page}" if page else "")


# Heading paths travel as tuples, one element a level (a level may itself hold " > "); they are
# joined only into text someone reads: Sources, the prompt, the embedding and reranking models.
HEADING_SEPARATOR = " > "


def heading_path(heading: Sequence[str]) -> str:
    """A heading path as one line of text: `Guide > Install`."""
    return HEADING_SEPARATOR.join(heading)


def text_key(text: str) -> str:
    """The key a chunk's embed text is stored and looked up by (the embedding cache): 128 bits of
    BLAKE2b, so two different texts never share a vector in practice."""
    import hashlib

    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()


# -- what a question names ------------------------------------------------------------------------

NAME_CODE_SPAN = LazyPattern(r"`([^`\n]+)`")
EMAIL_ADDRESS = LazyPattern(r"[\w.+-]*@[\w-]+(?:\.[\w-]+)+")
# an --option starts a word: the "-byte" of "1024-byte pages" is none
NAME_TOKEN = LazyPattern(r"(?<!\w)-{1,2}[A-Za-z][\w-]*|[A-Za-z][\w.+-]*[\w+]|[A-Za-z]|[.!?:;]")
ABBREVIATION = LazyPattern(r"[A-Za-z](?:\.[A-Za-z])+")  # e.g, i.e: no name, though dotted
# an identifier: a digit, an underscore, a dot inside, camelCase or an --option
IDENTIFIER = LazyPattern(r"\d|_|\w\.\w|[a-z][A-Z]|^-")
SHORT_OPTION = LazyPattern(r"-[A-Za-z]")
# a word of a name of several words ("GitHub Actions"): Capitalised, letters only and not all
# capitals, so a product and a keyword stay apart ("SQLite PRAGMA", "Amazon RDS")
TITLE_WORD = LazyPattern(r"[A-Z][A-Za-z]*[a-z][A-Za-z]*")


COMPOUND_TAIL = LazyPattern(r"(?:-[a-z]+)+$")  # "-heavy", "-based": plain words after a name
# what introduces an example of what is asked about, not the thing itself: "flags like --verbose"
EXAMPLE_MARK = LazyPattern(r"(?i)(?:\b(?:like|such\s+as|e\.g\.,?|for\s+example,?|for\s+instance,?|say,?)"
                           r"|\((?:e\.g\.,?\s*)?)\s*(?:(?:a|an|the)\s+)?$")
WANTING = LazyPattern(r"(?i)(?:'d|\bwould|\b(?:i|we|you|they))\s+like\s+(?:(?:a|an|the)\s+)?$")  # "I'd like SQLite to"


def question_names(question: str) -> list[str]:
    """What a question names: code spans, identifiers, and capitalised words that do not start a
    sentence ("GitLab", "PostgreSQL", "io_uring", "ggplot2", "--depth"; not "-u"), in order, each once;
    Capitalised words side by side as one name ("GitHub Actions"). The answer says "No passage
    mentions X" of the passages it was given (rag.answer.context.unmentioned); the cut-off refuses a
    question naming what the whole index lacks (rag.retrieval.relevance)."""
    found = [m.group(1).strip() for m in NAME_CODE_SPAN.finditer(question)]
    # an e-mail address is the asker's own ("my addresses look like user@box.local"): no document
    # names it, and none has to for the question to be covered
    text = EMAIL_ADDRESS.sub(" ", NAME_CODE_SPAN.sub(" ", question))
    # an option of one letter names nothing without its command: "the format that diff -u prints"
    # asks the Python docs about unified diffs, whose passages need not say "-u" (every tool has one)
    tokens = [t for t in NAME_TOKEN.finditer(text)
              if not SHORT_OPTION.fullmatch(t.group(0)) and not ABBREVIATION.fullmatch(t.group(0))]
    words = [w for w in (t.group(0) for t in tokens)
             if len(w) > 1 and w[0].isalpha() and w.lower() not in STOPWORDS and not IDENTIFIER.search(w)]
    # In a question Written In Title Case or IN CAPITALS a capital marks nothing: identifiers only
    capitals_mark_names = len(words) < 2 or not all(w[0].isupper() for w in words)
    first = True
    joins = -1  # where the last name ended, when a Capitalised word right after it may join it
    for token in tokens:
        word = token.group(0)
        if word in ".!?:;":
            first = True
            continue
        # a name with a plain word hyphened on is the name: "CPU-heavy JavaScript" names the CPU,
        # which a passage says as "CPU-intensive"; "Python-based" names Python
        head = word if IDENTIFIER.search(word) else COMPOUND_TAIL.sub("", word)  # app.db-journal is one name
        if IDENTIFIER.search(head) or (capitals_mark_names and len(head) > 1 and head[0].isupper() and not first
                                       and head.lower() not in STOPWORDS):
            title = bool(TITLE_WORD.fullmatch(word))
            if title and joins >= 0 and not text[joins:token.start()].strip():  # only spaces between
                found[-1] += " " + word
            else:
                found.append(head)
            joins = token.end() if title else -1
        else:
            joins = -1
        first = False
    return list(dict.fromkeys(found))


def example_names(question: str) -> set[str]:
    """The question's names (question_names) that it gives as examples ("flags like --verbose",
    "a format such as TOML"): what the user asks about is the kind, and a passage that answers
    need not mention the example."""
    out = set()
    for name in question_names(question):
        at = question.find(name)
        while at >= 0:
            before = question[max(0, at - 30):at].replace("`", "")
            if EXAMPLE_MARK.search(before) and not WANTING.search(before):
                out.add(name)
                break
            at = question.find(name, at + 1)
    return out
