#!/usr/bin/env python
"""Benchmark promptopt against a local OpenAI-compatible stub through the real litellm client.

Scenarios (docs/benchmarks.md explains each figure and the targets):

  critical-path  in-process run_optimization; wall time vs L + (R-1)*3L, calls and tokens per role/round
  wide           many questions, high concurrency: each round's execution phase vs ceil(Q/C)*L
  startup        median wall time of `promptopt --help`, `init`, `show`, `import promptopt.cli`
  rerun          the CLI twice with the same flags against a stub subprocess: calls and time of run 2
  dry-run        `optimize --dry-run --json` vs what the real run then spent, per role
  dry-run-warm   the same once the estimator has data: a second project after a first run, a resume

    python scripts/bench.py                              # all scenarios, the issue's settings
    python scripts/bench.py --scenario critical-path --rounds 10 --questions 3 --votes 4 --latency 0.3

Nothing leaves 127.0.0.1: the stub answers every call, OPENAI_API_KEY is a placeholder, litellm never
fetches its price map, and the cache, workspaces and config dirs are temporary.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from rich.console import Console
from rich.table import Table

ROLES = ("optimizer", "executor", "evaluator")
STUB_ROLE = {"optimizer": "optimizer", "executor": "executor", "judge": "evaluator"}
HEAVY = ("litellm", "openai", "httpx", "aiohttp", "tiktoken", "tokenizers")
SUBPROCESS_TIMEOUT = 600.0

# fmt: off
TOPICS = ["tides", "photosynthesis", "compound interest", "a bicycle gear", "rainbows", "vaccines",
          "a transistor", "glaciers", "inflation", "the immune system", "volcanoes", "bread rising",
          "jet engines", "plate tectonics", "a refrigerator", "echoes", "the seasons", "magnets"]
# fmt: on


# --- environment -----------------------------------------------------------------------------


def bench_env(root: Path) -> dict[str, str]:
    """The user's environment minus PROMPTOPT_* settings, pointed at temporary dirs and the stub."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROMPTOPT_")}
    env.update(
        {
            "LITELLM_LOCAL_MODEL_COST_MAP": "True",
            "OPENAI_API_KEY": "sk-stub",
            "PROMPTOPT_CACHE_DIR": str(root / "cache"),
            "XDG_CONFIG_HOME": str(root / "config"),  # no user config.yaml changes the run
            "COLUMNS": "120",
        }
    )
    return env


def source_version() -> str:
    """The commit measured (read-only git), with '+dirty' when src/ has uncommitted changes."""
    here = Path(__file__).resolve().parent.parent
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=here, capture_output=True, text=True, timeout=10
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "src"], cwd=here, capture_output=True, text=True, timeout=10
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return (head or "unknown") + ("+dirty" if dirty else "")


def load_info() -> str:
    one, five, _ = os.getloadavg()
    return f"load {one:.2f}/{five:.2f} on {os.cpu_count()} cores"


def write_template(path: Path, questions: int) -> Path:
    qa = [
        {
            "question": f"Question {i + 1}: explain {TOPICS[i % len(TOPICS)]} to a curious twelve-year-old"
            f" (variant {i // len(TOPICS) + 1}).",
            "answer": None,
        }
        for i in range(questions)
    ]
    data = {
        "prompt": "Answer the question clearly in a short paragraph.\n",
        "requirements": "Accurate, concrete, at most five sentences, no jargon without a definition.\n",
        "count": None,
        "qa": qa,
    }
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def promptopt_command() -> list[str]:
    """The installed console script next to this interpreter (a venv's bin/), not a pyenv shim."""
    beside = Path(sys.executable).with_name("promptopt")
    if beside.exists():
        return [str(beside)]
    found = shutil.which("promptopt")
    return [found] if found else [sys.executable, "-m", "promptopt"]


def pct(est: float, real: float) -> float | None:
    return None if real == 0 else (est - real) / real * 100


def waves(n: int, concurrency: int) -> int:
    return math.ceil(n / concurrency) if n else 0


# --- in-process engine run -------------------------------------------------------------------


@dataclass
class Timeline:
    """Engine events stamped with time.monotonic(), the clock the stub stamps requests with."""

    started: float = 0.0
    phases: list[tuple[float, int, str]] = field(default_factory=list)
    rounds_done: list[tuple[float, int]] = field(default_factory=list)


