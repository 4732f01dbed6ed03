"""Every command through typer's CliRunner; models are the local stub server via real litellm."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from promptopt.cli import app

runner = CliRunner()
ENV = {"COLUMNS": "120", "NO_COLOR": "1"}


def invoke(*args: str) -> Any:
    return runner.invoke(app, list(args), env=ENV)


@pytest.fixture
def here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-stub")
    return tmp_path


def model_flags(stub: Any) -> list[str]:
    return ["--model", "openai/stub", "--api-base", stub.url]


def test_help_lists_the_commands() -> None:
    result = invoke("--help")
    assert result.exit_code == 0
    for command in ("init", "optimize", "show", "compare", "doctor", "cache"):
        assert command in result.output


def test_optimize_help_has_spo_flags() -> None:
    result = invoke("optimize", "--help")
    for flag in (
        "--opt-model",
        "--opt-temp",
        "--eval-model",
        "--eval-temp",
        "--exec-model",
        "--exec-temp",
        "--workspace",
        "--initial-round",
        "--max-rounds",
        "--template",
        "--name",
        "--model",
    ):
        assert flag in result.output


def test_init_list_and_from_bundled(here: Path) -> None:
    listed = invoke("init", "--list")
    assert listed.exit_code == 0
    assert "Navigate" in listed.output and "Poem" in listed.output and "Summarize" in listed.output
    made = invoke("init", "mine", "--from", "Navigate")
    assert made.exit_code == 0
    assert "return to the starting point" in (here / "mine.yaml").read_text()
    again = invoke("init", "mine", "--from", "Poem")
    assert again.exit_code == 2 and "exists" in again.output
    assert "return to the starting point" in (here / "mine.yaml").read_text()


def test_init_skeleton_is_a_valid_template(here: Path) -> None:
    assert invoke("init").exit_code == 0
    from promptopt.template import load_template

    template, _ = load_template(here / "template.yaml")
    assert template.qa and template.count is None


def test_optimize_end_to_end_through_litellm(here: Path, stub: Any) -> None:
    result = invoke("optimize", "--template", "Poem", "--max-rounds", "3", "--json", *model_flags(stub))
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["name"] == "Poem" and summary["stopped"] == "completed"
    assert [r["round"] for r in summary["rounds"]] == [1, 2, 3]
    # The stub's judge always says A: every pair ties, so adaptive judging asks for 3 pairs a round
    # (after that, with two pairs to spare, acceptance is out of reach).
    assert summary["calls"] == stub.count() == 3 + 2 * (1 + 3 + 6)
    assert stub.count("optimizer") == 2 and stub.count("judge") == 12
    assert summary["unpriced"] is True and summary["cost_usd"] == 0
    data = json.loads((here / "workspace/Poem/prompts/results.json").read_text())
    for entry in data:
        assert {"round", "answers", "prompt", "succeed", "tokens", "time"} <= entry.keys()
        folder = here / f"workspace/Poem/prompts/round_{entry['round']}"
        assert (folder / "prompt.txt").read_text() == entry["prompt"]
        assert "Question:" in (folder / "answers.txt").read_text()
    assert [r["votes"] for r in summary["rounds"][1:]] == ["✗✓✗✓✗✓", "✗✓✗✓✗✓"]
    assert summary["rounds"][1]["judge"]["consistency"] == 0.0 and summary["rounds"][1]["judge"]["share_a"] == 1.0
    assert summary["best_round"] == 1 and summary["gate"]["outcome"] == "not needed"


def test_rerun_is_free_and_continuing_adds_rounds(here: Path, stub: Any) -> None:
    assert invoke("optimize", "-t", "Poem", "-r", "2", *model_flags(stub)).exit_code == 0
    first = stub.count()
    again = invoke("optimize", "-t", "Poem", "-r", "2", "--json", *model_flags(stub))
    assert again.exit_code == 0 and stub.count() == first
    assert json.loads(again.stdout)["new_rounds"] == []
    more = invoke("optimize", "-t", "Poem", "-r", "3", "--json", *model_flags(stub))
    assert json.loads(more.stdout)["new_rounds"] == [3]
    rounds = [r["round"] for r in json.loads((here / "workspace/Poem/prompts/results.json").read_text())]
    assert rounds == [1, 2, 3]


def test_a_changed_template_warns_and_says_what_changed(here: Path, stub: Any) -> None:
    from promptopt.template import dump_template, load_template

    assert invoke("init", "mine", "--from", "Poem").exit_code == 0
    assert invoke("optimize", "-t", "mine.yaml", "-r", "2", *model_flags(stub)).exit_code == 0
    same = invoke("optimize", "-t", "mine.yaml", "-r", "2", "--json", *model_flags(stub))
    assert json.loads(same.stdout)["template_changes"] == [] and "warning" not in same.stderr
    template, _ = load_template(here / "mine.yaml")
    template.prompt += " Rhyme."
    template.qa[0].question = "Write a poem about a lighthouse keeper."
    (here / "mine.yaml").write_text(dump_template(template))
    changed = invoke("optimize", "-t", "mine.yaml", "-r", "3", "-q", "--json", *model_flags(stub))
    assert changed.exit_code == 0, changed.output
    assert json.loads(changed.stdout)["template_changes"] == ["prompt", "questions"]
    warning = " ".join(changed.stderr.split())
    assert "warning: mine: the template's prompt, questions changed since round 2" in warning
    assert "new prompt is not used" in warning and "--name" in warning
    # Round 3 ran on the new question, and the workspace now records the new template.
    assert any("lighthouse keeper" in str(r["body"]) for r in stub.requests if r["role"] == "executor")
    assert "lighthouse keeper" in (here / "workspace/mine/template.yaml").read_text()


def test_a_refused_run_leaves_the_workspace_template_alone(here: Path, stub: Any) -> None:
    assert invoke("optimize", "-t", "Poem", "-r", "2", *model_flags(stub)).exit_code == 0
    before = (here / "workspace/Poem/template.yaml").read_text()
    other = invoke("optimize", "-t", "Navigate", "-n", "Poem", "-s", "gpo", "-r", "3", *model_flags(stub))
    assert other.exit_code == 2 and "--strategy spo" in other.output
    assert (here / "workspace/Poem/template.yaml").read_text() == before


def test_deleted_workspace_reruns_from_the_cache_with_its_seed(here: Path, stub: Any) -> None:
    """The same --seed reproduces a run from the cache; without it a new run samples anew."""
    import shutil

    first = invoke("optimize", "-t", "Poem", "-r", "2", "--json", *model_flags(stub))
    assert first.exit_code == 0
    seed = json.loads(first.stdout)["seed"]
    paid = stub.count()
    shutil.rmtree(here / "workspace")
    again = invoke("optimize", "-t", "Poem", "-r", "2", "--json", "--seed", str(seed), *model_flags(stub))
    summary = json.loads(again.stdout)
    assert stub.count() == paid and summary["calls"] == 0 and summary["cached_calls"] == paid
    shutil.rmtree(here / "workspace")
    fresh = json.loads(invoke("optimize", "-t", "Poem", "-r", "2", "--json", *model_flags(stub)).stdout)
    assert fresh["seed"] != seed
    # Round 1's temperature-0 executor calls replay; the sampled optimizer and judge calls are new
    # (and the stub's new candidate is executed anew).
    assert fresh["usage"]["executor"]["cached"] == 3
    assert fresh["usage"]["optimizer"]["calls"] == 1 and fresh["usage"]["evaluator"]["calls"] == 6


def test_optimize_human_output(here: Path, stub: Any) -> None:
    result = invoke("optimize", "-t", "Poem", "-r", "2", *model_flags(stub))
    assert result.exit_code == 0
    assert "round 2/2 lose ✗✓✗✓✗✓ (0 pairs to 0, 3 tied, p=1) base 1" in result.output
    assert "best prompt (round 1)" in result.output
    assert "no price" in result.output


def test_show_table_round_best_and_json(here: Path, stub: Any) -> None:
    assert invoke("optimize", "-t", "Poem", "-r", "3", *model_flags(stub)).exit_code == 0
    table = invoke("show", "workspace/Poem")
    assert table.exit_code == 0 and "3 rounds, best round 1" in table.output
    best = invoke("show", "workspace/Poem", "--best")
    assert best.stdout == (here / "workspace/Poem/prompts/round_1/prompt.txt").read_text()
    detail = invoke("show", "workspace/Poem", "--round", "2")
    assert detail.exit_code == 0
    assert "diff against round 1" in detail.output and "judge 1" in detail.output
    assert "[-" in detail.output and "{+" in detail.output
    as_json = json.loads(invoke("show", "workspace/Poem", "--json").stdout)
    assert as_json["best_round"] == 1 and len(as_json["rounds"]) == 3
    missing = invoke("show", "workspace/Poem", "--round", "9")
    assert missing.exit_code == 2 and "no round 9" in missing.output


def test_show_reads_a_workspace_written_by_spo(here: Path) -> None:
    prompts = here / "ws/Legacy/prompts"
    for n in (1, 2, 3):
        (prompts / f"round_{n}").mkdir(parents=True)
        (prompts / f"round_{n}/prompt.txt").write_text(f"prompt {n}")
    answers = [{"question": "q1", "answer": "a1"}]
    spo = [
        {
            "round": 1,
            "answers": answers,
            "prompt": "prompt 1",
            "succeed": True,
            "tokens": 10,
            "time": "2025-02-11 10:00:00.123456",
        },
        {
            "round": 2,
            "answers": answers,
            "prompt": "prompt 2",
            "succeed": True,
            "tokens": 12,
            "time": "2025-02-11 10:01:00.123456",
        },
        {
            "round": 3,
            "answers": answers,
            "prompt": "prompt 3",
            "succeed": False,
            "tokens": 9,
            "time": "2025-02-11 10:02:00.123456",
        },
    ]
    (prompts / "results.json").write_text(json.dumps(spo, indent=4))
    shown = invoke("show", "ws/Legacy")
    assert shown.exit_code == 0 and "best round 2" in shown.output
    assert invoke("show", "ws/Legacy", "--best").stdout == "prompt 2\n"
    detail = invoke("show", "ws/Legacy", "--round", "3")
    assert detail.exit_code == 0 and "diff against round 2" in detail.output


def test_compare_prompts_from_workspace_file_and_string(here: Path, stub: Any) -> None:
    assert invoke("optimize", "-t", "Poem", "-r", "2", *model_flags(stub)).exit_code == 0
    (here / "b.txt").write_text("Write a vivid poem.")
    result = invoke("compare", "workspace/Poem:1", "b.txt", "--json", *model_flags(stub))
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert len(data["questions"]) == 3
    assert all(len(q["votes"]) == 2 for q in data["questions"])
    # The stub judge always answers A; one balanced vote each way makes every question a tie.
    assert data["ties"] == 3 and data["b_better"] is False and data["verdict"] == "no significant difference"
    assert data["a"] == "workspace/Poem round 1" and data["b"] == "file b.txt"
    tie = invoke("compare", "workspace/Poem:1", "Write a vivid poem.", "--fail-if-worse", *model_flags(stub))
    assert tie.exit_code == 0  # only a significant loss fails
    assert "no significant difference" in tie.output and "per question: B 0, A 0, tie 3" in tie.output
    assert "A: workspace/Poem round 1" in tie.output and "3 questions from" in tie.output
    unless = invoke(
        "compare", "workspace/Poem:1", "text:Write a vivid poem.", "--fail-unless-better", *model_flags(stub)
    )
    assert unless.exit_code == 4


def test_compare_with_a_questions_file(here: Path, stub: Any) -> None:
    (here / "qs.jsonl").write_text('{"question": "one?", "answer": "1"}\n{"question": "two?"}\n')
    result = invoke("compare", "Prompt A", "Prompt B", "--questions", "qs.jsonl", "--json", *model_flags(stub))
    assert result.exit_code == 0, result.output
    assert [q["question"] for q in json.loads(result.stdout)["questions"]] == ["one?", "two?"]
    needs = invoke("compare", "Prompt A", "Prompt B", *model_flags(stub))
    assert needs.exit_code == 2 and "--template or --questions" in needs.output


def test_dry_run_calls_nothing(here: Path, stub: Any) -> None:
    result = invoke("optimize", "-t", "Poem", "--dry-run", "--json", *model_flags(stub))
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    # Adaptive judging: 9 comparisons of 4 to 12 votes, then a gate of 3 questions × up to 4 pairs.
    assert data["worst_calls"] == 3 + 9 * (1 + 3) + 9 * 12 + 2 * 12
    assert 75 < data["calls"] < data["worst_calls"] and data["confirm"] is True
    assert data["lengths_guessed"] is True
    classic = invoke("optimize", "-t", "Poem", "--dry-run", "--json", "--accept", "majority", "--no-confirm")
    fixed = json.loads(classic.stdout)
    assert fixed["calls"] == fixed["worst_calls"] == 75 and fixed["roles"]["evaluator"]["calls"] == 36
    assert stub.count() == 0 and not (here / "workspace").exists()


def test_cache_stats_and_clear(here: Path, stub: Any) -> None:
    assert invoke("optimize", "-t", "Poem", "-r", "2", *model_flags(stub)).exit_code == 0
    stats = json.loads(invoke("cache", "stats", "--json").stdout)
    assert stats["entries"] == 3 + 1 + 3 + 6  # the stub's judge ties every pair: 3 pairs
    assert "removed 13" in invoke("cache", "clear").output
    assert json.loads(invoke("cache", "stats", "--json").stdout)["entries"] == 0


def test_no_cache_pays_again(here: Path, stub: Any) -> None:
    assert invoke("optimize", "-t", "Poem", "-r", "1", "--no-cache", *model_flags(stub)).exit_code == 0
    assert invoke("optimize", "-t", "Poem", "-r", "1", "--no-cache", "--name", "P2", *model_flags(stub)).exit_code == 0
    assert stub.count() == 6


def test_compare_reports_accuracy_with_a_metric(here: Path, stub: Any) -> None:
    (here / "M.yaml").write_text(
        "prompt: p\nmetric: contains\nqa:\n  - question: say yes\n    answer: 'say yes'\n"
        "  - question: say no\n    answer: 'nothing matches this'\n"
    )
    result = invoke("compare", "A prompt", "B prompt", "--template", "M.yaml", "--json", *model_flags(stub))
    data = json.loads(result.stdout)
    # The stub echoes the prompt and question: "say yes" appears in the answer, the other reference never does.
    assert data["metric"] == "contains" and data["a_accuracy"] == 0.5 and data["b_accuracy"] == 0.5
    assert [q["a_correct"] for q in data["questions"]] == [True, False]


def test_local_model_runs_one_call_at_a_time_unless_told_otherwise(monkeypatch: pytest.MonkeyPatch) -> None:
    from promptopt.cli import _build_config

    assert _build_config({"model": "local"}).concurrency == 1
    assert _build_config({"model": "local", "concurrency": 3}).concurrency == 3
    monkeypatch.setenv("PROMPTOPT_CONCURRENCY", "4")
    assert _build_config({"model": "local"}).concurrency == 4
    assert _build_config({"model": "openai/x"}).concurrency == 4


def test_resume_with_another_model_warns_even_quiet_and_show_lists_models(here: Path, stub: Any) -> None:
    assert invoke("optimize", "-t", "Poem", "-r", "1", *model_flags(stub)).exit_code == 0
    flags = ["--model", "openai/stub", "--exec-model", "openai/other", "--api-base", stub.url]
    result = invoke("optimize", "-t", "Poem", "-r", "2", "--quiet", *flags)
    assert result.exit_code == 0
    assert "warning: Poem: the models changed since round 1 (executor: openai/stub → openai/other)" in result.output
    shown = invoke("show", "workspace/Poem")
    assert "models" in shown.output and "executor openai/other" in shown.output
    detail = invoke("show", "workspace/Poem", "--round", "1")
    assert "models: openai/stub" in detail.output


@pytest.mark.parametrize(("value", "raises"), [("1", True), ("0", False), ("false", False), ("maybe", False)])
def test_promptopt_debug_is_a_boolean(here: Path, value: str, raises: bool) -> None:
    result = runner.invoke(app, ["show", "nowhere/x"], env={**ENV, "PROMPTOPT_DEBUG": value})
    if raises:
        assert result.exception is not None and result.exit_code == 1
        return
    assert result.exit_code == 2, result.output
    lines = result.output.splitlines()
    assert all(line.startswith("promptopt: error: ") for line in lines), result.output
    if value == "maybe":
        assert "PROMPTOPT_DEBUG='maybe'" in result.output


@pytest.mark.parametrize(
    "command", [[], ["optimize"], ["show"], ["compare"], ["doctor"], ["init"], ["ui"], ["cache", "stats"]]
)
def test_help_has_no_stray_backslashes(command: list[str]) -> None:
    result = invoke(*command, "--help")
    assert result.exit_code == 0
    assert "\\" not in result.output, result.output
    if command == ["compare"]:
        assert "[required]" in result.output and "[default: 2]" in " ".join(result.output.split())


def test_show_a_bare_name_looks_in_the_default_workspace(here: Path, stub: Any) -> None:
    assert invoke("optimize", "-t", "Poem", "-r", "1", "-n", "mine", *model_flags(stub)).exit_code == 0
    shown = invoke("show", "mine")
    assert shown.exit_code == 0, shown.output
    assert "mine — 1 round, best round 1" in shown.output
    assert invoke("show", "mine", "--best").stdout == (here / "workspace/mine/prompts/round_1/prompt.txt").read_text()
    missing = invoke("show", "theirs")
    assert missing.exit_code == 2 and "no run named theirs in workspace/" in missing.output


def test_compare_forms_are_unambiguous_and_a_typo_costs_nothing(here: Path, stub: Any) -> None:
    assert invoke("optimize", "-t", "Poem", "-r", "1", *model_flags(stub)).exit_code == 0
    paid = stub.count()
    (here / "best.txt").write_text("Write a vivid poem.")
    typo = invoke("compare", "workspace/Poem:1", "bset.txt", *model_flags(stub))
    assert typo.exit_code == 2 and "text:bset.txt" in typo.output
    assert stub.count() == paid
    ratio = invoke(
        "compare",
        "Describe a screen with aspect ratio 16:9",
        "file:best.txt",
        "-t",
        "Poem",
        "--json",
        *model_flags(stub),
    )
    assert ratio.exit_code == 0, ratio.output
    literal = invoke("compare", "Poem:1", "text:best.txt", "--json", *model_flags(stub))
    assert literal.exit_code == 0, literal.output
    bodies = [json.dumps(r["body"]) for r in stub.requests if r["role"] == "executor"]
    assert any("aspect ratio 16:9" in b for b in bodies) and any("Write a vivid poem." in b for b in bodies)
    assert any("best.txt" in b for b in bodies)


def test_blank_questions_file_entries_are_refused(here: Path, stub: Any) -> None:
    (here / "qs.yaml").write_text("- one?\n- '  '\n")
    result = invoke("compare", "A", "B", "--questions", "qs.yaml", *model_flags(stub))
    assert result.exit_code == 2 and "qs.yaml: item 1: the question is empty" in result.output
    assert stub.count() == 0


def test_run_header_counts_in_words(here: Path, stub: Any) -> None:
    (here / "One.yaml").write_text("prompt: p\nqa:\n  - question: q\n")
    result = invoke("optimize", "-t", "One.yaml", "-r", "1", *model_flags(stub))
    assert result.exit_code == 0, result.output
    assert "One: spo on 1 question, 1 round, openai/stub" in result.stderr


def test_a_duplicated_round_is_reported_and_archived(here: Path, stub: Any) -> None:
    assert invoke("optimize", "-t", "Poem", "-r", "2", *model_flags(stub)).exit_code == 0
    results = here / "workspace/Poem/prompts/results.json"
    entries = json.loads(results.read_text())
    results.write_text(json.dumps([entries[0], entries[0], entries[1]]))
    again = invoke("optimize", "-t", "Poem", "-r", "2", "-q", *model_flags(stub))
    assert again.exit_code == 0, again.output
    warning = " ".join(again.stderr.split())
    assert "warning: Poem: results.json held round 1 more than once" in warning
    assert "results.with-duplicate-rounds-" in warning


def test_optimize_warns_about_inits_placeholders(here: Path, stub: Any) -> None:
    assert invoke("init", "mine").exit_code == 0
    result = invoke("optimize", "-t", "mine.yaml", "-r", "1", "-q", *model_flags(stub))
    assert result.exit_code == 0, result.output
    assert "warning: mine: the template still holds `promptopt init`'s placeholder" in " ".join(result.stderr.split())
    real = invoke("optimize", "-t", "Poem", "-r", "1", "-q", *model_flags(stub))
    assert "warning" not in real.stderr
