"""Dual-Phase against a FakeLLM: the structured first round, sentence picks, EXP3 weights, stops, resume."""

from __future__ import annotations

import asyncio
import math
import random
import re
from pathlib import Path
from typing import Any

import pytest

from promptopt.config import RunConfig
from promptopt.engine.context import RunContext
from promptopt.engine.loop import RunResult, run_optimization
from promptopt.engine.strategies.dual_phase import (
    DualPhase,
    exp3_update,
    pick_sentence,
    replace_sentence,
    rewritable,
    split_sentences,
)
from promptopt.template import Template
from promptopt.workspace import Workspace
from tests.conftest import FakeLLM, Killed
from tests.yes_no import metric_executor, quality_executor, quality_judge, yes_no_template

STRUCTURED = (
    "Task type: yes or no questions.\n"
    "Task description: answer each question with yes or no.\n"
    "Output format: put the final answer in answer tags.\n"
    "Reasoning steps: recall the relevant facts first.\n"
    "Tips: watch out for negations."
)


def template(metric: str | None = None) -> Template:
    return yes_no_template("Say yes or no.", metric, requirements="Answer correctly with yes or no.")


def sentence_asked(messages: list[dict[str, Any]]) -> str:
    found = re.search(r"## The sentence to rewrite\n(.*?)\n\n## ", messages[-1]["content"], re.DOTALL)
    assert found, "not a rewrite request"
    return found.group(1)


def rewriter(suffix: str) -> Any:
    """Rewrites the sentence it is asked about by appending `suffix`."""
    return lambda messages: f"<analyse>a</analyse><sentence>{sentence_asked(messages)} {suffix}</sentence>"


def init(prompt: str = STRUCTURED) -> str:
    return f"<analyse>needs structure</analyse><prompt>{prompt}</prompt>"


def fake(rewrites: list[Any], first: str | None = None, executor: Any = quality_executor) -> FakeLLM:
    optimizer = ([first] if first is not None else []) + rewrites
    return FakeLLM({"optimizer": optimizer, "executor": [executor] * 1000, "evaluator": [quality_judge] * 1000})


def run(
    t: Template, llm: FakeLLM, tmp_path: Path, max_rounds: int, votes: int = 2, seed: int = 0, **options: Any
) -> RunResult:
    """Dual-Phase's mechanics on SPO's fixed majority of `votes` (the paired rule has its own tests), no gate."""
    config = RunConfig(
        strategy="dual-phase",
        max_rounds=max_rounds,
        votes=votes,
        seed=seed,
        strategy_options=options,
        accept="majority",
        confirm=False,
    )
    return asyncio.run(run_optimization(t, config, llm, Workspace(tmp_path / "ws", "x")))


def strategy(t: Template, votes: int = 2) -> DualPhase:
    config = RunConfig(strategy="dual-phase", votes=votes, accept="majority")
    return DualPhase(RunContext(t, config, FakeLLM()))


class FixedRandom(random.Random):
    def __init__(self, value: float) -> None:
        super().__init__(0)
        self.value = value

    def random(self) -> float:
        return self.value


# --- pure helpers ----------------------------------------------------------------------------


def test_split_sentences_is_lossless() -> None:
    assert split_sentences("First one. Second one!  Third?\nFourth line\n\n- a bullet") == [
        "First one. ",
        "Second one!  ",
        "Third?\n",
        "Fourth line\n\n",
        "- a bullet",
    ]
    for text in (
        STRUCTURED,
        "  Lead. Pi is 3.14 here. (Quoted.) Next\n",
        "",
        "one",
        "A.\n\n\n",
        '## Heading\nHe said "stop." Then left.',
    ):
        assert "".join(split_sentences(text)) == text
    assert split_sentences("Pi is 3.14 here.") == ["Pi is 3.14 here."]


def test_only_sentences_with_words_are_rewritten() -> None:
    assert rewritable("Answer each question with yes or no. ")
    assert not rewritable("## Output format\n")
    assert not rewritable("Tips:\n")


def test_replace_sentence_keeps_the_surrounding_whitespace() -> None:
    parts = split_sentences("One two three.\nFour five six. Seven")
    assert "".join(replace_sentence(parts, 1, "  New words here. ")) == "One two three.\nNew words here. Seven"
    assert "".join(replace_sentence(parts, 2, "Last one.")) == "One two three.\nFour five six. Last one."


