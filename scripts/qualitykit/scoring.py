"""Ground truth for the held-out benchmark: pull the final answer out of a reply and compare it.

Yes/No and A/B tasks use promptopt's own `choice` metric with a pattern that tolerates the
brackets small models add (`<answer>[Yes]</answer>`, `<answer>(B)</answer>`). MATH answers are
LaTeX: they are compared after a normalisation in the spirit of the MATH benchmark's
(`\\dfrac` = `\\frac`, no `\\left`/`\\right`, units and degree signs dropped, thousands separators
removed), and numerically when both sides are plain numbers or fractions.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from promptopt.engine.metrics import get_metric

Scorer = Callable[[str, str], bool]

# The template metrics (promptopt's syntax) and the scorers the benchmark measures with.
YES_NO_METRIC = r"choice:<answer>\W*(yes|no)\W*</answer>"
AB_METRIC = r"choice:<answer>\s*\(?\s*([AB])\s*(?:\)|</answer>)"
MATH_METRIC = "choice"  # <answer>…</answer>, then promptopt's normalised exact match

_ANSWER = re.compile(r"<answer>(.*?)</answer>", re.IGNORECASE | re.DOTALL)
_PLAIN_NUMBER = re.compile(r"-?(?:\d+\.?\d*|\.\d+)")
_FRACTION = re.compile(r"(-?)\\frac\{(-?\d+)\}\{(-?\d+)\}")
_SLASH = re.compile(r"(-?\d+)/(\d+)")


def last_boxed(text: str) -> str | None:
    """The content of the last `\\boxed{...}` (braces balanced), else None."""
    start = text.rfind("\\boxed")
    if start < 0:
        return None
    i = text.find("{", start)
    if i < 0:
        return None
    depth = 0
    for j in range(i, len(text)):
        if text[j] == "{":
            depth += 1
        elif text[j] == "}":
            depth -= 1
            if depth == 0:
                return text[i + 1 : j]
    return None


def math_final(reply: str) -> str | None:
    """The reply's final answer: the last `<answer>` tag, else the last `\\boxed{}`, else None."""
    tags = _ANSWER.findall(reply)
    if tags:
        inner = tags[-1]
        return last_boxed(inner) or inner
    return last_boxed(reply)


def _unwrap(text: str, command: str) -> str:
    """`\\text{abc}` → `abc` for every occurrence (braces balanced)."""
    out = text
    while True:
        start = out.find(command + "{")
        if start < 0:
            return out
        i = start + len(command)
        depth = 0
        for j in range(i, len(out)):
            depth += {"{": 1, "}": -1}.get(out[j], 0)
            if depth == 0:
                out = out[:start] + out[i + 1 : j] + out[j + 1 :]
                break
        else:
            return out


def normalize_math(text: str) -> str:
    """A canonical string for a LaTeX answer (see the module docstring)."""
    s = text.strip().strip("$").strip()
    s = re.sub(r"\\text\s*\{\s+[^{}]*\}\s*$", "", s)  # trailing units: "8\sqrt{3} \text{ square inches}"
    s = re.sub(r"\\mbox\s*\{[^{}]*\}\s*$", "", s)
    for command in ("\\text", "\\textbf", "\\mathrm", "\\mathbf", "\\boxed"):
        s = _unwrap(s, command)
    for old, new in (("\\dfrac", "\\frac"), ("\\tfrac", "\\frac"), ("\\left", ""), ("\\right", "")):
        s = s.replace(old, new)
    for mark in ("\\!", "\\,", "\\;", "\\:", "\\ ", "\\$", "$", "\\%", "%", "°"):
        s = s.replace(mark, "")
    s = re.sub(r"\^\s*\{?\s*\\circ\s*\}?", "", s)  # degrees
    s = re.sub(r"\s+", "", s)
    s = re.sub(r"\\frac(\d)(\d)", r"\\frac{\1}{\2}", s)  # \frac12
    s = re.sub(r"\\sqrt(\d+)", r"\\sqrt{\1}", s)  # \sqrt2
    if re.fullmatch(r"[a-zA-Z]=.+", s):  # "x=5"
        s = s[2:]
    if re.fullmatch(r"-?\d{1,3}(,\d{3})+(\.\d+)?", s):  # 12,000,085
        s = s.replace(",", "")
    s = s.rstrip(".")
    if re.fullmatch(r"-?\d+\.\d*", s):  # 5.0, 5.50
        s = s.rstrip("0").rstrip(".") or "0"
    return s


def as_number(text: str) -> float | None:
    """A plain number or a simple fraction (`3/4`, `\\frac{3}{4}`, `-\\frac{3}{4}`) as a float."""
    if _PLAIN_NUMBER.fullmatch(text):
        return float(text)
    for pattern, sign_group in ((_FRACTION, True), (_SLASH, False)):
        m = pattern.fullmatch(text)
        if m:
            sign = -1.0 if sign_group and m.group(1) else 1.0
            num, den = (m.group(2), m.group(3)) if sign_group else (m.group(1), m.group(2))
            return sign * float(num) / float(den) if float(den) else None
    return None


def math_equal(reply: str, gold: str) -> bool:
    """Whether the reply's final answer is the gold answer (normalised, or numerically)."""
    found = math_final(reply)
    if found is None:
        return False
    got, want = normalize_math(found), normalize_math(gold)
    if got == want:
        return True
    a, b = as_number(got), as_number(want)
    return a is not None and b is not None and abs(a - b) <= 1e-6 * max(1.0, abs(b))


def scorer(kind: str) -> Scorer:
    """The scorer of a task kind: 'yes_no', 'ab' or 'math'."""
    if kind == "math":
        return math_equal
    return get_metric(YES_NO_METRIC if kind == "yes_no" else AB_METRIC)


def template_metric(kind: str) -> str:
    """The promptopt metric a labelled run (--labels) puts in its template."""
    return {"yes_no": YES_NO_METRIC, "ab": AB_METRIC, "math": MATH_METRIC}[kind]
