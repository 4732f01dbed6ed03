"""A simulated world for testing judging rules: prompts with a hidden true quality, an optimizer whose
proposals are its base's quality plus noise, and judges that err as a function of the quality gap.

`SimWorld` is an `LLM` (promptopt.llm) for every role, so runs go through the real `run_optimization`:
- the optimizer writes "Prompt #<id>: …"; the new prompt's hidden quality is its base's plus a draw
  from N(mu, sigma), clamped to [0, 1] (slightly worse on average: most edits do not help);
- the executor's answers carry the prompt's id ("[#<id>/<question>] …"), so the judge can tell which
  prompt wrote each answer, also when it sees one question alone (the confirmation gate);
- the judge reads the A and B answers, looks up their true qualities and asks its `Judge` model
  (blind, position-biased, good on all but close calls, noisy) for "A" or "B".

Every reply is a pure function of (world seed, the run's seed for the sampled roles, role, request,
sample): a run is reproducible, a resumed run replays, and a new run seed samples anew. A proposal's
draw depends on (seeds, sample) and not on its base, so `oracle()` can replay the very same draws
with a judge that always knows the truth: the same proposals, accepted iff truly better.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from promptopt.llm import Completion, Ledger

START = "start"  # the id of any prompt without one: the user's own
START_PROMPT = "Answer the question clearly in a short paragraph."
PROMPT_ID = re.compile(r"Prompt #([0-9a-f]{10}):")
ANSWER_ID = re.compile(r"\[#(\w+)/([0-9a-f]{8})\]")
SAMPLED = ("optimizer", "evaluator")  # roles a real run samples (temperature > 0): keyed by the run seed


def draw(*parts: object) -> random.Random:
    """A generator seeded by a hash of `parts` (stable across processes, unlike hash())."""
    digest = hashlib.sha256("\x1f".join(map(str, parts)).encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def clamp(x: float) -> float:
    return min(1.0, max(0.0, x))


# --- judges -------------------------------------------------------------------------------------


class Judge(Protocol):
    """Chooses "A" or "B" given the true quality gap (B minus A) of what it reads."""

    name: str

    def choose(self, gap: float, rng: random.Random) -> str: ...


def other(choice: str) -> str:
    return "B" if choice == "A" else "A"


@dataclass
class Blind:
    """A coin flip, whatever it reads."""

    name: str = "blind"

    def choose(self, gap: float, rng: random.Random) -> str:
        return rng.choice("AB")


@dataclass
class Good:
    """Errs only on close calls: P(correct) = 0.5 + 0.5·min(1, |gap| / width)."""

    width: float = 0.1
    name: str = "good"

    def choose(self, gap: float, rng: random.Random) -> str:
        right = "B" if gap > 0 else "A"
        return right if rng.random() < 0.5 + 0.5 * min(1.0, abs(gap) / self.width) else other(right)


@dataclass
class Noisy:
    """Logistic in the gap: P(B) = 1 / (1 + exp(-gap / scale))."""

    scale: float = 0.05
    name: str = "noisy"

    def choose(self, gap: float, rng: random.Random) -> str:
        return "B" if rng.random() < 1.0 / (1.0 + math.exp(-gap / self.scale)) else "A"


@dataclass
class Biased:
    """Says "A" with probability `share` whatever it reads, otherwise judges as `then` does."""

    share: float = 0.5
    then: Judge = field(default_factory=Good)
    name: str = "biased"

    def choose(self, gap: float, rng: random.Random) -> str:
        return "A" if rng.random() < self.share else self.then.choose(gap, rng)


@dataclass
class Oracle:
    """Always right; on an exact tie says "A" (so both orders split and nothing is accepted)."""

    name: str = "oracle"

    def choose(self, gap: float, rng: random.Random) -> str:
        return "B" if gap > 0 else "A"


def judges() -> dict[str, Judge]:
    """The judges the tests and the benchmark use, by name."""
    return {
        "blind": Blind(),
        "biased": Biased(0.5, Good()),
        "biased-coin": Biased(0.5, Blind(), name="biased-coin"),
        "good": Good(),
        "noisy": Noisy(),
        "oracle": Oracle(),
    }


# --- the world ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Params:
    start: float = 0.5  # the user's prompt's true quality
    mu: float = -0.02  # a proposal's mean change: slightly worse on average
    sigma: float = 0.08  # a proposal's spread around its base
    spread: float = 0.0  # per-question deviation from a prompt's quality (0: every question alike)
    # The judge's own persistent error: it perceives each answer's quality off by N(0, opinion), the
    # same every time it reads that answer (an item-level bias, unlike sampling noise).
    opinion: float = 0.0
    sticky: bool = False  # the judge's reply depends on what it reads, not on the sample (temperature 0)


class SimWorld:
    """Every role of an `LLM`, answering from hidden true qualities (see the module docstring)."""

    def __init__(self, judge: Judge, seed: int = 0, params: Params | None = None) -> None:
        self.judge, self.seed, self.params = judge, seed, params or Params()
        self.qualities: dict[str, float] = {START: self.params.start}
        self.draws: dict[int, float] = {}  # optimizer sample → the change it drew
        self.usage = Ledger()
        self.run_seed: int | None = None
        self.warnings: list[str] = []
        self.startup_seconds = 0.0

    # what the world knows
    def prompt_id(self, prompt: str) -> str:
        found = PROMPT_ID.search(prompt)
        return found.group(1) if found else START

    def quality(self, prompt: str) -> float:
        """The true quality of a prompt text (KeyError for an id this world never wrote)."""
        return self.qualities[self.prompt_id(prompt)]

    def question_quality(self, pid: str, question: str) -> float:
        base = self.qualities.get(pid, 0.0)
        if not self.params.spread:
            return base
        return clamp(base + draw(self.seed, "question", pid, question).gauss(0.0, self.params.spread))

    def change(self, sample: int) -> float:
        """The change a proposal made with this optimizer sample draws (whatever its base)."""
        return draw(self.seed, self.run_seed, "change", sample).gauss(self.params.mu, self.params.sigma)

    def oracle(self) -> float:
        """The final quality of the same proposals, each accepted iff truly better than the best so far."""
        q = self.params.start
        for sample in sorted(self.draws):
            q = max(q, clamp(q + self.draws[sample]))
        return q

    # the roles
    def optimize(self, content: str, sample: int) -> str:
        base = self.prompt_id(content)
        pid = hashlib.sha256(f"{self.seed}\x1f{self.run_seed}\x1f{content}\x1f{sample}".encode()).hexdigest()[:10]
        self.draws[sample] = self.change(sample)
        self.qualities[pid] = clamp(self.qualities[base] + self.draws[sample])
        return (
            f"<analyse>simulated</analyse><modification>revision {pid}</modification>"
            f"<prompt>Prompt #{pid}: {START_PROMPT}</prompt>"
        )

    def execute(self, content: str) -> str:
        prompt, _, question = content.rpartition("\n\n")
        qkey = hashlib.sha256(question.strip().encode()).hexdigest()[:8]
        return f"[#{self.prompt_id(prompt)}/{qkey}] An answer to: {question.strip()[:60]}"

    def perceived(self, pid: str, qkey: str) -> float:
        """An answer's quality as the judge sees it: the truth, off by its persistent opinion."""
        q = self.question_quality(pid, qkey)
        if self.params.opinion:
            q += draw(self.seed, "opinion", pid, qkey).gauss(0.0, self.params.opinion)
        return q

    def side(self, content: str, letter: str) -> float:
        """The mean perceived quality of the answers shown as `letter` (a failed answer counts 0)."""
        values = []
        for line in re.findall(rf"^{letter}: (.*)$", content, flags=re.MULTILINE):
            found = ANSWER_ID.search(line)
            values.append(self.perceived(found.group(1), found.group(2)) if found else 0.0)
        return sum(values) / len(values) if values else 0.0

    def evaluate(self, content: str, rng: random.Random) -> str:
        choice = self.judge.choose(self.side(content, "B") - self.side(content, "A"), rng)
        return f"<analyse>simulated</analyse><choose>{choice}</choose>"

    async def complete(
        self, role: str, messages: list[dict[str, Any]], *, sample: int = 0, shape: Any = None
    ) -> Completion:
        content = "\n".join(str(m.get("content", "")) for m in messages)
        if role == "optimizer":
            text = self.optimize(content, sample)
        elif role == "executor":
            text = self.execute(content)
        else:
            run = self.run_seed if role in SAMPLED else None
            text = self.evaluate(content, draw(self.seed, run, role, content, 0 if self.params.sticky else sample))
        done = Completion(text=text, role=role, model=f"sim-{role}", prompt_tokens=len(content) // 4)
        done.completion_tokens = len(text) // 4
        self.usage.record(done)
        return done


# --- one simulated run and a table of many -----------------------------------------------------


def template_text(questions: int, holdout: int = 0) -> str:
    """A template of `questions` questions, and `holdout` held-out ones (the confirmation gate's too)."""
    qa = "".join(f"  - question: Question {i + 1} of the simulated task\n" for i in range(questions))
    held = "".join(f"  - question: Held-out question {i + 1}\n" for i in range(holdout))
    return f"prompt: {START_PROMPT}\nrequirements: Accurate and clear.\nqa:\n{qa}" + (
        f"holdout:\n{held}" if held else ""
    )


@dataclass
class SimRun:
    """What one run did, measured against the truth."""

    start: float  # the user's prompt's true quality
    final: float  # the true quality of the prompt the run stands behind (RunResult.confirmed)
    oracle: float  # the same proposals accepted iff truly better
    best_round: int
    reported_round: int
    round_votes: int  # judge calls in the rounds
    gate_votes: int  # judge calls of the confirmation gate
    comparisons: int  # rounds that judged a candidate

    @property
    def worse(self) -> bool:
        return self.final < self.start


def simulate(
    judge: Judge,
    seed: int,
    root: Path,
    questions: int = 3,
    rounds: int = 10,
    params: Params | None = None,
    holdout: int = 0,
    **config: Any,
) -> SimRun:
    """One seeded run of `run_optimization` in the world (workspace `root/run-<seed>`), RunConfig(**config)."""
    from promptopt.config import RunConfig
    from promptopt.engine.loop import run_optimization
    from promptopt.template import parse_template
    from promptopt.workspace import Workspace

    world = SimWorld(judge, seed, params)
    template = parse_template(template_text(questions, holdout), "sim.yaml")
    cfg = RunConfig(max_rounds=rounds, seed=seed, **config)
    result = asyncio.run(run_optimization(template, cfg, world, Workspace(root, f"run-{seed}")))
    judged = [r for r in result.records if r.round > 1 and r.verdict in ("win", "lose")]
    return SimRun(
        start=world.params.start,
        final=world.quality(result.confirmed.prompt),
        oracle=world.oracle(),
        best_round=result.best.round,
        reported_round=result.confirmed.round,
        round_votes=sum(len(r.votes) for r in judged),
        gate_votes=len(result.gate.votes) if result.gate else 0,
        comparisons=len(judged),
    )


@dataclass
class Summary:
    """A cell of the table: many runs of one judge under one rule."""

    runs: int
    worse: int
    final: float  # mean true quality of the reported prompt
    oracle: float
    shortfall_high: float  # one-sided 95% upper bound of the mean (oracle - final)
    calls_per_round: float  # judge calls in the rounds per comparison
    calls_per_round_all: float  # the same with the gate's calls added
    calls_per_run: float  # rounds + gate
    calls_per_round_high: float  # one-sided 95% upper bound of calls_per_round_all (per-run means)

    @property
    def worse_rate(self) -> float:
        return self.worse / self.runs

    @property
    def shortfall(self) -> float:
        return self.oracle - self.final


def mean_and_high(values: Sequence[float]) -> tuple[float, float]:
    """The mean and its one-sided 95% upper bound (normal approximation)."""
    n = len(values)
    m = sum(values) / n
    sd = math.sqrt(sum((v - m) ** 2 for v in values) / (n - 1)) if n > 1 else 0.0
    return m, m + 1.6448536269514722 * sd / math.sqrt(n)


def summarize(runs: Sequence[SimRun]) -> Summary:
    comparisons = sum(r.comparisons for r in runs) or 1
    per_run = [(r.round_votes + r.gate_votes) / max(1, r.comparisons) for r in runs]
    _, calls_high = mean_and_high(per_run)
    _, short_high = mean_and_high([r.oracle - r.final for r in runs])
    return Summary(
        runs=len(runs),
        worse=sum(r.worse for r in runs),
        final=sum(r.final for r in runs) / len(runs),
        oracle=sum(r.oracle for r in runs) / len(runs),
        shortfall_high=short_high,
        calls_per_round=sum(r.round_votes for r in runs) / comparisons,
        calls_per_round_all=sum(r.round_votes + r.gate_votes for r in runs) / comparisons,
        calls_per_run=sum(r.round_votes + r.gate_votes for r in runs) / len(runs),
        calls_per_round_high=calls_high,
    )
