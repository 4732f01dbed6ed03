"""What one browser session of the web UI holds, and the pure helpers its pages draw from.

Nothing here imports Streamlit, so it is tested like the rest of the engine. Each browser
session owns one `SessionState` (in `st.session_state`), so two sessions never see each other's
models, keys, template or run (SPO's web app shared them). The one module-level object,
`SESSIONS`, finds a session again by the unguessable token in its page address, so reloading
the page keeps its state and its running run; a page without that token starts afresh.
"""

from __future__ import annotations

import contextlib
import html
import re
import secrets
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from promptopt.config import ROLES, RunConfig
from promptopt.diff import word_diff
from promptopt.errors import ConfigError, Interrupted, PromptoptError, TemplateError
from promptopt.events import Events
from promptopt.records import RoundRecord, best_round
from promptopt.secrets import redact
from promptopt.template import QA, Template, format_validation_error
from promptopt.workspace import check_plain_name

PAGES = ("Models", "Template", "Run", "Results", "Try")


@dataclass
class RoleForm:
    """One role as the models page edits it; the key lives only in this object."""

    model: str
    temperature: float
    api_base: str = ""
    api_key: str = ""


@dataclass
class RunSettings:
    max_rounds: int = 5
    votes: int = 4
    max_votes: int = 12
    confirm: bool = True
    concurrency: int = 8
    strategy: str = "spo"
    budget_usd: float = 0.0  # 0 = no budget
    # Per strategy, the options its form set (the fields come from the strategy's options model).
    options: dict[str, dict[str, Any]] = field(default_factory=dict)


class RunProgress(Events):
    """Collects a background run's events for the page that redraws every second (thread-safe)."""

    def __init__(self, last_round: int) -> None:
        self._lock = threading.Lock()
        self.last_round = last_round
        self.rounds: list[RoundRecord] = []
        self.phase_text = "starting"
        self.calls = 0
        self.cached = 0
        self.cost_usd = 0.0
        self.unpriced = False
        self.result: Any = None

    def phase(self, round_number: int, phase: str) -> None:
        with self._lock:
            self.phase_text = f"round {round_number}: {phase}"

    def call_done(self, completion: Any) -> None:
        with self._lock:
            self.calls += 1
            self.cached += bool(completion.cached)
            self.cost_usd += completion.cost_usd
            self.unpriced = self.unpriced or not completion.priced

    def round_done(self, record: RoundRecord) -> None:
        with self._lock:
            self.rounds.append(record)

    def run_done(self, result: Any) -> None:
        with self._lock:
            self.result = result
            self.phase_text = "done"

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "rounds": list(self.rounds),
                "phase": self.phase_text,
                "calls": self.calls,
                "cached": self.cached,
                "cost_usd": self.cost_usd,
                "unpriced": self.unpriced,
                "last_round": self.last_round,
            }


@dataclass
class ActiveRun:
    """A run this session started: where it writes, and the handle to stop it."""

    name: str
    path: Path
    handle: Any
    progress: RunProgress
    started: float = field(default_factory=time.monotonic)

    def status(self) -> str:
        """'running', 'completed', 'converged', 'budget', 'stopped', or 'failed: <one line>'."""
        if not self.handle.done:
            return "running"
        error = self.handle.error
        if error is None:
            return str(self.handle.wait().stopped)
        if isinstance(error, Interrupted):
            return "stopped"
        text = str(error) if isinstance(error, PromptoptError) else f"{type(error).__name__}: {error}"
        return "failed: " + redact(text.splitlines()[0] if text else type(error).__name__)


# What a page-chosen endpoint receives instead of the server's environment key.
PAGE_ENDPOINT_KEY = "no-key-sent-to-a-page-chosen-endpoint"


