"""Who wins a comparison, when a candidate is accepted, and how sure we are: every rule in one place.

Strategies, the confirmation gate and `compare` ask this module; nothing else decides.

Rules for judge votes (`--accept`):
- `paired` (default): votes come in pairs, the same comparison shown both ways; a pair counts for
  the candidate only when both orders prefer it, for the base only when both prefer the base,
  otherwise it is a tie (MT-Bench's rule). After the first `--votes` it accepts as soon as a
  one-sided sign test over the decisive pairs gives p ≤ SCREEN_ALPHA, asks for another pair while
  that can still happen by `--max-votes` (with SPARE pairs to spare), and rejects otherwise. It is
  a screen: the run's final word is the confirmation gate (confirm.py) at `--alpha`.
- `majority`: SPO's rule, to reproduce the paper: exactly `--votes` votes, balanced orders; the
  candidate wins with strictly more votes than the base among at least half valid votes.
With a metric: `improve` needs strictly higher accuracy (GPO, Dual-Phase; no judge call); `spo`
needs the judge's acceptance and no lower accuracy.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from promptopt.engine import judge as judging
from promptopt.engine.diagnostics import pair_outcomes
from promptopt.engine.metrics import Metric, get_metric
from promptopt.engine.stats import (
    expected_pairs,
    false_accept_rate,
    looks_every_pair,
    reachable,
    sign_test,
    worst_false_accept,
)
from promptopt.errors import ConfigError
from promptopt.llm import LLM
from promptopt.records import AnswerRecord, VoteRecord

if TYPE_CHECKING:
    from promptopt.engine.context import RunContext

RULES = ("paired", "majority")
SCREEN_ALPHA = 0.25
# Ask for another pair only while acceptance stays reachable with this many pairs left over:
# measured in the simulated world, 2 keeps every judge under twice SPO's 4 calls a round, gate included.
SPARE = 2
# A prompt judged against itself ties: the reference score of the current best.
SELF_SCORE = 0.5

Kind = Literal["accuracy", "votes"]
MetricRule = Literal["improve", "spo"]


@dataclass
class Tally:
    """Pairs for the candidate, for the base, tied (an abstention ties its pair)."""

    wins: int = 0
    losses: int = 0
    ties: int = 0

    @classmethod
    def of(cls, votes: list[VoteRecord]) -> Tally:
        outcomes = pair_outcomes(votes)
        return cls(outcomes.count("candidate"), outcomes.count("base"), outcomes.count("tie"))

    @property
    def pairs(self) -> int:
        return self.wins + self.losses + self.ties

    @property
    def share(self) -> float:
        """The candidate's share of pairs, a tie counting half; SELF_SCORE without a pair."""
        return (self.wins + self.ties / 2) / self.pairs if self.pairs else SELF_SCORE

    @property
    def p_value(self) -> float:
        """One-sided sign test over decisive pairs: how often a blind judge would do this well."""
        return sign_test(self.wins, self.losses)

    def text(self) -> str:
        return f"{self.wins} pairs to {self.losses}" + (f", {self.ties} tied" if self.ties else "")


@dataclass
class Decision:
    """The outcome of one comparison of a candidate with its base."""

    accepted: bool
    kind: Kind
    score: float  # accuracy, or the candidate's vote share (a tie is 0.5)
    base_score: float
    votes: list[VoteRecord] = field(default_factory=list)
    rule: str = "paired"
    accuracy: float | None = None
    base_accuracy: float | None = None
    p_value: float | None = None
    summary: str = ""  # "3 pairs to 0, p=0.12": the decision's strength, for round lines


class VoteRule:
    """How many judge votes to ask for, and what they decide."""

    name = ""

    def first(self) -> int:
        """Votes asked for at once."""
        raise NotImplementedError

    def most(self) -> int:
        raise NotImplementedError

    def expected(self) -> float:
        """Mean votes per comparison for a judge that cannot tell the answers apart (the costliest)."""
        return float(self.most())

    def verdict(self, votes: list[VoteRecord]) -> bool | None:
        """True accept, False reject, None: ask for another pair."""
        raise NotImplementedError

    def summary(self, votes: list[VoteRecord]) -> tuple[str, float | None]:
        raise NotImplementedError


