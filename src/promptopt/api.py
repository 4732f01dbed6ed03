"""The Python API: the engine the CLI and the web UI drive, with no prints.

Every function returns the result objects the CLI renders (`RunResult`, `Run`, `CompareResult`,
`AnswerRecord`); progress goes to an `Events` object or a plain callback. Each `*_async`
function has a blocking twin that also works where an event loop is already running (Jupyter).
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias, TypeVar

from promptopt.errors import ConfigError, Interrupted, WorkspaceError
from promptopt.events import Events, FunctionEvents

# Imported where used: `promptopt show` reads runs through this module and must start fast.
if TYPE_CHECKING:
    import asyncio

    from promptopt.config import RunConfig
    from promptopt.doctor import RoleCheck
    from promptopt.engine.compare import CompareResult
    from promptopt.engine.estimate import Estimate
    from promptopt.engine.judge_check import JudgeReport
    from promptopt.engine.results import RunResult
    from promptopt.llm import LLM
    from promptopt.records import AnswerRecord, GateRecord, RoundRecord
    from promptopt.template import Template
    from promptopt.workspace import Workspace

T = TypeVar("T")
EventsLike = Events | Callable[[str, object], None] | None
TemplateLike: TypeAlias = "Template | str | Path"


def load_config(**flags: Any) -> RunConfig:
    """A RunConfig as the CLI builds it: defaults < config file < PROMPTOPT_* env < these flags.

    Flags use the CLI's names: `model`, `opt_model`, `eval_temp`, `api_base`, `max_rounds`, ...
    """
    from promptopt.config import ROLES, resolve_config
    from promptopt.local import uses_local

    config = resolve_config({k: v for k, v in flags.items() if v is not None})
    if uses_local([config.role(r).model for r in ROLES]) and "concurrency" not in config.model_fields_set:
        # The embedded model generates one reply at a time: queued calls would wait toward their timeout.
        config = config.model_copy(update={"concurrency": 1})
    return config


def _template(template: TemplateLike) -> tuple[Template, str | None]:
    from promptopt.template import Template, load_template

    if isinstance(template, Template):
        return template, None
    loaded, path = load_template(template)
    return loaded, path.stem


def prepare_run(template: TemplateLike, config: RunConfig | None = None) -> tuple[Template, RunConfig, Workspace]:
    """Check what a run needs before anything is spent; the run name defaults to the template's file name."""
    from promptopt.engine.strategies import get_strategy
    from promptopt.workspace import Workspace

    tmpl, stem = _template(template)
    config = config or load_config()
    get_strategy(config.strategy).parse_options(config.strategy_options)  # one line naming a bad option
    if config.holdout is not None:
        from promptopt.questions import load_questions
        from promptopt.template import QA

        held, gold = load_questions(config.holdout)
        tmpl = tmpl.model_copy(update={"holdout": [QA(question=q, answer=a) for q, a in zip(held, gold, strict=True)]})
    if config.name is None:
        if stem is None:
            raise ConfigError("name the run: RunConfig(name=...) is needed when the template is not a file")
        config = config.model_copy(update={"name": stem})
    assert config.name is not None
    return tmpl, config, Workspace(config.workspace, config.name)


def make_client(
    config: RunConfig,
    *,
    on_call: Callable[[Any], None] | None = None,
    api_keys: Mapping[str, str] | None = None,
    on_warning: Callable[[str], None] | None = None,
) -> LLM:
    """The litellm client with the response cache the config asks for.

    `api_keys` maps a role to a key used for this client only (the web UI's session keys):
    never written anywhere, never part of a cache key.
    """
    from promptopt.cache import ResponseCache
    from promptopt.llm import LiteLLMClient

    cache = ResponseCache(config.cache_dir) if config.cache else None
    return LiteLLMClient(config, cache=cache, on_call=on_call, api_keys=api_keys, on_warning=on_warning)


def _events(events: EventsLike) -> Events:
    if events is None:
        return Events()
    if isinstance(events, Events):
        return events
    return FunctionEvents(events)


