"""Every scenario by name. The order is that of `--scenario all`, of --help and of the targets table."""

from __future__ import annotations

from . import cli_runs, critical_path, dry_run, dry_run_warm, judging, speculate, startup, wide
from .scenario import Scenario

SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        critical_path.SCENARIO,
        wide.SCENARIO,
        startup.SCENARIO,
        cli_runs.SCENARIO,  # rerun
        dry_run.SCENARIO,
        dry_run_warm.SCENARIO,
        judging.SCENARIO,
        speculate.SCENARIO,
    )
}