def make_events(timeline: Timeline) -> Any:
    from promptopt.events import Events

    class TimedEvents(Events):
        def run_started(self, plan: Any) -> None:
            timeline.started = time.monotonic()

        def phase(self, round_number: int, phase: str) -> None:
            timeline.phases.append((time.monotonic(), round_number, phase))

        def round_done(self, record: Any) -> None:
            timeline.rounds_done.append((time.monotonic(), record.round))

    return TimedEvents()


@dataclass
class EngineRun:
    result: Any
    timeline: Timeline
    wall: float
    loop_cpu: float  # CPU seconds of the event-loop thread (promptopt + litellm, not the stub's threads)
    requests: list[dict[str, Any]]
    max_in_flight: int
    template: Any
    workspace: Path
    config: Any


def import_litellm() -> dict[str, float]:
    """Import litellm once (timed), and what its first call imports lazily; the run's clock starts after."""
    start = time.perf_counter()
    from promptopt.llm import _import_litellm

    _import_litellm()
    middle = time.perf_counter()
    import openai.resources  # noqa: F401 - the OpenAI SDK imports every resource on its first request

    return {
        "litellm_s": round(middle - start, 3),
        "openai_resources_s": round(time.perf_counter() - middle, 3),
    }


@contextlib.contextmanager
def serve(mode: str, latency: float, log: Path, env: dict[str, str], responder: Any = None) -> Any:
    """A stub in this process (threads) or in its own process; yields (url, fetch requests, fetch peak)."""
    if mode == "thread":
        from promptopt.testing.stub_server import StubServer

        with StubServer(latency=latency, responder=responder) as stub:
            yield stub.url, lambda: stub.requests, lambda: stub.max_in_flight
        return
    if responder is not None:
        raise ValueError("a custom responder needs the in-process stub")
    proc = StubProcess(latency, log, env)
    try:
        yield proc.url, proc.requests, proc.peak
    finally:
        proc.stop()


def engine_run(
    root: Path,
    env: dict[str, str],
    tag: str,
    args: argparse.Namespace,
    questions: int,
    rounds: int,
    concurrency: int,
    latency: float,
    responder: Any = None,
    stub_mode: str | None = None,
) -> EngineRun:
    """One fresh run (new workspace, new cache) of run_optimization with a LiteLLMClient on a stub."""
    from promptopt.cache import ResponseCache
    from promptopt.config import resolve_config
    from promptopt.engine.loop import run_optimization
    from promptopt.engine.strategies import get_strategy
    from promptopt.llm import LiteLLMClient
    from promptopt.template import load_template
    from promptopt.workspace import Workspace

    folder = root / tag
    folder.mkdir(parents=True)
    template, _ = load_template(write_template(folder / f"{tag}.yaml", questions))
    timeline = Timeline()
    with serve(stub_mode or args.stub, latency, folder / "stub.jsonl", env, responder) as (url, fetch, peak_of):
        flags = {
            "model": args.model,
            "api_base": url,
            "max_rounds": rounds,
            "votes": args.votes,
            "concurrency": concurrency,
            "workspace": folder / "ws",
            "name": tag,
            "cache_dir": folder / "cache",
        }
        config = resolve_config(flags, env=env, cwd=folder)
        get_strategy(config.strategy)  # as the CLI does before the run: strategy modules imported
        start, cpu = time.perf_counter(), time.thread_time()
        client = LiteLLMClient(config, cache=ResponseCache(config.cache_dir))
        result = asyncio.run(
            run_optimization(template, config, client, Workspace(config.workspace, tag), make_events(timeline))
        )
        wall, loop_cpu = time.perf_counter() - start, time.thread_time() - cpu
        requests = fetch()
        peak = peak_of()
    return EngineRun(result, timeline, wall, loop_cpu, requests, peak, template, folder / "ws" / tag, config)


@dataclass
class RoundStats:
    number: int
    verdict: str
    marks: str
    wall: float
    ideal: float
    spans: dict[str, float]  # role -> first request start .. last request end (stub clock)
    gaps: dict[str, float]  # where the time outside model calls went (see GAPS)
    engine_exec: float  # execute phase as the engine saw it (phase event to next event)
    stub_calls: dict[str, int]
    ledger: dict[str, Any]
    stub_prompt_tokens: dict[str, int]


GAPS = {
    "start": "previous round committed → optimize phase event",
    "opt_pre": "optimize event → optimizer request reaches the stub",
    "opt_post": "optimizer reply sent → execute event",
    "exec_pre": "execute event → first executor request reaches the stub",
    "exec_post": "last executor reply sent → judge event (round 1: → round committed)",
    "judge_pre": "judge event → first judge request reaches the stub",
    "judge_post": "last judge reply sent → round committed (results.json written)",
}


