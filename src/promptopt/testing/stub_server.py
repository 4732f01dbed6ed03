"""Local OpenAI-compatible chat-completions stub server (standard library only).

Drives the real litellm client without network access::

    with StubServer(latency=0.05) as stub:
        await litellm.acompletion(model="openai/stub", api_base=stub.url, api_key="sk-stub", messages=...)
        assert stub.count("executor") == 1

Each completion request is classified from the LAST user message (case-sensitive):
``"<choose>"`` -> ``"judge"``, else ``"<prompt>"`` -> ``"optimizer"``, else ``"executor"``.
Faults (HTTP errors, garbled bodies, hangs, dropped connections, slow answers) can be
injected per request through a schedule or from a custom responder.

Also runnable: ``python -m promptopt.testing.stub_server --port 0 --latency 0.3`` prints
``STUB_URL http://127.0.0.1:<port>/v1`` and serves until SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import math
import random
import signal
import socket
import socketserver
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

__all__ = [
    "FAULT_KINDS",
    "Fault",
    "FaultSchedule",
    "Responder",
    "StubServer",
    "classify",
    "main",
]

FAULT_KINDS = frozenset({"500", "503", "429", "400", "401", "404", "garbled", "empty", "hang", "drop", "slow"})
_HANG_MAX_SECONDS = 3600.0
_GARBLED_BODY = b'{"choices": [tr'


@dataclass
class Fault(Exception):
    """A fault to inject for one request; may be returned or raised by a responder.

    ``delay`` is extra sleep before acting (for ``"hang"`` it is the hang duration,
    0 meaning up to 3600 s); ``retry_after`` sets the ``Retry-After`` header of a 429.
    """

    kind: str
    retry_after: float | None = None
    delay: float = 0.0

    def __post_init__(self) -> None:
        self.kind = str(self.kind)
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}; expected one of {sorted(FAULT_KINDS)}")
        Exception.__init__(self, self.kind)

    def __str__(self) -> str:
        return f"Fault({self.kind})"


Responder = Callable[[str, dict[str, Any]], str | Fault | None]
"""``(role, body) -> content``; return ``None`` for the default reply, or a ``Fault``."""

FaultSchedule = Sequence[Fault | None] | Callable[[int, str, dict[str, Any]], Fault | None]
"""A list consumed by request index, or ``(index, role, body) -> Fault | None``."""


def _text_of(content: Any) -> str:
    """Return the text of a message content (string or list of content parts)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts: list[str] = []
        for part in content:
            if isinstance(part, str):
                parts.append(part)
            elif isinstance(part, dict) and isinstance(part.get("text"), str):
                parts.append(part["text"])
        return "".join(parts)
    return str(content)


def _messages(body: dict[str, Any]) -> list[dict[str, Any]]:
    msgs = body.get("messages")
    if not isinstance(msgs, list):
        return []
    return [m for m in msgs if isinstance(m, dict)]


def last_user_text(body: dict[str, Any]) -> str:
    """Return the text of the last user message of a request body ("" if none)."""
    for msg in reversed(_messages(body)):
        if msg.get("role") == "user":
            return _text_of(msg.get("content"))
    return ""


def classify(body: dict[str, Any]) -> str:
    """Classify a request as ``"judge"``, ``"optimizer"`` or ``"executor"``."""
    text = last_user_text(body)
    if "<choose>" in text:
        return "judge"
    if "<prompt>" in text:
        return "optimizer"
    return "executor"


def approx_tokens(text: str) -> int:
    """Deterministic token estimate: ``ceil(len(text) / 4)``."""
    return math.ceil(len(text) / 4)


