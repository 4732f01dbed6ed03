"""The litellm boundary: one client, retries, usage and cost, provider errors mapped once."""

from __future__ import annotations

import asyncio
import os
import random
import re
import time
from collections.abc import Callable, Collection, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from promptopt.cache import ResponseCache, cache_key
from promptopt.config import RoleConfig, RunConfig
from promptopt.errors import (
    BudgetExceeded,
    DeadlineExceeded,
    LLMAuthError,
    LLMBadRequest,
    LLMContextWindow,
    LLMError,
    LLMNotFound,
    LLMRateLimited,
    LLMReplyTooLarge,
    LLMTransient,
    PromptoptError,
    TooManyErrors,
)
from promptopt.records import RoleUsage
from promptopt.secrets import configured_secrets, redact, redact_secrets

if TYPE_CHECKING:
    from promptopt.shapes import Shape

Messages = list[dict[str, Any]]


@dataclass
class Completion:
    """One model reply with what it cost."""

    text: str
    role: str
    model: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    priced: bool = True
    cached: bool = False
    seconds: float = 0.0


class LLM(Protocol):
    """What the engine needs from a model client.

    `complete` sends `messages` to the model configured for `role` and returns its reply.
    `sample` distinguishes deliberate repeats of the same request (judge votes, optimizer
    retries): equal (role, messages, sample) may be answered from the cache. Sampled calls
    (temperature > 0) are also keyed by `run_seed`, which the engine sets to the run's own
    seed: a resume replays them, a new run samples anew. `shape` says which tagged reply the
    caller will parse: a client may constrain the model to it (a grammar, a JSON schema) but
    always returns text in that tag format. Raises an `LLMError` subclass when the call failed
    for good, `BudgetExceeded` before a call that would pass a budget. `usage` holds running
    totals per role (and the last error of each), `warnings` what the user should hear once (a
    cache that cannot write), `startup_seconds` the client's one-time start-up (importing
    litellm), which round timings leave out.
    """

    usage: Ledger
    run_seed: int | None
    warnings: list[str]
    startup_seconds: float

    async def complete(
        self, role: str, messages: Messages, *, sample: int = 0, shape: Shape | None = None
    ) -> Completion: ...


@dataclass
class AheadCall:
    """Marks a call made ahead of need (--speculate, engine/speculate.py) inside its own task.

    Its usage goes to `ledger` (the round that uses the reply takes it over later), and a budget
    makes it only if `keep_calls` more calls and `keep_usd` more dollars still fit after it (what
    the rest of the run may need).
    """

    ledger: Ledger
    keep_calls: int = 0
    keep_usd: float = 0.0


AHEAD: ContextVar[AheadCall | None] = ContextVar("promptopt_ahead", default=None)


@dataclass
class Ledger:
    """Running usage per role; the engine diffs snapshots to get per-round figures.

    A call made ahead (`AHEAD` set in its task) is recorded in its own ledger instead.
    """

    roles: dict[str, RoleUsage] = field(default_factory=dict)
    # The newest error of a call that failed for good, per role: what a run that did nothing reports.
    last_errors: dict[str, str] = field(default_factory=dict)

    def _target(self) -> Ledger:
        ahead = AHEAD.get()
        return ahead.ledger if ahead is not None and ahead.ledger is not self else self

    def record(self, c: Completion) -> None:
        target = self._target()
        if target is not self:
            target.record(c)
            return
        u = self.roles.setdefault(c.role, RoleUsage())
        if c.cached:
            u.cached += 1
        else:
            u.calls += 1
            u.cost_usd += c.cost_usd
        u.unpriced = u.unpriced or not c.priced
        u.prompt_tokens += c.prompt_tokens
        u.completion_tokens += c.completion_tokens
        u.seconds += c.seconds

    def record_failure(self, role: str, error: str | None = None) -> None:
        target = self._target()
        if target is not self:
            target.record_failure(role, error)
            return
        self.roles.setdefault(role, RoleUsage()).failed += 1
        if error:
            self.last_errors[role] = error

    def merge(self, other: Ledger) -> None:
        """Add another ledger's usage (a reply made ahead, taken over by the round that used it)."""
        for role, u in other.roles.items():
            self.roles[role] = self.roles.get(role, RoleUsage()).add(u)
        self.last_errors.update(other.last_errors)

    def snapshot(self) -> dict[str, RoleUsage]:
        return {k: v.model_copy() for k, v in self.roles.items()}

    def since(self, before: dict[str, RoleUsage]) -> dict[str, RoleUsage]:
        out = {}
        for role, now in self.roles.items():
            old = before.get(role, RoleUsage())
            out[role] = RoleUsage(
                calls=now.calls - old.calls,
                cached=now.cached - old.cached,
                failed=now.failed - old.failed,
                prompt_tokens=now.prompt_tokens - old.prompt_tokens,
                completion_tokens=now.completion_tokens - old.completion_tokens,
                cost_usd=round(now.cost_usd - old.cost_usd, 10),
                unpriced=now.unpriced,
                seconds=round(now.seconds - old.seconds, 4),
            )
        return {k: v for k, v in out.items() if v.calls or v.cached or v.failed}

    @property
    def calls(self) -> int:
        return sum(u.calls for u in self.roles.values())

    @property
    def cost_usd(self) -> float:
        return sum(u.cost_usd for u in self.roles.values())


