"""The web UI through Streamlit's own AppTest (no browser), against the stub model server."""

from __future__ import annotations

import contextlib
import importlib.util
import os
import re
import time
from pathlib import Path
from typing import Any

import pytest

from promptopt.config import RunConfig
from promptopt.errors import TemplateError
from promptopt.records import AnswerRecord, RoleUsage, RoundRecord, VoteRecord
from promptopt.template import parse_template
from promptopt.ui import APP
from promptopt.ui import session as ui
from tests.conftest import POEM, require

KEY = "sk-typed-in-the-page-0123456789"


@pytest.fixture
def app_env(stub: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    require(importlib.util.find_spec("streamlit") is not None, "streamlit is not installed: pip install -e '.[ui]'")
    monkeypatch.setenv("PROMPTOPT_UI_WORKSPACE", str(tmp_path / "ws"))
    monkeypatch.setenv("PROMPTOPT_MODEL", "openai/stub")
    monkeypatch.setenv("PROMPTOPT_API_BASE", stub.url)
    return tmp_path / "ws"


def new_session() -> Any:
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(APP), default_timeout=60).run()
    assert not at.exception
    return at


def shown(element: Any) -> str:
    """An alert's text as the page shows it (the app escapes outside text for markdown)."""
    return re.sub(r"\\([!-/:-@\[-`{-~])", r"\1", element.value)


def goto(at: Any, page: str) -> Any:
    at.sidebar.radio(key="page").set_value(page).run()
    assert not at.exception, at.exception
    return at


def load_bundled(at: Any, name: str) -> None:
    goto(at, "Template")
    at.selectbox(key="bundled_choice").set_value(name).run()
    at.button(key="load_bundled").click().run()
    assert [s.value for s in at.subheader] == [name]


def start_run(at: Any, rounds: int) -> None:
    goto(at, "Run")
    at.number_input(key="max_rounds").set_value(rounds).run()
    at.button(key="start_run").click().run()
    assert not at.exception, at.exception


