"""Who wins a comparison: the acceptance rules, their statistics, and their error rates."""

from __future__ import annotations

import asyncio
import random

import pytest

from promptopt.config import RunConfig
from promptopt.engine.acceptance import SELF_SCORE, Acceptance, Paired, Tally, accuracy_of, correct_marks
from promptopt.engine.context import RunContext
from promptopt.engine.diagnostics import judge_stats, pair_outcomes
from promptopt.engine.metrics import get_metric
from promptopt.engine.stats import (
    bradley_terry,
    calibrated_level,
    false_accept_rate,
    looks_every_pair,
    mcnemar,
    sign_test,
    wilson,
    worst_false_accept,
)
from promptopt.errors import ConfigError
from promptopt.records import AnswerRecord, VoteRecord
from promptopt.template import Template, parse_template
from tests.conftest import FakeLLM

VOTE = "<analyse>x</analyse><choose>{}</choose>"


def answers(*texts: str | None) -> list[AnswerRecord]:
    """None stands for a failed call."""
    return [
        AnswerRecord(question=f"q{i}", answer=t or "", error=None if t is not None else "timeout")
        for i, t in enumerate(texts)
    ]


def template(metric: str | None = None) -> Template:
    text = "prompt: p\nqa:\n  - question: q0\n    answer: 'yes'\n  - question: q1\n    answer: 'no'\n"
    return parse_template(text + (f"metric: {metric}\n" if metric else ""), "T.yaml")


def acceptance(
    metric: str | None = None, evaluator: list[str] | None = None, **config: object
) -> tuple[Acceptance, FakeLLM]:
    llm = FakeLLM({"evaluator": evaluator or []})
    ctx = RunContext(template(metric), RunConfig(**config), llm, rng=random.Random(0))  # type: ignore[arg-type]
    return Acceptance(ctx), llm


def for_candidate(*wins: bool | None) -> list[str]:
    """Judge replies for votes 0, 1, 2…: True for the candidate, False for the base, None unparsable.

    Even votes show the candidate as B, odd votes as A.
    """
    out = []
    for i, w in enumerate(wins):
        if w is None:
            out.append("no verdict")
            continue
        swapped = i % 2 == 1
        cand, base = ("A", "B") if swapped else ("B", "A")
        out.append(VOTE.format(cand if w else base))
    return out


def decide(acc: Acceptance, rule: str = "improve"):  # type: ignore[no-untyped-def]
    return asyncio.run(acc.decide(answers("x", "y"), answers("x2", "y2"), rule=rule))  # type: ignore[arg-type]


# --- ground truth --------------------------------------------------------------------------------


def test_accuracy_counts_referenced_questions_and_failed_answers_as_wrong() -> None:
    exact = get_metric("exact")
    got = answers("yes", "no", None, "maybe")
    golden = ["yes", "yes", "no", None]
    assert correct_marks(got, golden, exact) == [True, False, False, None]
    assert accuracy_of(got, golden, exact) == pytest.approx(1 / 3)
    assert accuracy_of(got, [None] * 4, exact) is None


def test_with_a_metric_the_score_is_accuracy_and_must_strictly_improve() -> None:
    acc, llm = acceptance("exact")
    better = asyncio.run(acc.decide(answers("yes", "yes"), answers("yes", "no")))
    assert (better.kind, better.score, better.base_score, better.accepted) == ("accuracy", 1.0, 0.5, True)
    same = asyncio.run(acc.decide(answers("yes", "yes"), answers("no", "no")))
    assert (same.score, same.accepted) == (0.5, False)
    assert llm.calls() == 0  # no judge call under the "improve" rule
    assert acc.initial_score(answers("no", "yes")) == 0.0
    assert acc.nothing_to_gain(1.0) and acc.nothing_to_gain(0.5) is None


def test_the_spo_rule_needs_the_judge_and_no_loss_of_accuracy() -> None:
    acc, _ = acceptance("exact", for_candidate(True, True) * 2, accept="majority", votes=2)
    equal = asyncio.run(acc.decide(answers("yes", "yes"), answers("no", "no"), rule="spo"))
    assert (equal.score, equal.accepted, len(equal.votes)) == (0.5, True, 2)
    lower = asyncio.run(acc.decide(answers("yes", "no"), answers("no", "no"), rule="spo"))
    assert (lower.score, lower.base_accuracy, lower.accepted) == (0.5, 1.0, False)


def test_a_metric_without_reference_answers_scores_by_votes() -> None:
    t = parse_template("prompt: p\nqa:\n  - question: q0\nmetric: exact\n", "T.yaml")
    acc = Acceptance(RunContext(t, RunConfig(votes=2), FakeLLM()))
    assert acc.metric is None and acc.kind == "votes"


# --- SPO's majority (the paper's rule, --accept majority) ---------------------------------------


def test_majority_is_spos_rule_on_exactly_votes_calls() -> None:
    acc, llm = acceptance(None, for_candidate(True, True, False, None), accept="majority")
    result = decide(acc)
    assert result.kind == "votes" and result.rule == "majority"
    assert result.score == pytest.approx(2 / 3)  # share of valid votes
    assert result.accepted  # 2 wins > 1 loss among 3 valid votes (at least 2 needed)
    assert result.base_score == SELF_SCORE and llm.calls("evaluator") == 4
    acc, _ = acceptance(None, ["?"] * 4, accept="majority")
    nothing = decide(acc)
    assert nothing.score == 0.0 and not nothing.accepted


# --- paired, adaptive judging --------------------------------------------------------------------


