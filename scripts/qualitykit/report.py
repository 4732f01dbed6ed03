"""The benchmark's numbers: accuracy with Wilson intervals, the paired difference, McNemar, cost.

Units. A task has n test questions and S seeds. Each prompt's accuracy is the share of right
answers over the S × n answers; its 95% interval is Wilson's with the n *questions* as the unit
(each question scores the mean of its S marks), because the same questions recur in every seed
and, with a deterministic executor, the initial prompt's answers repeat exactly. The difference
final − initial gets a percentile bootstrap interval over questions (10,000 resamples, seeded).
McNemar's exact test is given per seed and pooled (discordant pairs added over seeds); the pooled
one treats the S × n pairs as independent, which they are not, so read it with the per-seed ones.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

from promptopt.engine.stats import mcnemar, wilson
from qualitykit.run import PROMPTS, SeedResult, Settings, TaskData

BOOTSTRAP = 10_000
USAGE_KEYS = ("calls", "cached_now", "prompt_tokens", "completion_tokens", "cost_usd", "seconds")


def accuracy(per_question: Sequence[float]) -> dict[str, Any]:
    """Mean of per-question scores (each 0..1) with a Wilson 95% interval over the questions."""
    n = len(per_question)
    total = sum(per_question)
    low, high = wilson(total, n)
    return {"accuracy": total / n if n else None, "ci95": [low, high], "questions": n}


def bootstrap_ci(diffs: Sequence[float], resamples: int = BOOTSTRAP, seed: int = 0) -> list[float]:
    """Percentile 95% interval of the mean of `diffs`, resampling the questions."""
    n = len(diffs)
    if n == 0:
        return [0.0, 0.0]
    rng = random.Random(seed)
    means = sorted(sum(diffs[rng.randrange(n)] for _ in range(n)) / n for _ in range(resamples))
    return [means[int(0.025 * resamples)], means[int(0.975 * resamples) - 1]]


def discordant(initial: Sequence[bool], final: Sequence[bool]) -> tuple[int, int]:
    """(only the initial prompt right, only the final prompt right)."""
    only_initial = sum(1 for a, b in zip(initial, final, strict=True) if a and not b)
    only_final = sum(1 for a, b in zip(initial, final, strict=True) if b and not a)
    return only_initial, only_final


def add_usage(items: Sequence[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {k: 0 for k in USAGE_KEYS}
    for u in items:
        for k in USAGE_KEYS:
            out[k] += u.get(k, 0)
    out["cost_usd"] = round(out["cost_usd"], 6)
    out["seconds"] = round(out["seconds"], 1)
    out["unpriced"] = any(u.get("unpriced") for u in items)
    return out


def add_judge(items: Sequence[dict[str, int]]) -> dict[str, Any]:
    """Judge counts added over runs, with the shares promptopt's `show` reports."""
    total = {k: sum(j[k] for j in items) for k in ("votes", "abstained", "position_a", "pairs", "consistent")}
    valid = total["votes"] - total["abstained"]
    return {
        **total,
        # Share of valid votes for whichever answer was shown first: 0.5 for a judge without position bias.
        "share_a": round(total["position_a"] / valid, 3) if valid else None,
        # Share of pairs whose two orders agree: about 1 for a judge that sees a difference, 0.5 for a coin.
        "consistency": round(total["consistent"] / total["pairs"], 3) if total["pairs"] else None,
    }


