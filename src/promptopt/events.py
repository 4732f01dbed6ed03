"""Progress reporting from the engine to whoever draws it (the CLI, a web UI, a test)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from promptopt.engine.results import RunPlan, RunResult
    from promptopt.llm import Completion
    from promptopt.records import RoundRecord


class Events:
    """No-op base: subclass and override what you draw. The engine never prints."""

    def run_started(self, plan: RunPlan) -> None:
        """Before the first round: what will run (rounds, resume point, models)."""

    def phase(self, round_number: int, phase: str) -> None:
        """A round entered a phase: 'optimize', 'execute', 'judge'."""

    def call_done(self, completion: Completion) -> None:
        """A model call returned (from the provider or the cache)."""

    def round_done(self, record: RoundRecord) -> None:
        """A round was committed to results.json."""

    def warning(self, message: str) -> None:
        """Something the user must hear once, even when progress is off (a cache that cannot write)."""

    def run_done(self, result: RunResult) -> None:
        """The run ended (completed, budget, interrupted)."""


class RecordingEvents(Events):
    """Keeps every event in order; handy in tests and scripts."""

    def __init__(self) -> None:
        self.log: list[tuple[str, object]] = []

    def run_started(self, plan: RunPlan) -> None:
        self.log.append(("run_started", plan))

    def phase(self, round_number: int, phase: str) -> None:
        self.log.append(("phase", (round_number, phase)))

    def call_done(self, completion: Completion) -> None:
        self.log.append(("call_done", completion))

    def round_done(self, record: RoundRecord) -> None:
        self.log.append(("round_done", record))

    def warning(self, message: str) -> None:
        self.log.append(("warning", message))

    def run_done(self, result: RunResult) -> None:
        self.log.append(("run_done", result))


class FunctionEvents(Events):
    """Hands every event to one callback as (name, payload): `fn("round_done", record)`."""

    def __init__(self, fn: Callable[[str, object], None]) -> None:
        self.fn = fn

    def run_started(self, plan: RunPlan) -> None:
        self.fn("run_started", plan)

    def phase(self, round_number: int, phase: str) -> None:
        self.fn("phase", (round_number, phase))

    def call_done(self, completion: Completion) -> None:
        self.fn("call_done", completion)

    def round_done(self, record: RoundRecord) -> None:
        self.fn("round_done", record)

    def warning(self, message: str) -> None:
        self.fn("warning", message)

    def run_done(self, result: RunResult) -> None:
        self.fn("run_done", result)