def round_ideal(number: int, questions: int, votes: int, concurrency: int, latency: float) -> float:
    if number == 1:
        return waves(questions, concurrency) * latency
    return (1 + waves(questions, concurrency) + waves(votes, concurrency)) * latency


def analyse_rounds(run: EngineRun, latency: float) -> list[RoundStats]:
    """Assign each stub request to the engine phase it started in; per-round figures."""
    from promptopt.render import verdict_label
    from promptopt.testing.stub_server import approx_tokens

    cfg = run.config
    q = len(run.template.qa)
    phases = sorted(run.timeline.phases)
    by_round: dict[int, list[dict[str, Any]]] = {}
    for req in run.requests:
        owner = [p for p in phases if p[0] <= req["t_start"]]
        number = owner[-1][1] if owner else 0
        by_round.setdefault(number, []).append(req)
    done = {n: t for t, n in run.timeline.rounds_done}
    records = {r.round: r for r in run.result.records}
    stats = []
    previous = run.timeline.started
    for number in run.result.new_rounds:
        reqs = by_round.get(number, [])
        spans, calls, ptoks, first, last = {}, {}, {}, {}, {}
        for role in ROLES:
            mine = [r for r in reqs if STUB_ROLE[r["role"]] == role]
            calls[role] = len(mine)
            ptoks[role] = sum(
                sum(approx_tokens(str(m.get("content", ""))) for m in r["body"]["messages"])
                for r in mine
                if "body" in r
            )
            if mine:
                first[role] = min(r["t_start"] for r in mine)
                last[role] = max(r["t_end"] for r in mine)
                spans[role] = last[role] - first[role]
        starts = {ph: t for t, n, ph in phases if n == number}
        end = done[number]
        gaps: dict[str, float] = {}
        if "optimize" in starts:
            gaps["start"] = starts["optimize"] - previous
            if "optimizer" in first:
                gaps["opt_pre"] = first["optimizer"] - starts["optimize"]
                gaps["opt_post"] = starts.get("execute", end) - last["optimizer"]
        if "execute" in starts and "executor" in first:
            gaps["exec_pre"] = first["executor"] - starts["execute"]
            gaps["exec_post"] = starts.get("judge", end) - last["executor"]
        if "judge" in starts and "evaluator" in first:
            gaps["judge_pre"] = first["evaluator"] - starts["judge"]
            gaps["judge_post"] = end - last["evaluator"]
        engine_exec = starts.get("judge", end) - starts["execute"] if "execute" in starts else 0.0
        record = records[number]
        stats.append(
            RoundStats(
                number=number,
                verdict=verdict_label(record),
                marks=record.vote_marks,
                wall=end - previous,
                ideal=round_ideal(number, q, cfg.votes, cfg.concurrency, latency),
                spans=spans,
                gaps=gaps,
                engine_exec=engine_exec,
                stub_calls=calls,
                ledger={k: v.model_dump() for k, v in record.usage.items()},
                stub_prompt_tokens=ptoks,
            )
        )
        previous = end
    return stats


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


def scenario_critical_path(
    args: argparse.Namespace, root: Path, env: dict[str, str], con: Console, report: dict[str, Any]
) -> None:
    con.rule(
        f"critical path: {args.rounds} rounds, {args.questions} questions, {args.votes} votes, "
        f"L={args.latency}s, concurrency {args.concurrency}"
    )
    con.print(f"[dim]{load_info()} before[/dim]")
    run = engine_run(root, env, "critical", args, args.questions, args.rounds, args.concurrency, args.latency)
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


def scenario_wide(
    args: argparse.Namespace, root: Path, env: dict[str, str], con: Console, report: dict[str, Any]
) -> None:
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


# --- subprocess helpers ----------------------------------------------------------------------

# Runs the CLI and reports, at exit, which heavy packages ended up imported.
MODULE_PROBE = (
    "import atexit, sys\n"
    f"H = {HEAVY!r}\n"
    "atexit.register(lambda: sys.__stderr__.write('BENCH_HEAVY ' + ','.join(sorted("
    "{m.split('.')[0] for m in sys.modules} & set(H))) + '\\n'))\n"
    "sys.argv = ['promptopt'] + sys.argv[1:]\n"
    "from promptopt.cli import main\n"
    "main()\n"
)


