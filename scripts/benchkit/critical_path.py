"""critical-path: in-process run_optimization; wall time vs its bound, calls and tokens per role and round."""

from __future__ import annotations

import statistics
from typing import Any

from rich.table import Table

from .common import ROLES, load_info
from .inprocess import GAPS, EngineRun, analyse_rounds, engine_run, round_ideal
from .scenario import Context, Scenario, SummaryRow


def content_checks(run: EngineRun) -> dict[str, Any]:
    """What the judge and optimizer prompts carry: each question once, no prompt outside the answers.

    The stub's executor echoes the start of its input, so answers may quote the prompt: answers are
    cut out of the text before looking for prompts.
    """
    questions = [x.question.strip() for x in run.template.qa]
    prompts = {r.prompt.strip() for r in run.result.records if r.prompt.strip()}
    answers = sorted(
        {a.answer.strip() for r in run.result.records for a in r.answers if a.answer.strip()},
        key=len,
        reverse=True,
    )
    found = {
        "judge_max_question_repeats": 0,
        "judge_prompts_quoted": 0,
        "optimizer_max_question_repeats": 0,
        "optimizer_prompts_quoted": 0,
    }
    for req in run.requests:
        if "body" not in req:  # a stub in its own process logs no bodies
            return {}
        text = str(req["body"]["messages"][-1].get("content", ""))
        bare = text
        for answer in answers:
            bare = bare.replace(answer, "")
        repeats = max(bare.count(qq) for qq in questions)
        quoted = sum(bare.count(p) for p in prompts)
        kind = {"judge": "judge", "optimizer": "optimizer"}.get(req["role"])
        if kind:
            found[f"{kind}_max_question_repeats"] = max(found[f"{kind}_max_question_repeats"], repeats)
            found[f"{kind}_prompts_quoted"] = max(found[f"{kind}_prompts_quoted"], quoted)
    return found


