"""The embedded models without loading one: names, the pieces → GGUF assembly and its checks,
per-role caps, and how the client holds a local or remote model to a reply shape."""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import json
import re
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from promptopt import local
from promptopt.cache import cache_key
from promptopt.cli import app
from promptopt.config import RunConfig, resolve_config
from promptopt.errors import ConfigError
from promptopt.llm import LiteLLMClient
from promptopt.local import registry
from promptopt.local.parts import PartsError, PartsSource, ensure_file, locate_pieces
from promptopt.shapes import JUDGE, OPTIMIZER
from tests.conftest import require

QWEN = "promptopt-local/qwen2.5-coder-1.5b"


# --- names ---------------------------------------------------------------------------------------


def test_local_names_resolve_and_unknown_ones_fail_in_one_line() -> None:
    assert resolve_config({"model": "local"}).optimizer.model == "promptopt-local/smollm2"
    assert resolve_config({"model": "local:qwen2.5-coder-1.5b"}).executor.model == QWEN
    assert resolve_config({"model": "local:qwen"}).evaluator.model == QWEN
    assert resolve_config({"model": QWEN}).evaluator.model == QWEN
    with pytest.raises(ConfigError) as info:
        resolve_config({"model": "local:llama-70b"})
    assert "unknown local model 'local:llama-70b'" in str(info.value) and "local:qwen2.5-coder-1.5b" in str(info.value)
    lines = str(info.value).splitlines()  # one line, naming the flag
    assert len(lines) == 1 and lines[0].startswith("--model unknown local model")