def run_cmd(cmd: list[str], env: dict[str, str], cwd: Path) -> tuple[float, subprocess.CompletedProcess[str]]:
    start = time.perf_counter()
    proc = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=SUBPROCESS_TIMEOUT)
    return time.perf_counter() - start, proc


def heavy_modules(args_: list[str], env: dict[str, str], cwd: Path) -> list[str]:
    _, proc = run_cmd([sys.executable, "-c", MODULE_PROBE, *args_], env, cwd)
    for line in proc.stderr.splitlines():
        if line.startswith("BENCH_HEAVY"):
            return [m for m in line.split(" ", 1)[1].strip().split(",") if m]
    raise RuntimeError(f"module probe failed for {args_}: {proc.stderr[-500:]}")


class StubProcess:
    """`python -m promptopt.testing.stub_server` with a JSON-lines request log."""

    def __init__(self, latency: float, log: Path, env: dict[str, str]) -> None:
        self.log = log
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "promptopt.testing.stub_server",
                "--latency",
                str(latency),
                "--log",
                str(log),
            ],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        self.url = ""
        ready = threading.Event()

        def read() -> None:
            assert self.proc.stdout is not None
            for line in self.proc.stdout:
                if line.startswith("STUB_URL "):
                    self.url = line.split(" ", 1)[1].strip()
                    ready.set()
                    return

        threading.Thread(target=read, daemon=True).start()
        if not ready.wait(30):
            self.stop()
            raise RuntimeError("the stub server did not print STUB_URL within 30 s")

    def count(self) -> int:
        if not self.log.exists():
            return 0
        return sum(1 for line in self.log.read_text(encoding="utf-8").splitlines() if line.strip())

    def requests(self) -> list[dict[str, Any]]:
        """The log's records (role, t_start, t_end on the system-wide monotonic clock; no bodies)."""
        if not self.log.exists():
            return []
        lines = self.log.read_text(encoding="utf-8").splitlines()
        return sorted((json.loads(x) for x in lines if x.strip()), key=lambda r: r["t_start"])

    def peak(self) -> int:
        edges = sorted([(r["t_start"], 1) for r in self.requests()] + [(r["t_end"], -1) for r in self.requests()])
        level = top = 0
        for _, step in edges:
            level += step
            top = max(top, level)
        return top

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


# --- startup ---------------------------------------------------------------------------------


def ensure_workspace(args: argparse.Namespace, root: Path, env: dict[str, str], report: dict[str, Any]) -> Path:
    if "_workspace" not in report:
        run = engine_run(
            root, env, "startup-ws", args, args.questions, args.rounds, args.concurrency, 0.0, stub_mode="thread"
        )
        report["_workspace"] = str(run.workspace)
    return Path(report["_workspace"])


def bytecode_env(env: dict[str, str], root: Path) -> dict[str, str]:
    """Bytecode written to (and read from) a private folder, as a wheel install has it precompiled."""
    pyc_env = {k: v for k, v in env.items() if k != "PYTHONDONTWRITEBYTECODE"}
    pyc_env["PYTHONPYCACHEPREFIX"] = str(root / "pycache")
    return pyc_env


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


def scenario_startup(
    args: argparse.Namespace, root: Path, env: dict[str, str], con: Console, report: dict[str, Any]
) -> None:
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
    gated = ("promptopt --help", "promptopt init x --from Poem", "promptopt show WS")
    report["startup"] = {
        "runs": args.startup_runs,
        "commands": results,
        "litellm_after_import_cli": litellm_loaded,
        "pass": all(results[k]["as is"]["median_s"] <= 0.3 for k in gated) and not litellm_loaded,
        "pass_bytecode_cached": all(results[k]["bytecode cached"]["median_s"] <= 0.3 for k in gated),
        "load": load_info(),
    }


# --- rerun and dry-run (CLI subprocesses against a stub subprocess) ----------------------------


def scenario_cli(
    args: argparse.Namespace,
    root: Path,
    env: dict[str, str],
    con: Console,
    report: dict[str, Any],
    rerun: bool,
    dry: bool,
) -> None:
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


