"""Paths typed or picked in the web page, confined to one folder before anything is read or written.

A page can be anyone's who reaches the server, so a path from it is a name inside the workspace
and nothing else: no `~`, no absolute path, no `..`, no symlink that leads out, no control
characters. Pure functions, no Streamlit, so they are tested like the engine.
"""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path, PureWindowsPath

from promptopt.errors import WorkspaceError

TEMPLATE_SUFFIXES = (".yaml", ".yml")


def shown(text: str) -> str:
    """The user's text for a one-line message: control characters as '?', at most 80 characters."""
    clean = "".join("?" if _is_control(c) else c for c in text)
    return clean if len(clean) <= 80 else clean[:77] + "..."


def _is_control(char: str) -> bool:
    # Cc: C0/C1 controls, NUL, newlines; Cf: invisible format characters (bidi overrides);
    # Zl/Zp: line and paragraph separators. None belongs in a file name a person types.
    return unicodedata.category(char) in {"Cc", "Cf", "Zl", "Zp"}


def confine(base: Path, relative: str, *, field: str = "path") -> Path:
    """The file `relative` names inside `base`, resolved; a one-line WorkspaceError for anything
    that could land elsewhere or is not a plain file name (the base folder itself included)."""
    text = relative.strip()

    def refuse(why: str) -> WorkspaceError:
        return WorkspaceError(f"{field} '{shown(text)}': {why}")

    if not text:
        raise WorkspaceError(f"{field} is empty: give a file name inside {base}")
    if any(_is_control(c) for c in text):
        raise refuse("contains a control character")
    if text.startswith(("/", "\\")) or PureWindowsPath(text).anchor:
        raise refuse(f"must be relative to {base}, not an absolute path")
    if "\\" in text or ":" in text:
        raise refuse("must not contain '\\' or ':' (use / between folders)")
    parts = [p for p in text.split("/") if p not in ("", ".")]
    if any(p.startswith("~") for p in parts):
        raise refuse(f"must not use '~': it is relative to {base}")
    if ".." in parts:
        raise refuse(f"must not contain '..': it stays inside {base}")
    if not parts:
        raise refuse(f"names no file inside {base}")
    root = base.resolve()
    try:
        target = root.joinpath(*parts).resolve()  # follows symlinks, even dangling ones
    except (OSError, RuntimeError) as exc:  # RuntimeError: a symlink loop
        raise refuse(f"cannot be resolved ({exc})") from None
    if target == root or not target.is_relative_to(root):
        raise refuse(f"leads outside {base} (through a symlink)")
    return target


def save_text(base: Path, relative: str, text: str, *, overwrite: bool, suffixes: tuple[str, ...]) -> Path:
    """Write `text` to `relative` inside `base` (atomically); nothing is written if any check fails."""
    from promptopt.files import atomic_write

    path = confine(base, relative)
    if path.suffix.lower() not in suffixes:
        raise WorkspaceError(f"path '{shown(relative.strip())}': must end with {' or '.join(suffixes)}")
    if path.is_dir():
        raise WorkspaceError(f"{path}: is a folder")
    if path.exists() and not overwrite:
        raise WorkspaceError(f"{path} exists: tick 'Overwrite' to replace it")
    try:
        atomic_write(path, text)
    except OSError as exc:
        raise WorkspaceError(f"{path}: cannot write ({exc.strerror or exc})") from None
    return path


def plain_stem(name: str, default: str = "template") -> str:
    """A file stem that is safe in a run name, a widget key and a download: letters, digits, - _ ."""
    stem = Path(name.replace("\\", "/")).stem
    clean = re.sub(r"[^\w.-]+", "-", stem, flags=re.ASCII).strip("-_.")
    return clean[:80] or default
