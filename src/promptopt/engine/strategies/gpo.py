"""GPO (arXiv 2402.17564): retrieve past prompts as the update direction, edit within a word budget.

Each step the optimizer sees k retrieved (prompt, score) pairs from the trajectory and the
current best prompt, and writes `candidates` new versions changing at most N words, N on a
cosine schedule over the run. Every candidate is executed and scored against the current
best; the best-scoring one that beats it is accepted.

Without a metric the scores shown to the optimizer and used by `importance` retrieval are
Bradley–Terry ratings fitted to every stored pair of votes (the user's prompt at 0): each
candidate was judged against the best prompt of its time, so raw vote shares would compare
numbers on different scales. With a metric, accuracy is the score.

results.json: each GPO round's `state` holds every candidate it scored (so the trajectory is
rebuilt from history alone), the edit budget used and the rounds it retrieved.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from difflib import SequenceMatcher
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from promptopt.diff import word_edit_distance
from promptopt.engine.acceptance import SELF_SCORE, Decision
from promptopt.engine.concurrency import gather_ordered
from promptopt.engine.execute import execute
from promptopt.engine.stats import bradley_terry
from promptopt.engine.strategies.base import (
    RoundCalls,
    StateView,
    Strategy,
    count_rule,
    format_qa_block,
    register,
)
from promptopt.errors import ConfigError
from promptopt.records import AnswerRecord, RoundRecord

Mode = Literal["recency", "relevance", "importance"]
RETRIEVAL_MODES: tuple[Mode, ...] = ("recency", "relevance", "importance")
MAX_CANDIDATES = 10  # the cache sample packs slot*10 into 1000 per round: slots stay below 100


# --- options ---------------------------------------------------------------------------------


class GPOOptions(BaseModel):
    """GPO's options (`--option name=value`, or the flags kept from before)."""

    model_config = ConfigDict(extra="forbid")

    retrieval: Mode = Field("recency", description="past prompts shown: recency, relevance or importance")
    top_k: int = Field(3, ge=0, le=20, description="past prompts retrieved per step")
    edit_budget: tuple[int, int] = Field((50, 10), description="words a candidate may change, START:END (cosine)")
    candidates: int = Field(2, ge=1, le=MAX_CANDIDATES, description="candidates written per step")

    @field_validator("retrieval", mode="before")
    @classmethod
    def _mode(cls, v: Any) -> Any:
        mode = str(v).strip().lower()
        if mode not in RETRIEVAL_MODES:
            raise ConfigError(f"--retrieval {mode}: unknown (choose from {', '.join(RETRIEVAL_MODES)})")
        return mode

    @field_validator("edit_budget", mode="before")
    @classmethod
    def _budget(cls, v: Any) -> tuple[int, int]:
        return parse_edit_budget(v)


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


def build_trajectory(
    history: Sequence[RoundRecord], first_score: float = SELF_SCORE, ratings: dict[str, float] | None = None
) -> list[Entry]:
    """Every scored prompt so far, oldest first: round 1, then each round's scored candidates.

    With `ratings` (prompt → Bradley–Terry rating) a prompt's score is its rating.
    """
    entries: list[Entry] = []

    def score(prompt: str, own: float) -> float:
        return ratings.get(prompt.strip(), own) if ratings is not None else own

    for record in history:
        candidates = record.state.get("candidates") if isinstance(record.state, dict) else None
        if isinstance(candidates, list) and candidates:
            for i, item in enumerate(candidates):
                if isinstance(item, dict) and item.get("prompt") and item.get("score") is not None:
                    prompt = str(item["prompt"])
                    entries.append(Entry(record.round, i, prompt, score(prompt, float(item["score"]))))
        elif record.round == 1 and record.prompt:
            own = record.score if record.score is not None else first_score
            entries.append(Entry(1, 0, record.prompt, score(record.prompt, float(own))))
        elif record.prompt and record.score is not None:
            entries.append(Entry(record.round, 0, record.prompt, score(record.prompt, float(record.score))))
    return entries


def pair_results(marks: str) -> list[float]:
    """The candidate's result per pair of vote marks ('✓✓' 1, '✗✗' 0, else a tie ½), as stored."""
    results = []
    for i in range(0, len(marks) - 1, 2):
        two = marks[i : i + 2]
        results.append(1.0 if two == "✓✓" else 0.0 if two == "✗✗" else 0.5)
    return results


