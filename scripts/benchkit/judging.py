"""judging: error rates of the judging rules in a simulated world (promptopt.testing.simworld).

Every prompt has a hidden true quality; the optimizer's proposals are their base's quality plus
noise; each judge model errs in its own way. Per judge × rule, over --sim-runs seeded runs of the
real `run_optimization`: how often the prompt the run stands behind is truly worse than the user's
own (with a 95% Wilson interval), its mean true quality against an oracle that accepts the same
proposals iff truly better, and the judge calls spent (per judged round, and per run with the gate).
"""

from __future__ import annotations

import argparse
import os
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.table import Table

from .scenario import Context, Scenario, SummaryRow


@dataclass(frozen=True)
class Cell:
    judge: str
    rule: str


def judge_models() -> dict[str, tuple[Any, Any, str]]:
    """name → (judge, world params, what it is)."""
    from promptopt.testing.simworld import Biased, Blind, Good, Noisy, Params

    return {
        "blind": (Blind(), Params(), "a coin flip"),
        "biased": (Biased(0.5, Good()), Params(), 'says "A" half the time, otherwise judges as `good`'),
        "biased-coin": (Biased(0.5, Blind(), name="biased-coin"), Params(), 'says "A" half the time, otherwise a coin'),
        "position": (Biased(1.0, Blind(), name="position"), Params(), 'always says "A"'),
        "good": (Good(), Params(), "errs only on close calls: P(right) = 0.5 + 0.5·min(1, |gap|/0.1)"),
        "noisy": (Noisy(), Params(), "logistic in the gap: P(B) = 1/(1 + exp(-gap/0.05))"),
        "blind-sticky": (Blind(), Params(sticky=True), "a coin, the same vote for the same request (temperature 0)"),
        "opinionated": (Good(), Params(opinion=0.1), "`good`, but sees each answer off by a persistent N(0, 0.1)"),
    }


RULES: dict[str, dict[str, Any]] = {
    "today": {"accept": "majority", "confirm": False},  # SPO's rule, promptopt's before issue 12
    "majority+gate": {"accept": "majority"},
    "paired-no-gate": {"confirm": False},
    "defaults": {},  # paired screen + confirmation gate
}


def work(
    cell: Cell, seeds: range, root: str, questions: int, holdout: int, rounds: int, votes: int
) -> tuple[Cell, list[Any], float]:
    """One chunk of runs, in a worker process (fsync skipped: the figures are error rates, not speed)."""
    from promptopt.testing.simworld import simulate

    os.fsync = lambda fd: None  # this worker only
    judge, params, _ = judge_models()[cell.judge]
    config = {**RULES[cell.rule], "votes": votes, "max_votes": max(12, votes)}
    folder = Path(root) / f"{cell.judge}-{cell.rule}"
    start = time.perf_counter()
    runs = [simulate(judge, s, folder, questions, rounds, params, holdout, **config) for s in seeds]
    return cell, runs, time.perf_counter() - start


def cell_report(runs: list[Any], seconds: float) -> dict[str, Any]:
    from promptopt.engine.stats import wilson
    from promptopt.testing.simworld import summarize

    s = summarize(runs)
    low, high = wilson(s.worse, s.runs)
    return {
        "runs": s.runs,
        "worse": s.worse,
        "worse_rate": round(s.worse_rate, 4),
        "worse_ci95": [round(low, 4), round(high, 4)],
        "final_quality": round(s.final, 4),
        "oracle_quality": round(s.oracle, 4),
        "shortfall": round(s.shortfall, 4),
        "shortfall_high95": round(s.shortfall_high, 4),
        "judge_calls_per_round": round(s.calls_per_round, 3),
        "judge_calls_per_round_with_gate": round(s.calls_per_round_all, 3),
        "judge_calls_per_run": round(s.calls_per_run, 2),
        "gate_calls_per_run": round(sum(r.gate_votes for r in runs) / len(runs), 2),
        "new_prompt_share": round(sum(r.reported_round != 1 for r in runs) / len(runs), 4),
        "cpu_seconds": round(seconds, 1),
    }


