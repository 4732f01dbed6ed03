"""Shared fixtures: a FakeLLM scripted per role, workspaces on tmp_path, a stub model server."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from promptopt.llm import Completion, Ledger

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

Reply = str | BaseException | Callable[[list[dict[str, Any]]], str]


def default_reply(role: str, messages: list[dict[str, Any]], n: int) -> str:
    if role == "optimizer":
        return (
            f"<analyse>too vague</analyse><modification>be specific {n}</modification>"
            f"<prompt>Improved prompt number {n}.</prompt>"
        )
    if role == "evaluator":
        return "<analyse>ok</analyse><choose>B</choose>"
    question = messages[-1]["content"].rsplit("\n\n", 1)[-1]
    return f"answer to {question}"


class Killed(Exception):
    """Stands in for kill -9 between two model calls."""


class FakeLLM:
    """Scripted replies per role (a queue), then defaults; `history` records every request.

    `after=N` raises Killed on call N+1, to test resuming a run cut off mid-round. `shapes`
    records the reply shape each request asked for (None when it asked for none).
    """

    def __init__(
        self, script: dict[str, list[Reply]] | None = None, delay: float = 0.0, after: int | None = None
    ) -> None:
        self.script = {role: list(replies) for role, replies in (script or {}).items()}
        self.history: list[tuple[str, list[dict[str, Any]], int]] = []
        self.shapes: list[Any] = []
        self.usage = Ledger()
        self.run_seed: int | None = None
        self.warnings: list[str] = []
        self.startup_seconds = 0.0
        self.delay = delay
        self.counts: dict[str, int] = {}
        self.after = after

    def calls(self, role: str | None = None) -> int:
        return sum(1 for r, _, _ in self.history if role is None or r == role)

    async def complete(
        self, role: str, messages: list[dict[str, Any]], *, sample: int = 0, shape: Any = None
    ) -> Completion:
        if self.after is not None and self.calls() >= self.after:
            raise Killed
        self.history.append((role, messages, sample))
        self.shapes.append(shape)
        n = self.counts[role] = self.counts.get(role, 0) + 1
        if self.delay:
            await asyncio.sleep(self.delay)
        queue = self.script.get(role) or []
        reply: Reply = queue.pop(0) if queue else default_reply(role, messages, n)
        if isinstance(reply, BaseException):
            self.usage.record_failure(role, str(reply))
            raise reply
        text = reply(messages) if callable(reply) else reply
        done = Completion(
            text=text, role=role, model=f"fake-{role}", prompt_tokens=10, completion_tokens=5, cost_usd=0.001
        )
        self.usage.record(done)
        return done


@pytest.fixture
def fake_llm() -> Callable[..., FakeLLM]:
    return FakeLLM


POEM = """\
prompt: |
  Write a poem.
requirements: |
  Vivid imagery.
count: None
qa:
  - question: |
      A poem about the sea
    answer: ""
  - question: A poem about rain
    answer: None
  - question: A poem about snow
"""


@pytest.fixture
def template_file(tmp_path: Path) -> Path:
    path = tmp_path / "Poem.yaml"
    path.write_text(POEM, encoding="utf-8")
    return path


@pytest.fixture(autouse=True)
def _isolated_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Never read the developer's config or cache, never need a real key."""
    monkeypatch.setenv("PROMPTOPT_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg-config"))
    monkeypatch.setenv("PROMPTOPT_RETRY_BASE", "0.01")
    for var in (
        "PROMPTOPT_MODEL",
        "PROMPTOPT_OPT_MODEL",
        "PROMPTOPT_EVAL_MODEL",
        "PROMPTOPT_EXEC_MODEL",
        "PROMPTOPT_CONFIG",
        "PROMPTOPT_WORKSPACE",
        "PROMPTOPT_DEBUG",
    ):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture
def stub() -> Iterator[Any]:
    from promptopt.testing.stub_server import StubServer

    with StubServer() as server:
        yield server


def require(available: bool, reason: str) -> None:
    """Skip a test whose optional tool is missing; with PROMPTOPT_REQUIRE_ALL=1 (CI) fail instead."""
    if available:
        return
    if os.environ.get("PROMPTOPT_REQUIRE_ALL") == "1":
        pytest.fail(f"{reason} (PROMPTOPT_REQUIRE_ALL=1: every test must run)")
    pytest.skip(reason)


@pytest.fixture
def here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh working folder with a placeholder OpenAI key, for CLI runs against the stub server."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-stub")
    return tmp_path


def invoke(*args: str, columns: int = 200) -> Any:
    """The CLI in-process, at a fixed width and without colour."""
    from typer.testing import CliRunner

    from promptopt.cli import app

    return CliRunner().invoke(app, list(args), env={"COLUMNS": str(columns), "NO_COLOR": "1"})
