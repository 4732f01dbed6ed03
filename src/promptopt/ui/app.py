"""The Streamlit page: `promptopt ui` runs this script; each browser session has its own state.

Pages: Models, Template, Run, Results, Try. The page only draws and collects input; the work is
done by promptopt.api and the pure helpers in promptopt.ui.session.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import streamlit as st

from promptopt import api
from promptopt.bundled import bundled_templates
from promptopt.config import ROLES, RunConfig
from promptopt.engine.strategies import STRATEGIES
from promptopt.errors import PromptoptError
from promptopt.records import VOTE_LEGEND
from promptopt.render import gate_line, judge_line, money, verdict_label
from promptopt.secrets import redact
from promptopt.template import dump_template, load_template, parse_template
from promptopt.ui import paths
from promptopt.ui import session as ui

WORKSPACE_ENV = "PROMPTOPT_UI_WORKSPACE"


def defaults() -> RunConfig:
    if "defaults" not in st.session_state:
        st.session_state.defaults = api.load_config()
    config: RunConfig = st.session_state.defaults
    return config


SESSION_PARAM = "session"


def state() -> ui.SessionState:
    """This browser session's state; after a reload, found again by the token in the address."""
    if "promptopt" not in st.session_state:
        found = ui.SESSIONS.get(st.query_params.get(SESSION_PARAM))
        if found is None:
            workspace = Path(os.environ.get(WORKSPACE_ENV) or defaults().workspace).resolve()
            found = ui.SessionState.create(workspace, defaults())
            ui.SESSIONS.add(found)
        st.session_state.promptopt = found
    s: ui.SessionState = st.session_state.promptopt
    if st.query_params.get(SESSION_PARAM) != s.token:
        st.query_params[SESSION_PARAM] = s.token
    return s


def error_text(exc: BaseException, s: ui.SessionState) -> str:
    """An error as the page shows it, with the session's keys scrubbed."""
    text = str(exc) if isinstance(exc, PromptoptError) else f"{type(exc).__name__}: {exc}"
    return redact(text, s.api_keys().values())


def show_error(exc: BaseException) -> None:
    st.error(ui.md(error_text(exc, state())))


# --- Models ------------------------------------------------------------------------------------


def page_models(s: ui.SessionState) -> None:
    st.header("Models")
    st.caption(
        "Any litellm model: openai/gpt-4o-mini, anthropic/claude-3-5-haiku-latest, ollama/llama3.2, or "
        "openai/<name> with an API base for an OpenAI-compatible server. Keys come from the environment; "
        "a key typed here is used by this browser session only and is never written to disk."
    )
    for role in ROLES:
        form = s.roles[role]
        with st.expander(f"{role}: {form.model}", expanded=role == "optimizer"):
            form.model = st.text_input("Model", form.model, key=f"{role}_model")
            form.api_base = st.text_input("API base (optional)", form.api_base, key=f"{role}_api_base")
            form.temperature = st.slider("Temperature", 0.0, 2.0, form.temperature, 0.1, key=f"{role}_temp")
            form.api_key = st.text_input(
                "API key for this session (optional)", form.api_key, type="password", key=f"{role}_key"
            )
    if st.button("Test connection", key="test_models"):
        with st.spinner("One tiny request per model…"):
            try:
                checks = api.check_models(s.config(defaults()), api_keys=s.api_keys(defaults()))
            except Exception as exc:
                show_error(exc)
                return
        for check in checks:
            label = f"{check.role}: {check.model}"
            if check.same_as:
                st.info(ui.md(f"{label}: same model as {check.same_as}"))
            elif check.ok:
                price = "no price" if not check.priced else f"${check.usd_per_1k_prompt or 0:.5f}/1k prompt tokens"
                st.success(ui.md(f"{label}: ok in {check.latency_s}s ({price})"))
            else:
                st.error(ui.md(f"{label}: {check.error}. {check.diagnosis or ''}"))


# --- Template ----------------------------------------------------------------------------------


