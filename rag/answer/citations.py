"""Citation checking: does the text behind each [n] say what the answer's sentence claims?

`check_citations(answer, passages)` splits an answer into sentences and, for every [n] in a
sentence, finds the run of passage n (one to three of its sentences) that shares most content
words with the sentence, and calls the citation supported when that run covers more than half of
the sentence's content words and every number and name of the sentence occurs in passage n. It
needs no model and no second LLM call; a six-sentence answer over eight passages takes about ten
milliseconds.
`quote_for_extractive` gives the extractive answer (which quotes passages verbatim) the same
structure.

What counts as the same word (a correct citation rewords; measured on the labelled pairs of
bench/questions/citations.jsonl by bench/citations.py):
- case never matters ("url" is "URL");
- identifiers are compared by their parts, split at _ - . / and camelCase humps, so "URL-safe"
  is found in `token_urlsafe`, "lru cache" in `lru_cache`, "read only" in "read-only";
- two neighbouring words are also read as one ("lower case" is "lowercase", "hard-coding" is
  "hardcode"), the whole joined word and not its first six letters ("configuration file" is not
  "configuration"), and hyphenated lowercase words ("password-reset") are ordinary words, not names;
- inflections fold: content words by a light stem ("recovered" is "recovery"), names by their
  plural and possessive ("NaNs" is "NaN");
- word order never matters, and more than half of a sentence's content words are enough (a
  paraphrase); words of one SYNONYMS group ("computes", "calculates") are one word;
- given the question (an answer's sentences are checked with it), the words a sentence repeats from
  the question are what was asked, not what it claims (`answered`): "To read the rows of a CSV file
  as dicts keyed by the header, use csv.DictReader" is checked for csv.DictReader and its other
  words, since the passage that says it rarely uses the asker's words; when the sentence claims
  nothing beyond the question it is checked whole. Reading the pairs without their questions,
  bench/citations.py is unchanged by this; over the 12-07 Qwen answers replayed, three correct
  sentences of the Python docs' set called unsupported are now cited (py-01, py-08, py-15);
- a Sphinx role the model copied from a passage (:meth:`run`) is markup, not a word.
What stays strict (a wrong citation invents these):
- every number of the sentence, in digits or words ("forty-five" is 45, ".5" is 0.5; 40 is not
  45 and 2.10.0 is not 2.14.0);
- every name: words capitalised inside a sentence, ALL-CAPS words, code spans, --options,
  .dotfiles, calls ("unattach(...)"), snake_case, camelCase, dotted and digit-bearing
  identifiers ("BK-7", "x6"). A name's parts must stand together in the passage, in order, as
  whole parts: `token_hex` is not in "token_urlsafe ... hex", BK-7 is not BK-77. A dotted name is
  found when each of its dotted parts is ("MappingSubclass.update"), an --option only as written,
  and underscores around a name are part of it (`_rowid_` is not "rowid");
- every one-word item of a list ("clear, forget, diff and gc"): each item is a fact of its own.
What contradicts, though every word is there (the passage's words in a claim it does not make):
- a word the claim states plainly that the quoted span only negates, of the same thing ("exec
  lines are appended after every intermediate commit" against "will not be appended for the
  intermediate commits"); a claim with a negation of its own is not judged this way;
- a hyphenated word with one half changed ("queue-based" where the passage says "stack-based");
- a citation holding only part of the sentence when another passage of the answer, not cited,
  holds all of it: the cited chunk is the neighbour of the one that says it.
The reason of an unsupported citation names the missing number, name, item or content words, or
the passage's contradicting words.

Invariant: every `Citation.quote` is exactly `passages[n - 1][start:end]` (an empty quote with
start == end == 0 when there is nothing to quote, such as a citation to a passage never given),
so a reader or a UI can always point at the very characters that back a claim.

One module past 400 lines because what counts as the same word (stems, numbers, names), where
sentences begin and end, and the match are one definition of "supported", tuned together on
bench/questions/citations.jsonl; rag.answer.grounding reuses its pieces rather than a copy.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Iterator, Literal, Sequence

from rag.text import STOPWORDS
from rag.types import Citation

Kind = Literal["fact", "heading", "question", "refusal", "short"]


@dataclass(frozen=True)
class CitationReport:
    citations: list[Citation]
    unsupported: int  # citations not supported (including those to passages never given)
    uncited_sentences: int  # sentences stating facts without any citation


COVERAGE = 0.5  # a quoted span must hold more than this share of a sentence's content words
SHARE = 0.3  # in a sentence citing several passages, what each one must hold on its own
MAX_WINDOW = 3  # passage sentences a quote may span
CLAUSE_CHARS = 300  # passage sentences longer than this are cut into clauses
ABBREVIATION_MIN = 4  # a question word this long that begins a sentence's word asks for it ("dict", "dictionary")
MIN_FACT_WORDS = 3  # fewer content words than this: a connective ("Here is how:"), not a claim
# A sentence ending in ":" introduces what follows ("The steps are:", "Use the following command:");
# one with this many content words also claims something ("To set up nginx ..., you would pass the
# address of the proxy to the HTTPConnection constructor ... to the set_tunnel method::", Qwen on
# the Python docs) and is checked as any sentence is
MIN_INTRO_CLAIM_WORDS = 6

CITATION = re.compile(r"\[(\d{1,3}(?:\s*,\s*\d{1,3})*)\]")
CITATIONS_RUN = r"(?:\s*\[\d{1,3}(?:\s*,\s*\d{1,3})*\])*"
# a sentence ends at . ! ? (closing quotes and brackets may follow), then any citations placed
# after the period ("... done. [2]"), then white space or the end
SENTENCE_END = re.compile(r"[.!?]+[\"'\u201d\u2019)*_]*(" + CITATIONS_RUN + r")(?=\s|$)")
ABBREVIATIONS = frozenset(
    "e.g i.e eg ie etc vs cf approx ca fig figs no nos vol pp p eq dr mr mrs ms st jr sr inc ltd co resp "
    "esp viz al ch sec".split()
)
LIST_ITEM = re.compile(r"^\s*(?:[-*+\u2022]|\d{1,3}[.)])\s+")
HEADING = re.compile(r"^\s*#{1,6}\s(?![a-z])")  # "# postfix reload" is a root prompt (COMMAND_LINE)
FENCE = re.compile(r"^\s*(```|~~~)")
# A command typed at a prompt, written without a fence ("$ git clone -l -s -n . ../copy", ">>> len(x)",
# root's "# postfix reload": a "#" before a lowercase word is no Markdown heading, "% make"):
# a period in it ends no sentence, and what the prompt lines show is claimed with the sentence that
# introduces them ("Make a local clone ...:"), as the manual says them together
COMMAND_LINE = re.compile(r"^[ \t]*(?:[$%]|>>>|#(?=[ \t]+[a-z]))[ \t]+\S", re.M)
CONTINUATION_LINE = re.compile(r"[ \t]*\.\.\.(?:[ \t]|$)")  # ">>> f(1,\n...   2)"
CODE_SPAN = re.compile(r"`+[^`\n]*`+")
RST_ROLE = re.compile(r"(?<![\w:]):(?:[a-z]+:)?[a-z]+:(?=`)")  # :func:, :py:meth: before a code span
LINK = re.compile(r"\[([^\]\n]+)\]\([^)\s]+\)")
# "The documents do not cover this", "There is no information about X in the passages", "I don't
# know": a negation near a word for the documents. A plain negative fact ("Git does not track
# empty folders") is not a refusal.
_NOT = r"(?:do(?:es)?\s*n[o']t|did\s*n[o']t|cannot|can't|could\s*n[o']t|not|no|nothing)"
# the documents as the material given, behind a determiner: "the context", "the provided passages";
# not a domain word ("more than the number of lines of context in the diff", about patch's fuzz)
_DOCS = (r"(?:(?:the|these|those|this|provided|given|your|my|any|available)\s+(?:[\w-]+\s+)?"
         r"(?:documents?|passages?|context|sources?|manual|documentation)|(?:provided|given)\s+(?:text|information))")
# what the documents, as the subject, are said not to do: "the passages do not mention X", "the
# context doesn't specifically cover it"; not "when the context does not match exactly" (patch's)
_SAY = (r"(?:(?:\w+ly\s+)?(?:mention|cover|contain|say|include|provide|describe|specify|discuss|explain|address|"
        r"state|give|list|show|have|talk|refer|answer|seem|appear|deal|touch|offer)\w*|(?:about|related|relevant)\b)")
# between the documents and their negation, no clause of its own: "The manual recommends using diff
# on directories whose names do not have slashes" says what the manual says, and declines nothing
_OWN_CLAUSE = (r"(?:whose|which|that|who|whom|where|when|if|because|since|unless|while|"
               r"(?:recommend|suggest|say|state|explain|describe|show|note|warn|advise)s?)")
REFUSAL = re.compile(
    rf"\b{_NOT}\b[^.?!]{{0,80}}\b{_DOCS}\b"
    rf"|\b{_DOCS}\b(?:(?!\b{_OWN_CLAUSE}\b)[^.?!]){{0,60}}?\b{_NOT}\s+(?:be\s+|been\s+)?{_SAY}"
    r"|\bI (?:do not|don't) know\b|\bnot covered\b|\bI(?:'m| am) sorry\b|\bI can(?:'t|not) (?:help|assist|answer)\b",
    re.I,
)
# Words that frame a claim rather than make it ("According to the documents, ...")
FRAMING = frozenset(
    """according document documents passage passages context text mention mentions mentioned state states
    stated describe describes described explain explains explained provide provides provided say says said
    note notes noted information following use used using uses can also example instance like one way
    ways here simply basically specifically""".split()
)
CLAIM_STOPWORDS = STOPWORDS | FRAMING
# words (an apostrophe kept: "don't"), and numbers: 1,000 / 3.11 / .5
WORDS = re.compile(r"[A-Za-z][A-Za-z'\u2019]*|\d+(?:[.,]\d+)*|(?<![\w.])\.\d+")
HUMP = re.compile(r"(?<=[a-z])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z]{2,})")  # tokenUrlsafe, HTTPServer; not URLs
PARTS = re.compile(r"[A-Za-z0-9]+")  # an identifier's parts, between its separators
NOT_A_NAME = re.compile(r"\d+(?:[.,]\d+)*|[A-Za-z](?:\.[A-Za-z])+")  # 3.5, e.g
PROSE_TOKENS = re.compile(r"[A-Za-z][\w'\u2019]*|\S")
# --option and -x, .dotfile, then a word and whatever joins it to the next (snake_case, file.name,
# a/b, BK-7, http://x, link=probit, by=); `__init__` stays whole
IDENTIFIER = re.compile(r"(?<![\w-])-{1,2}[A-Za-z][\w-]*|(?<![\w.])\.[A-Za-z_]\w*|\w+(?:[-./:=]+\w+)*=?")
QUOTED = re.compile(r'"([^"\n]{1,40})"|\u201c([^\u201d\n]{1,40})\u201d')
CALL = re.compile(r"([A-Za-z_][\w.]*)\(([^()]*)\)?")  # a call, with or without its arguments: unattach(lentils)

NUMBER_WORDS = {
    w: i for i, w in enumerate(
        "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
        "sixteen seventeen eighteen nineteen".split()
    )
}
NUMBER_WORDS.update({w: 10 * i for i, w in enumerate("twenty thirty forty fifty sixty seventy eighty ninety".split(), 2)})
THOUSANDS = re.compile(r"\d{1,3}(?:,\d{3})+")
SCALES = {"hundred": 100, "thousand": 1000, "million": 1_000_000, "billion": 1_000_000_000}


# -- words, numbers and names ----------------------------------------------------------------------


# Words that technical prose uses interchangeably, each group read as one word ("computes" is
# "calculates", "typically" is "usually"): plain English, not any one manual's vocabulary, and
# never a word that is also a command or a function name of its own (fetch, print, make, drop).
SYNONYMS = (
    "compute calculate", "usually typically normally generally", "keep preserve retain",
    "remove delete erase", "show display", "start begin", "finish complete", "need require",
    "allow permit", "change modify alter", "obtain retrieve", "choose select pick", "whole entire",
    "several multiple", "big large", "fast quick", "error mistake", "incorrect wrong", "correct right",
    "locate find", "stop halt", "copy duplicate", "enough sufficient", "same identical",
    "often frequently", "instead rather", "necessary required", "possible feasible", "exactly precisely",
)


@lru_cache(maxsize=8192)
def stem(word: str) -> str:
    """A light stem, enough for "baked"/"bake", "moons"/"moon", "configuration"/"configure"; a
    word of a SYNONYMS group stems to its group's first word."""
    clipped = _unclipped_stem(word)[:6]
    return _SYNONYM_OF.get(clipped, clipped)


