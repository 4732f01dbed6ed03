"""The in-process llama.cpp provider behind `--model local[:NAME]`, registered with litellm.

It flows through the same client, cache, usage and cost code as every other model. Neither
llama_cpp nor a GGUF is touched until the first call: `register` is cheap and works without
the extras installed.
"""

from __future__ import annotations

import asyncio
import atexit
import functools
import os
import threading
import time
import uuid
import weakref
from pathlib import Path
from typing import Any

from promptopt import prompts
from promptopt.local.parts import PartsError
from promptopt.local.registry import PROVIDER, LocalModel, gguf_path, lookup, missing
from promptopt.shapes import SHAPES, Shape

DEFAULT_MAX_TOKENS = 512
# Each llama.cpp state kept for prefix reuse holds the KV cache of one prompt (~28 kB a token
# for the 1.5B model): enough for the judge's two orders and the optimizer's request.
PREFIX_CACHE_BYTES = 768 << 20
THREADS_ENV = "PROMPTOPT_LOCAL_THREADS"


@functools.cache
def _build_has_amx() -> bool:
    import llama_cpp

    info = llama_cpp.llama_print_system_info().decode("utf-8", "replace")
    return "AMX" in info.upper()


def load_llama(path: Path, m: LocalModel) -> Any:
    """llama_cpp.Llama for the GGUF: all cores, the model's context and batch, a prefix cache.

    llama.cpp's extra CPU buffer types (weight repacking for AVX2, AMX) speed up reading prompts,
    but a build with AMX segfaults on VMs (Firecracker guests, seen in CI) whose CPU reports AMX
    it may not use. Repacking is kept when the build has no AMX at all (`-DGGML_NATIVE=OFF`);
    otherwise the default model params are patched while the model loads (the load lock keeps
    this to one thread).
    """
    import llama_cpp.llama_cpp as lib
    from llama_cpp import Llama, LlamaRAMCache

    original = lib.llama_model_default_params
    safe = not _build_has_amx()

    def params() -> Any:
        p = original()
        if hasattr(p, "use_extra_bufts") and not safe:
            p.use_extra_bufts = False
        return p

    threads = local_threads()
    lib.llama_model_default_params = params
    try:
        llama = Llama(
            model_path=str(path),
            n_ctx=m.n_ctx,
            n_batch=m.n_batch,
            n_ubatch=m.n_batch,
            n_threads=threads,
            n_threads_batch=threads,
            verbose=False,
        )
    finally:
        lib.llama_model_default_params = original
    llama.set_cache(_prefix_cache(LlamaRAMCache))
    return llama


def _prefix_cache(base: type) -> Any:
    """llama-cpp-python's RAM cache of states by prompt prefix, without the logits it copies along.

    Each saved state carries a copy of the logits buffer (n_batch × vocabulary floats: 300 MB
    for a 150k-token vocabulary) that its capacity does not count; only logprobs read it, and
    a restored state is always decoded again before sampling. One row is kept.
    """

    class PrefixCache(base):
        def __setitem__(self, key: Any, value: Any) -> None:
            value.scores = value.scores[-1:].copy()
            super().__setitem__(key, value)

    return PrefixCache(capacity_bytes=PREFIX_CACHE_BYTES)


def local_threads() -> int:
    """$PROMPTOPT_LOCAL_THREADS, else every core this process may use."""
    value = os.environ.get(THREADS_ENV, "").strip()
    if value.isdigit() and int(value) > 0:
        return int(value)
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def _grammar(text: str) -> Any:
    from llama_cpp import LlamaGrammar

    return LlamaGrammar.from_string(text, verbose=False)


