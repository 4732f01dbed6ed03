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
    """Chunks that rebuild `old` (equal+delete) and `new` (equal+insert), compared word by word."""
    a, b = _TOKEN.findall(old), _TOKEN.findall(new)
    matcher = difflib.SequenceMatcher(a=a, b=b, autojunk=False)
    chunks: list[Chunk] = []
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        if op == "equal":
            chunks.append(Chunk("equal", "".join(a[i1:i2])))
            continue
        if op in ("delete", "replace"):
            chunks.append(Chunk("delete", "".join(a[i1:i2])))
        if op in ("insert", "replace"):
            chunks.append(Chunk("insert", "".join(b[j1:j2])))
    return chunks


def word_edit_distance(old: str, new: str) -> int:
    """Words inserted, deleted or replaced (a replacement of n words by m counts max(n, m))."""
    a, b = old.split(), new.split()
    matcher = difflib.SequenceMatcher(a=a, b=b, autojunk=False)
    return sum(max(i2 - i1, j2 - j1) for op, i1, i2, j1, j2 in matcher.get_opcodes() if op != "equal")


def diff_stats(old: str, new: str) -> tuple[int, int]:
    """(words added, words removed)."""
    added = sum(len(c.text.split()) for c in word_diff(old, new) if c.op == "insert")
    removed = sum(len(c.text.split()) for c in word_diff(old, new) if c.op == "delete")
    return added, removed
