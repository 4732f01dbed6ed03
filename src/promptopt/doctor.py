"""`promptopt doctor`: one tiny request per role, with a diagnosis when it fails.

The part that costs nothing (keys present, endpoint listening, the embedded model installed)
lives in `preflight.py`; `check_models` runs it before each call.
"""

from __future__ import annotations

import asyncio
import json
import os
import urllib.request
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

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
from promptopt.llm import LiteLLMClient, _import_litellm, token_cost
from promptopt.preflight import CONNECT_TIMEOUT, endpoint_used, free_problem, listening, provider_of, role_groups
from promptopt.secrets import redact

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
    provider = provider_of(litellm, role)
    check = RoleCheck(role=names[0], model=role.model, provider=provider, api_base=endpoint_used(litellm, role))
    check.usd_per_1k_prompt, check.usd_per_1k_completion = _price_per_1k(litellm, role.model)
    check.priced = check.usd_per_1k_prompt is not None
    key = api_keys.get(names[0])
    found = await asyncio.to_thread(free_problem, litellm, role, bool(key))
    if found is not None:
        check.error, check.diagnosis = redact(found.error), redact(found.diagnosis)
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
    groups = role_groups(config, keys)
    done = await asyncio.gather(*(_check(litellm, config, names, role, timeout, keys) for names, role in groups))
    checks: dict[str, RoleCheck] = {}
    for (names, _), first in zip(groups, done, strict=True):
        checks[names[0]] = first
        for other in names[1:]:
            checks[other] = RoleCheck(**{**asdict(first), "role": other, "same_as": names[0]})
    return [checks[name] for name in ROLES]


def checks_json(checks: list[RoleCheck]) -> list[dict[str, Any]]:
    return [{**asdict(c), "api_base": redact(c.api_base) if c.api_base else None} for c in checks]


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
    from promptopt.safe import safe_text

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
            model += f" @ {redact(c.api_base)}"
        if c.ok:
            status = Text("ok" + (f" (= {c.same_as})" if c.same_as else ""), style="green")
        else:
            status = Text("FAIL" if c.called else "FAIL, not called", style="bold red")
            if c.same_as is None:
                lines = [c.error] if c.error == c.diagnosis else [c.error, f"  → {c.diagnosis}"]
                notes.append(safe_text(f"{c.role}: " + "\n".join(str(x) for x in lines), style="red"))
        latency = f"{c.latency_s:.2f} s" if c.latency_s is not None else "–"
        tokens = f"{c.prompt_tokens}/{c.completion_tokens}" if c.prompt_tokens is not None else "–"
        table.add_row(c.role, safe_text(model), status, latency, tokens, _price(c))
    parts: list[Any] = [table, *notes]
    note = local.note([c.model for c in checks])
    if note:
        parts.append(Text(note, style="yellow"))
    return Group(*parts)


def render_judge(report: Any, model: str) -> Any:
    """`doctor --judge`: the two probes and a verdict, in words."""
    from rich.console import Group
    from rich.text import Text

    from promptopt.safe import safe_text

    c, same, pairs = report.contrast, report.same, report.prompt_pairs
    lines = [
        safe_text(f"judge {model} on {report.questions} questions, one at a time, both orders", "bold"),
        Text(
            f"your prompt vs the bare questions: the two orders agree in {c.consistent} of {c.pairs} pairs"
            + (f" ({c.consistency:.0%})" if c.consistency is not None else "")
            + f"; pairs for your prompt {pairs.wins}, for the bare answers {pairs.losses}, tied {pairs.ties}"
        ),
        Text(
            "the same answers on both sides: chose A in "
            + (f"{same.share_a:.0%}" if same.share_a is not None else "no")
            + f" of {same.votes - same.abstained} valid votes (a fair judge: about half)"
        ),
    ]
    if c.abstained or same.abstained:
        lines.append(Text(f"{c.abstained + same.abstained} votes abstained (no <choose>A|B</choose>)", style="yellow"))
    style = "green" if report.verdict.startswith("consistent") else "yellow"
    lines.append(Text(f"verdict: {report.verdict}", style=style))
    return Group(*lines)
