"""Word diff between two prompts: exact chunks for display, a word edit distance for stats."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from promptopt.diff import Chunk, word_diff, word_edit_distance


def rebuild(chunks: list[Chunk]) -> tuple[str, str]:
    old = "".join(c.text for c in chunks if c.op in ("equal", "delete"))
    new = "".join(c.text for c in chunks if c.op in ("equal", "insert"))
    return old, new


def test_word_diff_marks_changed_words() -> None:
    chunks = word_diff("Write a short poem.", "Write a vivid short poem.")
    assert chunks == [Chunk("equal", "Write a "), Chunk("insert", "vivid "), Chunk("equal", "short poem.")]


def test_word_diff_replacement_is_delete_then_insert() -> None:
    chunks = word_diff("Be brief.", "Be thorough.")
    assert chunks == [Chunk("equal", "Be "), Chunk("delete", "brief."), Chunk("insert", "thorough.")]


def test_identical_and_empty_texts() -> None:
    assert word_diff("same text", "same text") == [Chunk("equal", "same text")]
    assert word_diff("", "") == []
    assert word_diff("", "new words") == [Chunk("insert", "new words")]
    assert word_diff("old words", "") == [Chunk("delete", "old words")]


@pytest.mark.parametrize(
    ("old", "new", "distance"),
    [
        ("a b c", "a b c", 0),
        ("a b c", "a  b\nc", 0),  # whitespace alone is not a word edit
        ("a b c", "a x c", 1),
        ("a b c", "a c", 1),
        ("a c", "a b c", 1),
        ("", "one two three", 3),
        ("one two three", "", 3),
        ("a b c d", "a x y z w d", 4),  # 2 words replaced by 4 counts 4
        ("Write a poem.", "Write a vivid, rhymed poem.", 2),
    ],
)
def test_word_edit_distance(old: str, new: str, distance: int) -> None:
    assert word_edit_distance(old, new) == distance


_texts = st.lists(
    st.one_of(st.sampled_from(["a", "b", "word", "Word.", "\n", " ", "  ", "\t", "é", "\u3000"]), st.text(max_size=5)),
    max_size=30,
).map("".join)


@settings(max_examples=150, deadline=None)
@given(old=_texts, new=_texts)
def test_chunks_rebuild_both_texts(old: str, new: str) -> None:
    chunks = word_diff(old, new)

    assert rebuild(chunks) == (old, new)
    assert all(chunk.text for chunk in chunks)
    distance = word_edit_distance(old, new)
    assert (distance == 0) == (old.split() == new.split())
    assert abs(len(old.split()) - len(new.split())) <= distance <= max(len(old.split()), len(new.split()))