def _error(message: str, type_: str, code: str | None = None, param: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def _format_seconds(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


class _Server(ThreadingHTTPServer):
    """Threading HTTP server that tracks open connections and stays quiet."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256

    def __init__(self, address: tuple[str, int], stub: StubServer) -> None:
        self.stub = stub
        self._conns: set[socket.socket] = set()
        self._conns_lock = threading.Lock()
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # Skip HTTPServer's socket.getfqdn(), which can stall on a slow resolver.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = int(port)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        with self._conns_lock:
            self._conns.add(request)
        try:
            super().process_request_thread(request, client_address)
        finally:
            with self._conns_lock:
                self._conns.discard(request)

    def close_connections(self) -> None:
        """Shut down every open client connection so handler threads exit."""
        with self._conns_lock:
            conns = list(self._conns)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Stay silent: clients vanishing mid-request are expected here."""


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "promptopt-stub/1.0"
    sys_version = ""
    disable_nagle_algorithm = True
    server: _Server
    _before_reply: Callable[[], None] | None = None

    def _finish_record(self) -> None:
        """Close the request record just before the reply goes out (so callers see it done)."""
        callback, self._before_reply = self._before_reply, None
        if callback is not None:
            callback()

    def log_message(self, format: str, *args: Any) -> None:
        """Never log requests."""

    # -- routing -----------------------------------------------------------------
    def _route(self) -> str:
        path = self.path.split("?", 1)[0].split("#", 1)[0]
        return path.rstrip("/") or "/"

    def do_GET(self) -> None:
        self._read_body()
        if self._route() in ("/v1/models", "/models"):
            self._send_json(
                200,
                {
                    "object": "list",
                    "data": [{"id": "stub", "object": "model", "created": 0, "owned_by": "promptopt"}],
                },
            )
        else:
            self._not_found()

    def do_POST(self) -> None:
        raw = self._read_body()
        if raw is None:
            return
        if self._route() not in ("/v1/chat/completions", "/chat/completions"):
            self._not_found()
            return
        try:
            body = json.loads(raw.decode("utf-8") or "null")
        except (UnicodeDecodeError, ValueError):
            body = None
        if not isinstance(body, dict):
            msg = "We could not parse the JSON body of your request."
            self._send_json(400, _error(msg, "invalid_request_error"))
            return
        self.server.stub._handle_completion(self, body, raw)

    def _other(self) -> None:
        self._read_body()
        self._not_found()

    do_PUT = do_DELETE = do_PATCH = _other

    # -- I/O helpers ------------------------------------------------------------------
    def _read_body(self) -> bytes | None:
        """Read the request body (Content-Length or chunked); None if it is malformed."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks: list[bytes] = []
            while True:
                line = self.rfile.readline(65537)
                try:
                    size = int(line.split(b";", 1)[0].strip() or b"0", 16)
                except ValueError:
                    self.close_connection = True
                    self._send_json(400, _error("Malformed chunked body.", "invalid_request_error"))
                    return None
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline(65537)
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            self.close_connection = True
            self._send_json(400, _error("Invalid Content-Length.", "invalid_request_error"))
            return None
        return self.rfile.read(length) if length > 0 else b""

    def _send_bytes(
        self,
        status: int,
        data: bytes,
        content_type: str = "application/json",
        headers: dict[str, str] | None = None,
    ) -> None:
        self._finish_record()
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            if self.close_connection:
                self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(data)
            self.wfile.flush()
        except OSError:
            self.close_connection = True

    def _send_json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        self._send_bytes(status, json.dumps(payload).encode("utf-8"), headers=headers)

    def _not_found(self) -> None:
        msg = f"Unknown request URL: {self.command} {self.path}."
        self._send_json(404, _error(msg, "invalid_request_error", code="unknown_url"))

    def _abort(self) -> None:
        """Close the connection without sending anything."""
        self._finish_record()
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)


class StubServer:
    """OpenAI-compatible chat-completions stub served from a daemon thread.

    Args:
        latency: seconds slept (in the handler thread, so requests overlap) before
            every completion answer, faults included except ``"drop"``.
        responder: ``(role, body) -> str | Fault | None``; ``None`` (or a ``None``
            return) gives the deterministic default reply. It may raise a ``Fault``.
        faults: ``None``, a list of ``Fault | None`` applied by request index
            (exhausted -> normal answers), or ``(index, role, body) -> Fault | None``.
        host, port: bind address; port 0 picks a free port.
        log_path: if set, one JSON line per finished completion request is appended.

    ``latency``, ``responder`` and ``faults`` are plain attributes and may be changed
    between requests. ``reset()`` clears records and counters, so a fault list
    applies again from its start.
    """

    def __init__(
        self,
        latency: float = 0.0,
        responder: Responder | None = None,
        faults: FaultSchedule | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        log_path: str | Path | None = None,
    ) -> None:
        self.latency = float(latency)
        self.responder = responder
        self.faults = faults
        self.host = host
        self.port = int(port)
        self.log_path = Path(log_path) if log_path is not None else None
        self._lock = threading.Lock()
        self._records: list[dict[str, Any]] = []
        self._next_index = 0
        self._revision = 0
        self._in_flight = 0
        self._max_in_flight = 0
        self._stop_event = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ----------------------------------------------------------------------
    def start(self) -> StubServer:
        """Bind and start serving in a daemon thread; returns ``self``."""
        if self._server is not None:
            return self
        self._stop_event = threading.Event()
        server = _Server((self.host, self.port), self)
        self.port = server.server_port
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"promptopt-stub-{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving promptly, even while handlers hang or sleep."""
        server, thread = self._server, self._thread
        if server is None:
            return
        self._stop_event.set()
        server.shutdown()
        server.server_close()
        server.close_connections()
        if thread is not None:
            thread.join(timeout=2.0)
        self._server = None
        self._thread = None

    def __enter__(self) -> StubServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        """Whether the server is currently serving."""
        return self._server is not None

    @property
    def base_url(self) -> str:
        """``http://host:port`` without the ``/v1`` suffix."""
        if self._server is None:
            raise RuntimeError("StubServer is not running; call start() or use it as a context manager")
        return f"http://{self.host}:{self.port}"

    @property
    def url(self) -> str:
        """OpenAI-style API base, ``http://127.0.0.1:<port>/v1``."""
        return f"{self.base_url}/v1"

    # -- observability ------------------------------------------------------------------
    @property
    def requests(self) -> list[dict[str, Any]]:
        """Snapshot of recorded completion requests, in arrival order."""
        with self._lock:
            return [dict(r) for r in self._records]

    def count(self, role: str | None = None) -> int:
        """Number of completion requests received (optionally for one role)."""
        with self._lock:
            if role is None:
                return len(self._records)
            return sum(1 for r in self._records if r["role"] == role)

    @property
    def in_flight(self) -> int:
        """Number of completion requests currently open."""
        with self._lock:
            return self._in_flight

    @property
    def max_in_flight(self) -> int:
        """Peak number of concurrently open completion requests."""
        with self._lock:
            return self._max_in_flight

    def reset(self) -> None:
        """Clear records and counters (request index, revisions, peak concurrency)."""
        with self._lock:
            self._records = []
            self._next_index = 0
            self._revision = 0
            self._max_in_flight = self._in_flight

    # -- replies ------------------------------------------------------------------------
    def default_reply(self, role: str, body: dict[str, Any]) -> str:
        """The deterministic default reply for a role."""
        if role == "judge":
            return "<analyse>Both answer sets were compared.</analyse>\n<choose>A</choose>"
        if role == "optimizer":
            with self._lock:
                self._revision += 1
                revision = self._revision
            prompt = f"Answer carefully and concisely. Revision {revision}."
            return (
                "<analyse>The prompt can be clearer.</analyse>\n"
                "<modification>Added an instruction.</modification>\n"
                f"<prompt>\n{prompt}\n</prompt>"
            )
        return "Answer: " + " ".join(last_user_text(body).split())[:60]

    def _reply(self, role: str, body: dict[str, Any]) -> str | Fault:
        if self.responder is None:
            return self.default_reply(role, body)
        try:
            result = self.responder(role, body)
        except Fault as fault:
            return fault
        if result is None:
            return self.default_reply(role, body)
        return result if isinstance(result, Fault) else str(result)

    def _scheduled_fault(self, index: int, role: str, body: dict[str, Any]) -> Fault | None:
        faults = self.faults
        if faults is None:
            return None
        if callable(faults):
            return faults(index, role, body)
        return faults[index] if index < len(faults) else None

    # -- request handling -----------------------------------------------------------------
    def _begin(self, role: str, body: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            record = {
                "index": self._next_index,
                "role": role,
                "body": body,
                "fault": None,
                "t_start": time.monotonic(),
                "t_end": None,
            }
            self._next_index += 1
            self._records.append(record)
            self._in_flight += 1
            self._max_in_flight = max(self._max_in_flight, self._in_flight)
            return record

    def _end(self, record: dict[str, Any], raw: bytes) -> None:
        with self._lock:
            record["t_end"] = time.monotonic()
            self._in_flight -= 1
            if self.log_path is None:
                return
            line = {
                "index": record["index"],
                "role": record["role"],
                "fault": record["fault"],
                "t_start": record["t_start"],
                "t_end": record["t_end"],
                "sha256": hashlib.sha256(raw).hexdigest(),
            }
            with self.log_path.open("a", encoding="utf-8") as fh:
                fh.write(json.dumps(line) + "\n")

    def _sleep(self, seconds: float) -> None:
        if seconds > 0:
            self._stop_event.wait(seconds)

    def _handle_completion(self, handler: _Handler, body: dict[str, Any], raw: bytes) -> None:
        role = classify(body)
        record = self._begin(role, body)
        # In memory only (never in log_path): tests check which key a request carried.
        record["authorization"] = handler.headers.get("Authorization")
        handler._before_reply = lambda: self._end(record, raw)
        try:
            self._answer(handler, record, role, body)
        finally:
            handler._finish_record()

    def _answer(self, handler: _Handler, record: dict[str, Any], role: str, body: dict[str, Any]) -> None:
        index = record["index"]
        model = str(body.get("model") or "stub")
        if body.get("stream"):
            record["fault"] = "400"
            msg = "Streaming is not supported by the promptopt stub server."
            handler._send_json(400, _error(msg, "invalid_request_error", param="stream"))
            return

        content: str | None = None
        custom_reply_used = False
        try:
            fault = self._scheduled_fault(index, role, body)
            if fault is None:
                reply = self._reply(role, body)
                custom_reply_used = True
                if isinstance(reply, Fault):
                    fault = reply
                else:
                    content = reply
        except Exception as exc:  # a broken responder or schedule: report it, do not crash
            record["fault"] = "responder_error"
            handler._send_json(500, _error(f"stub responder raised {exc!r}", "server_error"))
            return
        record["fault"] = fault.kind if fault else None

        if fault is not None and fault.kind == "drop":
            self._sleep(fault.delay)
            handler._abort()
            return
        extra = fault.delay if fault is not None and fault.kind != "hang" else 0.0
        self._sleep(self.latency + extra)
        if self._stop_event.is_set():
            handler._abort()
            return

        if fault is None or fault.kind in ("slow", "empty"):
            if fault is not None and fault.kind == "empty":
                content = ""
            elif content is None:
                reply = self.default_reply(role, body) if custom_reply_used else self._reply(role, body)
                content = reply if isinstance(reply, str) else self.default_reply(role, body)
            handler._send_json(200, self._completion(model, body, content))
            return

        kind = fault.kind
        if kind == "hang":
            self._sleep(fault.delay if fault.delay > 0 else _HANG_MAX_SECONDS)
            handler._abort()
        elif kind == "garbled":
            handler._send_bytes(200, _GARBLED_BODY)
        elif kind == "429":
            headers = {}
            if fault.retry_after is not None:
                headers["Retry-After"] = _format_seconds(fault.retry_after)
            msg = f"Rate limit reached for {model} on requests per min (RPM). Please try again later."
            handler._send_json(429, _error(msg, "requests", code="rate_limit_exceeded"), headers)
        elif kind == "500":
            msg = "The server had an error while processing your request. Sorry about that!"
            handler._send_json(500, _error(msg, "server_error"))
        elif kind == "503":
            msg = "The engine is currently overloaded, please try again later."
            handler._send_json(503, _error(msg, "server_error"))
        elif kind == "400":
            msg = "Invalid request (injected fault)."
            handler._send_json(400, _error(msg, "invalid_request_error"))
        elif kind == "401":
            msg = "Incorrect API key provided"
            handler._send_json(401, _error(msg, "invalid_request_error", code="invalid_api_key"))
        elif kind == "404":
            msg = f"The model `{model}` does not exist or you do not have access to it."
            handler._send_json(404, _error(msg, "invalid_request_error", code="model_not_found"))

    def _completion(self, model: str, body: dict[str, Any], content: str) -> dict[str, Any]:
        prompt_tokens = sum(approx_tokens(_text_of(m.get("content"))) for m in _messages(body))
        completion_tokens = approx_tokens(content)
        return {
            "id": f"chatcmpl-stub-{uuid.uuid4().hex[:24]}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": content},
                    "logprobs": None,
                    "finish_reason": "stop",
                }
            ],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        }


