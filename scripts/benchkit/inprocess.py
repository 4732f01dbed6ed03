"""In-process engine runs: run_optimization with a LiteLLMClient on a stub, timed against its events."""

from __future__ import annotations

import argparse
import asyncio
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .common import ROLES, STUB_ROLE, serve, waves, write_template


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
    overrides: dict[str, Any] | None = None,
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
            **(overrides or {}),
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