class Paired(VoteRule):
    """Adaptive pairs with a one-sided sign test (see the module docstring)."""

    name = "paired"

    def __init__(self, votes: int, max_votes: int, alpha: float = SCREEN_ALPHA, spare: int = SPARE) -> None:
        self.first_pairs = max(1, votes // 2)
        self.most_pairs = max(self.first_pairs, max_votes // 2)
        self.alpha, self.spare = alpha, spare

    def first(self) -> int:
        return 2 * self.first_pairs

    def most(self) -> int:
        return 2 * self.most_pairs

    def expected(self) -> float:
        looks = looks_every_pair(self.first_pairs, self.most_pairs)
        return 2 * expected_pairs(self.alpha, looks, 0.5, self.spare)

    def verdict(self, votes: list[VoteRecord]) -> bool | None:
        t = Tally.of(votes)
        if t.wins and t.p_value <= self.alpha:
            return True
        left = self.most_pairs - t.pairs
        if left > 0 and reachable(t.wins, t.losses, left, self.alpha, self.spare):
            return None
        return False

    def summary(self, votes: list[VoteRecord]) -> tuple[str, float | None]:
        t = Tally.of(votes)
        return f"{t.text()}, p={t.p_value:.2g}", t.p_value

    def false_accept(self) -> tuple[float, float]:
        """(a coin-flip judge, the worst blind judge): how often this rule accepts a candidate no better."""
        looks = looks_every_pair(self.first_pairs, self.most_pairs)
        return false_accept_rate(self.alpha, looks, 0.5, self.spare), worst_false_accept(self.alpha, looks, self.spare)


class Majority(VoteRule):
    """SPO's rule: exactly `votes` votes, strictly more for the candidate among ≥ half valid."""

    name = "majority"

    def __init__(self, votes: int) -> None:
        self.votes = votes

    def first(self) -> int:
        return self.votes

    def most(self) -> int:
        return self.votes

    def verdict(self, votes: list[VoteRecord]) -> bool:
        wins = sum(v.winner == "candidate" for v in votes)
        losses = sum(v.winner == "base" for v in votes)
        return wins + losses >= max(1, (self.votes + 1) // 2) and wins > losses

    def summary(self, votes: list[VoteRecord]) -> tuple[str, float | None]:
        wins = sum(v.winner == "candidate" for v in votes)
        losses = sum(v.winner == "base" for v in votes)
        return f"{wins} votes to {losses}", None


def vote_rule(name: str, votes: int, max_votes: int) -> VoteRule:
    return Majority(votes) if name == "majority" else Paired(votes, max_votes)


def vote_share(votes: list[VoteRecord], rule: str) -> float:
    """The candidate's score on the vote scale: share of pairs (paired) or of valid votes (majority)."""
    if rule == "majority":
        wins = sum(v.winner == "candidate" for v in votes)
        valid = sum(v.winner != "abstain" for v in votes)
        return wins / valid if valid else 0.0
    return Tally.of(votes).share


async def judge_adaptively(llm: LLM, comparison: judging.Comparison, rule: VoteRule) -> list[VoteRecord]:
    """Ask for the rule's first votes, then one pair at a time while it asks for more."""
    records = await judging.votes(llm, comparison, range(rule.first()))
    while rule.verdict(records) is None and len(records) < rule.most():
        n = len(records)
        records += await judging.votes(llm, comparison, range(n, min(n + 2, rule.most())))
    return records


# --- ground truth -------------------------------------------------------------------------------


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


# --- the one interface strategies use ----------------------------------------------------------


class Acceptance:
    """Turns a candidate's answers into a score and a decision against the current best's."""

    def __init__(self, ctx: RunContext) -> None:
        self.ctx = ctx
        template, config = ctx.template, ctx.config
        # A metric needs real answers to compare with; without any, the judge decides.
        self.metric: Metric | None = get_metric(template.metric) if template.metric and template.has_answers else None
        self.rule = vote_rule(config.accept, config.votes, config.max_votes)
        if isinstance(self.rule, Paired) and not reachable(0, 0, self.rule.most_pairs, self.rule.alpha):
            need = 2 * next(n for n in range(1, 64) if reachable(0, 0, n, self.rule.alpha))
            raise ConfigError(
                f"--max-votes {config.max_votes}: the paired rule can accept nothing with fewer than {need} votes "
                f"(a pair is both orders of one comparison); raise --max-votes, or use --accept majority"
            )

    @property
    def kind(self) -> Kind:
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

    def comparison(self, base: list[AnswerRecord], candidate: list[AnswerRecord]) -> judging.Comparison:
        t = self.ctx.template
        return judging.Comparison(t.requirements, [q.question for q in t.qa], t.golden, base, candidate)

    async def judge(self, base: list[AnswerRecord], candidate: list[AnswerRecord]) -> Decision:
        """The judge's decision under the run's rule (adaptive pairs or SPO's majority)."""
        records = await judge_adaptively(self.ctx.llm, self.comparison(base, candidate), self.rule)
        accepted = bool(self.rule.verdict(records))
        summary, p = self.rule.summary(records)
        share = vote_share(records, self.rule.name)
        return Decision(accepted, "votes", share, SELF_SCORE, records, self.rule.name, p_value=p, summary=summary)

    async def decide(
        self, base: list[AnswerRecord], candidate: list[AnswerRecord], rule: MetricRule = "improve"
    ) -> Decision:
        """Compare `candidate` with the current best's answers `base`.

        "improve": with a metric, accuracy strictly above the base's (no judge call); without,
        the judge's decision. "spo": the judge always runs; with a metric the candidate must also
        keep the base's accuracy.
        """
        acc, base_acc = self.accuracy(candidate), self.accuracy(base)
        if rule == "improve" and acc is not None and base_acc is not None:
            summary = f"accuracy {acc:.2f} vs {base_acc:.2f}"
            return Decision(acc > base_acc, "accuracy", acc, base_acc, [], "metric", acc, base_acc, summary=summary)
        decision = await self.judge(base, candidate)
        if acc is not None and base_acc is not None:
            decision.accepted = decision.accepted and acc >= base_acc
            decision.kind, decision.score, decision.base_score = "accuracy", acc, base_acc
            decision.accuracy, decision.base_accuracy = acc, base_acc
            decision.summary += f"; accuracy {acc:.2f} vs {base_acc:.2f}"
        return decision
