"""Measure an embedded local model on a real optimize run: time per role, parse failures, leak guard.

    python scripts/local_eval.py --model local:qwen2.5-coder-1.5b --rounds 2 --structured on
    python scripts/local_eval.py --model local --rounds 3 --structured off --seeds 0 1 2
    python scripts/local_eval.py --model local --probe 8 --structured off   # replies only, no loop

Each run is a fresh `optimize` (no response cache) in a temporary workspace, through the public
API with a recording wrapper around the real client, so every call is seen with its shape,
reply and seconds. Prints one JSON object per run, then a summary over all runs (also written
with --out). Parse failures are counted per reply with the engine's own parsers: an optimizer
reply without a usable <prompt> (<sentence> for Dual-Phase), a judge reply without
<choose>A|B</choose>. The leak guard counts replies it sent back and rounds it rejected.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")


class Recorder:
    """An LLM that forwards to the real client and keeps (role, shape, text, seconds, tokens) per call."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.usage = inner.usage
        self.calls: list[dict[str, Any]] = []

    def __getattr__(self, name: str) -> Any:
        """Everything else the engine reads from its client (start-up seconds, warnings): the real one's."""
        return getattr(self.inner, name)

    async def complete(self, role: str, messages: list[dict[str, Any]], *, sample: int = 0, shape: Any = None) -> Any:
        from promptopt import prompts

        done = await self.inner.complete(role, messages, sample=sample, shape=shape)
        note = prompts.load("leak_note").split("{", 1)[0]
        self.calls.append(
            {
                "role": role,
                "shape": shape.name if shape is not None else None,
                "text": done.text,
                "seconds": done.seconds,
                "prompt_tokens": done.prompt_tokens,
                "completion_tokens": done.completion_tokens,
                "leak_reask": role == "optimizer" and str(messages[-1].get("content", "")).startswith(note),
            }
        )
        return done


def parsed(call: dict[str, Any]) -> bool:
    from promptopt.engine.parse import parse_choice, parse_prompt
    from promptopt.engine.strategies.dual_phase import parse_sentence

    if call["role"] == "evaluator":
        return parse_choice(call["text"]) is not None
    if call["role"] == "optimizer":
        return (parse_sentence if call["shape"] == "sentence" else parse_prompt)(call["text"]) is not None
    return True


def one_run(args: argparse.Namespace, seed: int) -> dict[str, Any]:
    from promptopt.api import load_config, make_client, optimize

    folder = Path(tempfile.mkdtemp(prefix="promptopt-local-eval-"))
    config = load_config(
        model=args.model,
        max_rounds=args.rounds,
        votes=args.votes,
        strategy=args.strategy,
        structured=args.structured,
        seed=seed,
        workspace=folder / "workspace",
        cache=False,
        timeout=900,
    )
    recorder = Recorder(make_client(config))
    started = time.perf_counter()
    result = optimize(args.template, config, llm=recorder)
    wall = time.perf_counter() - started
    calls = recorder.calls
    per_role: dict[str, dict[str, float]] = defaultdict(lambda: Counter())  # type: ignore[arg-type]
    for c in calls:
        r = per_role[c["role"]]
        r["calls"] += 1
        r["unparsed"] += not parsed(c)
        r["prompt_tokens"] += c["prompt_tokens"]
        r["completion_tokens"] += c["completion_tokens"]
        r["seconds"] += c["seconds"]
    rounds = []
    for rec in result.records:
        rounds.append(
            {
                "round": rec.round,
                "verdict": rec.verdict,
                "votes": rec.vote_marks,
                "seconds": rec.duration_s,
                "error": rec.error,
                "roles": {
                    role: {
                        "calls": u.calls,
                        "prompt_tokens": u.prompt_tokens,
                        "completion_tokens": u.completion_tokens,
                        "seconds": round(u.seconds, 1),
                    }
                    for role, u in rec.usage.items()
                },
            }
        )
    return {
        "model": args.model,
        "structured": args.structured,
        "strategy": args.strategy,
        "seed": seed,
        "wall_s": round(wall, 1),
        "startup_s": round(getattr(recorder.inner, "startup_seconds", 0.0), 1),
        "rounds": rounds,
        "roles": {k: {n: round(v, 1) for n, v in r.items()} for k, r in per_role.items()},
        "leak_reasks": sum(c["leak_reask"] for c in calls),
        "leak_rejections": sum(rec.verdict == "rejected" and "leaks" in (rec.error or "") for rec in result.records),
        "judged_rounds": sum(bool(rec.votes) for rec in result.records),
        "unparsed_examples": [" ".join(c["text"].split())[:200] for c in calls if not parsed(c)][:3],
        "load_avg_1m": round(os.getloadavg()[0], 2),
    }


