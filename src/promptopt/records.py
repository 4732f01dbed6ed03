"""What a run records: answers, votes, usage and rounds. Storage, the LLM boundary and the engine share them.

Every model here reads tolerantly (`extra="allow"`): results.json written by older versions or by
MetaGPT's SPO loads as it is.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Verdict = Literal["initial", "win", "lose", "failed", "accepted", "rejected"]


class AnswerRecord(BaseModel):
    model_config = ConfigDict(extra="allow", defer_build=True)

    question: str = ""
    answer: str = ""
    error: str | None = None


class VoteRecord(BaseModel):
    """One judge call. Votes come in pairs: the same comparison shown both ways (`pair` numbers
    them; `swapped` is the order: the candidate shown as A). `question` is set when the vote
    judged one question alone (the confirmation gate, `compare`)."""

    model_config = ConfigDict(extra="allow", defer_build=True)

    winner: Literal["candidate", "base", "abstain"]
    swapped: bool = False
    choice: str | None = None
    analysis: str = ""
    error: str | None = None
    pair: int | None = None
    question: int | None = None

    @property
    def mark(self) -> str:
        return VOTE_MARKS[self.winner]


# A vote's mark in round lines and `show`: for the candidate, for the base, abstained.
VOTE_MARKS = {"candidate": "✓", "base": "✗", "abstain": "·"}
VOTE_LEGEND = "✓ a vote for the candidate, ✗ for the base (the best prompt so far), · abstained"


class RoleUsage(BaseModel):
    model_config = ConfigDict(extra="allow", defer_build=True)

    calls: int = 0
    cached: int = 0
    failed: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    unpriced: bool = False
    seconds: float = 0.0

    def add(self, other: RoleUsage) -> RoleUsage:
        return RoleUsage(
            calls=self.calls + other.calls,
            cached=self.cached + other.cached,
            failed=self.failed + other.failed,
            prompt_tokens=self.prompt_tokens + other.prompt_tokens,
            completion_tokens=self.completion_tokens + other.completion_tokens,
            cost_usd=self.cost_usd + other.cost_usd,
            unpriced=self.unpriced or other.unpriced,
            seconds=self.seconds + other.seconds,
        )


class RoundRecord(BaseModel):
    """One entry of prompts/results.json: SPO's keys first, then ours (all optional)."""

    model_config = ConfigDict(extra="allow", defer_build=True)

    round: int
    answers: list[AnswerRecord] = Field(default_factory=list)
    prompt: str = ""
    succeed: bool = False
    tokens: int = 0
    time: str = ""
    base_round: int | None = None
    verdict: Verdict | None = None
    votes: list[VoteRecord] = Field(default_factory=list)
    # How strong the decision was, in words: "3 pairs to 0, p=0.12", "accuracy 0.67 vs 0.33".
    decision: str | None = None
    modification: str | None = None
    analysis: str | None = None
    error: str | None = None
    usage: dict[str, RoleUsage] = Field(default_factory=dict)
    cost_usd: float = 0.0
    duration_s: float | None = None
    models: dict[str, str] = Field(default_factory=dict)
    strategy: str | None = None
    score: float | None = None
    state: dict[str, Any] = Field(default_factory=dict)
    # The run's own seed (sampled calls are cached under it): a resume reuses it.
    seed: int | None = None

    @property
    def wins(self) -> int:
        return sum(v.winner == "candidate" for v in self.votes)

    @property
    def losses(self) -> int:
        return sum(v.winner == "base" for v in self.votes)

    @property
    def vote_marks(self) -> str:
        return "".join(v.mark for v in self.votes)

    @property
    def total_usage(self) -> RoleUsage:
        return sum_usage(self.usage)


def sum_usage(usage: dict[str, RoleUsage]) -> RoleUsage:
    """All roles' usage added up."""
    total = RoleUsage()
    for u in usage.values():
        total = total.add(u)
    return total


def best_round(records: list[RoundRecord]) -> RoundRecord:
    """SPO's greedy chain: the newest round that won (round 1 always counts)."""
    for record in reversed(records):
        if record.succeed or record.round == 1:
            return record
    return records[0]


def now_string() -> str:
    return str(dt.datetime.now())


class GateRecord(BaseModel):
    """The confirmation gate of a run (`<run>/gate.json`): was the best prompt better than the user's own?

    `outcome`: confirmed | not confirmed | not needed (round 1 is the best) | skipped (--no-confirm).
    `key` names what it judged (the best round's prompt, the questions, the rule): a resume whose
    best prompt changed, or a changed template, runs the gate again; otherwise it is reused.
    """

    model_config = ConfigDict(extra="allow", defer_build=True)

    outcome: Literal["confirmed", "not confirmed", "not needed", "skipped"]
    best_round: int
    initial_round: int = 1
    key: str = ""
    method: Literal["judge", "metric", "none"] = "none"
    alpha: float = 0.05
    level: float | None = None  # the per-look p-value bar that keeps the gate's error ≤ alpha
    wins: int = 0  # pairs (or held-out questions with the metric) for the best prompt
    losses: int = 0
    ties: int = 0
    p_value: float | None = None
    questions: int = 0
    holdout: int = 0
    accuracy: float | None = None  # with a metric: the best prompt's held-out (else template) accuracy
    initial_accuracy: float | None = None
    reason: str = ""
    votes: list[VoteRecord] = Field(default_factory=list)

    @property
    def confirmed(self) -> bool:
        return self.outcome in ("confirmed", "not needed", "skipped")


def confirmed_round(records: list[RoundRecord], best: RoundRecord, gate: GateRecord | None) -> RoundRecord:
    """`best` unless a gate judged it and did not confirm it: then round 1, the user's own prompt."""
    if gate is not None and gate.best_round == best.round and not gate.confirmed:
        return records[0]
    return best
