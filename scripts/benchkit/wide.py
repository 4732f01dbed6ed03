"""wide: many questions at high concurrency; each round's execution phase vs ceil(Q/C) × L."""

from __future__ import annotations

import argparse
import statistics
from typing import Any

from rich.table import Table

from .common import ROLES, load_info, waves
from .inprocess import EngineRun, analyse_rounds, engine_run
from .scenario import Context, Scenario, SummaryRow


def slot_reuse_delays(run: EngineRun, concurrency: int) -> list[float]:
    """Per round, for the (C+k)-th executor request: its start minus the k-th earliest reply (stub clock).

    With C slots, that reply freed the slot the request took; the delay is the client's turnaround.
    """
    phases = sorted(run.timeline.phases)
    delays: list[float] = []
    for number in run.result.new_rounds:
        start = next((t for t, n, ph in phases if n == number and ph == "execute"), None)
        if start is None:
            continue
        end = next((t for t, _, _ in phases if t > start), float("inf"))  # the next phase, any round
        mine = [r for r in run.requests if r["role"] == "executor" and start <= r["t_start"] < end]
        starts = sorted(r["t_start"] for r in mine)
        ends = sorted(r["t_end"] for r in mine)
        delays += [starts[i] - ends[i - concurrency] for i in range(concurrency, len(starts))]
    return delays


def scenario_wide(ctx: Context) -> None:
    args, root, env, con, report = ctx.args, ctx.root, ctx.env, ctx.con, ctx.report
    q, c, L = args.wide_questions, args.wide_concurrency, args.latency
    con.rule(f"wide: {args.wide_rounds} rounds, {q} questions, concurrency {c}, L={L}s")
    con.print(f"[dim]{load_info()} before[/dim]")
    run = engine_run(root, env, "wide", args, q, args.wide_rounds, c, L)
    rounds = analyse_rounds(run, L)
    ideal_exec = waves(q, c) * L
    table = Table(title=f"per round: execution ideal = ceil({q}/{c}) × L = {ideal_exec:.2f}s", title_justify="left")
    for col in (
        "round",
        "exec span (stub)",
        "exec (engine)",
        "ratio",
        "round wall",
        "round ideal",
        "ratio",
        "calls o/x/e",
        "opt prompt tok",
        "judge prompt tok",
    ):
        table.add_column(col, justify="right")
    rows = []
    for r in rounds:
        exec_span = r.spans.get("executor", 0.0)
        row = {
            "round": r.number,
            "exec_span_s": round(exec_span, 4),
            "exec_engine_s": round(r.engine_exec, 4),
            "exec_ratio": round(r.engine_exec / ideal_exec, 4),
            "wall_s": round(r.wall, 4),
            "ideal_s": r.ideal,
            "round_ratio": round(r.wall / r.ideal, 4),
            "stub_calls": r.stub_calls,
            "usage": r.ledger,
        }
        rows.append(row)
        opt = r.ledger.get("optimizer", {}).get("prompt_tokens", 0)
        judge = r.ledger.get("evaluator", {}).get("prompt_tokens", 0)
        table.add_row(
            str(r.number),
            f"{exec_span:.3f}",
            f"{r.engine_exec:.3f}",
            f"{row['exec_ratio']:.3f}",
            f"{r.wall:.3f}",
            f"{r.ideal:.2f}",
            f"{row['round_ratio']:.3f}",
            "/".join(str(r.stub_calls[k]) for k in ROLES),
            f"{opt:,}",
            f"{judge:,}",
        )
    con.print(table)
    wide_calls = sum(sum(r.stub_calls.values()) for r in rounds)
    con.print(
        f"event-loop thread CPU {run.loop_cpu:.2f}s = {run.loop_cpu / max(wide_calls, 1) * 1000:.1f} ms per call"
        f" over {wide_calls} calls"
    )
    reuse = slot_reuse_delays(run, c)
    if reuse:
        con.print(
            f"slot reuse: a request started a median {statistics.median(reuse) * 1000:.0f} ms (max "
            f"{max(reuse) * 1000:.0f}) after the call whose slot it took had been answered (ideal ≈ 0)"
        )
    worst_exec = max(x["exec_ratio"] for x in rows)
    worst_round = max(x["round_ratio"] for x in rows)
    con.print(
        f"worst execution phase {worst_exec:.3f} × ideal, worst round {worst_round:.3f} × ideal "
        f"(target ≤ 1.2) · peak in flight {run.max_in_flight} · wall {run.wall:.2f}s"
    )
    con.print(f"[dim]{load_info()} after[/dim]")
    report["wide"] = {
        "rounds": args.wide_rounds,
        "questions": q,
        "concurrency": c,
        "latency": L,
        "ideal_exec_s": ideal_exec,
        "rounds_detail": rows,
        "worst_exec_ratio": worst_exec,
        "worst_round_ratio": worst_round,
        "pass": worst_exec <= 1.2 and worst_round <= 1.2,
        "max_in_flight": run.max_in_flight,
        "wall_s": round(run.wall, 3),
        "loop_cpu_s": round(run.loop_cpu, 3),
        "calls": wide_calls,
        "slot_reuse_median_s": round(statistics.median(reuse), 4) if reuse else None,
        "load": load_info(),
    }


def add_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--wide-questions", type=int, default=200, help="questions for `wide` (default 200)")
    parser.add_argument("--wide-concurrency", type=int, default=32, help="concurrency for `wide` (default 32)")
    parser.add_argument("--wide-rounds", type=int, default=3, help="rounds for `wide` (default 3)")


def summary_rows(report: dict[str, Any]) -> list[SummaryRow]:
    wide = report.get("wide")
    if not wide:
        return []
    return [
        (
            "wide: each round ≤ 1.2 × ideal",
            f"exec {wide['worst_exec_ratio']:.3f}, round {wide['worst_round_ratio']:.3f} (worst)",
            wide["pass"],
        )
    ]


SCENARIO = Scenario(
    name="wide",
    about="many questions, high concurrency: each round's execution phase vs ceil(Q/C)*L",
    run=scenario_wide,
    options=add_options,
    summary=summary_rows,
    warm_litellm=True,
)
