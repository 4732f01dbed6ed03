"""Score a candidate prompt's answers against the current best's: metric accuracy or judge votes.

Two kinds of score, chosen per template:
- ground truth: the template has a `metric` and reference answers; the score is the share of
  referenced questions answered correctly (a failed answer is wrong). No judge call.
- self-supervised: the share of valid judge votes the candidate wins against the current best
  (SPO-style pairwise judging); a prompt compared with itself would score SELF_SCORE.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from promptopt.engine.judge import Verdict, judge
from promptopt.engine.metrics import Metric, get_metric
from promptopt.records import AnswerRecord, VoteRecord

if TYPE_CHECKING:
    from promptopt.engine.strategies.base import RunContext

# A prompt judged against itself ties: half the votes. The reference score of the current best.
SELF_SCORE = 0.5

# "improve": the candidate must do strictly better (GPO, Dual-Phase).
# "spo": the judge must prefer it, and with a metric its accuracy must not be lower.
Rule = Literal["improve", "spo"]
Compare = Callable[[list[AnswerRecord], list[AnswerRecord]], Awaitable[Verdict]]


@dataclass
class Score:
    """How a candidate fared against the current best."""

    score: float
    beats_current: bool
    kind: Literal["accuracy", "votes"]
    accuracy: float | None = None
    base_accuracy: float | None = None
    votes: list[VoteRecord] = field(default_factory=list)
    verdict: Verdict | None = None

    @property
    def base_score(self) -> float:
        """The current best's score on the same scale (the bar the candidate had to clear)."""
        if self.kind == "accuracy" and self.base_accuracy is not None:
            return self.base_accuracy
        return SELF_SCORE


def correct_marks(answers: list[AnswerRecord], golden: list[str | None], metric: Metric) -> list[bool | None]:
    """Per question: right or wrong against its reference; None where there is no reference."""
    marks: list[bool | None] = []
    for i, gold in enumerate(golden):
        if gold is None:
            marks.append(None)
            continue
        item = answers[i] if i < len(answers) else None
        marks.append(item is not None and item.error is None and metric(item.answer, gold))
    return marks


def accuracy_of(answers: list[AnswerRecord], golden: list[str | None], metric: Metric) -> float | None:
    """Share of referenced questions answered correctly; None when no question has a reference."""
    marks = [m for m in correct_marks(answers, golden, metric) if m is not None]
    return sum(marks) / len(marks) if marks else None


def vote_share(verdict: Verdict) -> float:
    """Wins over valid (non-abstaining) votes; 0 when every vote abstained."""
    valid = verdict.wins + verdict.losses
    return verdict.wins / valid if valid else 0.0


class Scorer:
    """The one place strategies turn a candidate's answers into a score and an acceptance."""

    def __init__(self, ctx: RunContext, compare: Compare | None = None) -> None:
        self.ctx = ctx
        # Strategies pass their own `compare` so a strategy that changes judging changes scoring too.
        self.compare: Compare = compare or self._judge
        template = ctx.template
        # A metric needs real answers to compare with; without any, fall back to the judge.
        self.metric: Metric | None = get_metric(template.metric) if template.metric and template.has_answers else None

    @property
    def kind(self) -> Literal["accuracy", "votes"]:
        return "accuracy" if self.metric else "votes"

    def accuracy(self, answers: list[AnswerRecord]) -> float | None:
        if self.metric is None:
            return None
        return accuracy_of(answers, self.ctx.template.golden, self.metric)

    def initial_score(self, answers: list[AnswerRecord]) -> float:
        """A starting prompt's own score: its accuracy, or SELF_SCORE without a metric."""
        acc = self.accuracy(answers)
        return acc if acc is not None else SELF_SCORE

    def nothing_to_gain(self, best_score: float | None) -> str | None:
        """A stop reason when strict improvement is impossible: full accuracy under a metric."""
        if self.metric is not None and best_score is not None and best_score >= 1.0:
            return "the best prompt answers every referenced question correctly (accuracy 1.00)"
        return None

    async def _judge(self, base: list[AnswerRecord], candidate: list[AnswerRecord]) -> Verdict:
        t = self.ctx.template
        questions = [q.question for q in t.qa]
        return await judge(self.ctx.llm, t.requirements, questions, t.golden, base, candidate, self.ctx.config.votes)

    async def score(self, base: list[AnswerRecord], candidate: list[AnswerRecord], rule: Rule = "improve") -> Score:
        """Compare `candidate` with the current best's answers `base` under `rule`.

        "improve": with a metric, accuracy strictly above the base's (no judge call); without,
        the judge's verdict (strictly more wins than losses among enough valid votes).
        "spo": the judge always runs; with a metric the candidate must also not lose accuracy.
        """
        acc = self.accuracy(candidate)
        base_acc = self.accuracy(base)
        if rule == "improve" and acc is not None and base_acc is not None:
            return Score(acc, acc > base_acc, "accuracy", acc, base_acc)
        verdict = await self.compare(base, candidate)
        if acc is not None and base_acc is not None:
            beats = verdict.candidate_wins and acc >= base_acc
            return Score(acc, beats, "accuracy", acc, base_acc, verdict.votes, verdict)
        share = vote_share(verdict)
        return Score(share, verdict.candidate_wins, "votes", votes=verdict.votes, verdict=verdict)