class Budget:
    """Stops a run before it passes --max-calls or --budget-usd."""

    def __init__(self, max_calls: int | None = None, max_usd: float | None = None) -> None:
        self.max_calls = max_calls
        self.max_usd = max_usd
        self.started = 0
        self.spent = 0.0
        self.reserved = 0.0

    def reserve(self, estimate_usd: float, keep_calls: int = 0, keep_usd: float = 0.0) -> None:
        """Count a call before it is made; `keep_calls` more calls and `keep_usd` must still fit after it."""
        if self.max_calls is not None and self.started + 1 + keep_calls > self.max_calls:
            raise BudgetExceeded(f"--max-calls {self.max_calls} reached")
        if self.max_usd is not None and self.spent + self.reserved + estimate_usd + keep_usd > self.max_usd:
            raise BudgetExceeded(
                f"--budget-usd {self.max_usd:g} reached (spent ${self.spent:.4f}, next call ~${estimate_usd:.4f})"
            )
        self.started += 1
        self.reserved += estimate_usd

    def settle(self, estimate_usd: float, actual_usd: float) -> None:
        self.reserved = max(0.0, self.reserved - estimate_usd)
        self.spent += actual_usd


def _import_litellm() -> Any:
    # Never fetch the price map from the network; use the copy shipped with litellm.
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import litellm

    litellm.suppress_debug_info = True
    litellm.telemetry = False
    litellm.drop_params = True
    import logging

    for name in ("LiteLLM", "LiteLLM Router", "LiteLLM Proxy", "httpx"):
        logging.getLogger(name).setLevel(logging.CRITICAL)
    from promptopt import local

    local.register(litellm)
    return litellm


def _warm_up(litellm: Any) -> None:
    """Do litellm's one-time first-request set-up now, with a mocked reply (no network, no key).

    Its first completion builds response types and loads provider code (0.15-0.4 s of CPU on 2
    cores); paid here, that counts as start-up like the import instead of delaying round 1's
    first request, and the round times show the calls. The same CPU, moved: nothing is saved.
    """
    try:
        litellm.completion(
            model="openai/promptopt-warm-up", messages=[{"role": "user", "content": "."}], mock_response="."
        )
    except Exception:  # a warm-up that fails changes nothing: the real call pays instead
        pass


_WRAPPER = re.compile(r"^(?:litellm\.)?[A-Za-z]*(?:Error|Exception)(?:\s+-\s+|:\s*)")


