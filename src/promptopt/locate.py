"""Where a run lives: WORKSPACE/NAME as given, or a bare NAME in the default workspace folder."""

from __future__ import annotations

from pathlib import Path

from promptopt.errors import WorkspaceError
from promptopt.workspace import Workspace


def find_workspace(path: str | Path) -> Workspace:
    """WORKSPACE/NAME as given, or a bare NAME in the default workspace folder (as `optimize` puts it).

    Raises WorkspaceError when neither has a prompts/results.json.
    """
    ws = Workspace.from_path(path)
    if ws.exists():
        return ws
    bare = Path(path)
    if len(bare.parts) == 1 and not bare.is_absolute():
        from promptopt.config import resolve_config

        root = resolve_config().workspace  # --workspace's default: config file, PROMPTOPT_WORKSPACE
        named = Workspace(root, bare.name)  # a bare name that from_path accepted is a plain name
        if named.exists():
            return named
        raise WorkspaceError(f"{path}: no run named {bare.name} in {root}/ and no prompts/results.json in {path}/")
    raise WorkspaceError(f"{path}: no prompts/results.json here (expected WORKSPACE/NAME)")
