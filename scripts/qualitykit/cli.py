"""`python scripts/quality.py`: flags → settings → run → report (text, or JSON with --json)."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from qualitykit.tasks import DATA, NAMES

DEFAULT_WORKSPACE = Path("quality-workspace")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="quality.py",
        description=(
            "Held-out quality: optimize a task's prompt on 3 train questions (SPO's setup), then measure the "
            "initial and the final prompt on its test questions with the ground-truth answers."
        ),
        epilog="docs/benchmarks.md (Held-out quality) explains the figures.",
    )
    p.add_argument("--task", default="navigate", help=f"{', '.join(NAMES)}, a comma-separated list, or all")
    p.add_argument(
        "--model", help="litellm model for every role (default: promptopt's, gpt-4o-mini); 'local' = SmolLM2"
    )
    p.add_argument("--opt-model", help="optimizer model")
    p.add_argument("--eval-model", help="judge model")
    p.add_argument("--exec-model", help="executor model (the one that answers the test questions)")
    p.add_argument("--api-base", help="OpenAI-compatible server for every role, e.g. http://127.0.0.1:8080/v1")
    p.add_argument("--rounds", type=int, default=10, help="optimization rounds per seed (SPO: 10)")
    p.add_argument(
        "--seeds", type=int, default=3, help="seeds per task: seeds 1..N (each picks its own 3 train questions)"
    )
    p.add_argument("--first-seed", type=int, default=1, help="the first seed")
    p.add_argument("--test-size", type=int, default=0, help="a seeded subset of N test questions (0: the whole split)")
    p.add_argument("--holdout", type=int, default=0, help="N validation questions for the confirmation gate")
    p.add_argument(
        "--labels",
        action="store_true",
        help="give the train (and holdout) questions their true answers and the task's metric (SPO gives none)",
    )
    p.add_argument("--strategy", default="spo", help="spo (default), gpo or dual-phase")
    p.add_argument("--accept", choices=("paired", "majority"), help="judge rule (majority: SPO's own, to reproduce it)")
    p.add_argument("--votes", type=int, help="judge votes per comparison")
    p.add_argument(
        "--no-confirm", action="store_true", help="skip the confirmation gate: the final prompt is the best (as SPO)"
    )
    p.add_argument("--concurrency", type=int, help="model calls at once")
    p.add_argument("--timeout", type=float, help="seconds per model call")
    p.add_argument("--max-tokens", type=int, help="cap every reply at N tokens (slow local models)")
    p.add_argument("--budget-usd", type=float, help="stop the whole benchmark before it spends more")
    p.add_argument(
        "--data", type=Path, default=DATA, help="SPO's data folder (default: the slices in benchmarks/data/spo)"
    )
    p.add_argument("--workspace", type=Path, default=DEFAULT_WORKSPACE, help="where the runs go (default: %(default)s)")
    p.add_argument("--no-cache", action="store_true", help="do not use promptopt's response cache")
    p.add_argument("--json", action="store_true", help="the report as JSON on stdout (progress stays on stderr)")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    return p


def parse_tasks(value: str) -> list[str]:
    names = [n.strip().lower() for n in value.split(",") if n.strip()]
    if names == ["all"]:
        return list(NAMES)
    unknown = [n for n in names if n not in NAMES]
    if unknown or not names:
        raise ValueError(f"--task {value}: unknown task (use {', '.join(NAMES)} or all)")
    return list(dict.fromkeys(names))


def settings_from(args: argparse.Namespace) -> Any:
    """Flags → Settings (raises PromptoptError or ValueError with a one-line message)."""
    from promptopt.api import load_config
    from promptopt.errors import ConfigError
    from qualitykit.run import Settings

    for flag, value, least in (
        ("--rounds", args.rounds, 1),
        ("--seeds", args.seeds, 1),
        ("--test-size", args.test_size, 0),
    ):
        if value < least:
            raise ConfigError(f"{flag} must be at least {least}")
    if args.holdout < 0:
        raise ConfigError("--holdout must be at least 0")
    if args.max_tokens is not None and args.max_tokens < 16:
        raise ConfigError("--max-tokens must be at least 16")
    flags = {
        "model": args.model,
        "opt_model": args.opt_model,
        "eval_model": args.eval_model,
        "exec_model": args.exec_model,
        "api_base": args.api_base,
        "max_rounds": args.rounds,
        "strategy": args.strategy,
        "accept": args.accept,
        "votes": args.votes,
        "concurrency": args.concurrency,
        "timeout": args.timeout,
        "budget_usd": args.budget_usd,
        "workspace": args.workspace,
        "cache": False if args.no_cache else None,
        "confirm": False if args.no_confirm else None,
    }
    config = load_config(**flags)
    if args.max_tokens is not None:
        roles = {
            r: config.role(r).model_copy(update={"extra": {**config.role(r).extra, "max_tokens": args.max_tokens}})
            for r in ("optimizer", "evaluator", "executor")
        }
        config = config.model_copy(update=roles)
    return Settings(
        tasks=parse_tasks(args.task),
        seeds=list(range(args.first_seed, args.first_seed + args.seeds)),
        config=config,
        test_size=args.test_size,
        holdout=args.holdout,
        labels=args.labels,
        data=args.data,
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    from promptopt.errors import PromptoptError

    def progress(line: str) -> None:
        if not args.quiet:
            print(line, file=sys.stderr, flush=True)

    try:
        settings = settings_from(args)
        from promptopt.api import make_client
        from qualitykit.report import build_report, render
        from qualitykit.run import Meter, run_benchmark

        meter = Meter()
        llm = make_client(settings.config, on_call=meter.on_call, on_warning=lambda m: progress(f"warning: {m}"))
        loaded, results = asyncio.run(run_benchmark(settings, llm, meter, progress))
    except (PromptoptError, ValueError) as exc:
        if os.environ.get("PROMPTOPT_DEBUG"):
            raise
        print(f"quality.py: {exc}", file=sys.stderr)
        return getattr(exc, "exit_code", 2)
    except KeyboardInterrupt:
        print("quality.py: interrupted; run the same command to resume (finished calls are cached)", file=sys.stderr)
        return 130
    report = build_report(settings, loaded, results)
    if args.json:
        print(json.dumps(report, indent=1))
    else:
        print(render(report), end="")
    return 0
