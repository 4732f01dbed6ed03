"""Pairwise judging: votes in pairs (the same comparison shown both ways), and what they say of the judge.

A vote is one judge call; vote `i` belongs to pair `i // 2` and shows the candidate as A when
`i` is odd. The cache sample of vote `i` is `i` (plus the question's offset when one question
is judged alone), so a resumed or repeated comparison pays for no vote twice.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from promptopt import prompts
from promptopt.engine.concurrency import gather_ordered
from promptopt.engine.parse import extract_tag, parse_choice
from promptopt.errors import LLMError
from promptopt.llm import LLM
from promptopt.records import AnswerRecord, VoteRecord
from promptopt.shapes import JUDGE

FAILED = "(no answer: the model call failed)"


def answer_text(item: AnswerRecord) -> str:
    """An answer as a model should see it: failed calls and empty replies are said so."""
    return FAILED if item.error is not None else (item.answer.strip() or "(empty answer)")


def comparison_block(
    questions: Sequence[str],
    golden: Sequence[str | None],
    first: Sequence[AnswerRecord],
    second: Sequence[AnswerRecord],
) -> str:
    """Each question once, with its reference and both answers: nothing repeated."""
    parts = []
    for i, question in enumerate(questions):
        lines = [f"### Question {i + 1}", question.strip()]
        if golden[i]:
            lines.append(f"Reference answer: {golden[i]}")
        lines.append(f"A: {answer_text(first[i])}")
        lines.append(f"B: {answer_text(second[i])}")
        parts.append("\n".join(lines))
    return "\n\n".join(parts)


# The same judging instructions in other words. The gate's repeated passes use the next one, so a
# judge whose verdict is a fixed function of the request (temperature 0) gives a fresh look each pass
# instead of a copy counted again as evidence.
VIEWS = ("judge", "judge_view2", "judge_view3", "judge_view4")


def judge_messages(requirements: str, comparison: str, view: int = 0) -> list[dict[str, str]]:
    content = prompts.render(
        VIEWS[view % len(VIEWS)], requirements=requirements.strip() or "(none given)", comparison=comparison
    )
    return [{"role": "user", "content": content}]


@dataclass
class Comparison:
    """Base and candidate answers to the same questions, as the judge sees them."""

    requirements: str
    questions: Sequence[str]
    golden: Sequence[str | None]
    base: Sequence[AnswerRecord]
    candidate: Sequence[AnswerRecord]
    question: int | None = None  # set when this compares one question alone (its index)
    view: int = 0  # which wording of the judging instructions (VIEWS)

    def messages(self, swapped: bool) -> list[dict[str, str]]:
        first, second = (self.candidate, self.base) if swapped else (self.base, self.candidate)
        return judge_messages(
            self.requirements, comparison_block(self.questions, self.golden, first, second), self.view
        )


def one_question(comparison: Comparison, index: int, view: int = 0) -> Comparison:
    """The comparison of question `index` alone (for judging per question), in wording `view`."""
    c = comparison
    return Comparison(
        c.requirements, [c.questions[index]], [c.golden[index]], [c.base[index]], [c.candidate[index]], index, view
    )


async def _vote(llm: LLM, comparison: Comparison, index: int, sample: int) -> VoteRecord:
    swapped = index % 2 == 1
    vote = VoteRecord(winner="abstain", swapped=swapped, pair=index // 2, question=comparison.question)
    try:
        reply = await llm.complete("evaluator", comparison.messages(swapped), sample=sample, shape=JUDGE)
    except LLMError as exc:
        if not exc.retryable:
            raise
        vote.error = str(exc)
        return vote
    choice = parse_choice(reply.text)
    vote.analysis = extract_tag(reply.text, "analyse") or extract_tag(reply.text, "analysis") or ""
    if choice is None:
        vote.error = "unparsable vote: no <choose>A|B</choose>"
        return vote
    # Unswapped: base is A, candidate is B. Swapped: candidate is A.
    vote.winner = "candidate" if choice == ("A" if swapped else "B") else "base"
    vote.choice = choice
    return vote


async def votes(llm: LLM, comparison: Comparison, indices: Iterable[int], offset: int = 0) -> list[VoteRecord]:
    """The votes with these indices, concurrently; an unparsable or failed vote abstains."""
    return await gather_ordered(_vote(llm, comparison, i, offset + i) for i in indices)
