"""The round loop: open or resume a run, run rounds until a stop condition, stamp and commit each."""

from __future__ import annotations

import asyncio
import random
import secrets
import time
from dataclasses import dataclass

from promptopt.config import ROLES, RunConfig
from promptopt.engine.confirm import confirm, gate_key
from promptopt.engine.context import RunContext
from promptopt.engine.diagnostics import NEAR_CHANCE_ADVICE, combined, near_chance
from promptopt.engine.results import RunPlan, RunResult, SpeculationStats
from promptopt.engine.speculate import Speculation, merge_usage
from promptopt.engine.strategies.base import Strategy, get_strategy
from promptopt.errors import BudgetExceeded, ConfigError, DeadlineExceeded, LLMError, WorkspaceError
from promptopt.events import Events
from promptopt.llm import LLM
from promptopt.records import GateRecord, RoleUsage, RoundRecord, now_string
from promptopt.template import Template, template_changes
from promptopt.workspace import Workspace

__all__ = ["RunPlan", "RunResult", "check_strategy", "resume_point", "run_optimization"]

# The loop's own guard behind the client's --deadline: a call that cannot be interrupted
# (an in-process local model) must not hold the run much past it.
DEADLINE_GRACE_S = 5.0


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


def run_seed(records: list[RoundRecord], wanted: int | None) -> int:
    """The run's own seed: the one stored with its rounds, else --seed, else a fresh random one.

    Workspaces written before seeds were stored ran with seed 0.
    """
    stored = next((r.seed for r in records if r.seed is not None), None)
    if stored is None and records:
        stored = 0
    if stored is not None and wanted is not None and wanted != stored:
        raise ConfigError(
            f"--seed {wanted}: this workspace's run uses seed {stored}; drop --seed to resume it, or pick a new --name"
        )
    if stored is not None:
        return stored
    return wanted if wanted is not None else secrets.randbelow(2**31)


def model_changes(records: list[RoundRecord], models: dict[str, str]) -> list[str]:
    """'executor: a → b' for each role whose model differs from the newest kept round's."""
    before = next((r.models for r in reversed(records) if r.models), {})
    return [
        f"{role}: {before[role]} → {models[role]}" for role in ROLES if before.get(role, models[role]) != models[role]
    ]


@dataclass
class OpenRun:
    """A run opened under the workspace lock: the rounds kept and what the next ones are."""

    records: list[RoundRecord]
    next_round: int
    plan: RunPlan


def open_run(template: Template, config: RunConfig, workspace: Workspace, models: dict[str, str]) -> OpenRun:
    """Read the workspace, apply --initial-round (archiving what it drops), settle the seed, plan."""
    records = workspace.load()
    check_strategy(records, config.strategy)
    kept, next_round = resume_point(records, config.initial_round)
    archived = None
    if len(kept) != len(records) or workspace.duplicate_rounds:
        tag = "before-initial-round" if len(kept) != len(records) else "with-duplicate-rounds"
        archived = workspace.archive_results(tag)
        workspace.write_results(kept)
    seed = run_seed(kept, config.seed)
    previous = workspace.read_template() if kept else None
    changes = template_changes(previous, template) if previous else []
    workspace.write_template(template)
    plan = RunPlan(
        workspace.name,
        workspace.root,
        config.strategy,
        next_round,
        config.max_rounds,
        bool(kept),
        len(template.qa),
        config.votes,
        models,
        archived,
        changes,
        model_changes(kept, models),
        seed,
        workspace.duplicate_rounds,
    )
    return OpenRun(kept, next_round, plan)


def stamp(record: RoundRecord, usage: dict[str, RoleUsage], seconds: float, plan: RunPlan) -> RoundRecord:
    """What the loop adds to a strategy's round: usage, cost, time, models, strategy, seed."""
    record.usage = usage
    record.cost_usd = round(sum(u.cost_usd for u in usage.values()), 10)
    executor = usage.get("executor")
    record.tokens = executor.completion_tokens if executor else 0
    record.duration_s = round(seconds, 3)
    record.time = now_string()
    record.models = plan.models
    record.strategy = plan.strategy
    record.seed = plan.seed
    return record


def nothing_worked(llm: LLM, spent: dict[str, RoleUsage], models: dict[str, str]) -> LLMError | None:
    """The error to stop with when model calls were made and not one succeeded (STYLE rule 19)."""
    if any(u.calls for u in spent.values()) or not any(u.failed for u in spent.values()):
        return None
    role = next(r for r in ROLES if spent.get(r) and spent[r].failed)
    last = llm.usage.last_errors.get(role) or "every call failed"
    where = "" if last.startswith(f"{role} model") else f"{role} model {models[role]}: "
    return LLMError(f"no model call succeeded; last error: {where}{last}")


async def gated(strategy: Strategy, workspace: Workspace, records: list[RoundRecord], best: RoundRecord) -> GateRecord:
    """The confirmation gate for `best`: the stored one when it judged the same thing, else run and store it."""
    stored = workspace.read_gate()
    same = best.round != records[0].round and stored is not None and stored.key == gate_key(strategy, records[0], best)
    if same and stored is not None and (stored.outcome != "skipped" or not strategy.ctx.config.confirm):
        return stored
    gate = await confirm(strategy, records, best)
    workspace.write_gate(gate)
    return gate


