"""promptopt.ui.serve: only requests that name this server reach the UI (DNS rebinding), tested on
the pure checks and on `promptopt ui` served for real."""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import importlib.util
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from promptopt.ui import serve
from tests.conftest import require

# --- the pure checks ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "parts"),
    [
        ("localhost:8501", ("localhost", "8501")),
        ("LocalHost.:8501", ("localhost", "8501")),
        ("127.0.0.1", ("127.0.0.1", "")),
        ("[::1]:8501", ("::1", "8501")),
        ("::1", ("::1", "")),
        ("ui.example", ("ui.example", "")),
        ("my_box:80", ("my_box", "80")),
        ("", None),
        (None, None),
        ("localhost:", None),
        ("localhost:85o1", None),
        ("localhost:8501@evil.example", None),
        ("evil.example/x", None),
        ("a b", None),
        ("[::1", None),
        ("[::1]x", None),
        ("-bad.example", None),
    ],
)
def test_split_host(value: str | None, parts: tuple[str, str] | None) -> None:
    assert serve.split_host(value) == parts


def test_allowed_hosts_are_loopback_the_bound_address_and_the_flags() -> None:
    assert serve.allowed_hosts("127.0.0.1") == {"localhost", "127.0.0.1", "::1"}
    assert serve.allowed_hosts("0.0.0.0") == {"localhost", "127.0.0.1", "::1"}  # a wildcard is no name
    assert serve.allowed_hosts("::") == {"localhost", "127.0.0.1", "::1"}
    assert "192.168.1.5" in serve.allowed_hosts("192.168.1.5")
    assert serve.allowed_hosts("0.0.0.0", ["UI.example:443", "[fe80::1]"]) >= {"ui.example", "fe80::1"}
    with pytest.raises(ValueError, match="--allow-host 'a/b'"):
        serve.allowed_hosts("127.0.0.1", ["a/b"])


def scope(kind: str, host: str | None, origin: str | None = None) -> dict[str, Any]:
    headers = [(b"host", host.encode())] if host is not None else []
    if origin is not None:
        headers.append((b"origin", origin.encode()))
    return {"type": kind, "headers": headers}


ALLOWED = serve.allowed_hosts("127.0.0.1", ["ui.example"])


@pytest.mark.parametrize(
    ("kind", "host", "origin", "refused"),
    [
        ("http", "127.0.0.1:8501", None, False),
        ("http", "localhost:9000", None, False),  # an SSH tunnel on another local port
        ("http", "ui.example", None, False),
        ("http", "evil.example:8501", None, True),
        ("http", "127.0.0.1.evil.example", None, True),
        ("http", None, None, True),
        ("http", "localhost:8501", "http://evil.example", False),  # plain HTTP: CORS is Streamlit's
        ("websocket", "localhost:8501", None, False),
        ("websocket", "localhost:8501", "http://localhost:8501", False),
        ("websocket", "ui.example", "https://ui.example", False),
        ("websocket", "evil.example:8501", "http://evil.example:8501", True),  # DNS rebinding
        ("websocket", "localhost:8501", "http://evil.example", True),
        ("websocket", "localhost:8501", "http://localhost:3000", True),  # another local site
        ("websocket", "localhost:8501", "null", True),
    ],
)
def test_refusal(kind: str, host: str | None, origin: str | None, refused: bool) -> None:
    assert (serve.refusal(scope(kind, host, origin), ALLOWED) is not None) == refused


def test_host_guard_answers_403_and_passes_the_rest_on() -> None:
    reached: list[str] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        reached.append(scope["type"])

    async def drive(s: dict[str, Any]) -> list[dict[str, Any]]:
        sent: list[dict[str, Any]] = []

        async def receive() -> dict[str, Any]:
            return {"type": "websocket.connect"}

        async def send(message: Any) -> None:
            sent.append(message)

        await serve.HostGuard(app, ALLOWED)(s, receive, send)
        return sent

    start, body = asyncio.run(drive(scope("http", "evil.example:8501")))
    assert start["status"] == 403 and b"--allow-host" in body["body"] and b"evil.example" in body["body"]
    assert asyncio.run(drive(scope("websocket", "evil.example"))) == [{"type": "websocket.close", "code": 1008}]
    assert asyncio.run(drive(scope("http", "localhost:8501"))) == [] and reached == ["http"]
    assert asyncio.run(drive({"type": "lifespan"})) == [] and reached == ["http", "lifespan"]


def test_importing_serve_stays_light() -> None:
    code = "import sys, promptopt.ui.serve; print(sorted(m for m in ('streamlit', 'starlette') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# --- served for real ---------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def get(port: int, host: str, path: str = "/_stcore/health") -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.putrequest("GET", path, skip_host=True)
        conn.putheader("Host", host)
        conn.endheaders()
        return conn.getresponse().status
    finally:
        conn.close()


def upgrade(port: int, host: str, origin: str | None = None) -> int:
    """The status a websocket upgrade to Streamlit's stream gets: 101 accepted, 403 refused."""
    lines = [
        "GET /_stcore/stream HTTP/1.1",
        f"Host: {host}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
        "Sec-WebSocket-Version: 13",
        "Sec-WebSocket-Protocol: streamlit",
    ] + ([f"Origin: {origin}"] if origin else [])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        reply = b""
        while b"\r\n" not in reply:
            chunk = s.recv(4096)
            if not chunk:
                break
            reply += chunk
    return int(reply.split(b" ", 2)[1])


@pytest.fixture
def served(tmp_path: Path) -> Iterator[int]:
    """`promptopt ui` on a free port with --allow-host proxy.example; its process group is killed
    at teardown, pass or fail."""
    require(importlib.util.find_spec("streamlit") is not None, "streamlit is not installed: pip install -e '.[ui]'")
    port = free_port()
    command = [sys.executable, "-m", "promptopt", "ui", "--port", str(port), "--workspace", str(tmp_path / "ws")]
    command += ["--allow-host", "proxy.example"]
    log = (tmp_path / "ui.log").open("wb")
    proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, cwd=tmp_path)
    try:
        deadline = time.monotonic() + 60
        while True:
            with contextlib.suppress(OSError):
                if get(port, f"127.0.0.1:{port}") == 200:
                    break
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"promptopt ui did not come up:\n{(tmp_path / 'ui.log').read_text()}")
            time.sleep(0.2)
        yield port
    finally:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        log.close()


def test_a_foreign_host_is_refused_over_http_and_websocket(served: int) -> None:
    port = served
    for host in (f"evil.example:{port}", "evil.example", f"127.0.0.1.evil.example:{port}"):
        assert get(port, host) == 403, host
        assert get(port, host, "/") == 403, host
        assert upgrade(port, host) == 403, host
    for host in (f"localhost:{port}", f"127.0.0.1:{port}", f"[::1]:{port}", "proxy.example"):
        assert get(port, host) == 200, host
        assert get(port, host, "/") == 200, host
    assert upgrade(port, f"localhost:{port}") == 101
    assert upgrade(port, f"localhost:{port}", origin=f"http://localhost:{port}") == 101
    assert upgrade(port, "proxy.example", origin="https://proxy.example") == 101


def test_a_foreign_origin_is_still_refused(served: int) -> None:
    port = served
    assert upgrade(port, f"localhost:{port}", origin="http://evil.example") == 403
    assert upgrade(port, f"localhost:{port}", origin="http://localhost:1") == 403
    assert upgrade(port, f"evil.example:{port}", origin=f"http://evil.example:{port}") == 403
