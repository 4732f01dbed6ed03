"""The response cache key: everything that changes a reply, never a secret."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from promptopt.cache import ResponseCache, cache_key
from promptopt.config import RunConfig
from promptopt.llm import LiteLLMClient
from promptopt.testing.stub_server import StubServer

MESSAGES = [{"role": "user", "content": "hello"}]


def client(tmp_path: Path, seed: int | None = None, **role: object) -> LiteLLMClient:
    spec = {"model": "openai/stub", **role}
    sampled = {"temperature": 0.7, **spec}
    config = RunConfig(optimizer=sampled, evaluator=sampled, executor={**spec, "temperature": 0.0})  # type: ignore[arg-type]
    c = LiteLLMClient(config, cache=ResponseCache(tmp_path / "cache"))
    c.run_seed = seed
    return c


def key(c: LiteLLMClient, role: str = "optimizer", sample: int = 0) -> str:
    cfg = c.config.role(role)
    return c._key(cfg, MESSAGES, c._kwargs(cfg), sample)


def test_two_endpoints_never_share_replies(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-stub")
    with (
        StubServer(responder=lambda role, body: "from one") as one,
        StubServer(responder=lambda role, body: "from two") as two,
    ):
        first = asyncio.run(client(tmp_path, api_base=one.url).complete("executor", MESSAGES))
        second = asyncio.run(client(tmp_path, api_base=two.url).complete("executor", MESSAGES))
        assert (first.text, second.text) == ("from one", "from two")
        assert not second.cached and two.count() == 1
        again = asyncio.run(client(tmp_path, api_base=one.url).complete("executor", MESSAGES))
        assert again.cached and again.text == "from one"


def test_an_endpoint_from_the_environment_is_part_of_the_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_BASE", "http://127.0.0.1:1/v1")
    a = key(client(tmp_path))
    monkeypatch.setenv("OPENAI_API_BASE", "http://127.0.0.1:2/v1")
    assert key(client(tmp_path)) != a


def test_two_local_model_files_never_share_replies(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("a.gguf", "b.gguf"):
        (tmp_path / name).write_bytes(b"GGUF" + name.encode())
    monkeypatch.setenv("PROMPTOPT_LOCAL_GGUF", str(tmp_path / "a.gguf"))
    a = key(client(tmp_path, model="local"))
    monkeypatch.setenv("PROMPTOPT_LOCAL_GGUF", str(tmp_path / "b.gguf"))
    assert key(client(tmp_path, model="local")) != a


def test_sampled_calls_are_keyed_by_the_run_seed_deterministic_ones_are_not(tmp_path: Path) -> None:
    assert key(client(tmp_path, seed=1)) != key(client(tmp_path, seed=2))  # optimizer, temperature 0.7
    assert key(client(tmp_path, seed=1), "executor") == key(client(tmp_path, seed=2), "executor")  # temperature 0
    assert key(client(tmp_path, seed=1), sample=0) != key(client(tmp_path, seed=1), sample=1)


def test_every_parameter_counts_and_secrets_never_do() -> None:
    base = {"temperature": 0.3}
    k = cache_key("m", MESSAGES, base, 0)
    for extra in ({"n": 2}, {"tools": [{"type": "function"}]}, {"logit_bias": {"1": 2}}, {"top_k": 5}):
        assert cache_key("m", MESSAGES, {**base, **extra}, 0) != k, extra
    assert cache_key("m", MESSAGES, {**base, "api_key": "sk-secret", "timeout": 9}, 0) == k
