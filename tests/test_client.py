"""The litellm client's start-up: one-time set-up is start-up time, and it sends nothing anywhere."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from promptopt.cache import ResponseCache
from promptopt.config import RunConfig
from promptopt.llm import LiteLLMClient
from promptopt.testing.stub_server import StubServer


def test_start_up_sends_nothing_and_the_first_reply_is_the_providers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """litellm is imported and warmed up on the first paid call with a mocked reply: the provider
    sees exactly the calls made, the warm-up's text is never a result and is not counted."""
    monkeypatch.setenv("OPENAI_API_KEY", "sk-stub")
    with StubServer(responder=lambda role, body: "the provider's reply") as stub:
        role = {"model": "openai/stub", "api_base": stub.url, "temperature": 0.0}
        config = RunConfig(optimizer=role, evaluator=role, executor=role)  # type: ignore[arg-type]
        client = LiteLLMClient(config, cache=ResponseCache(tmp_path / "cache"))
        done = asyncio.run(client.complete("executor", [{"role": "user", "content": "hello"}]))
        assert done.text == "the provider's reply"
        assert stub.count() == 1
        assert client.usage.calls == 1
        assert client.startup_seconds > 0
