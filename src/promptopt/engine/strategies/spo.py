"""SPO (arXiv 2502.06855): optimize from the best round, execute, judge pairwise.

With a template metric a candidate must also keep the base's accuracy: the judge alone can
prefer fluent wrong answers, the metric alone cannot see the requirements.
"""

from __future__ import annotations

from promptopt.engine.execute import execute
from promptopt.engine.strategies.base import Strategy, count_rule, format_qa_block, register
from promptopt.records import RoundRecord


@register
class SPO(Strategy):
    name = "spo"

    async def first_round(self) -> RoundRecord:
        record = await super().first_round()
        record.score = self.acceptance.accuracy(record.answers)
        return record

    def optimizer_messages(self, base: RoundRecord) -> list[dict[str, str]]:
        t = self.ctx.template
        content = self.render_prompt(
            "optimizer",
            requirements=t.requirements.strip() or "(none given)",
            prompt=base.prompt.strip(),
            answers=format_qa_block(self.ctx.questions, base.answers, t.golden),
            count_rule=count_rule(t.count),
        )
        return [{"role": "user", "content": content}]

    def estimate_messages(self, base: RoundRecord) -> list[dict[str, str]]:
        return self.optimizer_messages(base)

    async def step(self, number: int, history: list[RoundRecord]) -> RoundRecord:
        events = self.ctx.events
        base = await self.base_for_step(history)
        # After a loss or a failed round, round number+1 writes its candidate from this same base.
        self.optimizing(number, lambda: [[*history, RoundRecord(round=number, base_round=base.round)]])
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
        self.judging(number, lambda: self.verdicts(history, record))
        decision = await self.acceptance.decide(base.answers, record.answers, rule="spo")
        record.votes = decision.votes
        record.succeed = decision.accepted
        record.verdict = "win" if record.succeed else "lose"
        record.decision = decision.summary
        if decision.accuracy is not None:
            record.score = decision.accuracy
            record.state = {"base_accuracy": decision.base_accuracy}
        return record