def scenario_critical_path(ctx: Context) -> None:
    args, root, env, con, report = ctx.args, ctx.root, ctx.env, ctx.con, ctx.report
    con.rule(
        f"critical path: {args.rounds} rounds, {args.questions} questions, {args.votes} votes, "
        f"L={args.latency}s, concurrency {args.concurrency}"
    )
    con.print(f"[dim]{load_info()} before[/dim]")
    # SPO's own rule: exactly --votes votes a round, the critical path below (adaptive judging asks for
    # more pairs while undecided: the `speculate` scenario measures that case).
    overrides = {"accept": "majority", "confirm": False}
    run = engine_run(
        root, env, "critical", args, args.questions, args.rounds, args.concurrency, args.latency, None, None, overrides
    )
    L, q, v, c = args.latency, args.questions, args.votes, args.concurrency
    bound = sum(round_ideal(n, q, v, c, L) for n in range(1, args.rounds + 1))
    rounds = analyse_rounds(run, L)
    ledger = {role: run.result.usage.get(role) for role in ROLES}
    stub_calls = {role: sum(r.stub_calls[role] for r in rounds) for role in ROLES}
    first_request = min((r["t_start"] for r in run.requests), default=run.timeline.started)
    expected_calls = q + (args.rounds - 1) * (1 + q + v)
    calls = sum(stub_calls.values())
    checks = content_checks(run)
    agree = all((ledger[r].calls if ledger[r] else 0) == stub_calls[r] for r in ROLES)

    table = Table(title="per round (seconds; tokens = prompt+completion from promptopt's ledger)", title_justify="left")
    for col in (
        "round",
        "verdict",
        "wall",
        "ideal",
        "over",
        "opt span",
        "exec span",
        "judge span",
        "calls o/x/e",
        "opt tok",
        "exec tok",
        "judge tok",
    ):
        table.add_column(col, justify="right")
    for r in rounds:
        tok = {
            role: (
                r.ledger.get(role, {}).get("prompt_tokens", 0),
                r.ledger.get(role, {}).get("completion_tokens", 0),
            )
            for role in ROLES
        }
        table.add_row(
            str(r.number),
            f"{r.verdict} {r.marks}".strip(),
            f"{r.wall:.3f}",
            f"{r.ideal:.2f}",
            f"{r.wall - r.ideal:+.3f}",
            *(f"{r.spans[k]:.3f}" if k in r.spans else "-" for k in ROLES),
            "/".join(str(r.stub_calls[k]) for k in ROLES),
            *(f"{p}+{cpl}" if p or cpl else "-" for p, cpl in tok.values()),
        )
    con.print(table)

    totals = Table(title="per role, whole run", title_justify="left")
    for col in (
        "role",
        "calls (stub)",
        "calls (ledger)",
        "cached",
        "prompt tok",
        "completion tok",
        "prompt tok (stub count)",
    ):
        totals.add_column(col, justify="right")
    for role in ROLES:
        u = ledger[role]
        totals.add_row(
            role,
            str(stub_calls[role]),
            str(u.calls if u else 0),
            str(u.cached if u else 0),
            f"{u.prompt_tokens if u else 0:,}",
            f"{u.completion_tokens if u else 0:,}",
            f"{sum(r.stub_prompt_tokens[role] for r in rounds):,}",
        )
    con.print(totals)
    ratio = run.wall / bound
    imp = report["import"]
    con.print(
        f"one-time imports, warmed before the clock: litellm {imp['litellm_s']:.2f}s + openai.resources "
        f"(imported by the first request) {imp['openai_resources_s']:.2f}s"
    )
    con.print(
        f"wall {run.wall:.3f}s · bound {bound:.2f}s ({bound / L:.0f} L) · ratio [bold]{ratio:.3f}[/bold]"
        f" (target ≤ 1.15) · first request after {first_request - run.timeline.started:.3f}s"
    )
    con.print(
        f"event-loop thread CPU {run.loop_cpu:.2f}s = {run.loop_cpu / max(calls, 1) * 1000:.1f} ms per call"
        " (promptopt + litellm; the stub's threads excluded)"
    )
    con.print(
        f"calls {calls} (expected {expected_calls}) · stub and ledger agree: {agree} · "
        f"peak in flight {run.max_in_flight}"
    )
    if checks:
        con.print(
            f"judge request: a question at most {checks['judge_max_question_repeats']}×, prompts quoted "
            f"{checks['judge_prompts_quoted']}× · optimizer request: a question at most "
            f"{checks['optimizer_max_question_repeats']}×, prompts quoted {checks['optimizer_prompts_quoted']}×"
        )
    gap_table = Table(
        title="where the time outside model calls went (ms; mean over rounds ≥ 2, round 1 apart)",
        title_justify="left",
    )
    for col in ("gap", "round 1", "rounds ≥ 2 mean", "max"):
        gap_table.add_column(col, justify="left" if col == "gap" else "right")
    later = rounds[1:]
    gap_means = {}
    for key, label in GAPS.items():
        values = [r.gaps[key] for r in later if key in r.gaps]
        one = rounds[0].gaps.get(key) if rounds and rounds[0].number == 1 else None
        if not values and one is None:
            continue
        gap_means[key] = statistics.mean(values) if values else None
        gap_table.add_row(
            f"{key}: {label}",
            f"{one * 1000:.0f}" if one is not None else "-",
            f"{gap_means[key] * 1000:.1f}" if values else "-",
            f"{max(values) * 1000:.1f}" if values else "-",
        )
    con.print(gap_table)
    con.print(f"[dim]{load_info()} after[/dim]")
    report["critical_path"] = {
        "rounds": args.rounds,
        "questions": q,
        "votes": v,
        "latency": L,
        "concurrency": c,
        "wall_s": round(run.wall, 4),
        "loop_cpu_s": round(run.loop_cpu, 4),
        "bound_s": round(bound, 4),
        "ratio": round(ratio, 4),
        "target_ratio": 1.15,
        "pass_time": ratio <= 1.15,
        "calls": calls,
        "expected_calls": expected_calls,
        "pass_calls": calls == expected_calls,
        "stub_calls": stub_calls,
        "ledger_agrees": agree,
        "ledger": {k: u.model_dump() if u else None for k, u in ledger.items()},
        "time_to_first_request_s": round(first_request - run.timeline.started, 4),
        "gap_means_s": {k: (round(x, 4) if x is not None else None) for k, x in gap_means.items()},
        "max_in_flight": run.max_in_flight,
        "content": checks,
        "rounds_detail": [
            {
                "round": r.number,
                "verdict": r.verdict,
                "votes": r.marks,
                "wall_s": round(r.wall, 4),
                "ideal_s": r.ideal,
                "spans_s": {k: round(x, 4) for k, x in r.spans.items()},
                "gaps_s": {k: round(x, 4) for k, x in r.gaps.items()},
                "stub_calls": r.stub_calls,
                "usage": r.ledger,
            }
            for r in rounds
        ],
        "load": load_info(),
    }
    report["_workspace"] = str(run.workspace)


def summary_rows(report: dict[str, Any]) -> list[SummaryRow]:
    cp = report.get("critical_path")
    if not cp:
        return []
    return [
        (
            "critical path wall ≤ 1.15 × bound",
            f"{cp['wall_s']:.2f}s / {cp['bound_s']:.2f}s = {cp['ratio']:.3f}",
            cp["pass_time"],
        ),
        (
            f"model calls = {cp['questions']} + {cp['rounds'] - 1} × (1 + {cp['questions']} + {cp['votes']})",
            f"{cp['calls']} (expected {cp['expected_calls']})",
            cp["pass_calls"],
        ),
    ]


SCENARIO = Scenario(
    name="critical-path",
    about="in-process run_optimization; wall time vs L + (R-1)*3L, calls and tokens per role/round",
    run=scenario_critical_path,
    summary=summary_rows,
    warm_litellm=True,
)
