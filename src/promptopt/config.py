"""Run configuration: three model roles and run limits, merged flag > env > file > defaults."""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from promptopt.errors import ConfigError
from promptopt.workspace import check_plain_name
from promptopt.yamlfile import load as load_yaml

ROLES = ("optimizer", "evaluator", "executor")


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
    temperature: float = Field(0.0, ge=0.0, le=2.0, allow_inf_nan=False)
    api_base: str | None = None
    max_tokens: int | None = Field(default=None, ge=1, le=1_000_000)
    extra: dict[str, Any] = Field(default_factory=dict)
    # This role's reply cap; None uses the run's --max-reply-chars.
    max_reply_chars: int | None = Field(default=None, ge=100)

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
    # Judge votes asked for at once; `paired` adds pairs up to max_votes while undecided.
    votes: int = Field(4, ge=1, le=64)
    max_votes: int = Field(12, ge=1, le=64)
    accept: Literal["paired", "majority"] = "paired"
    # The confirmation gate: best vs your prompt before a run reports another prompt as best.
    confirm: bool = True
    alpha: float = Field(0.05, gt=0, lt=0.5, allow_inf_nan=False)
    holdout: Path | None = None
    concurrency: int = Field(8, ge=1, le=512)
    timeout: float = Field(120.0, gt=0, allow_inf_nan=False)
    max_attempts: int = Field(5, ge=1, le=20)
    optimizer_attempts: int = Field(3, ge=1, le=10)
    retry_base: float = Field(1.0, ge=0, le=60, allow_inf_nan=False)
    budget_usd: float | None = Field(None, ge=0, allow_inf_nan=False)
    max_calls: int | None = Field(None, ge=0)
    # Seconds for the whole run: no call starts after it, calls in flight end by it.
    deadline: float | None = Field(None, gt=0)
    # Stop (exit 1) after this many model calls in a row failed for good; 0 never stops.
    max_errors: int = Field(10, ge=0)
    # Longer replies are failed calls (never stored): a misbehaving provider cannot fill disk or memory.
    max_reply_chars: int = Field(100_000, ge=100)
    cache: bool = True
    cache_dir: Path | None = None
    strategy: str = "spo"
    # Write round n+1's candidate while round n is judged, for each verdict (engine/speculate.py).
    speculate: bool = False
    # None: a new run draws a random seed and stores it in the workspace; a resume reuses it.
    seed: int | None = None
    structured: Structured = "auto"
    strategy_options: dict[str, Any] = Field(default_factory=dict)

    def role(self, role: str) -> RoleConfig:
        config: RoleConfig = getattr(self, role)
        return config

    @field_validator("name")
    @classmethod
    def _plain_name(cls, v: str | None) -> str | None:
        return check_plain_name(v) if v is not None else v

    @field_validator("deadline", mode="before")
    @classmethod
    def _duration(cls, v: Any) -> Any:
        return parse_duration(v) if isinstance(v, str) else v

    @field_validator("max_votes")
    @classmethod
    def _at_least_votes(cls, v: int, info: ValidationInfo) -> int:
        votes = info.data.get("votes")
        if isinstance(votes, int) and v < votes:
            raise ValueError(f"is below --votes {votes}: judging asks for at least --votes votes")
        return v

    @model_validator(mode="after")
    def _default_max_votes(self) -> RunConfig:
        if self.max_votes < self.votes:  # only the default can be lower: it follows --votes up
            self.max_votes = self.votes
        return self


_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str) -> float:
    """'90', '90s', '10m', '1.5h' -> seconds."""
    value = text.strip().lower()
    unit = _UNITS.get(value[-1:])
    number = value[:-1] if unit else value
    try:
        seconds = float(number) * (unit or 1.0)
    except ValueError:
        seconds = math.nan
    if not math.isfinite(seconds):
        raise ValueError(f"'{text}' is not a duration (seconds, or e.g. 90s, 10m, 1h)")
    return seconds


class FileRole(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str | None = None
    temperature: float | None = None
    api_base: str | None = None
    max_tokens: int | None = None
    extra: dict[str, Any] | None = None
    max_reply_chars: int | None = None


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
    max_votes: int | None = None
    accept: str | None = None
    confirm: bool | None = None
    alpha: float | None = None
    holdout: Path | None = None
    deadline: float | None = None
    max_errors: int | None = None
    max_reply_chars: int | None = None
    cache: bool | None = None
    cache_dir: Path | None = None
    strategy: str | None = None
    seed: int | None = None
    structured: Structured | None = None
    speculate: bool | None = None


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
        data = load_yaml(path.read_text(encoding="utf-8")) or {}
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
    "deadline": "PROMPTOPT_DEADLINE",
    "max_votes": "PROMPTOPT_MAX_VOTES",
    "accept": "PROMPTOPT_ACCEPT",
    "alpha": "PROMPTOPT_ALPHA",
    "holdout": "PROMPTOPT_HOLDOUT",
    "max_errors": "PROMPTOPT_MAX_ERRORS",
    "max_reply_chars": "PROMPTOPT_MAX_REPLY_CHARS",
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
            "max_reply_chars": spec.max_reply_chars,
        }
        layer[role] = {k: v for k, v in values.items() if v is not None}
    return layer


_TRUE, _FALSE = {"1", "true", "yes", "on"}, {"0", "false", "no", "off", ""}


def env_flag(env: Mapping[str, str], name: str) -> bool:
    """A boolean variable: 1/true/yes/on or 0/false/no/off (or unset); anything else is an error."""
    value = env.get(name, "").strip().lower()
    if value not in _TRUE | _FALSE:
        raise ConfigError(f"{name}={env[name]!r}: expected 1, true, yes, on or 0, false, no, off")
    return value in _TRUE


