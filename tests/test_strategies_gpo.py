"""GPO against a FakeLLM: the edit-budget schedule, retrieval, budget enforcement, acceptance, resume."""

from __future__ import annotations

import asyncio
import hashlib
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from promptopt.config import RunConfig
from promptopt.diff import word_edit_distance
from promptopt.engine.context import RunContext
from promptopt.engine.loop import RunResult, run_optimization
from promptopt.engine.strategies import get_strategy
from promptopt.engine.strategies.gpo import (
    GPO,
    Entry,
    build_trajectory,
    cosine_budget,
    limit_edits,
    parse_edit_budget,
    retrieve,
    similarity,
)
from promptopt.errors import ConfigError
from promptopt.template import Template
from promptopt.workspace import Workspace
from tests.conftest import FakeLLM, Killed
from tests.yes_no import QUALITY, metric_executor, quality_executor, quality_judge, yes_no_template


def template(plus: str = "", metric: str | None = None) -> Template:
    return yes_no_template("Answer the question." + (f" {plus}" if plus else ""), metric)


class GradedJudge:
    """Like quality_judge, but "++" against a "+" base wins only 3 of 4 votes (score 0.75).

    With 4 votes each message is seen twice; the second sight of the swapped one ("++" as A,
    quality 6 over 3 questions, against the base's 3) goes to the base.
    """

    def __init__(self) -> None:
        self.seen: dict[str, int] = {}

    def __call__(self, messages: list[dict[str, Any]]) -> str:
        content = messages[-1]["content"]
        self.seen[content] = self.seen.get(content, 0) + 1
        totals = {"A": 0, "B": 0}
        for letter, q in QUALITY.findall(content):
            totals[letter] += int(q)
        better = "B" if totals["B"] > totals["A"] else "A"
        if (totals["A"], totals["B"]) == (6, 3) and self.seen[content] == 2:
            better = "B"
        return f"<analyse>x</analyse><choose>{better}</choose>"


def opt(prompt: str) -> str:
    return f"<analyse>a</analyse><modification>changed</modification><prompt>{prompt}</prompt>"


def fake(
    optimizer: list[Any] | None = None,
    executor: Any = quality_executor,
    judge: Any = quality_judge,
    cls: type[FakeLLM] = FakeLLM,
) -> FakeLLM:
    return cls({"optimizer": list(optimizer or []), "executor": [executor] * 1000, "evaluator": [judge] * 1000})


def run(
    t: Template,
    llm: FakeLLM,
    tmp_path: Path,
    max_rounds: int,
    votes: int = 2,
    accept: str = "majority",
    **options: Any,
) -> RunResult:
    """GPO's mechanics on SPO's fixed majority of `votes` (the paired rule has tests of its own), no gate."""
    config = RunConfig(
        strategy="gpo", max_rounds=max_rounds, votes=votes, strategy_options=options, accept=accept, confirm=False
    )  # type: ignore[arg-type]
    return asyncio.run(run_optimization(t, config, llm, Workspace(tmp_path / "ws", "x")))


# --- the schedule ----------------------------------------------------------------------------


def test_cosine_schedule_goes_from_start_to_end() -> None:
    assert [cosine_budget(s, 5, 50, 10) for s in range(5)] == [50, 44, 30, 16, 10]
    assert [cosine_budget(s, 2, 50, 10) for s in range(2)] == [50, 10]
    assert cosine_budget(0, 1, 50, 10) == 50  # a single step gets the start budget
    assert cosine_budget(99, 5, 50, 10) == 10  # past the end stays at the end


def test_each_round_records_the_budget_of_the_schedule(tmp_path: Path) -> None:
    result = run(template(), fake(), tmp_path, max_rounds=5, candidates=1)
    # Rounds 2..5 are the run's four steps: cosine from 50 down to 10.
    assert [r.state["edit_budget"] for r in result.records[1:]] == [50, 40, 20, 10]


