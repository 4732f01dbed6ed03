"""The workspace on disk: SPO's layout and results.json, atomic saves, the lock, archives."""

from __future__ import annotations

import datetime as real_dt
import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import promptopt.workspace as workspace_module
from promptopt.errors import ExitCode, WorkspaceError, WorkspaceLocked
from promptopt.records import AnswerRecord, RoundRecord, VoteRecord
from promptopt.workspace import Workspace, format_answers

SPO_KEYS = ["round", "answers", "prompt", "succeed", "tokens", "time"]

# What MetaGPT SPO's DataUtils.save_results writes: json.dump(data, default=str, indent=4), so
# non-ASCII is escaped, "time" is str(datetime.now()), answers are {"question", "answer"} and
# nothing else. SPO appends, so a re-run round appears twice; the later entry is the one that counts.
SPO_RESULTS = """\
[
    {
        "round": 1,
        "answers": [
            {
                "question": "Write a poem about the last ferry of the night crossing a harbour.\\n",
                "answer": "The ferry hums across the black water,\\nits lamps like caf\\u00e9 windows."
            },
            {
                "question": "Write a poem about a grandmother's kitchen in winter.\\n",
                "answer": "Steam on the glass, the kettle's low complaint."
            }
        ],
        "prompt": "Write a poem about the theme given below.\\n",
        "succeed": true,
        "tokens": 0,
        "time": "2025-02-11 10:00:00.123456"
    },
    {
        "round": 2,
        "answers": [],
        "prompt": "A first attempt at round 2.",
        "succeed": false,
        "tokens": 0,
        "time": "2025-02-11 10:03:12.000001"
    },
    {
        "round": 2,
        "answers": [
            {
                "question": "Write a poem about the last ferry of the night crossing a harbour.\\n",
                "answer": "Last boat. The gulls have gone to bed."
            }
        ],
        "prompt": "Write a sonnet about the theme below, with concrete images.",
        "succeed": true,
        "tokens": 0,
        "time": "2025-02-11 10:05:40.654321"
    }
]
"""


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    return Workspace(tmp_path / "workspace", "Poem")


@pytest.fixture
def spo_ws(ws: Workspace) -> Workspace:
    ws.prompts.mkdir(parents=True)
    ws.results_path.write_text(SPO_RESULTS, encoding="utf-8")
    return ws


def record(number: int, prompt: str = "Write a poem.", **extra: Any) -> RoundRecord:
    answers = [AnswerRecord(question="the sea", answer="waves"), AnswerRecord(question="rain", answer="drops")]
    return RoundRecord(
        round=number,
        prompt=prompt,
        answers=answers,
        succeed=True,
        tokens=42,
        time="2025-03-01 12:00:00.000000",
        **extra,
    )


def temp_files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*") if p.name.endswith(".tmp"))


# --- layout and format ------------------------------------------------------------------------------


def test_save_round_writes_spo_layout(ws: Workspace) -> None:
    ws.save_round(record(1, "Write a poem.\nUse rhyme."), [])

    folder = ws.base / "Poem" / "prompts" / "round_1"
    assert (folder / "prompt.txt").read_text(encoding="utf-8") == "Write a poem.\nUse rhyme."
    assert (folder / "answers.txt").read_text(encoding="utf-8") == (
        "Question:\nthe sea\nAnswer:\nwaves\n\nQuestion:\nrain\nAnswer:\ndrops\n\n"
    )
    data = json.loads((ws.base / "Poem" / "prompts" / "results.json").read_text(encoding="utf-8"))
    assert isinstance(data, list) and len(data) == 1
    assert list(data[0])[:6] == SPO_KEYS
    assert data[0]["answers"] == [{"question": "the sea", "answer": "waves"}, {"question": "rain", "answer": "drops"}]
    assert (ws.round_dir(1) / "prompt.txt").read_text(encoding="utf-8") == "Write a poem.\nUse rhyme."
    assert not (ws.round_dir(2) / "prompt.txt").exists()


def test_our_extra_fields_survive_a_reload(ws: Workspace) -> None:
    votes = [VoteRecord(winner="candidate", swapped=True, choice="A"), VoteRecord(winner="base")]
    saved = record(2, base_round=1, verdict="win", votes=votes, modification="shorter", cost_usd=0.25)

    ws.save_round(saved, [])
    [loaded] = ws.load()

    assert loaded == saved
    assert (loaded.wins, loaded.losses, loaded.vote_marks) == (1, 1, "✓✗")


def test_failed_answers_are_marked_in_answers_txt() -> None:
    answers = [AnswerRecord(question="q1", answer="fine"), AnswerRecord(question="q2", error="timeout")]
    assert format_answers(answers) == "Question:\nq1\nAnswer:\nfine\n\nQuestion:\nq2\nAnswer:\n[failed: timeout]\n\n"


