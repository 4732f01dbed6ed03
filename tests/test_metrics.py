"""Ground-truth metrics and accuracies in `compare` (the acceptance rules: test_acceptance.py)."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest

from promptopt.engine.compare import compare_prompts
from promptopt.engine.metrics import extract_choice, get_metric, last_number
from promptopt.errors import TemplateError
from promptopt.records import AnswerRecord
from promptopt.template import parse_template
from tests.conftest import FakeLLM

ROOT = Path(__file__).resolve().parents[1]
VOTE = "<analyse>x</analyse><choose>{}</choose>"


def answers(*texts: str | None) -> list[AnswerRecord]:
    """None stands for a failed call."""
    return [
        AnswerRecord(question=f"q{i}", answer=t or "", error=None if t is not None else "timeout")
        for i, t in enumerate(texts)
    ]


# --- extraction --------------------------------------------------------------------------------


def test_exact_and_contains_ignore_case_space_and_end_punctuation() -> None:
    exact, contains = get_metric("exact"), get_metric("contains")
    assert exact("  Paris. ", "paris")
    assert not exact("It is Paris", "Paris")
    assert contains("I think it is   PARIS, France", "paris, france")
    assert not contains("London", "Paris")


def test_choice_extracts_the_last_tagged_answer() -> None:
    choice = get_metric("choice")
    assert extract_choice("<answer>A</answer> no wait <answer> B </answer>") == "B"
    assert choice("Thinking...\n<answer>Yes</answer>", "yes")
    assert not choice("<answer>No</answer>", "Yes")
    # Without the tag: the last line, after "answer is" / "answer:" when present.
    assert extract_choice("Step 1...\nThe answer is C") == "C"
    assert extract_choice("Step 1...\nFinal answer: C") == "C"
    assert extract_choice("") is None


def test_choice_fallback_accepts_answer_is_colon() -> None:
    assert extract_choice("Step 1...\nThe answer is: C") == "C"


def test_choice_with_a_custom_pattern() -> None:
    choice = get_metric(r"choice:\(([A-D])\)")
    assert choice("Between (A) and (C), I pick (C)", "C")
    assert not choice("(A)", "C")


def test_regex_compares_the_first_group() -> None:
    regex = get_metric(r"regex:Result:\s*(\w+)")
    assert regex("Work...\nResult: 42 apples", "42")
    assert not regex("no result here", "42")
    assert get_metric("regex:done")("All DONE", "done")  # no group: the whole match


def test_number_compares_the_last_number() -> None:
    number = get_metric("number")
    assert number("3 + 4 = 7, so the total is 1,234.0 dollars", "1234")
    assert number("The answer is -0.5", "-.5")
    assert not number("about 12", "13")
    assert not number("no digits", "0")
    assert last_number("from 1e3 to 2.5e-1") == 0.25


@pytest.mark.parametrize("spec", ["fuzzy", "regex:", "regex:(unclosed", "exact:x"])
def test_a_bad_metric_is_a_template_error(spec: str) -> None:
    with pytest.raises(TemplateError):
        get_metric(spec)


def test_the_template_metric_is_checked_at_load() -> None:
    base = "prompt: p\nqa:\n  - question: q\n    answer: a\n"
    assert parse_template(base + "metric: number\n", "T.yaml").metric == "number"
    with pytest.raises(TemplateError, match=r"T\.yaml: metric"):
        parse_template(base + "metric: fuzzy\n", "T.yaml")


def test_the_documented_navigate_metric_works() -> None:
    """docs/strategies.md shows how to add a metric to templates/Navigate.yaml: keep it true."""
    docs = (ROOT / "docs" / "strategies.md").read_text(encoding="utf-8")
    line = re.search(r"^metric: .*$", docs, re.MULTILINE)
    assert line, "docs/strategies.md should show a `metric:` line for Navigate"
    navigate = (ROOT / "templates" / "Navigate.yaml").read_text(encoding="utf-8")
    t = parse_template(navigate.rstrip() + "\n" + line.group(0) + "\n", "Navigate.yaml")
    score = get_metric(t.metric or "")
    assert score("Facing north, +3, +7, turn around, -10: net 0. So the answer is **Yes**.", "Yes")
    assert score("Net displacement (-4, 2).\nFinal answer: No", "No")
    assert not score("I must answer yes or no. Net displacement is 2, so the answer is No.", "Yes")


# --- compare ---------------------------------------------------------------------------------


def test_compare_reports_the_accuracy_of_a_and_b() -> None:
    def executor(messages: list[dict[str, str]]) -> str:
        prompt, question = messages[-1]["content"].rsplit("\n\n", 1)
        if "always yes" in prompt:
            return "<answer>yes</answer>"
        return f"<answer>{'yes' if 'sky' in question else 'no'}</answer>"

    llm = FakeLLM({"executor": [executor] * 10})
    result = asyncio.run(
        compare_prompts(
            llm,
            "Say always yes.",
            "Think, then answer.",
            ["Is the sky blue?", "Is fire cold?"],
            ["yes", "no"],
            "Be right.",
            votes=2,
            metric="choice",
        )
    )
    assert (result.a_accuracy, result.b_accuracy) == (0.5, 1.0)
    # One question apart is no evidence: McNemar over the paired correctness says so.
    assert result.discordant == (0, 1) and result.mcnemar_p == 1.0
    assert result.decided_by == "metric" and result.verdict == "no significant difference"
