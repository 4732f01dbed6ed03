"""`compare`'s statistics: paired votes per question, a verdict at --alpha, and CI gates in both directions."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from promptopt.cli import app
from promptopt.engine.compare import compare_prompts
from promptopt.testing.stub_server import StubServer
from tests.conftest import FakeLLM

VOTE = "<analyse>x</analyse><choose>{}</choose>"


def judge_prefers(word: str):  # type: ignore[no-untyped-def]
    """A judge that picks whichever answer contains `word`, in either order."""

    def reply(messages: list[dict[str, str]]) -> str:
        text = messages[-1]["content"]
        a = text.split("\nA: ", 1)[1].split("\nB: ", 1)[0]
        return VOTE.format("A" if word in a else "B")

    return reply


def run(questions: int, votes: int, word: str, metric: str | None = None, golden: list[str | None] | None = None):  # type: ignore[no-untyped-def]
    def executor(messages: list[dict[str, str]]) -> str:
        prompt = messages[-1]["content"]
        return "good <answer>yes</answer>" if prompt.startswith("B") else "bad <answer>no</answer>"

    llm = FakeLLM({"executor": [executor] * 1000, "evaluator": [judge_prefers(word)] * 1000})
    qs = [f"question {i}?" for i in range(questions)]
    gold = golden if golden is not None else [None] * questions
    return asyncio.run(compare_prompts(llm, "A prompt", "B prompt", qs, gold, "r", votes=votes, metric=metric)), llm


def test_a_consistent_preference_over_enough_questions_is_significant() -> None:
    result, llm = run(6, 2, "good")
    assert llm.calls("evaluator") == 12
    assert (result.pairs.wins, result.pairs.losses, result.pairs.ties) == (6, 0, 0)
    assert result.p_value == pytest.approx(2 / 64)
    assert result.verdict == "B better" and result.b_better and not result.a_better
    low, high = result.win_rate_ci
    assert result.win_rate == 1.0 and 0.5 < low < high == 1.0


def test_the_other_direction_and_too_little_evidence() -> None:
    worse, _ = run(6, 2, "bad")
    assert worse.verdict == "A better" and worse.a_better
    few, _ = run(3, 2, "good")  # 3 of 3 pairs: p = 0.25, not significant at 0.05
    assert few.verdict == "no significant difference"


def test_a_position_biased_judge_ties_every_pair() -> None:
    llm = FakeLLM({"evaluator": [VOTE.format("A")] * 100})
    result = asyncio.run(compare_prompts(llm, "a", "b", ["q1", "q2", "q3"], [None] * 3, "r", votes=4))
    assert (result.pairs.wins, result.pairs.losses, result.pairs.ties) == (0, 0, 6)
    assert result.verdict == "no significant difference"


def test_with_a_metric_mcnemar_decides() -> None:
    result, _ = run(8, 2, "bad", metric="choice", golden=["yes"] * 8)
    # B is right on all 8, A on none: McNemar p = 2/256, although the judge preferred A.
    assert (result.a_accuracy, result.b_accuracy) == (0.0, 1.0)
    assert result.mcnemar_p == pytest.approx(2 / 256)
    assert result.decided_by == "metric" and result.verdict == "B better"
    low, high = result.accuracy_ci("b") or (0, 0)
    assert low > 0.6 and high == 1.0


@pytest.fixture
def here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-stub")
    (tmp_path / "Q.yaml").write_text("prompt: p\nqa:\n" + "".join(f"  - question: q{i}\n" for i in range(6)))
    return tmp_path


def invoke(*args: str) -> Any:
    return CliRunner().invoke(app, list(args), env={"COLUMNS": "200", "NO_COLOR": "1"})


def test_ci_gates_in_both_directions(here: Path) -> None:
    def responder(role: str, body: dict[str, Any]) -> str | None:
        text = body["messages"][-1]["content"]
        if role == "judge":
            a = text.split("\nA: ", 1)[1].split("\nB: ", 1)[0]
            return VOTE.format("A" if "GOOD" in a else "B")
        if role == "executor":
            return "GOOD" if text.startswith("Better") else "meh"
        return None

    with StubServer(responder=responder) as stub:
        flags = ["-t", "Q.yaml", "--model", "openai/stub", "--api-base", stub.url]
        better = invoke("compare", "text:Plain", "text:Better", "--fail-unless-better", "--json", *flags)
        assert better.exit_code == 0, better.output
        data = json.loads(better.stdout)
        assert data["verdict"] == "B better" and data["p_value"] == pytest.approx(2 / 64)
        assert data["p_value_over"] == "pairs" and data["win_rate_ci95"][1] == 1.0
        worse = invoke("compare", "text:Better", "text:Plain", "--fail-if-worse", *flags)
        assert worse.exit_code == 4 and "A better" in worse.output
        assert invoke("compare", "text:Better", "text:Plain", "--fail-unless-better", *flags).exit_code == 4
        # A stricter alpha turns the same evidence into "no significant difference".
        strict = invoke("compare", "text:Better", "text:Plain", "--fail-if-worse", "--alpha", "0.01", *flags)
        assert strict.exit_code == 0 and "no significant difference" in strict.output