def test_edit_budget_option() -> None:
    assert parse_edit_budget("50:10") == (50, 10)
    assert parse_edit_budget(" 30 : 5 ") == (30, 5)
    assert parse_edit_budget("30") == (30, 30)
    assert parse_edit_budget(None) == (50, 10)
    for bad in ("fifty:10", "0:10", "50:10:5"):
        with pytest.raises(ConfigError, match="--edit-budget"):
            parse_edit_budget(bad)


def test_bad_options_fail_before_any_call(tmp_path: Path) -> None:
    llm = fake()
    with pytest.raises(ConfigError, match="--retrieval newest: unknown"):
        run(template(), llm, tmp_path, max_rounds=2, retrieval="newest")
    with pytest.raises(ConfigError, match="--candidates 0"):
        run(template(), llm, tmp_path, max_rounds=2, candidates=0)
    assert llm.calls() == 0


def test_registered_by_name() -> None:
    assert get_strategy("gpo") is GPO
    assert get_strategy("dual-phase").name == "dual-phase"


# --- retrieval -------------------------------------------------------------------------------

TRAJECTORY = [
    Entry(1, 0, "Answer the question.", 0.5),
    Entry(2, 0, "Answer the question step by step.", 0.9),
    Entry(2, 1, "Write a haiku about cats.", 0.2),
    Entry(3, 0, "Answer the question briefly.", 0.6),
    Entry(4, 0, "Cats and dogs.", 0.7),
]


def ids(entries: list[Entry]) -> list[tuple[int, int]]:
    return [(e.round, e.candidate) for e in entries]


def test_recency_retrieves_the_newest_first() -> None:
    assert ids(retrieve(TRAJECTORY, 3, "recency")) == [(3, 0), (2, 1), (2, 0)]  # the newest is the query
    assert ids(retrieve(TRAJECTORY, 3, "recency", current="Answer the question.")) == [(4, 0), (3, 0), (2, 1)]


def test_importance_retrieves_the_highest_scores_first() -> None:
    assert ids(retrieve(TRAJECTORY, 3, "importance", current="Answer the question.")) == [(2, 0), (4, 0), (3, 0)]


def test_relevance_retrieves_the_most_similar_to_the_current_prompt_first() -> None:
    got = retrieve(TRAJECTORY, 4, "relevance", current="Answer the question.")
    # 3 of 4 words shared, then 3 of 6 (one repeated), then nothing in common: newer first.
    assert ids(got) == [(3, 0), (2, 0), (4, 0), (2, 1)]
    # Without a current prompt the newest entry is the query, and is not retrieved itself.
    assert ids(retrieve(TRAJECTORY, 1, "relevance")) == [(2, 1)]


def test_retrieval_counts_each_prompt_once_and_respects_k() -> None:
    again = [*TRAJECTORY, Entry(5, 0, "Write a haiku about cats.", 0.3)]
    assert ids(retrieve(again, 10, "recency", current="x")) == [(5, 0), (4, 0), (3, 0), (2, 0), (1, 0)]
    assert retrieve(TRAJECTORY, 0, "importance") == []
    with pytest.raises(ConfigError):
        retrieve(TRAJECTORY, 3, "random")


def test_similarity_is_cosine_of_word_counts() -> None:
    assert similarity("Answer THE question", "answer the question.") == pytest.approx(1.0)
    assert similarity("cats", "dogs") == 0.0
    assert similarity("", "dogs") == 0.0
    assert similarity("a b", "a c") == pytest.approx(0.5)