def task_report(data: TaskData, seeds: list[SeedResult]) -> dict[str, Any]:
    """Everything measured on one task, over its seeds."""
    n = len(data.test)
    per_question = {k: [sum(s.marks[k][q] for s in seeds) / len(seeds) for q in range(n)] for k in PROMPTS}
    diffs = [f - i for f, i in zip(per_question["final"], per_question["initial"], strict=True)]
    pooled_i = pooled_f = 0
    per_seed = []
    for s in seeds:
        only_i, only_f = discordant(s.marks["initial"], s.marks["final"])
        pooled_i, pooled_f = pooled_i + only_i, pooled_f + only_f
        per_seed.append(
            {
                "seed": s.seed,
                **{f"{k}_accuracy": sum(s.marks[k]) / n for k in PROMPTS},
                "initial_ci95": list(wilson(sum(s.marks["initial"]), n)),
                "final_ci95": list(wilson(sum(s.marks["final"]), n)),
                "only_initial": only_i,
                "only_final": only_f,
                "mcnemar_p": mcnemar(only_i, only_f),
                **{k: getattr(s, k) for k in ("train", "run", "best_round", "final_round", "rounds", "verdicts")},
                **{k: getattr(s, k) for k in ("stopped", "gate", "failed_answers", "usage")},
                "judge": add_judge([s.judge]),
                "gate_judge": add_judge([s.gate_judge]),
                "prompts": s.prompts,
            }
        )
    gate: dict[str, int] = {}
    for s in seeds:
        gate[s.gate["outcome"]] = gate.get(s.gate["outcome"], 0) + 1
    mean_diff = sum(diffs) / n if n else 0.0
    return {
        "task": data.task.name,
        "title": data.task.title,
        "test_questions": n,
        "test_split_size": data.test_total,
        "test_indices": data.test_indices,
        "holdout_questions": len(data.holdout),
        "seeds": [s.seed for s in seeds],
        **{k: accuracy(per_question[k]) for k in PROMPTS},
        "difference": {
            "final_minus_initial": mean_diff,
            "ci95": bootstrap_ci(diffs),
            "only_initial": pooled_i,
            "only_final": pooled_f,
            "mcnemar_p_pooled": mcnemar(pooled_i, pooled_f),
            "mcnemar_p_per_seed": [p["mcnemar_p"] for p in per_seed],
        },
        "gate": gate,
        "judge": add_judge([s.judge for s in seeds]),
        "gate_judge": add_judge([s.gate_judge for s in seeds]),
        "usage": {part: add_usage([s.usage[part] for s in seeds]) for part in ("optimize", "evaluation")},
        "per_seed": per_seed,
    }


def build_report(settings: Settings, loaded: list[TaskData], results: list[SeedResult]) -> dict[str, Any]:
    """The JSON report: settings, one entry per task, and the mean over tasks (as SPO's table has it)."""
    c = settings.config
    tasks = [task_report(d, [r for r in results if r.task == d.task.name]) for d in loaded]
    mean = {k: sum(t[k]["accuracy"] for t in tasks) / len(tasks) for k in PROMPTS} if tasks else {}
    return {
        "settings": {
            "tasks": settings.tasks,
            "seeds": settings.seeds,
            "rounds": c.max_rounds,
            "strategy": c.strategy,
            "accept": c.accept,
            "votes": c.votes,
            "max_votes": c.max_votes,
            "alpha": c.alpha,
            "confirm": c.confirm,
            "labels": settings.labels,
            "test_size": settings.test_size,
            "holdout": settings.holdout,
            "data": str(settings.data),
            "workspace": str(c.workspace),
            "models": {r: c.role(r).model for r in ("optimizer", "evaluator", "executor")},
        },
        "tasks": tasks,
        "mean_over_tasks": mean,
        "usage": {part: add_usage([t["usage"][part] for t in tasks]) for part in ("optimize", "evaluation")},
    }


# --- text --------------------------------------------------------------------------------------


GATE_WORDS = {"not needed": "no later round beat round 1", "skipped": "--no-confirm"}


def preview(text: str, width: int = 160) -> str:
    """A prompt on one line, shortened; control characters shown escaped (model text is data)."""
    one = " ".join(text.split())
    one = one if one.isprintable() else one.encode("unicode_escape").decode("ascii")
    return one if len(one) <= width else one[: width - 1] + "…"


def pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.1f}%"


def interval(ci: Sequence[float]) -> str:
    return f"{100 * ci[0]:.1f}–{100 * ci[1]:.1f}%"


def signed_pts(x: float) -> str:
    return f"{100 * x:+.1f} pts"


def judge_line(j: dict[str, Any]) -> str:
    if not j["votes"]:
        return "no votes"
    consistency = "–" if j["consistency"] is None else f"{j['consistency']:.2f}"
    share = "–" if j["share_a"] is None else f"{j['share_a']:.2f}"
    return (
        f"{j['votes']} votes, {j['abstained']} abstained, both orders agree in {consistency} of {j['pairs']} pairs, "
        f"first-shown answer chosen {share}"
    )