def speculation_for(config: RunConfig, cls: type[Strategy], llm: LLM, events: Events) -> Speculation | None:
    """--speculate's wrapper around the client, when the strategy can write ahead (else say why not, once)."""
    if not config.speculate:
        return None
    if not cls.speculates:
        message = (
            f"--speculate: {cls.name} writes its next candidates from this round's scores, so nothing can be "
            "written ahead; the run goes on without it"
        )
        if message not in llm.warnings:
            llm.warnings.append(message)
            events.warning(message)
        return None
    return Speculation(llm)


def warn_near_chance(records: list[RoundRecord], events: Events, llm: LLM) -> None:
    """Once per run (even with --quiet): a judge whose two orders agree about as often as a coin's."""
    stats = combined([r.votes for r in records])
    if near_chance(stats):
        message = NEAR_CHANCE_ADVICE.format(share=stats.consistency or 0.0, pairs=stats.pairs)
        if message not in llm.warnings:
            llm.warnings.append(message)
            events.warning(message)


async def _round(strategy: Strategy, number: int, records: list[RoundRecord], left: float | None) -> RoundRecord:
    coro = strategy.first_round() if number == 1 else strategy.step(number, records)
    if left is None:
        return await coro
    try:
        return await asyncio.wait_for(coro, timeout=max(0.0, left) + DEADLINE_GRACE_S)
    except asyncio.TimeoutError:
        raise DeadlineExceeded("--deadline reached while a call could not be interrupted") from None


async def run_optimization(
    template: Template,
    config: RunConfig,
    llm: LLM,
    workspace: Workspace,
    events: Events | None = None,
) -> RunResult:
    """Run (or resume) an optimization until --max-rounds, a budget, the deadline, or the strategy stops."""
    events = events or Events()
    started = time.perf_counter()
    models = {role: config.role(role).model for role in ROLES}
    with workspace.lock():
        opened = open_run(template, config, workspace, models)
        records, next_round, plan = opened.records, opened.next_round, opened.plan
        llm.run_seed = plan.seed
        cls = get_strategy(config.strategy)
        speculation = speculation_for(config, cls, llm, events)
        strategy = cls(
            RunContext(
                template, config, speculation or llm, events, random.Random(plan.seed), plan.seed or 0, speculation
            )
        )
        events.run_started(plan)
        run_usage = llm.usage.snapshot()
        new_rounds: list[int] = []
        stopped, message = "completed", None
        ahead: SpeculationStats | None = None
        try:
            reason = strategy.should_stop(records) if records else None
            while next_round <= config.max_rounds and reason is None:
                if speculation is not None:
                    speculation.begin(next_round)
                before = llm.usage.snapshot()
                t0 = time.perf_counter() - llm.startup_seconds
                left = config.deadline - (time.perf_counter() - started) if config.deadline else None
                record = await _round(strategy, next_round, records, left)
                # Round time without the client's one-time start-up (importing litellm).
                seconds = time.perf_counter() - llm.startup_seconds - t0
                record = stamp(record, llm.usage.since(before), seconds, plan)
                records = workspace.save_round(record, records)
                new_rounds.append(record.round)
                events.round_done(record)
                next_round += 1
                reason = strategy.should_stop(records)
            if reason:
                stopped, message = "converged", reason
        except DeadlineExceeded as exc:
            stopped, message = "deadline", str(exc)
        except BudgetExceeded as exc:
            stopped, message = "budget", str(exc)
        finally:
            if speculation is not None:
                ahead = await speculation.close()
        spent = llm.usage.since(run_usage)
        failure = nothing_worked(llm, spent, models)
        if failure is not None:
            raise failure
        if not records:
            if stopped in ("budget", "deadline"):
                raise BudgetExceeded(f"{message}; no round completed")
            raise WorkspaceError(f"{workspace.root}: no round completed ({message or 'nothing to run'})")
        best = strategy.best(records)
        gate: GateRecord | None = None
        if stopped not in ("budget", "deadline"):  # a stopped run is confirmed when it finishes
            try:
                gate = await gated(strategy, workspace, records, best)
            except DeadlineExceeded as exc:
                stopped, message = "deadline", f"{exc}; the best prompt is not confirmed yet"
            except BudgetExceeded as exc:
                stopped, message = "budget", f"{exc}; the best prompt is not confirmed yet"
            spent = llm.usage.since(run_usage)
        if ahead is not None:
            spent = merge_usage(spent, ahead.usage)  # wasted calls were paid for too
        if gate is None:
            stored = workspace.read_gate()
            gate = stored if stored is not None and stored.best_round == best.round else None
        warn_near_chance(records, events, llm)
        result = RunResult(
            name=workspace.name,
            workspace=workspace.root,
            strategy=config.strategy,
            records=records,
            new_rounds=new_rounds,
            best=best,
            usage=spent,
            stopped=stopped,
            message=message,
            template_changes=plan.template_changes,
            model_changes=plan.model_changes,
            seconds=round(time.perf_counter() - started, 3),
            seed=plan.seed,
            warnings=list(llm.warnings),
            gate=gate,
            speculation=ahead,
        )
        events.run_done(result)
        return result