@lru_cache(maxsize=8192)
def joined_stem(first: str, second: str) -> str:
    """Two neighbouring words read as one ("hard coding" is "hardcode"), stemmed but not clipped
    to six letters: clipped, "configuration file" would read as "config" and match any passage
    that says "configuration", counting "file" as found."""
    return _unclipped_stem(first + second)


def _unclipped_stem(word: str) -> str:
    w = word.lower().replace("\u2019", "'")
    if w.endswith("'s"):
        w = w[:-2]
    w = w.strip("'")
    for suffix in ("ingly", "edly", "ations", "ation", "ments", "ment", "ings", "ing", "ies", "ied", "ed", "es", "s", "ly"):
        if not w.endswith(suffix) or len(w) - len(suffix) < 3:
            continue
        if suffix == "es" and not re.search(r"(?:s|x|z|ch|sh)es$", w):
            continue  # "stores" is store+s, "classes" is class+es
        if suffix == "s" and w.endswith("ss"):
            continue
        w = w[: -len(suffix)] + ("i" if suffix in ("ies", "ied") else "")
        break
    if len(w) > 3 and w.endswith("e"):
        w = w[:-1]
    return w


_SYNONYM_OF = {_unclipped_stem(word)[:6]: _unclipped_stem(group.split()[0])[:6]
               for group in SYNONYMS for word in group.split()}


