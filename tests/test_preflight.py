"""Free checks before any paid call: endpoint listening (also from the environment), keys, exit codes."""

from __future__ import annotations

import socket
import time
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from promptopt.cli import app
from promptopt.config import resolve_config
from promptopt.llm import _import_litellm
from promptopt.preflight import effective_api_base, free_checks, listening
from promptopt.testing.stub_server import StubServer

runner = CliRunner()
ENV = {"COLUMNS": "120", "NO_COLOR": "1"}


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-stub")
    for var in ("OPENAI_API_BASE", "OPENAI_BASE_URL"):
        monkeypatch.delenv(var, raising=False)
    return tmp_path


def lines(problems: list[tuple[str, Any]]) -> list[str]:
    return [f"{who}: {p.error}: {p.diagnosis}" for who, p in problems]


def test_free_checks_find_problems_without_calling(
    here: Path, monkeypatch: pytest.MonkeyPatch, stub: StubServer
) -> None:
    litellm = _import_litellm()
    assert free_checks(litellm, resolve_config({"model": "openai/stub", "api_base": stub.url})) == []
    port = closed_port()
    problems = free_checks(litellm, resolve_config({"model": "openai/stub", "api_base": f"http://127.0.0.1:{port}/v1"}))
    assert len(problems) == 1  # one line for the three identical roles
    assert lines(problems)[0].startswith("optimizer, evaluator, executor model openai/stub: nothing listens")
    assert problems[0][1].kind == "unreachable"
    monkeypatch.delenv("OPENAI_API_KEY")
    problems = free_checks(
        litellm, resolve_config({"exec_model": "gpt-4o-mini", "model": "openai/stub", "api_base": None})
    )
    found = lines(problems)
    assert any(p.startswith("optimizer, evaluator model openai/stub") and "OPENAI_API_KEY" in p for p in found)
    assert any(p.startswith("executor model gpt-4o-mini") for p in found)
    assert all(p.kind == "input" for _, p in problems)


def test_listening_handles_odd_urls() -> None:
    assert "not a URL" in (listening("http://") or "")
    assert listening(f"127.0.0.1:{closed_port()}") is not None


def test_endpoint_from_the_environment_counts() -> None:
    env = {"OPENAI_API_BASE": "http://a:1/v1", "OLLAMA_API_BASE": "http://b:2"}
    assert effective_api_base("openai/x", None, env) == "http://a:1/v1"
    assert effective_api_base("gpt-4o-mini", None, env) == "http://a:1/v1"
    assert effective_api_base("ollama/llama3", None, env) == "http://b:2"
    assert effective_api_base("openai/x", "http://c:3", env) == "http://c:3"
    assert effective_api_base("anthropic/claude", None, env) is None
    assert effective_api_base("openai/x", None, {"OPENAI_BASE_URL": "http://d:4"}) == "http://d:4"


def test_server_down_fails_fast_with_exit_1_before_any_call(here: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The endpoint from OPENAI_API_BASE is down: one line naming the roles and model, exit 1, in seconds."""
    monkeypatch.setenv("OPENAI_API_BASE", f"http://127.0.0.1:{closed_port()}/v1")
    started = time.perf_counter()
    result = runner.invoke(
        app, ["optimize", "--template", "Navigate", "--model", "openai/stub", "--max-rounds", "2"], env=ENV
    )
    assert result.exit_code == 1, result.output
    assert "nothing listens" in result.output and "openai/stub" in result.output
    assert time.perf_counter() - started < 30
    assert not (here / "workspace" / "Navigate" / "prompts" / "results.json").exists()
