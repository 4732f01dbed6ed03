#!/usr/bin/env python
"""Benchmark promptopt against a local OpenAI-compatible stub through the real litellm client.

The entry point: the scenarios live in scripts/benchkit/, one module each (registry.py lists them).
`python scripts/bench.py --help` lists the scenarios and options; docs/benchmarks.md explains the figures.
"""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchkit, also when run by another path

from benchkit.cli import main

if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        raise SystemExit(main())
