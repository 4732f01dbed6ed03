"""Faults, kills, locks, budgets and bad input: nothing lost, nothing paid twice, no traceback."""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from promptopt.cli import app
from promptopt.testing.stub_server import Fault, StubServer

runner = CliRunner()
SECRET = "sk-test-SECRETVALUE1234567890"


@pytest.fixture
def here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    return tmp_path


def invoke(*args: str) -> Any:
    return runner.invoke(app, list(args), env={"COLUMNS": "120", "NO_COLOR": "1"})


def flags(stub: StubServer) -> list[str]:
    return ["--model", "openai/stub", "--api-base", stub.url]


def body_hash(record: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(record["body"], sort_keys=True).encode()).hexdigest()


def assert_sound(workspace: Path, rounds: list[int]) -> list[dict[str, Any]]:
    """results.json is valid, has each round once, and every listed round is complete on disk."""
    data = json.loads((workspace / "prompts/results.json").read_text())
    assert [r["round"] for r in data] == rounds
    for entry in data:
        folder = workspace / f"prompts/round_{entry['round']}"
        assert (folder / "prompt.txt").read_text() == entry["prompt"]
        assert (folder / "answers.txt").exists()
    assert not list(workspace.rglob("*.tmp"))
    return data


# --- provider faults through the real litellm client ------------------------------------------


def test_run_survives_a_storm_of_transient_faults(here: Path) -> None:
    rng = random.Random(7)
    kinds = ["500", "503", "garbled", "drop", "429"]

    def faults(index: int, role: str, body: dict[str, Any]) -> Fault | None:
        if rng.random() < 0.3:
            kind = rng.choice(kinds)
            return Fault(kind, retry_after=0.05 if kind == "429" else None)
        return None

    with StubServer(faults=faults) as stub:
        result = invoke("optimize", "-t", "Poem", "-r", "4", "--max-attempts", "8", "--json", *flags(stub))
        assert result.exit_code == 0, result.output
        faulted = sum(1 for r in stub.requests if r["fault"])
    assert faulted > 5
    assert_sound(here / "workspace/Poem", [1, 2, 3, 4])
    summary = json.loads(result.stdout)
    # Retries are not extra calls of ours; each call counted once. The stub's judge ties every pair,
    # so each round asks for 3 pairs (1 optimizer + 3 executions + 6 votes).
    assert summary["calls"] == 3 + 3 * 10


def test_rate_limit_honours_retry_after(here: Path) -> None:
    with StubServer(faults=[Fault("429", retry_after=1.0)]) as stub:
        start = time.perf_counter()
        result = invoke("optimize", "-t", "Poem", "-r", "1", "-j", "1", *flags(stub))
        elapsed = time.perf_counter() - start
        assert result.exit_code == 0, result.output
        first, second = stub.requests[0], stub.requests[1]
    assert second["t_start"] - first["t_end"] >= 0.9
    assert elapsed >= 1.0


def test_hanging_call_times_out_and_is_retried(here: Path) -> None:
    with StubServer(faults=[Fault("hang", delay=60)]) as stub:
        result = invoke("optimize", "-t", "Poem", "-r", "1", "--timeout", "1", *flags(stub))
        assert result.exit_code == 0, result.output
        assert stub.count() == 4  # the hung request, its retry, two more answers
    assert_sound(here / "workspace/Poem", [1])


def test_executor_failure_is_a_failed_answer_not_an_answer(here: Path) -> None:
    def faults(index: int, role: str, body: dict[str, Any]) -> Fault | None:
        text = body["messages"][-1]["content"]
        return Fault("500") if role == "executor" and "sea" in text and "Revision" in text else None

    with StubServer(faults=faults) as stub:
        result = invoke("optimize", "-t", str(poem(here)), "-r", "2", "--max-attempts", "2", *flags(stub))
        assert result.exit_code == 0, result.output
        judged = [r["body"]["messages"][-1]["content"] for r in stub.requests if r["role"] == "judge"]
    data = assert_sound(here / "workspace/P", [1, 2])
    failed = [a for a in data[1]["answers"] if a.get("error")]
    assert len(failed) == 1 and failed[0]["answer"] == ""
    assert all("no answer: the model call failed" in j for j in judged)