def test_a_pair_counts_only_when_both_orders_agree() -> None:
    votes = [
        VoteRecord(winner="candidate", swapped=False, pair=0),
        VoteRecord(winner="candidate", swapped=True, pair=0),
        VoteRecord(winner="candidate", swapped=False, pair=1),  # position bias: B, then A
        VoteRecord(winner="base", swapped=True, pair=1),
        VoteRecord(winner="base", swapped=False, pair=2),
        VoteRecord(winner="base", swapped=True, pair=2),
        VoteRecord(winner="abstain", swapped=False, pair=3),
        VoteRecord(winner="candidate", swapped=True, pair=3),
    ]
    assert pair_outcomes(votes) == ["candidate", "tie", "base", "tie"]
    assert Tally.of(votes) == Tally(1, 1, 2)
    stats = judge_stats(votes)
    assert (stats.pairs, stats.consistent, stats.abstained) == (3, 2, 1)


def test_decisive_pairs_decide_at_the_first_look() -> None:
    acc, llm = acceptance(None, for_candidate(True, True, True, True))
    won = decide(acc)
    assert won.accepted and llm.calls("evaluator") == 4 and won.summary.startswith("2 pairs to 0")
    acc, llm = acceptance(None, for_candidate(False, False, False, False))
    lost = decide(acc)
    assert not lost.accepted and llm.calls("evaluator") == 4


def test_undecided_evidence_asks_for_pairs_up_to_max_votes_and_no_further() -> None:
    # Position bias: the judge always says "B" → every pair ties, never decisive.
    acc, llm = acceptance(None, [VOTE.format("B")] * 40, max_votes=12)
    result = decide(acc)
    assert not result.accepted
    # Ties keep acceptance reachable until too few pairs are left (two pairs to spare).
    assert 4 < llm.calls("evaluator") <= 12 and llm.calls("evaluator") % 2 == 0
    votes = result.votes
    assert [v.pair for v in votes] == [i // 2 for i in range(len(votes))]
    assert [v.swapped for v in votes] == [i % 2 == 1 for i in range(len(votes))]


def test_a_late_win_is_accepted_after_extra_pairs() -> None:
    acc, llm = acceptance(None, for_candidate(True, False, True, True, True, True, True, True))
    result = decide(acc)
    # Pair 1 ties; then 3 decisive pairs for the candidate: p = 1/8 ≤ 0.25 after pair 3.
    assert result.accepted and llm.calls("evaluator") == 6


def test_max_votes_equal_to_votes_gives_todays_fixed_count() -> None:
    acc, llm = acceptance(None, [VOTE.format("B")] * 10, votes=4, max_votes=4)
    decide(acc)
    assert llm.calls("evaluator") == 4


def test_a_paired_rule_that_can_never_accept_is_refused() -> None:
    with pytest.raises(ConfigError, match="--max-votes 2"):
        acceptance(None, votes=2, max_votes=2)


def test_the_per_round_false_accept_rate_under_a_blind_judge_is_what_the_docs_say() -> None:
    rule = Paired(4, 12)
    coin, worst = rule.false_accept()
    assert coin == pytest.approx(0.1719, abs=5e-4) and worst == pytest.approx(0.25, abs=5e-4)
    # And a simulated coin-flip judge agrees with the exact figure.
    rng = random.Random(3)
    runs, accepted = 1500, 0
    for _ in range(runs):
        acc, _ = acceptance(None, [VOTE.format(rng.choice("AB")) for _ in range(12)])
        accepted += decide(acc).accepted
    assert abs(accepted / runs - coin) < 0.035


# --- statistics ----------------------------------------------------------------------------------


def test_exact_tests_and_intervals() -> None:
    assert sign_test(5, 0) == pytest.approx(1 / 32)
    assert sign_test(0, 0) == 1.0
    assert mcnemar(0, 6) == pytest.approx(2 / 64)
    assert mcnemar(3, 3) == 1.0
    low, high = wilson(8, 10)
    assert low == pytest.approx(0.490, abs=1e-3) and high == pytest.approx(0.943, abs=1e-3)
    assert wilson(0, 0) == (0.0, 1.0)


@pytest.mark.parametrize("looks", [(12,), (3, 6, 9, 12), tuple(range(1, 13)), (30,)])
def test_the_gate_bar_keeps_any_blind_judge_under_alpha(looks: tuple[int, ...]) -> None:
    level = calibrated_level(0.05, looks)
    assert 0 < level <= 0.05
    assert worst_false_accept(level, looks) <= 0.05
    # Checking at every look with the nominal 5% would not be safe: the bar is lower for good reason.
    if len(looks) >= 12:
        assert worst_false_accept(0.05, looks) > 0.05


def test_false_accept_rate_of_a_fixed_test_is_the_binomial_tail() -> None:
    # One look after 5 pairs, no ties: accept only 5 of 5.
    assert false_accept_rate(0.05, (5,), decisive=1.0) == pytest.approx(1 / 32)
    assert false_accept_rate(0.25, looks_every_pair(2, 2), decisive=1.0) == pytest.approx(1 / 4)


def test_bradley_terry_puts_every_prompt_on_one_scale() -> None:
    # b beats a twice; c ties a; d beats b: d > b > c ≈ a (the anchor at 0).
    outcomes = [("b", "a", 1.0), ("b", "a", 1.0), ("c", "a", 0.5), ("d", "b", 1.0)]
    r = bradley_terry(["a", "b", "c", "d"], outcomes, "a")
    assert r["a"] == 0.0 and r["c"] == pytest.approx(0.0, abs=1e-6)
    assert r["d"] > r["b"] > 0