def run_judging(ctx: Context) -> None:
    args, con = ctx.args, ctx.con
    models = judge_models()
    names = [n.strip() for n in args.sim_judges.split(",")] if args.sim_judges else list(models)
    unknown = [n for n in names if n not in models]
    if unknown:
        raise SystemExit(f"--sim-judges: unknown {', '.join(unknown)} (choose from {', '.join(models)})")
    rules = [n.strip() for n in args.sim_rules.split(",")] if args.sim_rules else list(RULES)
    unknown = [n for n in rules if n not in RULES]
    if unknown:
        raise SystemExit(f"--sim-rules: unknown {', '.join(unknown)} (choose from {', '.join(RULES)})")
    cells = [Cell(j, r) for j in names for r in rules]
    chunk = 50
    results: dict[Cell, tuple[list[Any], float]] = {c: ([], 0.0) for c in cells}
    started = time.perf_counter()
    with ProcessPoolExecutor(max_workers=args.sim_workers) as pool:
        futures = [
            pool.submit(
                work,
                c,
                range(a, min(a + chunk, args.sim_runs)),
                str(ctx.root / "sim"),
                args.questions,
                args.sim_holdout,
                args.rounds,
                args.votes,
            )
            for c in cells
            for a in range(0, args.sim_runs, chunk)
        ]
        for future in futures:
            cell, runs, seconds = future.result()
            old, spent = results[cell]
            results[cell] = (old + runs, spent + seconds)
    wall = time.perf_counter() - started
    report = {
        "runs_per_cell": args.sim_runs,
        "questions": args.questions,
        "holdout": args.sim_holdout,
        "rounds": args.rounds,
        "votes": args.votes,
        "workers": args.sim_workers,
        "wall_seconds": round(wall, 1),
        "judges": {n: models[n][2] for n in names},
        "cells": [{"judge": c.judge, "rule": c.rule, **cell_report(*results[c])} for c in cells],
    }
    ctx.report["judging"] = report
    print_table(con, report)


def print_table(con: Any, report: dict[str, Any]) -> None:
    table = Table(
        title=f"judging in a simulated world: {report['runs_per_cell']} runs per cell, {report['rounds']} rounds, "
        f"{report['questions']} questions"
        + (f" + {report['holdout']} held-out" if report["holdout"] else "")
        + f" ({report['wall_seconds']:.0f} s on {report['workers']} workers)",
        title_justify="left",
    )
    for col in ("judge", "rule", "worse than start (95% CI)", "final", "oracle", "judge calls/round", "+gate", "/run"):
        table.add_column(col, justify="left" if col in ("judge", "rule") else "right")
    for c in report["cells"]:
        low, high = c["worse_ci95"]
        table.add_row(
            c["judge"],
            c["rule"],
            f"{c['worse_rate']:.1%} ({low:.1%}–{high:.1%})",
            f"{c['final_quality']:.3f}",
            f"{c['oracle_quality']:.3f}",
            f"{c['judge_calls_per_round']:.2f}",
            f"{c['judge_calls_per_round_with_gate']:.2f}",
            f"{c['judge_calls_per_run']:.1f}",
        )
    con.print(table)


def add_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--sim-runs", type=int, default=200, help="seeded runs per judge × rule for `judging` (200)")
    parser.add_argument(
        "--sim-holdout", type=int, default=0, help="held-out questions (the gate's) for `judging` (default 0)"
    )
    parser.add_argument("--sim-judges", default="", help="judge models for `judging`, comma-separated (all)")
    parser.add_argument("--sim-rules", default="", help="rules for `judging`, comma-separated (all)")
    parser.add_argument(
        "--sim-workers", type=int, default=os.cpu_count() or 1, help="worker processes for `judging` (CPU count)"
    )


def summary_rows(report: dict[str, Any]) -> list[SummaryRow]:
    data = report.get("judging")
    if not data:
        return []
    cells = {(c["judge"], c["rule"]): c for c in data["cells"]}
    rows: list[SummaryRow] = []
    for judge in data["judges"]:
        c = cells.get((judge, "defaults"))
        if c is None:
            continue
        high = c["worse_ci95"][1]
        rows.append(
            (
                f"{judge} judge: reported best worse than yours ≤ 5% of runs",
                f"{c['worse']}/{c['runs']} = {c['worse_rate']:.1%} (95% CI up to {high:.1%})",
                high <= 0.05,
            )
        )
    good = cells.get(("good", "defaults"))
    if good is not None:
        rows.append(
            (
                "good judge: mean final quality within 0.05 of the oracle",
                f"{good['final_quality']:.3f} vs {good['oracle_quality']:.3f}"
                f" (shortfall ≤ {good['shortfall_high95']:.3f})",
                good["shortfall_high95"] <= 0.05,
            )
        )
        rows.append(
            (
                "good judge: ≤ 8 judge calls per round (gate included)",
                f"{good['judge_calls_per_round_with_gate']:.2f}",
                good["judge_calls_per_round_with_gate"] <= 8,
            )
        )
    return rows


SCENARIO = Scenario(
    name="judging",
    about="error rates of the judging rules in a simulated world: worse-than-start, quality vs an oracle, judge calls",
    run=run_judging,
    options=add_options,
    summary=summary_rows,
    counts=("sim_runs", "sim_workers"),
    latencies=("sim_holdout",),  # must be ≥ 0
)
