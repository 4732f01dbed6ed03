"""Tables shared by scenarios: an estimate against what a run spent, and the summary of targets."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from rich.console import Console
from rich.table import Table

from .common import ROLES, pct
from .scenario import Scenario


def compare_estimate(estimate: dict[str, Any], usage: dict[str, Any]) -> dict[str, Any]:
    rows: dict[str, Any] = {}
    for role in (*ROLES, "total"):
        if role == "total":
            est = {
                k: sum(estimate["roles"][r][k] for r in ROLES) for k in ("calls", "prompt_tokens", "completion_tokens")
            }
            real = {
                k: sum(usage.get(r, {}).get(k, 0) for r in ROLES)
                for k in ("calls", "prompt_tokens", "completion_tokens")
            }
        else:
            est = {k: estimate["roles"][role][k] for k in ("calls", "prompt_tokens", "completion_tokens")}
            real = {k: usage.get(role, {}).get(k, 0) for k in ("calls", "prompt_tokens", "completion_tokens")}
        est["tokens"] = est["prompt_tokens"] + est["completion_tokens"]
        real["tokens"] = real["prompt_tokens"] + real["completion_tokens"]
        rows[role] = {k: {"estimate": est[k], "real": real[k], "diff_pct": pct(est[k], real[k])} for k in est}
    total = rows["total"]
    rows["pass"] = all(abs(total[k]["diff_pct"] or 0) <= 10 for k in ("calls", "tokens"))
    return rows


def print_estimate(con: Console, rows: dict[str, Any], title: str) -> None:
    table = Table(title=title + " (estimate / real / diff)", title_justify="left")
    for col in ("role", "calls", "prompt tok", "completion tok", "prompt+completion"):
        table.add_column(col, justify="left" if col == "role" else "right")

    def cell(x: dict[str, Any]) -> str:
        d = x["diff_pct"]
        return f"{x['estimate']:,} / {x['real']:,} / " + ("n/a" if d is None else f"{d:+.1f}%")

    for role in (*ROLES, "total"):
        r = rows[role]
        table.add_row(role, cell(r["calls"]), cell(r["prompt_tokens"]), cell(r["completion_tokens"]), cell(r["tokens"]))
    con.print(table)


def summary(report: dict[str, Any], con: Console, scenarios: Iterable[Scenario]) -> None:
    """One row per target, from each scenario whose figures are in the report."""
    table = Table(
        title=f"targets · commit {report.get('commit')} · {report.get('date')} · {report.get('load_end')}",
        title_justify="left",
    )
    for col in ("target", "measured", "pass"):
        table.add_column(col)

    def mark(ok: bool) -> str:
        return "[green]pass[/green]" if ok else "[red]FAIL[/red]"

    for scenario in scenarios:
        for target, measured, ok in scenario.summary(report) if scenario.summary else []:
            table.add_row(target, measured, mark(ok))
    con.print(table)
