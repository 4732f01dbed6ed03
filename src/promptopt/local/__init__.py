"""Embedded local models (`--model local`, `--model local:qwen2.5-coder-1.5b`) run in-process by llama.cpp.

Cheap to import: no llama_cpp, no litellm, no GGUF until the first call.
"""

from __future__ import annotations

from promptopt.local.registry import (
    GGUF_ENV,
    LOCAL_ALIAS,
    MODELS,
    MODELS_DIR_ENV,
    PROVIDER,
    SMOLLM2,
    LocalModel,
    is_local_name,
    lookup,
    models_dir,
    served_file,
)

LOCAL_MODEL = SMOLLM2.model
INSTALL_HINT = SMOLLM2.install_hint
DEMO_NOTE = SMOLLM2.note

__all__ = [
    "DEMO_NOTE",
    "GGUF_ENV",
    "INSTALL_HINT",
    "LOCAL_ALIAS",
    "LOCAL_MODEL",
    "MODELS",
    "MODELS_DIR_ENV",
    "PROVIDER",
    "LocalModel",
    "default_max_tokens",
    "install_hint",
    "lookup",
    "missing_requirement",
    "models_dir",
    "note",
    "register",
    "resolve_model_alias",
    "served_file",
    "uses_local",
]


def resolve_model_alias(model: str) -> str:
    """'local' / 'local:NAME' → the litellm string of that embedded model; other models unchanged.

    Raises ValueError for a local name we do not know (the config validator makes it one line).
    """
    m = lookup(model)
    if m is not None:
        return m.model
    if is_local_name(model):
        names = ", ".join(f"{LOCAL_ALIAS}:{n}" for n in MODELS)
        raise ValueError(f"unknown local model '{model.strip()}' (choose from {LOCAL_ALIAS}, {names})")
    return model


def uses_local(models: list[str]) -> bool:
    """Whether any of these litellm model strings is an embedded model."""
    return any(m.startswith(f"{PROVIDER}/") for m in models)


def missing_requirement(model: str = LOCAL_MODEL) -> str | None:
    """A one-line reason this embedded model cannot run here, or None when it can."""
    from promptopt.local.registry import missing

    m = lookup(model)
    return missing(m) if m is not None else f"unknown local model {model}"


def install_hint(model: str) -> str:
    m = lookup(model)
    return m.install_hint if m is not None else INSTALL_HINT


def note(models: list[str]) -> str | None:
    """What to expect of the embedded models among these (one line each), or None."""
    notes = [m.note for name in dict.fromkeys(models) if (m := lookup(name)) is not None]
    return " ".join(notes) or None


def default_max_tokens(model: str, role: str) -> int | None:
    """The embedded model's reply cap for this role (None for other models)."""
    m = lookup(model)
    return m.max_tokens.get(role) if m is not None else None


def register(litellm: object) -> None:
    """Register the embedded provider with litellm (cheap: models load on first use)."""
    from promptopt.local.provider import register as _register

    _register(litellm)