def test_the_optimizer_sees_retrieved_prompts_with_scores(tmp_path: Path) -> None:
    llm = fake([opt("Answer the question. ++"), opt("Answer."), opt("Answer it. +++")])
    result = run(template("+"), llm, tmp_path, max_rounds=3, candidates=2, retrieval="importance", top_k=1)
    assert result.records[1].verdict == "accepted"  # "++" beat the initial prompt
    third = [m for role, m, _ in llm.history if role == "optimizer"][2][0]["content"]
    assert "<prompt>" in third
    # Scores are Bradley–Terry ratings on one scale: the initial prompt is 0, "++" won its votes.
    current = re.search(r"## Current prompt \(score ([-\d.]+)\)\nAnswer the question. \+\+", third)
    assert current and float(current.group(1)) > 0
    # The best other prompt so far is the initial one (0.00); the "Answer." candidate rated below it.
    assert "### Version from round 1 (score 0.00)\nAnswer the question. +\n" in third
    assert "Answer." not in third
    assert result.records[2].state["retrieved"] == [[1, 0]]


def test_the_trajectory_is_rebuilt_from_results_json(tmp_path: Path) -> None:
    result = run(template(), fake(), tmp_path, max_rounds=3, candidates=2)
    loaded = Workspace(tmp_path / "ws", "x").load()
    trajectory = build_trajectory(loaded)
    assert trajectory == build_trajectory(result.records)
    assert ids(trajectory) == [(1, 0), (2, 0), (2, 1), (3, 0), (3, 1)]
    assert trajectory[0].score == 0.5  # the initial prompt ties with itself


# --- the word budget -------------------------------------------------------------------------


def test_limit_edits_applies_edits_in_order_until_the_budget_is_spent() -> None:
    old = "one two three four five"
    assert limit_edits(old, "1 2 3 4 5", 2) == "1 2 three four five"
    assert limit_edits(old, "one two three four five six seven", 1) == "one two three four five six"
    assert limit_edits(old, "one 2 three 4 five", 5) == "one 2 three 4 five"  # within budget: untouched
    assert limit_edits(old, "zero one two", 0) == old


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.sampled_from(["a", "b", "c", "d", "e", "f", "g"]), min_size=0, max_size=25),
    st.lists(st.sampled_from(["a", "b", "c", "x", "y", "z"]), min_size=0, max_size=25),
    st.integers(min_value=0, max_value=12),
)
def test_limit_edits_never_exceeds_the_budget(old: list[str], new: list[str], budget: int) -> None:
    a, b = " ".join(old), " ".join(new)
    assert word_edit_distance(a, limit_edits(a, b, budget)) <= budget


LONG = "Answer the question. " + " ".join(f"word{i}" for i in range(20))


def test_an_over_budget_draft_is_regenerated_then_truncated(tmp_path: Path) -> None:
    far = "Completely different text " * 5
    llm = fake([opt(far), opt("Still a very different prompt with many new words in it")])
    result = run(template(), llm, tmp_path, max_rounds=2, candidates=1, edit_budget="3:3")
    asks = [m for role, m, _ in llm.history if role == "optimizer"]
    assert len(asks) == 2
    note = asks[1][-1]["content"]
    assert "at most 3" in note and "<prompt>" in note
    assert asks[1][-2] == {"role": "assistant", "content": f"<prompt>{far.strip()}</prompt>"}
    record = result.records[1]
    cand = record.state["candidates"][0]
    assert cand["regenerated"] and cand["truncated"]
    assert cand["edit_distance"] <= 3
    assert word_edit_distance(template().prompt, record.prompt) <= 3


def test_a_regenerated_draft_within_budget_is_used_as_is(tmp_path: Path) -> None:
    llm = fake([opt("Completely different text " * 5), opt("Answer the question now. +")])
    result = run(template(), llm, tmp_path, max_rounds=2, candidates=1, edit_budget="3:3")
    cand = result.records[1].state["candidates"][0]
    assert cand["regenerated"] and "truncated" not in cand
    assert result.records[1].prompt == "Answer the question now. +"
    assert result.records[1].verdict == "accepted"


def test_a_draft_within_budget_costs_one_call(tmp_path: Path) -> None:
    llm = fake([opt("Answer the question. +")])
    result = run(template(), llm, tmp_path, max_rounds=2, candidates=1, edit_budget="3:3")
    assert llm.calls("optimizer") == 1
    assert result.records[1].state["candidates"][0]["edit_distance"] == 1