async def optimize_async(
    template: TemplateLike,
    config: RunConfig | None = None,
    *,
    events: EventsLike = None,
    llm: LLM | None = None,
    api_keys: Mapping[str, str] | None = None,
) -> RunResult:
    """Run (or resume) an optimization; completed rounds are on disk as soon as they finish."""
    from promptopt.engine.loop import run_optimization

    tmpl, config, ws = prepare_run(template, config)
    ev = _events(events)
    client = llm or make_client(config, on_call=ev.call_done, api_keys=api_keys, on_warning=ev.warning)
    return await run_optimization(tmpl, config, client, ws, ev)


def optimize(
    template: TemplateLike,
    config: RunConfig | None = None,
    *,
    events: EventsLike = None,
    llm: LLM | None = None,
    api_keys: Mapping[str, str] | None = None,
) -> RunResult:
    """Blocking `optimize_async`."""
    return run_sync(lambda: optimize_async(template, config, events=events, llm=llm, api_keys=api_keys))


def start(
    template: TemplateLike,
    config: RunConfig | None = None,
    *,
    events: EventsLike = None,
    llm: LLM | None = None,
    api_keys: Mapping[str, str] | None = None,
) -> RunHandle:
    """Start a run in a background thread; `stop()` it like Ctrl-C (completed rounds stay saved)."""
    prepare_run(template, config)  # bad input fails here, in the caller's thread
    return RunHandle(lambda: optimize_async(template, config, events=events, llm=llm, api_keys=api_keys))


def estimate(template: TemplateLike, config: RunConfig | None = None) -> Estimate:
    """What `--dry-run` prints: calls, tokens and cost of the rounds still to run. Calls nothing."""
    from promptopt.engine.estimate import estimate_run
    from promptopt.engine.loop import check_strategy, resume_point

    tmpl, config, ws = prepare_run(template, config)
    records = ws.load()
    check_strategy(records, config.strategy)
    kept, first = resume_point(records, config.initial_round)
    averages: dict[str, float] = {}
    if config.cache:
        from promptopt.cache import ResponseCache
        from promptopt.config import ROLES

        averages = ResponseCache(config.cache_dir).completion_averages({r: config.role(r).model for r in ROLES})
    return estimate_run(tmpl, config, kept, first, averages)


# --- reading runs ------------------------------------------------------------------------------


@dataclass
class Run:
    """A run on disk: its rounds, the best one, and (read on first use) the template it last ran with."""

    workspace: Workspace
    records: list[RoundRecord]
    best: RoundRecord
    gate: GateRecord | None = None
    _template: list[Template | None] = field(default_factory=list, repr=False)

    @property
    def confirmed(self) -> RoundRecord:
        """What `show --best` prints: the best round once confirmed, else the user's own prompt."""
        from promptopt.records import confirmed_round

        return confirmed_round(self.records, self.best, self.gate)

    @property
    def template(self) -> Template | None:
        if not self._template:
            path = self.workspace.template_path
            if path.is_file():
                from promptopt.template import load_template

                self._template.append(load_template(path)[0])
            else:
                self._template.append(None)
        return self._template[0]

    @property
    def name(self) -> str:
        return self.workspace.name

    @property
    def path(self) -> Path:
        return self.workspace.root

    def round(self, number: int) -> RoundRecord:
        for record in self.records:
            if record.round == number:
                return record
        first, last = self.records[0].round, self.records[-1].round
        raise WorkspaceError(f"{self.path}: no round {number} (rounds {first}–{last})")

    def base_of(self, record: RoundRecord) -> RoundRecord | None:
        """The round a candidate was judged against (SPO's own files: the best round before it)."""
        if record.base_round is not None:
            return next((r for r in self.records if r.round == record.base_round), None)
        from promptopt.records import best_round

        earlier = [r for r in self.records if r.round < record.round]
        return best_round(earlier) if earlier else None


