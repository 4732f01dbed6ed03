"""The SPO loop against a FakeLLM: calls, swaps, the win rule, retries, resume."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from promptopt.config import RunConfig
from promptopt.engine.loop import run_optimization
from promptopt.errors import ConfigError, LLMAuthError, LLMError, LLMTransient
from promptopt.events import RecordingEvents
from promptopt.template import parse_template
from promptopt.workspace import Workspace
from tests.conftest import POEM, FakeLLM

TEMPLATE = parse_template(POEM, "Poem.yaml")
WIN = "<analyse>x</analyse><choose>{}</choose>"


def run(llm: FakeLLM, tmp_path: Path, **config: object):
    cfg = RunConfig(**config)  # type: ignore[arg-type]
    return asyncio.run(run_optimization(TEMPLATE, cfg, llm, Workspace(tmp_path / "ws", "Poem"), RecordingEvents()))


def judge_for_candidate(wins: list[bool | None]) -> list[str]:
    """Judge replies that vote for the candidate (True), the base (False) or abstain (None).

    Votes alternate unswapped (candidate is B) and swapped (candidate is A).
    """
    out = []
    for i, w in enumerate(wins):
        swapped = i % 2 == 1
        if w is None:
            out.append("I think both are fine.")
        else:
            cand, base = ("A", "B") if swapped else ("B", "A")
            out.append(WIN.format(cand if w else base))
    return out


def test_ten_rounds_make_exactly_75_calls(tmp_path: Path) -> None:
    """SPO's own rule (--accept majority --no-confirm) reproduces the paper's call count."""
    llm = FakeLLM()
    result = run(llm, tmp_path, max_rounds=10, accept="majority", confirm=False)
    assert [r.round for r in result.records] == list(range(1, 11))
    assert llm.calls() == 3 + 9 * (1 + 3 + 4)
    assert llm.calls("executor") == 3 + 9 * 3
    assert result.calls == 75


def test_max_votes_equal_to_votes_keeps_todays_call_totals(tmp_path: Path) -> None:
    """The paired rule with --max-votes = --votes asks for exactly --votes votes a round."""
    llm = FakeLLM()  # the fake judge always says B: every pair ties, the most undecided judge there is
    result = run(llm, tmp_path, max_rounds=10, votes=4, max_votes=4, confirm=False)
    assert llm.calls() == result.calls == 75


def test_round_one_runs_the_initial_prompt_and_succeeds(tmp_path: Path) -> None:
    llm = FakeLLM()
    result = run(llm, tmp_path, max_rounds=1)
    first = result.records[0]
    assert first.succeed and first.verdict == "initial"
    assert first.prompt == TEMPLATE.prompt
    sent = [m[0]["content"] for role, m, _ in llm.history]
    assert all(s.startswith("Write a poem.") for s in sent)
    assert {a.question for a in first.answers} == {q.question for q in TEMPLATE.qa}


def test_votes_are_balanced_and_judge_never_sees_prompts(tmp_path: Path) -> None:
    llm = FakeLLM({"optimizer": ["<prompt>Candidate prompt SECRETWORD.</prompt>"]})
    run(llm, tmp_path, max_rounds=2, votes=4, max_votes=4)
    judged = [m[0]["content"] for role, m, _ in llm.history if role == "evaluator"]
    assert len(judged) == 4
    for text in judged:
        assert "SECRETWORD" not in text and "Write a poem." not in text
        assert "round" not in text.lower()
    samples = [s for role, _, s in llm.history if role == "evaluator"]
    assert len(set(samples)) == 4


def test_swapped_votes_show_the_candidate_first(tmp_path: Path) -> None:
    def executor(messages: list[dict[str, str]]) -> str:
        return "CANDIDATE" if messages[0]["content"].startswith("New") else "BASE"

    llm = FakeLLM({"optimizer": ["<prompt>New prompt</prompt>"], "executor": [executor] * 6})
    run(llm, tmp_path, max_rounds=2, votes=4, max_votes=4)
    judged = [m[0]["content"] for role, m, _ in llm.history if role == "evaluator"]
    first_is_candidate = ["A: CANDIDATE" in j for j in judged]
    assert first_is_candidate == [False, True, False, True]


@pytest.mark.parametrize(
    ("votes", "expected"),
    [
        ([True, True, True, False], True),
        ([True, True, False, False], False),  # a tie does not win
        ([True, None, None, None], False),  # one valid vote of four is too few
        ([True, True, None, None], True),
        ([None, None, None, None], False),
        ([False, False, False, True], False),
    ],
)
def test_win_rule(tmp_path: Path, votes: list[bool | None], expected: bool) -> None:
    """SPO's majority rule, kept as --accept majority."""
    llm = FakeLLM({"evaluator": judge_for_candidate(votes)})
    result = run(llm, tmp_path, max_rounds=2, votes=4, accept="majority", confirm=False)
    second = result.records[1]
    assert second.succeed is expected
    assert second.verdict == ("win" if expected else "lose")
    assert second.vote_marks == "".join({True: "✓", False: "✗", None: "·"}[v] for v in votes)
    assert result.best.round == (2 if expected else 1)