def numbers(words: list[str], claim: bool = False) -> set[str]:
    """Numbers written in digits or words, normalised: "forty-five", "45" and "45.0" are not all
    equal, but "forty-five" and "45" are. In a claim a lone "one" is a pronoun, not a number."""
    found: set[str] = set()
    total = current = 0
    run: list[str] = []

    def flush() -> None:
        nonlocal total, current, run
        if run and not (claim and run == ["one"]):
            found.add(str(total + current))
        total = current = 0
        run = []

    for word in words:
        if word[0].isdigit() or word[0] == ".":
            flush()
            found.add(_number(word))
            continue
        w = word.lower()
        if w in NUMBER_WORDS:
            if run and current % 10 == 0 and current >= 20 and NUMBER_WORDS[w] < 10:
                current += NUMBER_WORDS[w]  # forty five
            elif run and run[-1] not in SCALES:
                flush()
                current = NUMBER_WORDS[w]
            else:
                current += NUMBER_WORDS[w]
            run.append(w)
        elif w in SCALES and run:
            if SCALES[w] >= 1000:
                total, current = total + max(current, 1) * SCALES[w], 0
            else:
                current = max(current, 1) * SCALES[w]
            run.append(w)
        elif w == "and" and run:
            continue  # "two hundred and fifty"
        elif run:
            flush()
    flush()
    return found


def _words(text: str) -> list[str]:
    # "forty-five" is two number words; "password-reset" two words; "tokenUrlsafe" two words too
    return [w for word in WORDS.findall(text.replace("-", " ")) for w in HUMP.split(word)]


def parts(text: str) -> list[str]:
    """The lowercase parts of text's words and identifiers, split at separators and camelCase
    humps: `token_urlsafe` is token, urlsafe; "URL-safe" is url, safe; "NaN" is na, n."""
    return [p.lower() for piece in PARTS.findall(text) for p in HUMP.split(piece) if p]


def _number(word: str) -> str:
    if "," in word and THOUSANDS.fullmatch(word):
        return word.replace(",", "")
    return "0" + word if word.startswith(".") else word


@dataclass(frozen=True)
class Claim:
    """What a sentence claims, ready to be checked against passages."""

    words: dict[str, str]  # content-word stem -> the word as written (the first one with that stem)
    joins: tuple[tuple[str, str, str], ...]  # neighbouring words (stem, stem, stem of the two as one word)
    numbers: frozenset[str]
    names: frozenset[str]
    items: tuple[str, ...]  # the one-word items of a list ("clear, forget, diff and gc")


def read_claim(claim: str) -> Claim:
    text = CODE_SPAN.sub(lambda m: m.group(0).strip("`"), claim)
    words = _words(text)
    wanted: dict[str, str] = {}
    joins = []
    content = [w for w in words if not w[0].isdigit() and not w.startswith(".")]
    for word in content:
        # a number in words ("two hundred and fifty") is one of the claim's numbers, checked as such
        if word.lower() not in CLAIM_STOPWORDS and len(word) > 1 and word.lower() not in NUMBER_WORDS \
                and word.lower() not in SCALES:
            wanted.setdefault(stem(word), word)
    for a, b in zip(content, content[1:]):
        if a.lower() not in CLAIM_STOPWORDS and b.lower() not in CLAIM_STOPWORDS:
            joins.append((stem(a), stem(b), joined_stem(a, b)))
    return Claim(words=wanted, joins=tuple(joins), numbers=frozenset(numbers(words, claim=True)),
                 names=frozenset(names(claim)), items=listed_items(text))


def content_stems(text: str) -> set[str]:
    """A passage's content-word stems, numbers, and the stems of neighbouring words read as one
    (beside each word's own unclipped stem, so that "lower case" finds "lowercase")."""
    words = _words(text)
    content = [w for w in words if not w[0].isdigit() and not w.startswith(".")]
    stems = {stem(w) for w in content if w.lower() not in CLAIM_STOPWORDS and len(w) > 1}
    stems |= {_unclipped_stem(w) for w in content if len(w) > 1}  # longer than six letters: only a join matches it
    stems |= {joined_stem(a, b) for a, b in zip(content, content[1:])}
    return stems | numbers(words)


def names(claim: str) -> set[str]:
    """What must occur in the passage (compared by parts, ignoring case; see the module's rules):
    code spans' tokens, --options, .dotfiles, calls, identifiers (snake_case, camelCase, dotted,
    slashed, with digits), ALL-CAPS words and capitalised words that do not start the sentence."""
    found: set[str] = set()
    for span in CODE_SPAN.findall(claim):
        found.update(t.strip(".:/") for t in IDENTIFIER.findall(span.strip("`")) if len(t) > 1 and not t.isdigit())
        found.discard("=")
    prose = CODE_SPAN.sub(" ", claim)
    for quoted in (a or b for a, b in QUOTED.findall(prose)):  # what it quotes: "wal", "division by zero!"
        if re.search(r"[A-Za-z0-9]", quoted):
            found.add(quoted.strip())
    for name, arguments in CALL.findall(prose):  # a call's name, and the names it is given: detach(lentils)
        given = re.findall(r"(?<![\w.'\"])[A-Za-z_]\w+(?![\w'\"(])", arguments)
        found.update(n for n in given if len(n) > 1 and n.lower() not in CLAIM_STOPWORDS)
        if len(name) > 1:
            found.add(name + "()")  # a function is named exactly: assign() is not "assigns"
    for token in IDENTIFIER.findall(prose):
        token = token.rstrip(".:/-")
        if len(token) < 2 or NOT_A_NAME.fullmatch(token):
            continue
        letters_only = re.fullmatch(r"[A-Za-z]+(?:-[A-Za-z]+)*", token)
        if token[0] in "-." or "_" in token or re.search(r"[./:=]\w|=$", token) or HUMP.search(token) \
                or (not letters_only and re.search(r"[A-Za-z]", token)):
            found.add(token)  # hyphenated plain words ("password-reset") are words, not names
    first = True
    for word in PROSE_TOKENS.findall(prose):
        if not word[0].isalpha():
            first = first or word in ".!?:"  # a colon starts a new clause too
            continue
        bare = re.sub(r"['\u2019]s$", "", word)
        if len(bare) > 1 and bare.lower() not in CLAIM_STOPWORDS and (bare.isupper() or (bare[0].isupper() and not first)) \
                and not HUMP.search(bare):
            found.add(bare)
        first = False
    return {name for name in found if name + "()" not in found}  # a call is named once, as a call