def provider_message(exc: BaseException, timeout: float | None = None) -> str:
    """What a provider fault says, on one line, without litellm's class-name prefixes.

    'litellm.InternalServerError: InternalServerError: OpenAIException - Connection error.'
    becomes 'HTTP 500: Connection error.'; an exception with no text says what happened.
    """
    raw = " ".join(str(exc).split())
    previous = None
    while previous != raw:
        previous, raw = raw, _WRAPPER.sub("", raw, count=1).strip()
    if not raw:
        if isinstance(exc, (asyncio.TimeoutError, TimeoutError)) or "timeout" in type(exc).__name__.lower():
            within = f" within {timeout:.3g} s" if timeout else ""
            raw = f"no complete reply{within} (the provider sent nothing, or too slowly)"
        else:
            raw = f"{type(exc).__name__} with no message"
    status = getattr(exc, "status_code", None)
    if isinstance(status, int) and str(status) not in raw:
        raw = f"HTTP {status}: {raw}"
    return raw if len(raw) <= 300 else raw[:300] + "…"


def map_exception(exc: BaseException, role: str, model: str, timeout: float | None = None) -> LLMError:
    """Translate a litellm/provider exception into our hierarchy, with a one-line message."""
    import litellm

    raw = provider_message(exc, timeout)
    msg = redact(f"{role} model {model}: {raw}")
    checks: list[tuple[Any, type[LLMError]]] = [
        (litellm.ContextWindowExceededError, LLMContextWindow),
        (litellm.AuthenticationError, LLMAuthError),
        (litellm.PermissionDeniedError, LLMAuthError),
        (litellm.NotFoundError, LLMNotFound),
        (litellm.RateLimitError, LLMRateLimited),
        (litellm.Timeout, LLMTransient),
        (litellm.APIConnectionError, LLMTransient),
        (litellm.InternalServerError, LLMTransient),
        (litellm.ServiceUnavailableError, LLMTransient),
        (litellm.BadGatewayError, LLMTransient),
        (litellm.BadRequestError, LLMBadRequest),
        (litellm.UnprocessableEntityError, LLMBadRequest),
        (litellm.UnsupportedParamsError, LLMBadRequest),
    ]
    for cls, ours in checks:
        if isinstance(exc, cls):
            if ours is LLMBadRequest and "does not exist" in raw.lower() and "model" in raw.lower():
                ours = LLMNotFound
            if ours is LLMBadRequest and "provider" in raw.lower() and "llm provider" in raw.lower():
                ours = LLMNotFound
            error = ours(msg)
            error.retry_after = _retry_after(exc)  # type: ignore[attr-defined]
            return error
    if isinstance(exc, (asyncio.TimeoutError, TimeoutError, ConnectionError)):
        return LLMTransient(msg)
    status = getattr(exc, "status_code", None)
    if isinstance(status, int) and status < 500 and status not in (408, 409, 429):
        return LLMBadRequest(msg)
    # Unknown faults (a garbled body litellm could not parse, an APIError without status) are
    # retried a bounded number of times: a provider hiccup should not end an hour-long run.
    return LLMTransient(msg)


def _retry_after(exc: BaseException) -> float | None:
    """Seconds from a Retry-After header, wherever litellm kept the response headers."""
    response = getattr(exc, "response", None)
    for headers in (
        getattr(exc, "litellm_response_headers", None),
        getattr(response, "headers", None),
        getattr(exc, "headers", None),
    ):
        if not headers:
            continue
        try:
            value = headers.get("retry-after") or headers.get("Retry-After")
            if value is not None:
                return max(0.0, float(value))
        except (TypeError, ValueError, AttributeError):
            continue
    return None


def sampled(kwargs: Mapping[str, Any]) -> bool:
    """Whether a call samples (its reply may differ between two identical requests)."""
    temperature = kwargs.get("temperature")
    return temperature is None or float(temperature) > 0


