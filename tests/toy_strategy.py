"""A strategy added in one module (and its prompt file, toy.txt beside it): the architecture's proof.

Nothing else in promptopt knows about it: the CLI, `--dry-run`, `show` and `show --json` ask it.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from promptopt.engine.execute import execute
from promptopt.engine.strategies.base import StateView, Strategy, register
from promptopt.records import RoundRecord


class ToyOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tone: str = Field("plain", description="the tone the optimizer is asked for")
    tries: int = Field(1, ge=1, le=3, description="sentences the rewrite may change")


@register
class Toy(Strategy):
    """Asks for a rewrite in a tone, judges it like SPO, and notes the tone in its state."""

    name = "toy"
    Options = ToyOptions
    options: ToyOptions

    async def step(self, number: int, history: list[RoundRecord]) -> RoundRecord:
        base = await self.base_for_step(history)
        self.ctx.events.phase(number, "optimize")
        content = self.render_prompt(
            "toy", prompt=base.prompt.strip(), tone=self.options.tone, tries=self.options.tries
        )
        proposal = await self.propose([{"role": "user", "content": content}], number, unchanged=base.prompt)
        record = RoundRecord(round=number, base_round=base.round, state={"tone": self.options.tone})
        if proposal.prompt is None:
            return record.model_copy(update={"verdict": "failed", "error": proposal.error})
        record.prompt = proposal.prompt
        self.ctx.events.phase(number, "execute")
        record.answers = await execute(self.ctx.llm, record.prompt, self.ctx.questions)
        self.ctx.events.phase(number, "judge")
        decision = await self.acceptance.decide(base.answers, record.answers)
        record.votes, record.decision, record.succeed = decision.votes, decision.summary, decision.accepted
        record.verdict = "accepted" if decision.accepted else "rejected"
        return record

    def estimate_messages(self, base: RoundRecord) -> list[dict[str, str]]:
        content = self.render_prompt(
            "toy", prompt=base.prompt.strip(), tone=self.options.tone, tries=self.options.tries
        )
        return [{"role": "user", "content": content}]

    @classmethod
    def describe_state(cls, record: RoundRecord) -> StateView | None:
        tone = (record.state or {}).get("tone")
        return StateView("Toy", lines=[(f"asked for a {tone} tone", "")]) if tone else None
