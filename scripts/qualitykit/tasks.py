"""The four closed tasks of SPO's table: their files, questions, gold answers and starting templates.

The starting template mirrors MetaGPT's `settings/Navigate.yaml` (SPO's own example of a closed
task): the initial prompt is "think step by step" plus the answer format, the requirements ask
for that format, and the three questions carry format-only reference answers ("A lot of thinking
and analysis processes. ... <answer>(Yes or No)</answer>"), not the true labels: SPO optimizes
without ground truth. `--labels` gives the true answers and the task's metric instead.
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from promptopt.errors import ConfigError
from promptopt.template import QA, Template
from qualitykit.scoring import template_metric

DATA = Path(__file__).resolve().parents[2] / "benchmarks" / "data" / "spo"
SPLITS = ("train", "validation", "test")
TRAIN_QUESTIONS = 3


@dataclass(frozen=True)
class Item:
    question: str
    gold: str


@dataclass(frozen=True)
class Task:
    name: str
    title: str
    stem: str  # file name stem inside the data folder: "<stem>_<split>.jsonl"
    kind: str  # scorer: yes_no | ab | math
    prompt: str
    requirements: str
    reference: str  # SPO's format-only reference answer

    def path(self, data: Path, split: str) -> Path:
        return data / f"{self.stem}_{split}.jsonl"


def _format_only(choices: str) -> str:
    return f"A lot of thinking and analysis processes.\n...\nFinal Answer:\n<answer>({choices})</answer>"


def _initial(what: str, lead: str = "Please think step by step.") -> str:
    return f"{lead}\nEnsure the response concludes with the answer in the XML format:\n<answer>[{what}]</answer>."


def _requirements(what: str, example: str) -> str:
    return (
        "Must put the final answer at the end with XML. "
        f"(<answer>({what})</answer>, such as <answer>{example}</answer>)\n"
        "The provided prompt needs to adapt to all current types of questions."
    )


TASKS: dict[str, Task] = {
    task.name: task
    for task in (
        Task(
            "navigate",
            "BBH-Navigate",
            "bbh_data/bbh",
            "yes_no",
            _initial("Yes or No"),
            _requirements("Yes or No", "Yes"),
            _format_only("Yes or No"),
        ),
        Task(
            "liar",
            "LIAR",
            "liar_data/liar",
            "yes_no",
            _initial(
                "Yes or No",
                "Determine whether the statement is a lie (Yes) or not (No) based on the context and other "
                "information.\nPlease think step by step.",
            ),
            _requirements("Yes or No", "No"),
            _format_only("Yes or No"),
        ),
        Task(
            "wsc",
            "WSC",
            "wsc_data/wsc",
            "ab",
            _initial("A or B"),
            _requirements("A or B", "A"),
            _format_only("A or B"),
        ),
        Task(
            "math",
            "AGIEval-MATH",
            "agi_eval_math_data/math",
            "math",
            _initial("final answer", "Please solve the problem step by step."),
            _requirements("the final answer, exact and simplified, in LaTeX where needed", "\\frac{3}{4}"),
            _format_only("the final answer"),
        ),
    )
}
NAMES = tuple(TASKS)


def parse_row(task: Task, row: object, where: str) -> Item:
    """One JSON line as a question and its gold answer (raises ConfigError naming the line)."""
    if not isinstance(row, dict):
        raise ConfigError(f"{where}: expected a JSON object")
    try:
        if task.name == "navigate":
            return Item(_text(row["input"]), _text(row["target"]))
        if task.name == "wsc":
            return Item(_text(row["input"]), _text(row["output"]).strip("() "))
        if task.name == "liar":
            label = row["label"]
            if label not in (0, 1):
                raise ConfigError(f"{where}: label must be 0 or 1, not {label!r}")
            question = f"{_text(row['text'])}\nIs this statement a lie?\nOptions:\n- Yes\n- No"
            return Item(question, "Yes" if label == 1 else "No")
        return Item(_text(row["question"]), _text(row["answer"]))
    except KeyError as exc:
        raise ConfigError(f"{where}: no field {exc.args[0]!r}") from None
    except TypeError:
        raise ConfigError(f"{where}: a field is not text") from None


def _text(value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise TypeError
    return value.strip()


def load_split(task: Task, split: str, data: Path = DATA) -> list[Item]:
    """Every question of a split, in file order."""
    path = task.path(data, split)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc.strerror or exc}); --data names SPO's data folder") from None
    items = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError:
            raise ConfigError(f"{path}:{n}: not valid JSON") from None
        items.append(parse_row(task, row, f"{path}:{n}"))
    if not items:
        raise ConfigError(f"{path}: no questions")
    return items


def pick_train(task: Task, items: list[Item], seed: int) -> list[int]:
    """The seed's training questions (indices into the train split): a seeded sample of 3."""
    if len(items) < TRAIN_QUESTIONS:
        raise ConfigError(f"{task.name}: the train split has {len(items)} questions, fewer than {TRAIN_QUESTIONS}")
    return sorted(random.Random(f"{task.name}-train-{seed}").sample(range(len(items)), TRAIN_QUESTIONS))


def pick_subset(task: Task, items: list[Item], size: int, split: str) -> list[int]:
    """A seeded subset of a split, the same for every seed (0 or more than there are: all of it)."""
    if size <= 0 or size >= len(items):
        return list(range(len(items)))
    return sorted(random.Random(f"{task.name}-{split}").sample(range(len(items)), size))


def build_template(task: Task, train: Sequence[Item], holdout: Sequence[Item] = (), labels: bool = False) -> Template:
    """SPO's starting template for the task (see the module docstring); `labels` uses the true answers."""

    def qa(item: Item) -> QA:
        return QA(question=item.question, answer=item.gold if labels else task.reference)

    return Template(
        prompt=task.prompt,
        requirements=task.requirements,
        qa=[qa(i) for i in train],
        metric=template_metric(task.kind) if labels else None,
        # Held-out questions for the gate: without --labels they carry no answer (label-free).
        holdout=[QA(question=i.question, answer=i.gold if labels else None) for i in holdout],
    )