def page_template(s: ui.SessionState) -> None:
    st.header("Template")
    names = sorted(bundled_templates())
    col1, col2 = st.columns([3, 1])
    choice = col1.selectbox("Bundled template", names, key="bundled_choice")
    if col2.button("Load", key="load_bundled") and choice:
        set_template(s, *load_template(choice))
    uploaded = st.file_uploader("…or load a template file (SPO's YAML)", type=["yaml", "yml"], key="upload")
    if uploaded is not None and st.session_state.get("uploaded_id") != uploaded.file_id:
        st.session_state.uploaded_id = uploaded.file_id
        try:
            set_template(s, parse_template(uploaded.getvalue(), uploaded.name), uploaded.name)
        except PromptoptError as exc:
            show_error(exc)
    if s.template is None:
        st.info("Load a template to edit it.")
        return
    t = s.template
    st.subheader(s.template_name)
    prompt = st.text_area("Prompt", t.prompt, height=160, key=f"tpl_prompt_{s.template_name}")
    requirements = st.text_area("Requirements", t.requirements, height=80, key=f"tpl_req_{s.template_name}")
    count = st.number_input(
        "Count (answer length hint, 0 = none)", 0, 100_000, t.count or 0, key=f"tpl_count_{s.template_name}"
    )
    st.caption("Q&A examples: edit cells, add rows at the bottom, select rows to delete them")
    rows = st.data_editor(ui.qa_rows(t), num_rows="dynamic", width="stretch", key=f"tpl_qa_{s.template_name}")
    try:
        edited = ui.template_from_form(prompt, requirements, int(count), list(rows), t.metric)
    except PromptoptError as exc:
        show_error(exc)
        return
    s.template = edited
    st.caption(f"{len(edited.qa)} questions · the run uses this edited template")
    text = dump_template(edited)
    st.download_button("Download YAML", text, file_name=f"{s.template_name}.yaml", key="download_yaml")
    with st.expander("Save on the server"):
        st.caption(f"Into the workspace, {ui.md(s.workspace)}: a file name, or folder/name.yaml")
        target = st.text_input("File name in the workspace", f"{s.template_name}.yaml", key="save_path")
        overwrite = st.checkbox("Overwrite if it exists", key="save_overwrite")
        if st.button("Save", key="save_template"):
            save_template(s, target, text, overwrite)


def set_template(s: ui.SessionState, template: Any, name: str | Path) -> None:
    s.template, s.template_name = template, paths.plain_stem(str(name))


def save_template(s: ui.SessionState, target: str, text: str, overwrite: bool) -> None:
    """Save only inside the workspace; any other path is refused in one line and nothing is written."""
    try:
        path = paths.save_text(s.workspace, target, text, overwrite=overwrite, suffixes=paths.TEMPLATE_SUFFIXES)
    except PromptoptError as exc:
        show_error(exc)
        return
    st.success(ui.md(f"saved {path}"))


# --- Run ---------------------------------------------------------------------------------------


def page_run(s: ui.SessionState) -> None:
    st.header("Run")
    if s.template is None:
        st.info("Load a template first (Template page).")
        return
    cfg = s.settings
    c1, c2, c3, c4 = st.columns(4)
    cfg.max_rounds = int(c1.number_input("Rounds", 1, 100, cfg.max_rounds, key="max_rounds"))
    cfg.votes = int(c2.number_input("Judge votes", 1, 16, cfg.votes, key="votes"))
    cfg.concurrency = int(c3.number_input("Concurrency", 1, 64, cfg.concurrency, key="concurrency"))
    cfg.budget_usd = float(c4.number_input("Budget $ (0 = none)", 0.0, 1000.0, cfg.budget_usd, key="budget"))
    c5, c6 = st.columns(2)
    cfg.max_votes = int(
        c5.number_input("Judge votes at most (added in pairs while undecided)", 1, 64, cfg.max_votes, key="max_votes")
    )
    cfg.confirm = c6.checkbox("Confirm the best prompt against yours", cfg.confirm, key="confirm")
    strategies = sorted(STRATEGIES)
    cfg.strategy = st.selectbox("Strategy", strategies, strategies.index(cfg.strategy), key="strategy")
    strategy_fields(cfg)
    try:
        config = s.config(defaults())
        est = api.estimate(s.template, config.model_copy(update={"name": "estimate-only"}))
        tokens = sum(r.prompt_tokens + r.completion_tokens for r in est.roles.values())
        cost = "cost unknown (a model has no price)" if est.cost_usd is None else f"at most ${est.cost_usd:.4f}"
        st.caption(f"Estimate before starting: {est.calls} model calls, ~{tokens:,} tokens, {cost}")
    except PromptoptError as exc:
        show_error(exc)
        return
    run_panel(config)


