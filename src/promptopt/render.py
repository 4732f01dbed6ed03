"""Pure functions from result models to rich renderables and JSON-ready dicts."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from promptopt.diff import word_diff
from promptopt.records import VOTE_LEGEND, GateRecord, RoleUsage, RoundRecord, VoteRecord, sum_usage
from promptopt.safe import clean, safe_text

if TYPE_CHECKING:
    from promptopt.engine.compare import CompareResult
    from promptopt.engine.estimate import Estimate
    from promptopt.engine.results import RunResult, SpeculationStats

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
    if record.decision:  # how strong the decision was: "2 pairs to 0, p=0.25"
        line.append(safe_text(f" ({record.decision})"))
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


def judge_line(groups: list[list[VoteRecord]]) -> str:
    """'judge: orders agree in 5 of 6 pairs (83%), chose A in 48% of votes, 1 abstained' (over comparisons)."""
    from promptopt.engine.diagnostics import combined

    st = combined(groups)
    parts = []
    if st.pairs and st.consistency is not None:
        parts.append(f"orders agree in {st.consistent} of {st.pairs} pairs ({st.consistency:.0%})")
    if st.share_a is not None:
        parts.append(f"chose A in {st.share_a:.0%} of votes")
    if st.abstained:
        parts.append(f"{st.abstained} abstained")
    return "judge: " + (", ".join(parts) or "no valid vote")


def gate_line(gate: GateRecord | None, best: RoundRecord, confirmed: RoundRecord) -> Text:
    """'confirmed: 9 pairs to 1 over 3 questions (p 0.011, bar 0.035)' or why not, and what --best prints."""
    if gate is None:
        return Text("not confirmed yet: the run stopped before the confirmation gate", style="yellow")
    style = {"confirmed": "green", "not confirmed": "yellow"}.get(gate.outcome, "dim")
    text = Text()
    if gate.outcome == "not needed":
        text.append("no better prompt found: round 1 (your prompt) is the best", style=style)
        return text
    if gate.outcome == "skipped":
        text.append(f"round {best.round} not checked against your prompt (--no-confirm)", style=style)
        return text
    text.append(f"{gate.outcome}: ", style=f"bold {style}")
    text.append(safe_text(f"round {best.round} vs your prompt, {gate.reason}"))
    if confirmed.round != best.round:
        text.append(f"; show --best prints round {confirmed.round}, your own prompt", style=style)
    return text


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
    best, initial = result.confirmed, result.initial
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
    parts: list[RenderableType] = [header, gate_line(result.gate, result.best, best)]
    if any(r.votes for r in result.records):
        parts.append(Text(judge_line([r.votes for r in result.records]), style="dim"))
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
    if result.speculation is not None:
        parts.append(Text(speculation_line(result.speculation), style="dim"))
    for warning in result.warnings:
        parts.append(safe_text(f"warning: {warning}", "yellow"))
    t = sum_usage(result.usage)
    if t.unpriced:
        parts.append(Text("Some models have no price in litellm's table: their cost shows as $0.", style="dim"))
    parts.append(safe_text(f"Workspace: {result.workspace}", style="dim"))
    return Group(*parts)


def speculation_line(stats: SpeculationStats) -> str:
    """'speculative calls: 8 used, 8 wasted ($0.0012, counted above)'."""
    wasted = f" ({money(stats.wasted_cost_usd)}, counted above)" if stats.wasted else ""
    return f"speculative calls: {stats.used} used, {stats.wasted} wasted{wasted}"


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
        "best_round": result.confirmed.round,
        "best_prompt": result.confirmed.prompt,
        "candidate_round": result.best.round,
        "confirmed": result.gate.confirmed if result.gate else None,
        "gate": gate_json(result.gate),
        "judge": judge_json([r.votes for r in result.records]),
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
        "speculation": (
            {
                "used": result.speculation.used,
                "wasted": result.speculation.wasted,
                "wasted_cost_usd": round(result.speculation.wasted_cost_usd, 8),
            }
            if result.speculation is not None
            else None
        ),
    }


def judge_json(groups: list[list[VoteRecord]]) -> dict[str, Any] | None:
    """The judge's diagnostics as data: votes, abstentions, share of A, pairs and order consistency."""
    from promptopt.engine.diagnostics import combined

    return combined(groups).as_dict() if any(groups) else None


def gate_json(gate: GateRecord | None) -> dict[str, Any] | None:
    if gate is None:
        return None
    return gate.model_dump(mode="json", exclude={"votes"}, exclude_none=True)


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
        "decision": record.decision,
        "judge": judge_json([record.votes]),
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