# --- acceptance --------------------------------------------------------------------------------


def test_the_best_scoring_candidate_that_beats_the_current_one_is_accepted(tmp_path: Path) -> None:
    llm = fake([opt("Answer the question. ++"), opt("Answer the question. ++++"), opt("Answer.")], judge=GradedJudge())
    result = run(template("+"), llm, tmp_path, max_rounds=2, votes=4, candidates=3)
    record = result.records[1]
    cands = record.state["candidates"]
    # "++" leads by one: 3 of 4 votes. "++++" leads by three: every vote. "Answer." loses all.
    assert [c["score"] for c in cands] == [0.75, 1.0, 0.0]
    assert [c["beats_current"] for c in cands] == [True, True, False]
    assert [c["accepted"] for c in cands] == [False, True, False]
    assert record.state["chosen"] == 1
    assert (record.verdict, record.succeed, record.score) == ("accepted", True, 1.0)
    assert record.prompt == "Answer the question. ++++"
    assert record.vote_marks == "✓✓✓✓"
    assert result.best.round == 2


def test_when_no_candidate_beats_the_current_one_the_round_is_rejected(tmp_path: Path) -> None:
    llm = fake([opt("Answer. +"), opt("Answer the question now. ++")])
    result = run(template("++"), llm, tmp_path, max_rounds=2, candidates=2)
    record = result.records[1]
    assert [c["score"] for c in record.state["candidates"]] == [0.0, 0.5]  # a tie is not a win
    assert (record.verdict, record.succeed) == ("rejected", False)
    assert record.prompt == "Answer the question now. ++"  # the closest candidate is kept for `show`
    assert result.best.round == 1


def test_with_a_metric_accuracy_decides_and_no_judge_is_called(tmp_path: Path) -> None:
    llm = fake(
        [opt("Answer the question. ++"), opt("Answer the question. +++"), opt("Answer the question.")],
        executor=metric_executor,
    )
    result = run(template("+", metric="choice"), llm, tmp_path, max_rounds=5, candidates=3)
    assert llm.calls("evaluator") == 0
    first, second = result.records[0], result.records[1]
    assert first.score == pytest.approx(1 / 3)
    assert [c["score"] for c in second.state["candidates"]] == pytest.approx([2 / 3, 1.0, 0.0])
    assert second.verdict == "accepted" and second.prompt == "Answer the question. +++"
    # Nothing beats full accuracy: the run stops instead of paying for more rounds.
    assert result.stopped == "converged" and len(result.records) == 2


def test_an_equal_accuracy_is_not_an_improvement(tmp_path: Path) -> None:
    llm = fake([opt("Reply to the question. +")], executor=metric_executor)
    result = run(template("+", metric="choice"), llm, tmp_path, max_rounds=2, candidates=1)
    assert result.records[1].verdict == "rejected"


def test_duplicate_candidates_are_executed_once(tmp_path: Path) -> None:
    llm = fake([opt("Answer the question. +"), opt("Answer the question. +")])
    result = run(template(), llm, tmp_path, max_rounds=2, candidates=2)
    assert llm.calls("executor") == 3 + 3
    assert result.records[1].state["candidates"][1]["error"] == "same prompt as candidate 1"


def test_a_round_where_every_candidate_failed_is_recorded_as_failed(tmp_path: Path) -> None:
    llm = fake(["no tags here"] * 6)
    result = run(template(), llm, tmp_path, max_rounds=2, candidates=2)
    record = result.records[1]
    assert record.verdict == "failed" and not record.succeed
    assert "no usable <prompt>" in (record.error or "")
    assert llm.calls("executor") == 3


# --- calls -----------------------------------------------------------------------------------