def _rate_faults(rate: float, seed: int, kind: str) -> Callable[[int, str, dict[str, Any]], Fault | None]:
    """Fault schedule failing a seeded, index-deterministic share of requests."""

    def schedule(index: int, role: str, body: dict[str, Any]) -> Fault | None:
        draw = random.Random(f"{seed}:{index}").random()
        return Fault(kind) if draw < rate else None

    return schedule


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point: serve until SIGTERM/SIGINT."""
    parser = argparse.ArgumentParser(
        prog="python -m promptopt.testing.stub_server",
        description="Local OpenAI-compatible chat-completions stub server.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port (default)")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds slept before each answer")
    parser.add_argument("--fail-rate", type=float, default=0.0, help="share of requests that fail")
    parser.add_argument("--fail-kind", default="500", choices=sorted(FAULT_KINDS), help="fault used by --fail-rate")
    parser.add_argument("--seed", type=int, default=0, help="seed for --fail-rate")
    parser.add_argument("--log", default=None, help="append one JSON line per completion request")
    args = parser.parse_args(argv)

    faults = _rate_faults(args.fail_rate, args.seed, args.fail_kind) if args.fail_rate > 0 else None
    stop = threading.Event()

    def _on_signal(signum: int, frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    stub = StubServer(latency=args.latency, faults=faults, host=args.host, port=args.port, log_path=args.log)
    with stub:
        print(f"STUB_URL {stub.url}", flush=True)
        while not stop.wait(0.2):
            pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