def wait_finished(at: Any, timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state: ui.SessionState = at.session_state.promptopt
        if state.current is not None and state.current.status() != "running":
            at.run()
            return state.current.status()
        time.sleep(0.2)
    raise AssertionError("the run did not finish")


def test_every_page_draws_without_a_template(app_env: Path) -> None:
    at = new_session()
    for page in ui.PAGES:
        goto(at, page)
    goto(at, "Run")
    assert "Load a template first" in at.info[0].value


def test_load_edit_run_and_see_results(app_env: Path, stub: Any) -> None:
    at = new_session()
    load_bundled(at, "Navigate")
    prompt = at.text_area(key="tpl_prompt_Navigate")
    prompt.set_value(prompt.value + "\nAnswer Yes or No on the last line.").run()
    start_run(at, rounds=2)
    assert wait_finished(at) == "completed"
    assert any("Run completed" in s.value for s in at.success)
    runs = ui.list_runs(app_env)
    assert len(runs) == 1 and runs[0].name.startswith("Navigate-")
    # The run used the edited prompt, not the bundled one.
    first = stub.requests[0]["body"]["messages"][0]["content"]
    assert "Answer Yes or No on the last line." in first
    goto(at, "Results")
    assert "2 rounds" in at.markdown[0].value
    table = at.dataframe[0].value
    assert list(table["round"]) == [1, 2]
    # The stub's model has no price: the second chart shows tokens, not an all-zero cost.
    assert any("Tokens per round" in c.value for c in at.caption)
    at.selectbox(key="detail_round").set_value(2).run()
    assert not at.exception
    goto(at, "Try")
    at.text_area(key="try_question").set_value("Take 1 step forward. Do you return?").run()
    before = stub.count("executor")
    at.button(key="try_go").click().run()
    assert not at.exception and not at.error
    assert stub.count("executor") == before + 1


def test_template_errors_are_one_line_and_do_not_lose_the_template(app_env: Path) -> None:
    at = new_session()
    load_bundled(at, "Poem")
    at.text_area(key="tpl_prompt_Poem").set_value("   ").run()
    assert at.error and "prompt" in at.error[0].value and "\n" not in at.error[0].value
    assert at.session_state.promptopt.template.prompt.strip()  # the last valid template is kept


def test_stop_ends_a_run_and_keeps_its_rounds(app_env: Path, stub: Any) -> None:
    stub.latency = 0.2
    at = new_session()
    load_bundled(at, "Poem")
    start_run(at, rounds=20)
    # The page the Start click draws already offers Stop (and no second Start).
    assert not at.button(key="stop_run").disabled and at.button(key="start_run").disabled
    state: ui.SessionState = at.session_state.promptopt
    deadline = time.monotonic() + 60
    while not state.current.progress.snapshot()["rounds"] and time.monotonic() < deadline:  # type: ignore[union-attr]
        time.sleep(0.1)
    at.run()
    at.button(key="stop_run").click().run()
    assert wait_finished(at) == "stopped"
    assert at.button(key="stop_run").disabled and not at.button(key="start_run").disabled
    saved = ui.list_runs(app_env)[0]
    assert (saved / "prompts" / "round_1" / "prompt.txt").is_file()


def files_under(folder: Path) -> list[Path]:
    return sorted(folder.rglob("*"))


@pytest.mark.skipif(os.name != "posix", reason="symlinks and a POSIX home")
@pytest.mark.parametrize("target", ["~/../outside.yaml", "{tmp}/outside.yaml", "../outside.yaml", "link/outside.yaml"])
def test_save_on_the_server_refuses_paths_outside_the_workspace(
    app_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, target: str
) -> None:
    """Issue 13: '~/../<elsewhere>/.bashrc' with Overwrite ticked wrote a template into a startup
    file. Every spelling of 'outside' below names tmp_path/outside.yaml (home, absolute, relative
    to the server's folder, a symlink in the workspace): refused in one line, nothing written."""
    (tmp_path / "home").mkdir()
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    app_env.mkdir(parents=True)
    monkeypatch.chdir(app_env)
    (app_env / "link").symlink_to(tmp_path)
    at = new_session()
    load_bundled(at, "Poem")
    before = files_under(tmp_path)
    at.text_input(key="save_path").set_value(target.format(tmp=tmp_path)).run()
    at.checkbox(key="save_overwrite").check().run()
    at.button(key="save_template").click().run()
    assert not at.exception and not at.success
    assert len(at.error) == 1 and "\n" not in shown(at.error[0]) and "outside.yaml" in shown(at.error[0])
    assert not (tmp_path / "outside.yaml").exists() and files_under(tmp_path) == before


def test_save_on_the_server_writes_inside_the_workspace(app_env: Path) -> None:
    at = new_session()
    load_bundled(at, "Poem")
    at.text_input(key="save_path").set_value("mine/Poem.yaml").run()
    at.button(key="save_template").click().run()
    saved = app_env / "mine" / "Poem.yaml"
    assert at.success and str(saved.resolve()) in shown(at.success[0])
    assert parse_template(saved.read_text(), "Poem.yaml").prompt == at.session_state.promptopt.template.prompt
    at.button(key="save_template").click().run()  # again, without Overwrite
    assert "exists: tick 'Overwrite'" in shown(at.error[0])


def test_two_sessions_share_nothing_and_keys_stay_off_disk(app_env: Path, stub: Any, tmp_path: Path) -> None:
    alice, bob = new_session(), new_session()
    goto(alice, "Models")
    alice.text_input(key="executor_key").set_value(KEY).run()
    alice.text_input(key="executor_model").set_value("openai/stub").run()
    goto(bob, "Models")
    assert bob.text_input(key="executor_key").value == ""
    load_bundled(alice, "Poem")
    load_bundled(bob, "Navigate")
    start_run(alice, rounds=2)
    start_run(bob, rounds=2)
    assert wait_finished(alice) == "completed" and wait_finished(bob) == "completed"
    a_run, b_run = alice.session_state.promptopt.current, bob.session_state.promptopt.current
    assert a_run.path != b_run.path and a_run.name.startswith("Poem-") and b_run.name.startswith("Navigate-")
    assert bob.session_state.promptopt.template_name == "Navigate"
    auth = {r["authorization"] for r in stub.requests if r["role"] == "executor"}
    assert f"Bearer {KEY}" in auth and len(auth) == 2  # Alice's key for her calls only
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert KEY.encode() not in path.read_bytes(), path


def test_a_reload_finds_the_session_and_can_stop_its_run(app_env: Path, stub: Any) -> None:
    """Reloading the page starts a new Streamlit session; the token in the address brings back
    the template, the session's key and the running run, so it can still be stopped."""
    from streamlit.testing.v1 import AppTest

    stub.latency = 0.2
    at = new_session()
    token = at.query_params["session"]
    assert len(token) >= 20  # unguessable, unlike the short id in run names
    goto(at, "Models")
    at.text_input(key="executor_key").set_value(KEY).run()
    load_bundled(at, "Poem")
    start_run(at, rounds=20)

    reloaded = AppTest.from_file(str(APP), default_timeout=60)
    reloaded.query_params["session"] = token
    reloaded.run()
    assert reloaded.session_state.promptopt is at.session_state.promptopt
    goto(reloaded, "Models")
    assert reloaded.text_input(key="executor_key").value == KEY
    goto(reloaded, "Run")
    assert not reloaded.button(key="stop_run").disabled
    reloaded.button(key="stop_run").click().run()
    assert wait_finished(reloaded) == "stopped"

    # Without the token, or with a made-up one, a page starts afresh and gets its own token.
    stranger = AppTest.from_file(str(APP), default_timeout=60)
    stranger.query_params["session"] = "made-up"
    stranger.run()
    assert stranger.query_params["session"] not in ("made-up", token)
    goto(stranger, "Run")
    assert "Load a template first" in stranger.info[0].value


def test_session_registry_evicts_idle_sessions_first(tmp_path: Path) -> None:
    class Running:
        def status(self) -> str:
            return "running"

    registry = ui.SessionRegistry(limit=2)
    busy, idle, newest = (ui.SessionState.create(tmp_path, RunConfig()) for _ in range(3))
    busy.runs.append(Running())  # type: ignore[arg-type]
    for s in (busy, idle, newest):
        registry.add(s)
    assert registry.get(busy.token) is busy and registry.get(newest.token) is newest
    assert registry.get(idle.token) is None and registry.get(None) is None


def test_connection_test_reports_each_role(app_env: Path) -> None:
    at = new_session()
    goto(at, "Models")
    at.text_input(key="evaluator_model").set_value("nonsense-model-name").run()
    at.button(key="test_models").click().run()
    assert not at.exception
    assert any("optimizer" in s.value and "ok" in s.value for s in at.success)
    assert any("evaluator" in e.value and "provider" in e.value for e in at.error)


# --- the pure helpers --------------------------------------------------------------------------


def test_run_names_are_unique_per_session_and_plain(tmp_path: Path) -> None:
    a = ui.SessionState.create(tmp_path, RunConfig())
    b = ui.SessionState.create(tmp_path, RunConfig())
    a.template_name = b.template_name = "My prompt/../x"
    assert a.new_run_name() != b.new_run_name()
    assert "/" not in a.new_run_name() and a.new_run_name().startswith("My-prompt-x-20")


def test_session_config_uses_page_models_over_defaults(tmp_path: Path) -> None:
    s = ui.SessionState.create(tmp_path, RunConfig())
    s.roles["evaluator"].model = "anthropic/claude-3-5-haiku-latest"
    s.roles["executor"].api_base = "http://127.0.0.1:9/v1"
    s.settings.budget_usd = 0.0
    config = s.config(RunConfig(), name="x")
    assert config.evaluator.model == "anthropic/claude-3-5-haiku-latest"
    assert config.executor.api_base == "http://127.0.0.1:9/v1" and config.optimizer.api_base is None
    assert config.budget_usd is None and config.workspace == tmp_path


def test_template_from_form_skips_blank_rows_and_names_bad_ones() -> None:
    rows = [{"question": "q1", "answer": ""}, {"question": "", "answer": ""}, {"question": " q2 ", "answer": "a"}]
    t = ui.template_from_form("Do it.", "Be brief.", 0, rows)
    assert [(q.question, q.answer) for q in t.qa] == [("q1", None), ("q2", "a")] and t.count is None
    with pytest.raises(TemplateError, match=r"qa\[0\].question is empty"):
        ui.template_from_form("Do it.", "", 0, [{"question": "", "answer": "orphan"}])
    with pytest.raises(TemplateError, match="qa"):
        ui.template_from_form("Do it.", "", 0, [])


def test_md_keeps_outside_text_literal() -> None:
    text = "path '~/../x/.bashrc': ~gone~ _i_ **b** [link](http://e.example) ![img](x) :red[y] $x$ <b> `c`"
    escaped = ui.md(text)
    assert re.sub(r"\\(.)", r"\1", escaped) == text
    assert not re.search(r"(?<!\\)[~_*\[\]()!:$<>`]", escaped)  # every mark is escaped


def test_diff_html_escapes_and_marks_changes() -> None:
    out = ui.diff_html("Say <b>hi</b> now", "Say <b>hello</b> now")
    assert "<b>" not in out and "&lt;b&gt;" in out
    assert "<del" in out and "<ins" in out


def test_answers_side_by_side_pairs_by_question() -> None:
    base = RoundRecord(round=1, answers=[AnswerRecord(question="q", answer="old")])
    rec = RoundRecord(round=2, answers=[AnswerRecord(question="q", answer="", error="timeout")])
    assert ui.answers_side_by_side(base, rec) == [{"question": "q", "round 1": "old", "round 2": "(failed: timeout)"}]
    assert ui.answers_side_by_side(None, base) == [{"question": "q", "round 1": "old"}]


def test_chart_data_counts_votes() -> None:
    usage = {
        "judge": RoleUsage(calls=2, prompt_tokens=300, completion_tokens=20),
        "executor": RoleUsage(calls=3, prompt_tokens=90, completion_tokens=50),
    }
    votes = [VoteRecord(winner="candidate"), VoteRecord(winner="base")]
    rec = RoundRecord(round=2, votes=votes, cost_usd=0.5, usage=usage, tokens=50)
    data = ui.chart_data([rec])
    assert data["votes for"] == [1] and data["votes against"] == [1] and data["cost_usd"] == [0.5]
    assert data["round"] == [2] and data["tokens"] == [460]  # all roles, not SPO's executor-only count


def test_template_round_trip_through_form() -> None:
    t = parse_template(POEM, "Poem.yaml")
    again = ui.template_from_form(t.prompt, t.requirements, t.count, ui.qa_rows(t))
    assert again.qa == t.qa and again.prompt == t.prompt


# --- the `promptopt ui` command ----------------------------------------------------------------


def test_ui_command_without_the_extra_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from promptopt.cli import app

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "streamlit" else real(name, *a))
    result = CliRunner().invoke(app, ["ui"])
    assert result.exit_code == 2
    assert "pip install 'promptopt[ui]'" in result.output and "Traceback" not in result.output