def strategy_fields(cfg: ui.RunSettings) -> None:
    """The strategy's own options, as its options model describes them (defaults, bounds, help)."""
    from promptopt.engine.strategies.base import option_fields

    values = cfg.options.setdefault(cfg.strategy, {})
    fields = option_fields(STRATEGIES[cfg.strategy])
    columns = st.columns(max(1, len(fields)))
    for col, f in zip(columns, fields, strict=False):
        key, current = f"opt_{cfg.strategy}_{f.name}", values.get(f.name, f.default)
        if f.kind == "choice":
            values[f.name] = col.selectbox(f.name, f.choices, f.choices.index(str(current)), key=key, help=f.help)
        elif f.kind == "int":
            low, high = int(f.low) if f.low is not None else None, int(f.high) if f.high is not None else None
            values[f.name] = int(col.number_input(f.name, low, high, int(current), key=key, help=f.help))
        elif f.kind == "float":
            values[f.name] = float(
                col.number_input(f.name, f.low, f.high, float(current), step=0.05, key=key, help=f.help)
            )
        else:
            values[f.name] = col.text_input(f.name, str(current), key=key, help=f.help)


@st.fragment(run_every=1.0)
def run_panel(config: RunConfig) -> None:
    """Start/Stop and the live progress, redrawn every second. The buttons act in on_click
    callbacks, before the redraw, so they always show the state a click left behind."""
    s = state()
    start_col, stop_col = st.columns(2)
    start_col.button("Start", key="start_run", disabled=s.running, type="primary", on_click=start_run, args=(s, config))
    stop_col.button("Stop", key="stop_run", disabled=not s.running, on_click=stop_run, args=(s,))
    if s.start_error:
        st.error(ui.md(s.start_error))
    run_progress(s)


def start_run(s: ui.SessionState, config: RunConfig) -> None:
    s.start_error = None
    if s.running:
        return  # a double click: one run at a time per session
    name = s.new_run_name()
    config = config.model_copy(update={"name": name})
    progress = ui.RunProgress(config.max_rounds)
    try:
        assert s.template is not None
        handle = api.start(s.template, config, events=progress, api_keys=s.api_keys(defaults()))
    except PromptoptError as exc:
        s.start_error = error_text(exc, s)
        return
    s.runs.append(ui.ActiveRun(name, config.workspace / name, handle, progress))
    st.session_state.results_run = name


def stop_run(s: ui.SessionState) -> None:
    if s.current is not None:
        s.current.handle.stop()


def run_progress(s: ui.SessionState) -> None:
    run = s.current
    if run is None:
        return
    snap = run.progress.snapshot()
    status = run.status()
    st.markdown(f"**{ui.md(run.name)}** — {ui.md(status)} · {ui.md(snap['phase'])}")
    done = len(snap["rounds"])
    st.progress(min(done / max(snap["last_round"], 1), 1.0), text=f"{done}/{snap['last_round']} rounds")
    cached = f" ({snap['cached']} cached)" if snap["cached"] else ""
    cost = money(snap["cost_usd"], snap["unpriced"])
    st.caption(f"{snap['calls']} calls{cached} · {ui.md(cost)} · workspace {ui.md(run.path)}")
    if snap["rounds"]:
        st.dataframe(ui.rounds_rows(snap["rounds"]), width="stretch", hide_index=True, key="live_rounds")
    if status.startswith("failed"):
        st.error(ui.md(status))
    elif status != "running":
        st.success(f"Run {ui.md(status)}. Open the Results page for every round.")


# --- Results -----------------------------------------------------------------------------------


