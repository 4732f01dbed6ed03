"""What a judge's votes say about the judge: pairs, order consistency, position bias, abstentions.

Pure functions of stored votes (no model, no engine), so `show` can draw them and start fast.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from promptopt.records import VoteRecord


def pair_outcomes(records: Sequence[VoteRecord]) -> list[str]:
    """Per complete pair, in order: 'candidate' or 'base' when both orders agree, else 'tie' (MT-Bench).

    A pair with an abstaining vote is a tie. Votes without a pair number (older workspaces) pair up
    in order.
    """
    pairs: dict[tuple[int | None, int], list[VoteRecord]] = {}
    for i, v in enumerate(records):
        pairs.setdefault((v.question, v.pair if v.pair is not None else i // 2), []).append(v)
    out: list[str] = []
    for two in pairs.values():
        if len(two) != 2:
            continue
        a, b = (v.winner for v in two)
        out.append(a if a == b and a != "abstain" else "tie")
    return out


@dataclass
class JudgeStats:
    """How the judge behaved: the evidence behind trusting its votes."""

    votes: int
    abstained: int
    position_a: int  # valid votes that chose whichever answer was shown as A
    pairs: int  # complete pairs with two valid votes
    consistent: int  # of those, pairs whose two orders chose the same answer set

    @property
    def consistency(self) -> float | None:
        """Share of pairs whose two orders agree: about 1 for a judge that sees a difference, 0.5 for a coin."""
        return self.consistent / self.pairs if self.pairs else None

    @property
    def share_a(self) -> float | None:
        valid = self.votes - self.abstained
        return self.position_a / valid if valid else None

    def as_dict(self) -> dict[str, object]:
        return {
            "votes": self.votes,
            "abstained": self.abstained,
            "share_a": None if self.share_a is None else round(self.share_a, 3),
            "pairs": self.pairs,
            "consistency": None if self.consistency is None else round(self.consistency, 3),
        }


def judge_stats(records: Sequence[VoteRecord]) -> JudgeStats:
    valid = [v for v in records if v.winner != "abstain"]
    position_a = sum(
        1 for v in valid if v.choice == "A" or (v.choice is None and (v.winner == "candidate") == v.swapped)
    )
    pairs: dict[tuple[int | None, int], list[VoteRecord]] = {}
    for i, v in enumerate(records):
        pairs.setdefault((v.question, v.pair if v.pair is not None else i // 2), []).append(v)
    complete = [p for p in pairs.values() if len(p) == 2 and all(v.winner != "abstain" for v in p)]
    consistent = sum(1 for a, b in complete if a.winner == b.winner)
    return JudgeStats(len(records), len(records) - len(valid), position_a, len(complete), consistent)


# Below this consistency over at least NEAR_CHANCE_PAIRS pairs, the judge is close to a coin flip.
NEAR_CHANCE = 0.6
NEAR_CHANCE_PAIRS = 8


def near_chance(stats: JudgeStats) -> bool:
    """Whether the judge's two orders agree about as often as a coin's would."""
    c = stats.consistency
    return c is not None and stats.pairs >= NEAR_CHANCE_PAIRS and c <= NEAR_CHANCE


NEAR_CHANCE_ADVICE = (
    "the judge's two orders agree in only {share:.0%} of {pairs} pairs, close to a coin flip: its verdicts say "
    "little. Add questions to the template, use a stronger --eval-model, or give reference answers and a metric"
)


def combined(groups: Sequence[Sequence[VoteRecord]]) -> JudgeStats:
    """The judge's stats over several comparisons (a run's rounds), each paired on its own."""
    total = JudgeStats(0, 0, 0, 0, 0)
    for votes in groups:
        one = judge_stats(votes)
        total = JudgeStats(
            total.votes + one.votes,
            total.abstained + one.abstained,
            total.position_a + one.position_a,
            total.pairs + one.pairs,
            total.consistent + one.consistent,
        )
    return total
