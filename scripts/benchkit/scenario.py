"""What a scenario is: a name, a function that measures and fills the report, its options and rows.

A new scenario is one module that defines `SCENARIO = Scenario(...)`, listed in registry.py.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console

SummaryRow = tuple[str, str, bool]  # target, measured, passed


@dataclass
class Context:
    """What every scenario gets: the parsed options, the temporary root, the env for subprocesses,
    the console for tables, the JSON report to fill, and the names of the scenarios of this run."""

    args: argparse.Namespace
    root: Path
    env: dict[str, str]
    con: Console
    report: dict[str, Any]
    selected: tuple[str, ...]


@dataclass(frozen=True)
class Scenario:
    name: str  # the value of --scenario
    about: str  # one line for --help
    run: Callable[[Context], None]
    options: Callable[[argparse.ArgumentParser], None] | None = None  # adds its own --flags
    summary: Callable[[dict[str, Any]], list[SummaryRow]] | None = None  # its rows of the targets table
    warm_litellm: bool = False  # litellm imported (and timed) once before the first scenario runs
    counts: tuple[str, ...] = ()  # its options (argparse dests) that must be ≥ 1
    latencies: tuple[str, ...] = ()  # its options that must be ≥ 0
