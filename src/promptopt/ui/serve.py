"""The `promptopt ui` server process: Streamlit's app (`st.App`) behind a Host check.

A page on another site can reach a server on localhost by DNS rebinding: its own name starts
resolving to 127.0.0.1, so the browser's requests carry `Host: evil.example`. Every HTTP request
and websocket upgrade whose Host (or, on a websocket, whose Origin) names anything but this
server's own names is refused with 403 before Streamlit sees it. The middleware goes in through
`st.App(middleware=...)`, Streamlit's public ASGI entry point, not by patching its internals.

Run by `promptopt ui` as `python -m promptopt.ui.serve --address A --port P [--allow-host N]...`.
Only the standard library is imported at module level: the CLI validates names with it.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any
from urllib.parse import urlsplit

LOOPBACK = ("localhost", "127.0.0.1", "::1")
WILDCARDS = frozenset({"", "0.0.0.0", "::"})
_NAME = re.compile(r"[a-z0-9_]([a-z0-9_.-]*[a-z0-9_])?")  # a DNS name or an IPv4 address
_IPV6 = re.compile(r"[0-9a-f:.]+(%[a-z0-9_.-]+)?")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]], Awaitable[None]]


def split_host(value: str | None) -> tuple[str, str] | None:
    """(name, port) of a Host header, an Origin's host or an --allow-host value ('name',
    'name:port', '[::1]:port', '::1'): the name lower-case without a trailing dot, the port ''
    when absent; None when it is not one."""
    text = (value or "").strip().lower()
    port = ""
    if text.startswith("["):  # [v6] or [v6]:port
        name, sep, rest = text[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            return None
        port = rest[1:]
    elif text.count(":") > 1:  # a bare IPv6 address (an --allow-host value, never a Host header)
        name = text
    else:
        name, sep, port = text.partition(":")
        if sep and not port:
            return None
        name = name.rstrip(".")
    if port and not (port.isascii() and port.isdigit()):
        return None
    valid = _IPV6.fullmatch(name) if ":" in name else _NAME.fullmatch(name)
    return (name, port) if valid else None


def host_name(value: str | None) -> str | None:
    """The name in a Host header or an --allow-host value, without its port; None if malformed."""
    parts = split_host(value)
    return parts[0] if parts else None


def allowed_hosts(address: str, extra: Iterable[str] = ()) -> frozenset[str]:
    """The names a request may carry in its Host: the loopback names, the bound address (unless
    it is a wildcard such as 0.0.0.0) and the --allow-host names."""
    names = set(LOOPBACK)
    bound = host_name(address)
    if bound and address.strip() not in WILDCARDS:
        names.add(bound)
    for value in extra:
        name = host_name(value)
        if name is None:
            raise ValueError(f"--allow-host {value!r}: not a host name or address")
        names.add(name)
    return frozenset(names)


def refusal(scope: Scope, allowed: frozenset[str]) -> str | None:
    """Why this request is refused (one line), or None. The Host must name this server; a
    websocket's Origin, when sent (browsers always send it), must be that same host and port."""
    headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
    host = split_host(headers.get("host"))
    if host is None or host[0] not in allowed:
        shown = f"'{host[0]}'" if host else "missing or malformed"
        return f"Host {shown} is not allowed: start promptopt ui with --allow-host NAME for a name of yours"
    if scope["type"] == "websocket" and "origin" in headers:
        origin = headers["origin"]
        if origin == "null" or split_host(urlsplit(origin).netloc) != host:
            return "Origin is not allowed: the page comes from another site"
    return None


class HostGuard:
    """ASGI middleware: 403 for HTTP requests and websocket upgrades aimed at another name."""

    def __init__(self, app: ASGIApp, allowed: frozenset[str]) -> None:
        self.app = app
        self.allowed = allowed

    async def __call__(
        self, scope: Scope, receive: Callable[[], Awaitable[Message]], send: Callable[[Message], Awaitable[None]]
    ) -> None:
        why = refusal(scope, self.allowed) if scope["type"] in ("http", "websocket") else None
        if why is None:
            await self.app(scope, receive, send)
        elif scope["type"] == "http":
            body = (why + "\n").encode()
            headers = [
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"content-length", str(len(body)).encode()),
                (b"x-content-type-options", b"nosniff"),
            ]
            await send({"type": "http.response.start", "status": 403, "headers": headers})
            await send({"type": "http.response.body", "body": body})
        else:
            await receive()  # websocket.connect
            await send({"type": "websocket.close", "code": 1008})  # before accept: the server answers 403


def streamlit_options(address: str, port: int) -> dict[str, Any]:
    """Streamlit's config for our server (options Streamlit 1.59 has); the security settings are
    pinned so that a user's ~/.streamlit/config.toml cannot turn them off."""
    return {
        "server.address": address,
        "server.port": port,
        "server.headless": True,
        "server.fileWatcherType": "none",
        "browser.gatherUsageStats": False,
        "client.toolbarMode": "minimal",
        # Streamlit's own websocket Origin check (under ours) and upload XSRF token.
        "server.enableCORS": True,
        "server.enableXsrfProtection": True,
        "server.enableStaticServing": False,
        # An upload is a template held in memory; 10 MB is plenty.
        "server.maxUploadSize": 10,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m promptopt.ui.serve", description=__doc__)
    parser.add_argument("--address", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8501)
    parser.add_argument("--allow-host", action="append", default=[])
    args = parser.parse_args(argv)
    try:
        allowed = allowed_hosts(args.address, args.allow_host)
    except ValueError as exc:
        parser.exit(2, f"error: {exc}\n")
    try:
        from starlette.middleware import Middleware
        from streamlit.starlette import App

        App.run  # noqa: B018 (st.App.run: Streamlit 1.59+)
    except (ImportError, AttributeError):
        parser.exit(2, "error: the web UI needs streamlit 1.59 or newer: pip install -U 'promptopt[ui]'\n")

    from promptopt.ui import APP

    sys.argv = sys.argv[:1]  # App.run hands the rest to the page script as its argv
    app = App(str(APP), middleware=[Middleware(HostGuard, allowed=allowed)])
    app.run(config=streamlit_options(args.address, args.port))


if __name__ == "__main__":
    main()
