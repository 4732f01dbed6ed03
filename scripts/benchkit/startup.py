"""startup: median wall time of `promptopt --help`, `init`, `show` and `import promptopt.cli`."""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

from rich.table import Table

from .common import bytecode_env, heavy_modules, load_info, promptopt_command, run_cmd
from .inprocess import engine_run
from .scenario import Context, Scenario, SummaryRow

GATED = ("promptopt --help", "promptopt init x --from Poem", "promptopt show WS")  # target ≤ 0.3 s


def ensure_workspace(args: argparse.Namespace, root: Path, env: dict[str, str], report: dict[str, Any]) -> Path:
    if "_workspace" not in report:
        run = engine_run(
            root, env, "startup-ws", args, args.questions, args.rounds, args.concurrency, 0.0, stub_mode="thread"
        )
        report["_workspace"] = str(run.workspace)
    return Path(report["_workspace"])


def time_interleaved(
    commands: dict[str, tuple[list[str], Any, Any]], variants: dict[str, dict[str, str]], cwd: Path, runs: int
) -> dict[str, dict[str, list[float]]]:
    """Wall seconds of every (command, variant), interleaved run by run: a burst of load on this
    shared VM then slows one run of each instead of all runs of one command."""
    times: dict[str, dict[str, list[float]]] = {label: {v: [] for v in variants} for label in commands}
    for _ in range(runs):
        for label, (cmd, _cli_args, before) in commands.items():
            for variant, venv in variants.items():
                if before:
                    before()
                seconds, proc = run_cmd(cmd, venv, cwd)
                if proc.returncode != 0:
                    raise RuntimeError(f"{' '.join(cmd)} exited {proc.returncode}: {proc.stderr[-500:]}")
                times[label][variant].append(seconds)
    return times


def scenario_startup(ctx: Context) -> None:
    args, root, env, con, report = ctx.args, ctx.root, ctx.env, ctx.con, ctx.report
    con.rule(f"start-up: median of {args.startup_runs} runs, commands and variants interleaved")
    ws = ensure_workspace(args, root, env, report)
    con.print(f"[dim]{load_info()} before[/dim]")
    work = root / "startup"
    work.mkdir(exist_ok=True)
    exe = promptopt_command()
    target = work / "x.yaml"

    def clean() -> None:
        target.unlink(missing_ok=True)

    commands = {
        "python -c pass (floor)": ([sys.executable, "-c", "pass"], None, None),
        "import promptopt.cli": ([sys.executable, "-c", "import promptopt.cli"], None, None),
        "promptopt --help": ([*exe, "--help"], ["--help"], None),
        "promptopt init x --from Poem": (
            [*exe, "init", "x", "--from", "Poem"],
            ["init", "x", "--from", "Poem"],
            clean,
        ),
        "promptopt show WS": ([*exe, "show", str(ws)], ["show", str(ws)], None),
    }
    # As installed here (PYTHONDONTWRITEBYTECODE=1 and an editable install: promptopt's own modules are
    # compiled on every start) and with a warm bytecode cache, as a wheel install would have.
    pyc_env = bytecode_env(env, root)
    variants = {"as is": env, "bytecode cached": pyc_env}
    for cmd, _, before in commands.values():  # warm the page cache and the bytecode cache
        if before:
            before()
        run_cmd(cmd, pyc_env, work)
    measured = time_interleaved(commands, variants, work, args.startup_runs)
    results: dict[str, dict[str, Any]] = {}
    for label, (cmd, cli_args, _before) in commands.items():
        entry: dict[str, Any] = {"command": " ".join(cmd)}
        for variant, times in measured[label].items():
            median = statistics.median(times)
            entry[variant] = {"median_s": round(median, 4), "runs_s": [round(t, 4) for t in times]}
        if cli_args is not None:
            clean()
            entry["heavy_modules"] = heavy_modules(cli_args, env, work)
        results[label] = entry
    probe = subprocess.run(
        [sys.executable, "-c", "import sys, promptopt.cli; print('litellm' in sys.modules)"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    litellm_loaded = probe.stdout.strip() == "True"
    table = Table(title="median wall seconds (target ≤ 0.3 for --help, init, show)", title_justify="left")
    for col in ("command", "as is", "bytecode cached", "heavy modules imported"):
        table.add_column(col, justify="left" if col in ("command", "heavy modules imported") else "right")
    for label, entry in results.items():
        table.add_row(
            label,
            f"{entry['as is']['median_s']:.3f}",
            f"{entry['bytecode cached']['median_s']:.3f}" if "bytecode cached" in entry else "-",
            ", ".join(entry.get("heavy_modules", [])) or ("none" if "heavy_modules" in entry else ""),
        )
    con.print(table)
    con.print(f"litellm in sys.modules after `import promptopt.cli`: {litellm_loaded} · promptopt = {exe[0]}")
    con.print(f"[dim]{load_info()} after[/dim]")
    report["startup"] = {
        "runs": args.startup_runs,
        "commands": results,
        "litellm_after_import_cli": litellm_loaded,
        "pass": all(results[k]["as is"]["median_s"] <= 0.3 for k in GATED) and not litellm_loaded,
        "pass_bytecode_cached": all(results[k]["bytecode cached"]["median_s"] <= 0.3 for k in GATED),
        "load": load_info(),
    }


def add_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--startup-runs", type=int, default=7, help="runs per start-up command (default 7)")


def summary_rows(report: dict[str, Any]) -> list[SummaryRow]:
    st = report.get("startup")
    if not st:
        return []
    c = st["commands"]
    as_is = ", ".join(f"{k.split()[1]} {c[k]['as is']['median_s']:.2f}s" for k in GATED)
    cached = ", ".join(f"{k.split()[1]} {c[k]['bytecode cached']['median_s']:.2f}s" for k in GATED)
    return [
        ("start-up medians ≤ 0.3 s, no litellm", as_is, st["pass"]),
        ("  same, bytecode cached", cached, st["pass_bytecode_cached"]),
    ]


SCENARIO = Scenario(
    name="startup",
    about="median wall time of `promptopt --help`, `init`, `show`, `import promptopt.cli`",
    run=scenario_startup,
    options=add_options,
    summary=summary_rows,
    warm_litellm=True,
    counts=("startup_runs",),
)
