"""Pure functions from result models to rich renderables and JSON-ready dicts."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from promptopt.diff import word_diff
from promptopt.records import RoleUsage, RoundRecord, sum_usage
from promptopt.safe import clean, safe_text

if TYPE_CHECKING:
    from promptopt.engine.compare import CompareResult
    from promptopt.engine.estimate import Estimate
    from promptopt.engine.results import RunResult

VERDICT_STYLE = {
    "win": "green",
    "accepted": "green",
    "initial": "cyan",
    "lose": "yellow",
    "rejected": "yellow",
    "failed": "red",
}


def money(value: float, unpriced: bool = False) -> str:
    """'$0.0123'; 'no price' for a zero from models litellm has no price for ('*' when mixed)."""
    if unpriced and value == 0:
        return "no price"
    text = f"${value:.4f}" if value < 1 else f"${value:.2f}"
    return text + ("*" if unpriced else "")


def plural(count: int, noun: str) -> str:
    """'1 question', '3 questions'."""
    return f"{count} {noun}{'' if count == 1 else 's'}"


def diff_text(old: str, new: str) -> Text:
    """Word diff with git's plain markers ([-removed-] {+added+}), coloured on a terminal."""
    text = Text()
    for chunk in word_diff(clean(old), clean(new)):
        if chunk.op == "equal":
            text.append(chunk.text)
            continue
        body = chunk.text.strip()
        if not body:  # a whitespace-only change: show the new layout, unmarked
            text.append(chunk.text if chunk.op == "insert" else "")
            continue
        lead = chunk.text[: len(chunk.text) - len(chunk.text.lstrip())]
        tail = chunk.text[len(chunk.text.rstrip()) :]
        text.append(lead)
        if chunk.op == "insert":
            text.append(f"{{+{body}+}}", style="bold green")
        else:
            text.append(f"[-{body}-]", style="red")
        text.append(tail)
    return text


def verdict_label(record: RoundRecord) -> str:
    if record.verdict:
        return record.verdict
    if record.round == 1:
        return "initial"
    return "win" if record.succeed else "lose"


def round_line(record: RoundRecord, last_round: int | None = None) -> Text:
    """'round 3/10 win ✓✓✓✗ base 2 · 8 calls · $0.0123 · 4.1s · Added an instruction…'"""
    u = record.total_usage
    verdict = verdict_label(record)
    of = f"/{last_round}" if last_round else ""
    line = Text(f"round {record.round}{of} ")
    line.append(verdict, style=VERDICT_STYLE.get(verdict, ""))
    marks = record.vote_marks or (f"score {record.score:.2f}" if record.score is not None else "")
    if marks:
        line.append(f" {marks}")
    if record.base_round:
        line.append(f" base {record.base_round}")
    calls = f"{u.calls} calls" + (f" +{u.cached} cached" if u.cached else "")
    details = [calls, money(record.cost_usd, u.unpriced)]
    if record.duration_s is not None:
        details.append(f"{record.duration_s:.1f}s")
    line.append(" · " + " · ".join(details), style="dim")
    note = " ".join(clean(record.error or record.modification or "").split())
    limit = 240 if record.error else 90  # an error's useful part is often at its end
    if note:
        line.append(
            " · " + (note if len(note) <= limit else note[: limit - 1] + "…"), style="red" if record.error else "italic"
        )
    return line


def usage_table(usage: dict[str, RoleUsage], title: str = "Usage") -> Table:
    table = Table(title=title, title_justify="left", show_edge=False)
    for col in ("role", "calls", "cached", "failed", "prompt tok", "completion tok", "cost"):
        table.add_column(col, justify="left" if col == "role" else "right")
    for role in ("optimizer", "executor", "evaluator"):
        if role in usage:
            u = usage[role]
            table.add_row(
                role,
                str(u.calls),
                str(u.cached),
                str(u.failed),
                f"{u.prompt_tokens:,}",
                f"{u.completion_tokens:,}",
                money(u.cost_usd, u.unpriced),
            )
    t = sum_usage(usage)
    table.add_row(
        "total",
        str(t.calls),
        str(t.cached),
        str(t.failed),
        f"{t.prompt_tokens:,}",
        f"{t.completion_tokens:,}",
        money(t.cost_usd, t.unpriced),
        style="bold",
    )
    return table


