"""Outside text (models, templates, providers, files) as data: never markup, never terminal control.

`clean` strips control characters but newline and tab (ESC, BEL, CR, C1 and DEL can clear the
screen, retitle the window or forge hyperlinks); `safe_text` wraps the result in a rich `Text`,
which rich renders literally (no `[markup]`, no `:emoji:`). `json_dumps` keeps data exact and
escapes what `json.dumps(ensure_ascii=False)` would leave raw (DEL and C1).
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.text import Text

__all__ = ["clean", "json_dumps", "safe_text"]

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_RAW_IN_JSON = re.compile(r"[\x7f-\x9f\u2028\u2029]")


def clean(text: object) -> str:
    """`text` as a string without control characters except newline and tab (CRLF becomes LF)."""
    value = "" if text is None else text if isinstance(text, str) else str(text)
    return _CONTROL.sub("", value.replace("\r\n", "\n"))


def safe_text(text: object, style: str = "") -> Text:
    """A rich Text showing `text` literally: markup is not parsed, control characters are gone."""
    from rich.text import Text

    return Text(clean(text), style=style)


def json_dumps(data: Any, **kwargs: Any) -> str:
    """JSON with non-ASCII kept readable and every control character escaped (C1 and DEL too)."""
    text = json.dumps(data, ensure_ascii=False, **kwargs)
    return _RAW_IN_JSON.sub(lambda m: f"\\u{ord(m.group()):04x}", text)
