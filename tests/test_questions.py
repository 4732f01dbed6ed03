"""`compare`'s inputs: unambiguous prompt forms and question files (issues 13 and 14)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from promptopt.errors import PromptoptError, TemplateError, WorkspaceError
from promptopt.questions import load_questions, resolve_prompt


@pytest.fixture
def here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    prompts = tmp_path / "workspace/mine/prompts"
    prompts.mkdir(parents=True)
    (prompts / "results.json").write_text(json.dumps([{"round": 1, "prompt": "Round one."}]))
    (tmp_path / "best.txt").write_text("From a file.")
    return tmp_path


@pytest.mark.parametrize(
    ("spec", "prompt"),
    [
        ("Describe a screen with aspect ratio 16:9", "Describe a screen with aspect ratio 16:9"),
        ("Answer in one line.\nUse units: 2", "Answer in one line.\nUse units: 2"),
        ("Summarize.", "Summarize."),
        ("best.txt", "From a file."),
        ("file:best.txt", "From a file."),
        ("text:best.txt", "best.txt"),
        ("text:workspace/mine:1", "workspace/mine:1"),
        ("workspace/mine:1", "Round one."),
        ("mine:1", "Round one."),  # a bare run name, in the default workspace
    ],
)
def test_prompt_forms(here: Path, spec: str, prompt: str) -> None:
    assert resolve_prompt(spec)[0] == prompt


@pytest.mark.parametrize(
    ("spec", "error", "needle"),
    [
        ("bset.txt", TemplateError, "bset.txt: no such file; to use these words as the prompt, write text:bset.txt"),
        ("prompts/b", TemplateError, "no such file"),
        ("file:nope.txt", TemplateError, "file:nope.txt: no such file"),
        ("workspace/other:1", WorkspaceError, "write text:workspace/other:1"),
        ("mine:7", WorkspaceError, "has no round 7"),
        ("text:   ", TemplateError, "is empty"),
        ("   ", TemplateError, "is empty"),
    ],
)
def test_references_that_name_nothing_are_errors(
    here: Path, spec: str, error: type[PromptoptError], needle: str
) -> None:
    with pytest.raises(error) as info:
        resolve_prompt(spec)
    assert needle in str(info.value)


def test_default_workspace_follows_the_environment(here: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (here / "workspace").rename(here / "runs")
    with pytest.raises(WorkspaceError):
        resolve_prompt("mine:1")
    monkeypatch.setenv("PROMPTOPT_WORKSPACE", str(here / "runs"))
    assert resolve_prompt("mine:1")[0] == "Round one."


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("qs.yaml", "- one?\n- ''\n"),
        ("qs.yaml", "- one?\n- '   '\n"),
        ("qs.json", '[{"question": "one?"}, {"question": "  \\n"}]'),
        ("qs.jsonl", '{"question": "one?"}\n{"question": ""}\n'),
    ],
)
def test_blank_questions_are_refused(tmp_path: Path, name: str, content: str) -> None:
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(TemplateError, match=rf"{name}: item 1: the question is empty"):
        load_questions(path)


def test_question_files_refuse_duplicate_keys(tmp_path: Path) -> None:
    path = tmp_path / "qs.yaml"
    path.write_text("qa:\n  - question: a\nqa:\n  - question: b\n")
    with pytest.raises(TemplateError, match="duplicate key 'qa'"):
        load_questions(path)