def poem(here: Path) -> Path:
    path = here / "P.yaml"
    path.write_text(
        "prompt: Write a poem.\nrequirements: vivid\ncount: None\n"
        "qa:\n  - question: about the sea\n    answer: ''\n  - question: about rain\n    answer: ''\n"
    )
    return path


@pytest.mark.parametrize(
    ("kind", "words", "code"), [("401", "refused|auth|api key", 1), ("404", "does not exist|not found", 2)]
)
def test_non_retryable_error_stops_at_once_with_one_line(here: Path, kind: str, words: str, code: int) -> None:
    """Auth refused is a provider fault (exit 1); an unknown model is bad input (exit 2), as documented."""
    import re

    with StubServer(faults=lambda i, role, body: Fault(kind) if role == "optimizer" else None) as stub:
        result = invoke("optimize", "-t", "Poem", "-r", "3", *flags(stub))
        assert stub.count("optimizer") == 1  # no retry of a non-retryable error
    assert result.exit_code == code
    errors = [line for line in result.output.splitlines() if line.startswith("promptopt: error:")]
    assert len(errors) == 1 and "optimizer model openai/stub" in errors[0]
    assert re.search(words, errors[0], re.IGNORECASE)
    assert "Traceback" not in result.output and SECRET not in result.output
    assert_sound(here / "workspace/Poem", [1])


def test_missing_api_key_is_named_before_any_call(here: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY")
    result = invoke("optimize", "-t", "Poem", "--model", "gpt-4o-mini", "-r", "2")
    assert result.exit_code == 2
    assert "OPENAI_API_KEY" in result.output and "Traceback" not in result.output
    (line,) = [x for x in result.output.splitlines() if x.startswith("promptopt: error:")]
    assert line.count("OPENAI_API_KEY") == 1, line
    assert line.endswith("no API key: set OPENAI_API_KEY in the environment, or pass --api-base for a local server")


# --- budgets ----------------------------------------------------------------------------------


def test_max_calls_stops_cleanly_and_resume_pays_nothing_twice(here: Path) -> None:
    with StubServer() as stub:
        result = invoke("optimize", "-t", "Poem", "-r", "3", "--max-calls", "10", "--json", *flags(stub))
        assert result.exit_code == 3, result.output
        summary = json.loads(result.stdout)
        assert summary["stopped"] == "budget" and "--max-calls 10" in summary["message"]
        assert stub.count() == 10
        assert_sound(here / "workspace/Poem", [1])
        paid = Counter(body_hash(r) for r in stub.requests)
        done = invoke("optimize", "-t", "Poem", "-r", "3", "--json", *flags(stub))
        assert done.exit_code == 0
        assert stub.count() == 3 + 2 * 10
        again = Counter(body_hash(r) for r in stub.requests[10:])
        clean = clean_run(stub, "-t", "Poem", "-r", "3")
    assert paid + again == clean  # the two halves make exactly one uninterrupted run
    assert_sound(here / "workspace/Poem", [1, 2, 3])


def clean_run(stub: StubServer, *args: str) -> Counter[str]:
    """Request bodies of the same run done in one go, uncached, under another name.

    The stub's optimizer numbers its revisions, so a clean run must start from a fresh stub.
    """
    with StubServer() as fresh:
        assert invoke("optimize", *args, "--no-cache", "--name", "Clean", *flags(fresh)).exit_code == 0
        return Counter(body_hash(r) for r in fresh.requests)


def test_budget_usd_stops_before_exceeding(here: Path) -> None:
    with StubServer() as stub:
        args = ["--model", "openai/gpt-4o-mini", "--api-base", stub.url]
        result = invoke("optimize", "-t", "Poem", "-r", "10", "--budget-usd", "0.002", "--json", *args)
        assert result.exit_code == 3, result.output
        summary = json.loads(result.stdout)
        tiny = invoke("optimize", "-t", "Poem", "-n", "Tiny", "--budget-usd", "0.00001", "--no-cache", *args)
    assert 0 < summary["cost_usd"] <= 0.002
    assert summary["stopped"] == "budget" and len(summary["rounds"]) < 10
    assert tiny.exit_code == 3 and "no round completed" in tiny.output


# --- bad input --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["-t", "nope"], "template nope: no such file"),
        (["-t", "Poem", "-r", "-1"], "max_rounds|max-rounds"),
        (["-t", "Poem", "--opt-temp", "5"], "--opt-temp must be at most 2"),
        (["-t", "Poem", "--strategy", "magic"], "--strategy magic: unknown"),
        (["-t", "Poem", "--name", "../escape"], "plain name"),
        (["-t", "Poem", "--votes", "0"], "votes"),
        (["-t", "Poem", "-r", "0"], "^promptopt: error: --max-rounds must be at least 1$"),
        (["-t", "Poem", "--timeout", "inf"], "--timeout must be a finite number"),
        (["-t", "Poem", "--budget-usd", "nan"], "--budget-usd must be a finite number"),
        (["-t", "Poem", "--name", "a\x1b[2Jb"], "control"),
    ],
)
def test_bad_flags_exit_2_with_one_line(here: Path, args: list[str], needle: str) -> None:
    import re

    result = invoke("optimize", *args, "--model", "openai/x", "--api-base", "http://127.0.0.1:9/v1")
    assert result.exit_code == 2, result.output
    assert re.search(needle, result.output, re.MULTILINE), result.output
    assert "\x1b" not in result.output
    assert "Traceback" not in result.output
    assert not (here / "escape").exists()


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        (b"prompt: [unclosed\n", "invalid YAML (line"),
        (b"prompt: hi\nqa: []\n", "qa"),
        (b"requirements: r\nqa:\n  - question: q\n", "prompt: is required"),
        (b"prompt: p\nqa:\n  - question: q\nextra_key: 1\n", "extra_key: unknown key"),
        (b"prompt: p\nqa:\n  - question: ''\n", "qa[0].question"),
        (b"\xff\xfe\x00bad", "not valid UTF-8"),
        (b"prompt: !!python/object/apply:os.system ['touch pwned']\nqa:\n  - question: q\n", "invalid YAML"),
        (b"prompt: p\ncount: lots\nqa:\n  - question: q\n", "count"),
    ],
)
def test_bad_templates_exit_2_naming_file_and_field(here: Path, content: bytes, needle: str) -> None:
    (here / "Bad.yaml").write_bytes(content)
    result = invoke("optimize", "-t", "Bad.yaml", "--model", "openai/x", "--api-base", "http://127.0.0.1:9/v1")
    assert result.exit_code == 2
    assert "Bad.yaml" in result.output and needle in result.output, result.output
    assert not (here / "pwned").exists()


