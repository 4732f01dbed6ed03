"""The strategy base class, its shared steps, and the name registry.

A strategy is one room: its options (a pydantic model), how its round `state` reads in `show`
and the web UI (`describe_state`), and what a round costs (`round_calls`, the optimizer prompt
behind `estimate_messages`) travel with it. The CLI, the API, the UI and the estimator ask it.
"""

from __future__ import annotations

import inspect
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal, get_args, get_origin

from pydantic import BaseModel, ConfigDict, ValidationError

from promptopt import prompts
from promptopt.config import error_message
from promptopt.engine.acceptance import Acceptance
from promptopt.engine.context import RunContext
from promptopt.engine.execute import execute
from promptopt.engine.judge import answer_text
from promptopt.engine.leak import Leak, find_leak
from promptopt.engine.parse import extract_tag, parse_prompt
from promptopt.errors import ConfigError, LLMError
from promptopt.records import AnswerRecord, RoundRecord, best_round
from promptopt.shapes import OPTIMIZER, Shape


@dataclass
class Proposal:
    prompt: str | None
    analysis: str | None = None
    modification: str | None = None
    error: str | None = None
    attempts: int = 0
    leak: Leak | None = None

    @property
    def verdict(self) -> str:
        """How a round without a prompt ends: 'rejected' when the candidates leaked examples."""
        return "rejected" if self.leak is not None else "failed"


@dataclass
class RoundCalls:
    """What one round of a strategy asks for (used by --dry-run and the docs): optimizer calls,
    executions, and comparisons (each costs the acceptance rule's judge votes; 0 when a metric
    decides without the judge)."""

    optimizer: int = 0
    executor: int = 0
    comparisons: int = 0


class NoOptions(BaseModel):
    """A strategy without options."""

    model_config = ConfigDict(extra="forbid")


@dataclass
class StateView:
    """A round's strategy state as plain text for `show` and the web UI (data, never markup)."""

    title: str
    columns: list[str] = field(default_factory=list)
    rows: list[list[str]] = field(default_factory=list)
    lines: list[tuple[str, str]] = field(default_factory=list)  # (text, style: "", "added", "removed", "dim")


def require_answers(answers: list[AnswerRecord], whose: str) -> list[AnswerRecord]:
    """`answers`, unless every one failed: then the provider is down and the run stops (exit 1)."""
    if answers and all(a.error is not None for a in answers):
        raise LLMError(f"every execution of {whose} failed; last error: {answers[-1].error}")
    return answers


def format_qa_block(questions: list[str], answers: list[AnswerRecord], golden: list[str | None]) -> str:
    parts = []
    for i, question in enumerate(questions):
        item = answers[i] if i < len(answers) else AnswerRecord(question=question, error="missing")
        lines = [f"### Question {i + 1}", question.strip(), f"Answer: {answer_text(item)}"]
        if golden[i]:
            lines.append(f"Reference answer: {golden[i]}")
        parts.append("\n".join(lines))
    return "\n\n".join(parts)


