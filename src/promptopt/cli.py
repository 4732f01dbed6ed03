"""The `promptopt` command: parse flags into a config, call the engine, render the result."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import typer
from rich.console import Console

from promptopt import __version__
from promptopt.errors import ExitCode, Interrupted, PromptoptError

T = TypeVar("T")

app = typer.Typer(
    name="promptopt",
    help="Optimize LLM prompts without labels (SPO, GPO, Dual-Phase) over any litellm model.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
)
cache_app = typer.Typer(help="Inspect or clear the response cache.", no_args_is_help=True)
app.add_typer(cache_app, name="cache")


def _out() -> Console:
    return Console(soft_wrap=False)


def _err() -> Console:
    return Console(stderr=True)


def fail(error: PromptoptError | str, code: int = ExitCode.USAGE) -> NoReturn:
    """One line per problem on stderr, then the error's exit code; PROMPTOPT_DEBUG=1 re-raises."""
    from promptopt.safe import clean
    from promptopt.secrets import redact

    lines = clean(redact(str(error))).splitlines() or ["error"]
    if isinstance(error, PromptoptError):
        from promptopt.config import env_flag

        try:
            debug = env_flag(os.environ, "PROMPTOPT_DEBUG")
        except PromptoptError as bad:
            debug, lines = False, [*lines, clean(str(bad))]
        if debug:
            raise error
        code = error.exit_code
    for line in lines:
        print(f"promptopt: error: {line}", file=sys.stderr)
    raise typer.Exit(code)


