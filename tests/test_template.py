"""Templates: SPO's YAML read as-is, one error line per field, --template resolution, round trips."""

from __future__ import annotations

from pathlib import Path

import pytest

from promptopt.errors import TemplateError
from promptopt.template import (
    MAX_TEMPLATE_BYTES,
    QA,
    Template,
    bundled_templates,
    dump_template,
    load_template,
    parse_template,
    resolve_template,
)

MINIMAL = "prompt: Write a poem.\nqa:\n  - question: the sea\n"


def errors_of(text: str | bytes, source: str = "T.yaml") -> list[str]:
    with pytest.raises(TemplateError) as info:
        parse_template(text, source)
    return str(info.value).splitlines()


# --- reading SPO's format ---------------------------------------------------------------------------


def test_conftest_poem_reads_like_spo(template_file: Path) -> None:
    template, path = load_template(template_file)

    assert path == template_file
    assert template.prompt == "Write a poem.\n"
    assert template.requirements == "Vivid imagery.\n"
    assert template.count is None
    assert [q.question for q in template.qa] == ["A poem about the sea", "A poem about rain", "A poem about snow"]
    # answer "", "None" and a missing answer all mean "no reference answer"
    assert template.golden == [None, None, None]
    assert not template.has_answers


@pytest.mark.parametrize("name", ["Poem", "Navigate", "Summarize"])
def test_bundled_templates_load(name: str) -> None:
    template, path = load_template(name)

    assert path.name == f"{name}.yaml"
    assert template.prompt.strip()
    assert len(template.qa) >= 3


def test_bundled_template_contents() -> None:
    navigate, _ = load_template("Navigate")
    summarize, _ = load_template("Summarize")
    poem, _ = load_template("Poem")

    assert navigate.golden == ["Yes", "No", "Yes"]
    assert summarize.count == 50
    assert all(summarize.golden)
    assert poem.count is None and poem.golden == [None, None, None]


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("count: 50", 50),
        ("count: '50'", 50),
        ("count: None", None),
        ("count: none", None),
        ("count: null", None),
        ("count:", None),
        ("", None),
    ],
)
def test_count_forms(line: str, expected: int | None) -> None:
    assert parse_template(f"{line}\n{MINIMAL}").count == expected


@pytest.mark.parametrize("answer", ['""', "None", "'None'", "null", "~", "'   '"])
def test_empty_answers_mean_no_answer(answer: str) -> None:
    text = f"prompt: p\nqa:\n  - question: q\n    answer: {answer}\n"
    assert parse_template(text).qa[0].answer is None


def test_answers_and_numbers_become_text() -> None:
    text = "prompt: p\nqa:\n  - question: 12\n    answer: |\n      Yes\n  - question: q\n    answer: 3.5\n"
    template = parse_template(text)

    assert template.qa == [QA(question="12", answer="Yes"), QA(question="q", answer="3.5")]


def test_faq_is_an_alias_of_qa() -> None:
    with_faq = parse_template("prompt: p\nfaq:\n  - question: q\n    answer: a\n")
    with_qa = parse_template("prompt: p\nqa:\n  - question: q\n    answer: a\n")

    assert with_faq == with_qa


def test_utf8_bom_and_unicode_are_fine() -> None:
    template = parse_template("\ufeffprompt: Écris un poème 🌊\nqa:\n  - question: la mer\n".encode())
    assert template.prompt == "Écris un poème 🌊"


# --- errors -----------------------------------------------------------------------------------------


def test_error_names_file_and_field() -> None:
    text = "prompt: p\nqa:\n  - question: a\n  - question: b\n  - question: '  '\n"
    assert errors_of(text, "Poem.yaml") == ["Poem.yaml: qa[2].question: is empty"]


def test_faq_errors_name_the_faq_key() -> None:
    text = "prompt: p\nfaq:\n  - question: a\n  - question: ''\n"
    assert errors_of(text, "Poem.yaml") == ["Poem.yaml: faq[1].question: is empty"]