@dataclass
class SessionState:
    """Everything one browser session owns."""

    workspace: Path
    session_id: str = field(default_factory=lambda: secrets.token_hex(3))  # in run names
    token: str = field(default_factory=lambda: secrets.token_urlsafe(16), repr=False)  # in the page address
    roles: dict[str, RoleForm] = field(default_factory=dict)
    settings: RunSettings = field(default_factory=RunSettings)
    template: Template | None = None
    template_name: str = "prompt"
    runs: list[ActiveRun] = field(default_factory=list)
    start_error: str | None = None  # why the last Start failed, one line, keys redacted

    @classmethod
    def create(cls, workspace: Path, defaults: RunConfig) -> SessionState:
        roles = {
            r: RoleForm(defaults.role(r).model, defaults.role(r).temperature, defaults.role(r).api_base or "")
            for r in ROLES
        }
        settings = RunSettings(
            # A short first run in the browser unless the config file or environment asks otherwise.
            max_rounds=defaults.max_rounds if "max_rounds" in defaults.model_fields_set else 5,
            votes=defaults.votes,
            concurrency=defaults.concurrency,
            strategy=defaults.strategy,
        )
        return cls(workspace=workspace, roles=roles, settings=settings)

    @property
    def current(self) -> ActiveRun | None:
        return self.runs[-1] if self.runs else None

    @property
    def running(self) -> bool:
        """Whether this session's latest run is still going."""
        return self.current is not None and self.current.status() == "running"

    def api_keys(self, defaults: RunConfig | None = None) -> dict[str, str]:
        """The session's keys per role. A role whose API base was typed on the page (not the one the
        server was started with) and has no session key gets a placeholder, so the server's own
        environment key is never sent to an endpoint a page visitor chose."""
        keys = {role: form.api_key for role, form in self.roles.items() if form.api_key.strip()}
        for role, form in self.roles.items():
            own = (defaults.role(role).api_base or "") if defaults else ""
            if role not in keys and form.api_base.strip() and form.api_base.strip() != own:
                keys[role] = PAGE_ENDPOINT_KEY
        return keys

    def config(self, defaults: RunConfig, name: str | None = None) -> RunConfig:
        """The run config: the page's models and settings over the CLI's defaults (env, config file)."""
        update: dict[str, Any] = {}
        for role, form in self.roles.items():
            base = defaults.role(role)
            update[role] = {
                "model": form.model,
                "temperature": form.temperature,
                "api_base": form.api_base.strip() or None,
                "extra": base.extra,
            }
        s = self.settings
        data = {
            **defaults.model_dump(exclude={"optimizer", "evaluator", "executor"}),
            **update,
            "workspace": self.workspace,
            "name": name,
            "initial_round": None,
            "max_rounds": s.max_rounds,
            "votes": s.votes,
            "max_votes": max(s.max_votes, s.votes),
            "confirm": s.confirm,
            "concurrency": s.concurrency,
            "strategy": s.strategy,
            "strategy_options": dict(s.options.get(s.strategy, {})),
            "budget_usd": s.budget_usd or None,
        }
        try:
            return RunConfig.model_validate(data)
        except ValidationError as exc:
            raise ConfigError(format_validation_error("settings", exc)) from None

    def new_run_name(self, now: datetime | None = None) -> str:
        """Each run gets its own folder under the workspace: NAME-YYYYmmdd-HHMMSS-SESSION."""
        stamp = (now or datetime.now()).strftime("%Y%m%d-%H%M%S")
        stem = re.sub(r"[^A-Za-z0-9_]+", "-", self.template_name).strip("-_") or "run"
        return check_plain_name(f"{stem[:40]}-{stamp}-{self.session_id}")


def md(text: object) -> str:
    """Outside text (a path, an error, a model's words) as literal text in Streamlit's markdown:
    every ASCII punctuation mark backslash-escaped, so `~x~`, `_x_`, `[x](url)` or `:red[x]` stay
    what they were typed as."""
    return re.sub(r"([!-/:-@\[-`{-~])", r"\\\1", str(text))


# --- template form -----------------------------------------------------------------------------


def qa_rows(template: Template) -> list[dict[str, str]]:
    return [{"question": q.question, "answer": q.answer or ""} for q in template.qa]


def template_from_form(
    prompt: str, requirements: str, count: int | None, rows: list[dict[str, Any]], metric: str | None = None
) -> Template:
    """A validated template from the editor; a one-line error naming the field otherwise."""
    qa = []
    for i, row in enumerate(rows):
        question = str(row.get("question") or "").strip()
        answer = str(row.get("answer") or "").strip()
        if not question and not answer:
            continue  # an empty editor row
        if not question:
            raise TemplateError(f"template: qa[{i}].question is empty")
        qa.append(QA(question=question, answer=answer or None))
    try:
        return Template(prompt=prompt, requirements=requirements, count=count or None, qa=qa, metric=metric)
    except ValidationError as exc:
        raise TemplateError(format_validation_error("template", exc)) from None


