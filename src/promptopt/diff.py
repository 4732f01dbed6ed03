"""Word-level diff between two prompts."""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from typing import Literal

_TOKEN = re.compile(r"\s+|\S+\s*")


@dataclass
class Chunk:
    op: Literal["equal", "insert", "delete"]
    text: str


def word_diff(old: str, new: str) -> list[Chunk]:
    """Chunks that rebuild `old` (equal+delete) and `new` (equal+insert), compared word by word.

    Words are compared without their trailing whitespace, so "poem" → "poem about cats" is one
    insertion, not a replaced word; a whitespace-only change shows as whitespace-only chunks.
    """
    a, b = _TOKEN.findall(old), _TOKEN.findall(new)
    matcher = difflib.SequenceMatcher(a=[t.rstrip() for t in a], b=[t.rstrip() for t in b], autojunk=False)
    chunks: list[Chunk] = []

    def add(op: Literal["equal", "insert", "delete"], text: str) -> None:
        if not text:
            return
        if chunks and chunks[-1].op == op:
            chunks[-1].text += text
        else:
            chunks.append(Chunk(op, text))

    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        if op == "equal":
            for x, y in zip(a[i1:i2], b[j1:j2], strict=True):
                word = x.rstrip()
                add("equal", word)
                if x[len(word) :] == y[len(word) :]:
                    add("equal", x[len(word) :])
                else:
                    add("delete", x[len(word) :])
                    add("insert", y[len(word) :])
            continue
        if op in ("delete", "replace"):
            add("delete", "".join(a[i1:i2]))
        if op in ("insert", "replace"):
            add("insert", "".join(b[j1:j2]))
    return chunks


def word_edit_distance(old: str, new: str) -> int:
    """Levenshtein distance over words: insertions, deletions and substitutions, one each."""
    a, b = old.split(), new.split()
    if len(a) < len(b):
        a, b = b, a
    previous = list(range(len(b) + 1))
    for i, word in enumerate(a, 1):
        current = [i]
        for j, other in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (word != other)))
        previous = current
    return previous[-1]
