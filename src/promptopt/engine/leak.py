"""Leak guard: does a candidate prompt copy one of the template's questions or reference answers?

A prompt that pastes an example question (often with its worked answer) scores well on those
very questions and generalizes badly. The test: one run of consecutive words (lower-cased,
punctuation ignored) shared with ONE question or reference answer that holds at least
`LEAK_WORDS` words specific to that example. A word is not specific when it lies in a
`LEAK_WORDS`-word sequence that two or more questions (or answers) share, such as the task's
boilerplate ("if you follow these instructions, do you return to the starting point"), or
that the optimizer was given itself (the template's prompt and requirements, the prompt
being improved). An answer shorter than `LEAK_WORDS` words cannot leak ("Yes" is no leak).
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

LEAK_WORDS = 10
_WORD = re.compile(r"\w+", re.UNICODE)


@dataclass(frozen=True)
class Leak:
    """The run of words a candidate shares with one question or answer; `words` counts its specific ones."""

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


def _covered(tokens: list[str], excluded: set[tuple[str, ...]], n: int) -> list[bool]:
    """Which words of an example lie inside an n-gram that is not specific to it."""
    covered = [False] * len(tokens)
    for j in range(len(tokens) - n + 1):
        if tuple(tokens[j : j + n]) in excluded:
            covered[j : j + n] = [True] * n
    return covered


def _best_run(candidate: list[str], tokens: list[str], covered: list[bool]) -> tuple[int, int, int]:
    """(specific words, length, end in `tokens`) of the shared word run with the most specific words."""
    where: dict[str, list[int]] = defaultdict(list)
    for j, w in enumerate(tokens):
        where[w].append(j)
    best = (0, 0, -1)
    prev_len: dict[int, int] = {}
    prev_spec: dict[int, int] = {}
    for w in candidate:
        cur_len: dict[int, int] = {}
        cur_spec: dict[int, int] = {}
        for j in where.get(w, ()):
            cur_len[j] = prev_len.get(j - 1, 0) + 1
            cur_spec[j] = prev_spec.get(j - 1, 0) + (not covered[j])
            if (cur_spec[j], cur_len[j]) > best[:2]:
                best = (cur_spec[j], cur_len[j], j)
        prev_len, prev_spec = cur_len, cur_spec
    return best


def find_leak(
    candidate: str,
    questions: Sequence[str],
    answers: Sequence[str | None],
    allowed: Iterable[str] = (),
    min_words: int = LEAK_WORDS,
) -> Leak | None:
    """The worst leak of `candidate` (most example-specific words copied in one run), or None."""
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
        if len(toks) < min_words:
            continue
        covered = _covered(toks, excluded, min_words)
        specific, length, end = _best_run(cand, toks, covered)
        if specific >= min_words and (worst is None or specific > worst.words):
            start = end - length + 1
            while covered[start]:
                start += 1
            shown = toks[start : min(end + 1, start + 12)]
            excerpt = " ".join(shown) + (" …" if end + 1 > start + len(shown) else "")
            worst = Leak(kind, index, specific, excerpt)
    return worst
