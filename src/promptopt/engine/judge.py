"""Pairwise judging of two answer sets with balanced A/B swaps."""

from __future__ import annotations

from dataclasses import dataclass

from promptopt import prompts
from promptopt.engine.concurrency import gather_ordered
from promptopt.engine.parse import extract_tag, parse_choice
from promptopt.errors import LLMError
from promptopt.llm import LLM
from promptopt.shapes import JUDGE
from promptopt.workspace import AnswerRecord, VoteRecord

FAILED = "(no answer: the model call failed)"


def answer_text(item: AnswerRecord) -> str:
    """An answer as a model should see it: failed calls and empty replies are said so."""
    return FAILED if item.error is not None else (item.answer.strip() or "(empty answer)")


def comparison_block(
    questions: list[str], golden: list[str | None], first: list[AnswerRecord], second: list[AnswerRecord]
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


def judge_messages(requirements: str, comparison: str) -> list[dict[str, str]]:
    content = prompts.render("judge", requirements=requirements.strip() or "(none given)", comparison=comparison)
    return [{"role": "user", "content": content}]


def swap_plan(votes: int) -> list[bool]:
    """Balanced, not random: votes alternate unswapped/swapped (candidate as B, then as A)."""
    return [i % 2 == 1 for i in range(votes)]


@dataclass
class Verdict:
    votes: list[VoteRecord]
    wins: int
    losses: int
    abstained: int
    min_valid: int

    @property
    def candidate_wins(self) -> bool:
        """Strictly more wins than losses among enough valid votes."""
        valid = self.wins + self.losses
        return valid >= self.min_valid and self.wins > self.losses


def min_valid_votes(votes: int) -> int:
    return max(1, (votes + 1) // 2)


async def _vote(llm: LLM, messages: list[dict[str, str]], swapped: bool, sample: int) -> VoteRecord:
    try:
        reply = await llm.complete("evaluator", messages, sample=sample, shape=JUDGE)
    except LLMError as exc:
        if not exc.retryable:
            raise
        return VoteRecord(winner="abstain", swapped=swapped, error=str(exc))
    choice = parse_choice(reply.text)
    analysis = extract_tag(reply.text, "analyse") or extract_tag(reply.text, "analysis") or ""
    if choice is None:
        return VoteRecord(
            winner="abstain", swapped=swapped, analysis=analysis, error="unparsable vote: no <choose>A|B</choose>"
        )
    # Unswapped: base is A, candidate is B. Swapped: candidate is A.
    candidate_letter = "A" if swapped else "B"
    if choice == candidate_letter:
        return VoteRecord(winner="candidate", swapped=swapped, choice=choice, analysis=analysis)
    return VoteRecord(winner="base", swapped=swapped, choice=choice, analysis=analysis)


async def judge(
    llm: LLM,
    requirements: str,
    questions: list[str],
    golden: list[str | None],
    base: list[AnswerRecord],
    candidate: list[AnswerRecord],
    votes: int,
) -> Verdict:
    """`votes` concurrent judge calls, half with the candidate shown first; unparsable votes abstain."""
    plan = swap_plan(votes)
    straight = judge_messages(requirements, comparison_block(questions, golden, base, candidate))
    swapped = judge_messages(requirements, comparison_block(questions, golden, candidate, base))
    records = await gather_ordered(_vote(llm, swapped if s else straight, s, sample=i) for i, s in enumerate(plan))
    wins = sum(r.winner == "candidate" for r in records)
    losses = sum(r.winner == "base" for r in records)
    return Verdict(records, wins, losses, votes - wins - losses, min_valid_votes(votes))
