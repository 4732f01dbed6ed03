"""The Python API: results as the CLI gets them, events not prints, stop and resume, session keys."""

from __future__ import annotations

import asyncio
import re
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

import promptopt
from promptopt import (
    Events,
    Interrupted,
    RunConfig,
    Template,
    answer,
    compare,
    estimate,
    load_config,
    load_run,
    optimize,
    optimize_async,
    start,
)
from promptopt.errors import ConfigError, WorkspaceError
from promptopt.template import parse_template
from tests.conftest import POEM, FakeLLM

DOCS = Path(__file__).resolve().parent.parent / "docs" / "python-api.md"
TEMPLATE = parse_template(POEM, "Poem.yaml")


def config(tmp_path: Path, **fields: Any) -> RunConfig:
    return RunConfig(workspace=tmp_path / "ws", name="Poem", **fields)


def test_doc_example_runs_against_the_stub(stub: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    block = re.search(r"## A whole session.*?```python\n(.*?)```", DOCS.read_text(encoding="utf-8"), re.S)
    assert block, "docs/python-api.md lost its example"
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PROMPTOPT_MODEL", "openai/stub")
    monkeypatch.setenv("PROMPTOPT_API_BASE", stub.url)
    exec(compile(block.group(1), str(DOCS), "exec"), {})
    out = capsys.readouterr().out
    assert out.startswith("completed ")
    assert "best beats the first prompt:" in out
    assert (tmp_path / "workspace" / "Navigate" / "prompts" / "results.json").is_file()
    calls = stub.count()
    exec(compile(block.group(1), str(DOCS), "exec"), {})  # the promised free second run
    assert stub.count() == calls


def test_optimize_returns_the_result_and_reports_through_events_only(tmp_path: Path, capsys) -> None:
    seen: list[tuple[str, object]] = []
    llm = FakeLLM()
    result = optimize(
        TEMPLATE, config(tmp_path, max_rounds=3, max_votes=4), llm=llm, events=lambda n, p: seen.append((n, p))
    )
    assert [r.round for r in result.records] == [1, 2, 3]
    assert result.calls == llm.calls() == 3 + 2 * (1 + 3 + 4)
    names = [n for n, _ in seen]
    assert names[0] == "run_started" and names[-1] == "run_done"
    assert [p.round for n, p in seen if n == "round_done"] == [1, 2, 3]  # type: ignore[attr-defined]
    assert capsys.readouterr() == ("", "")
    assert load_run(tmp_path / "ws" / "Poem").best.round == result.best.round


def test_events_subclass_is_called(tmp_path: Path) -> None:
    class Phases(Events):
        def __init__(self) -> None:
            self.phases: list[tuple[int, str]] = []

        def phase(self, round_number: int, phase: str) -> None:
            self.phases.append((round_number, phase))

    events = Phases()
    optimize(TEMPLATE, config(tmp_path, max_rounds=2), llm=FakeLLM(), events=events)
    assert (2, "judge") in events.phases


def test_blocking_call_works_inside_a_running_event_loop(tmp_path: Path) -> None:
    async def notebook_cell() -> Any:
        return optimize(TEMPLATE, config(tmp_path, max_rounds=1), llm=FakeLLM())

    assert asyncio.run(notebook_cell()).best.round == 1


def test_async_entry_point(tmp_path: Path) -> None:
    result = asyncio.run(optimize_async(TEMPLATE, config(tmp_path, max_rounds=2), llm=FakeLLM()))
    assert result.new_rounds == [1, 2]


def test_a_template_object_needs_a_run_name(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="name the run"):
        optimize(TEMPLATE, RunConfig(workspace=tmp_path), llm=FakeLLM())


def test_file_template_names_the_run(tmp_path: Path, template_file: Path) -> None:
    result = optimize(template_file, RunConfig(workspace=tmp_path / "ws", max_rounds=1), llm=FakeLLM())
    assert result.name == "Poem" and (tmp_path / "ws" / "Poem" / "template.yaml").is_file()


def test_stop_keeps_completed_rounds_and_the_same_call_resumes(tmp_path: Path) -> None:
    round_one = threading.Event()

    def on_event(name: str, payload: object) -> None:
        if name == "round_done":
            round_one.set()

    cfg = config(tmp_path, max_rounds=4)
    handle = start(TEMPLATE, cfg, llm=FakeLLM(delay=0.05), events=on_event)
    assert round_one.wait(10)
    handle.stop()
    with pytest.raises(Interrupted):
        handle.wait(10)
    assert handle.done
    saved = [r.round for r in load_run(tmp_path / "ws" / "Poem").records]
    assert saved and saved[-1] < 4
    resumed = optimize(TEMPLATE, cfg, llm=FakeLLM())
    assert resumed.new_rounds == list(range(saved[-1] + 1, 5))


def test_start_rejects_bad_input_in_the_callers_thread(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--strategy"):
        start(TEMPLATE, config(tmp_path, strategy="nope"), llm=FakeLLM())


def test_load_run_reads_rounds_and_bases(tmp_path: Path) -> None:
    optimize(TEMPLATE, config(tmp_path, max_rounds=3), llm=FakeLLM())
    run = load_run(tmp_path / "ws" / "Poem")
    assert run.name == "Poem" and run.template is not None
    assert run.base_of(run.round(1)) is None
    assert run.base_of(run.round(2)) == run.round(1)
    with pytest.raises(WorkspaceError, match="no round 9"):
        run.round(9)
    with pytest.raises(WorkspaceError, match="expected WORKSPACE/NAME"):
        load_run(tmp_path / "nowhere")


def test_compare_with_questions_and_golden_answers(tmp_path: Path) -> None:
    llm = FakeLLM(script={"executor": ["4", "5"], "evaluator": ["<choose>A</choose>", "<choose>B</choose>"]})
    result = compare("Be terse.", "Be careful.", questions=["2+2?"], golden=["4"], votes=2, llm=llm)
    assert [q.question for q in result.questions] == ["2+2?"]
    assert result.calls == 4
    with pytest.raises(ConfigError, match="1 questions but 2 golden"):
        compare("a", "b", questions=["q"], golden=["x", "y"], llm=llm)
    with pytest.raises(ConfigError, match="needs questions"):
        compare("a", "b", llm=llm)


def test_answer_tries_a_prompt_on_a_new_question() -> None:
    llm = FakeLLM(script={"executor": ["  Paris  "]})
    reply = answer("Answer briefly.", "Capital of France?", llm=llm)
    assert reply.answer == "Paris" and reply.question == "Capital of France?"
    assert llm.history[0][1][0]["content"] == "Answer briefly.\n\nCapital of France?"
    with pytest.raises(ConfigError, match="question is empty"):
        answer("p", "  ", llm=llm)


def test_estimate_counts_calls_without_calling(tmp_path: Path) -> None:
    est = estimate(TEMPLATE, config(tmp_path, max_rounds=10, accept="majority", confirm=False))
    assert est.calls == est.worst_calls == 75


def test_load_config_takes_cli_flag_names(tmp_path: Path) -> None:
    cfg = load_config(model="openai/x", eval_model="openai/judge", max_rounds=2, workspace=tmp_path)
    assert (cfg.optimizer.model, cfg.evaluator.model, cfg.max_rounds) == ("openai/x", "openai/judge", 2)


def test_session_key_reaches_the_provider_and_never_the_disk(stub: Any, tmp_path: Path) -> None:
    key = "sk-session-only-0123456789abcdef"
    cfg = load_config(model="openai/stub", api_base=stub.url, workspace=tmp_path / "ws", name="Poem", max_rounds=2)
    optimize(TEMPLATE, cfg, api_keys={"optimizer": key, "evaluator": key, "executor": key})
    assert stub.count() > 0
    assert {r["authorization"] for r in stub.requests} == {f"Bearer {key}"}
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert key.encode() not in path.read_bytes(), path


def test_import_promptopt_is_light() -> None:
    import subprocess

    code = "import sys, promptopt; print(sorted(m for m in ('pydantic', 'litellm', 'yaml') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
    assert "optimize" in dir(promptopt) and isinstance(promptopt.Template, type)
    assert promptopt.Template is Template
    with pytest.raises(AttributeError):
        _ = promptopt.nothing_here  # type: ignore[attr-defined]


def test_compare_takes_config_positionally_like_optimize(tmp_path: Path) -> None:
    llm = FakeLLM()
    cfg = config(tmp_path)
    result = compare("Be terse.", "Be careful.", cfg, questions=["2+2?"], llm=llm)
    assert result.calls == 4
    with pytest.raises(ConfigError, match=r"questions\[1\] is empty"):
        compare("a", "b", cfg, questions=["q", "  "], llm=llm)
    assert llm.calls() == 4  # refused before any call


def test_load_run_finds_a_bare_name_in_the_default_workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    optimize(TEMPLATE, config(tmp_path, max_rounds=1), llm=FakeLLM())
    monkeypatch.chdir(tmp_path)
    with pytest.raises(WorkspaceError, match="no run named Poem in workspace/"):
        load_run("Poem")
    monkeypatch.setenv("PROMPTOPT_WORKSPACE", "ws")
    assert load_run("Poem").path == Path("ws") / "Poem"
    monkeypatch.delenv("PROMPTOPT_WORKSPACE")
    (tmp_path / "promptopt.yaml").write_text("workspace: ws\n")
    assert load_run("Poem").name == "Poem"
