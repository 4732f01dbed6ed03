"""rerun: the CLI as a subprocess against a stub subprocess; run 1, then the same command again.

scenario_cli also runs the dry-run scenario's `--dry-run` before run 1 (one run 1 serves both).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
from pathlib import Path
from typing import Any

from rich.table import Table

from .common import StubProcess, bytecode_env, heavy_modules, load_info, promptopt_command, run_cmd, write_template
from .inprocess import round_ideal
from .report import compare_estimate, print_estimate
from .scenario import Context, Scenario, SummaryRow


def scenario_cli(ctx: Context, rerun: bool, dry: bool) -> None:
    args, root, env, con, report = ctx.args, ctx.root, ctx.env, ctx.con, ctx.report
    con.rule(
        f"CLI against a stub process: {'rerun' if rerun else ''}{' + ' if rerun and dry else ''}"
        f"{'dry-run' if dry else ''} ({args.rounds} rounds, {args.questions} questions, L={args.latency}s)"
    )
    con.print(f"[dim]{load_info()} before[/dim]")
    work = root / "cli"
    work.mkdir()
    cli_env = {**env, "PROMPTOPT_CACHE_DIR": str(work / "cache")}
    template = write_template(work / "bench.yaml", args.questions)
    stub = StubProcess(args.latency, work / "stub.jsonl", cli_env)
    try:
        cmd = [
            *promptopt_command(),
            "optimize",
            "-t",
            str(template),
            "-w",
            str(work / "ws"),
            "-n",
            "bench",
            "-m",
            args.model,
            "--api-base",
            stub.url,
            "-r",
            str(args.rounds),
            "--votes",
            str(args.votes),
            "-j",
            str(args.concurrency),
            "--json",
            "-q",
        ]
        out: dict[str, Any] = {"command": " ".join(cmd).replace(stub.url, "URL")}
        if dry:
            seconds, proc = run_cmd([*cmd, "--dry-run"], cli_env, work)
            if proc.returncode != 0:
                raise RuntimeError(f"--dry-run exited {proc.returncode}: {proc.stderr[-500:]}")
            out["dry_run"] = {
                "seconds": round(seconds, 3),
                "estimate": json.loads(proc.stdout),
                "stub_calls": stub.count(),
            }
        before = stub.count()
        seconds, proc = run_cmd(cmd, cli_env, work)
        if proc.returncode != 0:
            raise RuntimeError(f"optimize exited {proc.returncode}: {proc.stderr[-800:]}")
        first = json.loads(proc.stdout)
        L = args.latency
        bound = sum(round_ideal(n, args.questions, args.votes, args.concurrency, L) for n in range(1, args.rounds + 1))
        out["run1"] = {
            "seconds": round(seconds, 3),
            "stub_calls": stub.count() - before,
            "bound_s": bound,
            "engine_seconds": first["seconds"],
            "usage": first["usage"],
        }
        if rerun:
            out["reruns"] = reruns(args, cmd, cli_env, work, stub)
    finally:
        stub.stop()

    r1 = out["run1"]
    con.print(
        f"run 1: {r1['seconds']:.2f}s end to end (engine {r1['engine_seconds']:.2f}s, bound {r1['bound_s']:.2f}s,"
        f" litellm import included), {r1['stub_calls']} stub calls"
    )
    if rerun:
        table = Table(title="rerun with identical flags (target: 0 calls, < 1 s)", title_justify="left")
        for col in ("case", "runs", "median s", "bytecode cached", "stub calls", "cache hits", "heavy modules"):
            table.add_column(col, justify="left" if col in ("case", "heavy modules") else "right")
        for label, x in out["reruns"].items():
            cached = x.get("seconds_bytecode_cached")
            table.add_row(
                label,
                str(x["runs"]),
                f"{x['seconds']:.3f}",
                f"{cached:.3f}" if cached is not None else "-",
                str(x["stub_calls"]),
                str(x["cached_calls"]),
                ", ".join(x["heavy_modules"]) or "none",
            )
        con.print(table)
    if dry:
        out["dry_run"]["comparison"] = compare_estimate(out["dry_run"]["estimate"], r1["usage"])
        print_estimate(
            con,
            out["dry_run"]["comparison"],
            f"--dry-run ({out['dry_run']['seconds']:.2f}s, {out['dry_run']['stub_calls']} stub calls) vs the real run",
        )
    con.print(f"[dim]{load_info()} after[/dim]")
    out["load"] = load_info()
    report["cli"] = out


def reruns(
    args: argparse.Namespace, cmd: list[str], env: dict[str, str], work: Path, stub: StubProcess
) -> dict[str, Any]:
    """Run 2+ of the same command: on the finished workspace, then with the workspace gone (cache only)."""
    workspace = work / "ws" / "bench"
    saved = work / "ws-finished"
    shutil.copytree(workspace, saved)
    out: dict[str, Any] = {}
    cases = (("same workspace (finished run)", None, args.rerun_runs), ("workspace deleted, cache kept", True, 1))
    for label, delete, runs in cases:
        variants = (
            {"seconds": env, "seconds_bytecode_cached": bytecode_env(env, work.parent)}
            if not delete
            else {"seconds": env}
        )
        entry: dict[str, Any] = {"runs": runs, "stub_calls": 0}
        for key, venv in variants.items():
            if key != "seconds":
                run_cmd(cmd, venv, work)  # warm the bytecode cache
            times = []
            for _ in range(runs):
                if delete:
                    shutil.rmtree(workspace, ignore_errors=True)
                before = stub.count()
                seconds, proc = run_cmd(cmd, venv, work)
                if proc.returncode != 0:
                    raise RuntimeError(f"rerun exited {proc.returncode}: {proc.stderr[-800:]}")
                entry["stub_calls"] += stub.count() - before
                entry["cached_calls"] = json.loads(proc.stdout).get("cached_calls")
                times.append(seconds)
            entry[key] = round(statistics.median(times), 4)
        if delete:
            shutil.rmtree(workspace, ignore_errors=True)
        before = stub.count()
        entry["heavy_modules"] = heavy_modules(cmd[len(promptopt_command()) :], env, work)
        entry["stub_calls"] += stub.count() - before
        entry["pass"] = entry["stub_calls"] == 0 and entry["seconds"] < 1.0
        out[label] = entry
        shutil.rmtree(workspace, ignore_errors=True)
        shutil.copytree(saved, workspace)
    return out


def run_rerun(ctx: Context) -> None:
    # With dry-run in the same invocation (`all`), its --dry-run is compared with this run 1.
    scenario_cli(ctx, rerun=True, dry="dry-run" in ctx.selected)


def add_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rerun-runs", type=int, default=3, help="timed reruns of a finished run (default 3)")


def summary_rows(report: dict[str, Any]) -> list[SummaryRow]:
    rows = []
    for label, x in report.get("cli", {}).get("reruns", {}).items():
        cached = x.get("seconds_bytecode_cached")
        rows.append(
            (
                f"rerun, {label}: 0 calls, < 1 s",
                f"{x['stub_calls']} calls, {x['seconds']:.2f}s"
                + (f" ({cached:.2f}s bytecode cached)" if cached else ""),
                x["pass"],
            )
        )
    return rows


SCENARIO = Scenario(
    name="rerun",
    about="the CLI twice with the same flags against a stub subprocess: calls and time of run 2",
    run=run_rerun,
    options=add_options,
    summary=summary_rows,
)