def test_best_round_is_the_newest_winner(tmp_path: Path) -> None:
    lose = judge_for_candidate([False] * 4)
    win = judge_for_candidate([True] * 4)
    llm = FakeLLM({"evaluator": win + lose + lose})
    result = run(llm, tmp_path, max_rounds=4)
    assert [r.base_round for r in result.records[1:]] == [1, 2, 2]
    assert result.best.round == 2
    optimizer_inputs = [m[0]["content"] for role, m, _ in llm.history if role == "optimizer"]
    assert "Improved prompt number 1." in optimizer_inputs[1]  # round 3 starts from round 2's prompt


def test_missing_prompt_is_retried_then_used(tmp_path: Path) -> None:
    llm = FakeLLM({"optimizer": ["no tags at all", "<prompt>   </prompt>", "<PROMPT>Fixed prompt</PROMPT>"]})
    result = run(llm, tmp_path, max_rounds=2)
    assert result.records[1].prompt == "Fixed prompt"
    assert llm.calls("optimizer") == 3
    assert len({s for role, _, s in llm.history if role == "optimizer"}) == 3


def test_optimizer_that_never_answers_fails_the_round_without_executing(tmp_path: Path) -> None:
    llm = FakeLLM({"optimizer": ["nothing", "I cannot help with that.", "still nothing"]})
    result = run(llm, tmp_path, max_rounds=2)
    failed = result.records[1]
    assert failed.verdict == "failed" and not failed.succeed
    assert "optimizer" in (failed.error or "")
    assert llm.calls("executor") == 3  # round 1 only
    assert llm.calls("evaluator") == 0
    assert (tmp_path / "ws/Poem/prompts/round_2/prompt.txt").exists()


def test_unchanged_candidate_is_retried(tmp_path: Path) -> None:
    llm = FakeLLM({"optimizer": [f"<prompt>{TEMPLATE.prompt}</prompt>", "<prompt>Different</prompt>"]})
    result = run(llm, tmp_path, max_rounds=2)
    assert result.records[1].prompt == "Different"


def test_failed_answer_is_recorded_and_marked_for_the_judge(tmp_path: Path) -> None:
    llm = FakeLLM({"executor": ["a", "b", "c", LLMTransient("executor model m: timed out"), "y", "z"]})
    result = run(llm, tmp_path, max_rounds=2)
    answers = result.records[1].answers
    assert answers[0].error and "timed out" in answers[0].error and answers[0].answer == ""
    judged = [m[0]["content"] for role, m, _ in llm.history if role == "evaluator"]
    assert all("no answer: the model call failed" in j for j in judged)
    text = (tmp_path / "ws/Poem/prompts/round_2/answers.txt").read_text()
    assert "[failed:" in text


def test_auth_error_stops_the_run_and_keeps_completed_rounds(tmp_path: Path) -> None:
    llm = FakeLLM({"optimizer": ["<prompt>p2</prompt>", LLMAuthError("optimizer model m: bad key")]})
    with pytest.raises(LLMAuthError):
        run(llm, tmp_path, max_rounds=5)
    data = json.loads((tmp_path / "ws/Poem/prompts/results.json").read_text())
    assert [r["round"] for r in data] == [1, 2]


def test_resume_continues_without_duplicates_or_repeated_work(tmp_path: Path) -> None:
    run(FakeLLM(), tmp_path, max_rounds=3)
    again = FakeLLM()
    result = run(again, tmp_path, max_rounds=5)
    assert [r.round for r in result.records] == [1, 2, 3, 4, 5]
    assert result.new_rounds == [4, 5]
    assert again.calls("executor") == 6  # the base round's answers come from results.json
    data = json.loads((tmp_path / "ws/Poem/prompts/results.json").read_text())
    assert [r["round"] for r in data] == [1, 2, 3, 4, 5]


