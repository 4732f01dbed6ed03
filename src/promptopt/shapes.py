"""The shapes of the model replies we parse, and how to constrain a model to them.

One `Shape` per kind of reply: the judge's vote, the optimizer's candidate, Dual-Phase's
structured prompt and its one-sentence rewrite. The engine passes a shape with the call; the
client turns it into a GBNF grammar (llama.cpp in-process) or a JSON schema (`response_format`)
and always hands back text in the tag format (`to_tags`), so the parsers in engine/parse.py stay
the only readers of replies. Nothing here imports litellm.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Part:
    """One tagged part of a reply: <tag>…</tag>, free text or one of `choices`."""

    tag: str
    choices: tuple[str, ...] = ()


@dataclass(frozen=True)
class Shape:
    """A reply made of tagged parts in a fixed order."""

    name: str
    parts: tuple[Part, ...]

    @property
    def stop(self) -> list[str]:
        """The closing tag of the last part: nothing after it is ever read."""
        return [f"</{self.parts[-1].tag}>"]

    def gbnf(self) -> str:
        """A llama.cpp grammar for exactly these tagged parts, separated by newlines."""
        rules = ["root ::= " + ' "\\n" '.join(f"part{i}" for i in range(len(self.parts)))]
        for i, part in enumerate(self.parts):
            if part.choices:
                body = "(" + " | ".join(_gbnf_string(c) for c in part.choices) + ")"
            else:
                body = f"text{i}"
                rules.append(f"text{i} ::= {_text_rule(part)}")
            rules.append(f'part{i} ::= "<{part.tag}>" {body} "</{part.tag}>"')
        return "\n".join(rules) + "\n"

    def json_schema(self) -> dict[str, Any]:
        """A strict JSON schema: one string property per part, in order, all required."""
        properties: dict[str, Any] = {}
        for part in self.parts:
            prop: dict[str, Any] = {"type": "string"}
            if part.choices:
                prop["enum"] = list(part.choices)
            properties[part.tag] = prop
        return {
            "type": "object",
            "properties": properties,
            "required": [p.tag for p in self.parts],
            "additionalProperties": False,
        }

    def response_format(self) -> dict[str, Any]:
        """OpenAI's `response_format` for this shape (also understood by vLLM, Ollama, llama.cpp's server)."""
        return {
            "type": "json_schema",
            "json_schema": {"name": f"promptopt_{self.name}", "strict": True, "schema": self.json_schema()},
        }

    def to_tags(self, text: str) -> str:
        """A JSON reply → the same parts as tags; anything that is not our JSON is returned unchanged."""
        data = _json_object(text)
        if data is None:
            return text
        out = []
        for part in self.parts:
            value = data.get(part.tag)
            if isinstance(value, (str, int, float)) and not isinstance(value, bool):
                out.append(f"<{part.tag}>{value}</{part.tag}>")
        return "\n".join(out) if out else text

    def cut_before_choice(self, text: str) -> str | None:
        """When a reply was cut off before its final multiple-choice part (the judge's verdict):
        the reply so far with its open part closed, so the choice can be asked for on its own.
        None when there is nothing to finish."""
        last = self.parts[-1]
        if not last.choices or re.search(rf"<\s*{re.escape(last.tag)}\s*>", text, re.IGNORECASE):
            return None
        for part in reversed(self.parts[:-1]):
            opened = list(re.finditer(rf"<\s*{re.escape(part.tag)}\s*>", text, re.IGNORECASE))
            if opened:
                rest = text[opened[-1].end() :]
                closed = re.search(rf"<\s*/\s*{re.escape(part.tag)}\s*>", rest, re.IGNORECASE)
                return text if closed else text.rstrip() + f"</{part.tag}>"
        return None

    def last_part(self) -> Shape:
        """The shape of the final part alone."""
        return Shape(f"{self.name}_{self.parts[-1].tag}", self.parts[-1:])

    def close(self, text: str) -> str:
        """Put back the final closing tag a stop sequence cut off (the parsers accept it either way)."""
        last = self.parts[-1].tag
        opened = re.search(rf"<\s*{re.escape(last)}\s*>", text, re.IGNORECASE)
        if opened and not re.search(rf"<\s*/\s*{re.escape(last)}\s*>", text[opened.end() :], re.IGNORECASE):
            return text.rstrip() + f"</{last}>"
        return text


def _gbnf_string(text: str) -> str:
    return json.dumps(text)


def _text_rule(part: Part) -> str:
    """Free text that cannot close its own tag: '<' is allowed (a prompt may ask for <answer>
    tags) except as the start of '</tag>'. Unbounded: llama.cpp's bounded repetition `{0,n}`
    nests n rules and made sampling ten times slower."""
    first = part.tag[0]
    return f'([^<] | "<" [^/] | "</" [^{first}])*'


def _json_object(text: str) -> dict[str, Any] | None:
    body = text.strip()
    fenced = re.match(r"^```(?:json)?\s*\n?(.*?)\n?```$", body, re.DOTALL)
    if fenced:
        body = fenced.group(1).strip()
    if not body.startswith("{"):
        return None
    try:
        data = json.loads(body)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


JUDGE = Shape("judge", (Part("analyse"), Part("choose", choices=("A", "B"))))
OPTIMIZER = Shape("optimizer", (Part("analyse"), Part("modification"), Part("prompt")))
STRUCTURED_PROMPT = Shape("structured_prompt", (Part("analyse"), Part("prompt")))
SENTENCE = Shape("sentence", (Part("analyse"), Part("sentence")))
SHAPES = {s.name: s for s in (JUDGE, OPTIMIZER, STRUCTURED_PROMPT, SENTENCE)}
