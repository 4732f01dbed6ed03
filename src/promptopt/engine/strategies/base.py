"""The strategy base class, its shared steps, and the name registry."""

from __future__ import annotations

import random
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from promptopt import prompts
from promptopt.config import RunConfig
from promptopt.engine.execute import execute
from promptopt.engine.judge import Verdict, answer_text, judge
from promptopt.engine.leak import Leak, find_leak
from promptopt.engine.parse import extract_tag, parse_prompt
from promptopt.errors import ConfigError, LLMError
from promptopt.events import Events
from promptopt.llm import LLM
from promptopt.shapes import OPTIMIZER, Shape
from promptopt.template import Template
from promptopt.workspace import AnswerRecord, RoundRecord, best_round


@dataclass
class RunContext:
    """What a strategy may use: passed in, never global."""

    template: Template
    config: RunConfig
    llm: LLM
    events: Events = field(default_factory=Events)
    rng: random.Random = field(default_factory=lambda: random.Random(0))

    @property
    def questions(self) -> list[str]:
        return [q.question for q in self.template.qa]


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
class CallEstimate:
    """Calls per role for one round of a strategy (used by --dry-run and the docs)."""

    optimizer: int = 0
    executor: int = 0
    evaluator: int = 0

    def as_dict(self) -> dict[str, int]:
        return {"optimizer": self.optimizer, "executor": self.executor, "evaluator": self.evaluator}


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

    def __init__(self, ctx: RunContext) -> None:
        self.ctx = ctx

    # --- what each strategy defines -------------------------------------------------------
    @abstractmethod
    async def step(self, number: int, history: list[RoundRecord]) -> RoundRecord: ...

    @classmethod
    def calls_per_round(cls, questions: int, votes: int, options: dict[str, Any]) -> CallEstimate:
        """Model calls of one round after the first (the --dry-run formula)."""
        return CallEstimate(optimizer=1, executor=questions, evaluator=votes)

    @classmethod
    def first_round_calls(cls, questions: int, options: dict[str, Any]) -> CallEstimate:
        return CallEstimate(executor=questions)

    def should_stop(self, history: list[RoundRecord]) -> str | None:
        """A reason to stop before --max-rounds (e.g. converged), or None."""
        return None

    # --- shared behaviour -----------------------------------------------------------------
    def initial_prompt(self) -> str:
        return self.ctx.template.prompt

    async def first_round(self) -> RoundRecord:
        prompt = self.initial_prompt()
        self.ctx.events.phase(1, "execute")
        answers = await execute(self.ctx.llm, prompt, self.ctx.questions)
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
        return await execute(self.ctx.llm, record.prompt, self.ctx.questions)

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
                last_error = str(exc)
                attempt += 1
                continue
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

    async def compare(self, base: list[AnswerRecord], candidate: list[AnswerRecord]) -> Verdict:
        t = self.ctx.template
        return await judge(
            self.ctx.llm, t.requirements, self.ctx.questions, t.golden, base, candidate, self.ctx.config.votes
        )


def number_option(
    options: Mapping[str, Any],
    key: str,
    default: float,
    low: float,
    high: float,
    whole: bool = False,
    flag: str | None = None,
) -> float:
    """A numeric strategy option, checked against its range; errors name the flag."""
    name = flag or f"strategy option {key}"
    value = options.get(key)
    if value is None:
        return default
    try:
        number = float(value)
        if whole and number != int(number):
            raise ValueError
    except (TypeError, ValueError):
        raise ConfigError(f"{name} {value}: expected a {'whole number' if whole else 'number'}") from None
    if not low <= number <= high:
        raise ConfigError(f"{name} {number:g}: must be between {low:g} and {high:g}")
    return int(number) if whole else number


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
