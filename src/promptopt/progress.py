"""Live progress on stderr: the CLI's Events implementation."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Console
from rich.status import Status
from rich.text import Text

from promptopt.events import Events
from promptopt.render import money, plural, round_line
from promptopt.safe import safe_text


class CliEvents(Events):
    """A one-line live status (round, phase, calls, cost) and one printed line per round."""

    def __init__(
        self,
        console: Console,
        quiet: bool = False,
        last_round: int | None = None,
        config_files: list[Path] | None = None,
        label: str | None = None,
    ) -> None:
        self.console = console
        self.quiet = quiet
        self.last_round = last_round
        self.config_files = config_files or []
        self.label = label  # e.g. "compare": the status line names it instead of a round
        self.round = 0
        self.phase_name = "starting"
        self.calls = 0
        self.cached = 0
        self.cost = 0.0
        self.unpriced = False
        self._status: Status | None = None

    def __enter__(self) -> CliEvents:
        if not self.quiet and self.console.is_terminal:
            self._status = Status(self._text(), console=self.console, spinner="dots")
            self._status.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._status is not None:
            self._status.stop()
            self._status = None

    def _text(self) -> Text:
        of = f"/{self.last_round}" if self.last_round else ""
        where = self.label or f"round {self.round}{of}"
        return Text(
            f"{where} · {self.phase_name} · {self.calls} calls"
            f"{f' (+{self.cached} cached)' if self.cached else ''} · {money(self.cost, self.unpriced)} so far"
        )

    def _refresh(self) -> None:
        if self._status is not None:
            self._status.update(self._text())

    def run_started(self, plan: Any) -> None:
        self.last_round = plan.last_round
        if plan.template_changes:  # a warning, not progress: printed even with --quiet
            self.warning(template_change_warning(plan))
        if plan.model_changes:
            self.warning(model_change_warning(plan))
        if plan.duplicate_rounds:
            rounds = ", ".join(str(n) for n in plan.duplicate_rounds)
            self.warning(
                f"{plan.name}: results.json held round {rounds} more than once; kept the last entry "
                f"of each, the whole file is saved as {plan.archived}"
            )
        if self.quiet:
            return
        if plan.archived and not getattr(plan, "duplicate_rounds", None):
            self.console.print(safe_text(f"kept a copy of the previous results in {plan.archived}", "dim"))
        if plan.first_round > plan.last_round:
            self.console.print(
                safe_text(
                    f"{plan.name}: nothing to do, rounds up to {plan.last_round} are complete "
                    f"(raise --max-rounds to continue)"
                )
            )
        elif plan.resumed:
            self.console.print(safe_text(f"{plan.name}: resuming at round {plan.first_round} of {plan.last_round}"))
        else:
            models = plan.models
            same = len(set(models.values())) == 1
            who = models["executor"] if same else ", ".join(f"{k} {v}" for k, v in models.items())
            self.console.print(
                safe_text(
                    f"{plan.name}: {plan.strategy} on {plural(plan.questions, 'question')}, "
                    f"{plural(plan.last_round, 'round')}, {who}"
                    + (f", seed {plan.seed}" if plan.seed is not None else "")
                )
            )
        if self.config_files:
            self.console.print(safe_text(f"config: {', '.join(str(p) for p in self.config_files)}", "dim"))

    def phase(self, round_number: int, phase: str) -> None:
        self.round, self.phase_name = round_number, phase
        self._refresh()

    def call_done(self, completion: Any) -> None:
        self.unpriced = self.unpriced or not completion.priced
        if completion.cached:
            self.cached += 1
        else:
            self.calls += 1
            self.cost += completion.cost_usd
        self._refresh()

    def round_done(self, record: Any) -> None:
        if not self.quiet:
            self.console.print(round_line(record, self.last_round))

    def warning(self, message: str) -> None:
        self.console.print(safe_text(f"warning: {message}", "yellow"), soft_wrap=True)


def model_change_warning(plan: Any) -> str:
    """One line: which role's model differs from the one the kept rounds ran with."""
    kept = plan.first_round - 1
    return (
        f"{plan.name}: the models changed since round {kept} ({'; '.join(plan.model_changes)}); "
        f"kept rounds keep their results and new rounds mix models in one run ('show' lists each round's). "
        f"Use a new --name to start over with the new models."
    )


def template_change_warning(plan: Any) -> str:
    """One line: what changed in the template since the kept rounds, and what that means for this run."""
    changes = plan.template_changes
    kept = plan.first_round - 1
    effects = []
    if "prompt" in changes:
        effects.append("the new prompt is not used (round 1 already ran)")
    if {"questions", "answers", "requirements", "count", "metric"} & set(changes):
        effects.append("new rounds run and are judged on the new template")
    kept_text = "round 1 keeps its results" if kept == 1 else f"rounds 1–{kept} keep their results"
    return (
        f"{plan.name}: the template's {', '.join(changes)} changed since round {kept}; "
        f"{kept_text} and {' and '.join(effects)}. "
        f"Use a new --name to start over with it."
    )
