#!/usr/bin/env python
"""Held-out quality benchmark: optimize on SPO's 3 train questions, measure on the test split.

The entry point; the code is in scripts/qualitykit/. `python scripts/quality.py --help` lists the
options; docs/benchmarks.md (Held-out quality) explains the figures.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # qualitykit, also when run by another path

from qualitykit.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
