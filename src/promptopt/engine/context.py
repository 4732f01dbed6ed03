"""What a strategy, the acceptance rules and the gate may use during a run: passed in, never global."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from promptopt.config import RunConfig
from promptopt.events import Events
from promptopt.llm import LLM
from promptopt.template import Template

if TYPE_CHECKING:
    from promptopt.records import RoundRecord


class AheadWriter(Protocol):
    """What --speculate offers a strategy (engine/speculate.py's Speculation): run round `number`
    ahead on each possible history, in the background."""

    def start(self, strategy: Any, number: int, histories: list[list[RoundRecord]], whole_round: bool) -> None: ...


@dataclass
class RunContext:
    """What a strategy may use: passed in, never global."""

    template: Template
    config: RunConfig
    llm: LLM
    events: Events = field(default_factory=Events)
    rng: random.Random = field(default_factory=lambda: random.Random(0))
    # The run's own seed (stored in the workspace); strategies derive per-round draws from it.
    seed: int = 0
    # With --speculate: runs the next round's optimizer calls ahead (then `llm` is the same object).
    speculation: AheadWriter | None = None

    @property
    def questions(self) -> list[str]:
        return [q.question for q in self.template.qa]
