"""Follow-up questions without an LLM: "and how do I undo that?" searched with its subject.

A follow-up that leans on the conversation (a pronoun, or a single content word) cannot be
searched alone, and searched as the last question plus itself it finds, and quotes, the last
answer again. `rewrite` keeps the follow-up's own words first and carries the earlier question's
content words behind them, marked: "and how do I undo that? (about: put uncommitted changes
aside)". Retrieval reads every word, so it stays on the subject; the extractive answer
(rag.answer.extractive) weighs the carried words less than the follow-up's own (`split`), so it
quotes what the follow-up asks for, not what was quoted before. The user is shown what was
searched.
"""

from __future__ import annotations

from typing import Sequence

from rag.answer.extractive import split
from rag.answer.generate import REFERRING
from rag.text import content_words

MAX_CARRIED = 8


def leans_on_history(question: str) -> bool:
    """A pronoun or another pointer back ("that", "it", "instead"), or a single content word."""
    return bool(REFERRING.search(question)) or len(content_words(question)) <= 1


def rewrite(question: str, earlier: Sequence[str]) -> str:
    """The follow-up with the last question's content words carried along, or the question as it
    is when it stands alone (or there is nothing earlier)."""
    if not earlier or not leans_on_history(question):
        return question
    own, _ = split(question)
    previous, previous_about = split(earlier[-1])
    have = {w.lower() for w in content_words(own)}
    carried: list[str] = []
    for word in content_words(previous) + content_words(previous_about):
        if word.lower() not in have and not REFERRING.fullmatch(word):
            have.add(word.lower())
            carried.append(word)
    if not carried:
        return question
    return f"{own.rstrip()} (about: {' '.join(carried[:MAX_CARRIED])})"
