"""--dry-run: projected calls, tokens and cost, without calling any model."""

from __future__ import annotations

import functools
import importlib.util
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from promptopt.config import ROLES, RunConfig
from promptopt.engine.execute import executor_messages
from promptopt.engine.judge import comparison_block, judge_messages
from promptopt.engine.strategies.base import format_qa_block, get_strategy
from promptopt.engine.strategies.spo import count_rule
from promptopt.llm import estimate_tokens, messages_tokens
from promptopt.prompts import render
from promptopt.records import AnswerRecord, RoundRecord
from promptopt.template import Template


@dataclass
class RoleEstimate:
    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float | None = 0.0


@dataclass
class Estimate:
    rounds: list[int]
    roles: dict[str, RoleEstimate] = field(default_factory=dict)

    @property
    def calls(self) -> int:
        return sum(r.calls for r in self.roles.values())

    @property
    def cost_usd(self) -> float | None:
        costs = [r.cost_usd for r in self.roles.values() if r.calls]
        return None if any(c is None for c in costs) else sum(c or 0.0 for c in costs)


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


def prompt_tokens(template: Template, answer: int) -> dict[str, int]:
    """Estimated prompt tokens of one call per role, for answers of `answer` tokens (executor: the mean)."""
    questions = [item.question for item in template.qa]
    fake = [AnswerRecord(question=x, answer="x" * answer * 4) for x in questions]
    executor = sum(messages_tokens(executor_messages(template.prompt, x)) for x in questions) / len(questions)
    optimizer = render(
        "optimizer",
        requirements=template.requirements,
        prompt=template.prompt,
        answers=format_qa_block(questions, fake, template.golden),
        count_rule=count_rule(template.count),
    )
    judge = judge_messages(template.requirements, comparison_block(questions, template.golden, fake, fake))
    return {
        "optimizer": messages_tokens([{"role": "user", "content": optimizer}]),
        "executor": int(executor),
        "evaluator": messages_tokens(judge),
    }


# Assumed for models litellm's table has no context window for: small enough to warn early.
DEFAULT_CONTEXT_TOKENS = 8192


def context_window(model: str) -> int | None:
    """Input tokens the model accepts, from litellm's bundled table (the embedded model: its n_ctx)."""
    from promptopt import local

    if local.uses_local([model]):
        return local.N_CTX
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
    prompts = prompt_tokens(template, _answer_tokens(template))
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
    """Calls and tokens for rounds first..max_rounds, from the strategy's per-round formula.

    Completion lengths come from the run's own rounds when resuming, else from earlier replies
    of the same models in the cache (`averages`), else from guesses based on the template.
    """
    strategy = get_strategy(config.strategy)
    rounds = list(range(first, config.max_rounds + 1))
    q = len(template.qa)
    seen = observed_completions(records, averages or {})
    answer = int(seen.get("executor", _answer_tokens(template)))
    prompt_len = max(estimate_tokens(template.prompt), 60)
    prompts = prompt_tokens(template, answer)
    per_call = {
        "optimizer": (prompts["optimizer"], int(seen.get("optimizer", prompt_len + 250))),
        "executor": (prompts["executor"], answer),
        "evaluator": (prompts["evaluator"], int(seen.get("evaluator", 200))),
    }
    totals = {role: RoleEstimate() for role in ROLES}
    # Strategies drop judge calls when a metric decides: tell them whether one will.
    opts = {**config.strategy_options, "metric": template.metric if template.has_answers else None}
    for n in rounds:
        calls = strategy.first_round_calls(q, opts) if n == 1 else strategy.calls_per_round(q, config.votes, opts)
        for role, count in calls.as_dict().items():
            totals[role].calls += count
            totals[role].prompt_tokens += count * per_call[role][0]
            totals[role].completion_tokens += count * per_call[role][1]
    for role, est in totals.items():
        if est.calls:
            price = price_per_token(config.role(role).model)
            est.cost_usd = None if price is None else est.prompt_tokens * price[0] + est.completion_tokens * price[1]
    return Estimate(rounds, totals)