def test_pick_sentence_draws_in_proportion_to_exp_weight() -> None:
    weights = [0.0, math.log(3)]  # probabilities 1/4 and 3/4
    assert pick_sentence(weights, FixedRandom(0.2)) == (0, pytest.approx(0.25))
    assert pick_sentence(weights, FixedRandom(0.3)) == (1, pytest.approx(0.75))
    assert pick_sentence([5.0, 1.0, 1.0], FixedRandom(0.0), allowed=[1, 2]) == (1, pytest.approx(0.5))
    rng = random.Random(7)
    draws = [pick_sentence(weights, rng)[0] for _ in range(4000)]
    assert draws.count(1) / len(draws) == pytest.approx(0.75, abs=0.03)
    with pytest.raises(ValueError):
        pick_sentence(weights, rng, allowed=[])


def test_exp3_moves_only_the_picked_weight_by_reward_over_probability() -> None:
    weights = [1.0, 1.0, 1.0]
    assert exp3_update(weights, 1, 0.5, 0.25, eta=0.5) == [1.0, 2.0, 1.0]
    assert exp3_update(weights, 2, -0.5, 0.5, eta=0.5) == [1.0, 1.0, 0.5]
    assert weights == [1.0, 1.0, 1.0]  # a new list; the old one is untouched


# --- phase 1 ---------------------------------------------------------------------------------


def test_round_one_is_the_structured_prompt_and_keeps_the_users(tmp_path: Path) -> None:
    llm = fake([], first=init())
    result = run(template(), llm, tmp_path, max_rounds=1)
    first = result.records[0]
    assert (first.round, first.verdict, first.succeed) == (1, "initial", True)
    assert first.prompt == STRUCTURED
    assert first.state["user_prompt"] == template().prompt
    assert "".join(first.state["sentences"]) == STRUCTURED
    assert first.state["weights"] == [1.0] * 5
    assert first.score == 0.5
    asked = llm.history[0][1][0]["content"]
    for part in (
        "Task type",
        "Reasoning steps",
        "Tips",
        "<prompt>",
        "Say yes or no.",
        "Answer correctly with yes or no.",
        "Is fire cold?",
        "Expected answer: no",
    ):
        assert part in asked
    assert {r: llm.calls(r) for r in ("optimizer", "executor", "evaluator")} == {
        "optimizer": 1,
        "executor": 3,
        "evaluator": 0,
    }
    first = strategy(template()).round_calls(first=True)
    assert (first.optimizer, first.executor, first.comparisons) == (1, 3, 0)


def test_round_one_falls_back_to_the_users_prompt(tmp_path: Path) -> None:
    llm = fake(["I refuse"] * 3, first="no tags")
    result = run(template(), llm, tmp_path, max_rounds=1)
    first = result.records[0]
    assert first.prompt == template().prompt
    assert "round 1 keeps your prompt" in (first.error or "")
    assert llm.calls("optimizer") == 3


# --- phase 2 ---------------------------------------------------------------------------------


def test_a_better_rewrite_of_the_picked_sentence_is_accepted(tmp_path: Path) -> None:
    llm = fake([rewriter("+")], first=init())
    result = run(template(), llm, tmp_path, max_rounds=2, seed=3)
    record = result.records[1]
    state = record.state
    i = state["picked"]
    sentences = split_sentences(STRUCTURED)
    assert state["old_sentence"] == sentences[i].strip()
    asked = sentence_asked([m for role, m, _ in llm.history if role == "optimizer"][1])
    assert asked == sentences[i].strip()
    # Only the picked sentence changed.
    assert record.prompt == "".join(replace_sentence(sentences, i, sentences[i].strip() + " +"))
    assert (record.verdict, record.succeed, record.score) == ("accepted", True, 1.0)
    assert result.best.round == 2
    assert "".join(state["sentences"]) == record.prompt
    # EXP3: reward 1.0 - 0.5 (the share over a tie), probability 1/5, eta 0.5.
    assert state["reward"] == 0.5
    assert state["probability"] == pytest.approx(0.2)
    assert state["weights"][i] == pytest.approx(1.0 + 0.5 * 0.5 / 0.2)
    assert [w for j, w in enumerate(state["weights"]) if j != i] == [1.0] * 4
    assert state["tried"] == [] and state["stale"] == 0


