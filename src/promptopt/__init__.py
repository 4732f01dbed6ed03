"""promptopt: optimize LLM prompts without labels.

The public Python API (docs/python-api.md)::

    from promptopt import Template, RunConfig, optimize, load_run, compare

Names are imported on first use, so `import promptopt` (and `promptopt --help`) stays fast.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "Template": "promptopt.template",
    "QA": "promptopt.template",
    "load_template": "promptopt.template",
    "RunConfig": "promptopt.config",
    "RoleConfig": "promptopt.config",
    "Events": "promptopt.events",
    "RecordingEvents": "promptopt.events",
    "RunResult": "promptopt.engine.results",
    "RunPlan": "promptopt.engine.results",
    "CompareResult": "promptopt.engine.compare",
    "RoundRecord": "promptopt.records",
    "AnswerRecord": "promptopt.records",
    "PromptoptError": "promptopt.errors",
    "Interrupted": "promptopt.errors",
    "load_config": "promptopt.api",
    "optimize": "promptopt.api",
    "optimize_async": "promptopt.api",
    "start": "promptopt.api",
    "RunHandle": "promptopt.api",
    "estimate": "promptopt.api",
    "load_run": "promptopt.api",
    "Run": "promptopt.api",
    "compare": "promptopt.api",
    "compare_async": "promptopt.api",
    "answer": "promptopt.api",
    "answer_async": "promptopt.api",
    "check_models": "promptopt.api",
    "check_models_async": "promptopt.api",
}

__all__ = [
    "QA",
    "AnswerRecord",
    "CompareResult",
    "Events",
    "Interrupted",
    "PromptoptError",
    "RecordingEvents",
    "RoleConfig",
    "RoundRecord",
    "Run",
    "RunConfig",
    "RunHandle",
    "RunPlan",
    "RunResult",
    "Template",
    "__version__",
    "answer",
    "answer_async",
    "check_models",
    "check_models_async",
    "compare",
    "compare_async",
    "estimate",
    "load_config",
    "load_run",
    "load_template",
    "optimize",
    "optimize_async",
    "start",
]

if TYPE_CHECKING:
    from promptopt.api import (
        Run,
        RunHandle,
        answer,
        answer_async,
        check_models,
        check_models_async,
        compare,
        compare_async,
        estimate,
        load_config,
        load_run,
        optimize,
        optimize_async,
        start,
    )
    from promptopt.config import RoleConfig, RunConfig
    from promptopt.engine.compare import CompareResult
    from promptopt.engine.results import RunPlan, RunResult
    from promptopt.errors import Interrupted, PromptoptError
    from promptopt.events import Events, RecordingEvents
    from promptopt.records import AnswerRecord, RoundRecord
    from promptopt.template import QA, Template, load_template


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'promptopt' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
