"""--speculate: the next round's candidate written during the judge phase, same decisions, nothing paid twice."""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from promptopt.config import RunConfig
from promptopt.engine.loop import run_optimization
from promptopt.errors import BudgetExceeded, LLMAuthError, LLMTransient
from promptopt.events import RecordingEvents
from promptopt.llm import AHEAD, Budget, Completion, Ledger
from promptopt.template import parse_template
from promptopt.testing.stub_server import StubServer
from promptopt.workspace import Workspace
from tests.conftest import POEM
from tests.test_reliability import assert_sound, body_hash, cli, wait_for

TEMPLATE = parse_template(POEM, "Poem.yaml")
# Round 1 of Dual-Phase asks for a structured prompt: several sentences to pick from.
SENTENCES = (
    "Read the request twice. Write vivid images only. Keep each line short and clear. "
    "Use one strong verb per line. Prefer concrete nouns to abstract ones. "
    "Avoid cliches about the weather. Let the rhythm carry the mood. End with a twist."
)


def digest(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


class KeyedLLM:
    """Each reply is a function of (role, messages, sample): 'the same replies' whatever the order.

    Calls take `delays[role]` seconds; `log` keeps (role, start, end) on the loop's clock. With
    `budget` it counts and refuses calls as the real client does.
    """

    def __init__(self, delays: dict[str, float] | None = None, budget: Budget | None = None) -> None:
        self.usage = Ledger()
        self.run_seed: int | None = None
        self.warnings: list[str] = []
        self.startup_seconds = 0.0
        self.delays = delays or {}
        self.budget = budget
        self.log: list[tuple[str, float, float]] = []
        self.keys: list[str] = []

    async def complete(
        self, role: str, messages: list[dict[str, Any]], *, sample: int = 0, shape: Any = None
    ) -> Completion:
        if self.budget is not None:
            ahead = AHEAD.get()
            self.budget.reserve(0.0, keep_calls=ahead.keep_calls if ahead else 0)
        key = digest(role, messages, sample)
        self.keys.append(key)
        loop = asyncio.get_running_loop()
        start = loop.time()
        await asyncio.sleep(self.delays.get(role, 0.0))
        self.log.append((role, start, loop.time()))
        text = self.reply(role, messages, key)
        done = Completion(text, role, f"keyed-{role}", len(json.dumps(messages)) // 4, 5, 0.001)
        self.usage.record(done)
        return done

    def reply(self, role: str, messages: list[dict[str, Any]], key: str) -> str:
        if role == "optimizer":
            words = SENTENCES.split(". ")
            tag = key[:6]
            prompt = ". ".join(f"{w} {tag}" for w in words)
            return (
                f"<analyse>a {tag}</analyse><modification>m {tag}</modification>"
                f"<prompt>{prompt}.</prompt><sentence>Say it as {tag} would.</sentence>"
            )
        if role == "evaluator":
            # By the comparison shown, not the sample: a pair's two orders win, lose or tie it by
            # chance, and a repeated pair repeats it (ties then ask for every pair adaptive judging may).
            return f"<analyse>ok</analyse><choose>{'AB'[int(digest(messages), 16) % 2]}</choose>"
        question = messages[-1]["content"].rsplit("\n\n", 1)[-1].strip()
        return f"cand {key[:6]} answer to {question}"


def run(llm: KeyedLLM, root: Path, name: str, **config: Any) -> Any:
    cfg = RunConfig(**{"confirm": False, "seed": 7, **config})
    return asyncio.run(run_optimization(TEMPLATE, cfg, llm, Workspace(root, name), RecordingEvents()))


VOLATILE = {"time", "duration_s"}


def comparable(path: Path) -> list[dict[str, Any]]:
    """results.json without what differs between two runs of the same replies (clock readings)."""
    rounds = json.loads((path / "prompts/results.json").read_text())
    for r in rounds:
        for key in VOLATILE:
            r.pop(key, None)
        for usage in r.get("usage", {}).values():
            usage.pop("seconds", None)
    return rounds


@pytest.mark.parametrize(
    ("strategy", "options"), [("spo", {}), ("dual-phase", {"patience": 10}), ("dual-phase", {"eta": 0.05})]
)
def test_speculation_replays_the_same_run_round_by_round(tmp_path: Path, strategy: str, options: dict) -> None:
    plain, ahead = KeyedLLM(), KeyedLLM()
    config = {"strategy": strategy, "max_rounds": 10, "strategy_options": options}
    slow = run(plain, tmp_path, "plain", **config)
    fast = run(ahead, tmp_path, "ahead", speculate=True, **config)
    a, b = comparable(tmp_path / "plain"), comparable(tmp_path / "ahead")
    assert len(a) == len(b) >= 4
    for x, y in zip(a, b, strict=True):
        assert x == y, f"round {x['round']} differs"
    assert len({r.succeed for r in slow.records[1:]}) == 2  # both verdicts were replayed
    # Speculation did happen, and every request of the plain run was made (once each) by the other.
    assert fast.speculation is not None and fast.speculation.used >= 3
    assert set(plain.keys) <= set(ahead.keys)
    assert len(ahead.keys) == len(set(ahead.keys))
    assert len(ahead.keys) - len(plain.keys) == fast.speculation.wasted > 0
    # The run's usage counts the wasted calls; the rounds' usage is the plain run's.
    assert fast.calls == slow.calls + fast.speculation.wasted


METRIC_TEMPLATE = parse_template(
    """\
prompt: Answer the question.
requirements: Short and right.
metric: contains
qa:
  - {question: Name a digit, answer: "7"}
  - {question: Name a letter, answer: "e"}
  - {question: Name a color, answer: "b"}
  - {question: Name a shape, answer: "c"}
""",
    "Digits.yaml",
)


def test_dual_phase_with_a_metric_writes_the_rejection_ahead_and_replays_the_same(tmp_path: Path) -> None:
    """No judge phase: the next rewrite after a rejection is written while this one executes."""
    config = {"strategy": "dual-phase", "max_rounds": 10, "strategy_options": {"patience": 10}}
    plain, ahead = KeyedLLM({"optimizer": 0.01}), KeyedLLM({"optimizer": 0.01})
    for llm, name, extra in ((plain, "plain", {}), (ahead, "ahead", {"speculate": True})):
        cfg = RunConfig(**{"confirm": False, "seed": 3, **config, **extra})
        ws = Workspace(tmp_path, name)
        result = asyncio.run(run_optimization(METRIC_TEMPLATE, cfg, llm, ws, RecordingEvents()))
    assert comparable(tmp_path / "plain") == comparable(tmp_path / "ahead")
    verdicts = {r.verdict for r in result.records[1:]}
    assert "rejected" in verdicts and not any(r.votes for r in result.records)
    assert result.speculation is not None and result.speculation.used >= 2


def calls_of(llm: KeyedLLM) -> int:
    return len(llm.keys)


class FailsAhead(KeyedLLM):
    """Every call made ahead fails with `error`; the same request made by a round succeeds."""

    def __init__(self, error: Exception) -> None:
        super().__init__()
        self.error = error
        self.failed_ahead = 0

    async def complete(
        self, role: str, messages: list[dict[str, Any]], *, sample: int = 0, shape: Any = None
    ) -> Completion:
        if AHEAD.get() is not None:
            self.failed_ahead += 1
            self.usage.record_failure(role, str(self.error))
            raise self.error
        return await super().complete(role, messages, sample=sample, shape=shape)


@pytest.mark.parametrize(
    "error", [LLMTransient("optimizer: HTTP 503"), LLMAuthError("optimizer: bad key"), BudgetExceeded("--max-calls")]
)
def test_a_call_ahead_that_fails_is_made_by_the_round_that_needs_it(tmp_path: Path, error: Exception) -> None:
    plain, ahead = KeyedLLM(), FailsAhead(error)
    run(plain, tmp_path, "plain", max_rounds=5)
    result = run(ahead, tmp_path, "ahead", max_rounds=5, speculate=True)
    assert result.stopped == "completed"
    assert comparable(tmp_path / "plain") == comparable(tmp_path / "ahead")  # rounds keep no trace of it
    assert ahead.failed_ahead >= 6 and result.speculation is not None
    assert (result.speculation.used, result.speculation.wasted) == (0, 0)
    assert result.usage["optimizer"].failed == ahead.failed_ahead  # the run's usage counts them


@pytest.mark.parametrize("spare", [0, 40])
def test_a_budget_sized_for_the_plain_run_completes_the_same_rounds(tmp_path: Path, spare: int) -> None:
    """Calls are written ahead only when the budget still covers the rest of the run at its most:
    a refused call ahead does not stop the run early, and an allowed one costs it no round."""
    plain = KeyedLLM()
    run(plain, tmp_path, "plain", max_rounds=6)
    need = calls_of(plain)
    ahead = KeyedLLM(budget=Budget(max_calls=need + spare))
    result = run(ahead, tmp_path, "ahead", max_rounds=6, max_calls=need + spare, speculate=True)
    assert result.stopped == "completed"
    assert comparable(tmp_path / "plain") == comparable(tmp_path / "ahead")
    assert calls_of(ahead) <= need + spare
    assert result.speculation is not None
    if spare:  # room for the worst case of the rest of the run: written ahead from the start
        assert result.speculation.used > 0
    else:  # no room to spare: nothing written ahead, nothing wasted
        assert result.speculation.used == result.speculation.wasted == 0


@pytest.mark.parametrize("limit", [14, 23, 30])
def test_a_budget_stop_leaves_only_whole_rounds_of_the_plain_run(tmp_path: Path, limit: int) -> None:
    plain = KeyedLLM(budget=Budget(max_calls=limit))
    slow = run(plain, tmp_path, "plain", max_rounds=10, max_calls=limit)
    ahead = KeyedLLM(budget=Budget(max_calls=limit))
    fast = run(ahead, tmp_path, "ahead", max_rounds=10, max_calls=limit, speculate=True)
    assert slow.stopped == fast.stopped == "budget"
    assert comparable(tmp_path / "plain") == comparable(tmp_path / "ahead")
    rounds = [r["round"] for r in comparable(tmp_path / "ahead")]
    on_disk = sorted(int(p.name.split("_")[1]) for p in (tmp_path / "ahead/prompts").glob("round_*"))
    assert on_disk == rounds  # no folder of a round that was not committed
    assert calls_of(ahead) <= limit


def test_budget_refusal_keeps_room_for_what_the_run_still_needs() -> None:
    budget = Budget(max_calls=10)
    for _ in range(5):
        budget.reserve(0.0)
    with pytest.raises(BudgetExceeded):
        budget.reserve(0.0, keep_calls=5)  # 5 + 1 + 5 > 10
    budget.reserve(0.0, keep_calls=4)
    assert budget.started == 6
    usd = Budget(max_usd=1.0)
    usd.reserve(0.5)
    with pytest.raises(BudgetExceeded):
        usd.reserve(0.1, keep_usd=0.45)


# --- the real litellm path: a stub server ---------------------------------------------------------


def by_body(role: str, body: dict[str, Any]) -> str:
    """Stub replies that depend on the request body alone (any order of calls gets the same ones)."""
    h = digest(body["messages"])
    if role == "judge":
        return f"<analyse>ok</analyse><choose>{'AB'[int(h, 16) % 2]}</choose>"
    if role == "optimizer":
        return f"<analyse>a</analyse><modification>m</modification><prompt>Write a poem, version {h[:8]}.</prompt>"
    return f"A poem {h[:8]}."


def slow_judge(seconds: float) -> Any:
    def responder(role: str, body: dict[str, Any]) -> str:
        if role == "judge":
            time.sleep(seconds)  # the stub's handler thread: judge calls take longer than the others
        return by_body(role, body)

    return responder


def test_the_next_candidate_is_written_while_the_judge_votes(tmp_path: Path) -> None:
    """Through litellm: round 3's optimizer requests reach the stub before round 2's last vote returns,
    the one from the same base (after a loss) together with round 2's own."""
    from promptopt.api import load_config, optimize

    with StubServer(latency=0.05, responder=slow_judge(0.3)) as stub:
        flags = {"model": "openai/stub", "api_base": stub.url, "workspace": tmp_path, "name": "p", "max_rounds": 3}
        config = load_config(**flags, accept="majority", confirm=False, speculate=True, cache_dir=tmp_path / "c")
        result = optimize(TEMPLATE, config)
        requests = stub.requests
    judges = [r for r in requests if r["role"] == "judge"]
    optimizers = [r for r in requests if r["role"] == "optimizer"]
    assert len(optimizers) == 1 + 2  # round 2's, then round 3's for both verdicts (one wasted)
    round_2_votes = judges[:4]
    assert all(o["t_start"] < max(j["t_end"] for j in round_2_votes) for o in optimizers)
    overlapping = [o for o in optimizers if any(j["t_start"] < o["t_start"] < j["t_end"] for j in judges)]
    assert len(overlapping) == 1  # from round 2's candidate: written once it has answers
    first_execution = min(r["t_start"] for r in requests[3:] if r["role"] == "executor")
    same_base = [o for o in optimizers if o["body"] == optimizers[0]["body"]]
    assert len(same_base) == 2 and all(o["t_start"] < first_execution for o in same_base)
    assert result.speculation is not None and (result.speculation.used, result.speculation.wasted) == (1, 1)
    assert result.calls == len(requests)  # the wasted call is counted as spent


@pytest.mark.slow
def test_sigkill_mid_speculation_then_rerun_repeats_no_returned_call(tmp_path: Path) -> None:
    """Killed after round 3's candidates came back ahead but before round 2's verdict: the resumed run
    commits nothing built on the unsaved verdict, and asks for no reply that had returned."""
    here = tmp_path
    with StubServer(latency=0.05, responder=slow_judge(1.0)) as stub:
        args = ["optimize", "-t", "Poem", "-r", "4", "--speculate", "--accept", "majority", "--no-confirm"]
        proc = cli(here, *args, "--model", "openai/stub", "--api-base", stub.url)

        def ahead_returned() -> bool:
            done = [r for r in stub.requests if r["role"] == "optimizer" and r["t_end"] is not None]
            return len(done) >= 3  # round 2's own, then round 3's for both verdicts

        wait_for(ahead_returned)
        time.sleep(0.3)  # a reply has returned once the client has read it (and cached it)
        judging = [r for r in stub.requests if r["role"] == "judge" and r["t_end"] is None]
        killed_at = time.monotonic()  # the stub's clock
        proc.kill()
        proc.wait(10)
        assert judging, "the kill was meant to land while round 2 was being judged"
        first = stub.requests
        finished = Counter(body_hash(r) for r in first if r["t_end"] is not None and r["t_end"] < killed_at - 0.3)
        saved = json.loads((here / "workspace/Poem/prompts/results.json").read_text())
        assert [r["round"] for r in saved] == [1]  # round 2's verdict was never saved: nothing after it
        done = cli(here, *args, "--model", "openai/stub", "--api-base", stub.url)
        _out, err = done.communicate(timeout=120)
        assert done.returncode == 0, err
        rerun = Counter(body_hash(r) for r in stub.requests[len(first) :])
    with StubServer(responder=by_body) as fresh:
        clean = cli(here, *args, "--model", "openai/stub", "--api-base", fresh.url, "--no-cache", "--name", "Clean")
        assert clean.wait(120) == 0
        once = Counter(body_hash(r) for r in fresh.requests)
    over = {h: n for h, n in rerun.items() if n > once[h] - finished[h]}
    roles = {body_hash(r): r["role"] for r in first + stub.requests}
    assert over == {}, [(roles.get(h), n, once[h], finished[h]) for h, n in over.items()]
    data = assert_sound(here / "workspace/Poem", [1, 2, 3, 4])
    clean_data = json.loads((here / "workspace/Clean/prompts/results.json").read_text())
    assert [(r["prompt"], r["succeed"]) for r in data] == [(r["prompt"], r["succeed"]) for r in clean_data]


# --- flags, config, dry run and summary ---------------------------------------------------------


def test_speculate_from_flag_env_and_config_file(tmp_path: Path) -> None:
    from promptopt.config import resolve_config
    from promptopt.errors import ConfigError

    assert resolve_config({}, env={}, cwd=tmp_path).speculate is False
    assert resolve_config({"speculate": True}, env={}, cwd=tmp_path).speculate is True
    assert resolve_config({}, env={"PROMPTOPT_SPECULATE": "1"}, cwd=tmp_path).speculate is True
    (tmp_path / "promptopt.yaml").write_text("speculate: true\n")
    assert resolve_config({}, env={}, cwd=tmp_path).speculate is True
    assert resolve_config({}, env={"PROMPTOPT_SPECULATE": "0"}, cwd=tmp_path).speculate is False
    with pytest.raises(ConfigError, match="PROMPTOPT_SPECULATE='maybe'"):
        resolve_config({}, env={"PROMPTOPT_SPECULATE": "maybe"}, cwd=tmp_path)


def dry_run(tmp_path: Path, *args: str) -> dict[str, Any]:
    from typer.testing import CliRunner

    from promptopt.cli import app

    (tmp_path / "Poem.yaml").write_text(POEM)
    result = CliRunner().invoke(
        app, ["optimize", "-t", str(tmp_path / "Poem.yaml"), "-w", str(tmp_path), "--dry-run", "--json", *args]
    )
    assert result.exit_code == 0, result.output
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def test_dry_run_counts_the_calls_written_ahead(tmp_path: Path) -> None:
    plain = dry_run(tmp_path, "-r", "10")
    ahead = dry_run(tmp_path, "-r", "10", "--speculate")
    # Rounds 2–9 write round 3–10's candidate for both verdicts: one optimizer call each is wasted.
    assert ahead["speculative_calls"] == 8
    assert ahead["roles"]["optimizer"]["calls"] == plain["roles"]["optimizer"]["calls"] + 8
    assert ahead["calls"] == plain["calls"] + 8 and ahead["worst_calls"] == plain["worst_calls"] + 8
    assert plain["speculative_calls"] == 0
    assert dry_run(tmp_path, "-r", "10", "--speculate", "-s", "gpo")["speculative_calls"] == 0
    assert dry_run(tmp_path, "-r", "2", "--speculate")["speculative_calls"] == 0  # round 2 is the last


def test_the_summary_says_how_many_calls_were_written_ahead(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from promptopt.cli import app

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-stub")
    runner = CliRunner()
    with StubServer(latency=0.02, responder=slow_judge(0.1)) as stub:
        args = ["optimize", "-t", "Poem", "-r", "4", "--speculate", "--accept", "majority", "--no-confirm"]
        args += ["--model", "openai/stub", "--api-base", stub.url]
        text = runner.invoke(app, args, env={"COLUMNS": "120", "NO_COLOR": "1"})
        data = json.loads(runner.invoke(app, [*args, "-n", "J", "--json"]).stdout)
        gpo = runner.invoke(app, [*args, "-n", "G", "-s", "gpo"])
    assert text.exit_code == 0, text.output
    assert "speculative calls: 2 used, 2 wasted" in text.stdout
    assert data["speculation"]["used"] == 2 and data["speculation"]["wasted"] == 2
    assert gpo.exit_code == 0, gpo.output
    assert "--speculate: gpo writes its next candidates from this round's scores" in gpo.output


@pytest.mark.parametrize("budget", ["--budget-usd=0.001", "--max-calls=15"])
def test_through_litellm_a_budget_stops_at_the_same_round(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, budget: str
) -> None:
    from typer.testing import CliRunner

    from promptopt.cli import app

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-stub")
    runner = CliRunner()
    outcomes = []
    for name, extra in (("plain", []), ("ahead", ["--speculate"])):
        with StubServer(responder=by_body) as stub:
            args = ["optimize", "-t", "Poem", "-n", name, "-r", "10", budget, "--json", "--no-confirm"]
            args += ["--model", "openai/gpt-4o-mini", "--api-base", stub.url, *extra]
            result = runner.invoke(app, args)
            assert result.exit_code == 3, result.output
            outcomes.append(json.loads(result.stdout))
            saved = comparable(tmp_path / "workspace" / name)
            outcomes[-1]["saved"] = [(r["prompt"], r["succeed"], r["usage"]) for r in saved]
    plain, ahead = outcomes
    assert plain["stopped"] == ahead["stopped"] == "budget"
    assert plain["saved"] == ahead["saved"]  # the same whole rounds, nothing of another on disk