def estimate_tokens(text: str) -> int:
    """A dependency-free token estimate (~4 characters per token)."""
    return max(1, (len(text) + 3) // 4)


def messages_tokens(messages: Messages) -> int:
    return sum(estimate_tokens(str(m.get("content", ""))) + 4 for m in messages)


class LiteLLMClient:
    """Calls models through litellm.acompletion, bounded by one semaphore, with a cache."""

    def __init__(
        self,
        config: RunConfig,
        cache: ResponseCache | None = None,
        budget: Budget | None = None,
        on_call: Callable[[Completion], None] | None = None,
        sleep: Callable[[float], Any] = asyncio.sleep,
        api_keys: Mapping[str, str] | None = None,
        on_warning: Callable[[str], None] | None = None,
    ) -> None:
        self.config = config
        # Keys given for this client only (a web UI session): never cached, logged or written.
        self._api_keys = {role: key for role, key in (api_keys or {}).items() if key}
        self.cache = cache
        self.budget = budget or Budget(config.max_calls, config.budget_usd)
        self.usage = Ledger()
        self.on_call = on_call
        self.on_warning = on_warning
        self.warnings: list[str] = []
        self.run_seed: int | None = config.seed
        self._sleep = sleep
        self._semaphore: asyncio.Semaphore | None = None
        self._litellm: Any = None
        self._avg_completion: dict[str, float] = {}
        self._rng = random.Random(config.seed)
        self._checked = False
        self._preflight_error: PromptoptError | None = None
        self._priced: dict[str, bool] = {}
        self._key_present: dict[str, bool] = {}
        self._endpoints: dict[tuple[str, str | None], str | None] = {}
        self._failures_in_a_row = 0
        self._stopped: LLMError | None = None
        self._deadline_at = time.monotonic() + config.deadline if config.deadline else None
        self._schema: dict[str, bool] = {}
        self.startup_seconds = 0.0

    def _lib(self) -> Any:
        """litellm, imported on the first paid call (seconds: counted in `startup_seconds`)."""
        if self._litellm is None:
            started = time.perf_counter()
            self._litellm = _import_litellm()
            try:  # litellm's first request imports this (~0.5 s): start-up, not round 1's time
                import openai.resources  # noqa: F401
            except ImportError:
                pass
            _warm_up(self._litellm)
            self.startup_seconds += time.perf_counter() - started
        return self._litellm

    def _kwargs(self, role: RoleConfig, name: str = "", shape: Shape | None = None) -> dict[str, Any]:
        """Sampling parameters, reply cap and constraint, api_base: what the cache key may see."""
        from promptopt import local

        kwargs: dict[str, Any] = {"temperature": role.temperature, **role.extra}
        if role.max_tokens is not None:
            kwargs["max_tokens"] = role.max_tokens
        elif "max_tokens" not in kwargs and (cap := local.default_max_tokens(role.model, name)):
            kwargs["max_tokens"] = cap
        if role.api_base:
            kwargs["api_base"] = role.api_base
        if shape is not None:
            kwargs.update(self._constraint(role, shape))
        return kwargs

    def _key(self, cfg: RoleConfig, messages: Messages, kwargs: dict[str, Any], sample: int) -> str:
        """The cache key: everything that changes the reply, never a secret (STYLE rule 7).

        The endpoint (flag or environment) or the local model's file, every kwarg, and for a
        sampled call the run's seed: a new run samples anew, a resume replays.
        """
        params = dict(kwargs)
        params["endpoint"] = self._endpoint(cfg)
        if sampled(kwargs) and self.run_seed is not None:
            params["run_seed"] = self.run_seed
        return cache_key(cfg.model, messages, params, sample)

    def _endpoint(self, cfg: RoleConfig) -> str | None:
        """Where this role's calls go: the URL, or the file a local model is served from (learned once)."""
        from promptopt.local import served_file
        from promptopt.preflight import effective_api_base

        memo = (cfg.model, cfg.api_base)
        if memo not in self._endpoints:
            self._endpoints[memo] = effective_api_base(cfg.model, cfg.api_base) or served_file(cfg.model)
        return self._endpoints[memo]

    def _constraint(self, role: RoleConfig, shape: Shape) -> dict[str, Any]:
        """How this role's model is held to `shape`: a grammar in-process, else response_format where
        supported (or forced with structured=on), else nothing (plain tags, as the prompts ask)."""
        from promptopt import local

        mode = self.config.structured
        if local.uses_local([role.model]):
            # The in-process model stops right after the closing tag it was asked for.
            return {"stop": shape.stop} if mode == "off" else {"grammar": shape.gbnf(), "stop": shape.stop}
        if mode == "off" or "response_format" in role.extra:
            return {}
        if role.model not in self._schema:
            self._schema[role.model] = _supports_schema(self._lib(), role.model)
        if mode == "on" or self._schema[role.model]:
            return {"response_format": shape.response_format()}
        return {}

    def _call_kwargs(self, role_name: str, role: RoleConfig, kwargs: dict[str, Any]) -> dict[str, Any]:
        if role_name in self._api_keys:
            return {**kwargs, "api_key": self._api_keys[role_name]}
        if role.api_base and role.model not in self._key_present:
            self._key_present[role.model] = _provider_key_present(self._lib(), role.model)
        if role.api_base and not self._key_present[role.model]:
            # Local servers (llama.cpp, vLLM, Ollama's OpenAI API) need no key, but the OpenAI SDK
            # insists on one: hand it a placeholder only when the environment has none.
            return {**kwargs, "api_key": "no-key-needed"}
        return kwargs

    def _before_first_call(self) -> None:
        """Free checks once, just before the first paid call; never for cache hits.

        A failed check fails every call of this client: concurrent first calls must not slip past it.
        """
        if self._preflight_error is not None:
            raise self._preflight_error
        if not self._checked:
            litellm = self._lib()  # the import is start-up time, not the first round's
            try:
                preflight(litellm, self.config, keyed=set(self._api_keys))
            except PromptoptError as exc:
                self._preflight_error = exc
                raise
            self._checked = True

    def remaining(self) -> float | None:
        """Seconds left before --deadline (None without one)."""
        return None if self._deadline_at is None else self._deadline_at - time.monotonic()

    def _check_deadline(self) -> None:
        left = self.remaining()
        if left is not None and left <= 0:
            raise DeadlineExceeded(f"--deadline {self.config.deadline:g}s reached")

    def estimate_cost(self, role_name: str, messages: Messages) -> float:
        role = self.config.role(role_name)
        prompt = messages_tokens(messages)
        completion = int(self._avg_completion.get(role_name, 400))
        return token_cost(self._lib(), role.model, prompt, completion)[0]

    def warn(self, message: str) -> None:
        """Tell the user once (the CLI prints it even with --quiet; the run summary repeats it)."""
        if message not in self.warnings:
            self.warnings.append(message)
            if self.on_warning is not None:
                self.on_warning(message)

    async def complete(
        self, role: str, messages: Messages, *, sample: int = 0, shape: Shape | None = None
    ) -> Completion:
        cfg = self.config.role(role)
        kwargs = self._kwargs(cfg, role, shape)
        if "seed" not in kwargs and _local_model(cfg.model):
            # llama.cpp reseeds from its saved state on a prefix-cache hit: without a seed per
            # sample, repeated votes on the same comparison would come out identical.
            kwargs["seed"] = ((self.run_seed or 0) * 100_003 + sample) % 2**31
        key = self._key(cfg, messages, kwargs, sample)
        if self.cache is not None:
            hit = self.cache.get(key)
            if hit is not None and isinstance(hit.get("text"), str):
                done = Completion(
                    text=hit["text"],
                    role=role,
                    model=cfg.model,
                    prompt_tokens=int(hit.get("prompt_tokens", 0)),
                    completion_tokens=int(hit.get("completion_tokens", 0)),
                    cost_usd=0.0,
                    priced=bool(hit.get("priced", True)),
                    cached=True,
                )
                self._record(done)
                return done
        if self._stopped is not None:
            raise self._stopped
        self._check_deadline()
        self._before_first_call()
        if self._semaphore is None:
            self._semaphore = asyncio.Semaphore(self.config.concurrency)
        estimate = self.estimate_cost(role, messages) if self.budget.max_usd is not None else 0.0
        ahead = AHEAD.get()
        if ahead is None:
            self.budget.reserve(estimate)
        else:
            self.budget.reserve(estimate, ahead.keep_calls, ahead.keep_usd)
        actual = 0.0
        try:
            async with self._semaphore:
                self._check_deadline()
                done = await self._call_with_retries(role, cfg, messages, kwargs, shape)
            actual = done.cost_usd
        except LLMError as exc:
            self._failed(role, exc)
            raise
        except BudgetExceeded:  # the deadline cut it: not the provider's failure
            raise
        except BaseException:
            self.usage.record_failure(role)
            raise
        finally:
            self.budget.settle(estimate, actual)
        self._failures_in_a_row = 0
        if self.cache is not None and not self.cache.put(
            key,
            cfg.model,
            role,
            {
                "text": done.text,
                "prompt_tokens": done.prompt_tokens,
                "completion_tokens": done.completion_tokens,
                "cost_usd": done.cost_usd,
                "priced": done.priced,
            },
        ):
            self.warn(
                f"the response cache cannot be written ({self.cache.write_error}): this run goes on, "
                "but a rerun will pay again for its calls"
            )
        n = self.usage.roles.get(role, RoleUsage()).calls + 1
        avg = self._avg_completion.get(role, float(done.completion_tokens))
        self._avg_completion[role] = avg + (done.completion_tokens - avg) / n
        self._record(done)
        return done

    def _failed(self, role: str, exc: LLMError) -> None:
        """Count a call that failed for good; --max-errors of them in a row stop every later call."""
        self.usage.record_failure(role, str(exc))
        self._failures_in_a_row += 1
        limit = self.config.max_errors
        if exc.retryable and limit and self._failures_in_a_row >= limit and self._stopped is None:
            self._stopped = TooManyErrors(
                f"{self._failures_in_a_row} model calls in a row failed (--max-errors {limit}); last: {exc}"
            )
        if self._stopped is not None:
            raise self._stopped from None

    def _record(self, done: Completion) -> None:
        self.usage.record(done)
        if self.on_call is not None:
            self.on_call(done)

    def _reply_limit(self, cfg: RoleConfig) -> int:
        return cfg.max_reply_chars or self.config.max_reply_chars

    async def _call_with_retries(
        self, role: str, cfg: RoleConfig, messages: Messages, kwargs: dict[str, Any], shape: Shape | None = None
    ) -> Completion:
        litellm = self._lib()
        kwargs = self._call_kwargs(role, cfg, kwargs)
        attempts = self.config.max_attempts
        for attempt in range(1, attempts + 1):
            timeout = self.config.timeout
            left = self.remaining()
            if left is not None:
                timeout = max(0.1, min(timeout, left))
            start = time.perf_counter()
            try:
                response = await asyncio.wait_for(
                    litellm.acompletion(
                        model=cfg.model,
                        messages=messages,
                        timeout=timeout,
                        num_retries=0,
                        max_retries=0,
                        **kwargs,
                    ),
                    # litellm's timeout is per read: a reply trickling in byte by byte is cut here.
                    timeout=timeout + 5 if left is None else timeout,
                )
                text = _content(response)
                limit = self._reply_limit(cfg)
                if len(text) > limit:
                    raise LLMReplyTooLarge(
                        f"{role} model {cfg.model}: reply of {len(text):,} characters is over the limit of "
                        f"{limit:,} (--max-reply-chars); not stored"
                    )
                if shape is not None:  # the engine reads tags, whatever the model was held to
                    text = shape.close(shape.to_tags(text) if "response_format" in kwargs else text)
                # A reply quoting a configured key must not reach the cache, results.json or a screen.
                secrets = configured_secrets(extra=self._api_keys.values(), words=False)
                text = redact_secrets(text, secrets)
            except asyncio.CancelledError:
                raise
            except LLMError as exc:
                error: LLMError = exc
            except Exception as exc:  # every provider fault is mapped here, once
                error = map_exception(exc, role, cfg.model, timeout)
            else:
                seconds = time.perf_counter() - start
                prompt_tokens, completion_tokens = _usage(response, messages, text)
                cost, priced = self._cost(litellm, response, cfg.model, prompt_tokens, completion_tokens)
                return Completion(text, role, cfg.model, prompt_tokens, completion_tokens, cost, priced, False, seconds)
            if self._api_keys and error.args:
                error.args = (redact(str(error.args[0]), self._api_keys.values()), *error.args[1:])
            left = self.remaining()
            if left is not None and left <= 0.05 and error.transport_retry:
                raise DeadlineExceeded(f"--deadline {self.config.deadline:g}s reached") from None
            if not error.transport_retry or attempt == attempts:
                if error.transport_retry and attempts > 1:
                    raise type(error)(f"{error} (gave up after {attempts} attempts)")
                raise error
            delay = self._backoff(attempt, getattr(error, "retry_after", None))
            if left is not None and left <= delay:
                raise DeadlineExceeded(f"--deadline {self.config.deadline:g}s reached (no time left to retry: {error})")
            await self._sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    def _cost(self, litellm: Any, response: Any, model: str, prompt: int, completion: int) -> tuple[float, bool]:
        """litellm's own cost for the reply; unpriced models are learned once, not looked up per call."""
        if model not in self._priced:
            self._priced[model] = token_cost(litellm, model, 1, 1)[1]
        if not self._priced[model]:
            return 0.0, False
        hidden = getattr(response, "_hidden_params", None) or {}
        cost = hidden.get("response_cost") if isinstance(hidden, dict) else None
        if isinstance(cost, (int, float)) and not isinstance(cost, bool):
            return float(cost), True
        return response_cost(litellm, response, model, prompt, completion)

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        base = self.config.retry_base
        delay = min(30.0, base * 2 ** (attempt - 1)) * (0.5 + self._rng.random())
        if retry_after is not None:
            delay = max(delay, min(retry_after, 120.0))
        return delay


def _content(response: Any) -> str:
    try:
        choice = response.choices[0]
        content = choice.message.content
    except (AttributeError, IndexError, KeyError, TypeError):
        raise LLMTransient("reply has no choices (garbled response body)") from None
    return content if isinstance(content, str) else ""


def _usage(response: Any, messages: Messages, text: str) -> tuple[int, int]:
    usage = getattr(response, "usage", None)
    prompt = getattr(usage, "prompt_tokens", None) if usage is not None else None
    completion = getattr(usage, "completion_tokens", None) if usage is not None else None
    return (
        int(prompt) if prompt is not None else messages_tokens(messages),
        int(completion) if completion is not None else estimate_tokens(text),
    )


def token_cost(litellm: Any, model: str, prompt_tokens: int, completion_tokens: int) -> tuple[float, bool]:
    """(cost, priced): litellm's price table, or 0 with priced=False for unknown models."""
    try:
        p, c = litellm.cost_per_token(model=model, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens)
        return float(p) + float(c), True
    except Exception:  # unknown model: no price
        return 0.0, False


def response_cost(litellm: Any, response: Any, model: str, prompt: int, completion: int) -> tuple[float, bool]:
    try:
        return float(litellm.completion_cost(completion_response=response)), True
    except Exception:  # fall back to the model name, then to "no price"
        return token_cost(litellm, model, prompt, completion)


def _local_model(model: str) -> bool:
    from promptopt import local

    return local.uses_local([model])


_SCHEMA_PROVIDERS = ("ollama", "ollama_chat", "hosted_vllm", "lm_studio")


def _supports_schema(litellm: Any, model: str) -> bool:
    """litellm says the model takes a JSON schema, or its server always does (Ollama, vLLM)."""
    try:
        if model.split("/", 1)[0] in _SCHEMA_PROVIDERS:
            return True
        return bool(litellm.supports_response_schema(model=model))
    except Exception:  # a model litellm does not know: no schema
        return False


def _provider_key_present(litellm: Any, model: str) -> bool:
    try:
        return bool(litellm.validate_environment(model=model).get("keys_in_environment"))
    except Exception:  # a provider litellm cannot check: assume the key is there
        return True


def preflight(litellm: Any, config: RunConfig, keyed: Collection[str] = ()) -> None:
    """Free checks before spending (no model call): keys present, endpoint listening, local model installed.

    Roles in `keyed` have a key handed to the client, so a missing environment key is no problem.
    A bad model or a missing key is an input error (exit 2); an endpoint nobody listens on stops
    the run as a provider fault (exit 1), in seconds, before any paid call.
    """
    from promptopt.errors import ConfigError, LLMUnreachable
    from promptopt.preflight import free_checks

    problems = free_checks(litellm, config, keyed)
    if not problems:
        return
    lines = []
    for who, p in problems:
        detail = p.error if p.error == p.diagnosis else f"{p.error}: {p.diagnosis}"
        lines.append(redact(f"{who}: {detail}"))
    if all(p.kind == "unreachable" for _, p in problems):
        raise LLMUnreachable("\n".join(lines))
    raise ConfigError("\n".join(lines))
