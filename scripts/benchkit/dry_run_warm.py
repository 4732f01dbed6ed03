"""dry-run-warm: --dry-run once the estimator has data (a second project after a first run, a resume)."""

from __future__ import annotations

import argparse
import json
from typing import Any

from .common import StubProcess, load_info, promptopt_command, run_cmd
from .report import compare_estimate, print_estimate
from .scenario import Context, Scenario, SummaryRow


def scenario_dry_warm(ctx: Context) -> None:
    """--dry-run where the estimator has data: a second project after a first run, and a resume.

    The CLI against a stub process (bundled templates, L = --warm-latency): `-t Poem -n A` (fills the
    cache), then `-t Navigate -n B --dry-run` vs the real run of B (B's dry run on the empty cache is
    compared too); in a second cache, `-t Poem -n R -r 5`, then `-r R --dry-run` vs the real continuation.
    """
    args, root, env, con, report = ctx.args, ctx.root, ctx.env, ctx.con, ctx.report
    con.rule(f"dry-run with data: second project, resume ({args.rounds} rounds, L={args.warm_latency}s)")
    con.print(f"[dim]{load_info()} before[/dim]")
    work = root / "dry-warm"
    work.mkdir()
    half = max(1, args.rounds // 2)
    stub = StubProcess(args.warm_latency, work / "stub.jsonl", env)
    out: dict[str, Any] = {"latency": args.warm_latency, "rounds": args.rounds, "resume_from": half}

    def optimize(cache: str, *flags: str) -> dict[str, Any]:
        cmd = [*promptopt_command(), "optimize", *flags, "-m", args.model, "--api-base", stub.url]
        cmd += ["--votes", str(args.votes), "-j", str(args.concurrency), "--json", "-q"]
        before = stub.count()
        _, proc = run_cmd(cmd, {**env, "PROMPTOPT_CACHE_DIR": str(work / cache)}, work)
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(flags)} exited {proc.returncode}: {proc.stderr[-800:]}")
        if "--dry-run" in flags and stub.count() != before:
            raise RuntimeError(f"{' '.join(flags)} called the stub")
        return json.loads(proc.stdout)

    r = str(args.rounds)
    try:
        cold = optimize("cache-a", "-t", "Navigate", "-n", "B", "-r", r, "--dry-run")
        optimize("cache-a", "-t", "Poem", "-n", "A", "-r", r)
        warm = optimize("cache-a", "-t", "Navigate", "-n", "B", "-r", r, "--dry-run")
        second = optimize("cache-a", "-t", "Navigate", "-n", "B", "-r", r)
        optimize("cache-r", "-t", "Poem", "-n", "R", "-r", str(half))
        rest = optimize("cache-r", "-t", "Poem", "-n", "R", "-r", r, "--dry-run")
        resumed = optimize("cache-r", "-t", "Poem", "-n", "R", "-r", r)
    finally:
        stub.stop()
    cases = {
        "second_project_empty_cache": (cold, second, "Navigate B: --dry-run on an empty cache vs the real run of B"),
        "second_project": (warm, second, "Navigate B: --dry-run after Poem A filled the cache vs the real run of B"),
        "resume": (rest, resumed, f"Poem R: -r {half} done, --dry-run -r {r} vs the real continuation"),
    }
    for key, (est, real, title) in cases.items():
        out[key] = compare_estimate(est, real["usage"])
        print_estimate(con, out[key], title)
    con.print(f"[dim]{load_info()} after[/dim]")
    report.setdefault("cli", {})["dry_run_warm"] = out


def add_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--warm-latency", type=float, default=0.05, help="stub seconds per call for `dry-run-warm` (default 0.05)"
    )


def summary_rows(report: dict[str, Any]) -> list[SummaryRow]:
    warm = report.get("cli", {}).get("dry_run_warm", {})
    rows = []
    for key, label in (("second_project", "second project, cache filled"), ("resume", "resume")):
        if key in warm:
            t = warm[key]["total"]
            rows.append(
                (
                    f"  --dry-run, {label}",
                    f"calls {t['calls']['diff_pct']:+.1f}%, tokens {t['tokens']['diff_pct']:+.1f}%",
                    warm[key]["pass"],
                )
            )
    return rows


SCENARIO = Scenario(
    name="dry-run-warm",
    about="the same once the estimator has data: a second project after a first run, a resume",
    run=scenario_dry_warm,
    options=add_options,
    summary=summary_rows,
    latencies=("warm_latency",),
)
