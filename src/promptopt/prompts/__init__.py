"""Our meta-prompts, kept as plain text files versioned with the code."""

from __future__ import annotations

from functools import cache
from importlib import resources


@cache
def load(name: str) -> str:
    """The text of prompts/<name>.txt."""
    return resources.files(__name__).joinpath(f"{name}.txt").read_text(encoding="utf-8")


def render(name: str, **values: object) -> str:
    """Fill {placeholders}; braces in values are left alone."""
    text = load(name)
    for key, value in values.items():
        text = text.replace("{" + key + "}", str(value))
    return text