def page_results(s: ui.SessionState) -> None:
    st.header("Results")
    runs = ui.list_runs(s.workspace)
    if not runs:
        st.info(f"No runs under {ui.md(s.workspace)} yet.")
        return
    names = [p.name for p in runs]
    wanted = st.session_state.get("results_run")
    index = names.index(wanted) if wanted in names else 0
    chosen = st.selectbox("Run", names, index, key="results_choice")
    try:
        run = load_run(s, chosen, names)
    except PromptoptError as exc:
        show_error(exc)
        return
    st.markdown(f"**{ui.md(run.name)}** — {len(run.records)} rounds, best round {run.confirmed.round}")
    if run.best.round != run.records[0].round:
        line = gate_line(run.gate, run.best, run.confirmed).plain if run.gate else "not confirmed yet"
        (st.success if run.confirmed.round == run.best.round else st.warning)(ui.md(line))
    if any(r.votes for r in run.records):
        st.caption(ui.md(f"{judge_line([r.votes for r in run.records])} · {VOTE_LEGEND}"))
    st.dataframe(ui.rounds_rows(run.records), width="stretch", hide_index=True, key="results_table")
    chart = ui.chart_data(run.records)
    c1, c2 = st.columns(2)
    c1.caption("Judge votes per round")
    c1.bar_chart(chart, x="round", y=["votes for", "votes against"])
    if any(chart["cost_usd"]):
        c2.caption("Cost per round ($)")
        c2.bar_chart(chart, x="round", y="cost_usd")
    else:  # unpriced models (a local server): an all-zero cost chart says nothing
        c2.caption("Tokens per round (no price known for these models)")
        c2.bar_chart(chart, x="round", y="tokens")
    st.subheader("Best prompt" + ("" if run.confirmed.round == run.best.round else " (yours: nothing was confirmed)"))
    st.code(run.confirmed.prompt, language=None, wrap_lines=True)
    numbers = [r.round for r in run.records]
    number = st.selectbox("Round detail", numbers, len(numbers) - 1, key="detail_round")
    record = run.round(int(number))
    base = run.base_of(record)
    against = f" against round {base.round}" if base else ""
    st.markdown(f"Verdict: **{verdict_label(record)}** {record.vote_marks}{against}")
    if record.error:
        st.warning(ui.md(record.error))
    if base is not None:
        st.caption(f"Prompt change against round {base.round}")
        st.html(ui.diff_html(base.prompt, record.prompt))
    else:
        st.code(record.prompt, language=None, wrap_lines=True)
    if record.modification:
        st.caption(f"Optimizer: {ui.md(record.modification)}")
    for i, vote in enumerate(record.votes):
        with st.expander(f"Judge vote {i + 1}: {vote.winner}" + (" (swapped)" if vote.swapped else "")):
            st.markdown(ui.md(vote.analysis or vote.error or "(no analysis)"))
    st.subheader("Answers side by side")
    for i, row in enumerate(ui.answers_side_by_side(base, record), 1):
        question, *columns = row.items()
        st.markdown(f"**Q{i}.** {ui.md(question[1])}")
        for col, (label, text) in zip(st.columns(len(columns)), columns, strict=True):
            col.caption(label)
            col.code(text or "(no answer)", language=None, wrap_lines=True)


def load_run(s: ui.SessionState, name: str | None, names: list[str]) -> Any:
    """A run picked on the page: one of the listed run folders, confined to the workspace."""
    if name not in names:
        raise PromptoptError(f"run '{paths.shown(str(name))}': not a run in {s.workspace}")
    return api.load_run(paths.confine(s.workspace, name, field="run"))


# --- Try ---------------------------------------------------------------------------------------


def page_try(s: ui.SessionState) -> None:
    st.header("Try a prompt")
    runs = ui.list_runs(s.workspace)
    prompt = ""
    if runs:
        names = [p.name for p in runs]
        chosen = st.selectbox("Run", names, key="try_run")
        try:
            run = load_run(s, chosen, names)
        except PromptoptError as exc:
            show_error(exc)
            return
        numbers = [r.round for r in run.records]
        number = st.selectbox("Round", numbers, numbers.index(run.best.round), key="try_round")
        prompt = run.round(int(number)).prompt
    prompt = st.text_area("Prompt", prompt, height=160, key=f"try_prompt_{prompt[:40]}")
    question = st.text_area("A new question", key="try_question")
    if st.button("Answer", key="try_go"):
        try:
            with st.spinner("Asking the executor model…"):
                reply = api.answer(prompt, question, s.config(defaults()), api_keys=s.api_keys(defaults()))
        except Exception as exc:
            show_error(exc)
            return
        if reply.error:
            st.error(ui.md(reply.error))
        else:
            st.markdown(reply.answer)


PAGE_FUNCS = {
    "Models": page_models,
    "Template": page_template,
    "Run": page_run,
    "Results": page_results,
    "Try": page_try,
}


def main() -> None:
    st.set_page_config(page_title="promptopt", layout="wide")
    s = state()
    st.sidebar.title("promptopt")
    page = st.sidebar.radio("Page", ui.PAGES, key="page")
    st.sidebar.caption(f"workspace: {ui.md(s.workspace)}")
    PAGE_FUNCS[page](s)


main()