def test_rerun_of_a_finished_run_makes_no_call(tmp_path: Path) -> None:
    run(FakeLLM(), tmp_path, max_rounds=3)
    again = FakeLLM()
    result = run(again, tmp_path, max_rounds=3)
    assert again.calls() == 0 and result.new_rounds == []
    assert result.best.round == 1


def test_initial_round_restarts_after_that_round_and_archives(tmp_path: Path) -> None:
    run(FakeLLM(), tmp_path, max_rounds=4)
    result = run(FakeLLM(), tmp_path, max_rounds=3, initial_round=2)
    assert [r.round for r in result.records] == [1, 2, 3]
    assert result.new_rounds == [3]
    archives = list((tmp_path / "ws/Poem/prompts").glob("results.before-initial-round-*.json"))
    assert len(archives) == 1 and len(json.loads(archives[0].read_text())) == 4


def test_initial_round_must_exist(tmp_path: Path) -> None:
    run(FakeLLM(), tmp_path, max_rounds=2)
    with pytest.raises(ConfigError, match="initial-round 7"):
        run(FakeLLM(), tmp_path, max_rounds=9, initial_round=7)


def test_changed_questions_re_execute_the_base_prompt(tmp_path: Path) -> None:
    run(FakeLLM(), tmp_path, max_rounds=1)
    changed = parse_template(POEM.replace("A poem about snow", "A poem about fog"), "Poem.yaml")
    llm = FakeLLM()
    cfg = RunConfig(max_rounds=2)
    asyncio.run(run_optimization(changed, cfg, llm, Workspace(tmp_path / "ws", "Poem")))
    assert llm.calls("executor") == 6  # base re-run on today's questions, then the candidate
    judged = [m[0]["content"] for role, m, _ in llm.history if role == "evaluator"]
    assert all("fog" in j and "snow" not in j for j in judged)


def test_per_round_usage_and_models_are_recorded(tmp_path: Path) -> None:
    result = run(FakeLLM(), tmp_path, max_rounds=2, max_votes=4)
    second = result.records[1]
    assert second.usage["optimizer"].calls == 1
    assert second.usage["executor"].calls == 3
    assert second.usage["evaluator"].calls == 4
    assert second.models["optimizer"] == "gpt-4o-mini"
    assert second.strategy == "spo" and second.duration_s is not None
    assert second.tokens == 15  # executor completion tokens, SPO's "tokens"


def test_strategy_mismatch_is_refused(tmp_path: Path) -> None:
    run(FakeLLM(), tmp_path, max_rounds=1)
    data = json.loads((tmp_path / "ws/Poem/prompts/results.json").read_text())
    data[0]["strategy"] = "other"
    (tmp_path / "ws/Poem/prompts/results.json").write_text(json.dumps(data))
    with pytest.raises(ConfigError, match="strategy"):
        run(FakeLLM(), tmp_path, max_rounds=2)


def test_events_report_phases_in_order(tmp_path: Path) -> None:
    events = RecordingEvents()
    asyncio.run(run_optimization(TEMPLATE, RunConfig(max_rounds=2), FakeLLM(), Workspace(tmp_path, "P"), events))
    phases = [p for kind, p in events.log if kind == "phase"]
    assert phases == [(1, "execute"), (2, "optimize"), (2, "execute"), (2, "judge")]
    kinds = [k for k, _ in events.log]
    assert kinds[0] == "run_started" and kinds[-1] == "run_done" and kinds.count("round_done") == 2


def test_round_one_with_every_answer_failed_is_not_committed(tmp_path: Path) -> None:
    llm = FakeLLM({"executor": [LLMTransient("executor model m: HTTP 500: down")] * 3})
    with pytest.raises(LLMError, match=r"every execution of round 1.s prompt failed.*HTTP 500: down"):
        run(llm, tmp_path, max_rounds=3)
    assert not (tmp_path / "ws/Poem/prompts/results.json").exists()