def run_async(factory: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run the engine; SIGINT/SIGTERM cancel it cleanly (completed rounds are already on disk)."""
    import asyncio
    import signal

    received: list[int] = []

    async def main() -> T:
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        assert task is not None

        def stop(signum: int) -> None:
            if not received:
                received.append(signum)
                task.cancel()

        for signum in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(signum, stop, signum)
            except (NotImplementedError, RuntimeError):  # pragma: no cover - not the main thread
                pass
        return await factory()

    try:
        return asyncio.run(main())
    except asyncio.CancelledError:
        signum = received[0] if received else signal.SIGINT
        raise Interrupted("interrupted: completed rounds are saved; rerun the same command to resume", signum) from None
    except KeyboardInterrupt:
        raise Interrupted("interrupted: completed rounds are saved; rerun the same command to resume") from None


def guarded(fn: Callable[[], T]) -> T:
    try:
        return fn()
    except PromptoptError as exc:
        fail(exc)


# --- optimize -------------------------------------------------------------------------------

Model = Annotated[str | None, typer.Option("--model", "-m", help="litellm model for all three roles.")]
OptModel = Annotated[str | None, typer.Option("--opt-model", help="Optimizer model (writes candidates).")]
OptTemp = Annotated[float | None, typer.Option("--opt-temp", help="Optimizer temperature [default 0.7].")]
EvalModel = Annotated[str | None, typer.Option("--eval-model", help="Evaluator (judge) model.")]
EvalTemp = Annotated[float | None, typer.Option("--eval-temp", help="Evaluator temperature [default 0.3].")]
ExecModel = Annotated[str | None, typer.Option("--exec-model", help="Executor model (answers questions).")]
ExecTemp = Annotated[float | None, typer.Option("--exec-temp", help="Executor temperature [default 0].")]
ApiBase = Annotated[str | None, typer.Option("--api-base", help="Base URL for all roles (a local server).")]
Votes = Annotated[int | None, typer.Option("--votes", help="Judge votes per comparison, half A/B-swapped [4].")]
Concurrency = Annotated[int | None, typer.Option("--concurrency", "-j", help="Model calls in flight [8].")]
Timeout = Annotated[float | None, typer.Option("--timeout", help="Seconds per model call [120].")]
NoCache = Annotated[bool, typer.Option("--no-cache", help="Neither read nor write the response cache.")]
Deadline = Annotated[
    str | None, typer.Option("--deadline", help="Wall time for the whole run: seconds, or 90s, 10m, 1h [none].")
]
MaxErrors = Annotated[
    int | None, typer.Option("--max-errors", help="Stop (exit 1) after this many failed calls in a row; 0 never [10].")
]
MaxReplyChars = Annotated[
    int | None, typer.Option("--max-reply-chars", help="Longer replies are failed calls, never stored [100000].")
]
Seed = Annotated[int | None, typer.Option("--seed", help="Seed of sampled calls and strategies [random, stored].")]
Alpha = Annotated[
    float | None, typer.Option("--alpha", help="Error rate of the confirmation gate and compare's verdict [0.05].")
]
JsonOut = Annotated[bool, typer.Option("--json", help="Print a JSON summary on stdout.")]
Structured = Annotated[
    str | None,
    typer.Option(
        "--structured",
        help="Hold optimizer and judge replies to their shape: auto | on | off [auto: where the model supports it].",
    ),
]


def _flags(**values: Any) -> dict[str, Any]:
    flags = {k: v for k, v in values.items() if v is not None}
    if flags.pop("no_cache", False):
        flags["cache"] = False
    return flags


def _build_config(flags: dict[str, Any]) -> Any:
    """The run config; warns (even with --quiet) when a config file here sends calls elsewhere."""
    from promptopt.api import load_config
    from promptopt.config import endpoint_warnings

    config = load_config(**flags)
    for warning in endpoint_warnings(config):
        _err().print(f"warning: {warning}", style="yellow", markup=False, highlight=False)
    return config


def _demo_note(console: Console, config: Any, quiet: bool) -> None:
    from promptopt.config import ROLES
    from promptopt.local import note

    text = note([config.role(r).model for r in ROLES])
    if not quiet and text:
        console.print(f"note: {text}", style="yellow", markup=False)


@app.command()
def optimize(
    template: Annotated[str, typer.Option("--template", "-t", help="Template file, or a name found here or bundled.")],
    name: Annotated[str | None, typer.Option("--name", "-n", help="Run name [template file name].")] = None,
    workspace: Annotated[Path | None, typer.Option("--workspace", "-w", help="Workspace folder [workspace].")] = None,
    model: Model = None,
    opt_model: OptModel = None,
    opt_temp: OptTemp = None,
    eval_model: EvalModel = None,
    eval_temp: EvalTemp = None,
    exec_model: ExecModel = None,
    exec_temp: ExecTemp = None,
    api_base: ApiBase = None,
    initial_round: Annotated[int | None, typer.Option("--initial-round", help="Restart after this round.")] = None,
    max_rounds: Annotated[int | None, typer.Option("--max-rounds", "-r", help="Last round number [10].")] = None,
    strategy: Annotated[str | None, typer.Option("--strategy", "-s", help="spo | gpo | dual-phase [spo].")] = None,
    option: Annotated[
        list[str] | None,
        typer.Option("--option", "-o", help="A strategy option, NAME=VALUE (repeatable), e.g. eta=0.3."),
    ] = None,
    votes: Votes = None,
    max_votes: Annotated[
        int | None, typer.Option("--max-votes", help="Judge votes at most per comparison, added in pairs [12].")
    ] = None,
    accept: Annotated[
        str | None, typer.Option("--accept", help="paired (sign test, adaptive) | majority (SPO's rule) [paired].")
    ] = None,
    alpha: Alpha = None,
    holdout: Annotated[
        Path | None, typer.Option("--holdout", help="Held-out questions (YAML/JSON/JSONL) for the confirmation gate.")
    ] = None,
    no_confirm: Annotated[
        bool, typer.Option("--no-confirm", help="Skip the confirmation gate (best vs your prompt).")
    ] = False,
    fail_unless_improved: Annotated[
        bool, typer.Option("--fail-unless-improved", help="Exit 4 unless a better prompt was confirmed.")
    ] = False,
    concurrency: Concurrency = None,
    timeout: Timeout = None,
    max_attempts: Annotated[
        int | None, typer.Option("--max-attempts", help="Tries per call on transient faults [5].")
    ] = None,
    budget_usd: Annotated[float | None, typer.Option("--budget-usd", help="Stop before spending more.")] = None,
    max_calls: Annotated[int | None, typer.Option("--max-calls", help="Stop before more paid calls.")] = None,
    deadline: Deadline = None,
    max_errors: MaxErrors = None,
    max_reply_chars: MaxReplyChars = None,
    seed: Seed = None,
    retrieval: Annotated[str | None, typer.Option("--retrieval", help="GPO: recency | relevance | importance.")] = None,
    top_k: Annotated[int | None, typer.Option("--top-k", help="GPO: past prompts retrieved per step [3].")] = None,
    edit_budget: Annotated[
        str | None, typer.Option("--edit-budget", help="GPO: words changed, start:end [50:10].")
    ] = None,
    candidates: Annotated[int | None, typer.Option("--candidates", help="GPO: candidates per step [2].")] = None,
    structured: Structured = None,
    no_cache: NoCache = False,
    speculate: Annotated[
        bool,
        typer.Option(
            "--speculate", help="Write the next round's candidate ahead, for both verdicts (SPO, Dual-Phase)."
        ),
    ] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print projected calls, tokens, cost; call nothing.")
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress or round lines.")] = False,
    json_out: JsonOut = False,
) -> None:
    """Run the optimization loop (resumes an existing workspace after its last round).

    Each round prints one line: its verdict, its judge votes (✓ for the candidate, ✗ for the base,
    · abstained; in pairs, the second of each showing the candidate first), the decision's strength,
    the base round, calls, cost and time. The summary says whether the best prompt was confirmed
    against yours.
    """
    flags = _flags(
        name=name,
        workspace=workspace,
        model=model,
        opt_model=opt_model,
        opt_temp=opt_temp,
        eval_model=eval_model,
        eval_temp=eval_temp,
        exec_model=exec_model,
        exec_temp=exec_temp,
        api_base=api_base,
        initial_round=initial_round,
        max_rounds=max_rounds,
        strategy=strategy,
        votes=votes,
        max_votes=max_votes,
        accept=accept,
        alpha=alpha,
        holdout=holdout,
        confirm=False if no_confirm else None,
        concurrency=concurrency,
        timeout=timeout,
        max_attempts=max_attempts,
        budget_usd=budget_usd,
        max_calls=max_calls,
        deadline=deadline,
        max_errors=max_errors,
        max_reply_chars=max_reply_chars,
        seed=seed,
        structured=structured,
        no_cache=no_cache,
        speculate=True if speculate else None,
    )
    # GPO's flags from before are names for options; --option NAME=VALUE sets any strategy's.
    aliases = {"retrieval": retrieval, "top_k": top_k, "edit_budget": edit_budget, "candidates": candidates}

    def go() -> None:
        options = {**strategy_options(option or []), **{k: v for k, v in aliases.items() if v is not None}}
        if options:
            flags["strategy_options"] = options
        _optimize(template, flags, dry_run=dry_run, quiet=quiet, json_out=json_out, fail=fail_unless_improved)

    guarded(go)


def strategy_options(items: list[str]) -> dict[str, str]:
    """--option NAME=VALUE pairs; the strategy's options model checks names and values."""
    from promptopt.errors import ConfigError

    options = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise ConfigError(f"--option {item}: expected NAME=VALUE, e.g. --option eta=0.3")
        options[name.strip().replace("-", "_")] = value.strip()
    return options


def _optimize(
    template_ref: str, flags: dict[str, Any], *, dry_run: bool, quiet: bool, json_out: bool, fail: bool = False
) -> None:
    from promptopt.api import optimize_async, prepare_run
    from promptopt.render import run_json, run_summary

    template, config, _ = prepare_run(template_ref, _build_config(flags))
    err = _err()
    for warning in _template_warnings(template, config):  # before anything is spent, even with --quiet
        err.print(f"warning: {warning}", style="yellow", markup=False, highlight=False)
    if dry_run:
        return _dry_run(template, config, json_out)
    _demo_note(err, config, quiet)
    events = _cli_events(err, quiet, config)
    try:
        with events:
            result = run_async(lambda: optimize_async(template, config, events=events))
    except Interrupted as exc:
        if not quiet:
            err.print(str(exc), style="yellow", markup=False, highlight=False)
        raise typer.Exit(exc.exit_code) from None
    if json_out:
        from promptopt.config import config_files
        from promptopt.safe import json_dumps

        print(json_dumps({**run_json(result), "config_files": [str(p) for p in config_files()]}, indent=2))
    else:
        _out().print(run_summary(result))
    if result.stopped in ("budget", "deadline"):
        raise typer.Exit(ExitCode.BUDGET)
    if fail and result.confirmed.round == result.initial.round:
        raise typer.Exit(ExitCode.WORSE)


def _template_warnings(template: Any, config: Any) -> list[str]:
    """init's placeholders left in the template; prompts too large for a model's context window."""
    from promptopt.engine.estimate import context_warnings
    from promptopt.template import parse_template

    skeleton = parse_template(SKELETON.format(file="template.yaml"))
    warnings = []
    if {q.question.strip() for q in skeleton.qa} & {q.question.strip() for q in template.qa} or (
        template.requirements.strip() == skeleton.requirements.strip()
    ):
        warnings.append(
            f"{config.name}: the template still holds `promptopt init`'s placeholder question or requirements; "
            "replace them with your own before paying for a run"
        )
    return warnings + context_warnings(template, config)


def _dry_run(template: Any, config: Any, json_out: bool) -> None:
    from promptopt.api import estimate
    from promptopt.render import estimate_table

    est = estimate(template, config)
    if json_out:
        print(
            json.dumps(
                {
                    "rounds": est.rounds,
                    "calls": est.calls,
                    "worst_calls": est.worst_calls,
                    "cost_usd": est.cost_usd,
                    "worst_cost_usd": est.worst_cost_usd,
                    "lengths_guessed": est.guessed,
                    "confirm": est.confirm,
                    "speculative_calls": est.speculative_calls,
                    "speculative_cost_usd": est.speculative_cost_usd,
                    "roles": {k: vars(v) for k, v in est.roles.items()},
                },
                indent=2,
            )
        )
    else:
        _out().print(estimate_table(est))


def _cli_events(console: Console, quiet: bool, config: Any, label: str | None = None) -> Any:
    from promptopt.config import config_files
    from promptopt.progress import CliEvents

    return CliEvents(console, quiet=quiet, last_round=config.max_rounds, config_files=config_files(), label=label)


# --- show -----------------------------------------------------------------------------------


@app.command()
def show(
    path: Annotated[str, typer.Argument(help="WORKSPACE/NAME, e.g. workspace/Poem.")],
    round_: Annotated[int | None, typer.Option("--round", help="Detail of one round: diff, judge, answers.")] = None,
    best: Annotated[bool, typer.Option("--best", help="Print only the best prompt (pipe-able).")] = False,
    json_out: JsonOut = False,
) -> None:
    """Show the rounds of a run (also reads workspaces written by MetaGPT's SPO)."""
    guarded(lambda: _show(path, round_, best, json_out))


def _show(path: str, round_number: int | None, best_only: bool, json_out: bool) -> None:
    from rich.text import Text

    from promptopt.api import load_run
    from promptopt.records import VOTE_LEGEND
    from promptopt.render import (
        gate_json,
        gate_line,
        judge_json,
        judge_line,
        plural,
        round_detail,
        round_json,
        rounds_table,
    )
    from promptopt.safe import clean, json_dumps, safe_text

    run = load_run(path)
    best = run.confirmed  # the best prompt once confirmed, else the user's own
    if best_only:  # exact text for a pipe; no terminal control on a terminal
        text = best.prompt if best.prompt.endswith("\n") else best.prompt + "\n"
        sys.stdout.write(clean(text) if sys.stdout.isatty() else text)
        return
    if round_number is not None:
        record = run.round(round_number)
        if json_out:
            print(json_dumps(record.model_dump(mode="json"), indent=2))
            return
        _out().print(round_detail(record, run.base_of(record)))
        return
    if json_out:
        print(
            json_dumps(
                {
                    "name": run.name,
                    "workspace": str(run.path),
                    "best_round": best.round,
                    "best_prompt": best.prompt,
                    "candidate_round": run.best.round,
                    "confirmed": run.gate.confirmed if run.gate else None,
                    "gate": gate_json(run.gate),
                    "judge": judge_json([r.votes for r in run.records]),
                    "rounds": [round_json(r) for r in run.records],
                },
                indent=2,
            )
        )
        return
    out = _out()
    header = safe_text(run.name, "bold")
    header.append(f" — {plural(len(run.records), 'round')}, best round {best.round}")
    out.print(header)
    if run.best.round != run.records[0].round:
        out.print(gate_line(run.gate, run.best, best) if run.gate else Text("not confirmed yet", style="yellow"))
    out.print(rounds_table(run.records, best.round, run.best.round))
    if any(r.votes for r in run.records):
        out.print(Text(f"{judge_line([r.votes for r in run.records])}\n{VOTE_LEGEND}", style="dim"))


# --- compare --------------------------------------------------------------------------------


@app.command()
def compare(
    a: Annotated[str, typer.Argument(help="Prompt A: WORKSPACE/NAME:ROUND, a file, or a string.")],
    b: Annotated[str, typer.Argument(help="Prompt B, the same forms.")],
    template: Annotated[str | None, typer.Option("--template", "-t", help="Questions and requirements.")] = None,
    questions: Annotated[Path | None, typer.Option("--questions", help="Questions file (YAML, JSON or JSONL).")] = None,
    votes: Annotated[int, typer.Option("--votes", help="Judge votes per question, balanced swaps.")] = 2,
    model: Model = None,
    eval_model: EvalModel = None,
    eval_temp: EvalTemp = None,
    exec_model: ExecModel = None,
    exec_temp: ExecTemp = None,
    api_base: ApiBase = None,
    concurrency: Concurrency = None,
    timeout: Timeout = None,
    deadline: Deadline = None,
    max_errors: MaxErrors = None,
    max_reply_chars: MaxReplyChars = None,
    seed: Seed = None,
    alpha: Alpha = None,
    structured: Structured = None,
    no_cache: NoCache = False,
    fail_if_worse: Annotated[
        bool, typer.Option("--fail-if-worse", help="Exit 4 when A is significantly better than B.")
    ] = False,
    fail_unless_better: Annotated[
        bool, typer.Option("--fail-unless-better", help="Exit 4 unless B is significantly better than A.")
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No header or progress.")] = False,
    json_out: JsonOut = False,
) -> None:
    """Run prompts A and B on the same questions and judge them pairwise, question by question."""
    flags = _flags(
        model=model,
        eval_model=eval_model,
        eval_temp=eval_temp,
        exec_model=exec_model,
        exec_temp=exec_temp,
        api_base=api_base,
        concurrency=concurrency,
        timeout=timeout,
        deadline=deadline,
        max_errors=max_errors,
        max_reply_chars=max_reply_chars,
        seed=seed,
        alpha=alpha,
        structured=structured,
        no_cache=no_cache,
    )
    gates = (fail_if_worse, fail_unless_better)
    guarded(lambda: _compare(a, b, template, questions, votes, flags, gates, quiet, json_out))


def _compare(
    a: str,
    b: str,
    template_ref: str | None,
    questions_file: Path | None,
    votes: int,
    flags: dict[str, Any],
    gates: tuple[bool, bool],
    quiet: bool,
    json_out: bool,
) -> None:
    from promptopt.api import compare_async
    from promptopt.questions import load_questions, resolve_prompt_labelled
    from promptopt.render import compare_header, compare_table

    prompt_a, tmpl_a, label_a = resolve_prompt_labelled(a)
    prompt_b, tmpl_b, label_b = resolve_prompt_labelled(b)
    template, source = None, "the runs' template"
    if template_ref:
        from promptopt.template import load_template

        template, path = load_template(template_ref)
        source = path.name
    template = template or tmpl_a or tmpl_b
    qs, golden = load_questions(questions_file) if questions_file is not None else (None, None)
    if questions_file is not None:
        source = questions_file.name
    config = _build_config(flags)
    err = _err()
    events = _cli_events(err, quiet or json_out, config, label="compare")
    with events:
        result = run_async(
            lambda: compare_async(
                prompt_a,
                prompt_b,
                config,
                template=template,
                questions=qs,
                golden=golden,
                votes=votes,
                events=events,
                labels=(label_a, label_b),
            )
        )
    if json_out:
        from promptopt.safe import json_dumps

        print(json_dumps(_compare_json(result), indent=2))
    else:
        out = _out()
        out.print(compare_header(result, source))
        out.print(compare_table(result))
    fail_if_worse, fail_unless_better = gates
    if (fail_if_worse and result.a_better) or (fail_unless_better and not result.b_better):
        raise typer.Exit(ExitCode.WORSE)


def _compare_json(result: Any) -> dict[str, Any]:
    pairs = result.pairs
    return {
        "a": result.a_label,
        "b": result.b_label,
        "verdict": result.verdict,
        "alpha": result.alpha,
        "decided_by": result.decided_by,
        "b_better": result.b_better,
        "a_better": result.a_better,
        "pairs": {"b": pairs.wins, "a": pairs.losses, "tie": pairs.ties},
        "p_value": result.p_value,
        "p_value_over": "pairs",
        "b_wins": result.b_wins,
        "a_wins": result.a_wins,
        "ties": result.ties,
        "win_rate": result.win_rate,
        "win_rate_ci95": list(result.win_rate_ci),
        "metric": result.metric,
        "a_accuracy": result.a_accuracy,
        "b_accuracy": result.b_accuracy,
        "a_accuracy_ci95": result.accuracy_ci("a"),
        "b_accuracy_ci95": result.accuracy_ci("b"),
        "mcnemar_p": result.mcnemar_p,
        "calls": result.calls,
        "cost_usd": result.cost_usd,
        "seed": result.seed,
        "questions": [
            {
                "question": q.question,
                "verdict": q.verdict,
                "votes": q.marks,
                "answer_a": q.answer_a.answer,
                "answer_b": q.answer_b.answer,
                "a_correct": q.a_correct,
                "b_correct": q.b_correct,
            }
            for q in result.questions
        ],
    }


# --- doctor -------------------------------------------------------------------------------


@app.command()
def doctor(
    model: Model = None,
    opt_model: OptModel = None,
    eval_model: EvalModel = None,
    exec_model: ExecModel = None,
    api_base: ApiBase = None,
    timeout: Timeout = None,
    judge: Annotated[
        bool, typer.Option("--judge", help="Measure the judge's consistency on --template's answers instead.")
    ] = False,
    template: Annotated[str | None, typer.Option("--template", "-t", help="Template for --judge.")] = None,
    json_out: JsonOut = False,
) -> None:
    """Test each role's model with one tiny request: latency, tokens, price, or a diagnosis."""
    flags = _flags(
        model=model,
        opt_model=opt_model,
        eval_model=eval_model,
        exec_model=exec_model,
        api_base=api_base,
        timeout=timeout,
    )
    if judge or template:
        guarded(lambda: _doctor_judge(template, flags, json_out))
        return
    guarded(lambda: _doctor(flags, json_out))


def _doctor_judge(template: str | None, flags: dict[str, Any], json_out: bool) -> None:
    from promptopt.api import check_judge_async
    from promptopt.doctor import render_judge
    from promptopt.errors import ConfigError

    if not template:
        raise ConfigError("doctor --judge needs --template: the judge is measured on that template's answers")
    config = _build_config(flags)
    report = run_async(lambda: check_judge_async(template, config))
    if json_out:
        print(json.dumps(report.as_dict(), indent=2))
    else:
        _out().print(render_judge(report, config.role("evaluator").model))


def _doctor(flags: dict[str, Any], json_out: bool) -> None:
    from promptopt.api import check_models_async
    from promptopt.doctor import checks_json, render_checks

    config = _build_config(flags)
    checks = run_async(lambda: check_models_async(config))
    if json_out:
        from promptopt.safe import json_dumps

        print(json_dumps(checks_json(checks), indent=2))
    else:
        _out().print(render_checks(checks))
    if not all(c.ok for c in checks):
        raise typer.Exit(ExitCode.FAILURE)


# --- ui -------------------------------------------------------------------------------------


@app.command()
def ui(
    host: Annotated[str, typer.Option("--host", help="Address to bind; 0.0.0.0 exposes it to your network.")] = (
        "127.0.0.1"
    ),
    port: Annotated[int, typer.Option("--port", help="Port to serve on.")] = 8501,
    workspace: Annotated[Path | None, typer.Option("--workspace", "-w", help="Folder for runs [workspace].")] = None,
    allow_host: Annotated[
        list[str] | None,
        typer.Option(
            "--allow-host",
            metavar="NAME",
            help="Also answer requests whose Host is NAME (a reverse proxy's or LAN name); repeatable. "
            "Any Host but localhost, 127.0.0.1, ::1, --host and these gets 403.",
        ),
    ] = None,
) -> None:
    """Open the web UI: models, template editor, runs with live progress, results, try a prompt."""
    guarded(lambda: _ui(host, port, workspace, allow_host or []))


def _ui(host: str, port: int, workspace: Path | None, allow_host: list[str]) -> None:
    import importlib.util

    from promptopt.errors import ConfigError
    from promptopt.ui import serve

    if not 0 < port < 65536:
        raise ConfigError(f"--port {port}: not a port number")
    try:
        allowed = serve.allowed_hosts(host, allow_host)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    if importlib.util.find_spec("streamlit") is None:
        raise ConfigError("the web UI needs the ui extra: pip install 'promptopt[ui]'")

    env = dict(os.environ)
    if workspace is not None:
        env["PROMPTOPT_UI_WORKSPACE"] = str(workspace.resolve())
    command = [sys.executable, "-m", "promptopt.ui.serve", "--address", host, "--port", str(port)]
    for name in allow_host:
        command += ["--allow-host", name]
    err = _err()
    if host not in serve.LOOPBACK:
        err.print(
            f"warning: --host {host}: the UI has no login; anyone who reaches it can spend your keys",
            style="yellow",
            markup=False,
        )
    if host.strip() in serve.WILDCARDS and not allow_host:
        err.print("note: other machines reach it only by a name given with --allow-host NAME", style="yellow")
    err.print(f"promptopt ui on http://{host}:{port} (Ctrl-C stops it)", markup=False)
    err.print(f"Host names it answers: {', '.join(sorted(allowed))}", markup=False)
    raise typer.Exit(_become(command, env))


def _become(command: list[str], env: dict[str, str]) -> int:
    """Run the server in place of this process where the OS allows it (POSIX): a supervisor's
    SIGTERM or SIGKILL then reaches the server itself instead of orphaning it."""
    import subprocess

    sys.stdout.flush()
    sys.stderr.flush()
    if os.name == "posix":
        os.execve(command[0], command, env)  # does not return
    try:
        return subprocess.call(command, env=env)
    except KeyboardInterrupt:
        return 130


# --- init -----------------------------------------------------------------------------------


@app.command()
def init(
    name: Annotated[str | None, typer.Argument(help="File to write (NAME.yaml).")] = None,
    from_: Annotated[
        str | None, typer.Option("--from", help="Start from this template (file or bundled name).")
    ] = None,
    list_: Annotated[bool, typer.Option("--list", help="List the bundled templates.")] = False,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing file.")] = False,
) -> None:
    """Write a template file to start from."""
    guarded(lambda: _init(name, from_, list_, force))


SKELETON = """\
# promptopt template (SPO format). Run: promptopt optimize --template {file}
prompt: |
  Answer the question.
requirements: |
  Describe what a good answer looks like: content, format, length.
count: None   # optional word limit for the optimized prompt
qa:
  - question: |
      An example question your prompt will face.
    answer: |
      A reference answer (optional: leave empty when there is none).
"""


def _init(name: str | None, from_: str | None, list_: bool, force: bool) -> None:
    from promptopt.bundled import bundled_dir, bundled_templates, resolve_template
    from promptopt.errors import ConfigError
    from promptopt.files import atomic_write
    from promptopt.yamlfile import load as load_yaml

    if list_:
        from promptopt.safe import safe_text

        out = _out()
        for stem, path in bundled_templates().items():
            data = load_yaml(path.read_text(encoding="utf-8"))  # bundled: validated by our tests
            first = " ".join(str(data.get("requirements") or "").split())[:70]
            line = safe_text(f"{stem:<12}", "bold")
            line.append(safe_text(f" {len(data.get('qa') or [])} questions  {first}"))
            out.print(line)
        return
    if name is None:
        name = Path(from_).stem if from_ else "template"
    target = Path(name if name.endswith((".yaml", ".yml")) else f"{name}.yaml")
    if target.exists() and not force:
        raise ConfigError(f"{target} exists; pass --force to overwrite")
    if from_:
        source = resolve_template(from_)
        if source.parent != bundled_dir():  # a user's file: check it before copying it
            from promptopt.template import load_template

            load_template(source)
        text = source.read_text(encoding="utf-8")
    else:
        text = SKELETON.format(file=target)
    try:
        atomic_write(target, text)
    except OSError as exc:
        raise ConfigError(f"{target}: cannot write ({exc.strerror or exc})") from None
    print(f"wrote {target}; next: promptopt optimize --template {target}")


# --- cache ----------------------------------------------------------------------------------


def _cache() -> Any:
    from promptopt.cache import ResponseCache
    from promptopt.config import resolve_config

    return ResponseCache(resolve_config({}).cache_dir)


@cache_app.command("stats")
def cache_stats(json_out: JsonOut = False) -> None:
    """Entries, size and what the cache has saved."""

    def go() -> None:
        stats = _cache().stats()
        if json_out:
            print(json.dumps(vars(stats), indent=2))
            return
        from promptopt.safe import safe_text

        _out().print(
            safe_text(
                f"{stats.path}\n{stats.entries} responses, {stats.bytes / 1e6:.1f} MB, "
                f"${stats.saved_usd:.4f} of calls replayable for free"
            )
        )
        for model, n in sorted(stats.models.items()):
            _out().print(safe_text(f"  {model}: {n}"))

    guarded(go)


@cache_app.command("clear")
def cache_clear() -> None:
    """Delete every cached response."""
    guarded(lambda: print(f"removed {_cache().clear()} cached responses"))


def _version(value: bool) -> None:
    if value:
        print(f"promptopt {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version.")
    ] = False,
) -> None:
    """Optimize LLM prompts without labels."""


class _PlainHelp(typer.core.TyperCommand):
    """typer escapes '[' for rich even when rich help is off, so help read '\\[required]'; undo that."""

    def format_help(self, ctx: Any, formatter: Any) -> None:
        super().format_help(ctx, formatter)
        formatter.buffer[:] = [part.replace("\\[", "[") for part in formatter.buffer]


for _info in (*app.registered_commands, *cache_app.registered_commands):
    _info.cls = _PlainHelp


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:  # pragma: no cover - outside the engine
        sys.exit(ExitCode.SIGINT)