def load_run(path: str | Path) -> Run:
    """Read WORKSPACE/NAME (ours or one MetaGPT's SPO wrote), or a run NAME in the default workspace."""
    from promptopt.locate import find_workspace
    from promptopt.records import best_round

    ws = find_workspace(path)
    records = ws.load()
    if not records:
        raise WorkspaceError(f"{ws.results_path}: no rounds yet")
    best = best_round(records)
    gate = ws.read_gate()
    return Run(ws, records, best, gate if gate is not None and gate.best_round == best.round else None)


# --- comparing and trying prompts --------------------------------------------------------------


async def compare_async(
    a: str,
    b: str,
    config: RunConfig | None = None,
    *,
    template: TemplateLike | None = None,
    questions: Sequence[str] | None = None,
    golden: Sequence[str | None] | None = None,
    votes: int = 2,
    llm: LLM | None = None,
    api_keys: Mapping[str, str] | None = None,
    events: EventsLike = None,
    labels: tuple[str, str] = ("A", "B"),
) -> CompareResult:
    """Run prompt texts A and B on the same questions and judge them pairwise, question by question.

    Questions come from `questions` (with optional `golden` answers) or else from the template.
    The verdict is at `config.alpha` (two-sided); `labels` say what A and B are, for the output.
    """
    from promptopt.engine.compare import compare_prompts

    if votes < 1:
        raise ConfigError("--votes must be at least 1")
    tmpl = _template(template)[0] if template is not None else None
    gold: list[str | None]
    if questions is not None:
        qs = list(questions)
        gold = list(golden) if golden is not None else [None for _ in qs]
        if len(gold) != len(qs):
            raise ConfigError(f"{len(qs)} questions but {len(gold)} golden answers")
    elif tmpl is not None:
        qs, gold = [q.question for q in tmpl.qa], list(tmpl.golden)
    else:
        raise ConfigError("compare needs questions: pass --template or --questions")
    if not qs:
        raise ConfigError("compare needs at least one question")
    blank = next((i for i, q in enumerate(qs) if not isinstance(q, str) or not q.strip()), None)
    if blank is not None:
        raise ConfigError(f"compare: questions[{blank}] is empty")
    config = config or load_config()
    ev = _events(events)
    client = llm or make_client(config, api_keys=api_keys, on_call=ev.call_done, on_warning=ev.warning)
    # A compare samples anew each time unless --seed asks to reproduce one (from the cache).
    client.run_seed = config.seed if config.seed is not None else secrets.randbelow(2**31)
    before = client.usage.snapshot()
    requirements = tmpl.requirements if tmpl else ""
    metric = tmpl.metric if tmpl else None
    result = await compare_prompts(client, a, b, qs, gold, requirements, votes, metric, ev)
    result.seed, result.alpha, (result.a_label, result.b_label) = client.run_seed, config.alpha, labels
    spent = client.usage.since(before)
    result.calls = sum(u.calls for u in spent.values())
    result.cost_usd = sum(u.cost_usd for u in spent.values())
    result.unpriced = any(u.unpriced for u in spent.values())
    return result


def compare(
    a: str,
    b: str,
    config: RunConfig | None = None,
    *,
    template: TemplateLike | None = None,
    questions: Sequence[str] | None = None,
    golden: Sequence[str | None] | None = None,
    votes: int = 2,
    llm: LLM | None = None,
    api_keys: Mapping[str, str] | None = None,
    events: EventsLike = None,
    labels: tuple[str, str] = ("A", "B"),
) -> CompareResult:
    """Blocking `compare_async`."""
    return run_sync(
        lambda: compare_async(
            a,
            b,
            template=template,
            questions=questions,
            golden=golden,
            votes=votes,
            config=config,
            llm=llm,
            api_keys=api_keys,
            events=events,
            labels=labels,
        )
    )


