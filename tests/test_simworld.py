"""Issue 12's proof: in a simulated world with a hidden true quality per prompt, the default judging
rules report a prompt worse than the user's own in at most 5% of runs whatever the judge, and keep
today's gains when the judge is good. Today's rule (SPO's majority, no gate) fails the first claim.

Every claim is tested with a one-sided 95% bound over many seeded 10-round runs of the real
`run_optimization`: the test passes only when the runs rule out a rate of 5% (or a shortfall of
0.05, or 8 judge calls per round), so a rule that regressed to the limit fails it.
"""

from __future__ import annotations

import asyncio
import math
import os
import random
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from promptopt.config import RunConfig
from promptopt.engine.loop import run_optimization
from promptopt.template import parse_template
from promptopt.testing.simworld import (
    START,
    Biased,
    Blind,
    Good,
    Judge,
    Noisy,
    Oracle,
    Params,
    SimRun,
    SimWorld,
    simulate,
    summarize,
    template_text,
)
from promptopt.workspace import Workspace

TODAY: dict[str, object] = {"accept": "majority", "confirm": False}  # SPO's rule, promptopt's before issue 12
Runs = Callable[..., list[SimRun]]  # (judge, runs, rule="defaults"|"today") → seeded runs 0..n-1


def upper_bound(worse: int, runs: int, level: float = 0.05) -> float:
    """Exact one-sided upper confidence bound of a binomial rate (Clopper-Pearson), by bisection."""

    def at_most(p: float) -> float:
        return sum(math.comb(runs, i) * p**i * (1 - p) ** (runs - i) for i in range(worse + 1))

    lo, hi = worse / runs, 1.0
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if at_most(mid) > level else (lo, mid)
    return hi


def lower_bound(worse: int, runs: int, level: float = 0.05) -> float:
    return 1.0 - upper_bound(runs - worse, runs, level)


@pytest.fixture(scope="module")
def many(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runs]:
    """Runs many seeded runs; the workspace is real, only fsync is skipped (durability is tested elsewhere)."""
    root = tmp_path_factory.mktemp("sim")
    cache: dict[tuple[str, int, str], list[SimRun]] = {}

    def runs(judge: Judge, n: int, rule: str = "defaults") -> list[SimRun]:
        key = (judge.name, n, rule)
        if key not in cache:
            config = TODAY if rule == "today" else {}
            cache[key] = [simulate(judge, s, root / f"{judge.name}-{rule}", **config) for s in range(n)]
        return cache[key]

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(os, "fsync", lambda fd: None)
        yield runs


# --- the world itself ----------------------------------------------------------------------------


def reply(world: SimWorld, role: str, content: str, sample: int = 0) -> str:
    return asyncio.run(world.complete(role, [{"role": "user", "content": content}], sample=sample)).text


def test_proposals_carry_an_id_and_a_quality_drawn_around_their_base() -> None:
    world = SimWorld(Blind(), seed=1, params=Params(mu=-0.02, sigma=0.08))
    world.run_seed = 7
    text = reply(world, "optimizer", "## Current prompt\nAnswer.\n", sample=2000)
    prompt = text.split("<prompt>")[1].split("</prompt>")[0]
    assert world.prompt_id(prompt) != START
    assert world.quality(prompt) == pytest.approx(0.5 + world.change(2000))
    # The same request and sample give the same prompt; another run seed samples anew.
    assert reply(world, "optimizer", "## Current prompt\nAnswer.\n", sample=2000) == text
    world.run_seed = 8
    assert reply(world, "optimizer", "## Current prompt\nAnswer.\n", sample=2000) != text
    # Its child builds on its quality, and answers name the prompt that wrote them.
    child = reply(world, "optimizer", f"## Current prompt\n{prompt}\n", sample=3000).split("<prompt>")[1]
    assert world.quality(child) == pytest.approx(min(1, max(0, world.quality(prompt) + world.change(3000))))
    assert reply(world, "executor", f"{prompt}\n\nQ1").startswith(f"[#{world.prompt_id(prompt)}/")
    # Proposals drift down on average: most edits do not help.
    changes = [world.change(s) for s in range(4000)]
    assert -0.03 < sum(changes) / len(changes) < -0.01


def judged(judge: Judge, gap: float, n: int = 4000) -> float:
    """Share of "B" answers of a judge model over n draws."""
    rng = random.Random(0)
    return sum(judge.choose(gap, rng) == "B" for _ in range(n)) / n


def test_the_judges_err_as_their_models_say() -> None:
    assert judged(Blind(), 0.3) == pytest.approx(0.5, abs=0.03)
    assert judged(Good(), 0.2) == 1.0 and judged(Good(), -0.2) == 0.0
    assert judged(Good(), 0.05) == pytest.approx(0.75, abs=0.03)  # 0.5 + 0.5 * 0.05 / 0.1
    assert judged(Noisy(scale=0.05), 0.05) == pytest.approx(1 / (1 + math.exp(-1)), abs=0.03)
    assert judged(Biased(0.5, Good()), 0.2) == pytest.approx(0.5, abs=0.03)  # "A" half the time
    assert judged(Biased(0.5, Good()), -0.2) == 0.0
    assert judged(Oracle(), 0.0) == 0.0 and judged(Oracle(), 1e-6) == 1.0