def test_one_line_per_bad_field() -> None:
    text = "requirements: [1]\ncount: -3\nqa:\n  - question: q\n    extra: 1\ncolour: red\n"
    lines = errors_of(text)

    assert len(lines) == 5
    assert all(line.startswith("T.yaml: ") for line in lines)
    joined = "\n".join(lines)
    for field in (
        "prompt: is required",
        "requirements:",
        "count: must be at least 1",
        "qa[0].extra: unknown key",
        "colour: unknown key",
    ):
        assert field in joined


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("qa:\n  - question: q\n", "T.yaml: prompt: is required"),
        ("prompt: '   '\nqa:\n  - question: q\n", "T.yaml: prompt: is empty"),
        ("prompt: [a, b]\nqa:\n  - question: q\n", "T.yaml: prompt: Input should be a valid string"),
        ("prompt: p\nqa: []\n", "T.yaml: qa: List should have at least 1 item"),
        ("prompt: p\nqa:\n", "T.yaml: qa: Input should be a valid list"),
        ("prompt: p\n", "T.yaml: qa: is required"),
        ("prompt: p\nqa: [just a string]\n", "T.yaml: qa[0]: Input should be a valid dictionary"),
        ("prompt: p\nqa:\n  - answer: a\n", "T.yaml: qa[0].question: is required"),
        ("prompt: p\ncount: ten\nqa:\n  - question: q\n", "T.yaml: count: Input should be a valid integer"),
        ("prompt: p\ncount: 0\nqa:\n  - question: q\n", "T.yaml: count: must be at least 1"),
        ("prompt: p\ncount: true\nqa:\n  - question: q\n", "T.yaml: count: must be a whole number"),
        ("prompt: p\ntemperature: 1\nqa:\n  - question: q\n", "T.yaml: temperature: unknown key"),
        ("prompt: p\nmetric: fuzzy\nqa:\n  - question: q\n", "T.yaml: metric: metric 'fuzzy': unknown"),
    ],
)
def test_field_errors(text: str, expected: str) -> None:
    lines = errors_of(text)
    assert any(line.startswith(expected) for line in lines), lines


def test_qa_and_faq_together_are_rejected() -> None:
    [line] = errors_of("prompt: p\nqa:\n  - question: a\nfaq:\n  - question: b\n")
    assert line.startswith("T.yaml: ") and "'qa' and 'faq'" in line


@pytest.mark.parametrize("text", ["- prompt: p\n", "just a sentence\n", "42\n", "", "# only a comment\n"])
def test_top_level_must_be_a_mapping(text: str) -> None:
    [line] = errors_of(text)
    assert line.startswith("T.yaml: expected a mapping")


def test_yaml_syntax_error_names_line_and_column() -> None:
    [line] = errors_of("prompt: p\nqa:\n  - question: [unclosed\n  - question: q\n", "Poem.yaml")
    assert line.startswith("Poem.yaml: invalid YAML (line ")
    assert ", column " in line


@pytest.mark.parametrize(
    "tag",
    [
        '!!python/object/apply:os.system ["touch {marker}"]',
        '!!python/object/apply:subprocess.call [["touch", "{marker}"]]',
        "!!python/name:os.system",
    ],
)
def test_python_tags_never_execute(tmp_path: Path, tag: str) -> None:
    marker = tmp_path / "executed"
    text = f"prompt: {tag.format(marker=marker)}\nqa:\n  - question: q\n"

    [line] = errors_of(text)

    assert not marker.exists()
    assert line.startswith("T.yaml: invalid YAML") and "python/" in line


def test_non_utf8_bytes() -> None:
    [line] = errors_of(b"prompt: caf\xe9\nqa:\n  - question: q\n", "Poem.yaml")
    assert line == "Poem.yaml: not valid UTF-8 (byte 11)"  # 0-based offset of \xe9


