"""Optimize on 3 train questions, then measure the initial and final prompts on held-out test questions.

One LLM client (with promptopt's response cache) serves the whole benchmark: a run that was cut
off resumes from its workspace, and every call already answered replays from the cache, so
running the same command again costs only what is missing.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from promptopt.api import optimize_async
from promptopt.config import RunConfig
from promptopt.engine.concurrency import gather_ordered
from promptopt.engine.diagnostics import combined, judge_stats
from promptopt.engine.execute import answer_one
from promptopt.errors import BudgetExceeded
from promptopt.files import atomic_write
from promptopt.llm import LLM, Completion
from promptopt.records import AnswerRecord, RoundRecord
from promptopt.template import dump_template
from qualitykit.scoring import scorer
from qualitykit.tasks import DATA, TASKS, Item, Task, build_template, load_split, pick_subset, pick_train

PROMPTS = ("initial", "final", "best")
Progress = Callable[[str], None]


@dataclass
class Settings:
    """What to measure: tasks, seeds, question counts and the run configuration shared by all runs."""

    tasks: list[str]
    seeds: list[int]
    config: RunConfig
    test_size: int = 0
    holdout: int = 0
    labels: bool = False
    data: Path = DATA


@dataclass
class TaskData:
    task: Task
    train: list[Item]
    test: list[Item]  # the measured subset, in order
    test_indices: list[int]
    test_total: int
    holdout: list[Item] = field(default_factory=list)


@dataclass
class SeedResult:
    """One seed of one task: the run's outcome and the held-out marks of each prompt."""

    task: str
    seed: int
    run: str  # the workspace folder of the optimization
    train: list[int]  # indices into the train split
    best_round: int
    final_round: int  # the confirmed round: best when the gate confirmed it, else 1
    rounds: int
    verdicts: dict[str, int]
    stopped: str
    gate: dict[str, Any]
    prompts: dict[str, str]
    marks: dict[str, list[bool]]  # per test question: right or wrong, for each of PROMPTS
    failed_answers: dict[str, int]
    judge: dict[str, int]  # the rounds' votes: JudgeStats counts (votes, abstained, position_a, pairs, consistent)
    gate_judge: dict[str, int]
    usage: dict[str, dict[str, Any]]  # "optimize" and "evaluation": see Meter

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def load_task(name: str, settings: Settings) -> TaskData:
    """Read a task's splits and pick the measured test subset and the gate's held-out questions."""
    task = TASKS[name]
    train = load_split(task, "train", settings.data)
    test_all = load_split(task, "test", settings.data)
    chosen = pick_subset(task, test_all, settings.test_size, "test")
    holdout: list[Item] = []
    if settings.holdout:
        validation = load_split(task, "validation", settings.data)
        holdout = [validation[i] for i in pick_subset(task, validation, settings.holdout, "validation")]
    return TaskData(task, train, [test_all[i] for i in chosen], chosen, len(test_all), holdout)


def run_name(data: TaskData, seed: int, settings: Settings, template_text: str) -> str:
    """`navigate-seed1-<key>`: the key covers what makes two runs different (not --rounds: more rounds resume).

    The models are named with their endpoint and, for `--model local`, the GGUF file that serves
    them: two files behind the same model name are two runs.
    """
    from promptopt.local import served_file

    c = settings.config
    models = {}
    for role in ("optimizer", "evaluator", "executor"):
        r = c.role(role)
        models[role] = (r.model, r.api_base, r.temperature, r.extra, served_file(r.model))
    payload = {
        "template": template_text,
        "models": models,
        "strategy": (c.strategy, c.strategy_options, c.accept, c.votes, c.max_votes, c.alpha, c.confirm),
    }
    key = hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:8]
    return f"{data.task.name}-seed{seed}-{key}"


USAGE_KEYS = ("calls", "prompt_tokens", "completion_tokens", "cost_usd", "seconds")
PHASES = ("optimize", "evaluation")


def zero() -> dict[str, Any]:
    return {**dict.fromkeys(USAGE_KEYS, 0), "unpriced": False}