def ratings(history: Sequence[RoundRecord]) -> dict[str, float]:
    """A Bradley–Terry rating per prompt from every stored pair of votes; the first round's prompt is 0."""
    by_round = {r.round: r for r in history}
    outcomes: list[tuple[str, str, float]] = []
    for record in history:
        base = by_round.get(record.base_round) if record.base_round is not None else None
        candidates = record.state.get("candidates") if isinstance(record.state, dict) else None
        if base is None or not isinstance(candidates, list):
            continue
        for item in candidates:
            if isinstance(item, dict) and item.get("prompt") and isinstance(item.get("votes"), str):
                for result in pair_results(item["votes"]):
                    outcomes.append((str(item["prompt"]).strip(), base.prompt.strip(), result))
    anchor = history[0].prompt.strip() if history else ""
    items = sorted({anchor, *(a for a, _, _ in outcomes), *(b for _, b, _ in outcomes)})
    return bradley_terry(items, outcomes, anchor)


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
    # Its next request shows this round's candidates with their scores (ratings fitted to every vote,
    # or accuracy): nothing of it is known before they are, and then only the verdict is left.
    speculates = False
    Options = GPOOptions
    flags: ClassVar[dict[str, str]] = {
        "--retrieval": "retrieval",
        "--top-k": "top_k",
        "--edit-budget": "edit_budget",
        "--candidates": "candidates",
    }
    options: GPOOptions

    def round_calls(self, first: bool) -> RoundCalls:
        """candidates × (1 optimizer + Q executions + 1 comparison); no comparison when a metric decides.

        Regenerating an over-budget draft costs one more optimizer call (not counted).
        """
        q = len(self.ctx.template.qa)
        if first:
            return RoundCalls(executor=q)
        n = self.options.candidates
        return RoundCalls(optimizer=n, executor=n * q, comparisons=0 if self.acceptance.metric else n)

    def estimate_messages(self, base: RoundRecord) -> list[dict[str, str]]:
        return self.optimizer_messages(base, SELF_SCORE, [], self.edit_budget(2))

    async def first_round(self) -> RoundRecord:
        record = await super().first_round()
        record.score = self.acceptance.initial_score(record.answers)
        record.state = {"score_kind": self.acceptance.kind}
        return record

    def should_stop(self, history: list[RoundRecord]) -> str | None:
        return self.acceptance.nothing_to_gain(self.best(history).score)

    @classmethod
    def describe_state(cls, record: RoundRecord) -> StateView | None:
        state = record.state or {}
        if not isinstance(state.get("candidates"), list):
            return None
        title = (
            f"GPO candidates (edit budget {state.get('edit_budget')} words, retrieval {state.get('retrieval')}, "
            f"base score {state.get('base_score')})"
        )
        rows = []
        for i, c in enumerate(state["candidates"], 1):
            if not isinstance(c, dict):  # results.json is outside input: skip what we did not write
                continue
            score = c.get("score")
            rows.append(
                [
                    str(i),
                    f"{score:.2f}" if isinstance(score, (int, float)) and not isinstance(score, bool) else "",
                    str(c.get("votes", "")),
                    str(c.get("edit_distance", "")),
                    "yes" if c.get("accepted") else "",
                    str(c.get("error") or " ".join(str(c.get("prompt", "")).split())[:120]),
                ]
            )
        return StateView(title, ["#", "score", "votes", "edits", "accepted", "prompt"], rows)

    def edit_budget(self, number: int) -> int:
        """The schedule spans rounds 2..--max-rounds of this invocation."""
        start, end = self.options.edit_budget
        return cosine_budget(number - 2, self.ctx.config.max_rounds - 1, start, end)

    def score_meaning(self) -> str:
        if self.acceptance.metric is not None:
            return "accuracy on the questions (share answered correctly), from 0 to 1."
        return (
            "a rating from the judge's pairwise votes on one scale for every version: 0 is the original "
            "prompt, +1 means the judge prefers it over the original about 73% of the time, -1 about 27%."
        )

    def optimizer_messages(
        self, base: RoundRecord, base_score: float, retrieved: list[Entry], budget: int
    ) -> list[dict[str, str]]:
        t = self.ctx.template
        shown = sorted(retrieved, key=lambda e: (e.round, e.candidate))  # oldest first: a direction
        trajectory = (
            "\n\n".join(f"### Version from round {e.round} (score {e.score:.2f})\n{e.prompt.strip()}" for e in shown)
            or "(none to show yet)"
        )
        content = self.render_prompt(
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
        note = self.render_prompt("gpo_budget", distance=result.distance, budget=budget)
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
        rated = ratings(history) if self.acceptance.metric is None else None
        trajectory = build_trajectory(history, self.acceptance.initial_score(history[0].answers), rated)
        retrieved = retrieve(trajectory, opts.top_k, opts.retrieval, current=base.prompt)
        base_score = self.acceptance.accuracy(base_answers)
        if base_score is None:
            base_score = rated.get(base.prompt.strip(), 0.0) if rated is not None else SELF_SCORE
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

        if self.acceptance.metric is None:
            events.phase(number, "judge")
        scores = await gather_ordered(self.acceptance.decide(base_answers, ans) for _, ans in scorable)
        results = [(d, ans, s) for (d, ans), s in zip(scorable, scores, strict=True)]
        winners = [r for r in results if r[2].accepted]
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
        record.votes, record.score, record.decision = s.votes, s.score, s.summary
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


def candidate_state(draft: Draft, score: Decision | None, accepted: bool) -> dict[str, Any]:
    """What results.json keeps of one candidate: enough to rebuild the trajectory."""
    item: dict[str, Any] = {"prompt": draft.prompt, "error": draft.error, "edit_distance": draft.distance}
    if draft.regenerated:
        item["regenerated"] = True
    if draft.truncated:
        item["truncated"] = True
    if score is not None:
        item.update(score=score.score, beats_current=score.accepted, accepted=accepted)
        if score.summary:
            item["decision"] = score.summary
        if score.votes:
            item["votes"] = "".join(v.mark for v in score.votes)
    return {k: v for k, v in item.items() if v is not None}
