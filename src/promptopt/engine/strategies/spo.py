"""SPO (arXiv 2502.06855): optimize from the best round, execute, judge pairwise.

With a template metric a candidate must also keep the base's accuracy: the judge alone can
prefer fluent wrong answers, the metric alone cannot see the requirements.
"""

from __future__ import annotations

from promptopt import prompts
from promptopt.engine.execute import execute
from promptopt.engine.scoring import Scorer
from promptopt.engine.strategies.base import RunContext, Strategy, format_qa_block, register
from promptopt.workspace import RoundRecord


def count_rule(count: int | None) -> str:
    if count is None:
        return "4. There is no word limit on the prompt, but every sentence must earn its place."
    return f"4. The revised prompt must be at most {count} words long."


@register
class SPO(Strategy):
    name = "spo"

    def __init__(self, ctx: RunContext) -> None:
        super().__init__(ctx)
        self.scorer = Scorer(ctx, self.compare)

    async def first_round(self) -> RoundRecord:
        record = await super().first_round()
        record.score = self.scorer.accuracy(record.answers)
        return record

    def optimizer_messages(self, base: RoundRecord) -> list[dict[str, str]]:
        t = self.ctx.template
        content = prompts.render(
            "optimizer",
            requirements=t.requirements.strip() or "(none given)",
            prompt=base.prompt.strip(),
            answers=format_qa_block(self.ctx.questions, base.answers, t.golden),
            count_rule=count_rule(t.count),
        )
        return [{"role": "user", "content": content}]

    async def step(self, number: int, history: list[RoundRecord]) -> RoundRecord:
        events = self.ctx.events
        base = self.best(history)
        base_answers = await self.answers_for(base)
        if base_answers is not base.answers:
            base = base.model_copy(update={"answers": base_answers})
        events.phase(number, "optimize")
        proposal = await self.propose(self.optimizer_messages(base), number, unchanged=base.prompt)
        record = RoundRecord(
            round=number, base_round=base.round, analysis=proposal.analysis, modification=proposal.modification
        )
        if proposal.prompt is None:
            state = {"leak": proposal.leak.as_dict()} if proposal.leak else {}
            return record.model_copy(update={"verdict": proposal.verdict, "error": proposal.error, "state": state})
        record.prompt = proposal.prompt
        events.phase(number, "execute")
        record.answers = await execute(self.ctx.llm, proposal.prompt, self.ctx.questions)
        if all(a.error is not None for a in record.answers):
            record.verdict = "failed"
            record.error = "every execution of the candidate failed"
            return record
        events.phase(number, "judge")
        scored = await self.scorer.score(base_answers, record.answers, rule="spo")
        record.votes = scored.votes
        record.succeed = scored.beats_current
        record.verdict = "win" if record.succeed else "lose"
        if scored.accuracy is not None:
            record.score = scored.accuracy
            record.state = {"base_accuracy": scored.base_accuracy}
        return record