def _has_run(key: str, words: Sequence[str]) -> bool:
    """Whether some run of consecutive `words` spells `key` exactly."""
    for i, word in enumerate(words):
        joined = word
        j = i
        while key.startswith(joined) and len(joined) < len(key) and j + 1 < len(words):
            j += 1
            joined += words[j]
        if joined == key:
            return True
    return False


def _spellings(key: str) -> set[str]:
    found = {key, key + "s", key + "es"}  # the passage's plural ...
    if key.endswith("s") and len(key) > 2:
        found.add(key[:-1])  # ... or the claim's
    if key.endswith("es") and len(key) > 4:
        found.add(key[:-2])
    return found


def name_found(name: str, passage_lower: str, passage_parts: Sequence[str]) -> bool:
    """Whether the passage mentions `name` (see the module docstring for the rules)."""
    if name.startswith("-"):  # an option only as written, or in the --[no-]name form
        return name.lower() in passage_lower or name.lower() in passage_lower.replace("[no-]", "") \
            or name.lower() in passage_lower.replace("[no-]", "no-")
    if name.endswith("="):  # a keyword argument: by=, step=
        return re.search(r"(?<![\w.])" + re.escape(name[:-1].lower()) + r"\s*=", passage_lower) is not None
    bare = name.removesuffix("()")
    if bare[:1] == "_" or bare[-1:] == "_":  # _rowid_ is not rowid, __init__ not init
        return re.search(r"(?<!\w)" + re.escape(bare.lower()) + r"(?!\w)", passage_lower) is not None
    exact = name.endswith("()")
    pieces = [parts(piece) for piece in re.split(r"(?<=\w)\.(?=[A-Za-z_])", name.removesuffix("()"))]
    return all(any(_has_run(key, passage_parts) for key in ({"".join(p)} if exact else _spellings("".join(p))))
               for p in pieces if p)


# -- what a sentence says about its words, beyond naming them ----------------------------------------

# a list of three or more one-word items: "clear, forget, diff and gc", "openssh, plink or putty"
LIST_ITEM_WORD = r"[A-Za-z][\w.]*(?:-[A-Za-z]\w*)*"
LISTED = re.compile(rf"(?<![\w.-])((?:{LIST_ITEM_WORD},\s+)+{LIST_ITEM_WORD},?\s+(?:and|or)\s+{LIST_ITEM_WORD})(?![\w-])")
# a negation of the word after it ("not be appended"); "no" negates a noun's being there ("no
# configuration is needed"), which a plain mention of the noun does not contradict
NEGATIONS = frozenset("not never cannot".split())
# what makes a claim negative somewhere, so that the plain-versus-negated rule leaves it alone
CLAIM_NEGATIONS = NEGATIONS | frozenset("no nor neither none nothing without".split())
# what may stand between a negation and the word it negates: "not be appended", "never always"
NEGATION_GAP = frozenset("be been being the a an to have has yet always also even necessarily ever".split())
OPTION_SPELLING = re.compile(r"(?<![\w-])-{1,2}[A-Za-z][\w-]*|\[no-\]")  # --no-keep-index negates nothing
PLAIN_WORD = re.compile(r"[A-Za-z][A-Za-z'\u2019]*")
# a hyphenated word, also when a line break cuts it ("stack-\nbased")
COMPOUND = re.compile(r"(?<![\w-])([A-Za-z]+)-\n?[ \t]*([A-Za-z]+)(?![\w-])")


def listed_items(claim: str) -> tuple[str, ...]:
    """The one-word items of the claim's lists: each is a fact of its own (a subcommand, a value),
    so a list with one item the passage lacks is not what the passage says, however many others
    it shares."""
    prose = CODE_SPAN.sub(" ", claim)
    items = (item.rstrip(".") for found in LISTED.findall(prose) for item in re.split(r",?\s+(?:and|or)\s+|,\s+", found))
    return tuple(item for item in items if item.lower() not in CLAIM_STOPWORDS and len(item) > 1)


def item_found(item: str, passage_stems: set[str], passage_lower: str, passage_parts: Sequence[str]) -> bool:
    return stem(item) in passage_stems or name_found(item, passage_lower, passage_parts)


def _is_negation(word: str, negations: frozenset[str] = NEGATIONS) -> bool:
    w = word.lower().replace("\u2019", "'")
    return w in negations or w.endswith("n't")


def _prose_only(text: str) -> str:
    return OPTION_SPELLING.sub(" ", CODE_SPAN.sub(" ", text))


@dataclass(frozen=True)
class _Said:
    """One content word of a sentence: whether a negation governs it, and its neighbours."""

    key: str  # its stem
    negation: str  # the words from the negation to it ("not be appended"), or "" when said plainly
    before: tuple[str, ...]  # stems of the two content words before it in its sentence
    after: tuple[str, ...]  # stems of the two content words after it


def said(text: str) -> list[_Said]:
    """Each content word of text as it is said. A negation governs the next word, auxiliaries and
    articles skipped ("not be appended"), within its sentence."""
    text = _prose_only(text)
    out: list[_Said] = []
    for start, end in passage_units(text):
        words: list[tuple[str, str]] = []  # (stem, negation)
        since: int | None = None
        for word in PLAIN_WORD.finditer(text[start:end]):
            w = word.group(0)
            if _is_negation(w):
                since = word.start()
                continue
            if since is not None and w.lower() in NEGATION_GAP:
                continue
            if w.lower() not in CLAIM_STOPWORDS and len(w) > 1:
                negation = "" if since is None else " ".join(text[start + since:start + word.end()].split())
                words.append((stem(w), negation))
            since = None
        keys = [key for key, _ in words]
        out += [_Said(key, negation, tuple(keys[max(0, i - 2):i]), tuple(keys[i + 1:i + 3]))
                for i, (key, negation) in enumerate(words)]
    return out


def denied(claim: str, quote: str) -> list[str]:
    """What the quoted span says only in the negative about a word the claim states plainly, with
    the same word after it (or before it, at the claim's end): "exec lines are appended after every
    intermediate commit" against "will not be appended for the intermediate commits". Git "does
    not track empty folders" does not deny "Git tracks only files". A claim with a negation of its
    own is left alone: which of its words it denies is not a thing word order tells reliably."""
    if any(_is_negation(w, CLAIM_NEGATIONS) for w in PLAIN_WORD.findall(_prose_only(claim))):
        return []
    quoted = said(quote)
    out = []
    for word in said(claim):
        there = [q for q in quoted if q.key == word.key]
        if not there or any(not q.negation for q in there):
            continue
        near = [q for q in there if set(q.after) & set(word.after) or
                (not word.after and set(q.before) & set(word.before))]
        if near and near[0].negation not in out:
            out.append(near[0].negation)
    return out


