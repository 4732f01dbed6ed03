"""scripts/local_eval.py: a recorded optimize run on the stub, as the benchmark figures are made."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "local_eval.py"
if not SCRIPT.is_file():  # an sdist ships tests/ without scripts/
    pytest.skip("scripts/local_eval.py is not in this tree", allow_module_level=True)


def test_a_recorded_run_reports_rounds_roles_and_a_summary(stub: Any, tmp_path: Path) -> None:
    env = {**os.environ, "PROMPTOPT_API_BASE": stub.url, "OPENAI_API_KEY": "sk-stub", "HOME": str(tmp_path)}
    out = tmp_path / "eval.jsonl"
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--model", "openai/stub", "--rounds", "2", "--seeds", "0", "--out", str(out)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    run, total = (json.loads(line) for line in out.read_text(encoding="utf-8").splitlines())
    assert [r["round"] for r in run["rounds"]] == [1, 2]
    assert run["roles"]["executor"]["calls"] >= 6  # two prompts on three questions at least
    assert run["roles"]["evaluator"]["calls"] >= 4
    assert total["summary"]["runs"] == 1 and total["summary"]["rounds_after_1"] == 1
