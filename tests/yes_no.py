"""A three-question yes/no task with scripted models whose quality shows in their answers.

Shared by the strategy tests: a prompt's quality is the number of '+' in it.
"""

from __future__ import annotations

import re
from typing import Any

from promptopt.template import Template, parse_template

GOLD = {"Is the sky blue?": "yes", "Is fire cold?": "no", "Is water wet?": "yes"}
ORDER = list(GOLD)

YAML = """\
prompt: |
  {prompt}
requirements: |
  {requirements}
count: None
qa:
  - question: Is the sky blue?
    answer: "{a1}"
  - question: Is fire cold?
    answer: "{a2}"
  - question: Is water wet?
    answer: "{a3}"
"""


def yes_no_template(
    prompt: str, metric: str | None = None, answers: bool = True, requirements: str = "Answer correctly."
) -> Template:
    gold = [GOLD[q] if answers else "" for q in ORDER]
    text = YAML.format(prompt=prompt, requirements=requirements, a1=gold[0], a2=gold[1], a3=gold[2])
    return parse_template(text + (f"metric: {metric}\n" if metric else ""), "X.yaml")


def split(messages: list[dict[str, Any]]) -> tuple[str, str]:
    """(prompt, question) of an executor request."""
    prompt, question = messages[-1]["content"].rsplit("\n\n", 1)
    return prompt, question.strip()


def quality_executor(messages: list[dict[str, Any]]) -> str:
    """The answer carries its prompt's quality: the number of '+' in the prompt."""
    prompt, question = split(messages)
    return f"quality={prompt.count('+')} answer to {question}"


def metric_executor(messages: list[dict[str, Any]]) -> str:
    """A prompt with n '+' answers the first n questions right and the others wrong."""
    prompt, question = split(messages)
    right = GOLD[question]
    wrong = "no" if right == "yes" else "yes"
    return f"Thinking. <answer>{right if ORDER.index(question) < prompt.count('+') else wrong}</answer>"


QUALITY = re.compile(r"^(A|B): quality=(\d+)", re.MULTILINE)


def quality_judge(messages: list[dict[str, Any]]) -> str:
    """Prefers the answer set of higher quality; on a tie, position A."""
    totals = {"A": 0, "B": 0}
    for letter, q in QUALITY.findall(messages[-1]["content"]):
        totals[letter] += int(q)
    return f"<analyse>x</analyse><choose>{'B' if totals['B'] > totals['A'] else 'A'}</choose>"
