"""dry-run: `optimize --dry-run --json` vs what the real run then spent, per role; and vs a run whose
replies have exactly the lengths the estimator guesses (its structure apart from its guesses)."""

from __future__ import annotations

import hashlib
import json
import threading
from typing import Any

from .cli_runs import scenario_cli
from .common import write_template
from .inprocess import engine_run
from .report import compare_estimate, print_estimate
from .scenario import Context, Scenario, SummaryRow


def sized_responder(estimate_per_call: dict[str, tuple[int, int]]) -> Any:
    """Stub replies as long as the estimator assumes (to test its structure, not its guesses)."""
    counter = {"n": 0}
    lock = threading.Lock()

    def words(tokens: int) -> str:
        return ("word " * (tokens * 4 // 5 + 1))[: tokens * 4 - 2]  # ~4 characters per token

    def respond(role: str, body: dict[str, Any]) -> str:
        if role == "judge":
            return f"<analyse>{words(estimate_per_call['evaluator'][1] - 8)}</analyse>\n<choose>A</choose>"
        if role == "optimizer":
            with lock:
                counter["n"] += 1
                n = counter["n"]
            prompt_tokens = estimate_per_call["prompt"][0]
            new_prompt = f"Revision {n}. " + words(prompt_tokens - 3)
            rest = estimate_per_call["optimizer"][1] - prompt_tokens - 12
            return (
                f"<analyse>{words(rest)}</analyse>\n<modification>one change</modification>\n"
                f"<prompt>\n{new_prompt}\n</prompt>"
            )
        # Unique per request: equal answers in two rounds would make equal judge requests (cache hits).
        tag = hashlib.sha256(json.dumps(body.get("messages"), sort_keys=True).encode()).hexdigest()[:8]
        return tag + " " + words(estimate_per_call["executor"][1] - 3)

    return respond


def scenario_dry_sized(ctx: Context) -> None:
    """The estimate against a run whose replies have the lengths the estimator guesses."""
    args, root, env, con, report = ctx.args, ctx.root, ctx.env, ctx.con, ctx.report
    from promptopt.config import resolve_config
    from promptopt.engine.estimate import _answer_tokens, estimate_run
    from promptopt.llm import estimate_tokens
    from promptopt.template import load_template

    folder = root / "dry-sized"
    folder.mkdir()
    template, _ = load_template(write_template(folder / "t.yaml", args.questions))
    config = resolve_config(
        {
            "model": args.model,
            "max_rounds": args.rounds,
            "votes": args.votes,
            "concurrency": args.concurrency,
        },
        env=env,
        cwd=folder,
    )
    est = estimate_run(template, config, [], 1)
    answer = _answer_tokens(template)
    prompt_len = max(estimate_tokens(template.prompt), 60)
    sizes = {
        "executor": (0, answer),
        "optimizer": (0, prompt_len + 250),
        "evaluator": (0, 200),
        "prompt": (estimate_tokens(template.prompt), 0),
    }
    run = engine_run(
        root,
        env,
        "dry-sized-run",
        args,
        args.questions,
        args.rounds,
        args.concurrency,
        0.0,
        responder=sized_responder(sizes),
        stub_mode="thread",
    )
    estimate = {"roles": {k: vars(v) for k, v in est.roles.items()}}
    usage = {k: v.model_dump() for k, v in run.result.usage.items()}
    rows = compare_estimate(estimate, usage)
    print_estimate(con, rows, "--dry-run vs a run whose replies have the estimator's assumed lengths")
    report.setdefault("cli", {})["dry_run_sized"] = rows


def run_dry(ctx: Context) -> None:
    if "rerun" not in ctx.selected:  # else the rerun scenario ran --dry-run before its run 1
        scenario_cli(ctx, rerun=False, dry=True)
    scenario_dry_sized(ctx)


def summary_rows(report: dict[str, Any]) -> list[SummaryRow]:
    cli = report.get("cli", {})
    rows = []
    if "dry_run" in cli:
        t = cli["dry_run"]["comparison"]["total"]
        rows.append(
            (
                "--dry-run within 10% (calls, tokens)",
                f"calls {t['calls']['diff_pct']:+.1f}%, tokens {t['tokens']['diff_pct']:+.1f}%",
                cli["dry_run"]["comparison"]["pass"],
            )
        )
    if "dry_run_sized" in cli:
        t = cli["dry_run_sized"]["total"]
        rows.append(
            (
                "  same, replies of the assumed length",
                f"calls {t['calls']['diff_pct']:+.1f}%, tokens {t['tokens']['diff_pct']:+.1f}%",
                cli["dry_run_sized"]["pass"],
            )
        )
    return rows


SCENARIO = Scenario(
    name="dry-run",
    about="`optimize --dry-run --json` vs what the real run then spent, per role",
    run=run_dry,
    summary=summary_rows,
    warm_litellm=True,
)