class Meter:
    """What each phase of a run paid for (the client's on_call), kept in `<run>/quality.json`.

    The totals add up over invocations, so a benchmark that was interrupted and run again reports
    what the whole run paid and how long it took, not only the remainder; replies taken from the
    cache are counted apart (`cached_now`, this invocation only).
    """

    def __init__(self) -> None:
        self.path: Path | None = None
        self.phase: str | None = None
        self.pending = zero()
        self.cached = dict.fromkeys(PHASES, 0)
        self.mark = 0.0

    def on_call(self, completion: Completion) -> None:
        if self.phase is None:
            return
        if completion.cached:
            self.cached[self.phase] += 1
            return
        p = self.pending
        p["calls"] += 1
        p["prompt_tokens"] += completion.prompt_tokens
        p["completion_tokens"] += completion.completion_tokens
        p["cost_usd"] += completion.cost_usd
        p["unpriced"] = p["unpriced"] or not completion.priced

    def begin(self, path: Path, phase: str) -> None:
        """Count from now on for `phase` of the run at `path` (a new run resets `cached_now`)."""
        self.flush()
        if path != self.path:
            self.cached = dict.fromkeys(PHASES, 0)
        self.path, self.phase, self.mark = path, phase, time.perf_counter()

    def flush(self) -> None:
        """Add what was paid (and the wall time) since the last flush to the file."""
        if self.path is None or self.phase is None:
            return
        now = time.perf_counter()
        totals = self.totals(self.path)
        into = totals[self.phase]
        for key in USAGE_KEYS:
            into[key] += self.pending[key] if key != "seconds" else now - self.mark
        into["unpriced"] = into["unpriced"] or self.pending["unpriced"]
        into["cost_usd"], into["seconds"] = round(into["cost_usd"], 8), round(into["seconds"], 3)
        atomic_write(self.path / "quality.json", json.dumps(totals, indent=1) + "\n", durable=False)
        self.pending, self.mark = zero(), now

    def end(self) -> None:
        self.flush()
        self.phase = None

    @staticmethod
    def totals(path: Path) -> dict[str, dict[str, Any]]:
        try:
            stored = json.loads((path / "quality.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            stored = {}
        return {phase: {**zero(), **(stored.get(phase) or {})} for phase in PHASES}

    def usage(self, path: Path) -> dict[str, dict[str, Any]]:
        return {phase: {**u, "cached_now": self.cached[phase]} for phase, u in self.totals(path).items()}


async def run_seed(
    data: TaskData, seed: int, settings: Settings, llm: LLM, meter: Meter, progress: Progress
) -> SeedResult:
    """Optimize on the seed's 3 train questions, then answer the test questions with each prompt."""
    task = data.task
    train_idx = pick_train(task, data.train, seed)
    template = build_template(task, [data.train[i] for i in train_idx], data.holdout, settings.labels)
    name = run_name(data, seed, settings, dump_template(template))
    config = settings.config.model_copy(update={"name": name, "seed": seed, "holdout": None})
    label = f"{task.name} seed {seed}"

    def on_event(event: str, payload: object) -> None:
        if event == "round_done" and isinstance(payload, RoundRecord):
            meter.flush()
            marks = f" {payload.vote_marks}" if payload.votes else ""
            took = f", {payload.duration_s:.0f} s" if payload.duration_s is not None else ""
            progress(f"{label}: round {payload.round} {payload.verdict}{marks}{took}")
        elif event == "phase" and isinstance(payload, tuple) and payload[1] == "confirm":
            progress(f"{label}: confirming round {payload[0]} against round 1")
        elif event == "warning":
            progress(f"{label}: warning: {payload}")

    progress(
        f"{label}: optimizing on train questions {train_idx} ({config.max_rounds} rounds) in {config.workspace / name}"
    )
    root = Path(config.workspace) / name
    meter.begin(root, "optimize")
    result = await optimize_async(template, config, events=on_event, llm=llm)
    if result.stopped in ("budget", "deadline"):
        meter.end()
        raise BudgetExceeded(f"{label}: {result.message}; the same command with a larger --budget-usd resumes")
    final, best = result.confirmed, result.best
    prompts = {"initial": result.initial.prompt, "final": final.prompt, "best": best.prompt}
    questions = [item.question for item in data.test]
    distinct = list(dict.fromkeys(prompts.values()))
    progress(f"{label}: answering {len(questions)} test questions with {len(distinct)} prompt(s)")
    meter.begin(root, "evaluation")
    answered = await answer_all(llm, distinct, questions, lambda line: progress(f"{label}: {line}"))
    meter.end()
    by_prompt = dict(zip(distinct, answered, strict=True))
    score = scorer(task.kind)
    answers: dict[str, list[AnswerRecord]] = {k: by_prompt[p] for k, p in prompts.items()}
    marks = {
        k: [a.error is None and score(a.answer, item.gold) for a, item in zip(v, data.test, strict=True)]
        for k, v in answers.items()
    }
    gate = result.gate
    seed_result = SeedResult(
        task=task.name,
        seed=seed,
        run=str(result.workspace),
        train=train_idx,
        best_round=best.round,
        final_round=final.round,
        rounds=len(result.records),
        verdicts=_count(r.verdict or "?" for r in result.records[1:]),
        stopped=result.stopped,
        gate=_gate(gate),
        prompts=prompts,
        marks=marks,
        failed_answers={k: sum(a.error is not None for a in v) for k, v in answers.items()},
        judge=asdict(combined([r.votes for r in result.records])),
        gate_judge=asdict(judge_stats(gate.votes if gate is not None else [])),
        usage=meter.usage(root),
    )
    write_answers(Path(result.workspace), data, answers, marks)
    right = {k: sum(v) for k, v in marks.items()}
    progress(
        f"{label}: initial {right['initial']}/{len(questions)}, final {right['final']}/{len(questions)} "
        f"(gate: {seed_result.gate['outcome']}, best round {best.round})"
    )
    return seed_result


async def answer_all(
    llm: LLM, prompts: list[str], questions: list[str], progress: Progress
) -> list[list[AnswerRecord]]:
    """Each prompt's answers to the questions (in order), with a progress line every tenth of the way."""
    total, done = len(prompts) * len(questions), 0
    step = max(1, total // 10)

    async def one(prompt: str, question: str) -> AnswerRecord:
        nonlocal done
        record = await answer_one(llm, prompt, question)
        done += 1
        if done % step == 0 and done < total:
            progress(f"{done}/{total} answers")
        return record

    flat = await gather_ordered(one(p, q) for p in prompts for q in questions)
    return [flat[i * len(questions) : (i + 1) * len(questions)] for i in range(len(prompts))]


def _count(values: Any) -> dict[str, int]:
    out: dict[str, int] = {}
    for v in values:
        out[v] = out.get(v, 0) + 1
    return out


def _gate(gate: Any) -> dict[str, Any]:
    if gate is None:
        return {"outcome": "none", "method": "none", "reason": "the run stopped before the gate"}
    return {
        "outcome": gate.outcome,
        "method": gate.method,
        "wins": gate.wins,
        "losses": gate.losses,
        "ties": gate.ties,
        "p_value": gate.p_value,
        "level": gate.level,
        "reason": gate.reason,
    }


def write_answers(
    root: Path, data: TaskData, answers: dict[str, list[AnswerRecord]], marks: dict[str, list[bool]]
) -> None:
    """`<run>/heldout.json`: every test question with its gold answer and each prompt's reply and mark."""
    rows = [
        {
            "index": data.test_indices[i],
            "question": item.question,
            "gold": item.gold,
            **{
                k: {"answer": answers[k][i].answer, "error": answers[k][i].error, "correct": marks[k][i]}
                for k in PROMPTS
            },
        }
        for i, item in enumerate(data.test)
    ]
    atomic_write(root / "heldout.json", json.dumps(rows, indent=1, ensure_ascii=False) + "\n", durable=False)


async def run_benchmark(
    settings: Settings, llm: LLM, meter: Meter, progress: Progress
) -> tuple[list[TaskData], list[SeedResult]]:
    """Every task and seed in turn; all data is read (and checked) before the first model call."""
    loaded = [load_task(name, settings) for name in settings.tasks]
    results = []
    for data in loaded:
        for seed in settings.seeds:
            results.append(await run_seed(data, seed, settings, llm, meter, progress))
    return loaded, results
