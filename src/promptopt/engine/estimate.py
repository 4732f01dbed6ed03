"""--dry-run: projected calls, tokens and cost, without calling any model."""

from __future__ import annotations

import functools
import importlib.util
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from promptopt.config import ROLES, RunConfig
from promptopt.engine.confirm import gate_votes
from promptopt.engine.context import RunContext
from promptopt.engine.execute import executor_messages
from promptopt.engine.judge import comparison_block, judge_messages
from promptopt.engine.strategies.base import Strategy, get_strategy
from promptopt.errors import PromptoptError
from promptopt.llm import Completion, Ledger, estimate_tokens, messages_tokens
from promptopt.records import AnswerRecord, RoundRecord
from promptopt.shapes import Shape
from promptopt.template import Template


@dataclass
class RoleEstimate:
    calls: int = 0  # expected (judge votes: for a judge that cannot tell the prompts apart)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float | None = 0.0
    worst_calls: int = 0  # at most (adaptive judging asks for every pair it may)
    worst_cost_usd: float | None = 0.0


@dataclass
class Estimate:
    rounds: list[int]
    roles: dict[str, RoleEstimate] = field(default_factory=dict)
    # Whether completion lengths are guesses (an empty cache and no rounds yet): said plainly.
    guessed: bool = False
    confirm: bool = False  # the confirmation gate is counted
    # --speculate: optimizer calls written ahead for the verdict a round does not get (in the totals).
    speculative_calls: int = 0
    speculative_cost_usd: float | None = 0.0

    @property
    def calls(self) -> int:
        return sum(r.calls for r in self.roles.values())

    @property
    def worst_calls(self) -> int:
        return sum(r.worst_calls for r in self.roles.values())

    @property
    def cost_usd(self) -> float | None:
        costs = [r.cost_usd for r in self.roles.values() if r.calls]
        return None if any(c is None for c in costs) else sum(c or 0.0 for c in costs)

    @property
    def worst_cost_usd(self) -> float | None:
        costs = [r.worst_cost_usd for r in self.roles.values() if r.worst_calls]
        return None if any(c is None for c in costs) else sum(c or 0.0 for c in costs)


class NoCalls:
    """The LLM an estimate hands a strategy: asking it anything is a bug."""

    def __init__(self) -> None:
        self.usage = Ledger()
        self.run_seed: int | None = None
        self.warnings: list[str] = []
        self.startup_seconds = 0.0

    async def complete(
        self, role: str, messages: list[dict[str, Any]], *, sample: int = 0, shape: Shape | None = None
    ) -> Completion:
        raise PromptoptError("--dry-run calls no model")


def strategy_for(template: Template, config: RunConfig) -> Strategy:
    """The run's strategy, built to describe itself (its options checked), never to call a model."""
    return get_strategy(config.strategy)(RunContext(template, config, NoCalls()))


def _answer_tokens(template: Template) -> int:
    """Guess an answer's length: the references when there are some, else a paragraph."""
    refs = [estimate_tokens(q.answer) for q in template.qa if q.answer]
    return max(60, int(sum(refs) / len(refs) * 1.5)) if refs else 250


def observed_completions(records: list[RoundRecord], averages: dict[str, float]) -> dict[str, float]:
    """Mean completion tokens per call and role: from this run's rounds, else the cache's history."""
    seen: dict[str, float] = dict(averages)
    for role in ROLES:
        calls = sum(r.usage[role].calls + r.usage[role].cached for r in records if role in r.usage)
        tokens = sum(r.usage[role].completion_tokens for r in records if role in r.usage)
        if calls:
            seen[role] = tokens / calls
    return seen


def price_per_token(model: str) -> tuple[float, float] | None:
    """(input, output) USD per token from litellm's bundled price table, read without importing litellm."""
    table = _price_table()
    bare = model.split("/", 1)[1] if "/" in model else model
    for key in (model, bare):
        entry = table.get(key)
        if isinstance(entry, dict) and "input_cost_per_token" in entry:
            return float(entry.get("input_cost_per_token") or 0), float(entry.get("output_cost_per_token") or 0)
    return None


@functools.cache
def _price_table() -> dict[str, Any]:
    spec = importlib.util.find_spec("litellm")
    folders = list(spec.submodule_search_locations or []) if spec else []
    for folder in folders:
        path = Path(folder) / "model_prices_and_context_window_backup.json"
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(data, dict):
            return data
    return {}


def prompt_tokens(template: Template, answer: int, strategy: Strategy | None = None) -> dict[str, int]:
    """Estimated prompt tokens of one call per role, for answers of `answer` tokens (executor: the mean).

    The optimizer's is the strategy's own request; `gate` is one judge vote on one question.
    """
    questions = [item.question for item in template.qa]
    fake = [AnswerRecord(question=x, answer="x" * answer * 4) for x in questions]
    executor = sum(messages_tokens(executor_messages(template.prompt, x)) for x in questions) / len(questions)
    strategy = strategy or strategy_for(template, RunConfig.model_validate({}))
    optimizer = strategy.estimate_messages(RoundRecord(round=1, prompt=template.prompt, answers=fake))
    judge = judge_messages(template.requirements, comparison_block(questions, template.golden, fake, fake))
    one = judge_messages(template.requirements, comparison_block(questions[:1], template.golden[:1], fake, fake))
    return {
        "optimizer": messages_tokens(optimizer),
        "executor": int(executor),
        "evaluator": messages_tokens(judge),
        "gate": messages_tokens(one),
    }


