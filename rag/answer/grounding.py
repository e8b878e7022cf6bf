"""Grounding: every factual sentence of a written answer ends up with a citation the checker supports.

An LLM's answer streams through `Grounder`, which holds back only what it may still change. Each
factual sentence is checked with rag.answer.citations: one whose own citations are all supported
keeps them (`cited_by` "model"); otherwise "sentence [n]" is tried for every passage n and the best
supported one is written into the text (`cited_by` "rag"), replacing citations the passages do not
bear out; a sentence no passage supports keeps what the model wrote and is marked `[unsupported]`,
or is left out under `strict`. Fenced code is checked line by line the same way (it carries no
citation in the text; an unsupported block is marked after its fence). An answer in which no
sentence is supported ends with `NOTHING_SUPPORTED`, so a reader (and a program) sees that it is
not the documents' answer; a caller that follows such an answer with the passages' own words, because
the passages name everything the question asks about, asks for no such line (`doubt=None`): each
sentence is marked already, and the documents may well cover the question.

Prompt scaffolding never reaches the reader: `<passage ...>` tags the model echoes are removed,
a sentence already given is not repeated, and a degenerate loop (the same stretch of text three
times in a row, or a sentence twice) ends the answer and closes the model's stream.

Invariant: the text a Grounder lets out is final. Nothing it emits is taken back, so a terminal,
a web page or an HTTP stream can show each piece as it comes, and joining the pieces gives
`Answer.answer`, which `sentences` describe one by one.

One module past 400 lines because the stream bookkeeping (`Grounder`: what is held back, what
is final) and the per-sentence grounding it calls decide together what a reader sees; the
invariant below is about both, and rag.answer.citations already holds the matching itself.
"""

from __future__ import annotations

import re
from typing import Iterable, Iterator, Sequence

from rapidfuzz import fuzz

from rag.answer.citations import CITATION, CITATIONS_RUN, COMMAND_LINE, Sentence, answer_sentences, check_citations
from rag.types import AnswerSentence

# after the sentence, as a word a reader cannot miss (and no refusal: "not ... sources" would read as one)
UNSUPPORTED_MARK = "[unsupported]"
NOTHING_SUPPORTED = "No sentence of this answer is supported by the passages: the documents may not cover it."
STRICT_NOTHING_LEFT = ("The documents do not cover this: no sentence of the answer the model wrote is supported "
                       "by the passages.")

# A tag from the prompt (rag.answer.generate.format_passages); attribute values may hold ">"
# (heading paths read "Guide > Install").
_ATTRIBUTES = r"""(?:\s+[\w-]+\s*=\s*(?:"[^"\n]*"|'[^'\n]*'|[^\s>"']*))*"""
TAG = re.compile(r"[ \t]*<\s*/?\s*passages?\b" + _ATTRIBUTES + r"\s*/?\s*>", re.I)
TAG_NAME = re.compile(r"<\s*/?\s*([A-Za-z]*)(.?)", re.S)
_MARKER = r"[ \t]*(?:[-*+\u2022]|\d{1,3}[.)])[ \t]*"  # a list item's marker
LIST_LEAD = re.compile(rf"(?:{_MARKER}|[ \t]*)")  # what may precede a sentence on its line
MARKER_AT_END = re.compile(rf"(^|\n){_MARKER}$")
TRAILING_TAG = re.compile(r"<\s*/?\s*passage[^\n]*$", re.I)  # cut off by the end of the answer
PARTIAL_END = re.compile(r"\s*\[[\d,\s]*$")  # a citation the end of the answer cut off
FENCE_LINE = re.compile(r"^[ \t]*(```|~~~)", re.M)
LOOP_MIN, LOOP_SENTENCE, LOOP_MAX = 12, 40, 500  # lengths (characters) of the stretch a degenerate loop repeats
SHELL_PROMPT = re.compile(r"^\s*(?:[$#>]|>>>|\.\.\.)\s+")


# -- prompt scaffolding and loops ---------------------------------------------------------------


def strip_tags(text: str) -> str:
    """`text` without the prompt's passage tags (and the space a removed tag leaves doubled)."""
    if "<" not in text:
        return text
    out = TAG.sub("", text)
    return re.sub(r"(?<=\S)[ \t]{2,}", " ", out) if out != text else out


