"""Reply shapes: grammar and JSON schema generation, JSON → tags, and that our parsers read the result."""

from __future__ import annotations

import importlib.util
import json

import pytest

from promptopt.engine.parse import extract_tag, parse_choice, parse_prompt
from promptopt.engine.strategies.dual_phase import parse_sentence
from promptopt.shapes import JUDGE, OPTIMIZER, SENTENCE, SHAPES, STRUCTURED_PROMPT
from tests.conftest import require


def test_json_schema_is_strict_and_ordered() -> None:
    schema = JUDGE.json_schema()
    assert list(schema["properties"]) == ["analyse", "choose"]
    assert schema["required"] == ["analyse", "choose"] and schema["additionalProperties"] is False
    assert schema["properties"]["choose"]["enum"] == ["A", "B"]
    fmt = OPTIMIZER.response_format()
    assert fmt["type"] == "json_schema" and fmt["json_schema"]["strict"] is True
    assert fmt["json_schema"]["schema"]["required"] == ["analyse", "modification", "prompt"]


@pytest.mark.parametrize(
    ("shape", "reply", "check"),
    [
        (JUDGE, {"analyse": "B is right", "choose": "B"}, lambda t: parse_choice(t) == "B"),
        (
            OPTIMIZER,
            {"analyse": "vague", "modification": "added steps", "prompt": "Track each step.\nEnd with Yes or No."},
            lambda t: (
                parse_prompt(t) == "Track each step.\nEnd with Yes or No."
                and extract_tag(t, "modification") == "added steps"
            ),
        ),
        (STRUCTURED_PROMPT, {"analyse": "x", "prompt": "Be brief."}, lambda t: parse_prompt(t) == "Be brief."),
        (SENTENCE, {"analyse": "x", "sentence": "Count the steps."}, lambda t: parse_sentence(t) == "Count the steps."),
    ],
)
def test_json_replies_become_tags_the_parsers_read(shape, reply, check) -> None:  # type: ignore[no-untyped-def]
    assert check(shape.to_tags(json.dumps(reply)))
    assert check(shape.to_tags("```json\n" + json.dumps(reply) + "\n```"))


def test_non_json_replies_are_left_alone() -> None:
    tagged = "<analyse>ok</analyse><choose>A</choose>"
    assert JUDGE.to_tags(tagged) == tagged
    assert JUDGE.to_tags('{"broken": ') == '{"broken": '
    assert JUDGE.to_tags("[1, 2]") == "[1, 2]"
    assert JUDGE.to_tags('{"other": "x"}') == '{"other": "x"}'  # none of our parts: unchanged


def test_close_restores_a_tag_cut_by_the_stop_sequence() -> None:
    assert JUDGE.stop == ["</choose>"] and OPTIMIZER.stop == ["</prompt>"]
    assert JUDGE.close("<analyse>x</analyse>\n<choose>B") == "<analyse>x</analyse>\n<choose>B</choose>"
    done = "<analyse>x</analyse><choose>A</choose>"
    assert JUDGE.close(done) == done
    assert JUDGE.close("no tags at all") == "no tags at all"


def test_a_verdict_cut_off_by_max_tokens_can_be_finished() -> None:
    assert JUDGE.cut_before_choice("<analyse>A is better because") == "<analyse>A is better because</analyse>"
    assert JUDGE.cut_before_choice("<analyse>done</analyse>\n") == "<analyse>done</analyse>\n"
    assert JUDGE.cut_before_choice("<analyse>x</analyse><choose>") is None  # the verdict has begun
    assert JUDGE.cut_before_choice("rambling without tags") is None
    assert OPTIMIZER.cut_before_choice("<analyse>x") is None  # a prompt cannot be asked for on its own
    assert JUDGE.last_part().gbnf().splitlines()[0] == "root ::= part0"
    assert '("A" | "B")' in JUDGE.last_part().gbnf()


def test_gbnf_spells_every_part_in_order() -> None:
    grammar = OPTIMIZER.gbnf()
    assert grammar.splitlines()[0] == 'root ::= part0 "\\n" part1 "\\n" part2'
    assert '"<analyse>" text0 "</analyse>"' in grammar and '"<prompt>" text2 "</prompt>"' in grammar
    assert "{0," not in grammar  # bounded repetition makes llama.cpp's grammar sampling crawl
    assert '("A" | "B")' in JUDGE.gbnf()


@pytest.mark.parametrize("name", sorted(SHAPES))
def test_llama_cpp_accepts_every_grammar(name: str) -> None:
    """llama.cpp's own parser: a grammar it rejects would fail every structured local call."""
    require(importlib.util.find_spec("llama_cpp") is not None, "llama-cpp-python is not installed")
    from llama_cpp import LlamaGrammar

    grammar = LlamaGrammar.from_string(SHAPES[name].gbnf(), verbose=False)
    assert grammar is not None


def test_each_call_site_names_the_shape_it_parses(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """SPO's optimizer and judge, Dual-Phase's structured prompt and sentence; executors none."""
    from tests.test_strategies_dual_phase import fake, init, rewriter, run, template

    llm = fake([rewriter("Be exact.")] * 5, first=init())
    run(template(), llm, tmp_path, max_rounds=2)
    by_role = {
        (role, shape.name if shape else None) for (role, _, _), shape in zip(llm.history, llm.shapes, strict=True)
    }
    assert by_role == {
        ("optimizer", "structured_prompt"),
        ("optimizer", "sentence"),
        ("executor", None),
        ("evaluator", "judge"),
    }