# --- results -----------------------------------------------------------------------------------


def list_runs(workspace: Path) -> list[Path]:
    """Run folders under the workspace (ours, the CLI's, SPO's), newest first. A run folder or
    results.json that a symlink takes outside the workspace is not listed: the page reads nothing
    from there."""
    found: list[tuple[float, Path]] = []
    try:
        root = workspace.resolve()
        for results in workspace.glob("*/prompts/results.json"):
            with contextlib.suppress(OSError, RuntimeError):
                real = results.resolve()
                if real.is_relative_to(root) and real.is_file():
                    found.append((real.stat().st_mtime, results.parent.parent))
    except OSError:
        return []
    return [path for _, path in sorted(found, key=lambda item: item[0], reverse=True)]


def rounds_rows(records: list[RoundRecord]) -> list[dict[str, Any]]:
    from promptopt.render import round_json

    best = best_round(records).round if records else None
    rows = []
    for record in records:
        row = round_json(record)
        row["best"] = "★" if record.round == best else ""
        judge = row.pop("judge") or {}
        # The judge's diagnostics as words a table cell can hold (the JSON keeps the numbers).
        row["judge"] = (
            f"orders agree {judge['consistency']:.0%}, A {judge['share_a']:.0%}"
            if judge.get("consistency") is not None and judge.get("share_a") is not None
            else ""
        )
        rows.append(row)
    return rows


def chart_data(records: list[RoundRecord]) -> dict[str, list[Any]]:
    """Per round: judge votes for and against the candidate, the round's cost and its tokens."""
    return {
        "round": [r.round for r in records],
        "votes for": [r.wins for r in records],
        "votes against": [r.losses for r in records],
        "cost_usd": [round(r.cost_usd, 6) for r in records],
        # Every role's prompt and completion tokens (a record's `tokens` is SPO's executor-only count).
        "tokens": [r.total_usage.prompt_tokens + r.total_usage.completion_tokens for r in records],
    }


def diff_html(old: str, new: str) -> str:
    """The word diff as escaped HTML: removed words struck through in red, added ones in green."""
    parts = []
    for chunk in word_diff(old, new):
        text = html.escape(chunk.text)
        if chunk.op == "insert" and chunk.text.strip():
            parts.append(f'<ins style="background:#d4f8d4;text-decoration:none">{text}</ins>')
        elif chunk.op == "delete" and chunk.text.strip():
            parts.append(f'<del style="background:#fbd5d5">{text}</del>')
        elif chunk.op != "delete":
            parts.append(text)
    body = "".join(parts)
    return f'<div style="white-space:pre-wrap;font-family:monospace;line-height:1.5">{body}</div>'


def answers_side_by_side(base: RoundRecord | None, record: RoundRecord) -> list[dict[str, str]]:
    """One row per question: the base round's answer (when there is a base) beside this round's."""
    before = {a.question: a for a in base.answers} if base else {}
    rows = []
    for a in record.answers:
        row = {"question": a.question}
        if base is not None:
            b = before.get(a.question)
            row[f"round {base.round}"] = b.answer if b else ""
        row[f"round {record.round}"] = a.answer if not a.error else f"(failed: {a.error})"
        rows.append(row)
    return rows


class SessionRegistry:
    """Sessions by their page-address token, so a reload (a new Streamlit session) gets its state
    back. Holds at most `limit` sessions; the least recently used one without a running run goes."""

    def __init__(self, limit: int = 200) -> None:
        self.limit = limit
        self._lock = threading.Lock()
        self._sessions: OrderedDict[str, SessionState] = OrderedDict()

    def get(self, token: str | None) -> SessionState | None:
        with self._lock:
            found = self._sessions.get(token) if token else None
            if found is not None:
                self._sessions.move_to_end(found.token)
            return found

    def add(self, session: SessionState) -> None:
        with self._lock:
            self._sessions[session.token] = session
            for token, old in list(self._sessions.items()):
                if len(self._sessions) <= self.limit:
                    break
                if old is not session and not old.running:
                    del self._sessions[token]


SESSIONS = SessionRegistry()
