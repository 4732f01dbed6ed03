"""--speculate: write round n+1's candidate while round n is being judged, for each verdict it may get.

The whole mechanism is here. When round n starts judging, its strategy names the history round n+1
would see after each verdict whose next request it can compute exactly (`Strategy.judging`). For
each one, a copy of the strategy runs round n+1's own `step` on that history in the background,
against `_View`: an LLM that sends optimizer calls ahead and stops the copy at its first other
call. The copy writes nothing and tells the UI nothing.

Round n+1 itself runs as without --speculate, after round n is committed: its `step` makes the same
requests (a request is a function of the base prompt, its answers, the round and the sample index,
so the copy on the right history made exactly these), and `Speculation.complete` hands it the reply made
ahead, awaiting it if it is still in flight, instead of paying for it twice. Decisions and the
workspace are the same as without --speculate by construction: only replies move earlier in time.

A reply made ahead is in the response cache like any other, so a resume after kill -9 pays for none
of them again. A call made ahead is counted by the budget before it is made, and made only if the
budget still covers everything the rest of the run may ask for (`still_needed`); one it refuses is
simply not made (the round makes it later, as it would have).

Usage: a call made ahead goes to a ledger of its own, which the round that uses its reply takes
over (its usage shows it); what no round used is wasted, and is added to the run's usage when the
run ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import json
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from promptopt.engine.results import SpeculationStats
from promptopt.events import Events
from promptopt.llm import AHEAD, LLM, AheadCall, Completion, Ledger, Messages
from promptopt.records import RoleUsage, RoundRecord
from promptopt.shapes import Shape

if TYPE_CHECKING:
    from promptopt.engine.strategies.base import Strategy


class StopAhead(Exception):
    """A strategy copy running ahead reached a call that is not the optimizer's: it ends there."""