def run_summary(result: RunResult) -> RenderableType:
    best, initial = result.best, result.initial
    header = Text()
    header.append(f"{clean(result.name)}: ", style="bold")
    stopped = {
        "completed": "completed",
        "budget": "stopped by budget",
        "deadline": "stopped at the deadline",
        "converged": "stopped early",
    }
    header.append(stopped.get(result.stopped, result.stopped))
    if result.message:
        header.append(f" ({clean(result.message)})", style="yellow")
    header.append(f"; best round {best.round} of {result.records[-1].round}; {result.seconds:.1f}s")
    parts: list[RenderableType] = [header]
    parts.append(Panel(safe_text(best.prompt.strip()), title=f"best prompt (round {best.round})", title_align="left"))
    if best.round != initial.round:
        parts.append(
            Panel(
                diff_text(initial.prompt.strip(), best.prompt.strip()),
                title="diff against the initial prompt",
                title_align="left",
            )
        )
    parts.append(usage_table(result.usage, "This run"))
    for warning in result.warnings:
        parts.append(safe_text(f"warning: {warning}", "yellow"))
    t = sum_usage(result.usage)
    if t.unpriced:
        parts.append(Text("Some models have no price in litellm's table: their cost shows as $0.", style="dim"))
    parts.append(safe_text(f"Workspace: {result.workspace}", style="dim"))
    return Group(*parts)


def run_json(result: RunResult) -> dict[str, Any]:
    t = sum_usage(result.usage)
    return {
        "name": result.name,
        "workspace": str(result.workspace),
        "strategy": result.strategy,
        "stopped": result.stopped,
        "message": result.message,
        "template_changes": result.template_changes,
        "model_changes": result.model_changes,
        "seed": result.seed,
        "warnings": result.warnings,
        "best_round": result.best.round,
        "best_prompt": result.best.prompt,
        "initial_prompt": result.initial.prompt,
        "new_rounds": result.new_rounds,
        "rounds": [round_json(r) for r in result.records],
        "usage": {k: v.model_dump() for k, v in result.usage.items()},
        "calls": t.calls,
        "cached_calls": t.cached,
        "prompt_tokens": t.prompt_tokens,
        "completion_tokens": t.completion_tokens,
        "cost_usd": round(t.cost_usd, 8),
        "unpriced": t.unpriced,
        "seconds": result.seconds,
    }


def round_json(record: RoundRecord) -> dict[str, Any]:
    u = record.total_usage
    return {
        "round": record.round,
        "base_round": record.base_round,
        "verdict": verdict_label(record),
        "succeed": record.succeed,
        "votes": record.vote_marks,
        "wins": record.wins,
        "losses": record.losses,
        "score": record.score,
        "tokens": record.tokens,
        "calls": u.calls,
        "cached_calls": u.cached,
        "cost_usd": round(record.cost_usd, 8),
        "duration_s": record.duration_s,
        "error": record.error,
    }


def models_text(models: dict[str, str]) -> str:
    """'m' when every role used one model, else 'optimizer a, evaluator b, executor c'."""
    if len(set(models.values())) == 1:
        return next(iter(models.values()))
    return ", ".join(f"{role} {model}" for role, model in models.items())


def models_changed(first: dict[str, str], models: dict[str, str]) -> str:
    """The roles whose model differs from the run's first round ('' when none do)."""
    return ", ".join(f"{role} {model}" for role, model in models.items() if first.get(role) != model)


