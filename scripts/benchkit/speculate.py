"""speculate: --speculate against the same run without it, interleaved, medians of several runs.

Four comparisons, each variant run `--spec-runs` times in turn (plain, speculate, plain, …):
1. SPO's own rule (`--accept majority`, exactly --votes votes): engine time against the 28 L
   critical path of 10 rounds, and calls against 75 (+ one wasted optimizer call per round).
2. Adaptive judging (the default `paired` rule, --votes 4 up to --max-votes 12) against a judge
   that needs extra pairs in some rounds: the time --speculate saves.
3. SPO's rule with optimizer calls three times slower than the others (3 L), as with large models.
4. The CLI as a subprocess against the stub as a subprocess (whole-process wall), next to the time
   `import litellm` takes in a fresh interpreter, measured in the same interleaved loop.

The stub's judge decides by a fixed plan per comparison (see Replies), so both variants make the same
decisions with the same votes: only the timing and the wasted calls differ. (That --speculate makes
the same decisions given the same replies is tested in tests/test_speculate.py, where a reply is a
function of the request and its sample index, which the stub cannot see.)
"""

from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from rich.table import Table

from .common import ROLES, STUB_ROLE, StubProcess, bytecode_env, load_info, promptopt_command, run_cmd, write_template
from .inprocess import engine_run, round_ideal
from .scenario import Context, Scenario, SummaryRow

IMPORT_PROBE = (
    "import time; t = time.perf_counter(); from promptopt.llm import _import_litellm; _import_litellm(); "
    "import openai.resources; print(time.perf_counter() - t)"
)


# What the judge does with the k-th comparison of a run (rounds 2, 3, …), in both orders: prefer the
# base (2 pairs decide), prefer the candidate, or tie every pair (adaptive judging asks for more).
JUDGE_PLAN = ("base", "base", "candidate", "tie", "base", "base", "tie", "base", "base")


class Replies:
    """Stub replies for both variants alike.

    The optimizer writes "Variant <hash of its request>-<n>", n counting earlier requests with the
    same body (a round and the next round's losing branch ask the same thing, and with --speculate
    in either order, so the two variants' candidate texts may swap between such rounds; nothing
    else depends on the text). The judge decides the k-th comparison of the run by JUDGE_PLAN:
    comparisons come one round after another in both variants (judging is never done ahead), so
    both make the same decisions with the same number of votes. The candidate is the side whose
    answers no earlier comparison showed (in the first, the side quoting a "Variant").
    """

    def __init__(self, optimizer_delay: float = 0.0) -> None:
        self.lock = threading.Lock()
        self.seen: dict[str, int] = {}
        self.optimizer_delay = optimizer_delay  # added to the stub's latency for optimizer calls
        self.answers_seen: set[str] = set()
        self.comparisons: dict[frozenset[str], tuple[int, str]] = {}  # → (k, the candidate's answers)

    def __call__(self, role: str, body: dict[str, Any]) -> str | None:
        text = str(body["messages"][-1].get("content", ""))
        digest = hashlib.sha256(text.encode()).hexdigest()
        if role == "optimizer":
            time.sleep(self.optimizer_delay)  # the stub's handler thread: this call only
            with self.lock:
                n = self.seen[digest] = self.seen.get(digest, -1) + 1
            prompt = f"Answer carefully and concisely. Variant {digest[:6]}-{n}."
            return f"<analyse>Clearer.</analyse>\n<modification>Reworded.</modification>\n<prompt>\n{prompt}\n</prompt>"
        if role != "judge":
            return None  # the executor's default: it quotes the start of its input
        a = "\n".join(line[3:] for line in text.splitlines() if line.startswith("A: "))
        b = "\n".join(line[3:] for line in text.splitlines() if line.startswith("B: "))
        key = frozenset((a, b))
        with self.lock:
            if key not in self.comparisons:
                new = [x for x in (a, b) if x not in self.answers_seen]
                candidate = new[0] if len(new) == 1 else (a if "Variant" in a else b)
                self.comparisons[key] = (len(self.comparisons), candidate)
                self.answers_seen.update((a, b))
            k, candidate = self.comparisons[key]
        mode = JUDGE_PLAN[k % len(JUDGE_PLAN)]
        if mode == "tie":  # the same letter in both orders
            choice = "A"
        else:
            favourite = candidate if mode == "candidate" else (b if candidate == a else a)
            choice = "A" if favourite == a else "B"
        return f"<analyse>Compared.</analyse>\n<choose>{choice}</choose>"


def options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--spec-runs", type=int, default=5, help="speculate: runs of each variant (default 5)")


