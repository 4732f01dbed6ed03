"""Before spending: prompts that cannot fit a model's context window are said so (issue 13)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from promptopt.config import RoleConfig, RunConfig
from promptopt.engine.estimate import DEFAULT_CONTEXT_TOKENS, context_warnings, context_window
from promptopt.template import QA, Template


def template(questions: int) -> Template:
    return Template(prompt="Answer.", qa=[QA(question=f"Question number {i}?") for i in range(questions)])


def config(model: str) -> RunConfig:
    return RunConfig(optimizer=RoleConfig(model=model), evaluator=RoleConfig(model=model))


def test_context_window_comes_from_litellms_table_without_importing_it() -> None:
    import sys

    had = "litellm" in sys.modules
    assert context_window("gpt-4o-mini") == 128_000
    assert context_window("openai/gpt-4o-mini") == 128_000
    assert context_window("openai/some-local-thing") is None
    from promptopt.local import LOCAL_MODEL, lookup

    assert context_window(LOCAL_MODEL) == lookup(LOCAL_MODEL).n_ctx  # type: ignore[union-attr]
    assert ("litellm" in sys.modules) == had


def test_a_small_template_fits() -> None:
    assert context_warnings(template(3), config("gpt-4o-mini")) == []
    assert context_warnings(template(3), config("openai/unknown")) == []


def test_thousands_of_questions_overflow_the_judge_and_the_optimizer() -> None:
    (judge, optimizer) = context_warnings(template(2000), config("gpt-4o-mini"))
    assert judge.startswith("each judge prompt is ~") and "2,000 questions" in judge
    assert "gpt-4o-mini's context window of 128,000 tokens" in judge
    assert optimizer.startswith("each optimizer prompt is ~")


def test_unknown_models_get_a_conservative_window_and_say_so() -> None:
    big = template(100)  # ~50k tokens of judge prompt: over the assumed window, well under gpt-4o-mini's
    (warning, _) = context_warnings(big, config("openai/my-model"))
    assert f"the {DEFAULT_CONTEXT_TOKENS:,} tokens assumed for openai/my-model" in warning
    assert context_warnings(big, config("gpt-4o-mini")) == []


def test_optimize_warns_before_spending(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from promptopt.cli import app

    monkeypatch.chdir(tmp_path)
    lines = ["prompt: Answer.", "qa:"] + [f"  - question: Question number {i}?" for i in range(2000)]
    (tmp_path / "Big.yaml").write_text("\n".join(lines) + "\n")
    result: Any = CliRunner().invoke(
        app, ["optimize", "-t", "Big.yaml", "--model", "gpt-4o-mini", "--dry-run", "-q"], env={"COLUMNS": "200"}
    )
    assert result.exit_code == 0, result.output
    assert "warning: each judge prompt is ~" in " ".join(result.stderr.split())