# Assumed for models litellm's table has no context window for: small enough to warn early.
DEFAULT_CONTEXT_TOKENS = 8192


def context_window(model: str) -> int | None:
    """Input tokens the model accepts, from litellm's bundled table (the embedded model: its n_ctx)."""
    from promptopt import local

    found = local.lookup(model)
    if found is not None:
        return found.n_ctx
    table = _price_table()
    bare = model.split("/", 1)[1] if "/" in model else model
    for key in (model, bare):
        entry = table.get(key)
        size = entry.get("max_input_tokens") if isinstance(entry, dict) else None
        if isinstance(size, (int, float)) and not isinstance(size, bool) and size > 0:
            return int(size)
    return None


def context_warnings(template: Template, config: RunConfig) -> list[str]:
    """Calls whose prompt will not fit the model's context window, found before anything is spent.

    The judge and the optimizer see every question with its answers at once: a template with
    thousands of questions makes prompts of megabytes.
    """
    prompts = prompt_tokens(template, _answer_tokens(template), strategy_for(template, config))
    warnings = []
    for role, what in (("evaluator", "judge"), ("optimizer", "optimizer")):
        model = config.role(role).model
        window = context_window(model)
        limit = window or DEFAULT_CONTEXT_TOKENS
        if prompts[role] <= limit:
            continue
        known = (
            f"{model}'s context window of {window:,} tokens"
            if window
            else f"the {limit:,} tokens assumed for {model} (litellm's table has no context window for it)"
        )
        warnings.append(
            f"each {what} prompt is ~{prompts[role]:,} tokens ({len(template.qa):,} questions with their answers), "
            f"more than {known}: those calls will likely fail; use fewer or shorter questions, or a model with a "
            f"larger context window"
        )
    return warnings


def estimate_run(
    template: Template,
    config: RunConfig,
    records: list[RoundRecord],
    first: int,
    averages: dict[str, float] | None = None,
) -> Estimate:
    """Calls and tokens for rounds first..max_rounds and the confirmation gate, from the strategy's
    own description of a round and the acceptance rule's vote counts.

    Completion lengths come from the run's own rounds when resuming, else from earlier replies
    of the same models in the cache (`averages`), else from guesses based on the template.
    """
    strategy = strategy_for(template, config)
    rounds = list(range(first, config.max_rounds + 1))
    seen = observed_completions(records, averages or {})
    answer = int(seen.get("executor", _answer_tokens(template)))
    prompt_len = max(estimate_tokens(template.prompt), 60)
    prompts = prompt_tokens(template, answer, strategy)
    completion = {
        "optimizer": int(seen.get("optimizer", prompt_len + 250)),
        "executor": answer,
        "evaluator": int(seen.get("evaluator", 200)),
    }
    rule = strategy.acceptance.rule
    expected: dict[str, float] = dict.fromkeys(ROLES, 0.0)
    worst: dict[str, int] = dict.fromkeys(ROLES, 0)
    judged: dict[str, float] = {"expected": 0.0, "worst": 0}  # judge votes of the rounds (set-wise prompts)
    ahead = 0  # --speculate: each judged round but the last writes the next candidate for both verdicts
    for n in rounds:
        calls = strategy.round_calls(first=n == 1)
        for role, count in (("optimizer", calls.optimizer), ("executor", calls.executor)):
            expected[role] += count
            worst[role] += count
        judged["expected"] += calls.comparisons * rule.expected()
        judged["worst"] += calls.comparisons * rule.most()
        if config.speculate and 1 < n < config.max_rounds:
            ahead += strategy.ahead_calls()
    expected["optimizer"] += ahead
    worst["optimizer"] += ahead
    gate: dict[str, float] = {"expected": 0.0, "worst": 0}
    if config.confirm and rounds and config.max_rounds > 1:  # the gate runs when the best is not round 1
        held = len(template.holdout)
        if not (strategy.acceptance.metric and any(q.answer for q in template.holdout)):
            gate["expected"], gate["worst"] = gate_votes(len(template.qa) + held, config.alpha)
        expected["executor"] += 2 * held
        worst["executor"] += 2 * held
    totals = {role: RoleEstimate() for role in ROLES}
    for role in ROLES:
        est = totals[role]
        if role == "evaluator":
            est.calls = round(judged["expected"] + gate["expected"])
            est.worst_calls = int(judged["worst"] + gate["worst"])
            est.prompt_tokens = round(judged["expected"] * prompts["evaluator"] + gate["expected"] * prompts["gate"])
            worst_prompt = judged["worst"] * prompts["evaluator"] + gate["worst"] * prompts["gate"]
        else:
            est.calls, est.worst_calls = round(expected[role]), worst[role]
            est.prompt_tokens = round(expected[role] * prompts[role])
            worst_prompt = worst[role] * prompts[role]
        est.completion_tokens = est.calls * completion[role]
        price = price_per_token(config.role(role).model)
        if price is None:
            est.cost_usd = est.worst_cost_usd = None
        else:
            est.cost_usd = est.prompt_tokens * price[0] + est.completion_tokens * price[1]
            est.worst_cost_usd = worst_prompt * price[0] + est.worst_calls * completion[role] * price[1]
    guessed = not any(r.usage for r in records) and not averages
    optimizer = totals["optimizer"]
    share = ahead / optimizer.calls if optimizer.calls else 0.0
    spec_cost = None if optimizer.cost_usd is None else optimizer.cost_usd * share
    return Estimate(rounds, totals, guessed, config.confirm, ahead, spec_cost)
