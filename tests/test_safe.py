"""Text from models, templates and providers is data: every view renders it literally, never as
markup or terminal control (issue 13)."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rich.console import Console
from typer.testing import CliRunner

from promptopt.safe import clean, json_dumps, safe_text

HOSTILE = [
    "[/b]",
    "[b]",
    "[/]",
    "[link=http://evil.example]click[/link]",
    "[bold red]",
    "\\[x]",
    ":smile:",
    "\x1b[2J",
    "\x1b[31m",
    "\x1b]0;owned\x07",
    "\x1b]8;;http://evil.example\x1b\\link\x1b]8;;\x1b\\",
    "\x9b2J",
    "\x9d0;t\x9c",
    "\x07",
    "\x00",
    "\x7f",
    "\r",
    "\r\n",
    "\b",
    "\t",
    "\n",
    "\u202e",
    "é中🌊",
    "%s {0}",
]
hostile_text = st.lists(st.one_of(st.sampled_from(HOSTILE), st.text(max_size=8)), max_size=8).map("".join)

SGR = re.compile(r"\x1b\[[0-9;]*m")
LEAKS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def rendered(renderable: Any) -> list[str]:
    """The renderable drawn on a plain console and on a colour terminal."""
    outputs = []
    for terminal in (False, True):
        buffer = io.StringIO()
        console = Console(
            file=buffer, width=100, force_terminal=terminal, color_system="truecolor" if terminal else None
        )
        console.print(renderable)
        outputs.append(buffer.getvalue())
    return outputs


def assert_inert(output: str) -> None:
    """No control character but newline and tab, except rich's own colour codes; no hyperlink."""
    assert "\x1b]" not in output, repr(output)
    assert not LEAKS.search(SGR.sub("", output)), repr(output)


# --- the helper --------------------------------------------------------------------------------


def test_clean_keeps_newline_and_tab_and_drops_other_controls() -> None:
    assert clean("a\tb\nc\r\nd") == "a\tb\nc\nd"
    assert clean("\x1b[2Jx\x07\x9b1m\x00\x7f") == "[2Jx1m"
    assert clean(None) == "" and clean(3) == "3"


def test_safe_text_is_literal() -> None:
    text = safe_text("[link=http://evil.example]hi[/link] [/b] :smile:")
    (plain, terminal) = rendered(text)
    assert "[link=http://evil.example]hi[/link] [/b] :smile:" in plain
    assert "[/b]" in terminal and "\x1b]8" not in terminal


def test_json_dumps_is_exact_data_with_every_control_escaped() -> None:
    value = {"a": "x\x1b[2J\x07\x9b\x7f\u2028é中", "b": [1, None]}
    text = json_dumps(value, indent=2)
    assert not LEAKS.search(text.replace("\n", "")) and "\u2028" not in text
    assert "é中" in text
    assert json.loads(text) == value


# --- every view, with hostile text everywhere ---------------------------------------------------


def _record(number: int, text: str, state: dict[str, Any]) -> Any:
    from promptopt.records import AnswerRecord, RoleUsage, RoundRecord, VoteRecord

    return RoundRecord(
        round=number,
        prompt=f"prompt {text}",
        succeed=number % 2 == 0,
        base_round=number - 1 if number > 1 else None,
        answers=[
            AnswerRecord(question=f"q {text}", answer=f"a {text}"),
            AnswerRecord(question=text or "q2", answer="", error=f"boom {text}"),
        ],
        votes=[VoteRecord(winner="candidate", analysis=text), VoteRecord(winner="base", error=text)],
        modification=text,
        error=text or None,
        usage={"executor": RoleUsage(calls=2, cost_usd=0.01)},
        state=state,
    )


def _states(text: str) -> list[dict[str, Any]]:
    return [
        {},
        {
            "candidates": [
                {"prompt": text, "votes": text, "score": 0.5, "edit_distance": text, "accepted": True},
                {"error": text, "score": text},
                text,
            ],
            "edit_budget": text,
            "retrieval": text,
            "base_score": text,
        },
        {"old_sentence": text, "new_sentence": text, "picked": text, "probability": text, "weights": [text, 0.5]},
        {"old_sentence": text, "new_sentence": text, "picked": 1, "probability": 0.4, "reward": 1, "weights": [0.1]},
    ]


VIEW = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