def test_save_round_replaces_a_rerun_round_and_keeps_order(ws: Workspace) -> None:
    records = ws.save_round(record(2, "second"), [])
    records = ws.save_round(record(1, "first"), records)
    records = ws.save_round(record(2, "second, again"), records)

    assert [(r.round, r.prompt) for r in records] == [(1, "first"), (2, "second, again")]
    assert [(r.round, r.prompt) for r in ws.load()] == [(1, "first"), (2, "second, again")]
    assert (ws.round_dir(2) / "prompt.txt").read_text(encoding="utf-8") == "second, again"


def test_empty_or_missing_results_mean_no_rounds(ws: Workspace) -> None:
    assert ws.load() == [] and not ws.exists()
    ws.prompts.mkdir(parents=True)
    ws.results_path.write_text("  \n", encoding="utf-8")
    assert ws.load() == []


# --- reading what MetaGPT SPO wrote ---------------------------------------------------------------


def test_spo_results_load(spo_ws: Workspace) -> None:
    records = spo_ws.load()

    assert [r.round for r in records] == [1, 2]
    first, second = records
    assert first.time == "2025-02-11 10:00:00.123456"
    assert first.succeed and first.tokens == 0
    assert first.answers[0].answer == "The ferry hums across the black water,\nits lamps like café windows."
    assert first.verdict is None and first.votes == []
    # SPO re-ran round 2: the last entry wins
    assert second.prompt == "Write a sonnet about the theme below, with concrete images."
    assert second.succeed and len(second.answers) == 1


def test_continuing_an_spo_workspace_keeps_it_spo_readable(spo_ws: Workspace) -> None:
    records = spo_ws.load()
    spo_ws.save_round(record(3, "Round three."), records)

    data = json.loads(spo_ws.results_path.read_text(encoding="utf-8"))
    assert [entry["round"] for entry in data] == [1, 2, 3]
    for entry in data:
        assert set(SPO_KEYS) <= set(entry)
        assert all(set(answer) == {"question", "answer"} for answer in entry["answers"])
    assert data[0]["time"] == "2025-02-11 10:00:00.123456"
    assert data[0]["answers"][0]["answer"].endswith("café windows.")


def test_unknown_keys_from_other_versions_survive_a_save(ws: Workspace) -> None:
    ws.prompts.mkdir(parents=True)
    ws.results_path.write_text('[{"round": 1, "prompt": "p", "future_field": {"x": 1}}]', encoding="utf-8")

    ws.save_round(record(2), ws.load())

    assert json.loads(ws.results_path.read_text(encoding="utf-8"))[0]["future_field"] == {"x": 1}


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b'[{"round": 1, "prompt": "p"', "not valid JSON (line 1)"),
        (b'{"round": 1, "prompt": "p"}', "expected a list of rounds"),
        (b'[{"prompt": "p", "succeed": true}]', "[0].round"),
        (b'[{"round": 1}, {"prompt": "no round"}]', "[1].round"),
        (b'[{"round": "first"}]', "[0].round"),
        (b"[1, 2]", "[0]"),
        (b'[{"round": 1, "answers": "none"}]', "[0].answers"),
        (b"\xff\xfe[]", "cannot read"),
        (b'[{"round": 1' + b"0" * 5000 + b"}]", "not valid JSON"),
        (b"[" * 100_000, "not valid JSON"),
    ],
    ids=[
        "truncated",
        "dict",
        "no-round",
        "second-no-round",
        "round-text",
        "not-objects",
        "answers-text",
        "not-utf8",
        "huge-number",
        "deep-nesting",
    ],
)
def test_corrupted_results_are_reported_and_left_alone(ws: Workspace, raw: bytes, expected: str) -> None:
    ws.prompts.mkdir(parents=True)
    ws.results_path.write_bytes(raw)

    with pytest.raises(WorkspaceError) as info:
        ws.load()

    assert str(info.value).startswith(str(ws.results_path))
    assert expected in str(info.value)
    assert ws.results_path.read_bytes() == raw
    assert info.value.exit_code == ExitCode.USAGE


# --- atomic saves ---------------------------------------------------------------------------------


