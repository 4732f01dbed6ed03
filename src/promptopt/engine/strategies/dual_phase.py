"""Dual-Phase (arXiv 2406.13443): a structured initial prompt, then sentence-by-sentence rewrites.

Phase 1 (round 1): the optimizer turns the template into a structured prompt (task type,
description, output format and constraints, reasoning steps, tips); the user's prompt is
kept in round 1's state. Phase 2 (each later round): pick one sentence with probability
∝ exp(weight) among those not yet tried since the last improvement, have the optimizer
rewrite only it, accept the rewrite only if the score improves, and move the sentence's
weight EXP3-style by the reward (the score gained over the current best).

results.json: every round's `state` holds the sentences of the current best prompt after
that round, their weights, the sentences tried since the last improvement and the number
of steps without one, so a resumed run continues from the last round alone.
"""

from __future__ import annotations

import math
import random
import re
from collections.abc import Iterable, Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from promptopt.engine.acceptance import correct_marks
from promptopt.engine.execute import execute
from promptopt.engine.parse import extract_tag, parse_prompt
from promptopt.engine.strategies.base import (
    Proposal,
    RoundCalls,
    StateView,
    Strategy,
    format_qa_block,
    register,
    require_answers,
)
from promptopt.records import AnswerRecord, RoundRecord
from promptopt.shapes import SENTENCE, STRUCTURED_PROMPT

INITIAL_WEIGHT = 1.0
# The reward of an accepted rewrite without a metric: its vote share over 0.5, so in (0, 0.5].
ACCEPTED_REWARDS = (0.0, 0.5)
STRUCTURED = "structured prompt: task type, description, output format, reasoning steps, tips"

# --- pure helpers (pinned by tests) ----------------------------------------------------------

# A sentence ends at . ! or ? (after any closing quotes or brackets) followed by space, or at a newline.
_BOUNDARY = re.compile(r"(?<=[.!?])[\"'”’)\]]*\s+|\n\s*")
_WORDS = re.compile(r"\w+")


def split_sentences(text: str) -> list[str]:
    """Sentences and lines, each with the whitespace after it: "".join(result) == text."""
    segments: list[str] = []
    start = 0
    for match in _BOUNDARY.finditer(text):
        if text[start : match.start()].strip():
            segments.append(text[start : match.end()])
            start = match.end()
    rest = text[start:]
    if rest:
        if segments and not rest.strip():
            segments[-1] += rest
        else:
            segments.append(rest)
    return segments


def rewritable(sentence: str) -> bool:
    """Worth a rewrite: at least three words, and not a markdown heading."""
    return len(_WORDS.findall(sentence)) >= 3 and not sentence.lstrip().startswith("#")


def replace_sentence(sentences: Sequence[str], index: int, new: str) -> list[str]:
    """The sentences with `index` replaced by `new`, keeping the whitespace around the old one."""
    old = sentences[index]
    lead = old[: len(old) - len(old.lstrip())]
    trail = old[len(old.rstrip()) :]
    out = list(sentences)
    out[index] = lead + new.strip() + (trail or " ")
    if index == len(out) - 1 and not trail:
        out[index] = out[index].rstrip()
    return out


def pick_sentence(
    weights: Sequence[float], rng: random.Random, allowed: Iterable[int] | None = None
) -> tuple[int, float]:
    """(index, its probability): drawn among `allowed` with probability ∝ exp(weight)."""
    indices = list(range(len(weights))) if allowed is None else list(allowed)
    if not indices:
        raise ValueError("no sentence to pick from")
    top = max(weights[i] for i in indices)  # exp(w - top): same odds, no overflow
    mass = [math.exp(weights[i] - top) for i in indices]
    total = sum(mass)
    draw = rng.random() * total
    running = 0.0
    for i, m in zip(indices, mass, strict=True):
        running += m
        if draw < running:
            return i, m / total
    return indices[-1], mass[-1] / total


def exp3_update(weights: Sequence[float], index: int, reward: float, probability: float, eta: float) -> list[float]:
    """EXP3 on log-weights: only the picked sentence moves, by eta × reward / its probability."""
    out = [float(w) for w in weights]
    out[index] += eta * reward / max(probability, 1e-9)
    return out


# --- the strategy ----------------------------------------------------------------------------