def test_huge_text_is_refused_without_parsing() -> None:
    body = "prompt: p\nqa:\n  - question: q\n" + "# padding\n" * (MAX_TEMPLATE_BYTES // 10 + 1)
    for text in (body, body.encode()):
        [line] = errors_of(text)
        assert "larger than 1000 kB" in line


def test_huge_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "Big.yaml"
    path.write_bytes(MINIMAL.encode() + b"#" * MAX_TEMPLATE_BYTES)

    with pytest.raises(TemplateError, match=r"^Big\.yaml: file is larger than 1000 kB$"):
        load_template(path)


def test_load_template_errors_name_the_file(tmp_path: Path) -> None:
    path = tmp_path / "Broken.yml"
    path.write_text("prompt: p\nqa: []\n", encoding="utf-8")

    with pytest.raises(TemplateError, match=r"^Broken\.yml: qa: "):
        load_template(path)


# --- --template resolution ----------------------------------------------------------------------------


def write(path: Path, prompt: str) -> Path:
    path.write_text(f"prompt: {prompt}\nqa:\n  - question: q\n", encoding="utf-8")
    return path


def test_resolve_absolute_and_relative_paths(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    path = write(tmp_path / "sub" / "mine.yaml", "mine")

    assert resolve_template(str(path)) == path
    assert resolve_template("sub/mine.yaml", cwd=tmp_path) == path


@pytest.mark.parametrize("filename", ["Mine", "Mine.yaml", "Mine.yml"])
def test_bare_name_found_in_cwd(tmp_path: Path, filename: str) -> None:
    write(tmp_path / filename, "from cwd")

    template, path = load_template("Mine", cwd=tmp_path)

    assert path == tmp_path / filename
    assert template.prompt == "from cwd"


def test_cwd_file_shadows_bundled_template(tmp_path: Path) -> None:
    write(tmp_path / "Poem.yaml", "my own poem prompt")

    template, path = load_template("Poem", cwd=tmp_path)

    assert path == tmp_path / "Poem.yaml"
    assert template.prompt == "my own poem prompt"


def test_process_cwd_is_the_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path / "Here.yaml", "here")
    monkeypatch.chdir(tmp_path)

    assert load_template("Here")[0].prompt == "here"


@pytest.mark.parametrize("ref", ["navigate", "NAVIGATE", "Navigate", "navigate.yaml", "Navigate.yml"])
def test_bundled_names_are_case_insensitive(tmp_path: Path, ref: str) -> None:
    assert resolve_template(ref, cwd=tmp_path) == bundled_templates()["Navigate"]


def test_unknown_template_lists_bundled_names(tmp_path: Path) -> None:
    with pytest.raises(TemplateError) as info:
        resolve_template("Poetry", cwd=tmp_path)

    message = str(info.value)
    assert message.startswith("template Poetry: no such file")
    for name in ("Navigate", "Poem", "Summarize"):
        assert name in message


def test_missing_path_is_a_template_error(tmp_path: Path) -> None:
    with pytest.raises(TemplateError, match="no such file"):
        load_template(tmp_path / "nowhere" / "Poem.yaml")


# --- dump_template --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["Poem", "Navigate", "Summarize"])
def test_dump_round_trips_bundled(name: str) -> None:
    template, _ = load_template(name)
    assert parse_template(dump_template(template)) == template


def test_dump_round_trips_tricky_text() -> None:
    template = Template(
        prompt="Line one.\n  indented line\n\nLast line with trailing blank lines\n\n\n",
        requirements="  leading spaces: and a colon # not a comment",
        count=120,
        qa=[
            QA(question="yes", answer="No"),
            QA(question="- looks like a list\nsecond line", answer="multi\nline\nanswer"),
            QA(question="null", answer=None),
            QA(question="{braces}: [brackets] & *star 'quote' \"dq\"", answer="@at"),
            QA(question="tab\there and unicode ✓ \u00e9", answer="x"),
        ],
        metric="contains",
    )

    text = dump_template(template)

    assert parse_template(text) == template
    assert "prompt: |" in text  # multi-line text stays readable as a block


def test_dump_is_what_spo_reads() -> None:
    """SPO's loader indexes data["qa"], item["answer"] and data["count"] directly."""
    import yaml

    text = dump_template(parse_template(MINIMAL))
    data = yaml.safe_load(text)

    assert list(data) == ["prompt", "requirements", "count", "qa"]
    assert data["count"] == "None"
    assert data["qa"] == [{"question": "the sea", "answer": ""}]


def test_unquoted_yes_no_answers_stay_text() -> None:
    """SPO users write `answer: Yes` for Navigate; YAML 1.1 would turn it into a boolean."""
    from promptopt.template import parse_template as parse

    t = parse("prompt: p\nqa:\n  - question: q1\n    answer: Yes\n  - question: q2\n    answer: no\n", "N.yaml")
    assert [q.answer for q in t.qa] == ["Yes", "no"]


def test_template_changes_name_what_a_rerun_would_notice() -> None:
    from promptopt.template import template_changes

    old = parse_template("prompt: p\nrequirements: r\nqa:\n  - question: q1\n    answer: a1\n")
    assert template_changes(old, old.model_copy(deep=True)) == []
    # Whitespace a YAML edit adds or drops is not a change.
    same = parse_template("prompt: 'p  '\nrequirements: r\nqa:\n  - question: q1\n    answer: a1\n")
    assert template_changes(old, same) == []
    answers = parse_template("prompt: p\nrequirements: r\nqa:\n  - question: q1\n    answer: a2\n")
    assert template_changes(old, answers) == ["answers"]
    everything = parse_template("prompt: p2\nrequirements: r2\ncount: 5\nqa:\n  - question: q2\n")
    assert template_changes(old, everything) == ["prompt", "requirements", "questions", "count"]


# --- hostile input (issue 13) ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("prompt: a\nprompt: b\nqa:\n  - question: q\n", "prompt"),
        ("prompt: p\nqa:\n  - question: q\n    question: r\n", "question"),
        ("prompt: p\nqa:\n  - question: q\nqa:\n  - question: r\n", "qa"),
    ],
)
def test_duplicate_keys_are_an_error_naming_the_key(text: str, key: str) -> None:
    with pytest.raises(TemplateError) as info:
        parse_template(text, "T.yaml")
    assert str(info.value).startswith("T.yaml: invalid YAML (line") and f"duplicate key '{key}'" in str(info.value)


