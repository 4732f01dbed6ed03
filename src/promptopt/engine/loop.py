"""The round loop: resume point, commit per round, stop conditions (rounds, budget, strategy)."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from pathlib import Path

from promptopt.config import ROLES, RunConfig
from promptopt.engine.strategies.base import RunContext, get_strategy
from promptopt.errors import BudgetExceeded, ConfigError, WorkspaceError
from promptopt.events import Events
from promptopt.llm import LLM
from promptopt.template import Template, template_changes
from promptopt.workspace import RoleUsage, RoundRecord, Workspace, now_string


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
    stopped: str = "completed"  # completed | budget | converged
    message: str | None = None
    template_changes: list[str] = field(default_factory=list)
    seconds: float = 0.0
    extra: dict[str, object] = field(default_factory=dict)

    @property
    def initial(self) -> RoundRecord:
        return self.records[0]

    @property
    def calls(self) -> int:
        return sum(u.calls for u in self.usage.values())

    @property
    def cost_usd(self) -> float:
        return sum(u.cost_usd for u in self.usage.values())


def resume_point(records: list[RoundRecord], initial_round: int | None) -> tuple[list[RoundRecord], int]:
    """(rounds kept, next round number). --initial-round K restarts after round K."""
    if initial_round is None:
        return records, (records[-1].round + 1 if records else 1)
    if initial_round == 1 and not records:
        return [], 1
    numbers = {r.round for r in records}
    if initial_round not in numbers:
        have = f"rounds {min(numbers)}–{max(numbers)}" if numbers else "no rounds"
        raise ConfigError(f"--initial-round {initial_round}: the workspace has {have}")
    kept = [r for r in records if r.round <= initial_round]
    return kept, initial_round + 1


def check_strategy(records: list[RoundRecord], strategy: str) -> None:
    used = {r.strategy for r in records if r.strategy}
    if used and strategy not in used:
        raise ConfigError(
            f"this workspace was optimized with --strategy {sorted(used)[0]}; use it, or pick a new --name"
        )


async def run_optimization(
    template: Template,
    config: RunConfig,
    llm: LLM,
    workspace: Workspace,
    events: Events | None = None,
) -> RunResult:
    """Run (or resume) an optimization until --max-rounds, a budget, or the strategy stops."""
    events = events or Events()
    started = time.perf_counter()
    cls = get_strategy(config.strategy)
    ctx = RunContext(template, config, llm, events, random.Random(config.seed))
    strategy = cls(ctx)
    models = {role: config.role(role).model for role in ROLES}
    with workspace.lock():
        records = workspace.load()
        check_strategy(records, config.strategy)
        kept, next_round = resume_point(records, config.initial_round)
        archived = None
        if len(kept) != len(records) or workspace.duplicate_rounds:
            tag = "before-initial-round" if len(kept) != len(records) else "with-duplicate-rounds"
            archived = workspace.archive_results(tag)
            workspace.write_results(kept)
        records = kept
        previous = workspace.read_template() if records else None
        changes = template_changes(previous, template) if previous else []
        workspace.write_template(template)
        plan = RunPlan(
            workspace.name,
            workspace.root,
            config.strategy,
            next_round,
            config.max_rounds,
            bool(records),
            len(template.qa),
            config.votes,
            models,
            archived,
            changes,
            workspace.duplicate_rounds,
        )
        events.run_started(plan)
        run_usage = llm.usage.snapshot()
        new_rounds: list[int] = []
        stopped, message = "completed", None
        try:
            reason = strategy.should_stop(records) if records else None
            while next_round <= config.max_rounds and reason is None:
                before = llm.usage.snapshot()
                t0 = time.perf_counter() - getattr(llm, "startup_seconds", 0.0)
                if next_round == 1:
                    record = await strategy.first_round()
                else:
                    record = await strategy.step(next_round, records)
                record.usage = llm.usage.since(before)
                record.cost_usd = round(sum(u.cost_usd for u in record.usage.values()), 10)
                executor = record.usage.get("executor")
                record.tokens = executor.completion_tokens if executor else 0
                # Round time without the client's one-time start-up (importing litellm).
                record.duration_s = round(time.perf_counter() - getattr(llm, "startup_seconds", 0.0) - t0, 3)
                record.time = now_string()
                record.models = models
                record.strategy = config.strategy
                records = workspace.save_round(record, records)
                new_rounds.append(record.round)
                events.round_done(record)
                next_round += 1
                reason = strategy.should_stop(records)
            if reason:
                stopped, message = "converged", reason
        except BudgetExceeded as exc:
            stopped, message = "budget", str(exc)
        if not records:
            if stopped == "budget":
                raise BudgetExceeded(f"{message}; no round completed")
            raise WorkspaceError(f"{workspace.root}: no round completed ({message or 'nothing to run'})")
        result = RunResult(
            name=workspace.name,
            workspace=workspace.root,
            strategy=config.strategy,
            records=records,
            new_rounds=new_rounds,
            best=strategy.best(records),
            usage=llm.usage.since(run_usage),
            stopped=stopped,
            message=message,
            template_changes=changes,
            seconds=round(time.perf_counter() - started, 3),
        )
        events.run_done(result)
        return result
