"""The command line of scripts/bench.py: options, the temporary root, the scenarios run in order, the report."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from rich.console import Console

from .common import bench_env, load_info, source_version
from .inprocess import import_litellm
from .registry import SCENARIOS
from .report import summary
from .scenario import Context

INTRO = "Benchmark promptopt against a local OpenAI-compatible stub through the real litellm client."
USAGE = """\
    python scripts/bench.py                              # all scenarios, the issue's settings
    python scripts/bench.py --scenario critical-path --rounds 10 --questions 3 --votes 4 --latency 0.3

Nothing leaves 127.0.0.1: the stub answers every call, OPENAI_API_KEY is a placeholder, litellm never
fetches its price map, and the cache, workspaces and config dirs are temporary."""


def description() -> str:
    width = max(len(name) for name in SCENARIOS) + 2
    lines = [f"  {name:<{width}}{s.about}" for name, s in SCENARIOS.items()]
    heading = "Scenarios (docs/benchmarks.md explains each figure and the targets):"
    return "\n\n".join([INTRO, heading, "\n".join(lines), USAGE]) + "\n"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description(), formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenario", default="all", choices=[*SCENARIOS, "all"])
    parser.add_argument("--rounds", type=int, default=10, help="rounds of the run (default 10)")
    parser.add_argument("--questions", type=int, default=3, help="questions in the template (default 3)")
    parser.add_argument("--votes", type=int, default=4, help="judge votes per round (default 4)")
    parser.add_argument("--latency", type=float, default=0.3, help="stub seconds per call, L (default 0.3)")
    parser.add_argument("--concurrency", type=int, default=8, help="calls in flight (default 8)")
    for scenario in SCENARIOS.values():
        if scenario.options:
            scenario.options(parser)
    parser.add_argument(
        "--stub",
        choices=["thread", "process"],
        default="thread",
        help="in-process engine runs: the stub in this process's threads (shares the GIL) or its own process",
    )
    parser.add_argument("--model", default="openai/stub", help="litellm model name sent to the stub (openai/stub)")
    parser.add_argument("--json", action="store_true", help="print a JSON report on stdout (tables on stderr)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder and print its path")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    counts = [args.rounds, args.questions, args.votes, args.concurrency]
    latencies = [args.latency]
    for scenario in SCENARIOS.values():
        counts += [getattr(args, dest) for dest in scenario.counts]
        latencies += [getattr(args, dest) for dest in scenario.latencies]
    if min(counts) < 1 or min(latencies) < 0:
        parser.error("counts must be ≥ 1 and latencies ≥ 0")

    con = Console(stderr=args.json, width=150)
    root = Path(tempfile.mkdtemp(prefix="promptopt-bench-"))
    env = bench_env(root)
    os.environ.update({k: env[k] for k in ("LITELLM_LOCAL_MODEL_COST_MAP", "OPENAI_API_KEY", "XDG_CONFIG_HOME")})
    report: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "python": sys.version.split()[0],
        "cpus": os.cpu_count(),
        "load_start": load_info(),
        "commit": source_version(),
        "argv": sys.argv[1:],
    }
    selected = tuple(SCENARIOS) if args.scenario == "all" else (args.scenario,)
    ctx = Context(args, root, env, con, report, selected)
    try:
        if any(SCENARIOS[name].warm_litellm for name in selected):
            report["import"] = import_litellm()
        for name in selected:
            SCENARIOS[name].run(ctx)
        report["load_end"] = load_info()
        summary(report, con, SCENARIOS.values())
    finally:
        if args.keep:
            con.print(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    report.pop("_workspace", None)
    if args.json:
        print(json.dumps(report, indent=2, ensure_ascii=False, default=str))
    return 0
