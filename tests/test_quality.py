"""scripts/quality.py: SPO's data, templates, ground-truth scoring, statistics, report, a stub run."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

import pytest

from promptopt.engine.stats import mcnemar, wilson
from promptopt.errors import ConfigError
from promptopt.template import Template

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"
if not (SCRIPTS / "qualitykit").is_dir():  # an sdist ships tests/ without scripts/
    pytest.skip("scripts/qualitykit is not in this tree", allow_module_level=True)
sys.path.insert(0, str(SCRIPTS))

from qualitykit import cli, report, run, scoring, tasks  # noqa: E402

SIZES = {"navigate": (25, 25, 200), "liar": (25, 25, 200), "wsc": (25, 25, 150), "math": (25, 25, 100)}
LABELS = {"navigate": {"Yes", "No"}, "liar": {"Yes", "No"}, "wsc": {"A", "B"}}


# --- data ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", tasks.NAMES)
def test_each_task_loads_from_the_copied_files(name: str) -> None:
    task = tasks.TASKS[name]
    sizes = tuple(len(tasks.load_split(task, split)) for split in tasks.SPLITS)
    assert sizes == SIZES[name]
    for item in tasks.load_split(task, "test"):
        assert item.question.strip() and item.gold.strip()
        if name in LABELS:
            assert item.gold in LABELS[name]
    assert (tasks.DATA / "LICENSE").read_text(encoding="utf-8").startswith("MIT License")


def test_task_rows_become_questions_and_gold_answers() -> None:
    t = tasks.TASKS
    assert tasks.parse_row(t["wsc"], {"input": "Who? (A) x (B) y", "output": "(B)"}, "w") == tasks.Item(
        "Who? (A) x (B) y", "B"
    )
    liar = tasks.parse_row(t["liar"], {"label": 1, "text": "Statement: the moon is cheese."}, "l")
    assert liar.gold == "Yes"  # label 1 is a lie
    assert liar.question.startswith("Statement: the moon is cheese.") and "Is this statement a lie?" in liar.question
    assert tasks.parse_row(t["liar"], {"label": 0, "text": "Statement: water is wet."}, "l").gold == "No"
    assert tasks.parse_row(t["math"], {"question": "1+1?", "answer": "2", "other": {}}, "m").gold == "2"
    assert tasks.parse_row(t["navigate"], {"input": "Go?", "target": "No"}, "n").gold == "No"


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", r"bbh_test\.jsonl:2: not valid JSON"),
        ('{"input": "q"}', r"bbh_test\.jsonl:2: no field 'target'"),
        ('{"input": "", "target": "Yes"}', r"bbh_test\.jsonl:2: a field is not text"),
        ("[1, 2]", r"bbh_test\.jsonl:2: expected a JSON object"),
    ],
)
def test_bad_data_lines_are_one_line_errors(tmp_path: Path, line: str, message: str) -> None:
    folder = tmp_path / "bbh_data"
    folder.mkdir()
    (folder / "bbh_test.jsonl").write_text('{"input": "q", "target": "Yes"}\n' + line + "\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=message) as err:
        tasks.load_split(tasks.TASKS["navigate"], "test", tmp_path)
    assert "\n" not in str(err.value)


def test_liar_label_must_be_binary_and_missing_files_are_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="label must be 0 or 1"):
        tasks.parse_row(tasks.TASKS["liar"], {"label": 2, "text": "x"}, "f:1")
    with pytest.raises(ConfigError, match=r"wsc_data/wsc_train\.jsonl: cannot read"):
        tasks.load_split(tasks.TASKS["wsc"], "train", tmp_path)


def test_train_and_test_picks_are_seeded() -> None:
    task = tasks.TASKS["navigate"]
    train = tasks.load_split(task, "train")
    picks = [tasks.pick_train(task, train, seed) for seed in range(1, 6)]
    assert all(len(set(p)) == 3 and p == sorted(p) for p in picks)
    assert picks[0] == tasks.pick_train(task, train, 1)  # the same seed, the same questions
    assert len({tuple(p) for p in picks}) > 1  # seeds differ
    test = tasks.load_split(task, "test")
    subset = tasks.pick_subset(task, test, 10, "test")
    assert len(subset) == 10 and subset == tasks.pick_subset(task, test, 10, "test")
    assert tasks.pick_subset(task, test, 0, "test") == list(range(200))
    assert tasks.pick_subset(task, test, 999, "test") == list(range(200))


# --- templates ----------------------------------------------------------------------------------


def test_template_mirrors_spo_without_labels() -> None:
    task = tasks.TASKS["navigate"]
    items = tasks.load_split(task, "train")[:3]
    held = tasks.load_split(task, "validation")[:2]
    t = tasks.build_template(task, items, held)
    assert isinstance(t, Template)
    assert t.prompt.startswith("Please think step by step.") and "<answer>[Yes or No]</answer>" in t.prompt
    assert "Must put the final answer at the end with XML" in t.requirements
    assert [q.question for q in t.qa] == [i.question for i in items]
    # SPO's references show the format only, never the label; no metric, so the judge decides.
    assert all(q.answer == task.reference and "<answer>(Yes or No)</answer>" in q.answer for q in t.qa)
    assert t.metric is None
    assert [(q.question, q.answer) for q in t.holdout] == [(i.question, None) for i in held]


def test_labelled_template_carries_answers_and_a_metric_promptopt_accepts() -> None:
    for name in tasks.NAMES:
        task = tasks.TASKS[name]
        items = tasks.load_split(task, "train")[:3]
        held = tasks.load_split(task, "validation")[:2]
        t = tasks.build_template(task, items, held, labels=True)
        assert [q.answer for q in t.qa] == [i.gold for i in items]
        assert [q.answer for q in t.holdout] == [i.gold for i in held]
        assert t.metric == scoring.template_metric(task.kind)
        # The template's own metric agrees with the benchmark's scorer on a well-formed reply.
        from promptopt.engine.metrics import get_metric

        metric = get_metric(t.metric)
        assert all(metric(f"thinking\n<answer>{i.gold}</answer>", i.gold) for i in items)


# --- scoring ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", tasks.NAMES)
def test_every_real_gold_answer_scores_as_right_and_the_other_label_as_wrong(name: str) -> None:
    task = tasks.TASKS[name]
    score = scoring.scorer(task.kind)
    for split in tasks.SPLITS:
        for item in tasks.load_split(task, split):
            assert score(f"Step 1 ...\nFinal Answer:\n<answer>{item.gold}</answer>", item.gold), item.gold
            if name in LABELS:
                other = next(x for x in LABELS[name] if x != item.gold)
                assert not score(f"<answer>{other}</answer>", item.gold)


def test_math_answers_are_told_apart() -> None:
    """Two different gold answers of the split never score as each other (only spellings of one
    value do, e.g. `15` and `15^\\circ`)."""
    golds = sorted({i.gold for i in tasks.load_split(tasks.TASKS["math"], "test")})
    assert len({scoring.normalize_math(g) for g in golds}) >= len(golds) - 5
    clashes = [
        (a, b)
        for a in golds
        for b in golds
        if a != b
        and scoring.math_equal(f"<answer>{a}</answer>", b)
        and scoring.normalize_math(a) != scoring.normalize_math(b)
    ]
    assert clashes == []


@pytest.mark.parametrize(
    ("kind", "reply", "gold", "right"),
    [
        ("yes_no", "Thinking...\n<answer>Yes</answer>", "Yes", True),
        ("yes_no", "<answer>[No]</answer>", "No", True),
        ("yes_no", "<answer>**yes**</answer>", "Yes", True),
        ("yes_no", "<answer>Yes</answer> ... actually <answer>No</answer>", "No", True),  # the last one counts
        ("yes_no", "<answer>[Yes or No]</answer>", "Yes", False),  # the format echoed
        ("yes_no", "Final answer: No", "No", True),  # no tag: promptopt's last-line rule
        ("yes_no", "", "Yes", False),
        ("ab", "<answer>(B)</answer>", "B", True),
        ("ab", "<answer>B) Joe's uncle</answer>", "B", True),
        ("ab", "<answer>A</answer>", "B", False),
        ("ab", "<answer>Andrea</answer>", "A", False),
        ("math", "so the answer is \\boxed{\\frac{1}{2}}", "0.5", True),
        ("math", "<answer>$\\dfrac{5}{162}$</answer>", "\\dfrac{5}{162}", True),
        ("math", "<answer>\\frac12</answer>", "\\frac{1}{2}", True),
        ("math", "<answer>14400</answer>", "14,\\!400", True),
        ("math", "<answer>156</answer>", "156^\\circ", True),
        ("math", "<answer>15.48</answer>", "\\$15.48", True),
        ("math", "<answer>8\\sqrt{3}</answer>", "8\\sqrt{3} \\text { square inches}", True),
        ("math", "<answer>x = 5</answer>", "5", True),
        ("math", "<answer>\\text{Friday}</answer>", "\\text{Friday}", True),
        ("math", "<answer>(3, 4]</answer>", "(3,4]", True),
        ("math", "<answer>4</answer>", "(3,4]", False),  # `number` would take the last number: not here
        ("math", "The answer is 10.", "10", False),  # no tag, no box: no final answer
        ("math", "<answer>\\frac{1}{3}</answer>", "0.33", False),
    ],
)
def test_scorers_on_real_answer_shapes(kind: str, reply: str, gold: str, right: bool) -> None:
    assert scoring.scorer(kind)(reply, gold) is right


# --- statistics and the report --------------------------------------------------------------------


def seed_result(seed: int, initial: list[bool], final: list[bool], **over: Any) -> run.SeedResult:
    zero_judge = {"votes": 0, "abstained": 0, "position_a": 0, "pairs": 0, "consistent": 0}
    fields: dict[str, Any] = {
        "task": "navigate",
        "seed": seed,
        "run": f"ws/navigate-seed{seed}",
        "train": [0, 1, 2],
        "best_round": 2,
        "final_round": 2,
        "rounds": 3,
        "verdicts": {"win": 1, "lose": 1},
        "stopped": "completed",
        "gate": {"outcome": "confirmed", "reason": "6 pairs to 0"},
        "prompts": {"initial": "p0", "final": "p1", "best": "p1"},
        "marks": {"initial": initial, "final": final, "best": final},
        "failed_answers": {"initial": 0, "final": 0, "best": 0},
        "judge": {"votes": 8, "abstained": 1, "position_a": 4, "pairs": 3, "consistent": 2},
        "gate_judge": zero_judge,
        "usage": {
            phase: {**run.zero(), "calls": 10, "prompt_tokens": 100, "cost_usd": 0.01, "seconds": 2.0, "cached_now": 1}
            for phase in run.PHASES
        },
    }
    fields.update(over)
    return run.SeedResult(**fields)


def task_data(n: int) -> run.TaskData:
    items = [tasks.Item(f"q{i}", "Yes") for i in range(n)]
    return run.TaskData(tasks.TASKS["navigate"], items, items, list(range(n)), 200)


def test_interval_and_mcnemar_on_a_known_case() -> None:
    low, high = wilson(8, 10)
    assert (round(low, 4), round(high, 4)) == (0.4902, 0.9433)
    assert mcnemar(1, 9) == pytest.approx(22 / 1024)  # 2 × P(X ≥ 9), X ~ Bin(10, ½)
    acc = report.accuracy([1.0] * 8 + [0.0] * 2)
    assert acc["accuracy"] == 0.8 and acc["ci95"] == list(wilson(8, 10)) and acc["questions"] == 10


def test_task_report_pools_seeds_by_question() -> None:
    initial = [True] * 4 + [False] * 6
    s1 = seed_result(1, initial, [True] * 9 + [False])  # 5 only final, 0 only initial
    s2 = seed_result(2, initial, [False] + [True] * 3 + [False] * 6)  # 0 only final, 1 only initial
    t = report.task_report(task_data(10), [s1, s2])
    assert t["initial"]["accuracy"] == pytest.approx(0.4)
    assert t["final"]["accuracy"] == pytest.approx((9 + 3) / 20)
    # Wilson over the 10 questions, each scoring the mean of its two seeds (6 in all), not over 20 answers.
    assert t["final"]["ci95"] == list(wilson(6.0, 10))
    d = t["difference"]
    assert d["final_minus_initial"] == pytest.approx(0.2)
    assert (d["only_initial"], d["only_final"]) == (1, 5)
    assert d["mcnemar_p_pooled"] == pytest.approx(mcnemar(1, 5))
    assert d["mcnemar_p_per_seed"] == [pytest.approx(mcnemar(0, 5)), pytest.approx(mcnemar(1, 0))]
    assert d["ci95"][0] <= 0.2 <= d["ci95"][1]
    assert [p["final_accuracy"] for p in t["per_seed"]] == [0.9, 0.3]
    assert t["gate"] == {"confirmed": 2}
    counts = {"votes": 16, "abstained": 2, "position_a": 8, "pairs": 6, "consistent": 4}
    assert t["judge"] == {**counts, "share_a": 0.571, "consistency": 0.667}
    assert t["usage"]["optimize"]["calls"] == 20 and t["usage"]["evaluation"]["cached_now"] == 2


def test_bootstrap_interval_of_a_constant_difference_is_that_constant() -> None:
    assert report.bootstrap_ci([1.0] * 7) == [1.0, 1.0]
    assert report.bootstrap_ci([0.0] * 7) == [0.0, 0.0]
    low, high = report.bootstrap_ci([1.0, -1.0] * 20)
    assert -0.5 < low < 0 < high < 0.5
    assert report.bootstrap_ci([1.0, -1.0] * 20) == [low, high]  # seeded


def test_report_json_shape_and_text() -> None:
    from promptopt.config import RunConfig

    settings = run.Settings(tasks=["navigate"], seeds=[1, 2], config=RunConfig(max_rounds=3), test_size=10)
    results = [seed_result(1, [True] * 10, [True] * 10), seed_result(2, [False] * 10, [True] * 10)]
    r = report.build_report(settings, [task_data(10)], results)
    json.dumps(r)  # serialisable as it is
    assert set(r) == {"settings", "tasks", "mean_over_tasks", "usage"}
    assert {"tasks", "seeds", "rounds", "strategy", "labels", "test_size", "models"} <= set(r["settings"])
    t = r["tasks"][0]
    for key in ("initial", "final", "best"):
        assert set(t[key]) == {"accuracy", "ci95", "questions"}
    assert {"final_minus_initial", "ci95", "only_initial", "only_final", "mcnemar_p_pooled"} <= set(t["difference"])
    assert {"seed", "train", "gate", "judge", "usage", "prompts", "mcnemar_p", "initial_ci95"} <= set(t["per_seed"][0])
    assert r["mean_over_tasks"]["final"] == 1.0
    text = report.render(r)
    assert "BBH-Navigate: 10 test questions of 200 (seeded subset), 2 seed(s)" in text
    assert re.search(r"initial\s+50\.0%\s+\d", text)
    assert "final − initial: +50.0 pts (95% CI" in text


def test_run_names_tell_models_and_gguf_files_apart(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from promptopt.config import RoleConfig, RunConfig

    def name(config: RunConfig) -> str:
        return run.run_name(task_data(3), 1, run.Settings(["navigate"], [1], config), "template")

    local = RunConfig(**{r: RoleConfig(model="local") for r in ("optimizer", "evaluator", "executor")})
    names = []
    for gguf in ("smol.gguf", "qwen.gguf"):
        (tmp_path / gguf).write_bytes(b"GGUF")
        monkeypatch.setenv("PROMPTOPT_LOCAL_GGUF", str(tmp_path / gguf))
        names.append(name(local))
    assert names[0] != names[1] and names[0].startswith("navigate-seed1-")
    assert name(local) == names[1]  # the same setup, the same run (it resumes)
    assert name(local.model_copy(update={"max_rounds": 20})) == names[1]  # more rounds resume it too
    assert name(local.model_copy(update={"votes": 6, "max_votes": 12})) != names[1]


# --- the script against the stub server ------------------------------------------------------------


def stub_responder(role: str, body: dict[str, Any]) -> str | None:
    """Executor: 'No' with the initial prompt, 'Yes' with an optimized one (the stub optimizer's
    prompts say 'Revision N'). Judge: prefers the answer set that says Yes."""
    from promptopt.testing.stub_server import last_user_text

    text = last_user_text(body)
    if role == "executor":
        return "<answer>Yes</answer>" if "Revision" in text else "Let me think.\n<answer>No</answer>"
    if role == "judge":
        first = re.search(r"^A: (.*)$", text, re.M)
        return f"<analyse>…</analyse><choose>{'A' if first and 'Yes' in first.group(1) else 'B'}</choose>"
    return None


def quality(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, dict[str, Any], str]:
    code = cli.main(argv)
    captured = capsys.readouterr()
    return code, (json.loads(captured.out) if code == 0 else {}), captured.err


def test_end_to_end_against_the_stub(stub: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    stub.responder = stub_responder
    ws = tmp_path / "ws"
    argv = ["--task", "navigate", "--model", "openai/stub", "--api-base", stub.url, "--rounds", "2", "--seeds", "2"]
    argv += ["--test-size", "10", "--workspace", str(ws), "--json"]
    code, r, err = quality(argv, capsys)
    assert code == 0, err
    task = tasks.TASKS["navigate"]
    test = tasks.load_split(task, "test")
    golds = [test[i].gold for i in tasks.pick_subset(task, test, 10, "test")]
    t = r["tasks"][0]
    assert t["test_questions"] == 10 and t["test_indices"] == tasks.pick_subset(task, test, 10, "test")
    assert t["initial"]["accuracy"] == golds.count("No") / 10
    assert t["final"]["accuracy"] == golds.count("Yes") / 10
    assert t["gate"] == {"confirmed": 2}
    d = t["difference"]
    assert (d["only_initial"], d["only_final"]) == (2 * golds.count("No"), 2 * golds.count("Yes"))
    assert d["mcnemar_p_pooled"] == pytest.approx(mcnemar(2 * golds.count("No"), 2 * golds.count("Yes")))
    assert t["judge"]["votes"] > 0 and t["gate_judge"]["consistency"] == 1.0
    seeds = t["per_seed"]
    assert [s["train"] for s in seeds] == [tasks.pick_train(task, tasks.load_split(task, "train"), s) for s in (1, 2)]
    assert all("Revision" in s["prompts"]["final"] for s in seeds)
    # Seed 2 answers with the same initial prompt: its 10 calls come from the cache.
    assert seeds[0]["usage"]["evaluation"]["calls"] == 20 and seeds[1]["usage"]["evaluation"]["calls"] == 10
    paid = stub.count()
    assert t["usage"]["optimize"]["calls"] + t["usage"]["evaluation"]["calls"] == paid
    rows = json.loads((Path(seeds[0]["run"]) / "heldout.json").read_text(encoding="utf-8"))
    assert [row["gold"] for row in rows] == golds and all(row["final"]["answer"] for row in rows)
    assert "navigate seed 2: round 2 win" in err

    # The same command again: every call replays, and the report still shows what the runs paid.
    code, again, _ = quality(argv, capsys)
    assert code == 0 and stub.count() == paid
    t2 = again["tasks"][0]
    assert t2["final"] == t["final"] and t2["difference"] == d
    assert t2["usage"]["optimize"]["calls"] == t["usage"]["optimize"]["calls"]
    assert t2["usage"]["evaluation"]["calls"] == t["usage"]["evaluation"]["calls"]
    assert t2["usage"]["evaluation"]["cached_now"] == 40


def test_a_judge_that_sees_nothing_leaves_the_initial_prompt(
    stub: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The stub's default judge always answers "A": candidates never win, nothing to confirm.
    argv = ["--task", "wsc", "--model", "openai/stub", "--api-base", stub.url, "--rounds", "2", "--seeds", "1"]
    code, r, err = quality(
        [*argv, "--test-size", "5", "--workspace", str(tmp_path / "ws"), "--json", "--quiet"], capsys
    )
    assert code == 0, err
    t = r["tasks"][0]
    assert t["gate"] == {"not needed": 1}
    assert t["final"] == t["initial"] and t["difference"]["final_minus_initial"] == 0
    assert t["difference"]["mcnemar_p_pooled"] == 1.0
    assert t["per_seed"][0]["prompts"]["final"] == tasks.TASKS["wsc"].prompt
    assert t["judge"]["share_a"] == 1.0  # the diagnostics see the position bias
    assert err == ""


@pytest.mark.parametrize(
    ("argv", "message", "code"),
    [
        (["--task", "gpqa"], "--task gpqa: unknown task", 2),
        (["--rounds", "0"], "--rounds must be at least 1", 2),
        (["--test-size", "-1"], "--test-size must be at least 0", 2),
        (["--data", "/nonexistent/spo"], "/nonexistent/spo/bbh_data/bbh_train.jsonl: cannot read", 2),
    ],
)
def test_bad_input_is_one_line_and_calls_nothing(
    stub: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str, code: int
) -> None:
    base = ["--model", "openai/stub", "--api-base", stub.url, "--workspace", str(tmp_path / "ws")]
    assert cli.main([*base, *argv]) == code
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err
    assert stub.count() == 0


def truthful_responder() -> Any:
    """Executor: the optimized prompt answers every Navigate question right, the initial one says Yes.
    Judge: prefers the answer set that agrees with more reference answers."""
    from promptopt.testing.stub_server import last_user_text

    task = tasks.TASKS["navigate"]
    gold = {i.question: i.gold for split in tasks.SPLITS for i in tasks.load_split(task, split)}

    def respond(role: str, body: dict[str, Any]) -> str | None:
        text = last_user_text(body)
        if role == "executor":
            question = text.split("\n\n", 1)[1].strip()
            return f"<answer>{gold[question]}</answer>" if "Revision" in text else "<answer>Yes</answer>"
        if role == "judge":
            score = {"A": 0, "B": 0}
            for ref, a, b in re.findall(r"Reference answer: (\w+)\nA: (.*)\nB: (.*)", text):
                score["A"] += f">{ref}<" in a
                score["B"] += f">{ref}<" in b
            return f"<analyse>…</analyse><choose>{'B' if score['B'] > score['A'] else 'A'}</choose>"
        return None

    return respond


def test_labelled_run_with_holdout_confirms_by_held_out_accuracy(
    stub: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    stub.responder = truthful_responder()
    argv = ["--task", "navigate", "--model", "openai/stub", "--api-base", stub.url, "--rounds", "2", "--seeds", "1"]
    argv += ["--test-size", "4", "--holdout", "8", "--labels", "--workspace", str(tmp_path / "ws"), "--json", "--quiet"]
    code, r, err = quality(argv, capsys)
    assert code == 0, err
    t = r["tasks"][0]
    assert t["holdout_questions"] == 8 and r["settings"]["labels"] is True
    assert t["per_seed"][0]["verdicts"] == {"win": 1}
    gate = t["per_seed"][0]["gate"]
    assert gate["method"] == "metric" and "held-out accuracy" in gate["reason"]
    validation = tasks.load_split(tasks.TASKS["navigate"], "validation")
    held = [validation[i].gold for i in tasks.pick_subset(tasks.TASKS["navigate"], validation, 8, "validation")]
    assert (gate["wins"], gate["losses"]) == (held.count("No"), 0)
    assert t["final"]["accuracy"] == (1.0 if gate["outcome"] == "confirmed" else t["initial"]["accuracy"])
    assert t["best"]["accuracy"] == 1.0
    written = (Path(t["per_seed"][0]["run"]) / "template.yaml").read_text(encoding="utf-8")
    assert "metric: choice:" in written and "A lot of thinking" not in written


def test_no_confirm_reports_the_best_prompt_as_final(
    stub: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    stub.responder = stub_responder
    argv = ["--task", "navigate", "--model", "openai/stub", "--api-base", stub.url, "--rounds", "2", "--seeds", "1"]
    argv += ["--test-size", "4", "--no-confirm", "--workspace", str(tmp_path / "ws"), "--json", "--quiet"]
    code, r, err = quality(argv, capsys)
    assert code == 0, err
    t = r["tasks"][0]
    assert t["gate"] == {"skipped": 1} and t["final"] == t["best"]
    assert t["gate_judge"]["votes"] == 0


def test_text_report_escapes_model_text() -> None:
    from promptopt.config import RunConfig

    settings = run.Settings(tasks=["navigate"], seeds=[1], config=RunConfig())
    prompts = {"initial": "p0", "final": "Be \x1b[31mred\x1b[0m\nand brief", "best": "x"}
    result = seed_result(1, [True] * 4, [True] * 4, prompts=prompts)
    text = report.render(report.build_report(settings, [task_data(4)], [result]))
    assert "\x1b" not in text
    assert "final prompt (round 2): Be \\x1b[31mred\\x1b[0m and brief" in text


def test_docs_name_every_option() -> None:
    docs = (SCRIPTS.parent / "docs" / "benchmarks.md").read_text(encoding="utf-8")
    section = docs[docs.index("## Held-out quality") :]
    flags = {s for a in cli.parser()._actions for s in a.option_strings if s.startswith("--") and s != "--help"}
    assert sorted(f for f in flags if f"`{f}" not in section) == []
