"""Where templates are found: a path, the current directory, then the bundled ones.

Kept free of pydantic so `promptopt init` starts fast.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from promptopt.errors import TemplateError

__all__ = ["bundled_dir", "bundled_templates", "resolve_template"]


def bundled_dir() -> Path:
    """Templates shipped in the wheel, or the repo's templates/ in a source checkout."""
    packaged = Path(str(resources.files("promptopt"))) / "templates"
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parents[2] / "templates"


def bundled_templates() -> dict[str, Path]:
    folder = bundled_dir()
    if not folder.is_dir():
        return {}
    return {p.stem: p for p in sorted(folder.glob("*.yaml"))}


def resolve_template(ref: str, cwd: Path | None = None) -> Path:
    """A path, or a bare name found in the current directory, then among bundled templates."""
    cwd = cwd or Path.cwd()
    path = Path(ref).expanduser()
    if not path.is_absolute():  # relative to the cwd we were given, not the process's
        path = cwd / path
    if path.is_file():
        return path
    bare = "/" not in ref and "\\" not in ref
    if bare:
        for candidate in (ref, f"{ref}.yaml", f"{ref}.yml"):
            if (cwd / candidate).is_file():
                return cwd / candidate
        stem = ref.removesuffix(".yaml").removesuffix(".yml").lower()
        for name, bundled in bundled_templates().items():
            if name.lower() == stem:
                return bundled
    names = ", ".join(bundled_templates()) or "none"
    raise TemplateError(f"template {ref}: no such file (bundled templates: {names})")
