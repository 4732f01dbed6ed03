"""Ground-truth metrics for templates whose answers are real answers."""

from __future__ import annotations

import re
from collections.abc import Callable

from promptopt.errors import TemplateError

Metric = Callable[[str, str], bool]
DEFAULT_CHOICE = r"<answer>(.*?)</answer>"
_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?(?:[eE][-+]?\d+)?|-?\.\d+")


def normalize(text: str) -> str:
    text = text.strip().lower()
    text = re.sub(r"[\s]+", " ", text)
    return text.strip(" .!?\"'`*")


def exact(output: str, gold: str) -> bool:
    return normalize(output) == normalize(gold)


def contains(output: str, gold: str) -> bool:
    return normalize(gold) in normalize(output)


def extract_choice(output: str, pattern: str = DEFAULT_CHOICE) -> str | None:
    """The last match of `pattern` (its first group), else the last non-empty line."""
    matches = re.findall(pattern, output, flags=re.IGNORECASE | re.DOTALL)
    if matches:
        last = matches[-1]
        return (last[0] if isinstance(last, tuple) else last).strip()
    lines = [ln for ln in output.strip().splitlines() if ln.strip()]
    if not lines:
        return None
    last_line = lines[-1]
    m = re.search(r"(?:final answer|answer)\s*(?:is\s*:?|:)\s*(.+)$", last_line, re.IGNORECASE)
    return (m.group(1) if m else last_line).strip()


def choice(pattern: str = DEFAULT_CHOICE) -> Metric:
    def score(output: str, gold: str) -> bool:
        found = extract_choice(output, pattern)
        return found is not None and normalize(found) == normalize(gold)

    return score


def last_number(text: str) -> float | None:
    found = _NUMBER.findall(text)
    if not found:
        return None
    try:
        return float(found[-1].replace(",", ""))
    except ValueError:
        return None


def number(output: str, gold: str) -> bool:
    want, got = last_number(gold), last_number(output)
    if want is None or got is None:
        return False
    return abs(want - got) <= 1e-6 * max(1.0, abs(want))


def regex(pattern: str) -> Metric:
    try:
        compiled = re.compile(pattern, re.IGNORECASE | re.DOTALL)
    except re.error as exc:
        raise TemplateError(f"metric regex:{pattern}: invalid pattern ({exc})") from None

    def score(output: str, gold: str) -> bool:
        m = compiled.search(output)
        if not m:
            return False
        found = m.group(1) if m.groups() else m.group(0)
        return normalize(found) == normalize(gold)

    return score


METRICS = ("exact", "contains", "regex:PATTERN", "choice", "choice:PATTERN", "number")


def get_metric(spec: str) -> Metric:
    """'exact' | 'contains' | 'number' | 'choice' | 'choice:<pattern>' | 'regex:<pattern>'."""
    name, _, arg = spec.partition(":")
    name = name.strip().lower()
    if name == "exact" and not arg:
        return exact
    if name == "contains" and not arg:
        return contains
    if name == "number" and not arg:
        return number
    if name == "choice":
        return choice(arg or DEFAULT_CHOICE)
    if name == "regex" and arg:
        return regex(arg)
    raise TemplateError(f"metric '{spec}': unknown (use one of {', '.join(METRICS)})")
