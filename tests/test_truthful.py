"""A run that did nothing never says "completed"; provider misbehaviour is bounded and named.

Through the real CLI and litellm against the stub server (and one raw socket server that
trickles its reply), as a CI job would see it: exit codes, one-line errors, what is on disk.
"""

from __future__ import annotations

import json
import socket
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from promptopt.testing.stub_server import Fault, StubServer
from tests.conftest import invoke

runner = CliRunner()


def flags(url: str) -> list[str]:
    return ["--model", "openai/stub", "--api-base", url]


def errors(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("promptopt: error:")]


def test_every_call_failing_exits_1_and_commits_nothing(here: Path) -> None:
    with StubServer(faults=lambda i, role, body: Fault("500")) as stub:
        started = time.perf_counter()
        result = invoke("optimize", "-t", "Navigate", "-r", "3", "--max-attempts", "2", "--json", *flags(stub.url))
        assert stub.count() == 6  # round 1's three questions, two attempts each; nothing more
    assert result.exit_code == 1, result.output
    assert time.perf_counter() - started < 60
    (line,) = errors(result.output)
    assert "executor model openai/stub" in line and "HTTP 500" in line and "had an error" in line
    assert result.stdout.strip() == "" or "completed" not in result.stdout
    assert not (here / "workspace/Navigate/prompts/results.json").exists()


def test_transport_retries_are_not_multiplied_by_format_retries(here: Path) -> None:
    """The optimizer's 'usable <prompt>' attempts never wrap the client's --max-attempts retries."""
    with StubServer(faults=lambda i, role, body: Fault("500") if role == "optimizer" else None) as stub:
        result = invoke("optimize", "-t", "Poem", "-r", "3", "--max-attempts", "2", *flags(stub.url))
        assert stub.count("optimizer") == 4  # 2 rounds × 2 transport attempts (was 2 × 3 × 2)
    # Rounds 2 and 3 failed, round 1 succeeded: the run is honest about it and exits 0.
    assert result.exit_code == 0, result.output
    lines = [ln for ln in result.output.splitlines() if ln.startswith("round ")]
    assert len(lines) == 3 and all("failed" in ln for ln in lines[1:])
    # The meaningful part of the error survives: no litellm class-name prefixes, the reason kept.
    assert "HTTP 500: The server had an error" in lines[1] and "InternalServerError" not in lines[1]
    assert "gave up after 2 attempts" in lines[1]


def test_no_successful_call_in_a_resumed_run_exits_1(here: Path) -> None:
    with StubServer() as stub:
        assert invoke("optimize", "-t", "Poem", "-r", "1", *flags(stub.url)).exit_code == 0
        stub.faults = lambda i, role, body: Fault("500")
        result = invoke("optimize", "-t", "Poem", "-r", "3", "--max-attempts", "1", "--json", *flags(stub.url))
    assert result.exit_code == 1
    (line,) = errors(result.output)
    assert line.startswith("promptopt: error: no model call succeeded") and "optimizer model openai/stub" in line


def test_max_errors_stops_a_run_whose_provider_died(here: Path) -> None:
    with StubServer() as stub:
        stub.faults = lambda i, role, body: Fault("500") if i >= 3 else None  # round 1 answers, then dead
        result = invoke(
            "optimize",
            "-t",
            "Navigate",
            "-r",
            "10",
            "--max-attempts",
            "1",
            "--max-errors",
            "2",
            "--strategy",
            "gpo",
            "--candidates",
            "3",
            *flags(stub.url),
        )
        made = stub.count()
    assert result.exit_code == 1
    (line,) = errors(result.output)
    assert "model calls in a row failed (--max-errors 2)" in line
    assert made <= 3 + 3  # round 1, then at most the three candidates already in flight


def test_deadline_stops_a_hung_provider_and_exits_3(here: Path) -> None:
    with StubServer() as stub:
        assert invoke("optimize", "-t", "Poem", "-r", "1", *flags(stub.url)).exit_code == 0
        stub.faults = lambda i, role, body: Fault("hang")
        started = time.perf_counter()
        result = invoke("optimize", "-t", "Poem", "-r", "5", "--deadline", "3s", "--json", *flags(stub.url))
        took = time.perf_counter() - started
    assert result.exit_code == 3, result.output
    assert took < 20
    summary = json.loads(result.stdout)
    assert summary["stopped"] == "deadline" and "--deadline 3s" in summary["message"]
    assert [r["round"] for r in summary["rounds"]] == [1]  # no half round on disk


@pytest.mark.parametrize("value", ["inf", "nan", "-5", "soon"])
def test_bad_deadline_is_refused(here: Path, value: str) -> None:
    result = invoke("optimize", "-t", "Poem", "--deadline", value, "--model", "openai/stub")
    assert result.exit_code == 2 and "deadline" in errors(result.output)[0]


def test_oversize_reply_is_a_failed_call_never_stored(here: Path) -> None:
    big = "x" * 300_000
    with StubServer(responder=lambda role, body: big if role == "executor" else None) as stub:
        result = invoke(
            "optimize", "-t", "Poem", "-r", "1", "--max-reply-chars", "5000", "--max-attempts", "3", *flags(stub.url)
        )
        assert stub.count("executor") == 3  # not retried: the provider would send it again
    assert result.exit_code == 1
    (line,) = errors(result.output)
    assert "300,000 characters is over the limit of 5,000 (--max-reply-chars)" in line
    for path in [*(here / "workspace").rglob("*"), *(here / "cache").rglob("*")]:
        assert path.is_dir() or path.stat().st_size < 50_000, path


@pytest.fixture
def trickle() -> Iterator[str]:
    """An HTTP server that sends its status line, then one byte every 0.3 s (slowloris)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    stop = threading.Event()

    def serve(conn: socket.socket) -> None:
        with conn:
            try:
                conn.recv(65536)
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n")
                while not stop.is_set():
                    conn.sendall(b" ")
                    time.sleep(0.3)
            except OSError:
                pass

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                return
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}/v1"
    stop.set()
    server.close()


def test_slowloris_reply_says_what_happened(here: Path, trickle: str) -> None:
    result = invoke("optimize", "-t", "Poem", "-r", "1", "--timeout", "1", "--max-attempts", "1", *flags(trickle))
    assert result.exit_code == 1
    (line,) = errors(result.output)
    assert "no complete reply within 1 s" in line


def test_a_cache_that_cannot_write_warns_once_and_the_run_goes_on(here: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from promptopt.cache import ResponseCache

    real_init = ResponseCache.__init__

    class Full:
        def __init__(self, db: sqlite3.Connection) -> None:
            self.db = db

        def execute(self, sql: str, *args: Any) -> Any:
            if sql.startswith("INSERT"):
                raise sqlite3.OperationalError("database or disk is full")
            return self.db.execute(sql, *args)

    def init(self: ResponseCache, folder: Path | None = None) -> None:
        real_init(self, folder)
        self._db = Full(self._db)  # type: ignore[assignment]

    monkeypatch.setattr(ResponseCache, "__init__", init)
    with StubServer() as stub:
        result = invoke("optimize", "-t", "Poem", "-r", "2", "--quiet", *flags(stub.url))
    assert result.exit_code == 0
    warned = [ln for ln in result.output.splitlines() if "cache cannot be written" in ln]
    # Once as it happens (even with --quiet), once in the summary.
    assert len(warned) == 2 and "disk is full" in warned[0] and "rerun will pay again" in warned[0]