def request_key(role: str, messages: Messages, sample: int) -> str:
    """One request of this run (the model, its parameters and the run's seed are the run's own)."""
    blob = json.dumps([role, messages, sample], sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


@dataclass
class _Call:
    task: asyncio.Task[Completion]
    ledger: Ledger


class Speculation:
    """The run's LLM under --speculate: passes calls through, serving those already made ahead."""

    def __init__(self, llm: LLM) -> None:
        self.llm = llm
        self._calls: dict[str, _Call] = {}
        self._branches: dict[int, list[asyncio.Task[None]]] = {}
        self._stats = SpeculationStats()
        self._wasted = Ledger()

    # --- the LLM protocol (shared with the client) ----------------------------------------
    @property
    def usage(self) -> Ledger:
        return self.llm.usage

    @usage.setter
    def usage(self, value: Ledger) -> None:
        self.llm.usage = value

    @property
    def run_seed(self) -> int | None:
        return self.llm.run_seed

    @run_seed.setter
    def run_seed(self, value: int | None) -> None:
        self.llm.run_seed = value

    @property
    def warnings(self) -> list[str]:
        return self.llm.warnings

    @warnings.setter
    def warnings(self, value: list[str]) -> None:
        self.llm.warnings = value

    @property
    def startup_seconds(self) -> float:
        return self.llm.startup_seconds

    @startup_seconds.setter
    def startup_seconds(self, value: float) -> None:
        self.llm.startup_seconds = value

    async def complete(
        self, role: str, messages: Messages, *, sample: int = 0, shape: Shape | None = None
    ) -> Completion:
        """A round's call: the reply made ahead when there is one (awaited if in flight), else the call."""
        key = request_key(role, messages, sample)
        call = self._calls.get(key)
        if call is not None:
            try:
                done = await asyncio.shield(call.task)
            except Exception:  # refused by the budget, failed, or stopped: the round makes the call itself
                self._retire(key)
            else:
                if self._calls.get(key) is call:
                    del self._calls[key]
                    self.llm.usage.merge(call.ledger)  # the round that used the reply shows it
                    self._stats.used += sum(u.calls for u in call.ledger.roles.values())
                    return done
        return await self.llm.complete(role, messages, sample=sample, shape=shape)

    # --- running ahead ----------------------------------------------------------------------
    def start(self, strategy: Strategy, number: int, histories: list[list[RoundRecord]], whole_round: bool) -> None:
        """Run round `number`'s step ahead on each history, in the background, until its first
        non-optimizer call. `whole_round`: round number-1 has not executed its candidate yet."""
        keep = still_needed(strategy, number - 1, histories[0][:-1], whole_round) if histories else (0, 0.0)
        for history in histories:
            view = _View(self, keep)
            ctx = dataclasses.replace(strategy.ctx, llm=view, events=Events(), speculation=None)
            copy = type(strategy)(ctx)
            task = asyncio.ensure_future(self._branch(copy.step(number, list(history))))
            self._branches.setdefault(number, []).append(task)

    async def _branch(self, step: Coroutine[Any, Any, RoundRecord]) -> None:
        # StopAhead ends every copy; a budget refusal, a deadline or a failed call ends it too:
        # the round meets them itself, when and if it gets there.
        with contextlib.suppress(Exception):
            await step

    def begin(self, number: int) -> None:
        """Round `number` runs for real: copies running ahead of it stop; their calls in flight go on
        (already paid for) and stay there for the round to use."""
        for n in [n for n in self._branches if n <= number]:
            for task in self._branches.pop(n):
                task.cancel()

    async def fetch(
        self, role: str, messages: Messages, sample: int, keep: tuple[int, float], shape: Shape | None = None
    ) -> Completion:
        """A call made ahead, once per request (a second copy asking the same shares it)."""
        key = request_key(role, messages, sample)
        call = self._calls.get(key)
        if call is None:
            ledger = Ledger()
            task = asyncio.ensure_future(self._call(AheadCall(ledger, *keep), role, messages, sample, shape))
            call = self._calls[key] = _Call(task, ledger)
        return await asyncio.shield(call.task)

    async def _call(
        self, mark: AheadCall, role: str, messages: Messages, sample: int, shape: Shape | None
    ) -> Completion:
        AHEAD.set(mark)  # this task's own context: its usage and budget share are the call's
        return await self.llm.complete(role, messages, sample=sample, shape=shape)

    def _retire(self, key: str) -> None:
        call = self._calls.pop(key, None)
        if call is not None:
            self._wasted.merge(call.ledger)

    async def close(self) -> SpeculationStats:
        """Stop everything still running ahead; what no round used is wasted (counted as spent)."""
        tasks: list[asyncio.Future[Any]] = [t for ts in self._branches.values() for t in ts]
        self._branches.clear()
        tasks += [c.task for c in self._calls.values()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for key in list(self._calls):
            self._retire(key)
        self._stats.usage = {r: u for r, u in self._wasted.roles.items() if u.calls or u.cached or u.failed}
        self._stats.wasted = sum(u.calls for u in self._wasted.roles.values())
        return self._stats


class _View:
    """What a strategy copy running ahead calls: optimizer calls are made ahead, anything else stops it."""

    def __init__(self, owner: Speculation, keep: tuple[int, float]) -> None:
        self.owner = owner
        self.keep = keep
        self.usage = Ledger()  # nothing is recorded here: calls made ahead keep their own ledgers
        self.run_seed = owner.run_seed
        self.warnings: list[str] = []
        self.startup_seconds = 0.0

    async def complete(
        self, role: str, messages: Messages, *, sample: int = 0, shape: Shape | None = None
    ) -> Completion:
        if role != "optimizer":
            raise StopAhead(role)
        return await self.owner.fetch(role, messages, sample, self.keep, shape)


def still_needed(strategy: Strategy, current: int, history: list[RoundRecord], whole_round: bool) -> tuple[int, float]:
    """(calls, USD) the run may still ask for during round `current`, at most: the whole round (or,
    once it is judging, its judge votes), every later round to --max-rounds (optimizer retries
    included) and the confirmation gate, priced with the reply lengths `history` has seen.

    A call is written ahead only if the budget still covers this after it, so a run with a budget
    completes the same rounds with --speculate as without (the USD side is as good as the estimate).
    """
    config = strategy.ctx.config
    if config.max_calls is None and config.budget_usd is None:
        return 0, 0.0
    from promptopt.engine.estimate import estimate_run

    plain = config.model_copy(update={"speculate": False})
    rest = estimate_run(strategy.ctx.template, plain, history, current if whole_round else current + 1)
    later = strategy.round_calls(first=False)
    judge_left = 0 if whole_round else later.comparisons * strategy.acceptance.rule.most()
    calls = rest.worst_calls + judge_left + (config.optimizer_attempts - 1) * later.optimizer * len(rest.rounds)
    usd = (rest.worst_cost_usd or 0.0) * calls / max(rest.worst_calls, 1)
    return calls, usd


def merge_usage(a: dict[str, RoleUsage], b: dict[str, RoleUsage]) -> dict[str, RoleUsage]:
    """Two usage maps added up per role."""
    out = {role: u.model_copy() for role, u in a.items()}
    for role, u in b.items():
        out[role] = out[role].add(u) if role in out else u.model_copy()
    return out