def test_the_judge_reads_which_prompt_wrote_each_answer() -> None:
    world = SimWorld(Oracle(), seed=3)
    world.qualities["0123456789"] = 0.6
    better = reply(world, "executor", "Prompt #0123456789: Answer.\n\nQ1")
    start = reply(world, "executor", "Answer.\n\nQ1")
    assert reply(world, "evaluator", f"### Question 1\nQ1\nA: {start}\nB: {better}").endswith("<choose>B</choose>")
    assert reply(world, "evaluator", f"### Question 1\nQ1\nA: {better}\nB: {start}").endswith("<choose>A</choose>")
    # A failed answer counts as no quality at all.
    assert reply(world, "evaluator", f"A: (no answer: the model call failed)\nB: {start}").endswith("B</choose>")


def test_a_run_is_reproducible_and_a_resumed_run_replays(tmp_path: Path) -> None:
    template = parse_template(template_text(3), "sim.yaml")

    def run(world: SimWorld, name: str, rounds: int) -> list[tuple[str, str]]:
        cfg = RunConfig(max_rounds=rounds, seed=11)
        result = asyncio.run(run_optimization(template, cfg, world, Workspace(tmp_path, name)))
        return [(r.prompt, r.vote_marks) for r in result.records]

    whole = run(SimWorld(Blind(), seed=5), "whole", 8)
    assert run(SimWorld(Blind(), seed=5), "again", 8) == whole
    world = SimWorld(Blind(), seed=5)
    run(world, "resumed", 4)
    assert run(world, "resumed", 8) == whole
    assert run(SimWorld(Blind(), seed=6), "other", 8) != whole


def test_the_oracle_is_a_run_whose_judge_always_knows_the_truth(tmp_path: Path) -> None:
    for seed in range(12):
        run = simulate(Oracle(), seed, tmp_path, **TODAY)
        assert run.final == pytest.approx(run.oracle)


def test_a_judge_whose_errors_persist_per_answer_is_modelled(tmp_path: Path) -> None:
    # The same request always gets the same vote from a sticky judge (temperature 0).
    world = SimWorld(Blind(), seed=2, params=Params(sticky=True))
    votes = {reply(world, "evaluator", "A: x\nB: y", sample=s) for s in range(20)}
    assert len(votes) == 1
    # An opinionated judge perceives each answer off by its own persistent error.
    world = SimWorld(Good(), seed=2, params=Params(opinion=0.2))
    assert world.perceived(START, "q1") == world.perceived(START, "q1") != world.params.start
    # Held-out questions reach the template (the gate judges them too).
    assert len(parse_template(template_text(3, 9), "sim.yaml").holdout) == 9


# --- the claims over many runs -----------------------------------------------------------


def test_today_s_rule_reports_a_worse_prompt_under_a_blind_judge(many: Runs) -> None:
    runs = many(Blind(), 40, "today")
    worse = sum(r.worse for r in runs)
    assert lower_bound(worse, len(runs)) > 0.05, f"{worse}/{len(runs)}"


# Run counts: a true rate of 5% passes with probability ≤ 4%; the measured rates (0.9% blind, ~0%
# biased, docs/benchmarks.md) pass with probability ≥ 98%, so a reshuffle of seeds rarely flips them.
@pytest.mark.parametrize(("judge", "n"), [(Blind(), 300), (Biased(0.5, Good()), 150)], ids=["blind", "biased"])
def test_a_judge_that_cannot_tell_rarely_makes_the_run_report_a_worse_prompt(many: Runs, judge: Judge, n: int) -> None:
    runs = many(judge, n)
    worse = sum(r.worse for r in runs)
    assert upper_bound(worse, len(runs)) <= 0.05, f"{worse}/{len(runs)} runs report a prompt worse than yours"


@pytest.mark.slow
def test_a_judge_biased_to_a_that_otherwise_flips_a_coin_is_caught_too(many: Runs) -> None:
    runs = many(Biased(0.5, Blind(), name="biased-coin"), 200)
    worse = sum(r.worse for r in runs)
    assert upper_bound(worse, len(runs)) <= 0.05, f"{worse}/{len(runs)}"


def test_a_good_judge_keeps_the_gains_of_an_oracle_at_under_8_calls_per_round(many: Runs) -> None:
    runs = many(Good(), 120)
    s = summarize(runs)
    assert upper_bound(s.worse, s.runs) <= 0.05
    assert s.shortfall_high <= 0.05, f"mean final {s.final:.3f} vs oracle {s.oracle:.3f}"
    assert s.oracle - 0.5 > 0.15  # the oracle does gain: the claim is not trivially met
    # Judge calls per judged round, the confirmation gate's included: at most twice today's 4.
    assert s.calls_per_round_high <= 8, f"{s.calls_per_round_all:.2f} judge calls per round"


def test_the_gate_is_what_catches_the_blind_judge(many: Runs) -> None:
    runs = many(Blind(), 300)
    moved = [r for r in runs if r.best_round != 1]
    assert len(moved) > 150  # the rounds' screen does accept candidates under a blind judge…
    assert sum(r.reported_round != 1 for r in moved) <= 0.05 * len(moved)  # …the gate confirms few


def test_a_judge_fixed_on_the_request_text_is_caught_by_the_gates_other_wordings(tmp_path: Path) -> None:
    """A sticky coin (temperature 0: the same request, the same vote) would repeat one verdict per
    question in every pass of the gate and count the copies as evidence (about 7 runs in 100 worse,
    docs/benchmarks.md); each pass's other wording of the judge's instructions gives it a fresh look."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(os, "fsync", lambda fd: None)
        runs = [simulate(Blind(), s, tmp_path / "sticky", params=Params(sticky=True)) for s in range(300)]
    worse = sum(r.worse for r in runs)
    assert upper_bound(worse, len(runs)) <= 0.05, f"{worse}/{len(runs)} runs report a prompt worse than yours"