@VIEW
@given(text=hostile_text)
def test_every_view_renders_hostile_text_inertly(text: str) -> None:
    from promptopt.doctor import RoleCheck, render_checks
    from promptopt.engine.compare import CompareResult, QuestionVerdict
    from promptopt.engine.loop import RunResult
    from promptopt.records import AnswerRecord, RoleUsage, VoteRecord
    from promptopt.render import compare_table, round_detail, round_line, rounds_table, run_summary

    views: list[Any] = []
    for state in _states(text):
        base, record = _record(1, text, {}), _record(2, text, state)
        views += [round_line(record, 10), rounds_table([base, record], 1), round_detail(record, base)]
        views.append(round_detail(record, None))
    question = QuestionVerdict(
        text,
        AnswerRecord(question=text, answer=text),
        AnswerRecord(question=text, answer="", error=text),
        [VoteRecord(winner="candidate", analysis=text)],
        a_correct=True,
        b_correct=False,
    )
    views.append(compare_table(CompareResult(text, text, [question], metric=text or None)))
    base, best = _record(1, text, {}), _record(2, text, {})
    best.succeed = True
    views.append(
        run_summary(
            RunResult(
                name="Poem",
                workspace=Path(f"ws/{text}"),
                strategy="spo",
                records=[base, best],
                new_rounds=[2],
                best=best,
                usage={"executor": RoleUsage(calls=1)},
                message=text,
            )
        )
    )
    views.append(
        render_checks(
            [
                RoleCheck("optimizer", text or "m", text, text, ok=True, latency_s=0.1, prompt_tokens=1),
                RoleCheck(
                    "evaluator", f"m{text}", None, f"http://u:{text}@h/", called=True, error=text, diagnosis=text
                ),
                RoleCheck("executor", text or "m", text, None, error=text, diagnosis=f"d{text}", same_as=None),
            ]
        )
    )
    for view in views:
        for output in rendered(view):
            assert_inert(output)


@VIEW
@given(text=hostile_text)
def test_progress_lines_render_hostile_text_inertly(text: str) -> None:
    from promptopt.engine.loop import RunPlan
    from promptopt.progress import CliEvents

    for terminal in (False, True):
        buffer = io.StringIO()
        console = Console(file=buffer, width=100, force_terminal=terminal, color_system="truecolor")
        events = CliEvents(console, quiet=False)
        models = {"optimizer": text or "m", "evaluator": "e", "executor": f"x{text}"}
        for resumed, changes in ((False, []), (True, ["prompt", "questions"])):
            plan = RunPlan(f"n{text}", Path("ws"), "spo", 2, 3, resumed, 1, 4, models, None, changes)
            events.run_started(plan)
        events.round_done(_record(2, text, {}))
        assert_inert(buffer.getvalue())


@VIEW
@given(text=hostile_text)
def test_error_lines_are_inert(text: str, capsys: pytest.CaptureFixture[str]) -> None:
    import typer

    from promptopt.cli import fail
    from promptopt.errors import LLMError

    with pytest.raises(typer.Exit):
        fail(LLMError(f"executor model m: {text}"))
    err = capsys.readouterr().err
    assert not LEAKS.search(err.replace("\n", "")), repr(err)
    assert all(line.startswith("promptopt: error: ") for line in err.splitlines())


# --- through the CLI, with a model that answers in markup and escapes ----------------------------

runner = CliRunner()
EVIL = "[/b] [link=http://evil.example]x[/link] \x1b[2J\x1b]0;owned\x07 done"


@pytest.fixture
def here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-stub")
    return tmp_path


def invoke(*args: str) -> Any:
    return runner.invoke(app(), list(args), env={"COLUMNS": "120", "NO_COLOR": "1"})


def app() -> Any:
    from promptopt.cli import app

    return app


def evil_stub() -> Any:
    from promptopt.testing.stub_server import StubServer

    def responder(role: str, body: dict[str, Any]) -> str | None:
        if role == "executor":
            return f"answer {EVIL}"
        if role == "optimizer":
            # Not a copy of the question (the leak guard would reject that): markup of its own.
            prompt = "New [/b] prompt [link=http://evil.example]y[/link] \x1b[2J"
            return f"<analyse>{EVIL}</analyse><modification>{EVIL}</modification><prompt>{prompt}</prompt>"
        return f"<analyse>{EVIL}</analyse><choose>B</choose>"

    return StubServer(responder=responder)


def test_optimize_show_and_compare_survive_markup_and_escapes_from_the_model(here: Path) -> None:
    (here / "T.yaml").write_text(f"prompt: Answer.\nqa:\n  - question: {json.dumps('Why [/b]? ' + EVIL)}\n")
    with evil_stub() as stub:
        flags = ["--model", "openai/stub", "--api-base", stub.url]
        ran = invoke("optimize", "-t", "T.yaml", "-r", "2", *flags)
        assert ran.exit_code == 0, ran.output
        assert_inert(ran.output)
        for args in (["show", "workspace/T"], ["show", "workspace/T", "--round", "2"]):
            shown = invoke(*args)
            assert shown.exit_code == 0, shown.output
            assert_inert(shown.output)
            assert "[/b]" in shown.output
        detail = invoke("show", "workspace/T", "--round", "2")
        assert "[link=http://evil.example]x[/link]" in " ".join(detail.output.split())
        compared = invoke("compare", "workspace/T:1", "workspace/T:2", *flags)
        assert compared.exit_code == 0, compared.output
        assert_inert(compared.output) and "Why [/b]?" in compared.output
        as_json = invoke("show", "workspace/T", "--round", "2", "--json")
        assert json.loads(as_json.stdout)["answers"][0]["answer"] == f"answer {EVIL}"
        assert "\x1b" not in as_json.stdout


def test_show_best_is_exact_when_piped(here: Path) -> None:
    prompts = here / "ws/R/prompts"
    prompts.mkdir(parents=True)
    (prompts / "results.json").write_text(json.dumps([{"round": 1, "prompt": "p \x1b[2J [/b]\n"}]))
    assert invoke("show", "ws/R", "--best").stdout == "p \x1b[2J [/b]\n"