def rounds_table(records: list[RoundRecord], best_round: int | None) -> Table:
    table = Table(show_edge=False, expand=True)
    # A run resumed with other models mixes them: then each round says which it ran with.
    mixed = len({json.dumps(r.models, sort_keys=True) for r in records if r.models}) > 1
    first = next((r.models for r in records if r.models), {})
    for col in ("round", "base", "verdict", "votes", "succeed", "tokens", "cost", *(["models"] if mixed else [])):
        table.add_column(
            col,
            justify="right" if col in ("round", "base", "tokens", "cost") else "left",
            no_wrap=True,
            min_width=len(col),
        )
    table.add_column("prompt", overflow="ellipsis", no_wrap=True, ratio=1)
    for r in records:
        verdict = verdict_label(r)
        mark = " ★" if r.round == best_round else ""
        table.add_row(
            f"{r.round}{mark}",
            str(r.base_round or ""),
            Text(verdict, style=VERDICT_STYLE.get(verdict, "")),
            r.vote_marks or (f"{r.score:.2f}" if r.score is not None else ""),
            "yes" if r.succeed else "no",
            str(r.tokens),
            money(r.cost_usd, r.total_usage.unpriced) if r.usage else "",
            *([safe_text(models_changed(first, r.models))] if mixed else []),
            safe_text(" ".join(r.prompt.split())),
        )
    return table


def round_detail(record: RoundRecord, base: RoundRecord | None) -> RenderableType:
    parts: list[RenderableType] = []
    head = Text(f"Round {record.round}: ", style="bold")
    verdict = verdict_label(record)
    head.append(verdict, style=VERDICT_STYLE.get(verdict, ""))
    if record.votes:
        head.append(f"  votes {record.vote_marks} ({record.wins} for, {record.losses} against)")
    if base:
        head.append(f"  base round {base.round}")
    parts.append(head)
    if record.models:
        parts.append(safe_text(f"models: {models_text(record.models)}", "dim"))
    if record.error:
        parts.append(safe_text(f"error: {record.error}", style="red"))
    if record.modification:
        parts.append(safe_text(f"modification: {record.modification}", style="italic"))
    if not record.prompt.strip():
        parts.append(Text("no candidate prompt was produced in this round", style="dim"))
    elif base is not None:
        parts.append(
            Panel(
                diff_text(base.prompt.strip(), record.prompt.strip()),
                title=f"prompt, diff against round {base.round}",
                title_align="left",
            )
        )
    else:
        parts.append(Panel(safe_text(record.prompt.strip()), title="prompt", title_align="left"))
    state = strategy_state(record)
    if state is not None:
        parts.append(state)
    for i, vote in enumerate(record.votes, 1):
        order = "candidate shown as A" if vote.swapped else "candidate shown as B"
        body = vote.analysis or vote.error or ""
        parts.append(Panel(safe_text(body.strip()), title=f"judge {i} {vote.mark} ({order})", title_align="left"))
    table = Table(title="answers", title_justify="left", show_lines=True)
    table.add_column("question", ratio=1)
    if base is not None:
        table.add_column(f"round {base.round}", ratio=2)
    table.add_column(f"round {record.round}", ratio=2)
    base_answers = {a.question: a for a in (base.answers if base else [])}
    for a in record.answers:
        cells = [a.question.strip()]
        if base is not None:
            b = base_answers.get(a.question)
            cells.append((b.answer if b and b.error is None else f"[failed] {b.error}" if b else "").strip())
        cells.append(a.answer.strip() if a.error is None else f"[failed] {a.error}")
        table.add_row(*(safe_text(cell) for cell in cells))
    if record.answers:
        parts.append(table)
    return Group(*parts)


