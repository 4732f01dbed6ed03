"""Property tests: whatever users or models hand us, we answer with a result or our own error."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from promptopt.engine.parse import extract_tag, parse_choice, parse_prompt
from promptopt.errors import TemplateError, WorkspaceError
from promptopt.records import RoundRecord
from promptopt.template import QA, Template, dump_template, parse_template
from promptopt.workspace import Workspace

FAST = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
# Structured strategies cost more to generate than the code under test costs to run: fewer examples.
HEAVY = settings(
    FAST, max_examples=100, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture]
)

# --- strategies -------------------------------------------------------------------------------------

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**6), max_value=10**6),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.sampled_from(["", "None", "none", "~", "  ", "0", "-1", "50", "yes", "A poem about the sea"]),
)
json_scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=20))


def nested(leaves: st.SearchStrategy[Any], keys: st.SearchStrategy[str]) -> st.SearchStrategy[Any]:
    return st.recursive(
        leaves,
        lambda children: st.lists(children, max_size=4) | st.dictionaries(keys, children, max_size=4),
        max_leaves=6,
    )


TEMPLATE_KEYS = st.sampled_from(
    [
        "prompt",
        "requirements",
        "count",
        "qa",
        "faq",
        "question",
        "answer",
        "metric",
        "extra",
        "",
        "\n",
        "Prompt",
        "ключ",
    ]
)
anything = nested(scalars, TEMPLATE_KEYS)
qa_item = st.fixed_dictionaries({}, optional={"question": anything, "answer": anything, "extra": scalars})
template_like = st.fixed_dictionaries(
    {},
    optional={
        "prompt": st.one_of(st.text(max_size=30), anything),
        "requirements": st.one_of(st.text(max_size=30), anything),
        "count": st.one_of(scalars, anything),
        "qa": st.one_of(st.lists(qa_item, max_size=4), anything),
        "faq": st.one_of(st.lists(qa_item, max_size=4), anything),
        "metric": st.one_of(st.sampled_from(["exact", "contains", "regex:(", "regex:^a$", "choice", "nope"]), scalars),
        "other": scalars,
    },
)
yaml_fragments = st.sampled_from(
    [
        "prompt: ",
        "qa:\n",
        "faq:\n",
        "  - question: ",
        "    answer: ",
        "count: ",
        "requirements: |\n  ",
        "\n",
        "  ",
        "- ",
        ": ",
        "&a ",
        "*a ",
        '!!python/object/apply:os.system ["true"]',
        "!!binary ",
        "!!str ",
        "{",
        "}",
        "[",
        "]",
        "'",
        '"',
        "#",
        "---\n",
        "...\n",
        "? ",
        "|",
        ">",
        "\t",
        "\ufeff",
        "%YAML 1.1\n",
    ]
)
yamlish_text = st.lists(st.one_of(yaml_fragments, st.text(max_size=6)), max_size=16).map("".join)

tag_fragments = st.sampled_from(
    [
        "<prompt>",
        "</prompt>",
        "< PROMPT >",
        "</ prompt>",
        "<choose>",
        "</choose>",
        "<CHOOSE>",
        "<analyse>",
        "</analyse>",
        "<modification>",
        "```",
        "```python\n",
        "A",
        "B",
        "a",
        "b",
        " or ",
        "Answer:",
        "**",
        "(",
        ")",
        "I cannot help with that",
        "\n",
        " ",
        "<",
        ">",
        "/",
    ]
)
replyish_text = st.lists(st.one_of(tag_fragments, st.text(max_size=6)), max_size=25).map("".join)


# --- templates ------------------------------------------------------------------------------------


def check_template_or_error(text: str | bytes) -> None:
    try:
        template = parse_template(text, "T.yaml")
    except TemplateError as exc:
        lines = str(exc).splitlines()
        assert lines and all(line.startswith("T.yaml") for line in lines)
        return
    assert isinstance(template, Template)
    assert isinstance(template.prompt, str) and template.prompt.strip()
    assert isinstance(template.requirements, str)
    assert template.count is None or (isinstance(template.count, int) and template.count >= 1)
    assert template.qa
    for item in template.qa:
        assert isinstance(item.question, str) and item.question.strip()
        assert item.answer is None or (isinstance(item.answer, str) and item.answer.strip())


@FAST
@given(st.text(max_size=200))
def test_parse_template_arbitrary_text(text: str) -> None:
    check_template_or_error(text)


@FAST
@given(st.binary(max_size=200))
def test_parse_template_arbitrary_bytes(data: bytes) -> None:
    check_template_or_error(data)


@FAST
@given(yamlish_text)
def test_parse_template_yamlish_text(text: str) -> None:
    check_template_or_error(text)


@HEAVY
@given(st.one_of(template_like, anything))
def test_parse_template_arbitrary_documents(document: Any) -> None:
    try:
        text = yaml.safe_dump(document, allow_unicode=True)
    except yaml.YAMLError:
        assume(False)
    check_template_or_error(text)


# Characters that stress YAML quoting and block scalars, and words YAML would read as non-strings.
clean_text = st.text(alphabet="ab Z09\n\n  \t:#-?'\"|>{}[],&*!%@`~é✓—中🌊\\", max_size=30) | st.sampled_from(
    ["None", "null", "yes", "- x", "a: b", " #c", "---", "...", "0x1F", "1e3", "~", "line\n\n"]
)


@HEAVY
@given(
    prompt=clean_text.filter(str.strip),
    requirements=clean_text,
    count=st.none() | st.integers(min_value=1, max_value=10_000),
    qa=st.lists(st.tuples(clean_text.filter(str.strip), st.none() | clean_text), min_size=1, max_size=4),
)
def test_dump_template_round_trips(
    prompt: str, requirements: str, count: int | None, qa: list[tuple[str, str | None]]
) -> None:
    template = Template(
        prompt=prompt, requirements=requirements, count=count, qa=[QA(question=q, answer=a) for q, a in qa]
    )
    assert parse_template(dump_template(template)) == template


# --- model replies ----------------------------------------------------------------------------------


@FAST
@given(st.one_of(st.text(max_size=200), replyish_text))
def test_reply_parsers_never_raise(text: str) -> None:
    for tag in ("prompt", "choose", "analyse"):
        content = extract_tag(text, tag)
        assert content is None or isinstance(content, str)
    assert parse_choice(text) in (None, "A", "B")
    prompt = parse_prompt(text)
    assert prompt is None or (isinstance(prompt, str) and prompt.strip())


@HEAVY
@given(before=st.text(max_size=30), after=st.text(max_size=30), letter=st.sampled_from("ABab"))
def test_a_clean_choose_tag_always_parses(before: str, after: str, letter: str) -> None:
    assume("<" not in after and "<" not in before)
    reply = f"{before}<choose>{letter}</choose>{after}"
    assert parse_choice(reply) == letter.upper()


# --- workspace --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def scratch_ws() -> Iterator[Workspace]:
    with tempfile.TemporaryDirectory() as folder:
        ws = Workspace(Path(folder), "Prop")
        ws.prompts.mkdir(parents=True)
        yield ws


round_like = st.fixed_dictionaries(
    {"round": st.one_of(st.integers(min_value=-5, max_value=50), json_scalars)},
    optional={
        "answers": st.one_of(
            st.lists(
                st.fixed_dictionaries(
                    {}, optional={"question": json_scalars, "answer": json_scalars, "error": json_scalars}
                ),
                max_size=3,
            ),
            json_scalars,
        ),
        "prompt": json_scalars,
        "succeed": json_scalars,
        "tokens": json_scalars,
        "time": st.one_of(st.just("2025-02-11 10:00:00.123456"), json_scalars),
        "votes": st.one_of(
            st.lists(
                st.fixed_dictionaries({"winner": st.sampled_from(["candidate", "base", "abstain", "x"])}), max_size=3
            ),
            json_scalars,
        ),
        "usage": st.one_of(
            st.dictionaries(
                st.sampled_from(["optimizer", "x"]),
                st.dictionaries(st.sampled_from(["calls", "cost_usd", "x"]), json_scalars, max_size=2),
                max_size=2,
            ),
            json_scalars,
        ),
        "verdict": st.one_of(st.sampled_from(["win", "lose", "initial", "bogus"]), json_scalars),
        "extra_key": nested(json_scalars, st.sampled_from(["a", "b"])),
    },
)
json_documents = st.one_of(
    st.lists(round_like, max_size=4),
    nested(json_scalars, st.sampled_from(["round", "prompt", "answers", "x", ""])),
)


@HEAVY
@given(document=json_documents)
def test_results_json_loads_or_explains(scratch_ws: Workspace, document: Any) -> None:
    raw = json.dumps(document).encode()
    scratch_ws.results_path.write_bytes(raw)

    try:
        records = scratch_ws.load()
    except WorkspaceError as exc:
        assert str(scratch_ws.results_path) in str(exc)
    else:
        assert all(isinstance(r, RoundRecord) for r in records)
        numbers = [r.round for r in records]
        assert numbers == sorted(set(numbers))
    assert scratch_ws.results_path.read_bytes() == raw


@HEAVY
@given(raw=st.one_of(st.binary(max_size=100), st.text(max_size=100).map(str.encode)))
def test_results_json_arbitrary_bytes(scratch_ws: Workspace, raw: bytes) -> None:
    scratch_ws.results_path.write_bytes(raw)
    try:
        scratch_ws.load()
    except WorkspaceError:
        pass
    assert scratch_ws.results_path.read_bytes() == raw
