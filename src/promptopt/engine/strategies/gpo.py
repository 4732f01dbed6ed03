"""GPO (arXiv 2402.17564): retrieve past prompts as the update direction, edit within a word budget.

Each step the optimizer sees k retrieved (prompt, score) pairs from the trajectory and the
current best prompt, and writes `candidates` new versions changing at most N words, N on a
cosine schedule over the run. Every candidate is executed and scored against the current
best; the best-scoring one that beats it is accepted.

results.json: each GPO round's `state` holds every candidate it scored (so the trajectory is
rebuilt from history alone), the edit budget used and the rounds it retrieved.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from difflib import SequenceMatcher
from typing import Any, Literal, cast

from promptopt import prompts
from promptopt.diff import word_edit_distance
from promptopt.engine.concurrency import gather_ordered
from promptopt.engine.execute import execute
from promptopt.engine.scoring import SELF_SCORE, Score, Scorer
from promptopt.engine.strategies.base import (
    CallEstimate,
    RunContext,
    Strategy,
    format_qa_block,
    number_option,
    register,
)
from promptopt.engine.strategies.spo import count_rule
from promptopt.errors import ConfigError
from promptopt.records import AnswerRecord, RoundRecord

Mode = Literal["recency", "relevance", "importance"]
RETRIEVAL_MODES: tuple[Mode, ...] = ("recency", "relevance", "importance")
MAX_CANDIDATES = 10  # the cache sample packs slot*10 into 1000 per round: slots stay below 100


# --- options ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class GPOOptions:
    retrieval: Mode = "recency"
    top_k: int = 3
    edit_budget: tuple[int, int] = (50, 10)
    candidates: int = 2

    @classmethod
    def parse(cls, options: Mapping[str, Any]) -> GPOOptions:
        """From RunConfig.strategy_options (the CLI's --retrieval, --top-k, --edit-budget, --candidates)."""
        retrieval = str(options.get("retrieval") or "recency").strip().lower()
        if retrieval not in RETRIEVAL_MODES:
            raise ConfigError(f"--retrieval {retrieval}: unknown (choose from {', '.join(RETRIEVAL_MODES)})")
        top_k = int(number_option(options, "top_k", 3, 0, 20, whole=True, flag="--top-k"))
        candidates = int(number_option(options, "candidates", 2, 1, MAX_CANDIDATES, whole=True, flag="--candidates"))
        return cls(cast(Mode, retrieval), top_k, parse_edit_budget(options.get("edit_budget")), candidates)


def parse_edit_budget(value: object) -> tuple[int, int]:
    """'50:10' -> (50, 10); '30' -> (30, 30); None -> the default (50, 10)."""
    if value is None:
        return (50, 10)
    if isinstance(value, (tuple, list)) and len(value) == 2:
        parts = [str(v) for v in value]
    else:
        parts = str(value).replace(" ", "").split(":")
        if len(parts) == 1:
            parts = parts * 2
    try:
        start, end = (int(p) for p in parts)
    except ValueError:
        raise ConfigError(f"--edit-budget {value}: expected START:END word counts, e.g. 50:10") from None
    if start < 1 or end < 1:
        raise ConfigError(f"--edit-budget {value}: word counts must be at least 1")
    return start, end


# --- pure helpers (pinned by tests) ----------------------------------------------------------


def cosine_budget(step: int, total: int, start: int, end: int) -> int:
    """Words a step may change: `start` at step 0, `end` at step total-1, cosine in between."""
    if total <= 1:
        return start
    t = min(max(step, 0), total - 1) / (total - 1)
    return round(end + (start - end) * (1 + math.cos(math.pi * t)) / 2)


@dataclass(frozen=True)
class Entry:
    """One scored prompt of the trajectory: round, candidate index within the round, prompt, score."""

    round: int
    candidate: int
    prompt: str
    score: float


def build_trajectory(history: Sequence[RoundRecord], first_score: float = SELF_SCORE) -> list[Entry]:
    """Every scored prompt so far, oldest first: round 1, then each round's scored candidates."""
    entries: list[Entry] = []
    for record in history:
        candidates = record.state.get("candidates") if isinstance(record.state, dict) else None
        if isinstance(candidates, list) and candidates:
            for i, item in enumerate(candidates):
                if isinstance(item, dict) and item.get("prompt") and item.get("score") is not None:
                    entries.append(Entry(record.round, i, str(item["prompt"]), float(item["score"])))
        elif record.round == 1 and record.prompt:
            score = record.score if record.score is not None else first_score
            entries.append(Entry(1, 0, record.prompt, float(score)))
        elif record.prompt and record.score is not None:
            entries.append(Entry(record.round, 0, record.prompt, float(record.score)))
    return entries


_WORDS = re.compile(r"\w+")


def similarity(a: str, b: str) -> float:
    """Cosine similarity of the two texts' word counts (case-insensitive), in [0, 1]."""
    ca, cb = Counter(_WORDS.findall(a.lower())), Counter(_WORDS.findall(b.lower()))
    if not ca or not cb:
        return 0.0
    dot = sum(ca[w] * cb[w] for w in ca.keys() & cb.keys())
    return dot / (math.sqrt(sum(v * v for v in ca.values())) * math.sqrt(sum(v * v for v in cb.values())))


def retrieve(trajectory: Sequence[Entry], k: int, mode: str, current: str | None = None) -> list[Entry]:
    """Up to k entries, best first for `mode`; never the current prompt, each prompt once.

    recency: newest first. importance: highest score first. relevance: most similar to the
    current prompt (or, without one, to the newest entry) first. Ties go to the newer entry.
    """
    query = current if current is not None else (trajectory[-1].prompt if trajectory else "")
    newest: dict[str, Entry] = {}
    for entry in trajectory:
        if entry.prompt.strip() != query.strip():
            newest[entry.prompt.strip()] = entry  # a prompt scored twice counts once, at its newest
    pool = list(newest.values())

    def age(e: Entry) -> tuple[int, int]:
        return (e.round, e.candidate)

    if mode == "recency":
        ranked = sorted(pool, key=age, reverse=True)
    elif mode == "importance":
        ranked = sorted(pool, key=lambda e: (e.score, *age(e)), reverse=True)
    elif mode == "relevance":
        ranked = sorted(pool, key=lambda e: (similarity(query, e.prompt), *age(e)), reverse=True)
    else:
        raise ConfigError(f"--retrieval {mode}: unknown (choose from {', '.join(RETRIEVAL_MODES)})")
    return ranked[: max(k, 0)]


_TOKEN = re.compile(r"\S+\s*")


def _rebuild(
    old_tokens: list[str], new_tokens: list[str], opcodes: Sequence[tuple[str, int, int, int, int]], limit: int
) -> str:
    """Apply the draft's edits in reading order until `limit` words are spent; cut the last one short."""
    parts: list[str] = []
    left = limit
    for op, i1, i2, j1, j2 in opcodes:
        if op == "equal":
            parts.extend(old_tokens[i1:i2])
            continue
        cost = max(i2 - i1, j2 - j1)
        take = min(cost, left)
        left -= take
        # Replace the first `take` old words by the first `take` new ones; keep the rest as it was.
        parts.extend(new_tokens[j1 : j1 + min(take, j2 - j1)])
        parts.extend(old_tokens[i1 + min(take, i2 - i1) : i2])
    text = ""
    for part in parts:
        if text and not text[-1].isspace():
            text += " "  # a token taken from the end of one text has no trailing space
        text += part
    return text.strip()


def limit_edits(old: str, new: str, budget: int) -> str:
    """`new`, or as much of its change to `old` as fits in `budget` words of edit distance."""
    if word_edit_distance(old, new) <= budget:
        return new
    old_tokens, new_tokens = _TOKEN.findall(old.strip()), _TOKEN.findall(new.strip())
    matcher = SequenceMatcher(a=[t.strip() for t in old_tokens], b=[t.strip() for t in new_tokens], autojunk=False)
    opcodes = matcher.get_opcodes()
    # The matcher may align the result differently from the draft: measure, and spend less if needed.
    for limit in range(budget, -1, -1):
        result = _rebuild(old_tokens, new_tokens, opcodes, limit)
        if word_edit_distance(old, result) <= budget:
            return result
    return old


# --- the strategy ----------------------------------------------------------------------------


@dataclass
class Draft:
    index: int
    prompt: str | None
    analysis: str | None = None
    modification: str | None = None
    error: str | None = None
    distance: int | None = None
    regenerated: bool = False
    truncated: bool = False


@register
class GPO(Strategy):
    name = "gpo"

    def __init__(self, ctx: RunContext) -> None:
        super().__init__(ctx)
        self.options = GPOOptions.parse(ctx.config.strategy_options)
        self.scorer = Scorer(ctx, self.compare)

    @classmethod
    def calls_per_round(cls, questions: int, votes: int, options: dict[str, Any]) -> CallEstimate:
        """candidates × (1 optimizer + Q executions + votes judge calls); no judge with a metric.

        `options["metric"]`, when the caller passes the template's metric, drops the judge calls.
        Regenerating an over-budget draft costs one more optimizer call (not counted).
        """
        n = GPOOptions.parse(options).candidates
        judge_votes = 0 if options.get("metric") else votes
        return CallEstimate(optimizer=n, executor=n * questions, evaluator=n * judge_votes)

    async def first_round(self) -> RoundRecord:
        record = await super().first_round()
        record.score = self.scorer.initial_score(record.answers)
        record.state = {"score_kind": self.scorer.kind}
        return record

    def should_stop(self, history: list[RoundRecord]) -> str | None:
        return self.scorer.nothing_to_gain(self.best(history).score)

    def edit_budget(self, number: int) -> int:
        """The schedule spans rounds 2..--max-rounds of this invocation."""
        start, end = self.options.edit_budget
        return cosine_budget(number - 2, self.ctx.config.max_rounds - 1, start, end)

    def score_meaning(self) -> str:
        if self.scorer.metric is not None:
            return "accuracy on the questions (share answered correctly), from 0 to 1."
        return f"share of judge votes won against the best prompt of its time, from 0 to 1 ({SELF_SCORE:.2f} is a tie)."

    def optimizer_messages(
        self, base: RoundRecord, base_score: float, retrieved: list[Entry], budget: int
    ) -> list[dict[str, str]]:
        t = self.ctx.template
        shown = sorted(retrieved, key=lambda e: (e.round, e.candidate))  # oldest first: a direction
        trajectory = (
            "\n\n".join(f"### Version from round {e.round} (score {e.score:.2f})\n{e.prompt.strip()}" for e in shown)
            or "(none to show yet)"
        )
        content = prompts.render(
            "gpo",
            requirements=t.requirements.strip() or "(none given)",
            score_meaning=self.score_meaning(),
            trajectory=trajectory,
            score=f"{base_score:.2f}",
            prompt=base.prompt.strip(),
            answers=format_qa_block(self.ctx.questions, base.answers, t.golden),
            budget=budget,
            count_rule=count_rule(t.count),
        )
        return [{"role": "user", "content": content}]

    async def draft(self, messages: list[dict[str, str]], number: int, index: int, current: str, budget: int) -> Draft:
        """One candidate within the word budget: ask, ask again once if over, then truncate."""
        proposal = await self.propose(messages, number, unchanged=current, slot=index)
        if proposal.prompt is None:
            return Draft(index, None, proposal.analysis, proposal.modification, error=proposal.error)
        result = Draft(index, proposal.prompt, proposal.analysis, proposal.modification)
        result.distance = word_edit_distance(current, proposal.prompt)
        if result.distance <= budget:
            return result
        note = prompts.render("gpo_budget", distance=result.distance, budget=budget)
        retry = [
            *messages,
            {"role": "assistant", "content": f"<prompt>{proposal.prompt}</prompt>"},
            {"role": "user", "content": note},
        ]
        # A separate slot keeps the retry's cache entries apart from the other candidates'.
        again = await self.propose(retry, number, unchanged=current, slot=index + MAX_CANDIDATES)
        result.regenerated = True
        if again.prompt is not None:
            result.prompt, result.analysis = again.prompt, again.analysis
            result.modification = again.modification
            result.distance = word_edit_distance(current, again.prompt)
        if result.distance > budget:
            trimmed = limit_edits(current, result.prompt or "", budget)
            result.prompt, result.truncated = trimmed, True
            result.distance = word_edit_distance(current, trimmed)
            if trimmed.strip() == current.strip():
                error = f"no edit fits the budget of {budget} words"
                return Draft(
                    index, None, result.analysis, result.modification, error=error, regenerated=True, truncated=True
                )
        return result

    async def step(self, number: int, history: list[RoundRecord]) -> RoundRecord:
        events, opts = self.ctx.events, self.options
        base = await self.base_for_step(history)
        base_answers = base.answers
        trajectory = build_trajectory(history, self.scorer.initial_score(history[0].answers))
        retrieved = retrieve(trajectory, opts.top_k, opts.retrieval, current=base.prompt)
        base_score = self.scorer.accuracy(base_answers)
        if base_score is None:
            base_score = base.score if base.score is not None else SELF_SCORE
        budget = self.edit_budget(number)
        messages = self.optimizer_messages(base, base_score, retrieved, budget)

        events.phase(number, "optimize")
        drafts = await gather_ordered(
            self.draft(messages, number, i, base.prompt, budget) for i in range(opts.candidates)
        )
        live = drop_duplicates(drafts)

        events.phase(number, "execute")
        questions = self.ctx.questions
        answers = await gather_ordered(execute(self.ctx.llm, d.prompt or "", questions) for d in live)
        scorable: list[tuple[Draft, list[AnswerRecord]]] = []
        for d, ans in zip(live, answers, strict=True):
            if all(a.error is not None for a in ans):
                d.error = "every execution of the candidate failed"
            else:
                scorable.append((d, ans))

        if self.scorer.metric is None:
            events.phase(number, "judge")
        scores = await gather_ordered(self.scorer.score(base_answers, ans) for _, ans in scorable)
        results = [(d, ans, s) for (d, ans), s in zip(scorable, scores, strict=True)]
        winners = [r for r in results if r[2].beats_current]
        # max() keeps the first of equals: ties go to the earlier candidate.
        pick = max(winners or results, key=lambda r: r[2].score) if results else None
        accepted = pick[0] if pick is not None and winners else None
        score_of = {id(d): s for d, _, s in results}

        state: dict[str, Any] = {
            "edit_budget": budget,
            "retrieval": opts.retrieval,
            "top_k": opts.top_k,
            "retrieved": [[e.round, e.candidate] for e in retrieved],
            "base_score": base_score,
            "candidates": [candidate_state(d, score_of.get(id(d)), d is accepted) for d in drafts],
        }
        record = RoundRecord(round=number, base_round=base.round, state=state)
        if pick is None:
            errors = sorted({d.error for d in drafts if d.error})
            record.verdict, record.error = "failed", "; ".join(errors) or "no candidate"
            return record
        d, ans, s = pick
        record.prompt, record.answers = d.prompt or "", ans
        record.analysis, record.modification = d.analysis, d.modification
        record.votes, record.score = s.votes, s.score
        record.succeed = bool(winners)
        record.verdict = "accepted" if record.succeed else "rejected"
        record.state["chosen"] = d.index
        return record


def drop_duplicates(drafts: list[Draft]) -> list[Draft]:
    """Drafts with a prompt, each prompt once: running the same prompt twice would only cost calls."""
    seen: dict[str, int] = {}
    for d in drafts:
        if d.prompt is None:
            continue
        key = d.prompt.strip()
        if key in seen:
            d.prompt, d.error = None, f"same prompt as candidate {seen[key] + 1}"
        else:
            seen[key] = d.index
    return [d for d in drafts if d.prompt is not None]


def candidate_state(draft: Draft, score: Score | None, accepted: bool) -> dict[str, Any]:
    """What results.json keeps of one candidate: enough to rebuild the trajectory."""
    item: dict[str, Any] = {"prompt": draft.prompt, "error": draft.error, "edit_distance": draft.distance}
    if draft.regenerated:
        item["regenerated"] = True
    if draft.truncated:
        item["truncated"] = True
    if score is not None:
        item.update(score=score.score, beats_current=score.beats_current, accepted=accepted)
        if score.votes:
            item["votes"] = "".join(v.mark for v in score.votes)
    return {k: v for k, v in item.items() if v is not None}