def probe(args: argparse.Namespace, seed: int) -> dict[str, Any]:
    """--probe N: round 1's answers, then N optimizer replies and N judge votes on them, with no loop.

    The judge compares the model's answers with the reference answers (half the votes swapped), so
    every vote has something to choose; only whether the reply parses is counted, not the choice.
    """
    import asyncio

    from promptopt.api import load_config, make_client, prepare_run
    from promptopt.engine.execute import execute
    from promptopt.engine.judge import comparison_block, judge_messages
    from promptopt.engine.strategies.base import RunContext
    from promptopt.engine.strategies.spo import SPO
    from promptopt.shapes import JUDGE, OPTIMIZER
    from promptopt.workspace import AnswerRecord, RoundRecord

    config = load_config(model=args.model, structured=args.structured, seed=seed, cache=False, timeout=900)
    template, config, _ = prepare_run(args.template, config.model_copy(update={"name": "probe"}))
    recorder = Recorder(make_client(config))
    ctx = RunContext(template, config, recorder)
    questions = ctx.questions

    async def run() -> None:
        answers = await execute(recorder, template.prompt, questions)
        base = RoundRecord(round=1, prompt=template.prompt, answers=answers)
        messages = SPO(ctx).optimizer_messages(base)
        for i in range(args.probe):
            await recorder.complete("optimizer", messages, sample=1000 + i, shape=OPTIMIZER)
        golden = [AnswerRecord(question=q, answer=g or "") for q, g in zip(questions, template.golden, strict=True)]
        straight = judge_messages(template.requirements, comparison_block(questions, template.golden, answers, golden))
        swapped = judge_messages(template.requirements, comparison_block(questions, template.golden, golden, answers))
        for i in range(args.probe):
            await recorder.complete("evaluator", swapped if i % 2 else straight, sample=i, shape=JUDGE)

    started = time.perf_counter()
    asyncio.run(run())
    roles: dict[str, Counter[str]] = defaultdict(Counter)
    for c in recorder.calls:
        r = roles[c["role"]]
        r.update(calls=1, unparsed=int(not parsed(c)), completion_tokens=c["completion_tokens"])
        r["seconds"] += c["seconds"]
    return {
        "model": args.model,
        "structured": args.structured,
        "probe": args.probe,
        "seed": seed,
        "wall_s": round(time.perf_counter() - started, 1),
        "roles": {k: {n: round(v, 1) for n, v in r.items()} for k, r in roles.items()},
        "unparsed_examples": [" ".join(c["text"].split())[:200] for c in recorder.calls if not parsed(c)][:3],
        "load_avg_1m": round(os.getloadavg()[0], 2),
    }


def summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    totals: dict[str, Counter[str]] = defaultdict(Counter)
    for run in runs:
        for role, r in run["roles"].items():
            totals[role].update({k: v for k, v in r.items()})
    rates = {
        role: f"{int(t['unparsed'])} of {int(t['calls'])} replies unparsable"
        for role, t in totals.items()
        if role != "executor"
    }
    later = [r for run in runs for r in run.get("rounds", []) if r["round"] > 1]
    return {
        "runs": len(runs),
        "parse_failures": rates,
        "leak_reasks": sum(r.get("leak_reasks", 0) for r in runs),
        "leak_rejections": sum(r.get("leak_rejections", 0) for r in runs),
        "rounds_after_1": len(later),
        "judged_rounds": sum(r.get("judged_rounds", 0) for r in runs),
        "round_seconds": [r["seconds"] for r in later],
        "verdicts": Counter(r["verdict"] for r in later),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="local:qwen2.5-coder-1.5b")
    parser.add_argument("--template", default="Navigate")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--votes", type=int, default=4)
    parser.add_argument("--strategy", default="spo")
    parser.add_argument("--structured", choices=["auto", "on", "off"], default="auto")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--out", type=Path, help="append every run and the summary (JSON lines)")
    parser.add_argument("--probe", type=int, default=0, help="no loop: N optimizer replies and N votes")
    args = parser.parse_args()
    runs = []
    for seed in args.seeds:
        run = probe(args, seed) if args.probe else one_run(args, seed)
        runs.append(run)
        print(json.dumps(run, ensure_ascii=False), flush=True)
    total = {"summary": summary(runs), "args": {k: str(v) for k, v in vars(args).items()}}
    print(json.dumps(total, ensure_ascii=False, indent=2))
    if args.out:
        with args.out.open("a", encoding="utf-8") as f:
            for run in runs:
                f.write(json.dumps(run, ensure_ascii=False) + "\n")
            f.write(json.dumps(total, ensure_ascii=False) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
