"""Inputs of `compare`: prompts given as WORKSPACE/NAME:ROUND, a file or a string; question files."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

from promptopt.errors import TemplateError, WorkspaceError
from promptopt.template import Template, load_template
from promptopt.workspace import Workspace
from promptopt.yamlfile import load as load_yaml


def resolve_prompt(spec: str) -> tuple[str, Template | None]:
    """(prompt text, the run's template when the spec names a workspace round)."""
    text, template, _ = resolve_prompt_labelled(spec)
    return text, template


def resolve_prompt_labelled(spec: str) -> tuple[str, Template | None, str]:
    """`resolve_prompt` and what the prompt is, for a header: 'workspace/Poem round 3', 'file best.txt', 'text'.

    Forms, tried in this order: `text:ANY TEXT`, `file:PATH`, `WORKSPACE/NAME:ROUND` (or `NAME:ROUND`
    in the default workspace), a file that exists, else the text itself. A single word that looks
    like a reference (`x/y`, `name.txt`, `name:3`) but names nothing is an error, not a prompt.
    """
    if spec.startswith("text:"):
        return _nonempty(spec[len("text:") :], spec), None, "text"
    if spec.startswith("file:"):
        return _read_prompt(Path(spec[len("file:") :]).expanduser(), spec), None, f"file {spec[len('file:') :]}"
    head, sep, tail = spec.rpartition(":")
    if sep and head and tail.strip().isdigit():
        from promptopt.locate import find_workspace

        try:
            ws = find_workspace(head)
        except WorkspaceError:
            if not _one_word(head):  # "aspect ratio 16:9" is a sentence, not a reference
                return _nonempty(spec, spec), None, "text"
            raise WorkspaceError(
                f"{spec}: {head} is not a workspace run (no prompts/results.json); "
                f"to use these words as the prompt, write text:{spec}"
            ) from None
        text, template = _round_prompt(ws, int(tail), spec)
        return text, template, f"{ws.root} round {int(tail)}"
    if len(spec) < 4096 and "\n" not in spec:
        try:
            is_file = Path(spec).expanduser().is_file()
        except OSError:  # a name too long for the file system: text
            is_file = False
        if is_file:
            return _read_prompt(Path(spec).expanduser(), spec), None, f"file {spec}"
        if _looks_like_path(spec):
            raise TemplateError(
                f"{spec}: no such file; to use these words as the prompt, write text:{spec} (or file:PATH for a file)"
            )
    return _nonempty(spec, spec), None, "text"


def _one_word(text: str) -> bool:
    return bool(text.strip()) and not any(c.isspace() for c in text.strip())


def _looks_like_path(spec: str) -> bool:
    """One word with a folder separator or a file extension ('prompts/b', 'best.txt')."""
    word = spec.strip()
    return _one_word(word) and (
        "/" in word or "\\" in word or re.search(r"\.[A-Za-z][A-Za-z0-9]{0,7}$", word) is not None
    )


def _nonempty(text: str, spec: str) -> str:
    if not text.strip():
        raise TemplateError(f"compare: prompt {spec!r} is empty")
    return text


def _read_prompt(path: Path, spec: str) -> str:
    try:
        return _nonempty(path.read_text(encoding="utf-8"), spec)
    except FileNotFoundError:
        raise TemplateError(f"{spec}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise TemplateError(f"{spec}: cannot read ({exc})") from None


def _round_prompt(ws: Workspace, number: int, spec: str) -> tuple[str, Template | None]:
    record = next((r for r in ws.load() if r.round == number), None)
    if record is None:
        raise WorkspaceError(f"{spec}: {ws.root} has no round {number}")
    if not record.prompt.strip():
        raise WorkspaceError(f"{spec}: round {number} has no prompt (the round failed: {record.error})")
    template = None
    if ws.template_path.is_file():
        template, _ = load_template(ws.template_path)
    return record.prompt, template


def _item(entry: Any, source: str, i: int) -> tuple[str, str | None]:
    if isinstance(entry, str):
        if not entry.strip():
            raise TemplateError(f"{source}: item {i}: the question is empty")
        return entry, None
    if isinstance(entry, dict):
        q = entry.get("question", entry.get("input"))
        a = entry.get("answer", entry.get("target"))
        if isinstance(q, str) and not q.strip():
            raise TemplateError(f"{source}: item {i}: the question is empty")
        if isinstance(q, str):
            return q, (str(a).strip() if a not in (None, "", "None") else None)
    raise TemplateError(f"{source}: item {i}: expected a string or a mapping with 'question'")


def load_questions(path: Path) -> tuple[list[str], list[str | None]]:
    """YAML/JSON (a list, or a template-like mapping with qa/faq/examples) or JSONL, one per line."""
    source = path.name
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise TemplateError(f"{source}: cannot read ({exc})") from None
    entries: list[Any]
    if path.suffix == ".jsonl":
        entries = []
        for n, line in enumerate(text.splitlines(), 1):
            if line.strip():
                try:
                    entries.append(json.loads(line))
                except json.JSONDecodeError as exc:
                    raise TemplateError(f"{source}: line {n}: invalid JSON ({exc.msg})") from None
    else:
        try:
            data = load_yaml(text)  # JSON is YAML
        except yaml.YAMLError as exc:
            raise TemplateError(f"{source}: invalid YAML/JSON: {getattr(exc, 'problem', exc)}") from None
        if isinstance(data, dict):
            data = data.get("qa") or data.get("faq") or data.get("examples") or data.get("questions")
        if not isinstance(data, list):
            raise TemplateError(f"{source}: expected a list of questions")
        entries = data
    if not entries:
        raise TemplateError(f"{source}: no questions")
    pairs = [_item(e, source, i) for i, e in enumerate(entries)]
    return [q for q, _ in pairs], [a for _, a in pairs]
