"""Inputs of `compare`: prompts given as WORKSPACE/NAME:ROUND, a file or a string; question files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from promptopt.errors import TemplateError, WorkspaceError
from promptopt.template import Template, load_template
from promptopt.workspace import Workspace
from promptopt.yamlfile import load as load_yaml


def resolve_prompt(spec: str) -> tuple[str, Template | None]:
    """(prompt text, the run's template when the spec names a workspace round)."""
    head, sep, tail = spec.rpartition(":")
    if sep and tail.strip().isdigit() and head:
        ws = Workspace.from_path(head)
        if ws.exists():
            number = int(tail)
            record = next((r for r in ws.load() if r.round == number), None)
            if record is None:
                raise WorkspaceError(f"{spec}: {head} has no round {number}")
            if not record.prompt.strip():
                raise WorkspaceError(f"{spec}: round {number} has no prompt (the round failed: {record.error})")
            template = None
            if ws.template_path.is_file():
                template, _ = load_template(ws.template_path)
            return record.prompt, template
        raise WorkspaceError(f"{spec}: {head} is not a workspace (no prompts/results.json)")
    path = Path(spec)
    if len(spec) < 4096 and "\n" not in spec:
        try:
            if path.is_file():
                return path.read_text(encoding="utf-8"), None
        except (OSError, UnicodeDecodeError) as exc:
            raise TemplateError(f"{spec}: cannot read ({exc})") from None
    if not spec.strip():
        raise TemplateError("compare: a prompt is empty")
    return spec, None


def _item(entry: Any, source: str, i: int) -> tuple[str, str | None]:
    if isinstance(entry, str):
        return entry, None
    if isinstance(entry, dict):
        q = entry.get("question", entry.get("input"))
        a = entry.get("answer", entry.get("target"))
        if isinstance(q, str) and q.strip():
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