def test_merge_keys_may_be_overridden() -> None:
    text = "base: &b {question: q, answer: a}\nprompt: p\nqa:\n  - {<<: *b, answer: other}\n"
    with pytest.raises(TemplateError, match="base: unknown key"):  # the merge itself is fine
        parse_template(text, "T.yaml")


def test_alias_bomb_in_a_template_is_refused_before_it_expands() -> None:
    import time

    lines = ["a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    lines += [f"a{n}: &a{n} [{', '.join([f'*a{n - 1}'] * 9)}]" for n in range(1, 9)]
    text = "prompt: p\nqa:\n  - question: q\n    answer: {" + ", ".join(lines) + "}\n"
    started = time.perf_counter()
    with pytest.raises(TemplateError, match="aliases expand"):
        parse_template(text, "T.yaml")
    assert time.perf_counter() - started < 2


def test_small_aliases_in_a_template_are_fine() -> None:
    text = "prompt: p\nqa:\n  - question: &q Where?\n    answer: here\n  - question: *q\n"
    assert [q.question for q in parse_template(text).qa] == ["Where?", "Where?"]


def test_recursive_alias_is_refused() -> None:
    with pytest.raises(TemplateError, match="alias refers to the node that contains it"):
        parse_template("prompt: p\nqa: &a\n  - question: q\n  - *a\n", "T.yaml")