def test_a_base_whose_answers_all_fail_stops_the_run_instead_of_losing_to_anything(tmp_path: Path) -> None:
    run(FakeLLM(), tmp_path, max_rounds=1)
    edited = parse_template(POEM.replace("A poem about snow", "A poem about fog"), "Poem.yaml")
    llm = FakeLLM({"executor": [LLMTransient("executor model m: down")] * 3})
    with pytest.raises(LLMError, match="every execution of round 1's prompt failed"):
        asyncio.run(run_optimization(edited, RunConfig(max_rounds=2), llm, Workspace(tmp_path / "ws", "Poem")))
    assert llm.calls("optimizer") == 0 and llm.calls("evaluator") == 0


def test_the_run_seed_is_stored_and_reused_and_a_different_seed_is_refused(tmp_path: Path) -> None:
    first = run(FakeLLM(), tmp_path, max_rounds=1)
    seed = first.seed
    assert seed is not None and all(r.seed == seed for r in first.records)
    llm = FakeLLM()
    second = run(llm, tmp_path, max_rounds=2)
    assert second.seed == seed and llm.run_seed == seed  # sampled calls are keyed by the stored seed
    with pytest.raises(ConfigError, match=f"uses seed {seed}"):
        run(FakeLLM(), tmp_path, max_rounds=3, seed=seed + 1)
    other = run(FakeLLM(), tmp_path / "other", max_rounds=1)
    assert other.seed != seed  # a new run draws its own
    assert run(FakeLLM(), tmp_path / "fixed", max_rounds=1, seed=42).seed == 42


def test_resuming_with_another_model_warns_and_records_models_per_round(tmp_path: Path) -> None:
    run(FakeLLM(), tmp_path, max_rounds=1)
    events = RecordingEvents()
    config = RunConfig(max_rounds=2, executor={"model": "other-model"})  # type: ignore[arg-type]
    result = asyncio.run(run_optimization(TEMPLATE, config, FakeLLM(), Workspace(tmp_path / "ws", "Poem"), events))
    assert result.model_changes == ["executor: gpt-4o-mini → other-model"]
    plan = next(p for name, p in events.log if name == "run_started")
    assert plan.model_changes == result.model_changes  # type: ignore[attr-defined]
    assert [r.models["executor"] for r in result.records] == ["gpt-4o-mini", "other-model"]


def test_a_results_file_with_a_duplicated_round_is_archived_before_it_is_rewritten(tmp_path: Path) -> None:
    run(FakeLLM(), tmp_path, max_rounds=2)
    results = tmp_path / "ws/Poem/prompts/results.json"
    entries = json.loads(results.read_text())
    doubled = [entries[0], {**entries[1], "prompt": "an older round 2"}, entries[1]]
    results.write_text(json.dumps(doubled))
    original = results.read_bytes()
    events = RecordingEvents()
    cfg = RunConfig(max_rounds=3)
    asyncio.run(run_optimization(TEMPLATE, cfg, FakeLLM(), Workspace(tmp_path / "ws", "Poem"), events))
    plan = next(payload for name, payload in events.log if name == "run_started")
    assert plan.duplicate_rounds == [2]  # type: ignore[attr-defined]
    (archive,) = (tmp_path / "ws/Poem/prompts").glob("results.with-duplicate-rounds-*.json")
    assert archive.read_bytes() == original and plan.archived == archive  # type: ignore[attr-defined]
    kept = json.loads(results.read_text())
    assert [e["round"] for e in kept] == [1, 2, 3] and kept[1]["prompt"] == entries[1]["prompt"]


def test_a_judge_near_chance_is_warned_about_once_even_quietly(tmp_path: Path) -> None:
    """The fake judge always says B: its two orders never agree. The user hears it once, with what to do."""
    events = RecordingEvents()
    result = asyncio.run(
        run_optimization(TEMPLATE, RunConfig(max_rounds=4), FakeLLM(), Workspace(tmp_path / "ws", "Poem"), events)
    )
    warnings = [p for kind, p in events.log if kind == "warning"]
    assert len(warnings) == 1 and warnings == result.warnings
    assert "agree in only 0% of" in str(warnings[0]) and "stronger --eval-model" in str(warnings[0])


def test_a_consistent_judge_raises_no_warning(tmp_path: Path) -> None:
    events = RecordingEvents()
    llm = FakeLLM({"evaluator": judge_for_candidate([False] * 36)})
    asyncio.run(run_optimization(TEMPLATE, RunConfig(max_rounds=4), llm, Workspace(tmp_path / "ws", "Poem"), events))
    assert not [p for kind, p in events.log if kind == "warning"]