def parse_sentence(text: str) -> str | None:
    """The <sentence> of a rewrite reply; a one-sentence <prompt> is accepted too."""
    sentence = extract_tag(text, "sentence")
    if not sentence:
        # Models sometimes answer in the <prompt> tag they were shown: fine if it is one sentence.
        alt = parse_prompt(text)
        sentence = alt if alt and len(split_sentences(alt)) == 1 else None
    return sentence or None


class DualPhaseOptions(BaseModel):
    """Dual-Phase's options (`--option eta=0.3 --option patience=4`)."""

    model_config = ConfigDict(extra="forbid")

    eta: float = Field(0.5, ge=0.0, le=10.0, allow_inf_nan=False, description="EXP3 learning rate of the weights")
    patience: int = Field(3, ge=1, le=100, description="steps in a row without improvement before stopping")


@register
class DualPhase(Strategy):
    name = "dual-phase"
    Options = DualPhaseOptions
    options: DualPhaseOptions

    @property
    def eta(self) -> float:
        return self.options.eta

    @property
    def patience(self) -> int:
        return self.options.patience

    def round_calls(self, first: bool) -> RoundCalls:
        """Round 1: 1 optimizer call (the structured prompt) + Q executions. Later: 1 optimizer call
        + Q executions + 1 comparison (none when a metric decides)."""
        q = len(self.ctx.template.qa)
        if first:
            return RoundCalls(optimizer=1, executor=q)
        return RoundCalls(optimizer=1, executor=q, comparisons=0 if self.acceptance.metric else 1)

    def estimate_messages(self, base: RoundRecord) -> list[dict[str, str]]:
        sentences = split_sentences(base.prompt) or [base.prompt]
        return self.rewrite_messages(base.prompt, max(sentences, key=len), base.answers)

    @classmethod
    def describe_state(cls, record: RoundRecord) -> StateView | None:
        state = record.state or {}
        if "old_sentence" not in state:
            return None
        probability, reward = state.get("probability"), state.get("reward")
        head = f"rewrote sentence {int(state.get('picked', 0)) + 1}" if isinstance(state.get("picked"), int) else ""
        if isinstance(probability, (int, float)):
            head += f" (p={float(probability):.2f}"
            head += f", reward {float(reward):+.2f})" if isinstance(reward, (int, float)) else ")"
        lines: list[tuple[str, str]] = [(head, ""), (f"- {state.get('old_sentence', '')}", "removed")]
        if state.get("new_sentence"):
            lines.append((f"+ {state.get('new_sentence')}", "added"))
        weights = state.get("weights")
        shown = " ".join(f"{float(w):.2f}" for w in (weights or []) if isinstance(w, (int, float)))
        lines.append((f"weights: {shown}", "dim"))
        return StateView("Dual-Phase", lines=lines)

    # --- phase 1 ------------------------------------------------------------------------------
    def init_messages(self) -> list[dict[str, str]]:
        t = self.ctx.template
        examples = "\n\n".join(
            f"### Question {i + 1}\n{q.question.strip()}\nExpected answer: {q.answer or '(not given)'}"
            for i, q in enumerate(t.qa)
        )
        length_rule = f" Keep the prompt under {t.count} words." if t.count else ""
        content = self.render_prompt(
            "dual_phase_init",
            requirements=t.requirements.strip() or "(none given)",
            prompt=t.prompt.strip(),
            examples=examples,
            length_rule=length_rule,
        )
        return [{"role": "user", "content": content}]

    async def first_round(self) -> RoundRecord:
        events, t = self.ctx.events, self.ctx.template
        events.phase(1, "optimize")
        proposal = await self.propose(self.init_messages(), 1, shape=STRUCTURED_PROMPT)
        prompt = proposal.prompt or t.prompt
        error = None if proposal.prompt else f"{proposal.error}; round 1 keeps your prompt"
        events.phase(1, "execute")
        answers = require_answers(await execute(self.ctx.llm, prompt, self.ctx.questions), "round 1's prompt")
        sentences = split_sentences(prompt)
        state = {
            "score_kind": self.acceptance.kind,
            "user_prompt": t.prompt,
            **phase2_state(sentences, [INITIAL_WEIGHT] * len(sentences), [], 0),
        }
        modification = STRUCTURED if proposal.prompt else None
        return RoundRecord(
            round=1,
            prompt=prompt,
            answers=answers,
            succeed=True,
            verdict="initial",
            error=error,
            analysis=proposal.analysis,
            modification=modification,
            score=self.acceptance.initial_score(answers),
            state=state,
        )

    # --- phase 2 ------------------------------------------------------------------------------
    def current(self, history: list[RoundRecord], prompt: str) -> tuple[list[str], list[float], list[int], int]:
        """(sentences, weights, tried, stale) of the current best prompt, from the newest round."""
        state = history[-1].state if history else {}
        sentences, weights = state.get("sentences"), state.get("weights")
        if (
            isinstance(sentences, list)
            and isinstance(weights, list)
            and len(sentences) == len(weights)
            and "".join(sentences) == prompt
        ):
            tried = [int(i) for i in state.get("tried", []) if 0 <= int(i) < len(sentences)]
            return [str(s) for s in sentences], [float(w) for w in weights], tried, int(state.get("stale", 0))
        # No usable state (e.g. a workspace from elsewhere): start the weights afresh.
        fresh = split_sentences(prompt)
        return fresh, [INITIAL_WEIGHT] * len(fresh), [], 0

    def candidates(self, sentences: list[str], tried: list[int]) -> list[int]:
        """Sentences a step may pick: rewritable ones not yet tried since the last improvement."""
        eligible = [i for i, s in enumerate(sentences) if rewritable(s)] or list(range(len(sentences)))
        return [i for i in eligible if i not in tried]

    def pick(self, number: int, sentences: list[str], weights: list[float], tried: list[int]) -> tuple[int, float]:
        """Round `number`'s sentence and its probability."""
        allowed = self.candidates(sentences, tried) or self.candidates(sentences, [])
        # Seeded by (seed, round), not by a generator carried along: a resumed round draws the same.
        rng = random.Random(f"{self.ctx.seed}:{number}")
        return pick_sentence(weights, rng, allowed)

    def next_pick(self, number: int, history: list[RoundRecord]) -> int | None:
        """The sentence round `number` would rewrite after `history` (None: nothing to rewrite)."""
        sentences, weights, tried, _ = self.current(history, self.best(history).prompt)
        return self.pick(number, sentences, weights, tried)[0] if sentences else None

    def should_stop(self, history: list[RoundRecord]) -> str | None:
        reason = self.acceptance.nothing_to_gain(self.best(history).score)
        if reason or len(history) < 2:
            return reason
        sentences, _, tried, stale = self.current(history, self.best(history).prompt)
        if stale >= self.patience:
            return f"no sentence rewrite improved the prompt in the last {stale} steps"
        if sentences and not self.candidates(sentences, tried):
            return "every sentence was rewritten once without improving the prompt"
        return None

    def feedback(self, answers: list[AnswerRecord]) -> tuple[str, str]:
        """(title, text): the wrong answers under a metric, else all answers with references."""
        t = self.ctx.template
        metric = self.acceptance.metric
        if metric is not None:
            wrong = [i for i, mark in enumerate(correct_marks(answers, t.golden, metric)) if mark is False]
            if wrong:
                text = format_qa_block(
                    [self.ctx.questions[i] for i in wrong], [answers[i] for i in wrong], [t.golden[i] for i in wrong]
                )
                return "Questions the prompt gets wrong (with the reference answers)", text
        text = format_qa_block(self.ctx.questions, answers, t.golden)
        return "The answers the prompt produced (with reference answers where known)", text

    def rewrite_messages(self, prompt: str, sentence: str, answers: list[AnswerRecord]) -> list[dict[str, str]]:
        title, text = self.feedback(answers)
        content = self.render_prompt(
            "dual_phase_rewrite",
            requirements=self.ctx.template.requirements.strip() or "(none given)",
            prompt=prompt.strip(),
            sentence=sentence.strip(),
            feedback_title=title,
            feedback=text,
        )
        return [{"role": "user", "content": content}]

    async def propose_sentence(self, messages: list[dict[str, str]], number: int, old: str) -> Proposal:
        """`propose` for a <sentence> reply."""
        return await self.propose(
            messages, number, unchanged=old, parse=parse_sentence, what="<sentence>", shape=SENTENCE
        )

    async def step(self, number: int, history: list[RoundRecord]) -> RoundRecord:
        events = self.ctx.events
        base = await self.base_for_step(history)
        base_answers = base.answers
        sentences, weights, tried, stale = self.current(history, base.prompt)
        record = RoundRecord(round=number, base_round=base.round)
        if not sentences:
            record.state = phase2_state(sentences, weights, tried, stale + 1)
            record.verdict, record.error = "failed", "the prompt has no sentence to rewrite"
            return record
        index, probability = self.pick(number, sentences, weights, tried)
        old = sentences[index]
        pick: dict[str, Any] = {"picked": index, "probability": round(probability, 6), "old_sentence": old.strip()}

        def rejected() -> list[list[RoundRecord]]:
            # A rejection excludes this sentence from the next pick: its reward cannot change it.
            lost = RoundRecord(round=number, base_round=base.round)
            return [[*history, self._rejected(lost, sentences, weights, tried, stale, pick, 0.0)]]

        self.optimizing(number, rejected)
        messages = self.rewrite_messages(base.prompt, old, base_answers)
        proposal = await self.propose_sentence(messages, number, old)
        record.analysis = proposal.analysis
        if proposal.prompt is None:
            return self._failed(record, sentences, weights, tried, stale, pick, proposal.error or "no rewrite")
        new_sentences = replace_sentence(sentences, index, proposal.prompt)
        record.prompt = "".join(new_sentences)
        record.modification = f"rewrote sentence {index + 1}: {proposal.prompt.strip()}"
        pick["new_sentence"] = proposal.prompt.strip()

        events.phase(number, "execute")
        record.answers = await execute(self.ctx.llm, record.prompt, self.ctx.questions)
        if all(a.error is not None for a in record.answers):
            error = "every execution of the candidate failed"
            return self._failed(record, sentences, weights, tried, stale, pick, error)
        if self.acceptance.metric is None:

            def branches() -> list[list[RoundRecord]]:
                rejected = self._rejected(record.model_copy(), sentences, weights, tried, stale, pick, 0.0)
                out = [[*history, rejected]]
                # An acceptance moves the sentence's weight by its reward, which the votes decide: write
                # ahead only when the next pick is the same for the smallest and the largest reward
                # (the pick moves monotonically with the weight, so then it is the same for every one).
                accepted = [
                    [*history, self._accepted(record.model_copy(), new_sentences, weights, pick, reward)]
                    for reward in ACCEPTED_REWARDS
                ]
                if len({self.next_pick(number + 1, h) for h in accepted}) == 1:
                    out.append(accepted[-1])
                return out

            self.judging(number, branches)
        scored = await self.acceptance.decide(base_answers, record.answers)
        reward = scored.score - scored.base_score
        record.votes, record.score, record.decision = scored.votes, scored.score, scored.summary
        if not scored.accepted:
            return self._rejected(record, sentences, weights, tried, stale, pick, reward)
        return self._accepted(record, new_sentences, weights, pick, reward)

    def _accepted(
        self, record: RoundRecord, new_sentences: list[str], weights: list[float], pick: dict[str, Any], reward: float
    ) -> RoundRecord:
        """The rewrite is the new best: its sentence's weight moves by the reward, nothing counts as tried."""
        weights = exp3_update(weights, pick["picked"], reward, pick["probability"], self.eta)
        record.succeed, record.verdict = True, "accepted"
        record.state = {**phase2_state(new_sentences, weights, [], 0), **pick, "reward": round(reward, 6)}
        return record

    def _rejected(
        self,
        record: RoundRecord,
        sentences: list[str],
        weights: list[float],
        tried: list[int],
        stale: int,
        pick: dict[str, Any],
        reward: float,
    ) -> RoundRecord:
        """The best prompt stays; the picked sentence's weight moves by the reward and it counts as tried."""
        index, probability = pick["picked"], pick["probability"]
        weights = exp3_update(weights, index, reward, probability, self.eta)
        tried = sorted({*tried, index})
        record.state = {**phase2_state(sentences, weights, tried, stale + 1), **pick, "reward": round(reward, 6)}
        record.succeed, record.verdict = False, "rejected"
        return record

    def _failed(
        self,
        record: RoundRecord,
        sentences: list[str],
        weights: list[float],
        tried: list[int],
        stale: int,
        pick: dict[str, Any],
        error: str,
    ) -> RoundRecord:
        """Nothing was tried (no usable rewrite, or no answer to judge): no reward, not counted as tried or stale."""
        record.state = {**phase2_state(sentences, weights, tried, stale), **pick}
        record.succeed, record.verdict, record.error = False, "failed", error
        return record


def phase2_state(sentences: list[str], weights: list[float], tried: list[int], stale: int) -> dict[str, Any]:
    """The part of `state` the next step resumes from."""
    return {
        "sentences": list(sentences),
        "weights": [round(w, 6) for w in weights],
        "tried": list(tried),
        "stale": stale,
    }
