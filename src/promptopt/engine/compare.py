"""`compare A B`: run two prompts on the same questions, judge each question in pairs, and say how sure.

B plays the candidate and A the base, so a pair "for the candidate" is a pair for B. Overall:
B's win rate over decisive pairs with a 95% Wilson interval and a two-sided exact sign test over
pairs (pairs on one question are not independent for a real judge: more questions, not more
votes, make the test honest). With a metric, each side's accuracy with a 95% interval and an
exact McNemar test on the paired correctness decide instead.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from promptopt.engine import judge as judging
from promptopt.engine.acceptance import Tally, correct_marks
from promptopt.engine.concurrency import gather_ordered
from promptopt.engine.execute import execute
from promptopt.engine.stats import mcnemar, two_sided_sign_test, wilson
from promptopt.events import Events
from promptopt.llm import LLM
from promptopt.records import AnswerRecord, VoteRecord

Verdict = Literal["B better", "A better", "no significant difference"]


@dataclass
class QuestionVerdict:
    question: str
    answer_a: AnswerRecord
    answer_b: AnswerRecord
    votes: list[VoteRecord]
    a_correct: bool | None = None
    b_correct: bool | None = None

    @property
    def tally(self) -> Tally:
        return Tally.of(self.votes)

    @property
    def b_votes(self) -> int:
        return sum(v.winner == "candidate" for v in self.votes)

    @property
    def a_votes(self) -> int:
        return sum(v.winner == "base" for v in self.votes)

    @property
    def verdict(self) -> str:
        """'B' or 'A' when more pairs agreed on it, else 'tie'."""
        t = self.tally
        return "B" if t.wins > t.losses else "A" if t.losses > t.wins else "tie"

    @property
    def verdict_label(self) -> str:
        return {"B": "B better", "A": "A better", "tie": "tie"}[self.verdict]

    @property
    def marks(self) -> str:
        return "".join(v.mark for v in self.votes)


@dataclass
class CompareResult:
    a_prompt: str
    b_prompt: str
    questions: list[QuestionVerdict]
    metric: str | None = None
    calls: int = 0
    cost_usd: float = 0.0
    unpriced: bool = False
    usage: dict[str, object] = field(default_factory=dict)
    seed: int | None = None
    alpha: float = 0.05
    a_label: str = "A"
    b_label: str = "B"

    @property
    def b_wins(self) -> int:
        return sum(q.verdict == "B" for q in self.questions)

    @property
    def a_wins(self) -> int:
        return sum(q.verdict == "A" for q in self.questions)

    @property
    def ties(self) -> int:
        return sum(q.verdict == "tie" for q in self.questions)

    @property
    def pairs(self) -> Tally:
        """Every pair over every question: for B (wins), for A (losses), tied."""
        t = Tally()
        for q in self.questions:
            one = q.tally
            t.wins, t.losses, t.ties = t.wins + one.wins, t.losses + one.losses, t.ties + one.ties
        return t

    @property
    def win_rate(self) -> float:
        """B's share of the decisive pairs (0.5 when none was decisive)."""
        t = self.pairs
        return t.wins / (t.wins + t.losses) if t.wins + t.losses else 0.5

    @property
    def win_rate_ci(self) -> tuple[float, float]:
        t = self.pairs
        return wilson(t.wins, t.wins + t.losses)

    @property
    def p_value(self) -> float:
        """Two-sided exact sign test over decisive pairs."""
        t = self.pairs
        return two_sided_sign_test(t.wins, t.losses)

    def _marks(self, side: str) -> list[bool]:
        return [m for q in self.questions if (m := (q.a_correct if side == "a" else q.b_correct)) is not None]

    @property
    def a_accuracy(self) -> float | None:
        marks = self._marks("a")
        return sum(marks) / len(marks) if marks else None

    @property
    def b_accuracy(self) -> float | None:
        marks = self._marks("b")
        return sum(marks) / len(marks) if marks else None

    def accuracy_ci(self, side: str) -> tuple[float, float] | None:
        marks = self._marks(side)
        return wilson(sum(marks), len(marks)) if marks else None

    @property
    def discordant(self) -> tuple[int, int]:
        """(questions only A got right, only B got right)."""
        both = [(q.a_correct, q.b_correct) for q in self.questions if None not in (q.a_correct, q.b_correct)]
        return sum(1 for a, b in both if a and not b), sum(1 for a, b in both if b and not a)

    @property
    def mcnemar_p(self) -> float | None:
        if not self.metric or self.a_accuracy is None:
            return None
        return mcnemar(*self.discordant)

    @property
    def decided_by(self) -> Literal["metric", "judge"]:
        return "metric" if self.mcnemar_p is not None else "judge"

    @property
    def verdict(self) -> Verdict:
        """At `alpha`, two-sided: the metric decides when there is one, else the judge's pairs."""
        if self.decided_by == "metric":
            only_a, only_b = self.discordant
            p, b_ahead, a_ahead = self.mcnemar_p or 1.0, only_b > only_a, only_a > only_b
        else:
            t = self.pairs
            p, b_ahead, a_ahead = self.p_value, t.wins > t.losses, t.losses > t.wins
        if p <= self.alpha and b_ahead:
            return "B better"
        if p <= self.alpha and a_ahead:
            return "A better"
        return "no significant difference"

    @property
    def b_better(self) -> bool:
        return self.verdict == "B better"

    @property
    def a_better(self) -> bool:
        return self.verdict == "A better"


async def compare_prompts(
    llm: LLM,
    a_prompt: str,
    b_prompt: str,
    questions: list[str],
    golden: list[str | None],
    requirements: str,
    votes: int = 2,
    metric: str | None = None,
    events: Events | None = None,
) -> CompareResult:
    """Execute A and B concurrently, then `votes` judge calls per question, in pairs of both orders."""
    events = events or Events()
    events.phase(0, "execute")
    answers_a, answers_b = await gather_ordered([execute(llm, a_prompt, questions), execute(llm, b_prompt, questions)])
    events.phase(0, "judge")
    whole = judging.Comparison(requirements, questions, golden, answers_a, answers_b)
    verdicts = await gather_ordered(
        judging.votes(llm, judging.one_question(whole, i), range(votes)) for i in range(len(questions))
    )
    rows = [QuestionVerdict(q, answers_a[i], answers_b[i], verdicts[i]) for i, q in enumerate(questions)]
    if metric:
        from promptopt.engine.metrics import get_metric

        score = get_metric(metric)
        marks_a = correct_marks(answers_a, golden, score)
        marks_b = correct_marks(answers_b, golden, score)
        for i, row in enumerate(rows):
            row.a_correct, row.b_correct = marks_a[i], marks_b[i]
    return CompareResult(a_prompt, b_prompt, rows, metric=metric)