def test_the_seed_and_round_decide_the_pick(tmp_path: Path) -> None:
    picks = set()
    for seed in range(4):
        result = run(template(), fake([rewriter("+")], first=init()), tmp_path / str(seed), max_rounds=2, seed=seed)
        again = run(template(), fake([rewriter("+")], first=init()), tmp_path / f"{seed}b", max_rounds=2, seed=seed)
        assert result.records[1].state["picked"] == again.records[1].state["picked"]
        picks.add(result.records[1].state["picked"])
    assert len(picks) > 1


def test_a_rewrite_that_does_not_improve_is_rejected_and_loses_weight(tmp_path: Path) -> None:
    llm = fake([rewriter("(same quality)")], first=init())
    result = run(template(), llm, tmp_path, max_rounds=2)
    record = result.records[1]
    i = record.state["picked"]
    assert (record.verdict, record.succeed, record.score) == ("rejected", False, 0.5)
    assert result.best.round == 1
    assert "".join(record.state["sentences"]) == STRUCTURED  # the best prompt is unchanged
    assert record.state["reward"] == 0.0
    assert record.state["weights"][i] == 1.0  # a tie earns nothing
    assert record.state["tried"] == [i] and record.state["stale"] == 1


def test_a_reply_without_a_sentence_is_a_failed_round_not_a_reward(tmp_path: Path) -> None:
    """A format failure rewrote nothing: no penalty, not 'tried', not stale, and no early stop."""
    llm = fake(["no tags"] * 30, first=init())
    result = run(template(), llm, tmp_path, max_rounds=4)
    assert result.stopped == "completed" and [r.round for r in result.records] == [1, 2, 3, 4]
    for record in result.records[1:]:
        i = record.state["picked"]
        assert record.verdict == "failed" and "no usable <sentence>" in (record.error or "")
        assert record.state["weights"][i] == 1.0 and "reward" not in record.state
        assert record.state["tried"] == [] and record.state["stale"] == 0
    assert llm.calls("executor") == 3  # nothing to execute


def test_a_one_sentence_reply_in_prompt_tags_is_accepted_as_the_rewrite(tmp_path: Path) -> None:
    llm = fake(["<prompt>Answer with yes or no only, +.</prompt>"], first=init())
    result = run(template(), llm, tmp_path, max_rounds=2)
    assert result.records[1].state["new_sentence"] == "Answer with yes or no only, +."


def test_it_stops_when_no_sentence_improves(tmp_path: Path) -> None:
    two = "Answer the question directly.\nGive a short reason first."
    llm = fake([rewriter("(no better)")] * 10, first=init(two))
    result = run(template(), llm, tmp_path, max_rounds=10)
    assert [r.verdict for r in result.records] == ["initial", "rejected", "rejected"]
    assert sorted(r.state["picked"] for r in result.records[1:]) == [0, 1]  # each sentence once
    assert result.stopped == "converged"
    assert result.message == "every sentence was rewritten once without improving the prompt"


def test_patience_stops_a_long_prompt_early(tmp_path: Path) -> None:
    llm = fake([rewriter("(no better)")] * 10, first=init())
    result = run(template(), llm, tmp_path, max_rounds=10, patience=3)
    assert len(result.records) == 4
    assert result.message == "no sentence rewrite improved the prompt in the last 3 steps"
    assert len({r.state["picked"] for r in result.records[1:]}) == 3  # never the same sentence twice


def test_an_improvement_resets_the_tried_sentences(tmp_path: Path) -> None:
    two = "Answer the question directly.\nGive a short reason first."
    llm = fake(
        [rewriter("(no better)"), rewriter("+"), rewriter("(no better)"), rewriter("(no better)")], first=init(two)
    )
    result = run(template(), llm, tmp_path, max_rounds=10)
    assert [r.verdict for r in result.records] == ["initial", "rejected", "accepted", "rejected", "rejected"]
    assert result.records[2].state["tried"] == []
    assert result.best.round == 3


