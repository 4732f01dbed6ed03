"""The embedded demo model (`--model local`): SmolLM2 in-process through llama-cpp-python.

Placeholder: the full provider is being written; see docs/local-models.md.
"""

from __future__ import annotations

from typing import Any

LOCAL_ALIAS = "local"
LOCAL_MODEL = "promptopt-local/smollm2"


def resolve_model_alias(model: str) -> str:
    """'local' → the litellm model string of the embedded provider; anything else unchanged."""
    return LOCAL_MODEL if model.strip().lower() == LOCAL_ALIAS else model


def register(litellm: Any) -> None:
    """Register the embedded provider with litellm (cheap: the model loads on first use)."""
