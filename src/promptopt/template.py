"""Load and validate SPO template YAML (prompt, requirements, count, qa/faq)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from promptopt.bundled import bundled_dir, bundled_templates, resolve_template  # noqa: F401 - re-exported
from promptopt.errors import TemplateError
from promptopt.yamlfile import StrictLoader

MAX_TEMPLATE_BYTES = 1_000_000
_NONE_STRINGS = {"", "none", "null", "~"}


class TemplateLoader(StrictLoader):
    """Strict safe YAML where only true/false are booleans: `answer: Yes` stays the text "Yes"."""


TemplateLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in StrictLoader.yaml_implicit_resolvers.items()
}
TemplateLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


class QA(BaseModel):
    model_config = ConfigDict(extra="forbid")

    question: str
    answer: str | None = None

    @field_validator("question", mode="before")
    @classmethod
    def _question(cls, v: Any) -> Any:
        if isinstance(v, (int, float)):
            v = str(v)
        if isinstance(v, str):
            if not v.strip():
                raise ValueError("is empty")
            v = v.rstrip()
        return v

    @field_validator("answer", mode="before")
    @classmethod
    def _answer(cls, v: Any) -> Any:
        if v is None:
            return None
        if isinstance(v, (int, float)):
            return str(v)
        if isinstance(v, str):
            return None if v.strip().lower() in _NONE_STRINGS else v.strip()
        return v


class Template(BaseModel):
    """An SPO template: the prompt to optimize and the questions to run it on."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    prompt: str
    requirements: str = ""
    count: int | None = None
    qa: list[QA] = Field(alias="qa", min_length=1)
    metric: str | None = None
    # Held-out questions: never shown to the optimizer; only the confirmation gate uses them.
    holdout: list[QA] = Field(default_factory=list)

    @model_validator(mode="before")
    @classmethod
    def _faq_alias(cls, data: Any) -> Any:
        if isinstance(data, dict) and "faq" in data:
            data = dict(data)
            if "qa" in data:
                raise ValueError("has both 'qa' and 'faq'; keep one")
            data["qa"] = data.pop("faq")
        return data

    @field_validator("prompt", mode="before")
    @classmethod
    def _prompt(cls, v: Any) -> Any:
        if isinstance(v, str) and not v.strip():
            raise ValueError("is empty")
        return v

    @field_validator("metric")
    @classmethod
    def _metric(cls, v: str | None) -> str | None:
        if v is None or not v.strip():
            return None
        from promptopt.engine.metrics import get_metric
        from promptopt.errors import TemplateError as _TE

        try:
            get_metric(v)
        except _TE as exc:
            raise ValueError(str(exc)) from None
        return v.strip()

    @field_validator("requirements", mode="before")
    @classmethod
    def _requirements(cls, v: Any) -> Any:
        return "" if v is None else v

    @field_validator("count", mode="before")
    @classmethod
    def _count(cls, v: Any) -> Any:
        if v is None or (isinstance(v, str) and v.strip().lower() in _NONE_STRINGS):
            return None
        if isinstance(v, bool):
            raise ValueError("must be a whole number of words or None")
        if isinstance(v, str) and v.strip().isdigit():
            v = int(v.strip())
        if isinstance(v, int) and v < 1:
            raise ValueError("must be at least 1 (or None for no limit)")
        return v

    @property
    def golden(self) -> list[str | None]:
        return [item.answer for item in self.qa]

    @property
    def has_answers(self) -> bool:
        return any(item.answer for item in self.qa)


def format_validation_error(source: str, exc: ValidationError) -> str:
    """One line per field: 'source: qa[2].question: is empty'."""
    lines = []
    for err in exc.errors():
        loc = ""
        for part in err["loc"]:
            loc += f"[{part}]" if isinstance(part, int) else (f".{part}" if loc else str(part))
        loc = _one_line(loc)  # a key like "\n" must not break "one line per field"
        msg = _one_line(err["msg"].removeprefix("Value error, "))
        if err["type"] == "extra_forbidden":
            msg = "unknown key"
        elif err["type"] == "missing":
            msg = "is required"
        lines.append(f"{source}: {loc or 'template'}: {msg}")
    return "\n".join(lines)