@pytest.mark.parametrize("metric", [None, "choice"])
def test_calls_per_step_match_the_dry_run_formula(tmp_path: Path, metric: str | None) -> None:
    executor = metric_executor if metric else quality_executor
    llm = fake(executor=executor)
    result = run(template(metric=metric), llm, tmp_path, max_rounds=3, votes=2, candidates=3)
    config = RunConfig(strategy="gpo", votes=2, accept="majority", strategy_options={"candidates": 3})
    gpo = GPO(RunContext(template(metric=metric), config, FakeLLM()))
    step, first = gpo.round_calls(first=False), gpo.round_calls(first=True)
    assert (step.optimizer, step.executor, step.comparisons) == (3, 9, 0 if metric else 3)
    assert (first.optimizer, first.executor, first.comparisons) == (0, 3, 0)
    expected = {"optimizer": 3, "executor": 9, "evaluator": step.comparisons * gpo.acceptance.rule.most()}
    for record in result.records[1:]:
        assert {role: u.calls for role, u in record.usage.items()} == {k: v for k, v in expected.items() if v}


# --- resume ----------------------------------------------------------------------------------


class SampleFake(FakeLLM):
    """Lets scripted callables see the cache sample, as a real model's randomness would differ by it."""

    sample = 0

    async def complete(self, role: str, messages: list[dict[str, Any]], *, sample: int = 0, shape: Any = None) -> Any:
        self.sample = sample
        return await super().complete(role, messages, sample=sample, shape=shape)


def deterministic(cls: type[SampleFake] = SampleFake, **kw: Any) -> SampleFake:
    """Replies that depend only on the request (content and sample), never on call order."""
    llm: SampleFake

    def optimizer(messages: list[dict[str, Any]]) -> str:
        digest = hashlib.sha256(f"{messages[-1]['content']}|{llm.sample}".encode()).digest()
        return opt(f"Answer the question. {'+' * (digest[0] % 4)} v{digest[1]}")

    script = {
        "optimizer": [optimizer] * 1000,
        "executor": [quality_executor] * 1000,
        "evaluator": [quality_judge] * 1000,
    }
    llm = cls(script, **kw)
    return llm


def essentials(result: RunResult) -> list[tuple[Any, ...]]:
    return [(r.round, r.prompt, r.verdict, r.score, r.vote_marks, r.state) for r in result.records]


def test_resume_continues_with_the_trajectory_and_the_schedule(tmp_path: Path) -> None:
    first = run(template(), fake(), tmp_path, max_rounds=3, candidates=2)
    llm = fake()
    second = run(template(), llm, tmp_path, max_rounds=5, candidates=2)
    assert [r.round for r in second.records] == [1, 2, 3, 4, 5]
    assert essentials(second)[:3] == essentials(first)
    # Only rounds 4 and 5 ran: 2 × candidates × (1 optimizer + 3 executions + 2 votes).
    assert llm.calls() == 2 * 2 * (1 + 3 + 2)
    # The schedule spans this invocation's --max-rounds 5: steps 50, 40, 20, 10.
    assert [r.state["edit_budget"] for r in second.records[3:]] == [20, 10]
    # Recency: round 4 starts from the candidates of round 3, then round 2.
    assert second.records[3].state["retrieved"] == [[3, 1], [3, 0], [2, 1]]
    asked = next(m for role, m, _ in llm.history if role == "optimizer")[0]["content"]
    for cand in first.records[2].state["candidates"]:
        assert cand["prompt"] in asked


def test_a_killed_run_resumes_exactly_as_an_uninterrupted_one(tmp_path: Path) -> None:
    straight = run(template(), deterministic(), tmp_path / "a", max_rounds=5, candidates=2)
    assert any(r.verdict == "accepted" for r in straight.records[1:])
    with pytest.raises(Killed):  # killed in the middle of round 4
        run(template(), deterministic(after=3 + 2 * 12 + 5), tmp_path / "b", max_rounds=5, candidates=2)
    assert [r.round for r in Workspace(tmp_path / "b" / "ws", "x").load()] == [1, 2, 3]
    resumed = run(template(), deterministic(), tmp_path / "b", max_rounds=5, candidates=2)
    assert essentials(resumed) == essentials(straight)