def test_ui_command_rejects_a_bad_port() -> None:
    from typer.testing import CliRunner

    from promptopt.cli import app

    result = CliRunner().invoke(app, ["ui", "--port", "70000"])
    assert result.exit_code == 2 and "--port 70000" in result.output


def test_ui_command_binds_localhost_by_default(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import subprocess

    from typer.testing import CliRunner

    from promptopt.cli import app

    require(importlib.util.find_spec("streamlit") is not None, "streamlit is not installed: pip install -e '.[ui]'")
    seen: list[tuple[list[str], dict[str, str]]] = []

    def execve(path: str, cmd: list[str], env: dict[str, str]) -> None:
        seen.append((cmd, env))
        raise SystemExit(0)

    monkeypatch.setattr(os, "execve", execve)
    monkeypatch.setattr(subprocess, "call", lambda cmd, env: seen.append((cmd, env)) or 0)
    assert CliRunner().invoke(app, ["ui", "--workspace", str(tmp_path / "runs")]).exit_code == 0
    wide = ["ui", "--host", "0.0.0.0", "--port", "9000", "--allow-host", "ui.example", "--allow-host", "10.0.0.5"]
    assert CliRunner().invoke(app, wide).exit_code == 0
    (first, env), (second, _) = seen
    assert first[1:4] == ["-m", "promptopt.ui.serve", "--address"]  # the guarded server, not bare streamlit
    assert first[first.index("--address") + 1] == "127.0.0.1"
    assert first[first.index("--port") + 1] == "8501" and "--allow-host" not in first
    assert env["PROMPTOPT_UI_WORKSPACE"] == str((tmp_path / "runs").resolve())
    assert second[second.index("--address") + 1] == "0.0.0.0" and "9000" in second
    assert second[-4:] == ["--allow-host", "ui.example", "--allow-host", "10.0.0.5"]


@pytest.mark.parametrize("name", ["", "evil.example/x", "a b", "name:port", "[::1", "user@host"])
def test_ui_command_rejects_a_bad_allow_host(name: str) -> None:
    from typer.testing import CliRunner

    from promptopt.cli import app

    result = CliRunner().invoke(app, ["ui", "--allow-host", name])
    assert result.exit_code == 2 and "--allow-host" in result.output and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_streamlit_options_pin_the_security_settings() -> None:
    from promptopt.ui import serve

    options = serve.streamlit_options("127.0.0.1", 8501)
    assert options["server.enableCORS"] is True and options["server.enableXsrfProtection"] is True
    assert options["browser.gatherUsageStats"] is False and options["server.headless"] is True


def test_a_run_that_cannot_start_says_why_in_one_line(app_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}/v1"
    monkeypatch.setenv("PROMPTOPT_API_BASE", dead)
    at = new_session()
    load_bundled(at, "Poem")
    start_run(at, rounds=2)
    status = wait_finished(at)
    assert status.startswith("failed: ") and "\n" not in status and "127.0.0.1" in status
    assert any(status in shown(e) for e in at.error) and not at.exception


@pytest.mark.skipif(os.name != "posix", reason="signals as a supervisor sends them")
def test_terminating_promptopt_ui_stops_the_server(tmp_path: Path) -> None:
    """A supervisor (CI, systemd, docker stop) sends SIGTERM to the process it started: the server
    must go with it, not linger as an orphan that keeps the port and the user's keys."""
    import signal
    import socket
    import subprocess
    import sys
    import urllib.request

    require(importlib.util.find_spec("streamlit") is not None, "streamlit is not installed: pip install -e '.[ui]'")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/_stcore/health"

    def healthy() -> bool:
        try:
            with urllib.request.urlopen(url, timeout=1) as reply:
                return bool(reply.read().decode().strip() == "ok")
        except OSError:
            return False

    command = [sys.executable, "-m", "promptopt", "ui", "--port", str(port), "--workspace", str(tmp_path / "ws")]
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while not healthy():
            assert proc.poll() is None and time.monotonic() < deadline, "promptopt ui did not come up"
            time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)  # to the process only, as a supervisor does; not its group
        proc.wait(15)
        deadline = time.monotonic() + 10
        while healthy() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not healthy(), "the UI server outlived promptopt ui"
    finally:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)  # whatever is left of the group, pass or fail
        proc.wait()