@pytest.fixture
def failing_results_replace(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """os.replace fails when it would commit results.json; other files go through."""
    real_replace = os.replace
    attempts: list[str] = []

    def replace(src: str, dst: str | Path) -> None:
        if Path(dst).name == "results.json":
            attempts.append(str(src))
            raise OSError(28, "No space left on device")
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    yield attempts


def test_failed_commit_leaves_old_results_intact(spo_ws: Workspace, failing_results_replace: list[str]) -> None:
    before = spo_ws.results_path.read_bytes()

    with pytest.raises(WorkspaceError, match="No space left on device"):
        spo_ws.save_round(record(3), spo_ws.load())

    assert failing_results_replace, "the save never reached results.json"
    assert spo_ws.results_path.read_bytes() == before
    assert temp_files(spo_ws.root) == []
    assert [r.round for r in spo_ws.load()] == [1, 2]


def test_interrupted_write_leaves_no_temp_file(spo_ws: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    before = spo_ws.results_path.read_bytes()

    def interrupted(src: str, dst: str | Path) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        spo_ws.write_results([record(9)])

    assert spo_ws.results_path.read_bytes() == before
    assert temp_files(spo_ws.root) == []


def test_successful_saves_leave_no_temp_files(ws: Workspace) -> None:
    records = ws.save_round(record(1), [])
    ws.save_round(record(2), records)
    assert temp_files(ws.root) == []


# --- lock -----------------------------------------------------------------------------------------

HOLDER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from promptopt.workspace import Workspace

    with Workspace(Path(sys.argv[1]), sys.argv[2]).lock():
        print("locked", flush=True)
        sys.stdin.readline()
    """
)


@pytest.fixture
def holder(ws: Workspace) -> Iterator[subprocess.Popen[str]]:
    """Another process holding the workspace lock until we write a line to it."""
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(ws.base), ws.name],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline() == "locked\n"
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)


def release(proc: subprocess.Popen[str]) -> None:
    assert proc.stdin is not None
    proc.stdin.write("\n")
    proc.stdin.flush()
    assert proc.wait(timeout=10) == 0


def test_second_lock_names_the_holder(ws: Workspace, holder: subprocess.Popen[str]) -> None:
    for _attempt in range(2):  # a refused attempt must not erase the holder's pid
        with pytest.raises(WorkspaceLocked) as info, Workspace(ws.base, ws.name).lock():
            pytest.fail("got a lock another process holds")
        assert f"pid {holder.pid} " in str(info.value)
        assert info.value.exit_code == ExitCode.LOCKED

    release(holder)
    with ws.lock():
        assert f"pid {os.getpid()} " in (ws.root / ".lock").read_text(encoding="utf-8")


def test_lock_of_a_killed_process_is_taken_over(ws: Workspace, holder: subprocess.Popen[str]) -> None:
    holder.kill()
    holder.wait(timeout=10)

    with ws.lock():
        assert f"pid {os.getpid()} " in (ws.root / ".lock").read_text(encoding="utf-8")


def test_stale_lock_file_is_taken_over_silently(ws: Workspace) -> None:
    ws.root.mkdir(parents=True)
    (ws.root / ".lock").write_text("pid 999999999 on ghost since 2024-01-01 00:00:00\n", encoding="utf-8")

    with ws.lock():
        content = (ws.root / ".lock").read_text(encoding="utf-8")
        assert content.startswith(f"pid {os.getpid()} ") and "999999999" not in content

    with ws.lock():  # released on exit: usable again
        pass


def test_lock_is_released_when_the_run_fails(ws: Workspace) -> None:
    with pytest.raises(RuntimeError), ws.lock():
        raise RuntimeError("boom")
    with ws.lock():
        pass


# --- archives, names, paths -------------------------------------------------------------------------


def test_archive_keeps_a_copy(spo_ws: Workspace) -> None:
    before = spo_ws.results_path.read_bytes()

    archived = spo_ws.archive_results("before-initial-round")

    assert archived is not None and archived.parent == spo_ws.prompts
    assert archived.name.startswith("results.before-initial-round-")
    assert archived.read_bytes() == before
    assert spo_ws.results_path.read_bytes() == before


def test_archives_in_the_same_second_do_not_overwrite(spo_ws: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    class FrozenClock:
        class datetime:
            @staticmethod
            def now() -> real_dt.datetime:
                return real_dt.datetime(2025, 2, 11, 10, 0, 0)

    monkeypatch.setattr(workspace_module, "dt", FrozenClock)
    first = spo_ws.archive_results("reset")
    original = spo_ws.results_path.read_text(encoding="utf-8")
    spo_ws.write_results([record(1)])
    second = spo_ws.archive_results("reset")

    assert first is not None and second is not None and first != second
    assert first.read_text(encoding="utf-8") == original
    assert json.loads(second.read_text(encoding="utf-8"))[0]["prompt"] == "Write a poem."


def test_archive_without_results_is_a_no_op(ws: Workspace) -> None:
    assert ws.archive_results("x") is None


@pytest.mark.parametrize("name", ["../escape", "a/b", "..", "a\\b", ""])
def test_workspace_name_must_be_plain(tmp_path: Path, name: str) -> None:
    with pytest.raises(WorkspaceError, match="plain name"):
        Workspace(tmp_path, name)


@pytest.mark.parametrize("suffix", ["", "prompts", "prompts/results.json"])
def test_from_path_accepts_any_level(spo_ws: Workspace, suffix: str) -> None:
    found = Workspace.from_path(spo_ws.root / suffix if suffix else spo_ws.root)
    assert found.root == spo_ws.root
    assert [r.round for r in found.load()] == [1, 2]
