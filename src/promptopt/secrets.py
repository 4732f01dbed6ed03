"""Redaction of credentials from any text we show or store (standard library only).

By value: the configured secrets (the values of *_KEY / *_TOKEN / *_SECRET / *_PASSWORD
variables, and keys handed to a client), in any letter case. By pattern: things that look like
keys (`sk-…`, `Bearer …`), a URL's user-info (`http://user:pass@host`) and key-like query
parameters (`?api-key=…`).
"""

from __future__ import annotations

import os
import re
from collections.abc import Collection, Iterable, Mapping

__all__ = ["configured_secrets", "redact", "redact_secrets"]

REDACTED = "[redacted]"
MIN_SECRET_LENGTH = 8
_SECRET_VARIABLE = re.compile(r"(KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL)", re.IGNORECASE)
_KEYISH = re.compile(
    r"(?<![A-Za-z0-9])(sk-[A-Za-z0-9_\-]{6,}|Bearer\s+[A-Za-z0-9._\-~+/]+=*|key-[A-Za-z0-9]{16,})", re.IGNORECASE
)
# scheme://user-info@ : everything between '//' and '@' that has no '/', space or '@' in it.
_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.\-]*://)[^/\s@'\"<>]+@")
_QUERY_SECRET = re.compile(
    r"(?i)([?&;](?:[a-z0-9_.\-]*?)(?:key|token|secret|password|passwd|pwd|sig|signature|authorization|credential)"
    r"[a-z0-9_.\-]*=)[^&#\s'\"<>]+"
)


def configured_secrets(
    env: Mapping[str, str] | None = None, extra: Iterable[str] = (), words: bool = True
) -> list[str]:
    """The values of secret-named variables (8+ characters) plus every non-empty `extra`, longest first.

    `words=False` leaves out variable values made of letters only (`TOKENIZERS_PARALLELISM=disabled`):
    no provider key looks like that, and redacting model replies must not eat ordinary words.
    """
    env = os.environ if env is None else env
    values = {
        v
        for name, v in env.items()
        if _SECRET_VARIABLE.search(name) and len(v) >= MIN_SECRET_LENGTH and (words or not v.isalpha())
    }
    values.update(v for v in extra if v)
    return sorted(values, key=len, reverse=True)


def redact_secrets(text: str, secrets: Collection[str]) -> str:
    """Replace each of `secrets` in `text`, whatever its letter case (no pattern matching)."""
    for secret in secrets:
        if secret and secret.lower() in text.lower():
            text = re.sub(re.escape(secret), REDACTED, text, flags=re.IGNORECASE)
    return text


def redact(text: str, secrets: Collection[str] = ()) -> str:
    """Remove the configured secrets, `secrets`, and anything that looks like a credential."""
    text = redact_secrets(text, configured_secrets(extra=secrets))
    text = _USERINFO.sub(lambda m: f"{m.group(1)}{REDACTED}@", text)
    text = _QUERY_SECRET.sub(lambda m: f"{m.group(1)}{REDACTED}", text)
    return _KEYISH.sub(REDACTED, text)