def strategy_state(record: RoundRecord) -> RenderableType | None:
    """GPO's candidates or Dual-Phase's rewritten sentence and weights, when the round has them."""
    state = record.state or {}
    if isinstance(state.get("candidates"), list):
        title = (
            f"GPO candidates (edit budget {state.get('edit_budget')} words, "
            f"retrieval {state.get('retrieval')}, base score {state.get('base_score')})"
        )
        table = Table(title=safe_text(title), title_justify="left", show_edge=False)
        for col in ("#", "score", "votes", "edits", "accepted", "prompt"):
            table.add_column(col, no_wrap=col != "prompt", overflow="ellipsis")
        for i, c in enumerate(state["candidates"], 1):
            if not isinstance(c, dict):  # results.json is outside input: skip what we did not write
                continue
            table.add_row(
                str(i),
                _number(c.get("score"), ".2f"),
                safe_text(c.get("votes", "")),
                safe_text(c.get("edit_distance", "")),
                "yes" if c.get("accepted") else "",
                safe_text(c.get("error") or " ".join(str(c.get("prompt", "")).split())[:120]),
            )
        return table
    if "old_sentence" in state:
        picked = state.get("picked", 0)
        sentence = int(picked) + 1 if _number(picked, "g").lstrip("-").isdigit() else "?"
        text = Text()
        text.append(
            f"rewrote sentence {sentence} "
            f"(p={_number(state.get('probability', 0), '.2f')}, reward {_number(state.get('reward', 0), '+.2f')})\n"
        )
        text.append(f"- {clean(state.get('old_sentence', ''))}\n", style="red")
        if state.get("new_sentence"):
            text.append(f"+ {clean(state.get('new_sentence'))}\n", style="green")
        weights = state.get("weights")
        weights = weights if isinstance(weights, list) else []
        text.append("weights: " + " ".join(_number(w, ".2f") or "?" for w in weights), style="dim")
        return Panel(text, title="Dual-Phase", title_align="left")
    return None


def _number(value: object, spec: str) -> str:
    """A number from results.json formatted, or '' when it is not one."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return format(value, spec)
    return ""


def estimate_table(est: Estimate) -> RenderableType:
    table = Table(
        title=f"dry run: rounds {est.rounds[0]}–{est.rounds[-1]}" if est.rounds else "dry run: nothing to do",
        title_justify="left",
        show_edge=False,
    )
    for col in ("role", "calls", "prompt tok", "completion tok", "cost"):
        table.add_column(col, justify="left" if col == "role" else "right")
    for role, r in est.roles.items():
        cost = "no price" if r.cost_usd is None else money(r.cost_usd)
        table.add_row(role, str(r.calls), f"~{r.prompt_tokens:,}", f"~{r.completion_tokens:,}", cost)
    total = est.cost_usd
    table.add_row(
        "total",
        str(est.calls),
        f"~{sum(r.prompt_tokens for r in est.roles.values()):,}",
        f"~{sum(r.completion_tokens for r in est.roles.values()):,}",
        "unknown" if total is None else money(total),
        style="bold",
    )
    note = Text("Upper bound: rounds answered from the cache cost nothing; no model was called.", style="dim")
    return Group(table, note)


def compare_table(result: CompareResult) -> RenderableType:
    table = Table(show_edge=False, show_lines=False)
    for col in ("#", "question", "votes", "verdict"):
        table.add_column(
            col, overflow="ellipsis", no_wrap=col == "question", max_width=70 if col == "question" else None
        )
    if result.metric:
        table.add_column("A ok")
        table.add_column("B ok")
    for i, q in enumerate(result.questions, 1):
        style = {"B": "green", "A": "yellow", "tie": "dim"}[q.verdict]
        row: list[str | Text] = [
            str(i),
            safe_text(" ".join(q.question.split())),
            q.marks,
            Text(q.verdict_label, style=style),
        ]
        if result.metric:
            row += ["✓" if q.a_correct else "✗", "✓" if q.b_correct else "✗"]
        table.add_row(*row)
    summary = Text()
    summary.append(
        f"B wins {result.b_wins}, A wins {result.a_wins}, ties {result.ties} of {len(result.questions)} "
        f"questions; B's vote win rate {result.win_rate:.0%}",
        style="bold",
    )
    if result.metric and result.a_accuracy is not None:
        summary.append(f"\naccuracy ({clean(result.metric)}): A {result.a_accuracy:.0%}, B {result.b_accuracy:.0%}")
    summary.append(f"\ncalls {result.calls}, cost {money(result.cost_usd, result.unpriced)}", style="dim")
    return Group(table, summary)
