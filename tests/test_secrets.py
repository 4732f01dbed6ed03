"""Secrets never reach disk, cache or output: by value in any letter case, by pattern, in URLs (issue 13)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from promptopt.cli import app
from promptopt.secrets import configured_secrets, redact, redact_secrets
from promptopt.testing.stub_server import StubServer

runner = CliRunner()
SECRET = "sk-test-SECRETVALUE1234567890"
ENV = {"COLUMNS": "120", "NO_COLOR": "1"}


def invoke(*args: str) -> Any:
    return runner.invoke(app, list(args), env=ENV)


@pytest.fixture
def here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    return tmp_path


def leaked(text: str | bytes) -> bool:
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return "secretvalue" in text.lower()


def files_leak(*folders: Path) -> list[Path]:
    return [p for folder in folders for p in folder.rglob("*") if p.is_file() and leaked(p.read_bytes())]


# --- the functions -----------------------------------------------------------------------------


def test_configured_secret_is_redacted_in_any_letter_case(here: Path) -> None:
    for variant in (SECRET, SECRET.upper(), SECRET.swapcase(), SECRET.title()):
        assert not leaked(redact(f"Incorrect API key provided: {variant}."))
    assert redact_secrets("x SK-TEST-SECRETVALUE1234567890 y", [SECRET]) == "x [redacted] y"


def test_configured_secrets_come_from_secret_named_variables() -> None:
    env = {"OPENAI_API_KEY": "k" * 20, "HF_TOKEN": "t" * 20, "MY_PASSWORD": "p" * 9, "HOME": "/home/someone"}
    assert set(configured_secrets(env)) == {"k" * 20, "t" * 20, "p" * 9}
    assert configured_secrets({"SHORT_KEY": "abc"}, extra=["handed"]) == ["handed"]
    words = {"TOKENIZERS_PARALLELISM": "disabled", "OPENAI_API_KEY": "sk-abc123456"}
    assert configured_secrets(words, words=False) == ["sk-abc123456"]


@pytest.mark.parametrize(
    ("text", "gone", "kept"),
    [
        ("nothing listens at http://alice:pa55word@10.0.0.1:8080/v1", ["alice", "pa55word"], ["10.0.0.1:8080/v1"]),
        ("https://tok3nvalue@api.example.com/v1", ["tok3nvalue"], ["api.example.com/v1"]),
        ("https://h.example/v1?api-key=abc123xyz&model=m", ["abc123xyz"], ["api-key=", "model=m"]),
        ("https://h.example/v1?x=1&access_token=abc123xyz", ["abc123xyz"], ["x=1"]),
        ("https://h.example/v1?sig=abc123xyz#f", ["abc123xyz"], ["#f"]),
        ("Bearer abc.def-ghi", ["abc.def-ghi"], []),
        ("key: SK-PROJ-ABCDEFGHIJ", ["ABCDEFGHIJ"], ["key: "]),
    ],
)
def test_patterns_and_url_credentials(text: str, gone: list[str], kept: list[str]) -> None:
    out = redact(text)
    assert all(g not in out for g in gone), out
    assert all(k in out for k in kept), out


def test_plain_text_and_urls_are_left_alone() -> None:
    for text in (
        "see http://127.0.0.1:8080/v1/models",
        "mail me@example.com",
        "a task-list of 12 items",
        "desk-123456",
    ):
        assert redact(text) == text


# --- through the CLI ------------------------------------------------------------------------------


def test_upper_case_key_in_a_provider_error_reaches_no_file_or_output(
    here: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A provider echoing the key in upper case: the failed answers' errors, --json, the cache."""
    import litellm

    from promptopt.llm import _import_litellm

    _import_litellm()

    async def fail(**kwargs: Any) -> Any:
        raise litellm.InternalServerError(
            message=f"upstream said: bad key {SECRET.upper()} at https://u:{SECRET}@h/?api_key={SECRET}",
            llm_provider="openai",
            model="gpt-4o-mini",
        )

    monkeypatch.setattr(litellm, "acompletion", fail)
    result = invoke("optimize", "-t", "Poem", "-r", "1", "--max-attempts", "1", "--model", "gpt-4o-mini", "--json")
    assert not leaked(result.output), result.output
    assert files_leak(here, Path(os.environ["PROMPTOPT_CACHE_DIR"])) == []
    doctor = invoke("doctor", "--model", "gpt-4o-mini", "--json")
    assert doctor.exit_code == 1 and not leaked(doctor.output), doctor.output
    assert "[redacted]" in json.loads(doctor.stdout)[0]["error"]


def test_key_inside_a_successful_reply_is_redacted_before_the_cache(here: Path) -> None:
    def responder(role: str, body: dict[str, Any]) -> str | None:
        return f"sure, your key is {SECRET.upper()} and {SECRET}" if role == "executor" else None

    with StubServer(responder=responder) as stub:
        result = invoke("optimize", "-t", "Poem", "-r", "2", "--model", "openai/stub", "--api-base", stub.url, "--json")
        assert result.exit_code == 0, result.output
        shown = invoke("show", "workspace/Poem", "--round", "1", "--json")
    assert not leaked(result.output) and not leaked(shown.output)
    assert "your key is [redacted]" in json.loads(shown.stdout)["answers"][0]["answer"]
    assert files_leak(here, Path(os.environ["PROMPTOPT_CACHE_DIR"])) == []


def test_credentials_in_an_api_base_are_not_printed(here: Path) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://alice:pa55word@127.0.0.1:{port}/v1?api-key=qu3rysecret"
    for args in (
        ["optimize", "-t", "Poem", "-r", "1", "--model", "openai/stub", "--api-base", url],
        ["doctor", "--model", "openai/stub", "--api-base", url],
        ["doctor", "--model", "openai/stub", "--api-base", url, "--json"],
    ):
        result = invoke(*args)
        assert result.exit_code != 0
        assert f"127.0.0.1:{port}" in result.output, result.output
        for word in ("alice", "pa55word", "qu3rysecret"):
            assert word not in result.output, (args, result.output)


def test_a_config_file_here_that_sends_calls_elsewhere_warns_and_is_named(here: Path) -> None:
    with StubServer() as stub:
        url = stub.url
        (here / "promptopt.yaml").write_text(f"api_base: {url}\nmodel: openai/stub\n", encoding="utf-8")
        result = invoke("optimize", "-t", "Poem", "-r", "1", "-q", "--json")
        assert result.exit_code == 0, result.output
    warning = " ".join(result.stderr.split())
    assert "warning: promptopt.yaml in the current directory sends the optimizer, evaluator, executor calls" in warning
    assert url in warning
    assert json.loads(result.stdout)["config_files"] == [str(here / "promptopt.yaml")]
    with StubServer() as stub:
        (here / "promptopt.yaml").write_text(f"api_base: {stub.url}\nmodel: openai/stub\n", encoding="utf-8")
        loud = invoke("optimize", "-t", "Poem", "-r", "1", "-n", "Loud")
    assert "config: " in loud.stderr and "promptopt.yaml" in loud.stderr
