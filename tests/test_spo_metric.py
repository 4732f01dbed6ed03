"""SPO with a template metric: the judge must prefer the candidate AND its accuracy must not drop."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from promptopt.config import RunConfig
from promptopt.engine.loop import RunResult, run_optimization
from promptopt.template import Template
from promptopt.workspace import Workspace
from tests.conftest import FakeLLM
from tests.yes_no import metric_executor, yes_no_template

VOTE = "<analyse>x</analyse><choose>{}</choose>"
CANDIDATE_WINS = [VOTE.format("B"), VOTE.format("A")]  # unswapped: candidate is B; swapped: it is A
BASE_WINS = [VOTE.format("A"), VOTE.format("B")]


def template(plus: str = "", metric: str | None = "choice", answers: bool = True) -> Template:
    return yes_no_template("Answer the question." + (f" {plus}" if plus else ""), metric, answers)


def run(t: Template, candidate: str, votes: list[str], tmp_path: Path) -> tuple[RunResult, FakeLLM]:
    llm = FakeLLM(
        {"optimizer": [f"<prompt>{candidate}</prompt>"], "executor": [metric_executor] * 100, "evaluator": votes}
    )
    # SPO's majority on two votes: these tests pin how the metric and the judge combine.
    config = RunConfig(strategy="spo", max_rounds=2, votes=2, accept="majority", confirm=False)
    return asyncio.run(run_optimization(t, config, llm, Workspace(tmp_path / "ws", "x"))), llm


def test_round_one_records_its_accuracy(tmp_path: Path) -> None:
    result, _ = run(template("+"), "Reply to the question. +", CANDIDATE_WINS, tmp_path)
    assert result.records[0].score == pytest.approx(1 / 3)


def test_a_judge_win_at_equal_accuracy_is_accepted(tmp_path: Path) -> None:
    result, llm = run(template("+"), "Reply to the question. +", CANDIDATE_WINS, tmp_path)
    record = result.records[1]
    assert (record.verdict, record.succeed) == ("win", True)
    assert record.score == pytest.approx(1 / 3)
    assert record.state["base_accuracy"] == pytest.approx(1 / 3)
    assert llm.calls("evaluator") == 2  # the judge still runs: the metric cannot see the requirements


def test_a_judge_win_with_lower_accuracy_is_rejected(tmp_path: Path) -> None:
    result, _ = run(template("++"), "Reply to the question. +", CANDIDATE_WINS, tmp_path)
    record = result.records[1]
    assert record.vote_marks == "✓✓"
    assert (record.verdict, record.succeed) == ("lose", False)
    assert record.score == pytest.approx(1 / 3)
    assert record.state["base_accuracy"] == pytest.approx(2 / 3)
    assert result.best.round == 1


def test_higher_accuracy_without_the_judge_is_rejected(tmp_path: Path) -> None:
    result, _ = run(template("+"), "Reply to the question. +++", BASE_WINS, tmp_path)
    record = result.records[1]
    assert record.score == 1.0
    assert (record.verdict, record.succeed) == ("lose", False)


def test_without_a_metric_spo_is_unchanged(tmp_path: Path) -> None:
    result, llm = run(template("+", metric=None), "Reply to the question.", CANDIDATE_WINS, tmp_path)
    assert [r.score for r in result.records] == [None, None]
    assert result.records[1].state == {}
    assert result.records[1].verdict == "win"
    assert llm.calls() == 3 + 1 + 3 + 2


def test_a_metric_without_reference_answers_falls_back_to_the_judge(tmp_path: Path) -> None:
    result, _ = run(template("++", answers=False), "Reply to the question. +", CANDIDATE_WINS, tmp_path)
    assert [r.score for r in result.records] == [None, None]
    assert result.records[1].verdict == "win"
