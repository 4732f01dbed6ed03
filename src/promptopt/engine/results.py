"""What a run will do and what it did: the objects the CLI, the API and the web UI render."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from promptopt.records import GateRecord, RoleUsage, RoundRecord, confirmed_round


@dataclass
class SpeculationStats:
    """What --speculate did: paid calls made ahead that a round used, and those no round used."""

    used: int = 0
    wasted: int = 0
    # The wasted calls' usage per role (already part of the run's usage).
    usage: dict[str, RoleUsage] = field(default_factory=dict)

    @property
    def wasted_cost_usd(self) -> float:
        return sum(u.cost_usd for u in self.usage.values())


@dataclass
class RunPlan:
    name: str
    workspace: Path
    strategy: str
    first_round: int
    last_round: int
    resumed: bool
    questions: int
    votes: int
    models: dict[str, str]
    archived: Path | None = None
    # Parts of the template that differ from the one the kept rounds ran with ("prompt", "questions"…).
    template_changes: list[str] = field(default_factory=list)
    # Roles whose model differs from the one the kept rounds ran with ("executor: a → b").
    model_changes: list[str] = field(default_factory=list)
    seed: int | None = None
    # Rounds results.json held more than once: the file was archived, then rewritten with the last of each.
    duplicate_rounds: list[int] = field(default_factory=list)


@dataclass
class RunResult:
    """What a run did; the CLI renders it, `--json` dumps it."""

    name: str
    workspace: Path
    strategy: str
    records: list[RoundRecord]
    new_rounds: list[int]
    best: RoundRecord
    usage: dict[str, RoleUsage]
    stopped: str = "completed"  # completed | budget | deadline | converged
    message: str | None = None
    template_changes: list[str] = field(default_factory=list)
    model_changes: list[str] = field(default_factory=list)
    seconds: float = 0.0
    seed: int | None = None
    # What the user must hear once: a cache that could not be written, …
    warnings: list[str] = field(default_factory=list)
    # The confirmation gate for `best` (None: the run stopped before it, or an older workspace).
    gate: GateRecord | None = None
    # With --speculate: calls made ahead, used and wasted (the wasted ones are part of `usage`).
    speculation: SpeculationStats | None = None

    @property
    def initial(self) -> RoundRecord:
        return self.records[0]

    @property
    def confirmed(self) -> RoundRecord:
        """The prompt the run stands behind: `best` once the gate confirmed it, else the user's own."""
        return confirmed_round(self.records, self.best, self.gate)

    @property
    def calls(self) -> int:
        return sum(u.calls for u in self.usage.values())

    @property
    def cost_usd(self) -> float:
        return sum(u.cost_usd for u in self.usage.values())
