"""Run config: flag > env > file > defaults per role, config file lookup, validation, no secrets on disk."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from promptopt.config import resolve_config, user_config_path
from promptopt.errors import ConfigError


def models(config: Any) -> tuple[str, str, str]:
    return config.optimizer.model, config.evaluator.model, config.executor.model


def temps(config: Any) -> tuple[float, float, float]:
    return config.optimizer.temperature, config.evaluator.temperature, config.executor.temperature


def config_error(
    flags: dict[str, Any] | None = None, env: dict[str, str] | None = None, cwd: Path | None = None
) -> str:
    with pytest.raises(ConfigError) as info:
        resolve_config(flags or {}, env or {}, cwd)
    return str(info.value)


def test_defaults(tmp_path: Path) -> None:
    config = resolve_config({}, {}, tmp_path)

    assert models(config) == ("gpt-4o-mini",) * 3
    assert temps(config) == (0.7, 0.3, 0.0)
    assert (config.max_rounds, config.votes, config.cache) == (10, 4, True)
    assert config.optimizer.extra == {} and config.optimizer.api_base is None


def test_model_flag_sets_every_role_and_beats_env(tmp_path: Path) -> None:
    env = {"PROMPTOPT_MODEL": "env-all", "PROMPTOPT_OPT_MODEL": "env-opt"}
    config = resolve_config({"model": "flag-all"}, env, tmp_path)

    assert models(config) == ("flag-all",) * 3
    assert temps(config) == (0.7, 0.3, 0.0)  # --model leaves temperatures alone


def test_role_specific_beats_global_in_each_layer(tmp_path: Path) -> None:
    assert models(resolve_config({"model": "g", "eval_model": "e"}, {}, tmp_path)) == ("g", "e", "g")
    env = {"PROMPTOPT_MODEL": "g", "PROMPTOPT_EXEC_MODEL": "x"}
    assert models(resolve_config({}, env, tmp_path)) == ("g", "g", "x")
    (tmp_path / "promptopt.yaml").write_text("model: g\noptimizer:\n  model: o\n", encoding="utf-8")
    assert models(resolve_config({}, {}, tmp_path)) == ("o", "g", "g")


def test_precedence_is_per_role(tmp_path: Path) -> None:
    (tmp_path / "promptopt.yaml").write_text(
        "model: file-all\noptimizer:\n  model: file-opt\n  temperature: 1.1\n", encoding="utf-8"
    )
    env = {"PROMPTOPT_EVAL_MODEL": "env-eval", "PROMPTOPT_EVAL_TEMP": "0.5"}
    flags = {"exec_model": "flag-exec", "exec_temp": 0.2}

    config = resolve_config(flags, env, tmp_path)

    assert models(config) == ("file-opt", "env-eval", "flag-exec")
    assert temps(config) == (1.1, 0.5, 0.2)


def test_global_env_beats_role_in_file(tmp_path: Path) -> None:
    """Layers decide first: a lower layer's role-specific value loses to a higher layer's global one."""
    (tmp_path / "promptopt.yaml").write_text("optimizer:\n  model: file-opt\n", encoding="utf-8")
    assert models(resolve_config({}, {"PROMPTOPT_MODEL": "env"}, tmp_path)) == ("env",) * 3


def test_zero_temperature_flag_beats_env(tmp_path: Path) -> None:
    config = resolve_config({"opt_temp": 0.0}, {"PROMPTOPT_OPT_TEMP": "0.9"}, tmp_path)
    assert config.optimizer.temperature == 0.0


def test_scalar_precedence(tmp_path: Path) -> None:
    (tmp_path / "promptopt.yaml").write_text("votes: 2\nmax_rounds: 7\n", encoding="utf-8")
    env = {"PROMPTOPT_VOTES": "3"}

    assert resolve_config({}, {}, tmp_path).votes == 2
    assert resolve_config({}, env, tmp_path).votes == 3
    config = resolve_config({"votes": 5}, env, tmp_path)
    assert (config.votes, config.max_rounds) == (5, 7)


def test_api_base_global_and_per_role(tmp_path: Path) -> None:
    env = {"PROMPTOPT_API_BASE": "http://all", "PROMPTOPT_EVAL_API_BASE": "http://eval"}
    config = resolve_config({}, env, tmp_path)
    assert [config.role(r).api_base for r in ("optimizer", "evaluator", "executor")] == [
        "http://all",
        "http://eval",
        "http://all",
    ]

    config = resolve_config({"api_base": "http://flag"}, env, tmp_path)
    assert {config.role(r).api_base for r in ("optimizer", "evaluator", "executor")} == {"http://flag"}


def test_empty_env_values_are_ignored(tmp_path: Path) -> None:
    config = resolve_config({}, {"PROMPTOPT_MODEL": "", "PROMPTOPT_OPT_TEMP": "", "PROMPTOPT_VOTES": ""}, tmp_path)
    assert models(config) == ("gpt-4o-mini",) * 3
    assert config.optimizer.temperature == 0.7 and config.votes == 4


def test_no_cache_env(tmp_path: Path) -> None:
    assert resolve_config({}, {"PROMPTOPT_NO_CACHE": "1"}, tmp_path).cache is False


def test_process_environment_is_the_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROMPTOPT_OPT_MODEL", "from-os-environ")
    assert resolve_config({}, None, tmp_path).optimizer.model == "from-os-environ"


# --- where the config file comes from ----------------------------------------------------------------


def test_user_config_dir_follows_xdg(tmp_path: Path) -> None:
    assert user_config_path() == Path(os.environ["XDG_CONFIG_HOME"]) / "promptopt" / "config.yaml"


def test_config_file_lookup_order(tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    user = user_config_path()
    user.parent.mkdir(parents=True)
    user.write_text("model: from-user\n", encoding="utf-8")
    assert resolve_config({}, {}, project).optimizer.model == "from-user"

    (project / "promptopt.yaml").write_text("model: from-project\n", encoding="utf-8")
    assert resolve_config({}, {}, project).optimizer.model == "from-project"

    explicit = tmp_path / "elsewhere.yaml"
    explicit.write_text("model: from-env-path\n", encoding="utf-8")
    assert resolve_config({}, {"PROMPTOPT_CONFIG": str(explicit)}, project).optimizer.model == "from-env-path"


def test_missing_promptopt_config_file(tmp_path: Path) -> None:
    message = config_error(env={"PROMPTOPT_CONFIG": str(tmp_path / "nope.yaml")}, cwd=tmp_path)
    assert message.startswith("PROMPTOPT_CONFIG=") and "no such file" in message


def test_empty_config_file_is_fine(tmp_path: Path) -> None:
    (tmp_path / "promptopt.yaml").write_text("# nothing yet\n", encoding="utf-8")
    assert resolve_config({}, {}, tmp_path).votes == 4


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("votes: [\n", "invalid YAML"),
        ("- a\n- b\n", "expected a mapping"),
        ("colour: red\n", "colour: unknown key"),
        ("optimizer:\n  temprature: 1\n", "optimizer.temprature: unknown key"),
        ("votes: many\n", "votes: Input should be a valid integer"),
        ("votes: " + "9" * 5000 + "\n", "invalid YAML"),
        ("model: !!python/object/apply:os.getcwd []\n", "invalid YAML"),
    ],
    ids=["syntax", "list", "unknown", "unknown-in-role", "wrong-type", "huge-number", "python-tag"],
)
def test_bad_config_file_names_the_file(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "promptopt.yaml"
    path.write_text(text, encoding="utf-8")

    message = config_error(cwd=tmp_path)

    assert message.startswith(str(path))
    assert expected in message


# --- validation --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("flags", "env", "message"),
    [
        ({"opt_temp": 3}, {}, "--opt-temp must be at most 2"),
        ({}, {"PROMPTOPT_EVAL_TEMP": "-0.1"}, "PROMPTOPT_EVAL_TEMP=-0.1 must be at least 0"),
        ({}, {"PROMPTOPT_EXEC_TEMP": "warm"}, "PROMPTOPT_EXEC_TEMP=warm must be a number"),
        ({"max_rounds": -1}, {}, "--max-rounds must be at least 1"),
        ({"max_rounds": 0}, {"PROMPTOPT_MAX_ROUNDS": "5"}, "--max-rounds must be at least 1"),
        ({"votes": 0}, {}, "--votes must be at least 1"),
        ({}, {"PROMPTOPT_VOTES": "0"}, "PROMPTOPT_VOTES=0 must be at least 1"),
        ({}, {"PROMPTOPT_VOTES": "2.5"}, "PROMPTOPT_VOTES=2.5 must be a whole number"),
        ({"concurrency": 0}, {}, "--concurrency must be at least 1"),
        ({"budget_usd": -1}, {}, "--budget-usd must be at least 0"),
        ({"model": "   "}, {}, "--model is empty"),
        ({"exec_model": "   "}, {}, "--exec-model is empty"),
    ],
)
def test_errors_speak_in_flag_and_variable_names(
    tmp_path: Path, flags: dict[str, Any], env: dict[str, str], message: str
) -> None:
    assert config_error(flags, env, tmp_path) == message


def test_invalid_value_in_file_names_the_file_and_field(tmp_path: Path) -> None:
    (tmp_path / "promptopt.yaml").write_text("optimizer:\n  temperature: 3\n", encoding="utf-8")
    assert config_error(cwd=tmp_path) == "promptopt.yaml: optimizer.temperature must be at most 2"


@pytest.mark.parametrize("name", ["a/b", "..", ".", "a\\b", "../../etc", "/abs", ""])
def test_name_must_be_plain(tmp_path: Path, name: str) -> None:
    message = config_error({"name": name}, cwd=tmp_path)
    assert message.startswith("--name ") and "plain name" in message


@pytest.mark.parametrize("name", ["a\x1b[2Jb", "bell\x07", "tab\tname", "new\nline", "nul\x00", "c1\x9b", "rtl\u202e"])
def test_name_with_control_characters_is_refused(tmp_path: Path, name: str) -> None:
    message = config_error({"name": name}, cwd=tmp_path)
    assert message.startswith("--name ") and "control" in message
    assert message.isprintable()


def test_plain_name_is_kept(tmp_path: Path) -> None:
    assert resolve_config({"name": "Poem-v2.final"}, {}, tmp_path).name == "Poem-v2.final"


@pytest.mark.parametrize(
    "text",
    [
        "api_key: sk-123\n",
        "key: sk-123\n",
        "optimizer:\n  api_key: sk-123\n",
        "optimizer:\n  extra:\n    api_key: sk-123\n",
        "evaluator:\n  extra:\n    aws_secret_access_key: abc\n",
        "executor:\n  extra:\n    extra_headers:\n      Authorization: Bearer sk-123\n",
    ],
)
def test_api_keys_in_config_file_are_rejected(tmp_path: Path, text: str) -> None:
    (tmp_path / "promptopt.yaml").write_text(text, encoding="utf-8")
    assert "environment" in config_error(cwd=tmp_path)


def test_token_limits_are_not_mistaken_for_secrets(tmp_path: Path) -> None:
    (tmp_path / "promptopt.yaml").write_text(
        "optimizer:\n  extra:\n    max_tokens: 800\n    max_completion_tokens: 900\n    top_p: 0.9\n",
        encoding="utf-8",
    )
    extra = resolve_config({}, {}, tmp_path).optimizer.extra
    assert extra == {"max_tokens": 800, "max_completion_tokens": 900, "top_p": 0.9}


def test_json_schema_properties_are_not_mistaken_for_secrets(tmp_path: Path) -> None:
    (tmp_path / "promptopt.yaml").write_text(
        "executor:\n  extra:\n    response_format:\n      type: json_schema\n      json_schema:\n"
        "        schema: {properties: {key: {type: string}, token: {type: string}}}\n",
        encoding="utf-8",
    )
    schema = resolve_config({}, {}, tmp_path).executor.extra["response_format"]["json_schema"]["schema"]
    assert set(schema["properties"]) == {"key", "token"}


# --- hostile input (issue 13) ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("flags", "env", "message"),
    [
        ({"timeout": float("inf")}, {}, "--timeout must be a finite number"),
        ({"timeout": float("nan")}, {}, "--timeout must be a finite number"),
        ({}, {"PROMPTOPT_TIMEOUT": "inf"}, "PROMPTOPT_TIMEOUT=inf must be a finite number"),
        ({"budget_usd": float("inf")}, {}, "--budget-usd must be a finite number"),
        ({}, {"PROMPTOPT_BUDGET_USD": "Infinity"}, "PROMPTOPT_BUDGET_USD=Infinity must be a finite number"),
        ({}, {"PROMPTOPT_RETRY_BASE": "nan"}, "PROMPTOPT_RETRY_BASE=nan must be a finite number"),
        ({"opt_temp": float("nan")}, {}, "--opt-temp must be a finite number"),
        ({}, {"PROMPTOPT_EXEC_TEMP": "nan"}, "PROMPTOPT_EXEC_TEMP=nan must be a finite number"),
    ],
)
def test_non_finite_numbers_are_refused(
    tmp_path: Path, flags: dict[str, Any], env: dict[str, str], message: str
) -> None:
    assert config_error(flags, env, tmp_path) == message


def test_non_finite_number_in_the_config_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "promptopt.yaml").write_text("timeout: .inf\n", encoding="utf-8")
    assert config_error(cwd=tmp_path) == "promptopt.yaml: timeout must be a finite number"


@pytest.mark.parametrize("value", ["maybe", "2", "nope", "y"])
def test_junk_boolean_variable_is_an_error(tmp_path: Path, value: str) -> None:
    message = config_error(env={"PROMPTOPT_NO_CACHE": value}, cwd=tmp_path)
    assert message.startswith(f"PROMPTOPT_NO_CACHE='{value}'") and "expected" in message


@pytest.mark.parametrize(("value", "cache"), [("1", False), ("TRUE", False), ("on", False), ("0", True), ("no", True)])
def test_boolean_variable_values(tmp_path: Path, value: str, cache: bool) -> None:
    assert resolve_config({}, {"PROMPTOPT_NO_CACHE": value}, tmp_path).cache is cache


def test_duplicate_key_in_the_config_file_is_named(tmp_path: Path) -> None:
    (tmp_path / "promptopt.yaml").write_text("votes: 2\nexecutor:\n  model: a\n  model: b\n", encoding="utf-8")
    message = config_error(cwd=tmp_path)
    assert message.startswith(str(tmp_path / "promptopt.yaml")) and "duplicate key 'model'" in message


def alias_bomb(levels: int = 9) -> str:
    lines = ["a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for n in range(1, levels):
        lines.append(f"a{n}: &a{n} [{', '.join([f'*a{n - 1}'] * 9)}]")
    return "executor:\n  extra:\n    stop: {" + ", ".join(lines) + "}\n"


def test_alias_bomb_in_the_config_file_is_refused_quickly(tmp_path: Path) -> None:
    import time

    text = alias_bomb()
    assert len(text) < 1000  # a few hundred bytes that would expand to ~387 million strings
    (tmp_path / "promptopt.yaml").write_text(text, encoding="utf-8")
    started = time.perf_counter()
    message = config_error(cwd=tmp_path)
    assert "aliases expand" in message and message.startswith(str(tmp_path / "promptopt.yaml"))
    assert time.perf_counter() - started < 2


def test_small_aliases_in_the_config_file_are_fine(tmp_path: Path) -> None:
    (tmp_path / "promptopt.yaml").write_text(
        "optimizer: {extra: &x {max_tokens: 500}}\nexecutor: {extra: *x}\n", encoding="utf-8"
    )
    assert resolve_config({}, {}, tmp_path).executor.extra == {"max_tokens": 500}


def test_config_files_and_endpoint_warnings(tmp_path: Path) -> None:
    from promptopt.config import config_files, endpoint_warnings

    assert config_files({}, tmp_path) == [] and endpoint_warnings(resolve_config({}, {}, tmp_path), {}, tmp_path) == []
    local = tmp_path / "promptopt.yaml"
    local.write_text("api_base: http://user:pw@elsewhere.example/v1\nvotes: 2\n", encoding="utf-8")
    config = resolve_config({}, {}, tmp_path)
    assert config_files({}, tmp_path) == [local]
    (warning,) = endpoint_warnings(config, {}, tmp_path)
    assert (
        "promptopt.yaml" in warning and "elsewhere.example" in warning and "optimizer, evaluator, executor" in warning
    )
    assert "pw" not in warning.replace("promptopt", "")  # credentials in the URL are not shown
    # A flag that overrides the endpoint leaves nothing to warn about.
    flagged = resolve_config({"api_base": "http://127.0.0.1:8080/v1"}, {}, tmp_path)
    assert endpoint_warnings(flagged, {}, tmp_path) == []
    # Only for the executor, through extra.base_url.
    local.write_text("executor: {extra: {base_url: 'http://elsewhere.example'}}\n", encoding="utf-8")
    (warning,) = endpoint_warnings(resolve_config({}, {}, tmp_path), {}, tmp_path)
    assert "executor" in warning and "optimizer" not in warning
    # The user's own config file, or one named by PROMPTOPT_CONFIG, is trusted: no warning.
    local.unlink()
    user = user_config_path()
    user.parent.mkdir(parents=True)
    user.write_text("api_base: http://my-server.example/v1\n", encoding="utf-8")
    assert config_files({}, tmp_path) == [user]
    assert endpoint_warnings(resolve_config({}, {}, tmp_path), {}, tmp_path) == []
    mine = tmp_path / "mine.yaml"
    mine.write_text("api_base: http://my-server.example/v1\n", encoding="utf-8")
    env = {"PROMPTOPT_CONFIG": str(mine)}
    assert endpoint_warnings(resolve_config({}, env, tmp_path), env, tmp_path) == []
