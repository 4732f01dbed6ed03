"""`promptopt doctor`: one tiny request per role, with a diagnosis when it fails.

`free_checks` is the part that costs nothing (keys present, api_base listening, the embedded
model installed); `optimize` runs it before spending, `check_models` runs it before each call.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import urllib.request
from collections.abc import Collection, Mapping
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import urlsplit

from promptopt.config import ROLES, RoleConfig, RunConfig
from promptopt.errors import (
    LLMAuthError,
    LLMBadRequest,
    LLMContextWindow,
    LLMError,
    LLMNotFound,
    LLMRateLimited,
    LLMTransient,
    PromptoptError,
)
from promptopt.llm import LiteLLMClient, _import_litellm, redact, token_cost

CONNECT_TIMEOUT = 2.0
CALL_TIMEOUT = 30.0
PING = [{"role": "user", "content": "Reply with the single word: ok"}]


@dataclass
class RoleCheck:
    """The outcome of checking one role's model; JSON-able with `asdict`."""

    role: str
    model: str
    provider: str | None
    api_base: str | None
    ok: bool = False
    latency_s: float | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    usd_per_1k_prompt: float | None = None
    usd_per_1k_completion: float | None = None
    priced: bool = False
    called: bool = False
    same_as: str | None = None
    error: str | None = None
    diagnosis: str | None = None


def _provider(litellm: Any, role: RoleConfig) -> str | None:
    try:
        return str(litellm.get_llm_provider(model=role.model, api_base=role.api_base)[1])
    except Exception:
        return None


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


def _free_problem(litellm: Any, role: RoleConfig, keyed: bool = False) -> tuple[str, str] | None:
    """(error, diagnosis) when a role cannot work, found without calling any model.

    `keyed`: the caller hands this role a key itself, so the environment need not have one.
    """
    from promptopt import local

    if local.uses_local([role.model]):
        problem = local.missing_requirement(role.model)
        return (problem, f"install the embedded model: {local.install_hint(role.model)}") if problem else None
    if _provider(litellm, role) is None:
        return (
            f"litellm cannot tell the provider of '{role.model}'",
            "unknown model: name it as provider/model, e.g. openai/gpt-4o-mini, ollama/llama3.2,"
            " or openai/<name> with --api-base for an OpenAI-compatible server",
        )
    if role.api_base:
        down = listening(role.api_base)
        return (down, down) if down else None
    if keyed:
        return None
    try:
        env = litellm.validate_environment(model=role.model)
    except Exception:
        return None
    missing = env.get("missing_keys") or []
    if missing and not env.get("keys_in_environment"):
        return (
            f"no API key: {', '.join(missing)} is not set",
            f"set {', '.join(missing)} in the environment (or pass --api-base for a local server)",
        )
    return None


def _groups(config: RunConfig, api_keys: Mapping[str, str] | None = None) -> list[tuple[list[str], RoleConfig]]:
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


def free_checks(config: RunConfig, keyed: Collection[str] = ()) -> list[str]:
    """Problems found without a model call (keys, api_base listening, embedded model installed)."""
    litellm = _import_litellm()
    problems = []
    for names, role in _groups(config):
        found = _free_problem(litellm, role, all(n in keyed for n in names))
        if found is not None:
            error, diagnosis = found
            detail = error if error == diagnosis else f"{error}: {diagnosis}"
            problems.append(redact(f"{', '.join(names)} model {role.model}: {detail}"))
    return problems


def _price_per_1k(litellm: Any, model: str) -> tuple[float | None, float | None]:
    prompt, priced = token_cost(litellm, model, 1000, 0)
    completion, _ = token_cost(litellm, model, 0, 1000)
    return (round(prompt, 6), round(completion, 6)) if priced else (None, None)


def _key_hint(provider: str | None) -> str:
    var = f"{(provider or '').upper()}_API_KEY"
    return f"check {var}" if provider and var in os.environ else "check the provider's key in the environment"


def _served_models(api_base: str) -> list[str]:
    """Model ids a local OpenAI-compatible server lists (best effort, 2 s)."""
    url = api_base.rstrip("/") + "/models"
    try:
        with urllib.request.urlopen(url, timeout=CONNECT_TIMEOUT) as reply:
            data = json.loads(reply.read().decode("utf-8"))
        return [str(m.get("id")) for m in data.get("data", []) if isinstance(m, dict)][:8]
    except Exception:
        return []


def diagnose(exc: LLMError, check: RoleCheck, keyed: bool, timeout: float) -> str:
    """One sentence saying what to do about a failed call."""
    where = f"the server at {check.api_base}" if check.api_base else f"provider {check.provider}"
    if isinstance(exc, LLMAuthError):
        if check.api_base and not keyed:
            return f"{where} wants an API key: set it in the environment (promptopt sent a placeholder)"
        return f"the provider refused the key: {_key_hint(check.provider)}"
    if isinstance(exc, LLMNotFound):
        served = _served_models(check.api_base) if check.api_base else []
        also = f" (it serves: {', '.join(served)}; use openai/<id>)" if served else ""
        return f"unknown model: {where} has no model '{check.model}'{also}"
    if isinstance(exc, LLMRateLimited):
        return "rate limited: the key works but is over its rate limit or quota"
    if isinstance(exc, LLMContextWindow):
        return "the model refused even a tiny prompt as too long: check the model's context size"
    if isinstance(exc, LLMBadRequest):
        return f"{where} rejected the request: check the model name and its extra options"
    if isinstance(exc, LLMTransient):
        text = str(exc).lower()
        if "timeout" in text or "timed out" in text:
            return f"no reply within {timeout:g} s: {where} is up but slow or stuck (raise --timeout?)"
        if check.api_base:
            down = listening(check.api_base)
            if down:
                return down
        return f"{where} accepted the connection but the call failed: is it an OpenAI-compatible API?"
    return "the call failed: see the error"