def _one_line(text: str) -> str:
    return text if text.isprintable() else text.encode("unicode_escape").decode("ascii")


def parse_template(text: str | bytes, source: str = "template") -> Template:
    """Validate template text; every failure is a TemplateError naming `source`."""
    if isinstance(text, bytes):
        if len(text) > MAX_TEMPLATE_BYTES:
            raise TemplateError(f"{source}: file is larger than {MAX_TEMPLATE_BYTES // 1000} kB")
        try:
            text = text.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise TemplateError(f"{source}: not valid UTF-8 (byte {exc.start})") from None
    if len(text) > MAX_TEMPLATE_BYTES:
        raise TemplateError(f"{source}: file is larger than {MAX_TEMPLATE_BYTES // 1000} kB")
    try:
        data = yaml.load(text, Loader=TemplateLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise TemplateError(f"{source}: invalid YAML{where}: {problem}") from None
    except (RecursionError, ValueError) as exc:
        raise TemplateError(f"{source}: invalid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise TemplateError(f"{source}: expected a mapping with 'prompt', 'requirements', 'count', 'qa'")
    try:
        return Template.model_validate(data)
    except ValidationError as exc:
        message = format_validation_error(source, exc)
        if "faq" in data and "qa" not in data:  # name the key the user wrote
            message = "\n".join(
                f"{source}: faq{line[len(source) + 4 :]}" if line.startswith(f"{source}: qa") else line
                for line in message.split("\n")
            )
        raise TemplateError(message) from None


def load_template(ref: str | Path, cwd: Path | None = None) -> tuple[Template, Path]:
    path = resolve_template(str(ref), cwd)
    try:
        size = path.stat().st_size
        if size > MAX_TEMPLATE_BYTES:
            raise TemplateError(f"{path.name}: file is larger than {MAX_TEMPLATE_BYTES // 1000} kB")
        raw = path.read_bytes()
    except OSError as exc:
        raise TemplateError(f"{path}: cannot read ({exc.strerror})") from None
    return parse_template(raw, path.name), path


def dump_template(template: Template) -> str:
    """YAML in SPO's key order with block scalars for multi-line text."""
    data: dict[str, Any] = {
        "prompt": template.prompt,
        "requirements": template.requirements,
        "count": template.count if template.count is not None else "None",
        "qa": [{"question": q.question, "answer": q.answer or ""} for q in template.qa],
    }
    if template.metric:
        data["metric"] = template.metric
    if template.holdout:
        data["holdout"] = [{"question": q.question, "answer": q.answer or ""} for q in template.holdout]
    return yaml.dump(data, Dumper=_BlockDumper, sort_keys=False, allow_unicode=True, width=100)


def template_changes(old: Template, new: Template) -> list[str]:
    """The parts of a template that differ, named as a warning names them."""

    def text(value: str | None) -> str:
        return (value or "").strip()

    changes = []
    if text(old.prompt) != text(new.prompt):
        changes.append("prompt")
    if text(old.requirements) != text(new.requirements):
        changes.append("requirements")
    if [text(q.question) for q in old.qa] != [text(q.question) for q in new.qa]:
        changes.append("questions")
    elif [text(q.answer) for q in old.qa] != [text(q.answer) for q in new.qa]:
        changes.append("answers")
    if old.count != new.count:
        changes.append("count")
    if text(old.metric) != text(new.metric):
        changes.append("metric")
    if [(text(q.question), text(q.answer)) for q in old.holdout] != [
        (text(q.question), text(q.answer)) for q in new.holdout
    ]:
        changes.append("holdout")
    return changes


class _BlockDumper(yaml.SafeDumper):
    pass


def _str_representer(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_BlockDumper.add_representer(str, _str_representer)