def _env_layer(env: Mapping[str, str]) -> dict[str, Any]:
    layer: dict[str, Any] = {k: env[var] for k, var in _ENV_SCALARS.items() if env.get(var)}
    if env_flag(env, "PROMPTOPT_NO_CACHE"):
        layer["cache"] = False
    if env_flag(env, "PROMPTOPT_NO_CONFIRM"):
        layer["confirm"] = False
    if env.get("PROMPTOPT_SPECULATE", "").strip():
        layer["speculate"] = env_flag(env, "PROMPTOPT_SPECULATE")
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
    flags = flags or {}
    layers = [_file_layer(load_file_config(path)) if path else {}, _env_layer(env), _flag_layer(flags)]
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
        raise ConfigError(
            "\n".join(dict.fromkeys(_one_error(err, flags, env, path, layers) for err in exc.errors(include_url=False)))
        ) from None


def config_files(env: Mapping[str, str] | None = None, cwd: Path | None = None) -> list[Path]:
    """The config files `resolve_config` reads with this environment and directory (none or one)."""
    path = find_config_file(cwd or Path.cwd(), os.environ if env is None else env)
    return [path] if path else []


_ENDPOINT_KEYS = ("api_base", "base_url")


def endpoint_warnings(config: RunConfig, env: Mapping[str, str] | None = None, cwd: Path | None = None) -> list[str]:
    """A warning per endpoint that a config file found in the current directory sends calls (and keys) to.

    The user's own config file and one named by PROMPTOPT_CONFIG are theirs; a promptopt.yaml in a
    cloned repository is not, and your provider key goes wherever its api_base points.
    """
    from promptopt.secrets import redact

    env = os.environ if env is None else env
    cwd = cwd or Path.cwd()
    files = config_files(env, cwd)
    if not files or env.get("PROMPTOPT_CONFIG") or files[0].parent != cwd:
        return []
    layer = _file_layer(load_file_config(files[0]))
    used: dict[str, list[str]] = {}
    for role in ROLES:
        final = config.role(role)
        set_here = [layer[role].get("api_base"), *((layer[role].get("extra") or {}).get(k) for k in _ENDPOINT_KEYS)]
        in_use = [final.api_base, *(final.extra.get(k) for k in _ENDPOINT_KEYS)]
        for endpoint in set_here:
            if isinstance(endpoint, str) and endpoint and endpoint in in_use:
                used.setdefault(endpoint, []).append(role)
    return [
        f"{files[0].name} in the current directory sends the {', '.join(roles)} calls, with your API key, "
        f"to {redact(endpoint)}; go on only if you trust that server (flags and PROMPTOPT_* variables override it)"
        for endpoint, roles in used.items()
    ]


_FLAG_SHORT = {"optimizer": "opt", "evaluator": "eval", "executor": "exec"}
_MESSAGES = {
    "greater_than_equal": "must be at least {ge}",
    "less_than_equal": "must be at most {le}",
    "greater_than": "must be more than {gt}",
    "less_than": "must be less than {lt}",
    "finite_number": "must be a finite number",
    "int_parsing": "must be a whole number",
    "int_type": "must be a whole number",
    "int_from_float": "must be a whole number",
    "float_parsing": "must be a number",
    "float_type": "must be a number",
    "bool_parsing": "must be true or false",
    "bool_type": "must be true or false",
    "extra_forbidden": "is not an option",
    "literal_error": "must be one of {expected}",
    "missing": "is required",
}


def error_message(err: Any) -> str:
    """A pydantic error in our words: 'must be at least 1' rather than 'Input should be greater…'."""
    ctx = {k: f"{v:g}" if isinstance(v, float) else v for k, v in (err.get("ctx") or {}).items()}
    message = _MESSAGES.get(err["type"], "").format(**ctx) or err["msg"].removeprefix("Value error, ")
    return " ".join(message.split())


def _one_error(
    err: Any, flags: Mapping[str, Any], env: Mapping[str, str], path: Path | None, layers: list[dict[str, Any]]
) -> str:
    """'--max-rounds must be at least 1', 'PROMPTOPT_VOTES=0 must be at least 1': named as the user set it."""
    loc = [str(part) for part in err["loc"]]
    return f"{_source(loc, flags, env, path, layers)} {error_message(err)}"


def _source(
    loc: list[str], flags: Mapping[str, Any], env: Mapping[str, str], path: Path | None, layers: list[dict[str, Any]]
) -> str:
    """Where the value at `loc` came from: a flag, an environment variable, the config file, or a field."""
    role, key = (loc[0], loc[1]) if loc[0] in ROLES and len(loc) > 1 else (None, loc[0])
    file_layer, env_layer, flag_layer = layers
    if role is None:
        if key in flag_layer:
            return "--no-cache" if key == "cache" else "--" + key.replace("_", "-")
        if key in env_layer:
            var = _ENV_SCALARS.get(key, "PROMPTOPT_NO_CACHE")
            return f"{var}={env.get(var, '')}"
        where = key
    else:
        short = _FLAG_SHORT[role]
        if key in flag_layer.get(role, {}):
            if key == "temperature":
                return f"--{short}-temp"
            if key == "api_base":
                return "--api-base"
            return f"--{short}-model" if flags.get(f"{short}_model") else "--model"
        if key in env_layer.get(role, {}):
            names = {"temperature": ["TEMP"], "model": ["MODEL"], "api_base": ["API_BASE"]}.get(key, [key.upper()])
            for var in (f"PROMPTOPT_{short.upper()}_{names[0]}", f"PROMPTOPT_{names[0]}"):
                if env.get(var):
                    return f"{var}={env[var]}"
        where = ".".join(loc)
    if path is not None and (key in file_layer if role is None else key in file_layer.get(role, {})):
        return f"{path.name}: {where}"
    return where
