"""`compare A B`: run two prompts on the same questions and judge each question pairwise."""

from __future__ import annotations

from dataclasses import dataclass, field

from promptopt.engine.concurrency import gather_ordered
from promptopt.engine.execute import execute
from promptopt.engine.judge import judge
from promptopt.llm import LLM
from promptopt.records import AnswerRecord, VoteRecord


@dataclass
class QuestionVerdict:
    question: str
    answer_a: AnswerRecord
    answer_b: AnswerRecord
    votes: list[VoteRecord]
    a_correct: bool | None = None
    b_correct: bool | None = None

    @property
    def b_votes(self) -> int:
        return sum(v.winner == "candidate" for v in self.votes)

    @property
    def a_votes(self) -> int:
        return sum(v.winner == "base" for v in self.votes)

    @property
    def verdict(self) -> str:
        return "B" if self.b_votes > self.a_votes else "A" if self.a_votes > self.b_votes else "tie"

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
    def win_rate(self) -> float:
        b = sum(q.b_votes for q in self.questions)
        a = sum(q.a_votes for q in self.questions)
        return b / (a + b) if a + b else 0.0

    @property
    def a_accuracy(self) -> float | None:
        marks = [q.a_correct for q in self.questions if q.a_correct is not None]
        return sum(marks) / len(marks) if marks else None

    @property
    def b_accuracy(self) -> float | None:
        marks = [q.b_correct for q in self.questions if q.b_correct is not None]
        return sum(marks) / len(marks) if marks else None

    @property
    def b_better(self) -> bool:
        """B beats A: higher accuracy when a metric decides, else more questions won."""
        a, b = self.a_accuracy, self.b_accuracy
        if self.metric and a is not None and b is not None and a != b:
            return b > a
        return self.b_wins > self.a_wins


async def compare_prompts(
    llm: LLM,
    a_prompt: str,
    b_prompt: str,
    questions: list[str],
    golden: list[str | None],
    requirements: str,
    votes: int = 2,
    metric: str | None = None,
) -> CompareResult:
    """Execute A and B concurrently, then `votes` balanced judge calls per question."""
    answers_a, answers_b = await gather_ordered([execute(llm, a_prompt, questions), execute(llm, b_prompt, questions)])
    verdicts = await gather_ordered(
        judge(llm, requirements, [q], [golden[i]], [answers_a[i]], [answers_b[i]], votes)
        for i, q in enumerate(questions)
    )
    rows = [QuestionVerdict(q, answers_a[i], answers_b[i], verdicts[i].votes) for i, q in enumerate(questions)]
    if metric:
        from promptopt.engine.metrics import get_metric
        from promptopt.engine.scoring import correct_marks

        score = get_metric(metric)
        marks_a = correct_marks(answers_a, golden, score)
        marks_b = correct_marks(answers_b, golden, score)
        for i, row in enumerate(rows):
            row.a_correct, row.b_correct = marks_a[i], marks_b[i]
    return CompareResult(a_prompt, b_prompt, rows, metric=metric)
