"""Optimizer strategies, one file each, registered by name."""

from promptopt.engine.strategies import dual_phase, gpo, spo  # noqa: F401
from promptopt.engine.strategies.base import STRATEGIES, Strategy, get_strategy

__all__ = ["STRATEGIES", "Strategy", "get_strategy"]