def changed_compounds(claim: str, passage: str, passage_parts: Sequence[str]) -> list[tuple[str, str]]:
    """(the claim's hyphenated word, the passage's) where the two share one part and differ in the
    other ("queue-based" where the passage says "stack-based") and the passage nowhere has the
    claim's own: a compound is one term, and changing half of it changes the term."""
    theirs = {(a.lower(), b.lower()) for a, b in COMPOUND.findall(passage)}
    out = []
    for a, b in COMPOUND.findall(CODE_SPAN.sub(" ", claim)):
        a, b = a.lower(), b.lower()
        if _has_run(a + b, passage_parts):
            continue
        for x, y in sorted(theirs):
            if _same_word(x, a) != _same_word(y, b):
                out.append((f"{a}-{b}", f"{x}-{y}"))
    return out


def _same_word(one: str, other: str) -> bool:
    return stem(one) == stem(other) or one in _spellings(other) or other in _spellings(one)  # "ins" is "in"


# -- splitting text into sentences --------------------------------------------------------------


def _is_boundary(text: str, match: re.Match) -> bool:
    before = text[: match.start()]
    word = re.search(r"([A-Za-z][A-Za-z.]*)$", before)
    if match.group(0)[0] == "." and word:
        w = word.group(1).lower().rstrip(".")
        if w in ABBREVIATIONS or re.fullmatch(r"[a-z](?:\.[a-z])+", w):
            return w == "etc" and _next_starts_upper(text, match.end())
        if len(word.group(1)) == 1 and word.group(1).isupper():
            return False  # an initial: "J. Smith"
    return not _next_is_lower(text, match.end())


def _next_is_lower(text: str, at: int) -> bool:
    rest = text[at:].lstrip()
    return bool(rest) and rest[0].islower()


def _next_starts_upper(text: str, at: int) -> bool:
    rest = text[at:].lstrip()
    return bool(rest) and not rest[0].islower()


def sentence_spans(text: str, start: int = 0, end: int | None = None) -> Iterator[tuple[int, int]]:
    """(start, end) of each sentence of text[start:end], white space trimmed."""
    end = len(text) if end is None else end
    piece = text[start:end]
    cut = 0
    for match in SENTENCE_END.finditer(piece):
        if _is_boundary(piece, match):
            yield from _trimmed(text, start + cut, start + match.end())
            cut = match.end()
    yield from _trimmed(text, start + cut, end)


def _trimmed(text: str, start: int, end: int) -> Iterator[tuple[int, int]]:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    if start < end:
        yield start, end


def passage_units(text: str) -> list[tuple[int, int]]:
    """Sentences of a passage (long ones cut into clauses), as spans of the original text."""
    units: list[tuple[int, int]] = []
    cut = 0
    for brk in re.finditer(r"\n[ \t]*\n|\n(?=[ \t]*(?:[-*+\u2022]|\d{1,3}[.)])[ \t])", text):
        units += _clauses(text, cut, brk.start())
        cut = brk.end()
    units += _clauses(text, cut, len(text))
    return units


def _clauses(text: str, start: int, end: int) -> list[tuple[int, int]]:
    out = []
    for s, e in sentence_spans(text, start, end):
        if e - s <= CLAUSE_CHARS:
            out.append((s, e))
            continue
        cut = s
        for brk in re.finditer(r"(?<=[;:])\s+|\n", text[s:e]):
            if s + brk.start() - cut >= 40:  # clauses of a few words would make poor quotes
                out += _trimmed(text, cut, s + brk.start())
                cut = s + brk.end()
        out += _trimmed(text, cut, e)
    return out


@dataclass(frozen=True)
class Sentence:
    text: str  # as written in the answer, list marker and outer white space removed
    numbers: tuple[int, ...]  # the citations, in order, each once
    kind: Kind


def _mask(text: str) -> str:
    # code spans keep their length (offsets stay valid) but can hold neither a period nor a [n]
    return CODE_SPAN.sub(lambda m: "`" + "x" * (len(m.group(0)) - 2) + "`", text)


def answer_sentences(answer: str) -> list[Sentence]:
    """The answer's sentences: Markdown headings, list items and paragraphs split, fenced code
    left out, citations placed after a period kept with the sentence they follow."""
    masked = _mask(answer)
    blocks: list[tuple[int, int, bool]] = []  # (start, end, is_heading)
    in_fence = False
    block_start: int | None = None
    offset = 0
    for line in answer.splitlines(keepends=True):
        line_start, offset = offset, offset + len(line)
        stripped = line.strip()
        if FENCE.match(line):
            in_fence = not in_fence
            if block_start is not None:
                blocks.append((block_start, line_start, False))
                block_start = None
            continue
        if in_fence:
            continue
        if not stripped or HEADING.match(line) or LIST_ITEM.match(line):
            if block_start is not None:
                blocks.append((block_start, line_start, False))
                block_start = None
            if HEADING.match(line):
                blocks.append((line_start, offset, True))
                continue
            if not stripped:
                continue
        if block_start is None:
            block_start = line_start + len(LIST_ITEM.match(line).group(0)) if LIST_ITEM.match(line) else line_start
    if block_start is not None:
        blocks.append((block_start, len(answer), False))

    sentences: list[Sentence] = []
    introduced: int | None = None  # where the sentence before began, when it introduces what follows (":")
    for start, end, is_heading in blocks:
        spans = [(start, end)] if is_heading else list(_block_spans(masked, start, end))
        if spans and introduced is not None and COMMAND_LINE.match(masked, start):
            sentences.pop()  # the introduction and its commands are one claim
            spans[0] = (introduced, spans[0][1])
        introduced = None
        for s, e in spans:
            text, cites = answer[s:e].strip(), _citation_numbers(masked[s:e])
            if not CITATION.sub("", masked[s:e]).strip(" \t\n.,;:") and sentences and cites:
                # a run of citations standing alone ("... done.\n[2]") belongs to the sentence before
                last = sentences[-1]
                sentences[-1] = Sentence(last.text + " " + text, _unique(last.numbers + cites), last.kind)
                continue
            sentences.append(Sentence(text, cites, "heading" if is_heading else _kind(text)))
            introduced = s if not is_heading and CITATION.sub("", text).rstrip().endswith(":") else None
    return sentences