def test_corrupted_results_json_is_reported_and_left_untouched(here: Path) -> None:
    prompts = here / "workspace/Poem/prompts"
    prompts.mkdir(parents=True)
    (prompts / "results.json").write_text('[{"round": 1, "prompt": "x"')
    before = (prompts / "results.json").read_bytes()
    result = invoke("optimize", "-t", "Poem", "--model", "openai/x", "--api-base", "http://127.0.0.1:9/v1")
    assert result.exit_code == 2 and "not valid JSON" in result.output
    assert (prompts / "results.json").read_bytes() == before
    shown = invoke("show", "workspace/Poem")
    assert shown.exit_code == 2 and "not valid JSON" in shown.output


def test_unwritable_workspace(here: Path) -> None:
    (here / "afile").write_text("not a folder")
    result = invoke(
        "optimize", "-t", "Poem", "-w", "afile/ws", "--model", "openai/x", "--api-base", "http://127.0.0.1:9/v1"
    )
    assert result.exit_code == 2 and "cannot" in result.output and "Traceback" not in result.output


def test_secrets_never_reach_disk_or_output(here: Path) -> None:
    with StubServer(faults=[Fault("500"), Fault("429", retry_after=0)]) as stub:
        result = invoke("optimize", "-t", "Poem", "-r", "2", *flags(stub))
        assert result.exit_code == 0
    assert SECRET not in result.output
    cache_dir = Path(os.environ["PROMPTOPT_CACHE_DIR"])
    for path in [*here.rglob("*"), *cache_dir.rglob("*")]:
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path