def test_served_file_identifies_the_gguf(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert local.served_file("gpt-4o-mini") is None
    assert local.served_file(QWEN) == f"sha256:{registry.QWEN_CODER_15B.parts.sha256}"  # type: ignore[union-attr]
    one, two = tmp_path / "one.gguf", tmp_path / "two.gguf"
    one.write_bytes(b"GGUF one")
    two.write_bytes(b"GGUF two!")
    monkeypatch.setenv("PROMPTOPT_LOCAL_GGUF", str(one))
    first = local.served_file("promptopt-local/smollm2")
    monkeypatch.setenv("PROMPTOPT_LOCAL_GGUF", str(two))
    second = local.served_file("local")
    assert first and second and first != second and str(two) in second
    monkeypatch.setenv("PROMPTOPT_LOCAL_GGUF", str(tmp_path / "missing.gguf"))
    assert local.served_file("local") is None


def test_notes_say_what_to_expect() -> None:
    assert "demo" in (local.note(["promptopt-local/smollm2"]) or "")
    assert "Qwen2.5-Coder-1.5B" in (local.note([QWEN, QWEN, "gpt-4o"]) or "")
    assert local.note(["gpt-4o"]) is None


# --- pieces → GGUF -------------------------------------------------------------------------------


def fake_parts(
    site: Path, pieces: list[bytes], version: str = "0.2.0", sha: str | None = None, stem: str = "fake"
) -> PartsSource:
    """Installed-looking distributions promptopt-STEM-partN, each with data/partNN.bin."""
    for n, data in enumerate(pieces, 1):
        info = site / f"promptopt_{stem}_part{n}-{version}.dist-info"
        info.mkdir(parents=True)
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: promptopt-{stem}-part{n}\nVersion: {version}\n")
        folder = site / f"promptopt_{stem}_part{n}" / "data"
        folder.mkdir(parents=True)
        (folder / f"part{n:02d}.bin").write_bytes(data)
    whole = b"".join(pieces)
    return PartsSource(
        prefix=f"promptopt-{stem}-part",
        count=len(pieces),
        piece_path=f"promptopt_{stem}_part{{n}}/data/part{{nn}}.bin",
        version="0.2.0",
        filename="fake.gguf",
        size=len(whole),
        sha256=sha or hashlib.sha256(whole).hexdigest(),
    )


PIECES = [b"GGUF" + b"a" * 1000, b"b" * 777, b"c" * 5]


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "site"
    folder.mkdir()
    monkeypatch.syspath_prepend(str(folder))
    return folder


def test_pieces_join_once_into_the_checked_file(site: Path, tmp_path: Path) -> None:
    source = fake_parts(site, PIECES)
    target = ensure_file(source, tmp_path / "models")
    assert target.read_bytes() == b"".join(PIECES)
    assert (target.parent / "fake.gguf.checked").is_file()
    assert [p.name for p in target.parent.iterdir() if p.name.endswith(".part")] == []
    # Stamped: found again without the pieces (no join, no hashing).
    for n in range(1, 4):
        (site / f"promptopt_fake_part{n}" / "data" / f"part{n:02d}.bin").unlink()
    assert ensure_file(source, tmp_path / "models") == target


def test_a_wrong_hash_is_refused_and_nothing_is_left(site: Path, tmp_path: Path) -> None:
    source = fake_parts(site, PIECES, sha="0" * 64)
    with pytest.raises(PartsError) as info:
        ensure_file(source, tmp_path / "models")
    message = str(info.value)
    assert "refusing" in message and "sha256 000000000000" in message and "\n" not in message
    assert not (tmp_path / "models" / "fake.gguf").exists()
    assert list((tmp_path / "models").iterdir()) == []


def test_a_wrong_size_is_refused_before_writing(site: Path, tmp_path: Path) -> None:
    source = dataclasses.replace(fake_parts(site, PIECES), size=10)
    with pytest.raises(PartsError, match=re.escape("add up to 1,786 bytes, expected 10")):
        ensure_file(source, tmp_path / "models")
    assert not (tmp_path / "models").exists()


def test_a_tampered_file_is_joined_again(site: Path, tmp_path: Path) -> None:
    source = fake_parts(site, PIECES)
    target = ensure_file(source, tmp_path / "models")
    target.write_bytes(b"GGUF something else")
    assert ensure_file(source, tmp_path / "models").read_bytes() == b"".join(PIECES)


def test_missing_or_wrong_version_pieces_are_named(site: Path) -> None:
    source = fake_parts(site, PIECES[:2])
    with pytest.raises(PartsError, match=re.escape("package promptopt-fake-part3==0.2.0 is not installed")):
        locate_pieces(dataclasses.replace(source, count=3))
    old = fake_parts(site, [b"x"], version="0.1.0", stem="old")
    with pytest.raises(PartsError, match=re.escape("version 0.1.0, expected 0.2.0")):
        locate_pieces(dataclasses.replace(old, count=1))


def with_fake_qwen(monkeypatch: pytest.MonkeyPatch, source: PartsSource, models: Path) -> None:
    fake = dataclasses.replace(registry.QWEN_CODER_15B, parts=source)
    monkeypatch.setitem(registry.MODELS, fake.name, fake)
    monkeypatch.setenv("PROMPTOPT_MODELS_DIR", str(models))


def test_missing_pieces_name_the_extra(site: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with_fake_qwen(monkeypatch, dataclasses.replace(fake_parts(site, PIECES), count=4), tmp_path / "models")
    problem = local.missing_requirement(QWEN) or ""
    if importlib.util.find_spec("llama_cpp") is not None:
        assert "promptopt-fake-part4==0.2.0 is not installed" in problem
    assert "pip install 'promptopt[local-qwen]'" in problem


def test_optimize_refuses_a_wrong_file_in_one_line(site: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    require(importlib.util.find_spec("llama_cpp") is not None, "llama-cpp-python is not installed")
    with_fake_qwen(monkeypatch, fake_parts(site, PIECES, sha="f" * 64), tmp_path / "models")
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(
        app, ["optimize", "-t", "Poem", "--model", "local:qwen2.5-coder-1.5b", "-r", "1"], env={"COLUMNS": "200"}
    )
    assert result.exit_code != 0
    errors = [line for line in result.output.splitlines() if line.startswith("promptopt: error:")]
    assert len(errors) == 1 and "refusing" in errors[0] and "fake.gguf" in errors[0], result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "models" / "fake.gguf").exists()


# --- what the client sends -----------------------------------------------------------------------


def client(**config: Any) -> LiteLLMClient:
    return LiteLLMClient(RunConfig.model_validate(config))


def test_local_models_get_caps_grammar_stop_and_a_seed_per_sample() -> None:
    c = client(evaluator={"model": QWEN, "temperature": 0.3})
    kwargs = c._kwargs(c.config.evaluator, "evaluator", JUDGE)
    assert kwargs["max_tokens"] == registry.QWEN_CODER_15B.max_tokens["evaluator"]
    assert kwargs["grammar"] == JUDGE.gbnf() and kwargs["stop"] == ["</choose>"]
    assert "response_format" not in kwargs
    plain = c._kwargs(c.config.evaluator, "evaluator")
    assert "grammar" not in plain and "stop" not in plain
    off = client(structured="off", evaluator={"model": QWEN})
    kwargs = off._kwargs(off.config.evaluator, "evaluator", JUDGE)
    assert "grammar" not in kwargs and kwargs["stop"] == ["</choose>"]


def test_max_tokens_order_model_default_extra_then_the_field() -> None:
    c = client(executor={"model": QWEN, "extra": {"max_tokens": 99}})
    assert c._kwargs(c.config.executor, "executor")["max_tokens"] == 99
    c = client(executor={"model": QWEN, "max_tokens": 42, "extra": {"max_tokens": 99}})
    assert c._kwargs(c.config.executor, "executor")["max_tokens"] == 42
    c = client(executor={"model": "gpt-4o-mini"})
    assert "max_tokens" not in c._kwargs(c.config.executor, "executor")  # hosted models: uncapped as before


def test_the_cache_key_sees_grammar_and_schema() -> None:
    messages = [{"role": "user", "content": "x"}]
    plain = cache_key("m", messages, {"temperature": 0}, 0)
    assert cache_key("m", messages, {"temperature": 0, "grammar": JUDGE.gbnf()}, 0) != plain
    assert cache_key("m", messages, {"temperature": 0, "response_format": JUDGE.response_format()}, 0) != plain


def test_max_tokens_from_env_and_file(tmp_path: Path) -> None:
    (tmp_path / "promptopt.yaml").write_text("optimizer:\n  max_tokens: 300\nstructured: off\n")
    config = resolve_config({}, env={"PROMPTOPT_EXEC_MAX_TOKENS": "77"}, cwd=tmp_path)
    assert config.optimizer.max_tokens == 300 and config.executor.max_tokens == 77
    assert config.evaluator.max_tokens is None and config.structured == "off"
    assert resolve_config({"structured": "on"}, env={"PROMPTOPT_STRUCTURED": "off"}, cwd=tmp_path).structured == "on"
    with pytest.raises(ConfigError, match="MAX_TOKENS"):
        resolve_config({}, env={"PROMPTOPT_EVAL_MAX_TOKENS": "0"}, cwd=tmp_path)


def judge_json(role: str, body: dict[str, Any]) -> str | None:
    if role == "judge" and "response_format" in body:
        return json.dumps({"analyse": "the candidate tracks steps", "choose": "B"})
    if role == "optimizer" and "response_format" in body:
        return json.dumps({"analyse": "vague", "modification": "steps", "prompt": "Track every step."})
    return None


@pytest.mark.parametrize("mode", ["on", "auto", "off"])
def test_structured_replies_through_a_server(mode: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`on` sends a JSON schema to an OpenAI-compatible server and the engine still reads tags;
    `auto` does not for an unknown served model; `off` never does. Caps reach the request."""
    from promptopt.testing.stub_server import StubServer

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-stub-key-for-tests")
    monkeypatch.setenv("PROMPTOPT_EVAL_MAX_TOKENS", "64")
    with StubServer(responder=judge_json) as stub:
        args = ["optimize", "-t", "Poem", "-r", "2", "--model", "openai/stub", "--api-base", stub.url]
        args += ["--max-votes", "4"]  # a fixed count: these marks pin how replies are read
        result = CliRunner().invoke(app, [*args, "--structured", mode, "--json"], env={"COLUMNS": "200"})
        assert result.exit_code == 0, result.output
        bodies = {r["role"]: r["body"] for r in stub.requests}
    assert bodies["judge"]["max_tokens"] == 64 and "max_tokens" not in bodies["executor"]
    assert "response_format" not in bodies["executor"]
    second = json.loads(result.stdout)["rounds"][1]
    if mode == "on":
        schema = bodies["judge"]["response_format"]["json_schema"]["schema"]
        assert schema["required"] == ["analyse", "choose"]
        assert bodies["optimizer"]["response_format"]["json_schema"]["name"] == f"promptopt_{OPTIMIZER.name}"
        assert second["votes"] == "✓✗✓✗"  # JSON "B" read as the vote: candidate B unswapped, A swapped
        prompt = (tmp_path / "workspace/Poem/prompts/round_2/prompt.txt").read_text()
        assert prompt == "Track every step."
    else:
        assert "response_format" not in bodies["judge"] and "response_format" not in bodies["optimizer"]
        assert second["votes"] == "✗✓✗✓"  # the stub's default tagged reply: always A


class FakeLlama:
    """Stands in for llama_cpp.Llama: a judge reply cut off by max_tokens, then the verdict alone."""

    def __init__(self, first: str, reason: str = "length") -> None:
        self.first, self.reason = first, reason
        self.calls: list[dict[str, Any]] = []

    def create_chat_completion(self, messages: list[dict[str, Any]], **kwargs: Any) -> dict[str, Any]:
        self.calls.append({"messages": messages, **kwargs})
        text, reason = (self.first, self.reason) if len(self.calls) == 1 else ("<choose>B</choose>", "stop")
        usage = {"prompt_tokens": 100, "completion_tokens": 7, "total_tokens": 107}
        return {"choices": [{"message": {"content": text}, "finish_reason": reason}], "usage": usage}


def provider_with(fake: FakeLlama, monkeypatch: pytest.MonkeyPatch) -> Any:
    from promptopt.llm import _import_litellm
    from promptopt.local import provider

    monkeypatch.setattr(provider, "_grammar", lambda text: f"compiled:{text[:12]}")
    handler = provider._handler_class(_import_litellm())()
    handler._llamas["qwen2.5-coder-1.5b"] = fake
    return handler


def test_a_verdict_cut_off_is_asked_for_on_its_own(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeLlama("<analyse>Both sets track the steps, but A")
    handler = provider_with(fake, monkeypatch)
    params = {"grammar": JUDGE.gbnf(), "max_tokens": 80, "stop": JUDGE.stop, "temperature": 0.3, "seed": 7}
    out = handler._generate("qwen2.5-coder-1.5b", [{"role": "user", "content": "judge"}], params, None)
    text = out.choices[0].message.content
    assert text == "<analyse>Both sets track the steps, but A</analyse>\n<choose>B</choose>"
    first, second = fake.calls
    assert first["max_tokens"] == 80 and first["stop"] == ["</choose>"] and first["seed"] == 7
    assert second["messages"][-2] == {
        "role": "assistant",
        "content": "<analyse>Both sets track the steps, but A</analyse>",
    }
    assert "<choose>A or B</choose>" in second["messages"][-1]["content"]
    assert second["max_tokens"] == 16 and second["seed"] == 7 and "stop" not in second
    assert out.usage.prompt_tokens == 200 and out.usage.completion_tokens == 14


def test_a_complete_reply_makes_one_call(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeLlama("<analyse>ok</analyse>\n<choose>A", reason="stop")
    handler = provider_with(fake, monkeypatch)
    params = {"grammar": JUDGE.gbnf(), "max_tokens": 80}
    out = handler._generate("qwen2.5-coder-1.5b", [{"role": "user", "content": "judge"}], params, None)
    assert len(fake.calls) == 1 and out.choices[0].message.content.endswith("<choose>A")
    plain = FakeLlama("<analyse>cut", reason="length")
    provider_with(plain, monkeypatch)._generate("qwen2.5-coder-1.5b", [], {"max_tokens": 80}, None)
    assert len(plain.calls) == 1  # no grammar, no shape: nothing to finish


def test_doctor_names_a_missing_piece_without_calling(
    site: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    require(importlib.util.find_spec("llama_cpp") is not None, "llama-cpp-python is not installed")
    with_fake_qwen(monkeypatch, dataclasses.replace(fake_parts(site, PIECES), count=4), tmp_path / "models")
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["doctor", "--model", "local:qwen", "--json"], env={"COLUMNS": "200"})
    assert result.exit_code == 1
    check = json.loads(result.stdout)[0]
    assert check["model"] == QWEN and not check["called"]
    assert "promptopt-fake-part4==0.2.0 is not installed" in check["error"]
    assert "pip install 'promptopt[local-qwen]'" in check["diagnosis"]
    text = CliRunner().invoke(app, ["doctor", "--model", "local:qwen"], env={"COLUMNS": "200"})
    assert "Qwen2.5-Coder-1.5B" in text.output and "demo" not in text.output
