"""Tolerant extraction of <tag>…</tag> parts from model replies."""

from __future__ import annotations

import re

_FENCE = re.compile(r"^```[\w.+-]*[ \t]*\n?|\n?```\s*$")


def extract_tag(text: str | None, tag: str) -> str | None:
    """The content of the last complete <tag>…</tag>, or of an unclosed final <tag>; None if absent.

    Tolerates case, spaces inside the brackets and code fences around the content.
    """
    if not text:
        return None
    name = re.escape(tag)
    closed = re.findall(rf"<\s*{name}\s*>(.*?)<\s*/\s*{name}\s*>", text, flags=re.IGNORECASE | re.DOTALL)
    if closed:
        content = closed[-1]
    else:
        opened = list(re.finditer(rf"<\s*{name}\s*>", text, flags=re.IGNORECASE))
        if not opened:
            return None
        content = text[opened[-1].end() :]
        # An unclosed tag runs to the next tag we know, or to the end.
        nxt = re.search(r"<\s*/?\s*(analyse|analysis|modification|prompt|choose)\s*>", content, re.IGNORECASE)
        if nxt:
            content = content[: nxt.start()]
    content = _FENCE.sub("", content.strip()).strip()
    return content


_CHOICE = re.compile(
    r"^[\s\W]*(?:(?:answer|set|option|choice|assistant|response)\b[\s:=-]*)?[\"'(\[]?([AB])(?![A-Za-z])",
    re.IGNORECASE,
)


def parse_choice(text: str | None) -> str | None:
    """'A' or 'B' from a judge reply's <choose> tag ('a', ' B. ', '**A**', 'Set B'); else None."""
    content = extract_tag(text, "choose")
    if content is None:
        return None
    content = content.replace("*", "").replace("`", "").strip()
    match = _CHOICE.match(content)
    if not match:
        return None
    letter = match.group(1).upper()
    rest = content[match.end() :]
    # "A or B", "A and B", "A/B": no decision.
    if re.search(r"\b(or|and)\s+[\"'(\[]?[AB]\b|/\s*[AB]\b", rest, re.IGNORECASE):
        return None
    return letter


_REFUSALS = ("i cannot help", "i can't help", "i can't assist", "i cannot assist", "i'm sorry, but")


def parse_prompt(text: str | None) -> str | None:
    """The new prompt from an optimizer reply, or None when missing, empty or a refusal."""
    content = extract_tag(text, "prompt")
    if not content:
        return None
    lowered = content.lower().replace("\u2019", "'")  # models often write "I can’t"
    if len(content) < 200 and any(lowered.startswith(r) for r in _REFUSALS):
        return None
    if lowered in {"the complete revised prompt, ready to use", "..."}:
        return None
    return content