async def _check(
    litellm: Any, config: RunConfig, names: list[str], role: RoleConfig, timeout: float, api_keys: Mapping[str, str]
) -> RoleCheck:
    provider = _provider(litellm, role)
    check = RoleCheck(role=names[0], model=role.model, provider=provider, api_base=role.api_base)
    check.usd_per_1k_prompt, check.usd_per_1k_completion = _price_per_1k(litellm, role.model)
    check.priced = check.usd_per_1k_prompt is not None
    key = api_keys.get(names[0])
    found = await asyncio.to_thread(_free_problem, litellm, role, bool(key))
    if found is not None:
        check.error, check.diagnosis = (redact(s) for s in found)
        return check
    # Every role of this client is the checked one: its own preflight sees nothing else.
    probe = role.model_copy(update={"extra": {**role.extra, "max_tokens": 16}})
    client_config = config.model_copy(
        update={
            "optimizer": probe,
            "evaluator": probe,
            "executor": probe,
            "cache": False,
            "max_attempts": 1,
            "timeout": timeout,
            "budget_usd": None,
            "max_calls": None,
            "concurrency": 1,
        }
    )
    client = LiteLLMClient(client_config, cache=None, api_keys={names[0]: key} if key else None)
    check.called = True
    try:
        done = await client.complete(names[0], PING)
    except LLMError as exc:
        keyed = bool(key) or bool(litellm.validate_environment(model=role.model).get("keys_in_environment"))
        check.error = redact(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
        check.diagnosis = redact(diagnose(exc, check, keyed, timeout))
        return check
    except PromptoptError as exc:  # a free check of preflight we do not know about
        check.error = check.diagnosis = redact(str(exc))
        return check
    check.ok = True
    check.latency_s = round(done.seconds, 3)
    check.prompt_tokens, check.completion_tokens = done.prompt_tokens, done.completion_tokens
    check.priced = check.priced and done.priced
    return check


async def check_models(config: RunConfig, api_keys: Mapping[str, str] | None = None) -> list[RoleCheck]:
    """One tiny request per distinct role config; a check for each of the three roles, in order.

    `api_keys` (role → key) are used for these calls only, as `LiteLLMClient` does.
    """
    litellm = _import_litellm()
    keys = {role: key for role, key in (api_keys or {}).items() if key}
    timeout = config.timeout if "timeout" in config.model_fields_set else CALL_TIMEOUT
    groups = _groups(config, keys)
    done = await asyncio.gather(*(_check(litellm, config, names, role, timeout, keys) for names, role in groups))
    checks: dict[str, RoleCheck] = {}
    for (names, _), first in zip(groups, done, strict=True):
        checks[names[0]] = first
        for other in names[1:]:
            checks[other] = RoleCheck(**{**asdict(first), "role": other, "same_as": names[0]})
    return [checks[name] for name in ROLES]


def checks_json(checks: list[RoleCheck]) -> list[dict[str, Any]]:
    return [asdict(c) for c in checks]


def _price(c: RoleCheck) -> str:
    if c.usd_per_1k_prompt is None or c.usd_per_1k_completion is None:
        return "no price"
    return f"{c.usd_per_1k_prompt:g} in\n{c.usd_per_1k_completion:g} out"


def render_checks(checks: list[RoleCheck]) -> Any:
    """A rich table, one row per role, then one diagnosis line per failed role."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    from promptopt import local

    table = Table(show_edge=False, expand=False, pad_edge=False)
    table.add_column("role", no_wrap=True)
    table.add_column("model", overflow="fold", min_width=16)
    table.add_column("status", no_wrap=True)
    table.add_column("latency", justify="right", no_wrap=True)
    table.add_column("tokens", justify="right", no_wrap=True)
    table.add_column("$/1k tokens", no_wrap=True)
    notes: list[Text] = []
    for c in checks:
        model = c.model + (f" ({c.provider})" if c.provider and not c.model.startswith(f"{c.provider}/") else "")
        if c.api_base:
            model += f" @ {c.api_base}"
        if c.ok:
            status = Text("ok" + (f" (= {c.same_as})" if c.same_as else ""), style="green")
        else:
            status = Text("FAIL" if c.called else "FAIL, not called", style="bold red")
            if c.same_as is None:
                lines = [c.error] if c.error == c.diagnosis else [c.error, f"  → {c.diagnosis}"]
                notes.append(Text(f"{c.role}: " + "\n".join(str(x) for x in lines), style="red"))
        latency = f"{c.latency_s:.2f} s" if c.latency_s is not None else "–"
        tokens = f"{c.prompt_tokens}/{c.completion_tokens}" if c.prompt_tokens is not None else "–"
        table.add_row(c.role, model, status, latency, tokens, _price(c))
    parts: list[Any] = [table, *notes]
    note = local.note([c.model for c in checks])
    if note:
        parts.append(Text(note, style="yellow"))
    return Group(*parts)
