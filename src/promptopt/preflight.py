"""Free checks before any paid call: the endpoint listens, a key is present, the local model is installed.

`optimize`, `compare` and `doctor` run them; they cost no model call and never import more than
litellm's provider tables. Below `llm.py` (which calls them) and `doctor.py` (which shows them).
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit

from promptopt.config import ROLES, RoleConfig, RunConfig

CONNECT_TIMEOUT = 2.0


def provider_prefix(model: str) -> str:
    """The litellm provider a model string names ('openai' for a bare name such as gpt-4o-mini)."""
    return model.split("/", 1)[0].lower() if "/" in model else "openai"


def effective_api_base(model: str, api_base: str | None, env: Mapping[str, str] | None = None) -> str | None:
    """Where the calls of this model go: --api-base, else the provider's `<P>_API_BASE`/`<P>_BASE_URL`.

    None means the provider's public default endpoint. Used for the free checks, `doctor`'s
    report and the response-cache key (two endpoints never share replies).
    """
    if api_base:
        return api_base
    env = os.environ if env is None else env
    prefix = provider_prefix(model).upper().replace("-", "_")
    names = [f"{prefix}_API_BASE", f"{prefix}_BASE_URL"]
    if prefix == "OPENAI":  # litellm reads OPENAI_BASE_URL first
        names.reverse()
    for var in names:
        if env.get(var):
            return env[var]
    return None


def endpoint_used(litellm: Any, role: RoleConfig) -> str | None:
    """The base URL a role's calls go to: as `effective_api_base`, else the provider's fixed
    endpoint litellm knows (None for the provider's default)."""
    found = effective_api_base(role.model, role.api_base)
    if found:
        return found
    try:
        fixed = litellm.get_llm_provider(model=role.model)[3]
    except Exception:
        return None
    return str(fixed) if fixed else None


def _endpoint(api_base: str) -> tuple[str, int] | None:
    parts = urlsplit(api_base if "://" in api_base else f"http://{api_base}")
    if not parts.hostname:
        return None
    try:
        port = parts.port
    except ValueError:
        return None
    return parts.hostname, port or (443 if parts.scheme == "https" else 80)


def listening(api_base: str, timeout: float = CONNECT_TIMEOUT) -> str | None:
    """None when a TCP connect to the api_base's host:port succeeds, else why it did not."""
    endpoint = _endpoint(api_base)
    if endpoint is None:
        return f"--api-base {api_base} is not a URL (expected e.g. http://127.0.0.1:8080/v1)"
    try:
        with socket.create_connection(endpoint, timeout=timeout):
            return None
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        if isinstance(exc, TimeoutError):
            reason = f"no answer within {timeout:g} s"
        host, port = endpoint
        return f"nothing listens at {api_base} ({host}:{port}: {reason}); start the server or fix --api-base"


Kind = Literal["input", "unreachable"]


@dataclass
class Problem:
    """Why a role cannot work, found for free: `input` (fix a flag or key) or `unreachable` (the endpoint is down)."""

    error: str
    diagnosis: str
    kind: Kind = "input"


def provider_of(litellm: Any, role: RoleConfig) -> str | None:
    try:
        return str(litellm.get_llm_provider(model=role.model, api_base=role.api_base)[1])
    except Exception:
        return None


def free_problem(litellm: Any, role: RoleConfig, keyed: bool = False) -> Problem | None:
    """A reason the role cannot work, found without calling any model.

    `keyed`: the caller hands this role a key itself, so the environment need not have one.
    """
    from promptopt import local

    if local.uses_local([role.model]):
        problem = local.missing_requirement(role.model)
        return Problem(problem, f"install the embedded model: {local.install_hint(role.model)}") if problem else None
    if provider_of(litellm, role) is None:
        return Problem(
            f"litellm cannot tell the provider of '{role.model}'",
            "unknown model: name it as provider/model, e.g. openai/gpt-4o-mini, ollama/llama3.2,"
            " or openai/<name> with --api-base for an OpenAI-compatible server",
        )
    base = effective_api_base(role.model, role.api_base)
    if base:
        down = listening(base)
        if down:
            return Problem(down, down, "unreachable")
        if role.api_base:
            return None  # a server of the user's own: it may need no key
    if keyed:
        return None
    try:
        env = litellm.validate_environment(model=role.model)
    except Exception:
        return None
    missing = env.get("missing_keys") or []
    if missing and not env.get("keys_in_environment"):
        return Problem(
            "no API key",
            f"set {' and '.join(missing)} in the environment, or pass --api-base for a local server",
        )
    return None


def role_groups(config: RunConfig, api_keys: Mapping[str, str] | None = None) -> list[tuple[list[str], RoleConfig]]:
    """Roles sharing a model, api_base, extra kwargs and key are checked once (temperature aside)."""
    keys = api_keys or {}
    groups: dict[str, tuple[list[str], RoleConfig]] = {}
    for name in ROLES:
        role = config.role(name)
        # Which key a role uses separates groups; the key itself never enters this string.
        key_of = sorted(set(keys.values())).index(keys[name]) if name in keys else None
        key = json.dumps([role.model, role.api_base, role.extra, key_of], sort_keys=True, default=str)
        groups.setdefault(key, ([], role))[0].append(name)
    return list(groups.values())


def free_checks(litellm: Any, config: RunConfig, keyed: Collection[str] = ()) -> list[tuple[str, Problem]]:
    """(roles, problem) for every role group that cannot work; no model is called."""
    problems = []
    for names, role in role_groups(config):
        found = free_problem(litellm, role, all(n in keyed for n in names))
        if found is not None:
            problems.append((f"{', '.join(names)} model {role.model}", found))
    return problems
