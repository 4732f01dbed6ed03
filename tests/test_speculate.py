"""--speculate: the next round's candidate written during the judge phase, same decisions, nothing paid twice."""

from __future__ import annotations

import asyncio
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from promptopt.config import RunConfig
from promptopt.engine.loop import run_optimization
from promptopt.engine.speculate import Speculation
from promptopt.errors import BudgetExceeded
from promptopt.events import RecordingEvents
from promptopt.llm import AHEAD, Budget, Completion, Ledger
from promptopt.template import parse_template
from promptopt.workspace import Workspace
from tests.conftest import POEM

TEMPLATE = parse_template(POEM, "Poem.yaml")
# Round 1 of Dual-Phase asks for a structured prompt: several sentences to pick from.
SENTENCES = (
    "Read the request twice. Write vivid images only. Keep each line short and clear. Use one strong verb per line. "
    "Prefer concrete nouns to abstract ones. Avoid cliches about the weather. Let the rhythm carry the mood. End with a twist."
)


def digest(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


class KeyedLLM:
    """Each reply is a function of (role, messages, sample): 'the same replies' whatever the order.

    Calls take `delays[role]` seconds; `log` keeps (role, start, end) on the loop's clock. With
    `budget` it counts and refuses calls as the real client does.
    """

    def __init__(self, delays: dict[str, float] | None = None, budget: Budget | None = None) -> None:
        self.usage = Ledger()
        self.run_seed: int | None = None
        self.warnings: list[str] = []
        self.startup_seconds = 0.0
        self.delays = delays or {}
        self.budget = budget
        self.log: list[tuple[str, float, float]] = []
        self.keys: list[str] = []

    async def complete(self, role: str, messages: list[dict[str, Any]], *, sample: int = 0) -> Completion:
        if self.budget is not None:
            ahead = AHEAD.get()
            self.budget.reserve(0.0, keep_calls=ahead.keep_calls if ahead else 0)
        key = digest(role, messages, sample)
        self.keys.append(key)
        loop = asyncio.get_running_loop()
        start = loop.time()
        await asyncio.sleep(self.delays.get(role, 0.0))
        self.log.append((role, start, loop.time()))
        text = self.reply(role, messages, key)
        done = Completion(text, role, f"keyed-{role}", len(json.dumps(messages)) // 4, 5, 0.001)
        self.usage.record(done)
        return done

    def reply(self, role: str, messages: list[dict[str, Any]], key: str) -> str:
        if role == "optimizer":
            words = SENTENCES.split(". ")
            tag = key[:6]
            return (
                f"<analyse>a {tag}</analyse><modification>m {tag}</modification>"
                f"<prompt>{'. '.join(w + ' ' + tag for w in words)}.</prompt><sentence>Say it as {tag} would.</sentence>"
            )
        if role == "evaluator":
            # By the comparison shown, not the sample: a pair's two orders win, lose or tie it by
            # chance, and a repeated pair repeats it (ties then ask for every pair adaptive judging may).
            return f"<analyse>ok</analyse><choose>{'AB'[int(digest(messages), 16) % 2]}</choose>"
        question = messages[-1]["content"].rsplit("\n\n", 1)[-1].strip()
        return f"cand {key[:6]} answer to {question}"


def run(llm: KeyedLLM, root: Path, name: str, **config: Any) -> Any:
    cfg = RunConfig(**{"confirm": False, "seed": 7, **config})
    return asyncio.run(run_optimization(TEMPLATE, cfg, llm, Workspace(root, name), RecordingEvents()))


VOLATILE = {"time", "duration_s"}


def comparable(path: Path) -> list[dict[str, Any]]:
    """results.json without what differs between two runs of the same replies (clock readings)."""
    rounds = json.loads((path / "prompts/results.json").read_text())
    for r in rounds:
        for key in VOLATILE:
            r.pop(key, None)
        for usage in r.get("usage", {}).values():
            usage.pop("seconds", None)
    return rounds


@pytest.mark.parametrize(
    ("strategy", "options"), [("spo", {}), ("dual-phase", {"patience": 10}), ("dual-phase", {"eta": 0.05})]
)
def test_speculation_replays_the_same_run_round_by_round(tmp_path: Path, strategy: str, options: dict) -> None:
    plain, ahead = KeyedLLM(), KeyedLLM()
    config = {"strategy": strategy, "max_rounds": 10, "strategy_options": options}
    slow = run(plain, tmp_path, "plain", **config)
    fast = run(ahead, tmp_path, "ahead", speculate=True, **config)
    a, b = comparable(tmp_path / "plain"), comparable(tmp_path / "ahead")
    assert len(a) == len(b) >= 4
    for x, y in zip(a, b, strict=True):
        assert x == y, f"round {x['round']} differs"
    assert len({r.succeed for r in slow.records[1:]}) == 2  # both verdicts were replayed
    # Speculation did happen, and every request of the plain run was made (once each) by the other.
    assert fast.speculation is not None and fast.speculation.used >= 3
    assert set(plain.keys) <= set(ahead.keys)
    assert len(ahead.keys) == len(set(ahead.keys))
    assert len(ahead.keys) - len(plain.keys) == fast.speculation.wasted > 0
    # The run's usage counts the wasted calls; the rounds' usage is the plain run's.
    assert fast.calls == slow.calls + fast.speculation.wasted


def calls_of(llm: KeyedLLM) -> int:
    return len(llm.keys)


@pytest.mark.parametrize("spare", [0, 40])
def test_a_budget_sized_for_the_plain_run_completes_the_same_rounds(tmp_path: Path, spare: int) -> None:
    """Calls are written ahead only when the budget still covers the rest of the run at its most:
    a refused call ahead does not stop the run early, and an allowed one costs it no round."""
    plain = KeyedLLM()
    run(plain, tmp_path, "plain", max_rounds=6)
    need = calls_of(plain)
    ahead = KeyedLLM(budget=Budget(max_calls=need + spare))
    result = run(ahead, tmp_path, "ahead", max_rounds=6, max_calls=need + spare, speculate=True)
    assert result.stopped == "completed"
    assert comparable(tmp_path / "plain") == comparable(tmp_path / "ahead")
    assert calls_of(ahead) <= need + spare
    assert result.speculation is not None
    if spare:  # room for the worst case of the rest of the run: written ahead from the start
        assert result.speculation.used > 0
    else:  # no room to spare: nothing written ahead, nothing wasted
        assert result.speculation.used == result.speculation.wasted == 0


@pytest.mark.parametrize("limit", [14, 23, 30])
def test_a_budget_stop_leaves_only_whole_rounds_of_the_plain_run(tmp_path: Path, limit: int) -> None:
    plain = KeyedLLM(budget=Budget(max_calls=limit))
    slow = run(plain, tmp_path, "plain", max_rounds=10, max_calls=limit)
    ahead = KeyedLLM(budget=Budget(max_calls=limit))
    fast = run(ahead, tmp_path, "ahead", max_rounds=10, max_calls=limit, speculate=True)
    assert slow.stopped == fast.stopped == "budget"
    assert comparable(tmp_path / "plain") == comparable(tmp_path / "ahead")
    rounds = [r["round"] for r in comparable(tmp_path / "ahead")]
    on_disk = sorted(int(p.name.split("_")[1]) for p in (tmp_path / "ahead/prompts").glob("round_*"))
    assert on_disk == rounds  # no folder of a round that was not committed
    assert calls_of(ahead) <= limit


def test_budget_refusal_keeps_room_for_what_the_run_still_needs() -> None:
    budget = Budget(max_calls=10)
    for _ in range(5):
        budget.reserve(0.0)
    with pytest.raises(BudgetExceeded):
        budget.reserve(0.0, keep_calls=5)  # 5 + 1 + 5 > 10
    budget.reserve(0.0, keep_calls=4)
    assert budget.started == 6
    usd = Budget(max_usd=1.0)
    usd.reserve(0.5)
    with pytest.raises(BudgetExceeded):
        usd.reserve(0.1, keep_usd=0.45)
