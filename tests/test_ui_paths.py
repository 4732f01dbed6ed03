"""promptopt.ui.paths: a path from the page stays inside its folder, or nothing is written."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from promptopt.errors import WorkspaceError
from promptopt.ui import paths
from promptopt.ui.session import list_runs

OUTSIDE = [
    ("~/../x.yaml", "'~'"),
    ("~root/x.yaml", "'~'"),
    ("sub/~/x.yaml", "'~'"),
    ("/etc/x.yaml", "absolute"),
    ("//server/share/x.yaml", "absolute"),
    ("C:\\x.yaml", "absolute"),
    ("C:x.yaml", "absolute"),
    ("\\x.yaml", "absolute"),
    ("sub\\..\\..\\x.yaml", "must not contain '\\'"),
    ("../x.yaml", "'..'"),
    ("sub/../../x.yaml", "'..'"),
    ("sub/../x.yaml", "'..'"),
    ("", "empty"),
    ("   ", "empty"),
    (".", "names no file"),
    ("./", "names no file"),
    ("a\x00b.yaml", "control character"),
    ("a\nb.yaml", "control character"),
    ("a\x1b[31mb.yaml", "control character"),
    ("a\u202eb.yaml", "control character"),  # right-to-left override: hides the real name
]


@pytest.mark.parametrize(("text", "why"), OUTSIDE)
def test_confine_refuses_anything_but_a_name_inside(tmp_path: Path, text: str, why: str) -> None:
    with pytest.raises(WorkspaceError) as info:
        paths.confine(tmp_path / "ws", text)
    message = str(info.value)
    assert why in message and "\n" not in message and "\x00" not in message and "\x1b" not in message


@pytest.mark.parametrize(
    ("text", "inside"), [("x.yaml", "x.yaml"), ("./sub//x.yaml", "sub/x.yaml"), (" x.yaml ", "x.yaml")]
)
def test_confine_accepts_a_name_inside(tmp_path: Path, text: str, inside: str) -> None:
    (tmp_path / "ws").mkdir()
    assert paths.confine(tmp_path / "ws", text) == (tmp_path / "ws" / inside).resolve()


@pytest.mark.skipif(os.name != "posix", reason="symlinks")
def test_confine_refuses_symlinks_that_lead_outside(tmp_path: Path) -> None:
    ws, outside = tmp_path / "ws", tmp_path / "outside"
    ws.mkdir()
    outside.mkdir()
    (ws / "out").symlink_to(outside)  # a folder that leads out
    (ws / "bashrc.yaml").symlink_to(tmp_path / "home" / ".bashrc")  # a dangling file link
    (ws / "loop.yaml").symlink_to(ws / "loop.yaml")
    (ws / "in").symlink_to(ws / "real")  # a link that stays inside is fine
    for text in ("out/x.yaml", "bashrc.yaml", "out"):
        with pytest.raises(WorkspaceError, match="leads outside"):
            paths.confine(ws, text)
    with pytest.raises(WorkspaceError, match=r"cannot be resolved|leads outside"):
        paths.confine(ws, "loop.yaml")
    assert paths.confine(ws, "in/x.yaml") == (ws / "real" / "x.yaml").resolve()


@pytest.mark.parametrize(("text", "_why"), OUTSIDE)
def test_save_text_writes_nothing_for_a_refused_path(tmp_path: Path, text: str, _why: str) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    before = sorted(tmp_path.rglob("*"))
    with pytest.raises(WorkspaceError):
        paths.save_text(ws, text, "prompt: rm -rf ~\n", overwrite=True, suffixes=paths.TEMPLATE_SUFFIXES)
    assert sorted(tmp_path.rglob("*")) == before


def test_save_text_writes_inside_and_keeps_existing_files(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    saved = paths.save_text(ws, "mine/p.yaml", "a: 1\n", overwrite=False, suffixes=paths.TEMPLATE_SUFFIXES)
    assert saved == (ws / "mine" / "p.yaml").resolve() and saved.read_text() == "a: 1\n"
    with pytest.raises(WorkspaceError, match="exists: tick 'Overwrite'"):
        paths.save_text(ws, "mine/p.yaml", "a: 2\n", overwrite=False, suffixes=paths.TEMPLATE_SUFFIXES)
    paths.save_text(ws, "mine/p.yaml", "a: 2\n", overwrite=True, suffixes=paths.TEMPLATE_SUFFIXES)
    assert saved.read_text() == "a: 2\n"
    for name in ("run.py", "mine/results.json", ".bashrc", "mine"):
        with pytest.raises(WorkspaceError, match=r"\.yaml or \.yml|is a folder"):
            paths.save_text(ws, name, "x", overwrite=True, suffixes=paths.TEMPLATE_SUFFIXES)
    assert sorted(p.name for p in ws.rglob("*")) == ["mine", "p.yaml"]


@pytest.mark.parametrize(
    ("name", "stem"),
    [
        ("Poem.yaml", "Poem"),
        ("../../.bashrc.yaml", "bashrc"),
        ("C:\\x\\evil.yml", "evil"),
        ("a b\nc.yaml", "a-b-c"),
        ("..", "template"),
    ],
)
def test_plain_stem_is_safe_in_names_and_downloads(name: str, stem: str) -> None:
    assert paths.plain_stem(name) == stem


@pytest.mark.skipif(os.name != "posix", reason="symlinks")
def test_list_runs_skips_run_folders_that_lead_outside(tmp_path: Path) -> None:
    ws, elsewhere = tmp_path / "ws", tmp_path / "elsewhere"
    for run in (ws / "mine", elsewhere / "secret"):
        (run / "prompts").mkdir(parents=True)
        (run / "prompts" / "results.json").write_text("[]")
    (ws / "linked").symlink_to(elsewhere / "secret")
    (ws / "half" / "prompts").mkdir(parents=True)
    (ws / "half" / "prompts" / "results.json").symlink_to(elsewhere / "secret" / "prompts" / "results.json")
    assert [p.name for p in list_runs(ws)] == ["mine"]
