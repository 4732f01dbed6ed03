"""Fast tests for the stdlib OpenAI-compatible stub server (no litellm here)."""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from promptopt.testing.stub_server import Fault, StubServer

SRC = Path(__file__).resolve().parents[1] / "src"


def _conn(stub: StubServer, timeout: float = 5.0) -> http.client.HTTPConnection:
    parts = urlsplit(stub.url)
    assert parts.hostname is not None
    return http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)


def _body(user: str, model: str = "stub-model", **extra: Any) -> dict[str, Any]:
    messages = [{"role": "system", "content": "You are terse."}, {"role": "user", "content": user}]
    return {"model": model, "messages": messages, **extra}


def _post(
    stub: StubServer, payload: dict[str, Any], conn: http.client.HTTPConnection | None = None
) -> tuple[int, dict[str, str], bytes]:
    own = conn is None
    conn = conn or _conn(stub)
    try:
        conn.request(
            "POST",
            "/v1/chat/completions",
            body=json.dumps(payload),
            headers={"Content-Type": "application/json", "Authorization": "Bearer sk-stub"},
        )
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        if own:
            conn.close()


def test_reply_shape_usage_and_routes() -> None:
    with StubServer() as stub:
        assert stub.url.startswith("http://127.0.0.1:") and stub.url.endswith("/v1")
        conn = _conn(stub)
        status, headers, raw = _post(stub, _body("What  is\n 2+2?"), conn)
        assert status == 200 and headers["content-type"] == "application/json"
        data = json.loads(raw)
        assert data["object"] == "chat.completion" and data["model"] == "stub-model"
        assert isinstance(data["id"], str) and isinstance(data["created"], int)
        choice = data["choices"][0]
        assert choice["finish_reason"] == "stop"
        assert choice["message"] == {"role": "assistant", "content": "Answer: What is 2+2?"}
        usage = data["usage"]
        assert usage["prompt_tokens"] == 4 + 4  # ceil(14/4) + ceil(13/4)
        assert usage["completion_tokens"] == 5  # ceil(len("Answer: What is 2+2?") / 4)
        assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]

        # Same keep-alive connection is reused for the next requests.
        for path in ("/v1/models", "/models"):
            conn.request("GET", path)
            resp = conn.getresponse()
            assert resp.status == 200
            assert [m["id"] for m in json.loads(resp.read())["data"]] == ["stub"]
        conn.request("GET", "/v1/nope")
        resp = conn.getresponse()
        assert resp.status == 404 and "error" in json.loads(resp.read())
        conn.close()

        status, _, raw = _post(stub, _body("hi", stream=True))
        assert status == 400 and "stream" in json.loads(raw)["error"]["message"].lower()


def test_role_classification_and_default_replies() -> None:
    with StubServer() as stub:
        replies = {}
        for role, text in [
            ("judge", "Compare <choose>A or B</choose>"),
            ("optimizer", "Improve this <prompt>x</prompt> and <choose>"),
            ("optimizer", "Improve <prompt>y</prompt>"),
            ("executor", "Plain question <PROMPT>"),
        ]:
            _, _, raw = _post(stub, _body(text))
            replies.setdefault(role, []).append(json.loads(raw)["choices"][0]["message"]["content"])
        # "<choose>" wins over "<prompt>", so the second request above is a judge request.
        assert stub.count() == 4
        assert stub.count("judge") == 2 and stub.count("optimizer") == 1 and stub.count("executor") == 1
        assert [r["role"] for r in stub.requests] == ["judge", "judge", "optimizer", "executor"]
        assert replies["judge"][0].endswith("<choose>A</choose>")
        assert "<prompt>" in replies["optimizer"][1] and "Revision 1." in replies["optimizer"][1]
        _, _, raw = _post(stub, _body("again <prompt>z</prompt>"))
        assert "Revision 2." in json.loads(raw)["choices"][0]["message"]["content"]
        assert replies["executor"] == ["Answer: Plain question <PROMPT>"]
        stub.reset()
        assert stub.count() == 0 and stub.requests == []


