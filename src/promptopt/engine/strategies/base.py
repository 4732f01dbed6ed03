"""The strategy base class, its shared steps, and the name registry."""

from __future__ import annotations

import random
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from promptopt.config import RunConfig
from promptopt.engine.execute import execute
from promptopt.engine.judge import Verdict, answer_text, judge
from promptopt.engine.parse import extract_tag, parse_prompt
from promptopt.errors import ConfigError, LLMError
from promptopt.events import Events
from promptopt.llm import LLM
from promptopt.records import AnswerRecord, RoundRecord, best_round
from promptopt.template import Template


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


@dataclass
class CallEstimate:
    """Calls per role for one round of a strategy (used by --dry-run and the docs)."""

    optimizer: int = 0
    executor: int = 0
    evaluator: int = 0

    def as_dict(self) -> dict[str, int]:
        return {"optimizer": self.optimizer, "executor": self.executor, "evaluator": self.evaluator}


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
    ) -> Proposal:
        """Ask the optimizer for a <prompt> (or what `parse` extracts); retry (bounded) on a
        missing, empty or unchanged one.

        The cache sample is keyed by round, slot and attempt: a round that repeats an earlier
        round's request still gets a fresh candidate, and a resumed round gets the same one.
        """
        attempts = self.ctx.config.optimizer_attempts
        last_error = "no reply"
        analysis = modification = None
        for attempt in range(attempts):
            try:
                sample = number * 1000 + slot * 10 + attempt
                reply = await self.ctx.llm.complete("optimizer", messages, sample=sample)
            except LLMError as exc:
                if not exc.retryable:
                    raise
                # The client already retried the transport --max-attempts times: asking again for
                # a better-formed reply would multiply them. Format retries are for bad replies only.
                return Proposal(None, analysis, modification, error=str(exc), attempts=attempt + 1)
            analysis = extract_tag(reply.text, "analyse") or extract_tag(reply.text, "analysis")
            modification = extract_tag(reply.text, "modification")
            prompt = parse(reply.text)
            if prompt is None:
                last_error = f"reply had no usable {what}"
                continue
            if unchanged is not None and " ".join(prompt.split()) == " ".join(unchanged.split()):
                last_error = "reply repeated the current text unchanged"
                continue
            return Proposal(prompt, analysis, modification, attempts=attempt + 1)
        return Proposal(
            None, analysis, modification, error=f"optimizer: {last_error} ({attempts} attempts)", attempts=attempts
        )

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
