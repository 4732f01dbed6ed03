"""The confirmation gate: before a run calls a prompt other than the user's own its best, it checks.

Best vs the initial prompt, judged one question at a time in pairs (both orders), on the
template's questions and the held-out ones (never shown to the optimizer). It looks after each
pass over the questions and confirms when a one-sided sign test over the decisive pairs clears a
bar calibrated so that a blind judge, however often it ties, confirms a prompt no better than
yours in at most `--alpha` of runs (stats.calibrated_level). With a metric and held-out
reference answers, held-out accuracy decides instead (an exact one-sided McNemar test).
"""

from __future__ import annotations

import hashlib
import json
import math
import random
from typing import TYPE_CHECKING

from promptopt.engine import judge as judging
from promptopt.engine.acceptance import Tally, correct_marks
from promptopt.engine.concurrency import gather_ordered
from promptopt.engine.execute import execute
from promptopt.engine.stats import calibrated_level, expected_pairs, reachable, sign_test
from promptopt.records import AnswerRecord, GateRecord, RoundRecord, VoteRecord

if TYPE_CHECKING:
    from promptopt.engine.strategies.base import Strategy

GATE_PAIRS = 12  # pairs at most; every question gets at least one
GATE_QUESTIONS = 60  # more questions than this: the judge sees a seeded sample of them
# Gate votes use their own cache samples, apart from the rounds' votes on the same text.
SAMPLE_OFFSET = 10_000


def gate_key(strategy: Strategy, initial: RoundRecord, best: RoundRecord) -> str:
    """What the gate judged: a change to any of it runs the gate again on resume."""
    ctx = strategy.ctx
    t = ctx.template
    payload = {
        "initial": initial.prompt,
        "best": best.prompt,
        "best_round": best.round,
        "qa": [(q.question, q.answer) for q in t.qa],
        "holdout": [(q.question, q.answer) for q in t.holdout],
        "requirements": t.requirements,
        "metric": t.metric,
        "alpha": ctx.config.alpha,
        "models": [ctx.config.role(r).model for r in ("evaluator", "executor")],
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def schedule(questions: int) -> tuple[int, ...]:
    """Looks after each pass over the questions, up to GATE_PAIRS pairs (one pass if there are more)."""
    passes = max(1, math.ceil(GATE_PAIRS / questions))
    return tuple(questions * k for k in range(1, passes + 1))


def gate_votes(questions: int, alpha: float) -> tuple[float, int]:
    """(mean for a judge that cannot tell, most) judge votes of the gate over `questions` questions."""
    looks = schedule(min(questions, GATE_QUESTIONS))
    return 2 * expected_pairs(calibrated_level(alpha, looks), looks), 2 * looks[-1]


async def confirm(strategy: Strategy, records: list[RoundRecord], best: RoundRecord) -> GateRecord:
    """Run the gate for `best` against round 1 (no stored result is consulted here)."""
    ctx = strategy.ctx
    initial = records[0]
    base = GateRecord(outcome="not needed", best_round=best.round, initial_round=initial.round, alpha=ctx.config.alpha)
    if best.round == initial.round:
        return base
    base.key = gate_key(strategy, initial, best)
    if not ctx.config.confirm:
        return base.model_copy(update={"outcome": "skipped", "reason": "--no-confirm"})
    t = ctx.template
    ctx.events.phase(best.round, "confirm")
    first, then = await gather_ordered([strategy.answers_for(initial), strategy.answers_for(best)])
    held = [q.question for q in t.holdout]
    held_first: list[AnswerRecord] = []
    held_then: list[AnswerRecord] = []
    if held:
        held_first, held_then = await gather_ordered(
            [execute(ctx.llm, initial.prompt, held), execute(ctx.llm, best.prompt, held)]
        )
    base.questions, base.holdout = len(t.qa), len(held)
    metric = strategy.acceptance.metric
    held_gold = [q.answer for q in t.holdout]
    if metric is not None and any(held_gold):
        marks_i = correct_marks(held_first, held_gold, metric)
        marks_b = correct_marks(held_then, held_gold, metric)
        pairs = [(i, b) for i, b in zip(marks_i, marks_b, strict=True) if i is not None and b is not None]
        only_best = sum(1 for i, b in pairs if b and not i)
        only_initial = sum(1 for i, b in pairs if i and not b)
        p = sign_test(only_best, only_initial)
        ok = only_best > only_initial and p <= ctx.config.alpha
        acc_b = sum(b for _, b in pairs) / len(pairs)
        acc_i = sum(i for i, _ in pairs) / len(pairs)
        reason = (
            f"held-out accuracy {acc_b:.0%} vs {acc_i:.0%} on {len(pairs)} questions "
            f"({only_best} only the best got right, {only_initial} only yours; McNemar p {p:.3g})"
        )
        return base.model_copy(
            update={
                "outcome": "confirmed" if ok else "not confirmed",
                "method": "metric",
                "level": ctx.config.alpha,
                "wins": only_best,
                "losses": only_initial,
                "ties": len(pairs) - only_best - only_initial,
                "p_value": p,
                "accuracy": acc_b,
                "initial_accuracy": acc_i,
                "reason": reason,
            }
        )
    questions = [q.question for q in t.qa] + held
    golden = list(t.golden) + held_gold
    whole = judging.Comparison(t.requirements, questions, golden, first + held_first, then + held_then)
    chosen = list(range(len(questions)))
    if len(chosen) > GATE_QUESTIONS:  # a seeded sample keeps the gate's cost bounded
        chosen = sorted(random.Random(ctx.seed).sample(chosen, GATE_QUESTIONS))
    looks = schedule(len(chosen))
    level: float = calibrated_level(ctx.config.alpha, looks)
    votes: list[VoteRecord] = []
    tally = Tally()
    passes = len(looks)
    for k in range(passes):
        # Each pass in other words (judge.VIEWS): a judge fixed on the request text looks afresh.
        batch = await gather_ordered(
            judging.votes(ctx.llm, judging.one_question(whole, i, view=k), (2 * k, 2 * k + 1), SAMPLE_OFFSET)
            for i in chosen
        )
        votes += [v for pair in batch for v in pair]
        tally = Tally.of(votes)
        if tally.wins and tally.p_value <= level:
            break
        left = looks[-1] - tally.pairs
        if left <= 0 or not reachable(tally.wins, tally.losses, left, level):
            break
    ok = bool(tally.wins) and tally.p_value <= level
    reason = f"{tally.text()} over {len(chosen)} questions, p={tally.p_value:.2g} (bar {level:.2g})"
    update: dict[str, object] = {}
    best_acc, first_acc = strategy.acceptance.accuracy(then), strategy.acceptance.accuracy(first)
    if ok and best_acc is not None and first_acc is not None and best_acc < first_acc:
        ok = False
        reason += f"; but its accuracy {best_acc:.2f} is below yours {first_acc:.2f}"
    if best_acc is not None:
        update = {"accuracy": best_acc, "initial_accuracy": first_acc}
    return base.model_copy(
        update={
            "outcome": "confirmed" if ok else "not confirmed",
            "method": "judge",
            "level": level,
            "wins": tally.wins,
            "losses": tally.losses,
            "ties": tally.ties,
            "p_value": tally.p_value,
            "reason": reason,
            "votes": votes,
            **update,
        }
    )