def rounds_table(records: list[RoundRecord], best_round: int | None, candidate: int | None = None) -> Table:
    """One row per round; ★ marks the best (confirmed) round, ☆ a better candidate not confirmed."""
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
        mark = " ★" if r.round == best_round else " ☆" if r.round == candidate else ""
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
    if record.decision:
        parts.append(safe_text(f"decision: {record.decision}"))
    if record.votes:
        parts.append(Text(f"{judge_line([record.votes])}\n{VOTE_LEGEND}", style="dim"))
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
        pair = f"pair {vote.pair + 1}, " if vote.pair is not None else ""
        body = vote.analysis or vote.error or ""
        title = f"judge {i} {vote.mark} ({pair}{order})"
        parts.append(Panel(safe_text(body.strip()), title=title, title_align="left"))
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
    """The round's strategy state as its strategy describes it (GPO's candidates, Dual-Phase's rewrite)."""
    from promptopt.engine.strategies.base import STRATEGIES, get_strategy
    from promptopt.errors import ConfigError

    try:
        cls = get_strategy(record.strategy) if record.strategy else None
    except ConfigError:  # a strategy this version does not have: nothing to say
        cls = None
    views = [cls.describe_state(record)] if cls else [s.describe_state(record) for s in STRATEGIES.values()]
    view = next((v for v in views if v is not None), None)
    if view is None:
        return None
    if view.rows:
        table = Table(title=safe_text(view.title), title_justify="left", show_edge=False)
        for col in view.columns:
            table.add_column(col, no_wrap=col != view.columns[-1], overflow="ellipsis")
        for row in view.rows:
            table.add_row(*(safe_text(cell) for cell in row))
        return table
    styles = {"added": "green", "removed": "red", "dim": "dim", "": ""}
    text = Text()
    for i, (line, style) in enumerate(view.lines):
        text.append(clean(line) + ("\n" if i < len(view.lines) - 1 else ""), style=styles.get(style, ""))
    return Panel(text, title=safe_text(view.title), title_align="left")


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
    for col in ("role", "calls", "at most", "prompt tok", "completion tok", "cost", "at most"):
        table.add_column(col, justify="left" if col == "role" else "right")

    def cost(value: float | None) -> str:
        return "no price" if value is None else money(value)

    for role, r in est.roles.items():
        table.add_row(
            role,
            str(r.calls),
            str(r.worst_calls),
            f"~{r.prompt_tokens:,}",
            f"~{r.completion_tokens:,}",
            cost(r.cost_usd),
            cost(r.worst_cost_usd),
        )
    table.add_row(
        "total",
        str(est.calls),
        str(est.worst_calls),
        f"~{sum(r.prompt_tokens for r in est.roles.values()):,}",
        f"~{sum(r.completion_tokens for r in est.roles.values()):,}",
        "unknown" if est.cost_usd is None else money(est.cost_usd),
        "unknown" if est.worst_cost_usd is None else money(est.worst_cost_usd),
        style="bold",
    )
    notes = [
        "No model was called. Rounds answered from the cache cost nothing.",
        "Judge calls: the expected count for a judge that cannot tell the prompts apart (a decisive judge "
        "stops sooner); 'at most' is every pair adaptive judging may ask for"
        + (", the confirmation gate included." if est.confirm else "."),
    ]
    if est.speculative_calls:
        extra = "no price" if est.speculative_cost_usd is None else f"~{money(est.speculative_cost_usd)}"
        notes.append(
            f"--speculate: {plural(est.speculative_calls, 'optimizer call')} written ahead for the verdict a round "
            f"does not get ({extra}; counted above)."
        )
    if est.guessed:
        notes.append("Reply lengths are guessed (no earlier rounds or cached replies of these models yet).")
    return Group(table, Text("\n".join(notes), style="dim"))


def compare_header(result: CompareResult, source: str) -> Text:
    """What A and B are and what they are judged on."""
    text = Text()
    text.append("A: ", style="bold")
    text.append(safe_text(result.a_label))
    text.append("   B: ", style="bold")
    text.append(safe_text(result.b_label))
    votes = len(result.questions[0].votes) if result.questions else 0
    text.append(safe_text(f"\n{plural(len(result.questions), 'question')} from {source}, {votes} judge votes each"))
    return text


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
    t = result.pairs
    low, high = result.win_rate_ci
    verdict_style = {"B better": "bold green", "A better": "bold yellow"}.get(result.verdict, "bold")
    summary = Text()
    summary.append(f"{result.verdict}", style=verdict_style)
    summary.append(f" at alpha {result.alpha:g}, decided by the {result.decided_by}")
    summary.append(
        f"\njudge: B won {t.wins} pairs, A {t.losses}, {t.ties} tied (over {t.pairs} pairs, both orders each); "
        f"B's win rate {result.win_rate:.0%} (95% CI {low:.0%}–{high:.0%}), p {result.p_value:.3g} (two-sided, "
        f"over pairs)"
    )
    if result.metric and result.a_accuracy is not None and result.b_accuracy is not None:
        ci_a, ci_b = result.accuracy_ci("a") or (0.0, 1.0), result.accuracy_ci("b") or (0.0, 1.0)
        only_a, only_b = result.discordant
        summary.append(
            safe_text(
                f"\naccuracy ({result.metric}): A {result.a_accuracy:.0%} ({ci_a[0]:.0%}–{ci_a[1]:.0%}), "
                f"B {result.b_accuracy:.0%} ({ci_b[0]:.0%}–{ci_b[1]:.0%}); "
                f"only A right on {only_a}, only B on {only_b}: McNemar p {result.mcnemar_p:.3g}"
            )
        )
    summary.append(f"\nper question: B {result.b_wins}, A {result.a_wins}, tie {result.ties}", style="dim")
    summary.append(
        f"\n{VOTE_LEGEND.replace('candidate', 'B').replace('the base (the best prompt so far)', 'A')}", style="dim"
    )
    seed = f", seed {result.seed}" if result.seed is not None else ""
    summary.append(f"\ncalls {result.calls}, cost {money(result.cost_usd, result.unpriced)}{seed}", style="dim")
    return Group(table, summary)