def usage_line(u: dict[str, Any]) -> str:
    cost = "no price" if u["unpriced"] and not u["cost_usd"] else f"${u['cost_usd']:.4f}"
    cached = f" (+{u['cached_now']} from the cache now)" if u["cached_now"] else ""
    return (
        f"{u['calls']} paid calls{cached}, {u['prompt_tokens']:,}+{u['completion_tokens']:,} tokens, {cost}, "
        f"{_duration(u['seconds'])}"
    )


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def render(report: dict[str, Any]) -> str:
    """The report as plain text (what the terminal shows without --json)."""
    s = report["settings"]
    models = s["models"]
    same = len(set(models.values())) == 1
    who = models["executor"] if same else ", ".join(f"{r} {m}" for r, m in models.items())
    lines = [
        f"Held-out quality: {who}; {s['strategy']} ({s['accept']}), {s['rounds']} rounds, seeds {s['seeds']}, "
        f"{'labelled' if s['labels'] else 'label-free (SPO)'}",
        "",
    ]
    for t in report["tasks"]:
        d = t["difference"]
        subset = "" if t["test_questions"] == t["test_split_size"] else f" of {t['test_split_size']} (seeded subset)"
        lines.append(f"{t['title']}: {t['test_questions']} test questions{subset}, {len(t['seeds'])} seed(s)")
        lines.append(f"  {'prompt':<8} {'accuracy':>9}  {'95% CI':<13}  per seed")
        for k in PROMPTS:
            per_seed = " / ".join(pct(p[f"{k}_accuracy"]) for p in t["per_seed"])
            lines.append(f"  {k:<8} {pct(t[k]['accuracy']):>9}  {interval(t[k]['ci95']):<13}  {per_seed}")
        per_seed_p = ", ".join(f"{p:.3g}" for p in d["mcnemar_p_per_seed"])
        lines.append(
            f"  final − initial: {signed_pts(d['final_minus_initial'])} "
            f"(95% CI {signed_pts(d['ci95'][0])} to {signed_pts(d['ci95'][1])})"
        )
        lines.append(
            f"  McNemar: {d['only_final']} right only with the final prompt, {d['only_initial']} only with the "
            f"initial; p = {d['mcnemar_p_pooled']:.3g} pooled, per seed {per_seed_p}"
        )
        gate = ", ".join(f"{v} {k}" for k, v in sorted(t["gate"].items()))
        lines.append(f"  gate: {gate}")
        for p in t["per_seed"]:
            verdicts = ", ".join(f"{v} {k}" for k, v in sorted(p["verdicts"].items())) or "no later rounds"
            why = p["gate"]["reason"] or GATE_WORDS.get(p["gate"]["outcome"], "")
            lines.append(
                f"    seed {p['seed']}: train {p['train']}, best round {p['best_round']} of {p['rounds']} "
                f"({verdicts}); gate {p['gate']['outcome']}" + (f": {why}" if why else "")
            )
            if p["prompts"]["final"] != p["prompts"]["initial"]:
                lines.append(f"      final prompt (round {p['final_round']}): {preview(p['prompts']['final'])}")
        lines.append(f"  judge in the rounds: {judge_line(t['judge'])}")
        lines.append(f"  judge in the gate:   {judge_line(t['gate_judge'])}")
        u = t["usage"]
        lines.append(f"  optimize:   {usage_line(u['optimize'])}")
        lines.append(f"  evaluation: {usage_line(u['evaluation'])}")
        lines.append("")
    if len(report["tasks"]) > 1:
        m = report["mean_over_tasks"]
        lines.append(f"Mean over {len(report['tasks'])} tasks: initial {pct(m['initial'])}, final {pct(m['final'])}")
        lines.append(f"  optimize:   {usage_line(report['usage']['optimize'])}")
        lines.append(f"  evaluation: {usage_line(report['usage']['evaluation'])}")
    return "\n".join(lines).rstrip() + "\n"