# --- kills, signals and locks (real subprocesses) ---------------------------------------------


def cli(here: Path, *args: str) -> subprocess.Popen[str]:
    env = {
        **os.environ,
        "OPENAI_API_KEY": "sk-stub",
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        "PROMPTOPT_RETRY_BASE": "0.01",
        "COLUMNS": "120",
        "NO_COLOR": "1",
    }
    return subprocess.Popen(
        [sys.executable, "-m", "promptopt", *args],
        cwd=here,
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def wait_for(condition: Any, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.02)
    raise AssertionError("condition not reached in time")


@pytest.mark.slow
def test_sigkill_mid_round_then_rerun_repeats_no_finished_call(here: Path) -> None:
    with StubServer(latency=0.15) as stub:
        args = ["optimize", "-t", "Poem", "-r", "4", "-j", "2", *flags(stub)]
        proc = cli(here, *args)
        # Kill inside round 3, after its optimizer replied, while its executor calls run. Round 2 is
        # 1 optimizer + 3 executions + 6 votes (the stub's judge ties every pair: 3 pairs).
        wait_for(lambda: stub.count() >= 3 + 10 + 3)
        killed_at = time.monotonic()  # the stub stamps requests with this clock
        proc.kill()
        proc.wait(10)
        first = stub.requests
        finished = Counter(body_hash(r) for r in first if r["t_end"] and r["t_end"] < killed_at - 0.1)
        done = cli(here, *args)
        _out, err = done.communicate(timeout=120)
        assert done.returncode == 0, err
        rerun = Counter(body_hash(r) for r in stub.requests[len(first) :])
        clean = clean_run(stub, *args[1:5])
    # Identical bodies may be distinct samples (two judge votes in the same order), so compare
    # counts: the rerun asks each request at most as often as a clean run, minus what was answered.
    over = {h: n for h, n in rerun.items() if n > clean[h] - finished[h]}
    assert over == {}
    assert_sound(here / "workspace/Poem", [1, 2, 3, 4])


@pytest.mark.slow
@pytest.mark.parametrize(("signum", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_signal_saves_completed_rounds_and_says_how_to_resume(here: Path, signum: int, code: int) -> None:
    with StubServer(latency=0.15) as stub:
        proc = cli(here, "optimize", "-t", "Poem", "-r", "6", *flags(stub))
        wait_for(lambda: stub.count() >= 3 + 10 + 2)
        proc.send_signal(signum)
        _out, err = proc.communicate(timeout=30)
    assert proc.returncode == code
    assert "rerun the same command" in err and "Traceback" not in err
    data = assert_sound(here / "workspace/Poem", [1, 2])
    assert len(data) == 2


@pytest.mark.slow
def test_second_run_on_the_same_workspace_is_refused(here: Path) -> None:
    with StubServer(latency=0.3) as stub:
        first = cli(here, "optimize", "-t", "Poem", "-r", "3", *flags(stub))
        wait_for(lambda: stub.count() >= 1)
        template = (here / "workspace/Poem/template.yaml").read_text()
        # Another template under the same name: refused before it touches anything of the first run.
        second = cli(here, "optimize", "-t", "Navigate", "-n", "Poem", "-r", "3", *flags(stub))
        _out, err = second.communicate(timeout=60)
        assert second.returncode == 5
        assert "in use by pid" in err
        assert (here / "workspace/Poem/template.yaml").read_text() == template
        first.communicate(timeout=120)
        assert first.returncode == 0
    assert_sound(here / "workspace/Poem", [1, 2, 3])


@pytest.mark.slow
def test_stale_lock_from_a_killed_run_is_taken_over(here: Path) -> None:
    with StubServer(latency=0.2) as stub:
        proc = cli(here, "optimize", "-t", "Poem", "-r", "2", *flags(stub))
        wait_for(lambda: stub.count() >= 1)
        proc.kill()
        proc.wait(10)
        assert "pid" in (here / "workspace/Poem/.lock").read_text()
        again = cli(here, "optimize", "-t", "Poem", "-r", "2", *flags(stub))
        _out, err = again.communicate(timeout=120)
    assert again.returncode == 0, err