def engine_variant(ctx: Context, tag: str, overrides: dict[str, Any], optimizer_delay: float = 0.0) -> dict[str, Any]:
    args = ctx.args
    run = engine_run(
        ctx.root,
        ctx.env,
        tag,
        args,
        args.questions,
        args.rounds,
        args.concurrency,
        args.latency,
        responder=Replies(optimizer_delay),
        stub_mode="thread",
        overrides={"confirm": False, **overrides},
    )
    calls = {role: sum(1 for r in run.requests if STUB_ROLE[r["role"]] == role) for role in ROLES}
    spec = run.result.speculation
    return {
        "wall_s": run.wall,
        "calls": sum(calls.values()),
        "stub_calls": calls,
        "judge_votes": [len(r.votes) for r in run.result.records[1:]],
        "verdicts": "".join("✓" if r.succeed else "✗" for r in run.result.records[1:]),
        "prompts": [r.prompt for r in run.result.records],
        "used": spec.used if spec else 0,
        "wasted": spec.wasted if spec else 0,
        "ledger_calls": run.result.calls,
    }


def cli_variant(ctx: Context, tag: str, template: Path, speculate: bool) -> dict[str, Any]:
    args = ctx.args
    folder = ctx.root / "cli" / tag
    folder.mkdir(parents=True)
    env = bytecode_env(ctx.env, ctx.root)
    stub = StubProcess(args.latency, folder / "stub.jsonl", env)
    try:
        cmd = [*promptopt_command(), "optimize", "-t", str(template), "-w", str(folder / "ws"), "-n", "run"]
        cmd += ["-r", str(args.rounds), "--votes", str(args.votes), "--accept", "majority", "--no-confirm"]
        cmd += ["--model", args.model, "--api-base", stub.url, "--json", "-q"]
        if speculate:
            cmd.append("--speculate")
        seconds, proc = run_cmd(cmd, {**env, "PROMPTOPT_CACHE_DIR": str(folder / "cache")}, folder)
        if proc.returncode != 0:
            raise RuntimeError(f"{tag}: exit {proc.returncode}: {proc.stderr[-500:]}")
        calls = stub.count()
    finally:
        stub.stop()
    out = json.loads(proc.stdout)
    return {"wall_s": seconds, "calls": calls, "speculation": out.get("speculation")}


def litellm_import(ctx: Context) -> float:
    env = bytecode_env(ctx.env, ctx.root)
    proc = subprocess.run([sys.executable, "-c", IMPORT_PROBE], env=env, capture_output=True, text=True, timeout=120)
    return float(proc.stdout.strip().splitlines()[-1])


def median(rows: list[dict[str, Any]], key: str) -> float:
    return statistics.median(r[key] for r in rows)