def _block_spans(masked: str, start: int, end: int) -> list[tuple[int, int]]:
    """The sentences of a paragraph, each run of command lines one span with the sentence that
    introduces it (":"); a run goes on over a line continued ("\\" at its end, "... " next)."""
    spans: list[tuple[int, int]] = []
    at = start
    while (command := COMMAND_LINE.search(masked, at, end)) is not None:
        before = list(sentence_spans(masked, at, command.start()))
        run_start = command.start()
        if before and CITATION.sub("", masked[slice(*before[-1])]).rstrip().endswith(":"):
            run_start = before.pop()[0]
        line_end = masked.find("\n", command.start(), end)
        while 0 <= line_end < end:
            next_end = masked.find("\n", line_end + 1, end)
            following = masked[line_end + 1:end if next_end < 0 else next_end]
            if not continues_command(masked[masked.rfind("\n", 0, line_end) + 1:line_end], following):
                break
            line_end = next_end
        at = end if line_end < 0 else line_end
        spans += before + list(_trimmed(masked, run_start, at))
    return spans + list(sentence_spans(masked, at, end))


def continues_command(line: str, following: str) -> bool:
    """Whether `following` goes on the run of command lines that `line` ends: a command of its
    own, a "... " continuation, or the rest of a line continued with a backslash."""
    return (line.rstrip(" \t").endswith("\\") or COMMAND_LINE.match(following) is not None
            or CONTINUATION_LINE.match(following) is not None)


def _citation_numbers(text: str) -> tuple[int, ...]:
    return _unique(tuple(int(n) for group in CITATION.findall(text) for n in group.split(",")))


