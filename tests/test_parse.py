"""Tag parsing of model replies: tolerant of how real models format <prompt> and <choose>."""

from __future__ import annotations

import pytest

from promptopt.engine.parse import extract_tag, parse_choice, parse_prompt


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        ("<prompt>Be brief.</prompt>", "Be brief."),
        ("<PROMPT>Be brief.</PROMPT>", "Be brief."),
        ("<Prompt>Be brief.</pRoMpT>", "Be brief."),
        ("< prompt >Be brief.< / prompt >", "Be brief."),
        ("<prompt>\n\n  Be brief.  \n\n</prompt>", "Be brief."),
        ("<prompt>\n```\nBe brief.\n```\n</prompt>", "Be brief."),
        ("<prompt>```markdown\nBe brief.\nUse lists.\n```</prompt>", "Be brief.\nUse lists."),
        ("<prompt>```text-v2\nBe brief.\n```</prompt>", "Be brief."),
        ("```xml\n<prompt>Be brief.</prompt>\n```", "Be brief."),
        ("<analyse>x</analyse>\n<prompt>Line 1\n\nLine 2</prompt>\ntrailing chatter", "Line 1\n\nLine 2"),
        ("<prompt>first</prompt> then <prompt>second</prompt>", "second"),
        ("<prompt>first</prompt> then <prompt>unfinished", "first"),
        ("<analyse>a</analyse><prompt>Be brief and cut off mid", "Be brief and cut off mid"),
        ("<prompt>Be brief.\n<analyse>oops, reordered</analyse>", "Be brief."),
        ("<prompt>Use <b>bold</b> words.</prompt>", "Use <b>bold</b> words."),
        ("<prompt></prompt>", ""),
    ],
)
def test_extract_prompt_tag(reply: str, expected: str) -> None:
    assert extract_tag(reply, "prompt") == expected


@pytest.mark.parametrize("reply", [None, "", "no tags at all", "<prompts>x</prompts>", "</prompt>", "<prompt"])
def test_extract_missing_tag(reply: str | None) -> None:
    assert extract_tag(reply, "prompt") is None


def test_extract_other_tags_from_one_reply() -> None:
    reply = "<analyse>too vague</analyse><modification>add an example</modification><prompt>P</prompt>"
    assert extract_tag(reply, "analyse") == "too vague"
    assert extract_tag(reply, "modification") == "add an example"


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("A", "A"),
        ("B", "B"),
        (" b ", "B"),
        ("a", "A"),
        ("A.", "A"),
        ("**B**", "B"),
        ("`A`", "A"),
        ("Set A", "A"),
        ("Answer: B", "B"),
        ("answer - A", "A"),
        ("Option B", "B"),
        ("(A)", "A"),
        ("[B]", "B"),
        ('"A"', "A"),
        ("B) because it is shorter", "B"),
        ("A or B", None),
        ("A/B", None),
        ("either A and B", None),
        ("", None),
        ("C", None),
        ("neither", None),
        ("Both are equally good", None),
        ("AB", None),
    ],
)
def test_parse_choice(content: str, expected: str | None) -> None:
    assert parse_choice(f"<analyse>thinking about A and B</analyse>\n<choose>{content}</choose>") == expected


@pytest.mark.parametrize("reply", [None, "", "I prefer A", "<analyse>A is better</analyse>"])
def test_parse_choice_without_choose_tag(reply: str | None) -> None:
    assert parse_choice(reply) is None


def test_parse_choice_tolerates_tag_formatting() -> None:
    assert parse_choice("<CHOOSE> a </CHOOSE>") == "A"
    assert parse_choice("<choose>B") == "B"  # reply cut off before the closing tag


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        ("<prompt>Write a haiku.</prompt>", "Write a haiku."),
        ("<prompt>\n```\nWrite a haiku.\n```\n</prompt>", "Write a haiku."),
        (
            "<prompt>I'm sorry you had trouble; here is how to write clearly: ...</prompt>",
            "I'm sorry you had trouble; here is how to write clearly: ...",
        ),
    ],
)
def test_parse_prompt(reply: str, expected: str) -> None:
    assert parse_prompt(reply) == expected


@pytest.mark.parametrize(
    "reply",
    [
        None,
        "",
        "Here is the new prompt: Write a haiku.",
        "<prompt></prompt>",
        "<prompt>   \n  </prompt>",
        "<prompt>```\n```</prompt>",
        "<prompt>I cannot help with that.</prompt>",
        "<prompt>I can't assist with this request.</prompt>",
        "<prompt>I can’t help with that.</prompt>",
        "<prompt>I'm sorry, but I can't continue.</prompt>",
        "<prompt>...</prompt>",
    ],
)
def test_parse_prompt_rejects_missing_empty_and_refusals(reply: str | None) -> None:
    assert parse_prompt(reply) is None


def test_long_prompt_starting_like_a_refusal_is_kept() -> None:
    """A real prompt may open like a refusal; only short replies count as refusals."""
    prompt = "I cannot help you unless you follow these rules: " + "be precise and cite the source. " * 10
    assert parse_prompt(f"<prompt>{prompt}</prompt>") == prompt.strip()