def _handler_class(litellm: Any) -> type:
    """Build the CustomLLM subclass against the litellm module we were given (imported lazily)."""

    class LocalProvider(litellm.CustomLLM):
        """Each model loaded once on first use; one generation at a time (the CPU is the limit)."""

        def __init__(self) -> None:
            super().__init__()
            self._llamas: dict[str, Any] = {}
            self._grammars: dict[str, Any] = {}
            self._load_lock = threading.Lock()
            self._call_lock = threading.Lock()
            self._queues: weakref.WeakKeyDictionary[Any, asyncio.Lock] = weakref.WeakKeyDictionary()
            self._closing = False

        def _model(self, model: str) -> tuple[Any, LocalModel]:
            m = lookup(model) or lookup(f"{PROVIDER}/{model}")
            with self._load_lock:
                if m is None:
                    raise litellm.BadRequestError(
                        message=f"unknown local model {model}", model=model, llm_provider=PROVIDER
                    )
                if m.name not in self._llamas:
                    problem = missing(m)
                    try:
                        path = None if problem else gguf_path(m)
                    except (PartsError, FileNotFoundError) as exc:
                        problem = f"{exc}: {m.install_hint}"
                    if problem or path is None:
                        # A bad request is not retried and the CLI prints it as one line.
                        raise litellm.BadRequestError(message=problem, model=m.model, llm_provider=PROVIDER)
                    self._llamas[m.name] = load_llama(path, m)
                    if not self._closing:
                        # Free it while llama_cpp is still importable: its __del__ at interpreter
                        # teardown prints an "Exception ignored … TypeError" traceback.
                        atexit.register(self.close)
                        self._closing = True
                return self._llamas[m.name], m

        def close(self) -> None:
            with self._load_lock:
                llamas, self._llamas = list(self._llamas.values()), {}
                self._grammars = {}
            for llama in llamas:
                llama.close()

        def _generate(
            self, model: str, messages: list[dict[str, Any]], params: dict[str, Any], model_response: Any
        ) -> Any:
            llama, m = self._model(model)
            kwargs: dict[str, Any] = {"max_tokens": params.get("max_tokens") or DEFAULT_MAX_TOKENS}
            for name in ("temperature", "top_p", "seed", "stop"):
                if params.get(name) is not None:
                    kwargs[name] = params[name]
            grammar = params.get("grammar")
            shape = None
            if isinstance(grammar, str) and grammar:
                kwargs["grammar"] = self._grammar(grammar)
                shape = next((s for s in SHAPES.values() if s.gbnf() == grammar), None)
            with self._call_lock:
                try:
                    out = llama.create_chat_completion(messages=messages, **kwargs)
                    if shape is not None:
                        out = self._finish_choice(llama, shape, messages, kwargs, out)
                except ValueError as exc:  # llama_cpp's "Requested tokens (…) exceed context window"
                    if "context window" in str(exc):
                        raise litellm.ContextWindowExceededError(
                            message=str(exc), model=m.model, llm_provider=PROVIDER
                        ) from None
                    raise
            return _fill(litellm, model_response, model, out)

        def _grammar(self, text: str) -> Any:
            if text not in self._grammars:
                self._grammars[text] = _grammar(text)
            return self._grammars[text]

        def _finish_choice(
            self, llama: Any, shape: Shape, messages: list[dict[str, Any]], kwargs: dict[str, Any], out: dict[str, Any]
        ) -> dict[str, Any]:
            """A verdict cut off by max_tokens (the analysis ran long) is asked for on its own:
            a few tokens on top of a prompt the model has just read, instead of a lost vote."""
            choice = (out.get("choices") or [{}])[0]
            text = (choice.get("message") or {}).get("content") or ""
            partial = shape.cut_before_choice(text) if choice.get("finish_reason") == "length" else None
            if partial is None:
                return out
            last = shape.parts[-1]
            ask = prompts.render("finish_choice", tag=last.tag, choices=" or ".join(last.choices))
            follow = [*messages, {"role": "assistant", "content": partial}, {"role": "user", "content": ask}]
            extra = {k: kwargs[k] for k in ("temperature", "seed") if k in kwargs}
            more = llama.create_chat_completion(
                messages=follow, grammar=self._grammar(shape.last_part().gbnf()), max_tokens=16, **extra
            )
            added = (more.get("choices") or [{}])[0]
            choice["message"]["content"] = partial + "\n" + ((added.get("message") or {}).get("content") or "")
            choice["finish_reason"] = added.get("finish_reason") or "stop"
            usage, plus = out.setdefault("usage", {}), more.get("usage") or {}
            for key in ("prompt_tokens", "completion_tokens", "total_tokens"):
                usage[key] = int(usage.get(key) or 0) + int(plus.get(key) or 0)
            return out

        def completion(self, model: str, messages: list, *args: Any, **kwargs: Any) -> Any:
            params = kwargs.get("optional_params") or {}
            return self._generate(model, messages, params, kwargs.get("model_response"))

        async def acompletion(self, model: str, messages: list, *args: Any, **kwargs: Any) -> Any:
            params = kwargs.get("optional_params") or {}
            # Queue here, not in a worker thread: a caller that gives up while waiting leaves
            # nothing behind (a running generation cannot be interrupted and finishes anyway).
            async with self._queue():
                return await asyncio.to_thread(self._generate, model, messages, params, kwargs.get("model_response"))

        def _queue(self) -> asyncio.Lock:
            loop = asyncio.get_running_loop()
            lock = self._queues.get(loop)
            if lock is None:
                lock = self._queues[loop] = asyncio.Lock()
            return lock

    return LocalProvider


def _fill(litellm: Any, response: Any, model: str, out: dict[str, Any]) -> Any:
    """A litellm ModelResponse from llama_cpp's OpenAI-shaped dict, usage included."""
    choice = (out.get("choices") or [{}])[0]
    text = (choice.get("message") or {}).get("content") or ""
    usage = out.get("usage") or {}
    if response is None:
        response = litellm.ModelResponse()
    response.id = out.get("id") or f"chatcmpl-local-{uuid.uuid4().hex[:24]}"
    response.created = int(out.get("created") or time.time())
    response.model = model
    response.choices[0].message.content = text
    response.choices[0].finish_reason = choice.get("finish_reason") or "stop"
    prompt, completion = int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0)
    response.usage = litellm.Usage(prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion)
    return response


def register(litellm: Any) -> None:
    """Register the embedded provider with litellm (cheap: models load on first use). Idempotent."""
    entries = [e for e in (litellm.custom_provider_map or []) if e.get("provider") != PROVIDER]
    existing = next((e for e in litellm.custom_provider_map or [] if e.get("provider") == PROVIDER), None)
    handler = existing["custom_handler"] if existing else _handler_class(litellm)()
    litellm.custom_provider_map = [*entries, {"provider": PROVIDER, "custom_handler": handler}]
    # litellm adds custom providers to its provider list on each completion call; do it now so
    # get_llm_provider / validate_environment know the name before the first call.
    from litellm.utils import custom_llm_setup

    custom_llm_setup()
