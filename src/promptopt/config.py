"""Run configuration: three model roles and run limits, merged flag > env > file > defaults."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator

from promptopt.errors import ConfigError
from promptopt.workspace import check_plain_name

ROLES = ("optimizer", "evaluator", "executor")
Role = Literal["optimizer", "evaluator", "executor"]


def _on_off(value: Any) -> Any:
    """YAML reads a bare `on`/`off` as a boolean: take it as meant."""
    return {True: "on", False: "off"}.get(value, value) if isinstance(value, bool) else value


Structured = Annotated[Literal["auto", "on", "off"], BeforeValidator(_on_off)]
DEFAULT_MODEL = "gpt-4o-mini"
DEFAULT_TEMPERATURES = {"optimizer": 0.7, "evaluator": 0.3, "executor": 0.0}
CONFIG_NAMES = ("promptopt.yaml", "promptopt.yml", ".promptopt.yaml")
_SECRET_WORDS = {"key", "apikey", "token", "secret", "password", "authorization", "credentials"}


class RoleConfig(BaseModel):
    """One model role: a litellm model string and how to call it."""

    model_config = ConfigDict(extra="forbid")

    model: str = DEFAULT_MODEL
    temperature: float = Field(0.0, ge=0.0, le=2.0)
    api_base: str | None = None
    max_tokens: int | None = Field(default=None, ge=1, le=1_000_000)
    extra: dict[str, Any] = Field(default_factory=dict)

    @field_validator("model")
    @classmethod
    def _model(cls, v: str) -> str:
        from promptopt.local import resolve_model_alias

        if not v.strip():
            raise ValueError("is empty")
        return resolve_model_alias(v.strip())

    @field_validator("extra")
    @classmethod
    def _no_secrets(cls, v: dict[str, Any]) -> dict[str, Any]:
        key = _secret_key(v)
        if key is not None:
            raise ValueError(f"'{key}' looks like a secret: set it in the environment instead")
        return v


def _secret_key(value: Any) -> str | None:
    """The first key naming a secret ('api_key'), headers included ('extra_headers: {Authorization: …}').

    Whole words only, so 'max_tokens' and 'max_completion_tokens' stay allowed; other nested
    mappings (a response_format schema with a 'key' property) are not secrets.
    """
    if not isinstance(value, Mapping):
        return None
    for key, item in value.items():
        words = re.split(r"[^a-z]+", str(key).lower())
        if _SECRET_WORDS.intersection(words):
            return str(key)
        nested = _secret_key(item) if "header" in str(key).lower() else None
        if nested is not None:
            return nested
    return None


class RunConfig(BaseModel):
    """Everything an optimization run needs besides the template."""

    model_config = ConfigDict(extra="forbid")

    optimizer: RoleConfig = Field(default_factory=lambda: RoleConfig(temperature=0.7))
    evaluator: RoleConfig = Field(default_factory=lambda: RoleConfig(temperature=0.3))
    executor: RoleConfig = Field(default_factory=lambda: RoleConfig(temperature=0.0))
    workspace: Path = Path("workspace")
    name: str | None = None
    initial_round: int | None = Field(None, ge=1)
    max_rounds: int = Field(10, ge=1, le=1000)
    votes: int = Field(4, ge=1, le=64)
    concurrency: int = Field(8, ge=1, le=512)
    timeout: float = Field(120.0, gt=0)
    max_attempts: int = Field(5, ge=1, le=20)
    optimizer_attempts: int = Field(3, ge=1, le=10)
    retry_base: float = Field(1.0, ge=0, le=60)
    budget_usd: float | None = Field(None, ge=0)
    max_calls: int | None = Field(None, ge=0)
    cache: bool = True
    cache_dir: Path | None = None
    strategy: str = "spo"
    seed: int = 0
    structured: Structured = "auto"
    strategy_options: dict[str, Any] = Field(default_factory=dict)

    def role(self, role: str) -> RoleConfig:
        config: RoleConfig = getattr(self, role)
        return config

    @field_validator("name")
    @classmethod
    def _plain_name(cls, v: str | None) -> str | None:
        return check_plain_name(v) if v is not None else v


class FileRole(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str | None = None
    temperature: float | None = None
    api_base: str | None = None
    max_tokens: int | None = None
    extra: dict[str, Any] | None = None


class FileConfig(BaseModel):
    """The YAML config file (promptopt.yaml or <user config dir>/config.yaml)."""

    model_config = ConfigDict(extra="forbid")

    model: str | None = None
    api_base: str | None = None
    optimizer: FileRole | None = None
    evaluator: FileRole | None = None
    executor: FileRole | None = None
    workspace: Path | None = None
    votes: int | None = None
    concurrency: int | None = None
    timeout: float | None = None
    max_attempts: int | None = None
    retry_base: float | None = None
    max_rounds: int | None = None
    budget_usd: float | None = None
    max_calls: int | None = None
    cache: bool | None = None
    cache_dir: Path | None = None
    strategy: str | None = None
    seed: int | None = None
    structured: Structured | None = None


def user_config_path() -> Path:
    from platformdirs import user_config_dir

    return Path(user_config_dir("promptopt")) / "config.yaml"


def find_config_file(cwd: Path, env: Mapping[str, str]) -> Path | None:
    if env.get("PROMPTOPT_CONFIG"):
        path = Path(env["PROMPTOPT_CONFIG"]).expanduser()
        if not path.is_file():
            raise ConfigError(f"PROMPTOPT_CONFIG={path}: no such file")
        return path
    for name in CONFIG_NAMES:
        if (cwd / name).is_file():
            return cwd / name
    user = user_config_path()
    return user if user.is_file() else None


def load_file_config(path: Path) -> FileConfig:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read ({exc})") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML: {getattr(exc, 'problem', exc)}") from None
    except (ValueError, RecursionError) as exc:  # a >4300-digit number, absurd nesting
        raise ConfigError(f"{path}: invalid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping")
    sections: list[dict[str, Any]] = [data, *(v for r in ROLES if isinstance(v := data.get(r), dict))]
    if any(k in section for section in sections for k in ("api_key", "key")):
        raise ConfigError(f"{path}: api keys belong in the environment, not in the config file")
    try:
        return FileConfig.model_validate(data)
    except ValidationError as exc:
        from promptopt.template import format_validation_error

        raise ConfigError(format_validation_error(str(path), exc)) from None


_ENV_ROLE = {"optimizer": "OPT", "evaluator": "EVAL", "executor": "EXEC"}
_ENV_SCALARS = {
    "workspace": "PROMPTOPT_WORKSPACE",
    "votes": "PROMPTOPT_VOTES",
    "concurrency": "PROMPTOPT_CONCURRENCY",
    "timeout": "PROMPTOPT_TIMEOUT",
    "max_attempts": "PROMPTOPT_MAX_ATTEMPTS",
    "retry_base": "PROMPTOPT_RETRY_BASE",
    "max_rounds": "PROMPTOPT_MAX_ROUNDS",
    "budget_usd": "PROMPTOPT_BUDGET_USD",
    "max_calls": "PROMPTOPT_MAX_CALLS",
    "cache_dir": "PROMPTOPT_CACHE_DIR",
    "strategy": "PROMPTOPT_STRATEGY",
    "seed": "PROMPTOPT_SEED",
    "structured": "PROMPTOPT_STRUCTURED",
}


def _file_layer(fc: FileConfig) -> dict[str, Any]:
    layer: dict[str, Any] = {
        k: v
        for k, v in fc.model_dump(exclude={"optimizer", "evaluator", "executor", "model", "api_base"}).items()
        if v is not None
    }
    for role in ROLES:
        spec = getattr(fc, role) or FileRole()
        values = {
            "model": spec.model or fc.model,
            "temperature": spec.temperature,
            "api_base": spec.api_base or fc.api_base,
            "max_tokens": spec.max_tokens,
            "extra": spec.extra,
        }
        layer[role] = {k: v for k, v in values.items() if v is not None}
    return layer


def _env_layer(env: Mapping[str, str]) -> dict[str, Any]:
    layer: dict[str, Any] = {k: env[var] for k, var in _ENV_SCALARS.items() if env.get(var)}
    if env.get("PROMPTOPT_NO_CACHE", "").lower() in {"1", "true", "yes"}:
        layer["cache"] = False
    for role, short in _ENV_ROLE.items():
        values = {
            "model": env.get(f"PROMPTOPT_{short}_MODEL") or env.get("PROMPTOPT_MODEL"),
            "temperature": env.get(f"PROMPTOPT_{short}_TEMP"),
            "api_base": env.get(f"PROMPTOPT_{short}_API_BASE") or env.get("PROMPTOPT_API_BASE"),
            "max_tokens": env.get(f"PROMPTOPT_{short}_MAX_TOKENS"),
        }
        layer[role] = {k: v for k, v in values.items() if v}
    return layer


def _flag_layer(flags: Mapping[str, Any]) -> dict[str, Any]:
    short = {"optimizer": "opt", "evaluator": "eval", "executor": "exec"}
    layer: dict[str, Any] = {}
    for key, value in flags.items():
        if value is None or key in {"model", "api_base"} or key.split("_")[0] in short.values():
            continue
        layer[key] = value
    for role, s in short.items():
        values = {
            "model": flags.get(f"{s}_model") or flags.get("model"),
            "temperature": flags.get(f"{s}_temp"),
            "api_base": flags.get("api_base"),
        }
        layer[role] = {k: v for k, v in values.items() if v is not None}
    return layer


def resolve_config(
    flags: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> RunConfig:
    """Merge defaults < config file < environment < flags into a validated RunConfig."""
    env = os.environ if env is None else env
    cwd = cwd or Path.cwd()
    path = find_config_file(cwd, env)
    layers = [_file_layer(load_file_config(path)) if path else {}, _env_layer(env), _flag_layer(flags or {})]
    merged: dict[str, Any] = {}
    for role in ROLES:
        merged[role] = {"temperature": DEFAULT_TEMPERATURES[role]}
    for layer in layers:
        for key, value in layer.items():
            if key in ROLES:
                merged[key].update(value)
            else:
                merged[key] = value
    try:
        return RunConfig.model_validate(merged)
    except ValidationError as exc:
        from promptopt.template import format_validation_error

        raise ConfigError(format_validation_error("config", exc).replace("config: ", "", 1)) from None