def test_an_api_base_typed_in_the_page_never_receives_the_servers_key(
    app_env: Path, stub: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A page visitor who points a role at their own server gets no key from the server's environment."""
    from promptopt.testing.stub_server import StubServer

    server_key = "sk-server-environment-key-123456"
    monkeypatch.setenv("OPENAI_API_KEY", server_key)
    with StubServer() as elsewhere:
        at = new_session()
        goto(at, "Models")
        at.text_input(key="executor_api_base").set_value(elsewhere.url).run()
        load_bundled(at, "Poem")
        start_run(at, rounds=1)
        assert wait_finished(at) == "completed"
        sent = {r["authorization"] for r in elsewhere.requests}
    assert sent and all(server_key not in (a or "") for a in sent)
    # The server's own endpoint still gets the server's key.
    goto(at, "Models")
    at.text_input(key="executor_api_base").set_value(stub.url).run()
    assert ui.PAGE_ENDPOINT_KEY not in at.session_state.promptopt.api_keys(RunConfig(executor={"api_base": stub.url}))


def test_the_run_page_builds_strategy_fields_from_the_strategys_options_model(app_env: Path) -> None:
    at = new_session()
    load_bundled(at, "Poem")
    goto(at, "Run")
    at.selectbox(key="strategy").set_value("dual-phase").run()
    eta = at.number_input(key="opt_dual-phase_eta")
    assert eta.value == 0.5 and "EXP3" in (eta.help or "")  # default and help from DualPhaseOptions
    eta.set_value(0.3).run()
    at.selectbox(key="strategy").set_value("gpo").run()
    assert at.selectbox(key="opt_gpo_retrieval").options == ["recency", "relevance", "importance"]
    at.number_input(key="opt_gpo_top_k").set_value(5).run()
    state: ui.SessionState = at.session_state.promptopt
    config = state.config(RunConfig(), name="x")
    assert config.strategy == "gpo" and config.strategy_options["top_k"] == 5
    assert state.settings.options["dual-phase"]["eta"] == pytest.approx(0.3)