def _unique(items: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(dict.fromkeys(items))


def clean_claim(text: str) -> str:
    """The sentence without its citations and Markdown markup, for matching."""
    text = LINK.sub(r"\1", text)
    text = CITATION.sub(" ", text)
    text = RST_ROLE.sub("", text)  # :meth:`run` copied from a Sphinx source claims run, not "meth"
    text = re.sub(r"^\s*#{1,6}\s+", "", text)
    text = re.sub(r"\*\*|(?<!\w)\*|\*(?!\w)", "", text)
    # __emphasis__ and _emphasis_ lose their marks; one word in them (__init__, _private_) is a name
    text = re.sub(r"(?<![\w`])(__?)(?=\S)(.+?)(?<=\S)\1(?!\w)",
                  lambda m: m.group(0) if re.fullmatch(r"_*\w+", m.group(0)) else m.group(2), text)
    return " ".join(text.split())


def _kind(text: str) -> Kind:
    claim = clean_claim(text)
    if claim.endswith("?"):
        return "question"
    words = [w for w in _words(CODE_SPAN.sub(" x ", claim)) if w.lower() not in CLAIM_STOPWORDS]
    if claim.endswith(":") and len(words) < MIN_INTRO_CLAIM_WORDS:
        return "heading"  # "The steps are:" introduces what follows
    if REFUSAL.search(claim):
        return "refusal"
    return "short" if len(words) < MIN_FACT_WORDS else "fact"


# -- matching a sentence against a passage ------------------------------------------------------


@dataclass(frozen=True)
class _Match:
    start: int
    end: int
    matched: frozenset[str]
    coverage: float


class _Passage:
    """A passage prepared once per check: its units, their stems, its words, parts and numbers."""

    def __init__(self, text: str):
        self.text = text
        self.lower = text.lower()
        self.parts = parts(text)
        self.units = passage_units(text)
        self.unit_stems = [content_stems(text[s:e]) for s, e in self.units]
        self.numbers = numbers(_words(text))
        self.stems = set().union(*self.unit_stems)

    def best_span(self, claim: str, wanted: Claim) -> _Match:
        # most claim words first, then the shortest run, then (fuzzy, only among the ties) the
        # closest wording
        best_key, ties = None, []
        for i in range(len(self.units)):
            stems: set[str] = set()
            for j in range(i, min(i + MAX_WINDOW, len(self.units))):
                stems |= self.unit_stems[j]
                matched = _matched(wanted, stems)
                key = (len(matched), i - j)
                if best_key is None or key > best_key:
                    best_key, ties = key, [(i, j, matched)]
                elif key == best_key:
                    ties.append((i, j, matched))
        if not ties or not best_key[0]:
            return _Match(0, 0, frozenset(), 0.0)
        if len(ties) == 1:
            i, j, matched = ties[0]
        else:
            from rapidfuzz import fuzz  # imported when first needed: a cold `rag ask` often never ties

            i, j, matched = max(ties, key=lambda t: fuzz.token_set_ratio(claim, self.text[self.units[t[0]][0]:self.units[t[1]][1]]))
        return _Match(self.units[i][0], self.units[j][1], frozenset(matched), len(matched) / len(wanted.words))


def _name_span(passage: _Passage, claim: Claim) -> _Match | None:
    """The first sentence of the passage naming what the claim names (all of it, else any of it)."""
    for needed in (all, any):
        for start, end in passage.units:
            unit = passage.text[start:end]
            lower, unit_parts = unit.lower(), parts(unit)
            if needed(name_found(name, lower, unit_parts) for name in claim.names):
                return _Match(start, end, frozenset(claim.names), 1.0)
    return None


def _matched(claim: Claim, stems: set[str]) -> set[str]:
    """The claim's content words found among `stems`, two neighbouring words also as one."""
    found = claim.words.keys() & stems
    for a, b, joined in claim.joins:
        if joined in stems:
            found |= {a, b} & claim.words.keys()
    return found


def check_citations(answer: str, passages: Sequence[str], question: str = "") -> CitationReport:
    """Every [n] of the answer checked against passages[n - 1]; uncited factual sentences counted.
    With the `question`, the words a sentence repeats from it are not its claim (`answered`)."""
    prepared: dict[int, _Passage] = {}
    citations: list[Citation] = []
    uncited = 0
    for sentence in answer_sentences(answer):
        if not sentence.numbers:
            uncited += sentence.kind == "fact"
            continue
        citations += _check_sentence(sentence, passages, prepared, question)
    return _report(citations, uncited)


def answered(claim: Claim, question: str) -> Claim | None:
    """What a sentence claims beyond the question it answers, or None when that is nothing.

    An answer restates its question ("To read the rows of a CSV file as dicts keyed by the header,
    use csv.DictReader"; "Counter() is the simplest way to count how many times each word occurs");
    the passage that says it rarely repeats the asker's words ("keyed", "simplest", "synchronous
    script"), and the sentence was called unsupported although its answer, the name, is the
    passage's. The question's words are what was asked, not what is claimed: the claim left is the
    sentence's other content words, its numbers and every name (the question's too, so that an
    answer about nginx still needs a passage mentioning nginx). When that claim has neither a word
    nor a name of its own, the sentence only restates the question, and is checked whole."""
    if not question:
        return None
    asked = content_stems(question)
    # a question's short form is asked too ("dict" asks for a dictionary, "repo" for a repository)
    short = {w.lower() for w in _words(question) if len(w) >= ABBREVIATION_MIN and w.lower() not in CLAIM_STOPWORDS}
    lower, question_parts = question.lower(), parts(question)
    own_names = [name for name in claim.names if not name_found(name, lower, question_parts)]
    # the words of a name the question does not hold are what the sentence claims, as any other
    # word of it ("run `newaliases` after changing the aliases file": newaliases, run, file)
    named = {stem(part) for name in claim.names if name not in own_names for part in parts(name)}
    words = {key: word for key, word in claim.words.items()
             if key not in asked and key not in named and not any(word.lower().startswith(w) for w in short)}
    if len(words) == len(claim.words) or not (words or own_names):
        return None
    joins = tuple(join for join in claim.joins if join[0] in words or join[1] in words)
    return Claim(words=words, joins=joins, numbers=claim.numbers, names=claim.names, items=claim.items)


def _report(citations: list[Citation], uncited: int) -> CitationReport:
    return CitationReport(citations=citations, unsupported=sum(not c.supported for c in citations),
                          uncited_sentences=uncited)


def _missing_words(claim: Claim, matched: frozenset[str], most: int = 4) -> str:
    words = [word for key, word in claim.words.items() if key not in matched]
    return ", ".join(words[:most]) + (f" and {len(words) - most} more" if len(words) > most else "")


def _contradiction(claim_text: str, passage: _Passage, match: _Match, cited: list[_Passage]) -> str | None:
    """What the passage says against the claim in words the claim shares with it: a negation of a
    word the claim states plainly (in the quoted span), or a hyphenated word of the claim with one
    half changed (when no cited passage has the claim's own)."""
    negatives = denied(claim_text, passage.text[match.start:match.end]) if match.matched else []
    if negatives:
        return ", ".join(f'"{phrase}"' for phrase in negatives)
    changed = [pair for pair in changed_compounds(claim_text, passage.text, passage.parts)
               if not any(_has_run(pair[0].replace("-", ""), other.parts) for other in cited)]
    if changed:
        return ", ".join(f"{theirs}, not {ours}" for ours, theirs in changed)
    return None


# A passage that pairs numbers with what they mean ("An exit status of 0 means no differences were
# found, 1 means some differences were found, and 2 means trouble"): each number's words run to the
# next number
PAIRED_NUMBER = re.compile(r"(?<![\w.])(\d+)\s+(?:means?|indicates?|signals?|signifies|stands\s+for)\b", re.I)


def mispaired(claim: Claim, span: str) -> str | None:
    """What `span` pairs the claim's one number with, when the claim pairs it with the words the
    span gives another number ("When diff exits with status 2, it means there were no differences
    found" beside the sentence above: '"2 means trouble"'); None when the pairing holds or the span
    pairs no numbers."""
    marks = list(PAIRED_NUMBER.finditer(span))
    if len(claim.numbers) != 1 or len({m.group(1) for m in marks}) < 2:
        return None
    (number,) = claim.numbers
    meanings: dict[str, tuple[str, set[str]]] = {}
    for mark, after in zip(marks, marks[1:] + [None]):
        said = span[mark.start():after.start() if after else len(span)]
        meanings.setdefault(mark.group(1), (said, _matched(claim, content_stems(said))))
    if number not in meanings:
        return None
    own = meanings[number][1]
    if any(len(found) > len(own) for other, (_, found) in meanings.items() if other != number):
        return '"' + " ".join(meanings[number][0].split()).rstrip(" ,;.") + '"'
    return None


def _another_says_all(claim_text: str, claim: Claim, passages: Sequence[str], prepared: dict[int, _Passage],
                      cited: tuple[int, ...]) -> int | None:
    """The first passage the sentence does not cite that holds every one of its content words,
    numbers, names and listed items with nothing against them, if any. A citation that holds only
    part of the sentence while such a passage was given cites its neighbour: the chunk beside the
    one that says it, sharing its vocabulary."""
    for m in range(1, len(passages) + 1):
        if m in cited:
            continue
        if m not in prepared:
            prepared[m] = _Passage(passages[m - 1])
        other = prepared[m]
        match = other.best_span(claim_text, claim)
        if len(match.matched) == len(claim.words) and claim.numbers <= other.numbers \
                and all(name_found(name, other.lower, other.parts) for name in claim.names) \
                and all(item_found(item, other.stems, other.lower, other.parts) for item in claim.items) \
                and not _contradiction(claim_text, other, match, [other]):
            return m
    return None


def _check_sentence(sentence: Sentence, passages: Sequence[str], prepared: dict[int, _Passage],
                    question: str = "") -> list[Citation]:
    claim_text = clean_claim(sentence.text)
    claim = read_claim(claim_text)
    out = _verdicts(sentence, claim_text, claim, passages, prepared)
    if all(c.supported for c in out) or _negates_more(claim_text, question) \
            or (own := answered(claim, question)) is None:
        return out
    beyond = _verdicts(sentence, claim_text, own, passages, prepared, beyond_question=True)
    return beyond if all(c.supported for c in beyond) else out


def _negates_more(claim_text: str, question: str) -> bool:
    """Whether the sentence holds a negation its question does not ("Counter() is not the way to
    count words"): what it adds is then that negation, which only the whole sentence can be
    checked for."""
    asked = any(_is_negation(w, CLAIM_NEGATIONS) for w in PLAIN_WORD.findall(question))
    return not asked and any(_is_negation(w, CLAIM_NEGATIONS) for w in PLAIN_WORD.findall(claim_text))


def _verdicts(sentence: Sentence, claim_text: str, claim: Claim, passages: Sequence[str],
              prepared: dict[int, _Passage], beyond_question: bool = False) -> list[Citation]:
    """Each citation of the sentence judged for `claim` (the sentence's, or what it claims beyond the
    question: then a claim of names alone is one, and the reason says so)."""
    wanted = claim.words
    given = [n for n in sentence.numbers if 1 <= n <= len(passages)]
    for n in given:
        if n not in prepared:
            prepared[n] = _Passage(passages[n - 1])
    matches = {n: prepared[n].best_span(claim_text, claim) for n in given}
    together = frozenset().union(*(m.matched for m in matches.values())) if matches else frozenset()
    # several citations may share a sentence's facts between them: numbers and names must occur
    # in one of them, and together they must cover the sentence
    missing_numbers = sorted(claim.numbers - set().union(*(prepared[n].numbers for n in given)))
    missing_names = sorted(
        name for name in claim.names
        if not any(name_found(name, prepared[n].lower, prepared[n].parts) for n in given)
    ) + [item for item in claim.items if item not in claim.names and not any(
        item_found(item, prepared[n].stems, prepared[n].lower, prepared[n].parts) for n in given)]
    out = []
    for n in sentence.numbers:
        if n not in matches:
            given_text = f"{len(passages)} passage" + ("" if len(passages) == 1 else "s")
            out.append(Citation(n=n, path="", page=None, heading=(), quote="", start=0, end=0, supported=False,
                                sentence=sentence.text,
                                reason=f"there is no passage [{n}]: the answer was given {given_text}"))
            continue
        match = matches[n]
        passage = prepared[n]
        if not wanted and not (beyond_question and claim.names):
            supported, reason = False, "the sentence has no words to check"
        elif missing_names and len(given) == 1:
            supported, reason = False, f"passage {n} does not mention {', '.join(missing_names)}"
        elif missing_numbers and len(given) == 1:
            supported, reason = False, f"passage {n} does not contain {', '.join(missing_numbers)}"
        elif missing_numbers or missing_names:
            supported, reason = False, f"no cited passage contains {', '.join(missing_numbers + missing_names)}"
        elif contradiction := _contradiction(claim_text, passage, match, [prepared[m] for m in given]):
            supported, reason = False, f"passage {n} says {contradiction}"
        elif match.matched and (pairing := mispaired(claim, passage.text[match.start:match.end])):
            supported, reason = False, f"passage {n} says {pairing}"
        elif len(given) > 1 and wanted and match.coverage < SHARE:
            supported, reason = False, (f"passage {n} holds only {len(match.matched)} of the sentence's {len(wanted)} "
                                        f"content words (not {_missing_words(claim, match.matched)})")
        elif wanted and len(together) / len(wanted) <= COVERAGE:
            of = "the cited passages hold" if len(given) > 1 else f"passage {n} holds"
            supported, reason = False, (f"{of} only {len(together)} of the sentence's {len(wanted)} content words "
                                        f"(not {_missing_words(claim, together)})")
        elif len(given) == 1 and len(match.matched) < len(wanted) and \
                (other := _another_says_all(claim_text, claim, passages, prepared, sentence.numbers)):
            supported, reason = False, (f"passage {other} says it: passage {n} holds only {len(match.matched)} of the "
                                        f"sentence's {len(wanted)} content words (not {_missing_words(claim, match.matched)})")
        elif beyond_question and not wanted:
            supported, reason = True, (f"passage {n} mentions {', '.join(sorted(claim.names))}; "
                                       f"its other words are the question's")
        elif beyond_question:
            supported, reason = True, (f"{len(match.matched)} of the {len(wanted)} content words it adds to the "
                                       f"question, and its numbers and names, found")
        else:
            supported, reason = True, f"{len(match.matched)} of {len(wanted)} content words, numbers and names found"
        if beyond_question and not match.matched:
            match = _name_span(passage, claim) or match
        quote = passage.text[match.start:match.end] if match.matched else ""
        start, end = (match.start, match.end) if match.matched else (0, 0)
        out.append(Citation(n=n, path="", page=None, heading=(), quote=quote, start=start, end=end,
                            supported=supported, sentence=sentence.text, reason=reason))
    return out


# -- extractive answers ---------------------------------------------------------------------------


def locate(excerpt: str, text: str) -> tuple[int, int] | None:
    """Where excerpt occurs in text when white space is ignored (it may have been collapsed)."""
    words = excerpt.split()
    if not words:
        return None
    found = re.search(r"\s+".join(re.escape(w) for w in words), text)
    return (found.start(), found.end()) if found else None


# where an excerpt was clipped (rag.markup.clip_lines, rag.answer.extractive.shown): an ellipsis that
# ends a line, alone on it or after the words kept
CLIPPED_AT = re.compile(r"[ \t]*\u2026[ \t]*(?:\n|$)")


def locate_clipped(excerpt: str, text: str) -> tuple[int, int] | None:
    """Where a clipped excerpt comes from in text: each stretch between its ellipses located in
    order, from the first one's start to the last one's end (`locate` of the whole when it holds none).
    The shown excerpt ends "...\n…", or keeps a line of code after one; located whole, the ellipsis
    matched nothing, and a verbatim quote was checked as a sentence and could be called unsupported."""
    stretches = [part for part in CLIPPED_AT.split(excerpt) if part.strip()]
    if len(stretches) <= 1:
        return locate(stretches[0] if stretches else excerpt, text)
    start, end = None, 0
    for part in stretches:
        found = locate(part, text[end:])  # after the stretch before it
        if found is None:
            return None
        start = end + found[0] if start is None else start
        end += found[1]
    return start, end


# what rag.answer.generate puts after a written answer none of whose sentences is supported, before
# quoting the passages' own words as an extractive answer does
PASSAGES_SAY = "What the passages themselves say:"


def split_written(answer: str) -> tuple[str, str]:
    """(the model's part, the passages' quoted words after PASSAGES_SAY, or "")."""
    written, found, quoted = answer.partition(f"\n\n{PASSAGES_SAY}\n\n")
    return (written, quoted) if found else (answer, "")


def check_written(answer: str, passages: Sequence[str], question: str = "") -> CitationReport:
    """A written answer's citations: each of the model's sentences checked (check_citations), and the
    passages' words quoted after them, if any, located as an extractive answer's excerpts are."""
    written, quoted = split_written(answer)
    first = check_citations(written, passages, question)
    if not quoted:
        return first
    second = quote_for_extractive(quoted, passages)
    return CitationReport(first.citations + second.citations, first.unsupported + second.unsupported,
                          first.uncited_sentences + second.uncited_sentences)


def quote_for_extractive(answer: str, passages: Sequence[str]) -> CitationReport:
    """The citations of an extractive answer (rag.answer.generate.extractive_answer: paragraphs of
    "<excerpt> [n]"), each quote located in its passage; a paragraph that is not a verbatim
    excerpt of the passage it cites is checked like any generated sentence."""
    citations: list[Citation] = []
    prepared: dict[int, _Passage] = {}
    for paragraph in re.split(r"\n\s*\n", answer):
        paragraph = paragraph.strip()
        tail = re.search(r"\s*\[(\d{1,3})\]$", paragraph)
        if not tail:
            continue
        n = int(tail.group(1))
        excerpt = paragraph[: tail.start()].removesuffix(" ...")  # best_excerpt marks a clipped end so
        span = locate_clipped(excerpt, passages[n - 1]) if 1 <= n <= len(passages) else None
        if span is None:
            citations += _check_sentence(Sentence(paragraph, (n,), "fact"), passages, prepared)
            continue
        start, end = span
        citations.append(Citation(n=n, path="", page=None, heading=(), quote=passages[n - 1][start:end], start=start,
                                  end=end, supported=True, sentence=paragraph, reason=f"quoted verbatim from passage {n}"))
    return _report(citations, 0)
