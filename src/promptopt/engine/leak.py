"""Leak guard: does a candidate prompt copy one of the template's questions or reference answers?

A prompt that pastes an example question (often with its worked answer) scores well on those
very questions and generalizes badly. The test is a run of at least `LEAK_WORDS` consecutive
words (lower-cased, punctuation ignored) shared with ONE question or reference answer. Runs
that are not specific to one example do not count: words shared by two or more questions (or
two or more answers), such as the task's boilerplate ("if you follow these instructions, do
you return to the starting point"), and words already in the text the optimizer was given
(the template's prompt and requirements, the prompt being improved). An answer shorter than
`LEAK_WORDS` words cannot be detected, and copying "Yes" is no leak anyway.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

LEAK_WORDS = 10
_WORD = re.compile(r"\w+", re.UNICODE)


@dataclass(frozen=True)
class Leak:
    """The longest example-specific run of words a candidate shares with one question or answer."""

    kind: str  # "question" or "reference answer"
    index: int  # 1-based, as the optimizer saw them
    words: int
    excerpt: str

    @property
    def source(self) -> str:
        return f"{self.kind} {self.index}"

    def describe(self) -> str:
        return f"leaks {self.source}: {self.words} words copied (\u201c{self.excerpt}\u201d)"

    def as_dict(self) -> dict[str, object]:
        return {"source": self.source, "words": self.words, "excerpt": self.excerpt}


def words(text: str) -> list[str]:
    return [w.lower() for w in _WORD.findall(text or "")]


def ngrams(tokens: Sequence[str], n: int) -> set[tuple[str, ...]]:
    return {tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)}


def _longest_run(candidate: list[str], grams: set[tuple[str, ...]], n: int) -> tuple[int, int]:
    """(length in words, start) of the longest run of consecutive candidate n-grams found in `grams`."""
    best = (0, 0)
    run_start, run = 0, 0
    for i in range(len(candidate) - n + 1):
        if tuple(candidate[i : i + n]) in grams:
            if run == 0:
                run_start = i
            run += 1
            if run + n - 1 > best[0]:
                best = (run + n - 1, run_start)
        else:
            run = 0
    return best


def find_leak(
    candidate: str,
    questions: Sequence[str],
    answers: Sequence[str | None],
    allowed: Iterable[str] = (),
    min_words: int = LEAK_WORDS,
) -> Leak | None:
    """The worst leak of `candidate` (the longest copied run), or None when it copies no example."""
    cand = words(candidate)
    if len(cand) < min_words:
        return None
    excluded: set[tuple[str, ...]] = set()
    for text in allowed:
        excluded |= ngrams(words(text), min_words)
    sources = [("question", i + 1, words(q)) for i, q in enumerate(questions)]
    sources += [("reference answer", i + 1, words(a)) for i, a in enumerate(answers) if a]
    for kind in ("question", "reference answer"):
        counts = Counter(g for k, _, toks in sources if k == kind for g in ngrams(toks, min_words))
        excluded |= {g for g, c in counts.items() if c > 1}
    worst: Leak | None = None
    for kind, index, toks in sources:
        grams = ngrams(toks, min_words) - excluded
        if not grams:
            continue
        length, start = _longest_run(cand, grams, min_words)
        if length >= min_words and (worst is None or length > worst.words):
            shown = cand[start : start + min(length, 12)]
            excerpt = " ".join(shown) + (" …" if length > len(shown) else "")
            worst = Leak(kind, index, length, excerpt)
    return worst