def open_tag_at(text: str) -> int:
    """Where a passage tag still arriving starts at the end of `text` ("<", "</pa",
    '<passage id="6" sour'), or len(text)."""
    at = text.rfind("<", max(0, len(text) - 300))
    if at < 0 or "\n" in text[at:]:
        return len(text)
    name, after = TAG_NAME.match(text, at).groups()
    # a name still arriving may become "passage"; a whole one left here is a tag without its ">" yet
    arriving = "passages".startswith(name.lower()) if not after else name.lower() in ("passage", "passages")
    return at if arriving else len(text)


def loop_start(text: str) -> int | None:
    """Where a degenerate loop begins to repeat: the end of the first copy when `text` ends with
    the same stretch three times (twice, for a stretch as long as a sentence), or None. Only
    stretches with letters count (a table rule is not a loop)."""
    n = len(text)
    for period in range(LOOP_MIN, min(LOOP_MAX, n // 2) + 1):
        unit = text[n - period:]
        if text[n - 2 * period:n - period] != unit or not re.search(r"[A-Za-z]{2}", unit):
            continue
        if period >= LOOP_SENTENCE:
            return n - period
        if text[n - 3 * period:n - 2 * period] == unit:
            return n - 2 * period
    return None


# -- one sentence -------------------------------------------------------------------------------


def _claim(text: str) -> str:
    """The sentence without its citations (white space they leave tidied)."""
    out = CITATION.sub("", text)
    out = re.sub(r"[ \t]+([.,;:!?])(?=[\s\"'\u201d\u2019)*_]|$)", r"\1", out)  # not " :meth:`run`" into "x:meth:"
    return re.sub(r"[ \t]{2,}", " ", out).strip()


def with_citation(text: str, n: int, keep: int = 0) -> str:
    """`text` with [n] where a writer puts it (before the final period, replacing the citations
    there), and text[:keep] unchanged (it went out already). After a command line (COMMAND_LINE) it
    goes at the very end: the period of "$ git add ." is the command's."""
    last = text[text.rfind("\n") + 1:]
    if COMMAND_LINE.match(last):
        bare = re.sub(CITATIONS_RUN + r"\s*$", "", text)
        bare = text[:max(keep, len(bare.rstrip()))]
        return f"{bare}{'' if bare[-1:].isspace() else ' '}[{n}]"
    if keep <= 0:
        claim = _claim(text)
        end = re.search(r"[.!?:;]+[\"'\u201d\u2019)*_]*$", claim)
        cut = end.start() if end else len(claim)
        return f"{claim[:cut].rstrip()} [{n}]{claim[cut:]}"
    tail = _tail_start(text)
    if tail < keep:
        return f"{text} [{n}]"
    return f"{text[:tail]} [{n}]{CITATION.sub('', text[tail:]).strip()}"


def _best_support(text: str, passages: Sequence[str], question: str = "") -> tuple[int, str] | None:
    """The passage that best supports `text` alone, and its citation text, or None."""
    best: tuple[float, int, str] | None = None
    for n in range(1, len(passages) + 1):
        cited = with_citation(text, n)
        report = check_citations(cited, passages, question)
        if report.citations and all(c.supported for c in report.citations):
            # the closest quote wins; the better ranked passage among equals
            closeness = max(fuzz.token_set_ratio(_claim(text), c.quote) for c in report.citations)
            if best is None or closeness > best[0]:
                best = (closeness, n, cited)
    return (best[1], best[2]) if best else None


def ground_sentence(sentence: Sentence, passages: Sequence[str], question: str = "") -> AnswerSentence:
    """One sentence of the answer with the citation it ends up with, and who wrote it; with the
    `question`, the words the sentence repeats from it are not its claim (citations.answered)."""
    text = sentence.text
    if sentence.kind != "fact":
        return AnswerSentence(text, sentence.kind, list(sentence.numbers), "model" if sentence.numbers else None, None)
    if sentence.numbers:
        report = check_citations(text, passages, question)
        if report.citations and all(c.supported for c in report.citations):
            return AnswerSentence(text, "fact", list(sentence.numbers), "model", True)
    found = _best_support(text, passages, question)
    if found is not None:
        n, cited = found
        return AnswerSentence(cited, "fact", [n], "rag", True)  # its text as written whole (see _render)
    # the model's own citations stay: the Sources block says why each does not hold
    return AnswerSentence(text, "fact", list(sentence.numbers), "model" if sentence.numbers else None, False)


def ground_code(code: str, passages: Sequence[str]) -> AnswerSentence:
    """A fenced code block: supported when each of its lines that says something (a command, a
    call) is supported by some passage; its citations are those passages."""
    lines = [line for line in code.split("\n")[1:] if not FENCE_LINE.match(line)]
    numbers: list[int] = []
    supported = True
    for line in lines:
        body = SHELL_PROMPT.sub("", line).strip().replace("`", "")
        if not re.search(r"[A-Za-z_]\w", body):
            continue  # a brace, a blank line: nothing to check
        found = _best_support(f"`{body}`", passages)
        if found is None:
            supported = False
        elif found[0] not in numbers:
            numbers.append(found[0])
    checked = supported and bool(numbers)
    return AnswerSentence(code.strip("\n"), "code", numbers if checked else [], "rag" if checked else None,
                          True if checked else (False if not supported else None))


# -- a stream of text ---------------------------------------------------------------------------


def _locate(sentence: Sentence, text: str, start: int) -> tuple[int, int] | None:
    words = sentence.text.split()
    if not words:
        return None
    found = re.compile(r"\s+".join(re.escape(w) for w in words)).search(text, start)
    return (found.start(), found.end()) if found else None


def _spans(text: str) -> list[tuple[Sentence, int, int]]:
    """The sentences of `text` with where each is, in order (a sentence that cannot be found, which
    answer_sentences' tidying might cause, is left as text between the others)."""
    out, at = [], 0
    for sentence in answer_sentences(text):
        span = _locate(sentence, text, at)
        if span is not None:
            out.append((sentence, *span))
            at = span[1]
    return out


def _norm(text: str) -> str:
    return " ".join(re.findall(r"\w+", _claim(text).lower()))


class Grounder:
    """Text in as it streams (`feed`), grounded text out; `finish()` at the end.

    Words go out as they come, except what grounding may still change: the end of a sentence (its
    citations and final period, until the next sentence begins), a tag that may be the prompt's, a
    line that may open a code block. Under `strict` a sentence goes out only once it is known to
    be supported, so the answer arrives a sentence at a time. `sentences` describes what went out,
    `dropped` counts the sentences `strict` left out, `looped` says a degenerate loop was cut (the
    caller then stops the model).
    """

    def __init__(self, passages: Sequence[str], strict: bool = False, doubt: str | None = NOTHING_SUPPORTED,
                 question: str = ""):
        self.passages = list(passages)
        self.question = question  # what the answer answers: its words are asked, not claimed
        self.strict = strict
        self.doubt = doubt  # said after an answer nothing supports (None: nothing said)
        self.sentences: list[AnswerSentence] = []
        self.dropped = 0
        self.looped = False
        self.text = ""  # what went out
        self._pending = ""  # arrived and not yet grounded
        self._shown = 0  # how much of _pending already went out as it came
        self._raw = ""  # everything that arrived, for loop detection
        self._held = ""  # strict: text without a claim ("Here is how:") waiting for one to introduce
        self._held_sentences: list[AnswerSentence] = []
        self._said: set[str] = set()
        self.nothing_supported = False  # finish() said so: the caller may quote the passages instead

    def feed(self, piece: str) -> str:
        if self.looped or not piece:
            return ""
        self._raw += piece
        self._pending += piece
        loop = loop_start(self._raw)
        if loop is None:
            return self._drain(final=False)
        self.looped = True
        self._pending = self._pending[:max(self._shown, len(self._pending) - (len(self._raw) - loop))]
        return self._drain(final=True)

    def finish(self) -> str:
        out = self._drain(final=True)
        claims = [s for s in self.sentences if s.kind in ("fact", "code") and s.supported is not None]
        kept = any(s.supported for s in claims)
        if self._held and (kept or not self.dropped):
            out += self._let_out("", [], hold=False)
        if self.strict and self.dropped and not kept:
            self._held, self._held_sentences = "", []  # an introduction to nothing
            lead = "\n\n" if self.text.strip() else ""
            out += self._let_out(lead + STRICT_NOTHING_LEFT,
                                 [AnswerSentence(STRICT_NOTHING_LEFT, "refusal", [], None, None)], hold=False)
            self.nothing_supported = True
        elif (claims and not kept) or (self.text.strip() and not re.search(r"[^\W\d_]", CITATION.sub("", self.text))):
            # nothing the passages bear out, or nothing but citations ("[1], [2]"): say so
            lead = "\n\n" if self.text.strip() else ""
            if self.doubt:
                out += self._let_out(lead + self.doubt, [AnswerSentence(self.doubt, "refusal", [], None, None)],
                                     hold=False)
            self.nothing_supported = True
        return out

    # -- internals ----------------------------------------------------------------------------

    def _unshown(self, change) -> None:
        """Apply `change` to the part of the pending text that has not gone out."""
        self._pending = self._pending[:self._shown] + change(self._pending[self._shown:])

    def _take(self, cut: int) -> int:
        """Remove pending[:cut]; returns how much of it had gone out already."""
        frozen = min(self._shown, cut)
        self._pending = self._pending[cut:]
        self._shown -= frozen
        return frozen

    def _drain(self, final: bool) -> str:
        out = []
        while self._pending:
            self._unshown(strip_tags)
            fence = FENCE_LINE.search(self._pending)
            if fence is not None and fence.start() == 0:
                # a code block is checked once its closing fence has arrived
                first = self._pending.find("\n")
                close = FENCE_LINE.search(self._pending, first + 1) if first >= 0 else None
                if close is None and not final:
                    break
                # the line break after the fence stays: the end of the answer has none
                end = self._pending.find("\n", close.end()) if close is not None else -1
                end = len(self._pending) if end < 0 else end
                block = self._pending[:end]
                out.append(self._code(block, self._take(end)))
                continue
            if fence is not None:
                cut = fence.start()  # the prose before a code block is complete
            elif final:
                self._unshown(lambda text: PARTIAL_END.sub("", TRAILING_TAG.sub("", text)))
                cut = len(self._pending)
            else:
                cut = self._complete(self._pending[:open_tag_at(self._pending)])
                # white space waits for what follows it (the end of the answer has none)
                cut = max(len(self._pending[:cut].rstrip()), min(cut, self._shown))
                if not cut:
                    break
            unit = self._pending[:cut]
            last = final and fence is None
            out.append(self._prose(unit, self._take(cut), last))
        if not final and not self.strict:
            out.append(self._eager())
        return "".join(out)

    def _eager(self) -> str:
        """What may go out before its sentence is complete."""
        text = self._pending
        if FENCE_LINE.match(text):
            safe = text.rfind("\n") + 1  # a code block's finished lines, once it has one (_has_code)
            if not _has_code(text[:safe]):
                safe = 0
        else:
            safe = open_tag_at(text)
            line = text.rfind("\n", 0, safe) + 1
            if re.match(r"[ \t]*[`~]", text[line:]):
                safe = line  # may open a code block
            safe = _tail_start(text[:safe], arriving=True)
            begun = _norm(text[:safe])
            if begun and any(said.startswith(begun) for said in self._said):
                safe = 0  # it may be a sentence said already, which is left out whole
        if safe <= self._shown:
            return ""
        out, self._shown = text[self._shown:safe], safe
        return self._let_out(out, [])

    @staticmethod
    def _complete(text: str) -> int:
        """How much of `text` is whole sentences: up to the start of its last sentence, once that one
        has begun with a word (a citation after a period may still be on its way)."""
        spans = _spans(text)
        if len(spans) < 2 or not re.search(r"\w", CITATION.sub("", spans[-1][0].text)):
            return 0
        cut = spans[-1][1]
        line = text.rfind("\n", 0, cut) + 1
        # a list item's marker goes out with its sentence (which strict may leave out)
        return line if LIST_LEAD.fullmatch(text, line, cut) else cut

    def _prose(self, text: str, frozen: int, last: bool = False) -> str:
        """Whole sentences (and the text between them) grounded; text[:frozen] went out already,
        `last`: nothing follows."""
        out, at, described = [], 0, []
        for sentence, start, end in _spans(text):
            before = text[at:start]
            at = end
            grounded = self._sentence(sentence, start < frozen)
            if grounded is None:  # left out, with the space or list marker before it
                before = MARKER_AT_END.sub(r"\1", before).rstrip(" \t")
                if (not before or before.endswith("\n")) and text[at:at + 1] == "\n":
                    at += 1
                out.append(before)
                continue
            shown = text[start:end]
            if end >= frozen:  # its end has not gone out: it may change
                shown = _render(sentence.text, grounded, max(0, frozen - start))
            else:  # already out whole (its end was not known to be one): only described
                grounded = AnswerSentence(shown, grounded.kind, list(sentence.numbers),
                                          "model" if sentence.numbers else None,
                                          grounded.supported if grounded.cited_by == "model" else None)
            out += [before, shown]
            described.append(grounded)
        out.append(text[at:])
        whole = "".join(out)
        if last:
            whole = whole[:max(frozen, len(whole.rstrip()))]
        # sentences change only after what went out, so the text shown is a prefix of `whole`
        return self._let_out(whole[frozen:] if whole.startswith(text[:frozen]) else text[frozen:], described)

    def _let_out(self, text: str, described: list[AnswerSentence], hold: bool = True) -> str:
        """Emit `text`; under `strict`, text that makes no claim waits for one (or for the end)."""
        if hold and self.strict and not any(s.supported for s in described) and (text.strip() or self._held) \
                and not self._said_any():
            self._held += text
            self._held_sentences += described
            return ""
        text, self._held = self._held + text, ""
        if self.strict and (self.text.endswith("\n\n") or not self.text):
            text = text.lstrip("\n")  # what was left out leaves no run of blank lines behind
        self.sentences += self._held_sentences + described
        self._held_sentences = []
        self.text += text
        return text

    def _said_any(self) -> bool:
        return any(s.supported for s in self.sentences)

    def _sentence(self, sentence: Sentence, begun: bool) -> AnswerSentence | None:
        """The sentence grounded; None to leave it out (`begun`: part of it went out already)."""
        key = _norm(sentence.text)
        if key and key in self._said and not begun:
            return None  # said already: a small model repeating itself
        grounded = ground_sentence(sentence, self.passages, self.question)
        if grounded.supported is False and self.strict:
            self.dropped += 1
            return None
        self._said.add(key)
        return grounded

    def _code(self, block: str, frozen: int) -> str:
        if not frozen and not _has_code(block):
            return ""  # an empty block (Qwen wrote "```[5]\n```") shows the reader two fences and nothing
        grounded = ground_code(block.rstrip("\n"), self.passages)
        if grounded.supported is False:
            if self.strict:
                self.dropped += 1
                return ""
            return self._let_out((block.rstrip("\n") + "\n" + UNSUPPORTED_MARK)[frozen:], [grounded])
        return self._let_out(block[frozen:], [grounded])


def _has_code(block: str) -> bool:
    """Whether a fenced block (its opening fence line first) holds a line of code, not only fences."""
    return any(line.strip() and not FENCE_LINE.match(line) for line in block.split("\n")[1:])


def _tail_start(text: str, arriving: bool = False) -> int:
    """Where the end of a sentence may begin at the end of `text`: white space, closing
    punctuation and citations (whole or still arriving) that grounding may rewrite. With
    `arriving` (text still streaming), any punctuation: an opening bracket, quote or backtick after
    a sentence's stop may begin the next sentence ("fopen().\n\n(Contributed"), which is not known
    to be one until a word of it arrives; let out, it would take the stop before it along, and the
    sentence could no longer take its citation."""
    i = len(text)
    while i > 0:
        if text[i - 1].isspace() or text[i - 1] in ".!?:;\"'\u201d\u2019)*_" or (arriving and not text[i - 1].isalnum()):
            i -= 1
            continue
        line = text.rfind("\n", 0, i) + 1
        if 0 < line < i and LIST_LEAD.fullmatch(text, line, i):
            i = line  # the next item's marker: the sentence before it may still change
            continue
        bracket = text.rfind("[", max(0, i - 24), i)
        if bracket >= 0 and re.fullmatch(r"\[[\d,\s]*\]?", text[bracket:i]):
            i = bracket
            continue
        break
    return i


def _render(text: str, grounded: AnswerSentence, frozen: int) -> str:
    """The sentence as shown: `text` as written, its citation as grounded, or marked unsupported;
    text[:frozen] went out already and stays as it is."""
    if grounded.supported is False:
        return f"{text} {UNSUPPORTED_MARK}"
    if grounded.cited_by != "rag" or grounded.kind not in ("fact", "code"):
        return text
    return with_citation(text, grounded.citations[0], keep=frozen)


def ground(pieces: Iterable[str], grounder: Grounder) -> Iterator[str]:
    """`pieces` (an LLM's stream) grounded; a degenerate loop closes the source."""
    source = iter(pieces)
    try:
        for piece in source:
            out = grounder.feed(piece)
            if out:
                yield out
            if grounder.looped:
                break
        out = grounder.finish()
        if out:
            yield out
    finally:
        close = getattr(source, "close", None)
        if close is not None:
            close()


def ground_text(text: str, passages: Sequence[str], strict: bool = False,
                question: str = "") -> tuple[str, list[AnswerSentence]]:
    """A whole answer grounded at once (what streaming it gives)."""
    grounder = Grounder(passages, strict, question=question)
    out = "".join(ground(re.findall(r"\S+\s*|\s+", text), grounder))  # in pieces, as it would stream
    return out, grounder.sentences