def compare_estimate(estimate: dict[str, Any], usage: dict[str, Any]) -> dict[str, Any]:
    rows: dict[str, Any] = {}
    for role in (*ROLES, "total"):
        if role == "total":
            est = {
                k: sum(estimate["roles"][r][k] for r in ROLES) for k in ("calls", "prompt_tokens", "completion_tokens")
            }
            real = {
                k: sum(usage.get(r, {}).get(k, 0) for r in ROLES)
                for k in ("calls", "prompt_tokens", "completion_tokens")
            }
        else:
            est = {k: estimate["roles"][role][k] for k in ("calls", "prompt_tokens", "completion_tokens")}
            real = {k: usage.get(role, {}).get(k, 0) for k in ("calls", "prompt_tokens", "completion_tokens")}
        est["tokens"] = est["prompt_tokens"] + est["completion_tokens"]
        real["tokens"] = real["prompt_tokens"] + real["completion_tokens"]
        rows[role] = {k: {"estimate": est[k], "real": real[k], "diff_pct": pct(est[k], real[k])} for k in est}
    total = rows["total"]
    rows["pass"] = all(abs(total[k]["diff_pct"] or 0) <= 10 for k in ("calls", "tokens"))
    return rows


def print_estimate(con: Console, rows: dict[str, Any], title: str) -> None:
    table = Table(title=title + " (estimate / real / diff)", title_justify="left")
    for col in ("role", "calls", "prompt tok", "completion tok", "prompt+completion"):
        table.add_column(col, justify="left" if col == "role" else "right")

    def cell(x: dict[str, Any]) -> str:
        d = x["diff_pct"]
        return f"{x['estimate']:,} / {x['real']:,} / " + ("n/a" if d is None else f"{d:+.1f}%")

    for role in (*ROLES, "total"):
        r = rows[role]
        table.add_row(role, cell(r["calls"]), cell(r["prompt_tokens"]), cell(r["completion_tokens"]), cell(r["tokens"]))
    con.print(table)


def scenario_dry_warm(
    args: argparse.Namespace, root: Path, env: dict[str, str], con: Console, report: dict[str, Any]
) -> None:
    """--dry-run where the estimator has data: a second project after a first run, and a resume.

    The CLI against a stub process (bundled templates, L = --warm-latency): `-t Poem -n A` (fills the
    cache), then `-t Navigate -n B --dry-run` vs the real run of B (B's dry run on the empty cache is
    compared too); in a second cache, `-t Poem -n R -r 5`, then `-r R --dry-run` vs the real continuation.
    """
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


def scenario_dry_sized(
    args: argparse.Namespace, root: Path, env: dict[str, str], con: Console, report: dict[str, Any]
) -> None:
    """The estimate against a run whose replies have the lengths the estimator guesses."""
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


# --- main ------------------------------------------------------------------------------------