def scenario_speculate(ctx: Context) -> None:
    args, con, report = ctx.args, ctx.con, ctx.report
    L, q, v, c, n = args.latency, args.questions, args.votes, args.concurrency, args.rounds
    bound = sum(round_ideal(k, q, v, c, L) for k in range(1, n + 1))
    con.rule(f"speculate: {n} rounds, {q} questions, {v} votes, L={L}s, {args.spec_runs} runs of each variant")
    con.print(f"[dim]{load_info()} before[/dim]")
    template = write_template(ctx.root / "spec.yaml", q)
    slow = 2 * L  # optimizer calls take 3 L in the slow-optimizer variants
    variants: dict[str, tuple[dict[str, Any], float]] = {
        "majority": ({"accept": "majority"}, 0.0),
        "majority+speculate": ({"accept": "majority", "speculate": True}, 0.0),
        "adaptive": ({}, 0.0),
        "adaptive+speculate": ({"speculate": True}, 0.0),
        "slow-optimizer": ({"accept": "majority"}, slow),
        "slow-optimizer+speculate": ({"accept": "majority", "speculate": True}, slow),
    }
    engine: dict[str, list[dict[str, Any]]] = {k: [] for k in variants}
    cli: dict[str, list[dict[str, Any]]] = {"plain": [], "speculate": []}
    imports: list[float] = []
    for i in range(args.spec_runs):
        for name, (overrides, delay) in variants.items():
            engine[name].append(engine_variant(ctx, f"{name}-{i}", overrides, delay))
        for name in cli:
            cli[name].append(cli_variant(ctx, f"{name}-{i}", template, name == "speculate"))
        imports.append(litellm_import(ctx))
    same = {
        pair: all(
            a["verdicts"] == b["verdicts"] and a["judge_votes"] == b["judge_votes"]
            for a, b in zip(engine[pair], engine[f"{pair}+speculate"], strict=True)
        )
        for pair in ("majority", "adaptive", "slow-optimizer")
    }
    table = Table(
        title=f"engine runs (in-process, stub in a thread; × 28 L is against SPO's rule's bound); median of "
        f"{args.spec_runs}",
        title_justify="left",
    )
    for col in ("variant", "wall s", "min–max", "× 28 L", "calls", "used/wasted", "votes per round", "verdicts"):
        table.add_column(col, justify="left" if col in ("variant", "votes per round", "verdicts") else "right")
    for name, rows in engine.items():
        walls = [r["wall_s"] for r in rows]
        table.add_row(
            name,
            f"{statistics.median(walls):.2f}",
            f"{min(walls):.2f}–{max(walls):.2f}",
            f"{statistics.median(walls) / bound:.3f}",
            f"{statistics.median(r['calls'] for r in rows):.0f}",
            f"{rows[0]['used']}/{rows[0]['wasted']}",
            " ".join(map(str, rows[0]["judge_votes"])),
            rows[0]["verdicts"],
        )
    con.print(table)
    cli_table = Table(title=f"CLI subprocess against a stub process; median of {args.spec_runs}", title_justify="left")
    for col in ("variant", "whole-process wall s", "min–max", "calls", "import litellm s (same loop)"):
        cli_table.add_column(col, justify="left" if col == "variant" else "right")
    for name, rows in cli.items():
        walls = [r["wall_s"] for r in rows]
        cli_table.add_row(
            name,
            f"{statistics.median(walls):.2f}",
            f"{min(walls):.2f}–{max(walls):.2f}",
            f"{statistics.median(r['calls'] for r in rows):.0f}",
            f"{statistics.median(imports):.2f} ({min(imports):.2f}–{max(imports):.2f})",
        )
    con.print(cli_table)
    con.print(f"same verdicts and votes per round with and without --speculate: {same}")
    con.print(f"[dim]{load_info()} after[/dim]")
    expected = q + (n - 1) * (1 + q + v)
    report["speculate"] = {
        "rounds": n,
        "questions": q,
        "votes": v,
        "latency": L,
        "bound_s": round(bound, 4),
        "runs": args.spec_runs,
        "engine": {
            name: {
                "wall_median_s": round(median(rows, "wall_s"), 4),
                "wall_min_s": round(min(r["wall_s"] for r in rows), 4),
                "wall_max_s": round(max(r["wall_s"] for r in rows), 4),
                "ratio_to_bound": round(median(rows, "wall_s") / bound, 4),
                "calls": rows[0]["calls"],
                "used": rows[0]["used"],
                "wasted": rows[0]["wasted"],
                "judge_votes": rows[0]["judge_votes"],
                "verdicts": rows[0]["verdicts"],
            }
            for name, rows in engine.items()
        },
        "same_decisions": same,
        "expected_calls_majority": expected,
        "cli": {
            name: {
                "wall_median_s": round(median(rows, "wall_s"), 4),
                "wall_min_s": round(min(r["wall_s"] for r in rows), 4),
                "calls": rows[0]["calls"],
            }
            for name, rows in cli.items()
        },
        "import_litellm_median_s": round(statistics.median(imports), 4),
        "load": load_info(),
    }


def summary_rows(report: dict[str, Any]) -> list[SummaryRow]:
    sp = report.get("speculate")
    if not sp:
        return []
    e = sp["engine"]
    fast, slow = e["majority+speculate"], e["majority"]
    before, after = e["adaptive"]["wall_median_s"], e["adaptive+speculate"]["wall_median_s"]
    adaptive_saving = 1 - after / before
    return [
        (
            "--speculate engine time ≤ 0.75 × 28 L",
            f"{fast['wall_median_s']:.2f}s / {sp['bound_s']:.2f}s = {fast['ratio_to_bound']:.3f}",
            fast["ratio_to_bound"] <= 0.75,
        ),
        (
            f"--speculate calls ≤ {sp['expected_calls_majority']} + {sp['rounds'] - 1}",
            f"{fast['calls']} ({fast['used']} used ahead, {fast['wasted']} wasted)",
            fast["calls"] <= sp["expected_calls_majority"] + sp["rounds"] - 1,
        ),
        (
            "without --speculate: calls as before",
            f"{slow['calls']} (expected {sp['expected_calls_majority']})",
            slow["calls"] == sp["expected_calls_majority"],
        ),
        (
            "adaptive judging: time saved by --speculate",
            f"{adaptive_saving:.0%} ({before:.2f}s → {after:.2f}s)",
            adaptive_saving > 0,
        ),
        (
            "slow optimizer (3 L): time saved by --speculate",
            f"{1 - e['slow-optimizer+speculate']['wall_median_s'] / e['slow-optimizer']['wall_median_s']:.0%} "
            f"({e['slow-optimizer']['wall_median_s']:.2f}s → {e['slow-optimizer+speculate']['wall_median_s']:.2f}s)",
            e["slow-optimizer+speculate"]["wall_median_s"] < e["slow-optimizer"]["wall_median_s"],
        ),
        ("same decisions with and without --speculate", str(sp["same_decisions"]), all(sp["same_decisions"].values())),
    ]


SCENARIO = Scenario(
    name="speculate",
    about="--speculate vs without, interleaved: engine time vs 28 L, calls, adaptive judging, whole-process wall",
    run=scenario_speculate,
    options=options,
    summary=summary_rows,
    warm_litellm=True,
    counts=("spec_runs",),
)
