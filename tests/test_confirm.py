"""The confirmation gate: the best prompt must beat the user's own before a run stands behind it."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from promptopt.config import RunConfig
from promptopt.engine.loop import RunResult, run_optimization
from promptopt.template import Template
from promptopt.testing.stub_server import StubServer
from promptopt.workspace import Workspace
from tests.conftest import FakeLLM, invoke
from tests.yes_no import metric_executor, quality_executor, quality_judge, yes_no_template

VOTE = "<analyse>x</analyse><choose>{}</choose>"


def opt(prompt: str) -> str:
    return f"<analyse>a</analyse><modification>m</modification><prompt>{prompt}</prompt>"


def fake(optimizer: list[str], judge: Any = quality_judge, executor: Any = quality_executor) -> FakeLLM:
    return FakeLLM({"optimizer": optimizer, "executor": [executor] * 1000, "evaluator": [judge] * 1000})


def run(t: Template, llm: FakeLLM, tmp_path: Path, max_rounds: int = 2, **config: Any) -> RunResult:
    cfg = RunConfig(max_rounds=max_rounds, **config)
    return asyncio.run(run_optimization(t, cfg, llm, Workspace(tmp_path / "ws", "x")))


def gate_votes(llm: FakeLLM) -> list[str]:
    """The gate's judge requests: one question each (the rounds' judge sees all three)."""
    return [
        m[-1]["content"]
        for role, m, _ in llm.history
        if role == "evaluator" and "### Question 2" not in m[-1]["content"]
    ]


def test_a_clearly_better_prompt_is_confirmed_on_per_question_pairs(tmp_path: Path) -> None:
    llm = fake([opt("Answer the question. +++")])
    result = run(yes_no_template("Answer the question."), llm, tmp_path)
    gate = result.gate
    assert result.best.round == 2 and gate is not None and gate.outcome == "confirmed"
    assert result.confirmed.round == 2
    # 3 questions: it looks after 3 pairs (p 0.125, not enough) and confirms after 6 (p 0.016).
    assert (gate.wins, gate.losses, gate.ties, gate.method) == (6, 0, 0, "judge")
    assert len(gate_votes(llm)) == 12 and gate.level is not None and gate.p_value <= gate.level
    assert {v.question for v in gate.votes} == {0, 1, 2}
    stored = json.loads((tmp_path / "ws/x/gate.json").read_text())
    assert stored["outcome"] == "confirmed" and stored["best_round"] == 2


def test_a_best_the_gate_cannot_confirm_is_not_reported(tmp_path: Path) -> None:
    # The rounds' judge favours the candidate; judging one question at a time, it always says "A".
    def judge(messages: list[dict[str, Any]]) -> str:
        whole = "### Question 2" in messages[-1]["content"]
        return quality_judge(messages) if whole else VOTE.format("A")

    result = run(yes_no_template("Answer the question."), fake([opt("Answer it. ++")], judge), tmp_path)
    assert result.best.round == 2
    assert result.gate is not None and result.gate.outcome == "not confirmed"
    assert result.confirmed.round == 1  # the run stands behind the user's own prompt
    # Position bias: every pair ties; after 3 passes one more cannot reach the bar, so it stops.
    assert (result.gate.wins, result.gate.losses, result.gate.ties) == (0, 0, 9)


def test_the_gate_is_stored_and_not_paid_for_again_until_the_best_changes(tmp_path: Path) -> None:
    t = yes_no_template("Answer the question.")
    first = run(t, fake([opt("Answer the question. ++")]), tmp_path, max_rounds=2)
    assert first.gate is not None and first.gate.outcome == "confirmed"
    again = fake([])
    rerun = run(t, again, tmp_path, max_rounds=2)
    assert again.calls() == 0 and rerun.gate == first.gate  # nothing to do, nothing paid
    better = fake([opt("Answer the question. ++++")])
    moved = run(t, better, tmp_path, max_rounds=3)
    assert moved.best.round == 3 and moved.gate is not None and moved.gate.best_round == 3
    assert len(gate_votes(better)) > 0  # a new best: the gate ran again


def test_no_confirm_skips_it_and_the_best_stands(tmp_path: Path) -> None:
    llm = fake([opt("Answer the question. ++")])
    result = run(yes_no_template("Answer the question."), llm, tmp_path, confirm=False)
    assert result.gate is not None and result.gate.outcome == "skipped"
    assert result.confirmed.round == 2 and gate_votes(llm) == []


def test_round_one_as_best_needs_no_gate(tmp_path: Path) -> None:
    llm = fake([opt("Answer. ")])  # quality 0 < 0: loses
    result = run(yes_no_template("Answer the question. +"), llm, tmp_path)
    assert result.best.round == 1 and result.gate is not None and result.gate.outcome == "not needed"
    assert gate_votes(llm) == []


def test_held_out_questions_are_judged_but_never_shown_to_the_optimizer(tmp_path: Path) -> None:
    t = yes_no_template("Answer the question.").model_copy(
        update={"holdout": parse_holdout(["Is ice hot?", "Is grass green?", "Is salt sweet?"])}
    )
    llm = fake([opt("Answer the question. +++")])
    result = run(t, llm, tmp_path)
    assert result.gate is not None and result.gate.holdout == 3 and result.gate.outcome == "confirmed"
    optimizer_inputs = " ".join(m[-1]["content"] for role, m, _ in llm.history if role == "optimizer")
    assert "Is ice hot?" not in optimizer_inputs
    asked = " ".join(m[-1]["content"] for role, m, _ in llm.history if role == "executor")
    assert "Is ice hot?" in asked  # both prompts answered the held-out questions


def parse_holdout(questions: list[str], answers: list[str] | None = None) -> list[Any]:
    from promptopt.template import QA

    return [QA(question=q, answer=(answers or [None] * len(questions))[i]) for i, q in enumerate(questions)]


def test_with_a_metric_held_out_accuracy_decides(tmp_path: Path) -> None:
    # metric_executor: a prompt with n '+' answers the first n of the three known questions right.
    t = yes_no_template("Answer the question.", metric="choice").model_copy(
        update={"holdout": parse_holdout(["Is the sky blue?", "Is fire cold?", "Is water wet?"], ["yes", "no", "yes"])}
    )
    llm = fake([opt("Answer the question. +++")], executor=metric_executor)
    result = run(t, llm, tmp_path, strategy="gpo", strategy_options={"candidates": 1})  # accuracy decides rounds
    gate = result.gate
    assert gate is not None and gate.method == "metric"
    assert (gate.accuracy, gate.initial_accuracy) == (1.0, 0.0)  # 0 '+': every held-out answer wrong
    # Three questions only the best got right: McNemar p = 1/8, not significant at 0.05.
    assert gate.p_value == pytest.approx(1 / 8) and gate.outcome == "not confirmed"
    assert gate_votes(llm) == []  # no judge call: the metric decides


# --- through the CLI ------------------------------------------------------------------------------


def test_show_best_prints_the_confirmed_prompt_and_ci_can_demand_an_improvement(here: Path) -> None:
    """A judge that prefers the candidate in whole-set rounds but always says 'A' per question."""

    def responder(role: str, body: dict[str, Any]) -> str | None:
        text = body["messages"][-1]["content"]
        if role == "judge":
            if "### Question 2" not in text:
                return VOTE.format("A")
            a = text.split("\nA: ", 1)[1].split("\nB: ", 1)[0]  # the stub's candidate answers echo "Revision"
            return VOTE.format("A" if "Revision" in a else "B")
        return None

    with StubServer(responder=responder) as stub:
        flags = ["--model", "openai/stub", "--api-base", stub.url]
        result = invoke("optimize", "-t", "Poem", "-r", "2", "--fail-unless-improved", "--json", *flags)
        assert result.exit_code == 4, result.output
        summary = json.loads(result.stdout)
        assert summary["candidate_round"] == 2 and summary["best_round"] == 1
        assert summary["confirmed"] is False and summary["gate"]["outcome"] == "not confirmed"
        assert "p_value" in summary["gate"] and "level" in summary["gate"]
        best = invoke("show", "workspace/Poem", "--best")
        assert best.stdout == (here / "workspace/Poem/prompts/round_1/prompt.txt").read_text()
        shown = invoke("show", "workspace/Poem")
        assert "not confirmed" in shown.output and "show --best prints round 1" in shown.output
        assert "✓ a vote for the candidate" in shown.output  # the legend
        human = invoke("optimize", "-t", "Poem", "-r", "2", *flags)
        assert human.exit_code == 0 and "not confirmed: round 2 vs your prompt" in human.output
