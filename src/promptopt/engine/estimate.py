"""--dry-run: projected calls, tokens and cost, without calling any model."""

from __future__ import annotations

from dataclasses import dataclass, field

from promptopt.config import ROLES, RunConfig
from promptopt.engine.execute import executor_messages
from promptopt.engine.judge import comparison_block, judge_messages
from promptopt.engine.strategies.base import format_qa_block, get_strategy
from promptopt.engine.strategies.spo import count_rule
from promptopt.llm import estimate_tokens, messages_tokens
from promptopt.prompts import render
from promptopt.template import Template
from promptopt.workspace import AnswerRecord, RoundRecord


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


def estimate_run(template: Template, config: RunConfig, records: list[RoundRecord], first: int) -> Estimate:
    """Calls and tokens for rounds first..max_rounds, from the strategy's per-round formula."""
    strategy = get_strategy(config.strategy)
    rounds = list(range(first, config.max_rounds + 1))
    q = len(template.qa)
    answer = _answer_tokens(template)
    questions = [item.question for item in template.qa]
    fake = [AnswerRecord(question=x, answer="x" * answer * 4) for x in questions]
    prompt_len = max(estimate_tokens(template.prompt), 60)
    exec_prompt = sum(messages_tokens(executor_messages(template.prompt, x)) for x in questions) / q
    opt_prompt = messages_tokens([{"role": "user", "content": render(
        "optimizer", requirements=template.requirements, prompt=template.prompt,
        answers=format_qa_block(questions, fake, template.golden), count_rule=count_rule(template.count))}])
    judge_prompt = messages_tokens(judge_messages(template.requirements, comparison_block(
        questions, template.golden, fake, fake)))
    per_call = {
        "optimizer": (opt_prompt, prompt_len + 250),
        "executor": (int(exec_prompt), answer),
        "evaluator": (judge_prompt, 200),
    }
    totals = {role: RoleEstimate() for role in ROLES}
    # Strategies drop judge calls when a metric decides: tell them whether one will.
    opts = {**config.strategy_options, "metric": template.metric if template.has_answers else None}
    for n in rounds:
        calls = (strategy.first_round_calls(q, opts) if n == 1
                 else strategy.calls_per_round(q, config.votes, opts))
        for role, count in calls.as_dict().items():
            totals[role].calls += count
            totals[role].prompt_tokens += count * per_call[role][0]
            totals[role].completion_tokens += count * per_call[role][1]
    from promptopt.llm import _import_litellm, token_cost

    litellm = _import_litellm()
    for role, est in totals.items():
        if est.calls:
            cost, priced = token_cost(litellm, config.role(role).model, est.prompt_tokens, est.completion_tokens)
            est.cost_usd = cost if priced else None
    return Estimate(rounds, totals)