def summary(report: dict[str, Any], con: Console) -> None:
    table = Table(
        title=f"targets · commit {report.get('commit')} · {report.get('date')} · {report.get('load_end')}",
        title_justify="left",
    )
    for col in ("target", "measured", "pass"):
        table.add_column(col)

    def mark(ok: bool) -> str:
        return "[green]pass[/green]" if ok else "[red]FAIL[/red]"

    cp = report.get("critical_path")
    if cp:
        table.add_row(
            "critical path wall ≤ 1.15 × bound",
            f"{cp['wall_s']:.2f}s / {cp['bound_s']:.2f}s = {cp['ratio']:.3f}",
            mark(cp["pass_time"]),
        )
        table.add_row(
            f"model calls = {cp['questions']} + {cp['rounds'] - 1} × (1 + {cp['questions']} + {cp['votes']})",
            f"{cp['calls']} (expected {cp['expected_calls']})",
            mark(cp["pass_calls"]),
        )
    wide = report.get("wide")
    if wide:
        table.add_row(
            "wide: each round ≤ 1.2 × ideal",
            f"exec {wide['worst_exec_ratio']:.3f}, round {wide['worst_round_ratio']:.3f} (worst)",
            mark(wide["pass"]),
        )
    st = report.get("startup")
    if st:
        c = st["commands"]
        text = ", ".join(
            f"{k.split()[1]} {c[k]['as is']['median_s']:.2f}s"
            for k in ("promptopt --help", "promptopt init x --from Poem", "promptopt show WS")
        )
        table.add_row("start-up medians ≤ 0.3 s, no litellm", text, mark(st["pass"]))
        text = ", ".join(
            f"{k.split()[1]} {c[k]['bytecode cached']['median_s']:.2f}s"
            for k in ("promptopt --help", "promptopt init x --from Poem", "promptopt show WS")
        )
        table.add_row("  same, bytecode cached", text, mark(st["pass_bytecode_cached"]))
    cli = report.get("cli", {})
    for label, x in cli.get("reruns", {}).items():
        cached = x.get("seconds_bytecode_cached")
        table.add_row(
            f"rerun, {label}: 0 calls, < 1 s",
            f"{x['stub_calls']} calls, {x['seconds']:.2f}s" + (f" ({cached:.2f}s bytecode cached)" if cached else ""),
            mark(x["pass"]),
        )
    if "dry_run" in cli:
        t = cli["dry_run"]["comparison"]["total"]
        table.add_row(
            "--dry-run within 10% (calls, tokens)",
            f"calls {t['calls']['diff_pct']:+.1f}%, tokens {t['tokens']['diff_pct']:+.1f}%",
            mark(cli["dry_run"]["comparison"]["pass"]),
        )
    if "dry_run_sized" in cli:
        t = cli["dry_run_sized"]["total"]
        table.add_row(
            "  same, replies of the assumed length",
            f"calls {t['calls']['diff_pct']:+.1f}%, tokens {t['tokens']['diff_pct']:+.1f}%",
            mark(cli["dry_run_sized"]["pass"]),
        )
    warm = cli.get("dry_run_warm", {})
    for key, label in (("second_project", "second project, cache filled"), ("resume", "resume")):
        if key in warm:
            t = warm[key]["total"]
            table.add_row(
                f"  --dry-run, {label}",
                f"calls {t['calls']['diff_pct']:+.1f}%, tokens {t['tokens']['diff_pct']:+.1f}%",
                mark(warm[key]["pass"]),
            )
    con.print(table)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--scenario",
        default="all",
        choices=["critical-path", "wide", "startup", "rerun", "dry-run", "dry-run-warm", "all"],
    )
    parser.add_argument("--rounds", type=int, default=10, help="rounds of the run (default 10)")
    parser.add_argument("--questions", type=int, default=3, help="questions in the template (default 3)")
    parser.add_argument("--votes", type=int, default=4, help="judge votes per round (default 4)")
    parser.add_argument("--latency", type=float, default=0.3, help="stub seconds per call, L (default 0.3)")
    parser.add_argument("--concurrency", type=int, default=8, help="calls in flight (default 8)")
    parser.add_argument("--wide-questions", type=int, default=200, help="questions for `wide` (default 200)")
    parser.add_argument("--wide-concurrency", type=int, default=32, help="concurrency for `wide` (default 32)")
    parser.add_argument("--wide-rounds", type=int, default=3, help="rounds for `wide` (default 3)")
    parser.add_argument(
        "--warm-latency", type=float, default=0.05, help="stub seconds per call for `dry-run-warm` (default 0.05)"
    )
    parser.add_argument("--rerun-runs", type=int, default=3, help="timed reruns of a finished run (default 3)")
    parser.add_argument("--startup-runs", type=int, default=7, help="runs per start-up command (default 7)")
    parser.add_argument(
        "--stub",
        choices=["thread", "process"],
        default="thread",
        help="in-process engine runs: the stub in this process's threads (shares the GIL) or its own process",
    )
    parser.add_argument("--model", default="openai/stub", help="litellm model name sent to the stub (openai/stub)")
    parser.add_argument("--json", action="store_true", help="print a JSON report on stdout (tables on stderr)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder and print its path")
    args = parser.parse_args(argv)
    if (
        min(args.rounds, args.questions, args.votes, args.concurrency, args.startup_runs) < 1
        or min(args.latency, args.warm_latency) < 0
    ):
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
    chosen = args.scenario
    try:
        if chosen in ("critical-path", "wide", "all", "dry-run") or chosen == "startup":
            report["import"] = import_litellm()
        if chosen in ("critical-path", "all"):
            scenario_critical_path(args, root, env, con, report)
        if chosen in ("wide", "all"):
            scenario_wide(args, root, env, con, report)
        if chosen in ("startup", "all"):
            scenario_startup(args, root, env, con, report)
        if chosen in ("rerun", "dry-run", "all"):
            scenario_cli(
                args,
                root,
                env,
                con,
                report,
                rerun=chosen in ("rerun", "all"),
                dry=chosen in ("dry-run", "all"),
            )
        if chosen in ("dry-run", "all"):
            scenario_dry_sized(args, root, env, con, report)
        if chosen in ("dry-run-warm", "all"):
            scenario_dry_warm(args, root, env, con, report)
        report["load_end"] = load_info()
        summary(report, con)
    finally:
        if args.keep:
            con.print(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    report.pop("_workspace", None)
    if args.json:
        print(json.dumps(report, indent=2, ensure_ascii=False, default=str))
    return 0


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        raise SystemExit(main())