class Strategy(ABC):
    """One optimization strategy.

    Contract: `first_round()` returns the complete record of round 1; `step(n, history)`
    returns the complete record of round n given every committed round before it (and must
    be resumable from that history alone: any state it needs goes in `RoundRecord.state`).
    Records are returned, never written: the loop commits them. Raise LLMError only for
    system-wide faults; a failed proposal or answer is recorded in the round.
    """

    name: ClassVar[str] = ""
    # Whether --speculate can write its next round's candidate before this round's verdict (`judging`).
    speculates: ClassVar[bool] = True
    # The strategy's options: defaults, bounds and help text in one pydantic model.
    Options: ClassVar[type[BaseModel]] = NoOptions
    # Older flags that set an option (flag → option name), e.g. GPO's --top-k.
    flags: ClassVar[dict[str, str]] = {}

    def __init__(self, ctx: RunContext) -> None:
        self.ctx = ctx
        self.options: Any = self.parse_options(ctx.config.strategy_options)
        self.acceptance = Acceptance(ctx)

    # --- what each strategy defines -------------------------------------------------------
    @abstractmethod
    async def step(self, number: int, history: list[RoundRecord]) -> RoundRecord: ...

    def round_calls(self, first: bool) -> RoundCalls:
        """What one round asks for: round 1 executes the prompt; later rounds write one candidate,
        execute it and compare it once."""
        q = len(self.ctx.template.qa)
        if first:
            return RoundCalls(executor=q)
        return RoundCalls(optimizer=1, executor=q, comparisons=1)

    def estimate_messages(self, base: RoundRecord) -> list[dict[str, str]]:
        """A typical optimizer request for this base round (the estimator sizes its tokens)."""
        return [{"role": "user", "content": base.prompt}]

    @classmethod
    def describe_state(cls, record: RoundRecord) -> StateView | None:
        """How a round's `state` reads in `show --round` and the web UI; None when there is nothing to say."""
        return None

    def should_stop(self, history: list[RoundRecord]) -> str | None:
        """A reason to stop before --max-rounds (e.g. converged), or None."""
        return None

    def ahead_calls(self) -> int:
        """Optimizer calls --speculate writes ahead per round that the round's outcome discards, at
        most (one for the branch not taken); for --dry-run."""
        return 1 if self.speculates else 0

    @classmethod
    def parse_options(cls, raw: Mapping[str, Any]) -> BaseModel:
        """The strategy's options from `RunConfig.strategy_options`; one line naming the option on error."""
        known = set(cls.Options.model_fields)
        for key in raw:
            if key not in known:
                label = option_label(cls, key)
                owners = sorted(n for n, s in STRATEGIES.items() if key in s.Options.model_fields)
                where = f" ({', '.join(owners)} has it)" if owners else ""
                have = f"; its options: {', '.join(sorted(known))}" if known else ""
                raise ConfigError(f"{label}: --strategy {cls.name} has no option {key}{where}{have}")
        try:
            return cls.Options.model_validate(dict(raw))
        except ValidationError as exc:
            err = exc.errors()[0]
            key = str(err["loc"][0]) if err["loc"] else "?"
            raise ConfigError(f"{option_label(cls, key)} {raw.get(key)}: {error_message(err)}") from None

    def render_prompt(self, name: str, **values: object) -> str:
        """A meta-prompt: `<name>.txt` beside the strategy's module if there is one, else promptopt's own."""
        own = Path(inspect.getfile(type(self))).with_name(f"{name}.txt")
        if own.is_file():
            text = own.read_text(encoding="utf-8")
            for key, value in values.items():
                text = text.replace("{" + key + "}", str(value))
            return text
        return prompts.render(name, **values)

    # --- shared behaviour -----------------------------------------------------------------
    def optimizing(self, number: int, branches: Callable[[], list[list[RoundRecord]]]) -> None:
        """Round `number` starts writing its candidate (a strategy calls this instead of the phase event).

        With --speculate, round number+1 starts writing its candidate now for each history in
        `branches()` that is known before this round's candidate exists: after a loss (or a
        failed round) round number+1 starts from the same base. (speculate.py)
        """
        self.ctx.events.phase(number, "optimize")
        self._write_ahead(number, branches, whole_round=True)

    def judging(self, number: int, branches: Callable[[], list[list[RoundRecord]]]) -> None:
        """Round `number` starts judging its candidate (a strategy calls this instead of the phase event).

        With --speculate, round number+1 starts writing its candidate now, for each history in
        `branches()`: the committed history round number+1 would see after a verdict whose next
        request is known exactly. A history that would stop the run is skipped. (speculate.py)
        """
        self.ctx.events.phase(number, "judge")
        self._write_ahead(number, branches, whole_round=False)

    def _write_ahead(self, number: int, branches: Callable[[], list[list[RoundRecord]]], whole_round: bool) -> None:
        speculation = self.ctx.speculation
        if speculation is None or number >= self.ctx.config.max_rounds:
            return
        live = [h for h in branches() if self.should_stop(h) is None]
        speculation.start(self, number + 1, live, whole_round)

    @staticmethod
    def verdicts(history: list[RoundRecord], record: RoundRecord) -> list[list[RoundRecord]]:
        """The two histories after a win/lose verdict on `record`, for strategies whose next round
        depends on nothing else (its votes and score do not reach the next optimizer request)."""
        return [[*history, record.model_copy(update={"succeed": won})] for won in (True, False)]

    def initial_prompt(self) -> str:
        return self.ctx.template.prompt

    async def first_round(self) -> RoundRecord:
        prompt = self.initial_prompt()
        self.ctx.events.phase(1, "execute")
        answers = require_answers(await execute(self.ctx.llm, prompt, self.ctx.questions), "round 1's prompt")
        return RoundRecord(round=1, prompt=prompt, answers=answers, succeed=True, verdict="initial")

    def best(self, history: list[RoundRecord]) -> RoundRecord:
        """SPO's greedy chain: the newest round that won (round 1 always counts)."""
        return best_round(history)

    async def answers_for(self, record: RoundRecord) -> list[AnswerRecord]:
        """The record's answers when they are for today's questions; else run its prompt again."""
        if [a.question.strip() for a in record.answers] == [q.strip() for q in self.ctx.questions] and all(
            a.error is None for a in record.answers
        ):
            return record.answers
        answers = await execute(self.ctx.llm, record.prompt, self.ctx.questions)
        return require_answers(answers, f"round {record.round}'s prompt")

    async def base_for_step(self, history: list[RoundRecord]) -> RoundRecord:
        """The shared start of a step: the best round, with answers to today's questions.

        Its answers are re-run when the questions changed or some had failed; when every one of
        them fails, the run stops (a candidate judged against no answers would win for nothing).
        """
        base = self.best(history)
        answers = await self.answers_for(base)
        return base if answers is base.answers else base.model_copy(update={"answers": answers})

    async def propose(
        self,
        messages: list[dict[str, str]],
        number: int,
        unchanged: str | None = None,
        slot: int = 0,
        parse: Callable[[str], str | None] = parse_prompt,
        what: str = "<prompt>",
        shape: Shape = OPTIMIZER,
    ) -> Proposal:
        """Ask the optimizer for a <prompt> (or what `parse` extracts); retry (bounded) on a
        missing, empty or unchanged one. A candidate that copies an example question or reference
        answer (engine/leak.py) is sent back once with a note; a second leak rejects the proposal.

        The cache sample is keyed by round, slot and attempt: a round that repeats an earlier
        round's request still gets a fresh candidate, and a resumed round gets the same one.
        """
        attempts = self.ctx.config.optimizer_attempts
        last_error = "no reply"
        analysis = modification = None
        warned: Leak | None = None
        attempt = calls = 0
        while attempt < attempts:
            try:
                sample = number * 1000 + slot * 10 + attempt
                calls += 1
                reply = await self.ctx.llm.complete("optimizer", messages, sample=sample, shape=shape)
            except LLMError as exc:
                if not exc.retryable:
                    raise
                # The client already retried the transport --max-attempts times: asking again for
                # a better-formed reply would multiply them. Format retries are for bad replies only.
                return Proposal(None, analysis, modification, error=str(exc), attempts=calls)
            analysis = extract_tag(reply.text, "analyse") or extract_tag(reply.text, "analysis")
            modification = extract_tag(reply.text, "modification")
            prompt = parse(reply.text)
            attempt += 1
            if prompt is None:
                last_error = f"reply had no usable {what}"
                continue
            if unchanged is not None and " ".join(prompt.split()) == " ".join(unchanged.split()):
                last_error = "reply repeated the current text unchanged"
                continue
            leak = self.leak(prompt, unchanged)
            if leak is not None and warned is None:
                # One more ask with a note, outside the attempt budget (its messages differ, so
                # the same cache sample is a different request).
                warned, attempt = leak, attempt - 1
                note = prompts.render("leak_note", source=leak.source, excerpt=leak.excerpt)
                messages = [*messages, {"role": "assistant", "content": reply.text}, {"role": "user", "content": note}]
                continue
            if leak is not None:
                error = f"{leak.describe()}, again after a reminder"
                return Proposal(None, analysis, modification, error=error, attempts=calls, leak=leak)
            return Proposal(prompt, analysis, modification, attempts=calls)
        return Proposal(
            None, analysis, modification, error=f"optimizer: {last_error} ({calls} attempts)", attempts=calls
        )

    def leak(self, candidate: str, current: str | None) -> Leak | None:
        """Whether `candidate` copies an example question or reference answer (see engine/leak.py)."""
        t = self.ctx.template
        allowed = [t.prompt, t.requirements, current or ""]
        return find_leak(candidate, self.ctx.questions, t.golden, allowed)