def test_with_a_metric_the_rewrite_sees_the_wrong_answers_and_accuracy_decides(tmp_path: Path) -> None:
    llm = fake(
        [rewriter("+"), rewriter("+")],
        first=init("Answer the question. +\nBe brief and accurate."),
        executor=metric_executor,
    )
    result = run(template("choice"), llm, tmp_path, max_rounds=10)
    assert llm.calls("evaluator") == 0
    assert [r.score for r in result.records] == pytest.approx([1 / 3, 2 / 3, 1.0])
    assert [r.verdict for r in result.records] == ["initial", "accepted", "accepted"]
    asked = [m for role, m, _ in llm.history if role == "optimizer"][1][0]["content"]
    assert "Questions the prompt gets wrong" in asked
    assert "Is fire cold?" in asked and "Is the sky blue?" not in asked
    assert result.stopped == "converged" and "accuracy 1.00" in (result.message or "")


def test_calls_per_step_match_the_dry_run_formula(tmp_path: Path) -> None:
    llm = fake([rewriter("+")] * 3, first=init())
    result = run(template(), llm, tmp_path, max_rounds=3, votes=4)
    dp = strategy(template(), votes=4)
    step = dp.round_calls(first=False)
    assert (step.optimizer, step.executor, step.comparisons) == (1, 3, 1)
    expected = {"optimizer": 1, "executor": 3, "evaluator": step.comparisons * dp.acceptance.rule.most()}
    assert expected["evaluator"] == 4
    assert strategy(template("choice")).round_calls(first=False).comparisons == 0
    for record in result.records[1:]:
        assert {role: u.calls for role, u in record.usage.items()} == expected


# --- resume ----------------------------------------------------------------------------------


def improving_every_other_time(messages: list[dict[str, Any]]) -> str:
    """Deterministic in the request alone: sentences with an even letter count get a '+'."""
    sentence = sentence_asked(messages)
    suffix = "+" if sum(c.isalpha() for c in sentence) % 2 == 0 else "(no better)"
    return f"<sentence>{sentence} {suffix}</sentence>"


def deterministic(cls: type[FakeLLM] = FakeLLM, **kw: Any) -> FakeLLM:
    script = {
        "optimizer": [init(), *[improving_every_other_time] * 100],
        "executor": [quality_executor] * 1000,
        "evaluator": [quality_judge] * 1000,
    }
    return cls(script, **kw)


def essentials(result: RunResult) -> list[tuple[Any, ...]]:
    return [(r.round, r.prompt, r.verdict, r.score, r.vote_marks, r.state) for r in result.records]


def test_resume_continues_with_the_weights_and_counters(tmp_path: Path) -> None:
    first = run(template(), deterministic(), tmp_path, max_rounds=3, patience=10)
    llm = FakeLLM(
        {
            "optimizer": [improving_every_other_time] * 10,
            "executor": [quality_executor] * 100,
            "evaluator": [quality_judge] * 100,
        }
    )
    second = run(template(), llm, tmp_path, max_rounds=5, patience=10)
    assert [r.round for r in second.records] == [1, 2, 3, 4, 5]
    assert essentials(second)[:3] == essentials(first)
    assert llm.calls() == 2 * (1 + 3 + 2)  # rounds 4 and 5 only; the best's answers are reused
    fourth = second.records[3]
    before = first.records[2].state
    assert fourth.state["picked"] not in before["tried"]
    if fourth.verdict == "rejected":
        assert fourth.state["stale"] == before["stale"] + 1
        assert fourth.state["tried"] == sorted({*before["tried"], fourth.state["picked"]})
    untouched = [j for j in range(5) if j != fourth.state["picked"]]
    assert [fourth.state["weights"][j] for j in untouched] == [before["weights"][j] for j in untouched]


def test_a_killed_run_resumes_exactly_as_an_uninterrupted_one(tmp_path: Path) -> None:
    straight = run(template(), deterministic(), tmp_path / "a", max_rounds=6, patience=10)
    assert {r.verdict for r in straight.records[1:]} >= {"accepted", "rejected"}
    with pytest.raises(Killed):  # killed in the middle of round 4
        run(template(), deterministic(after=4 + 2 * 6 + 2), tmp_path / "b", max_rounds=6, patience=10)
    assert [r.round for r in Workspace(tmp_path / "b" / "ws", "x").load()] == [1, 2, 3]
    resumed_llm = FakeLLM(
        {
            "optimizer": [improving_every_other_time] * 100,
            "executor": [quality_executor] * 100,
            "evaluator": [quality_judge] * 100,
        }
    )
    resumed = run(template(), resumed_llm, tmp_path / "b", max_rounds=6, patience=10)
    assert essentials(resumed) == essentials(straight)