async def answer_async(
    prompt: str,
    question: str,
    config: RunConfig | None = None,
    *,
    llm: LLM | None = None,
    api_keys: Mapping[str, str] | None = None,
) -> AnswerRecord:
    """Run one prompt on one new question with the executor model (the web UI's "try" page)."""
    from promptopt.engine.execute import answer_one

    if not prompt.strip():
        raise ConfigError("the prompt is empty")
    if not question.strip():
        raise ConfigError("the question is empty")
    config = config or load_config()
    client = llm or make_client(config, api_keys=api_keys)
    return await answer_one(client, prompt, question)


def answer(
    prompt: str,
    question: str,
    config: RunConfig | None = None,
    *,
    llm: LLM | None = None,
    api_keys: Mapping[str, str] | None = None,
) -> AnswerRecord:
    """Blocking `answer_async`."""
    return run_sync(lambda: answer_async(prompt, question, config, llm=llm, api_keys=api_keys))


async def check_judge_async(
    template: TemplateLike, config: RunConfig | None = None, *, api_keys: Mapping[str, str] | None = None
) -> JudgeReport:
    """`promptopt doctor --judge`: the evaluator's order consistency and position bias on a template."""
    from promptopt.engine.judge_check import check_judge

    tmpl = _template(template)[0]
    config = config or load_config()
    client = make_client(config, api_keys=api_keys)
    client.run_seed = config.seed if config.seed is not None else secrets.randbelow(2**31)
    return await check_judge(client, tmpl)


def check_judge_sync(
    template: TemplateLike, config: RunConfig | None = None, *, api_keys: Mapping[str, str] | None = None
) -> JudgeReport:
    """Blocking `check_judge_async`."""
    return run_sync(lambda: check_judge_async(template, config, api_keys=api_keys))


async def check_models_async(
    config: RunConfig | None = None, *, api_keys: Mapping[str, str] | None = None
) -> list[RoleCheck]:
    """`promptopt doctor`: one tiny request per distinct role model, with a diagnosis on failure."""
    from promptopt.doctor import check_models as check

    return await check(config or load_config(), api_keys=api_keys)


def check_models(config: RunConfig | None = None, *, api_keys: Mapping[str, str] | None = None) -> list[RoleCheck]:
    """Blocking `check_models_async`."""
    return run_sync(lambda: check_models_async(config, api_keys=api_keys))


# --- running coroutines from blocking code -----------------------------------------------------


def run_sync(factory: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a coroutine to its end; inside a running event loop (Jupyter) it runs on a helper thread."""
    import asyncio

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(factory())
    return RunHandle(factory).wait()


class RunHandle:
    """A coroutine running on its own event loop in a background thread."""

    def __init__(self, factory: Callable[[], Coroutine[Any, Any, Any]]) -> None:
        self._factory = factory
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[Any] | None = None
        self._lock = threading.Lock()
        self._stop = False
        self._done = threading.Event()
        self._result: Any = None
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, name="promptopt-run", daemon=True)
        self._thread.start()

    def _main(self) -> None:
        import asyncio

        async def main() -> Any:
            with self._lock:
                self._loop, self._task = asyncio.get_running_loop(), asyncio.current_task()
                if self._stop:
                    raise asyncio.CancelledError
            return await self._factory()

        try:
            self._result = asyncio.run(main())
        except asyncio.CancelledError:
            self.error = Interrupted("stopped: completed rounds are saved; start the same run again to resume")
        except BaseException as exc:  # handed to the caller by wait()
            self.error = exc
        finally:
            self._done.set()

    def stop(self) -> None:
        """Cancel the run; calls in flight are abandoned, completed rounds stay on disk."""
        with self._lock:
            self._stop = True
            if self._loop is not None and self._task is not None and not self._done.is_set():
                try:
                    self._loop.call_soon_threadsafe(self._task.cancel)
                except RuntimeError:  # the loop closed in between: nothing left to stop
                    pass

    @property
    def done(self) -> bool:
        return self._done.is_set()

    def wait(self, timeout: float | None = None) -> Any:
        """The result; raises the run's error (`Interrupted` after `stop()`), or TimeoutError."""
        if not self._done.wait(timeout):
            raise TimeoutError("the run is still going")
        if self.error is not None:
            raise self.error
        return self._result