@dataclass
class OptionField:
    """One strategy option as a form shows it (the web UI builds its fields from these)."""

    name: str
    kind: str  # "int" | "float" | "choice" | "text"
    default: Any
    help: str = ""
    low: float | None = None
    high: float | None = None
    choices: tuple[str, ...] = ()


def option_fields(cls: type[Strategy]) -> list[OptionField]:
    """The strategy's options model read as form fields: type, default, bounds, choices, help."""
    fields = []
    for name, info in cls.Options.model_fields.items():
        low = next((float(m.ge) for m in info.metadata if getattr(m, "ge", None) is not None), None)
        high = next((float(m.le) for m in info.metadata if getattr(m, "le", None) is not None), None)
        annotation = info.annotation
        choices = tuple(str(c) for c in get_args(annotation)) if get_origin(annotation) is Literal else ()
        kind = "choice" if choices else {int: "int", float: "float"}.get(annotation, "text")  # type: ignore[arg-type]
        default = info.default
        if isinstance(default, tuple):
            default = ":".join(str(x) for x in default)
        fields.append(OptionField(name, kind, default, info.description or "", low, high, choices))
    return fields


def option_label(cls: type[Strategy], key: str) -> str:
    """How the user set an option: its older flag (--top-k) or --option key."""
    flag = next((f for f, name in cls.flags.items() if name == key), None)
    return flag or f"--option {key}"


def count_rule(count: int | None) -> str:
    """The word-limit rule every optimizer prompt states."""
    if count is None:
        return "4. There is no word limit on the prompt, but every sentence must earn its place."
    return f"4. The revised prompt must be at most {count} words long."


STRATEGIES: dict[str, type[Strategy]] = {}


def register(cls: type[Strategy]) -> type[Strategy]:
    STRATEGIES[cls.name] = cls
    return cls


def get_strategy(name: str) -> type[Strategy]:
    from promptopt.engine import strategies  # noqa: F401 - fills the registry

    try:
        return STRATEGIES[name]
    except KeyError:
        raise ConfigError(f"--strategy {name}: unknown (choose from {', '.join(sorted(STRATEGIES))})") from None