def test_fault_list_order_and_custom_responder() -> None:
    def responder(role: str, body: dict[str, Any]) -> str | Fault | None:
        if "boom" in body["messages"][-1]["content"]:
            raise Fault("503")
        return "custom" if role == "executor" else None

    faults: list[Fault | None] = [Fault("500"), None, Fault("empty"), Fault("garbled")]
    with StubServer(responder=responder, faults=faults) as stub:
        conn = _conn(stub)
        statuses = []
        for _ in range(4):
            status, _, raw = _post(stub, _body("q"), conn)
            statuses.append((status, raw))
        assert statuses[0][0] == 500 and json.loads(statuses[0][1])["error"]["type"] == "server_error"
        assert statuses[1][0] == 200
        assert json.loads(statuses[1][1])["choices"][0]["message"]["content"] == "custom"
        assert json.loads(statuses[2][1])["choices"][0]["message"]["content"] == ""
        assert statuses[3][0] == 200
        with pytest.raises(ValueError):
            json.loads(statuses[3][1])
        conn.close()
        status, _, _ = _post(stub, _body("boom"))
        assert status == 503
        assert [r["fault"] for r in stub.requests] == ["500", None, "empty", "garbled", "503"]
        assert [r["index"] for r in stub.requests] == [0, 1, 2, 3, 4]


def test_error_bodies_and_retry_after() -> None:
    faults = [Fault("429", retry_after=2), Fault("401"), Fault("404")]
    with StubServer(faults=faults) as stub:
        status, headers, raw = _post(stub, _body("q"))
        assert status == 429 and headers["retry-after"] == "2"
        assert json.loads(raw)["error"]["code"] == "rate_limit_exceeded"
        status, _, raw = _post(stub, _body("q"))
        assert status == 401 and json.loads(raw)["error"]["code"] == "invalid_api_key"
        status, _, raw = _post(stub, _body("q", model="gpt-x"))
        assert status == 404 and json.loads(raw)["error"]["code"] == "model_not_found"
        assert "gpt-x" in json.loads(raw)["error"]["message"]


def test_drop_closes_connection() -> None:
    with StubServer(faults=[Fault("drop")]) as stub:
        with pytest.raises((http.client.RemoteDisconnected, ConnectionError)):
            _post(stub, _body("q"))
        status, _, _ = _post(stub, _body("q"))
        assert status == 200
        assert [r["fault"] for r in stub.requests] == ["drop", None]


def test_concurrent_requests_overlap() -> None:
    with StubServer(latency=0.3) as stub:
        results: list[int] = []

        def client() -> None:
            results.append(_post(stub, _body("q"))[0])

        threads = [threading.Thread(target=client) for _ in range(4)]
        t0 = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.monotonic() - t0
        assert results == [200] * 4
        assert elapsed < 0.6
        assert stub.max_in_flight == 4 and stub.in_flight == 0
        assert all(r["t_end"] - r["t_start"] >= 0.29 for r in stub.requests)


def test_stop_returns_quickly_while_hanging() -> None:
    stub = StubServer(faults=[Fault("hang")]).start()
    errors: list[BaseException] = []

    def client() -> None:
        try:
            _post(stub, _body("q"))
        except (OSError, http.client.HTTPException) as exc:
            errors.append(exc)

    thread = threading.Thread(target=client)
    thread.start()
    deadline = time.monotonic() + 2
    while stub.in_flight == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert stub.in_flight == 1
    t0 = time.monotonic()
    stub.stop()
    assert time.monotonic() - t0 < 0.5
    thread.join(timeout=2)
    assert not thread.is_alive() and len(errors) == 1
    assert stub.requests[0]["fault"] == "hang" and stub.requests[0]["t_end"] is not None


def test_cli_prints_url_and_logs(tmp_path: Path) -> None:
    log = tmp_path / "calls.jsonl"
    pythonpath = os.pathsep.join(filter(None, [str(SRC), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONPATH": pythonpath}
    cmd = [sys.executable, "-m", "promptopt.testing.stub_server", "--port", "0", "--log", str(log)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().split()
        assert line[0] == "STUB_URL"
        parts = urlsplit(line[1])
        conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=5)
        conn.request("POST", "/v1/chat/completions", body=json.dumps(_body("<prompt>p</prompt>")))
        assert conn.getresponse().status == 200
        conn.close()
        entries = [json.loads(x) for x in log.read_text().splitlines()]
        assert len(entries) == 1 and entries[0]["role"] == "optimizer" and entries[0]["index"] == 0
        assert len(entries[0]["sha256"]) == 64
    finally:
        proc.terminate()
        assert proc.wait(timeout=5) == 0
