"""The leak guard: the detector, and the optimizer asked again, then the round rejected, shown by `show`."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from typer.testing import CliRunner

from promptopt.cli import app
from promptopt.config import RunConfig
from promptopt.engine.leak import LEAK_WORDS, find_leak
from promptopt.engine.loop import run_optimization
from promptopt.events import RecordingEvents
from promptopt.template import load_template
from promptopt.workspace import Workspace
from tests.conftest import FakeLLM

NAVIGATE, _ = load_template("Navigate")
QUESTIONS = [q.question for q in NAVIGATE.qa]
GOLDEN = NAVIGATE.golden
# Round 3 of the run, in spirit: a training question pasted in with a worked answer.
PASTED = (
    "Track the position step by step. Example: If you follow these instructions, do you return to the"
    " starting point? Always face forward. Take 4 steps left. Take 3 steps forward. Take 1 step right."
    " Answer: No, you end 3 steps left and 3 steps forward."
)
GENERAL = (
    "Track the direction you face and your net displacement after each instruction; if you follow"
    " these instructions, do you return to the starting point? End with one line: Yes or No."
)


def test_a_pasted_question_is_a_leak_and_names_it() -> None:
    leak = find_leak(PASTED, QUESTIONS, GOLDEN)
    assert leak is not None and leak.source == "question 2"
    assert leak.words >= LEAK_WORDS and leak.excerpt.startswith("always face forward take 4 steps left")
    assert leak.describe().startswith("leaks question 2: ")


def test_boilerplate_shared_by_the_questions_is_no_leak() -> None:
    # "if you follow these instructions, do you return to the starting point" is in every question.
    assert find_leak(GENERAL, QUESTIONS, GOLDEN) is None
    # Boilerplate next to a few specific words is still not ten specific words.
    assert (
        find_leak("Do you return to the starting point? Always face forward. Take 4 steps.", QUESTIONS, GOLDEN) is None
    )


def test_text_the_optimizer_was_given_is_no_leak() -> None:
    base = "Example: Always face forward. Take 4 steps left. Take 3 steps forward. Take 1 step right."
    assert find_leak(PASTED, QUESTIONS, GOLDEN, allowed=[base]) is None


def test_short_runs_and_short_answers_are_no_leak() -> None:
    # Nine specific words of question 2 in a row are below the threshold; "No" is a reference answer.
    assert find_leak("Always face forward. Take 4 steps left. Take 3. No.", QUESTIONS, GOLDEN) is None
    leak = find_leak("Always face forward. Take 4 steps left. Take 3 steps. No.", QUESTIONS, GOLDEN)
    assert leak is not None and leak.words == LEAK_WORDS
    long_answer = "The mitochondria is the powerhouse of the cell and makes most of its energy."
    candidate = "Explain simply. For instance: the mitochondria is the powerhouse of the cell and makes energy."
    leak = find_leak(candidate, ["What does the mitochondria do?"], [long_answer])
    assert leak is not None and leak.source == "reference answer 1" and leak.words == 10


def run(llm: FakeLLM, tmp_path: Path, rounds: int = 2) -> list:  # type: ignore[type-arg]
    config = RunConfig(max_rounds=rounds)
    ws = Workspace(tmp_path / "workspace", "Navigate")
    return asyncio.run(run_optimization(NAVIGATE, config, llm, ws, RecordingEvents())).records


def reply(prompt: str) -> str:
    return f"<analyse>x</analyse><modification>y</modification><prompt>{prompt}</prompt>"


def test_a_leak_is_sent_back_once_with_a_note_then_the_clean_prompt_is_used(tmp_path: Path) -> None:
    llm = FakeLLM({"optimizer": [reply(PASTED), reply(GENERAL)]})
    records = run(llm, tmp_path)
    assert records[1].prompt == GENERAL and records[1].verdict in {"win", "lose"}
    asks = [m for role, m, _ in llm.history if role == "optimizer"]
    assert len(asks) == 2
    retry = asks[1]
    assert retry[:-2] == asks[0] and retry[-2] == {"role": "assistant", "content": reply(PASTED)}
    assert retry[-1]["role"] == "user" and "question 2" in retry[-1]["content"]
    samples = [s for role, _, s in llm.history if role == "optimizer"]
    assert samples[0] == samples[1]  # a different request under the same sample: resumes replay it
    assert llm.shapes[: len(llm.history)] and {s.name for s in llm.shapes if s is not None} == {"optimizer", "judge"}


def test_a_second_leak_rejects_the_round_and_show_says_so(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    llm = FakeLLM({"optimizer": [reply(PASTED), reply(PASTED + " Again.")]})
    records = run(llm, tmp_path)
    second = records[1]
    assert second.verdict == "rejected" and not second.succeed and second.prompt == ""
    assert (second.error or "").startswith("leaks question 2: ")
    assert second.state["leak"]["source"] == "question 2"
    assert llm.calls("optimizer") == 2 and llm.calls("evaluator") == 0
    assert llm.calls("executor") == 3  # round 1 only: a leaking candidate is never run
    monkeypatch.chdir(tmp_path)
    env = {"COLUMNS": "200", "NO_COLOR": "1"}
    table = CliRunner().invoke(app, ["show", "workspace/Navigate"], env=env)
    assert table.exit_code == 0 and "rejected" in table.output
    detail = CliRunner().invoke(app, ["show", "workspace/Navigate", "--round", "2"], env=env)
    assert detail.exit_code == 0 and "rejected" in detail.output and "leaks question 2" in detail.output
    shown = CliRunner().invoke(app, ["show", "workspace/Navigate", "--json"], env=env)
    assert json.loads(shown.stdout)["rounds"][1]["error"].startswith("leaks question 2")


def test_a_clean_first_reply_costs_no_extra_call(tmp_path: Path) -> None:
    llm = FakeLLM({"optimizer": [reply(GENERAL)]})
    run(llm, tmp_path)
    assert llm.calls("optimizer") == 1
