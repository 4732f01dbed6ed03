"""Shared by every scenario: the environment, templates, subprocess helpers and the stub server."""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import yaml

ROLES = ("optimizer", "executor", "evaluator")
STUB_ROLE = {"optimizer": "optimizer", "executor": "executor", "judge": "evaluator"}
HEAVY = ("litellm", "openai", "httpx", "aiohttp", "tiktoken", "tokenizers")
SUBPROCESS_TIMEOUT = 600.0

# fmt: off
TOPICS = ["tides", "photosynthesis", "compound interest", "a bicycle gear", "rainbows", "vaccines",
          "a transistor", "glaciers", "inflation", "the immune system", "volcanoes", "bread rising",
          "jet engines", "plate tectonics", "a refrigerator", "echoes", "the seasons", "magnets"]
# fmt: on


# --- environment -----------------------------------------------------------------------------


def bench_env(root: Path) -> dict[str, str]:
    """The user's environment minus PROMPTOPT_* settings, pointed at temporary dirs and the stub."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROMPTOPT_")}
    env.update(
        {
            "LITELLM_LOCAL_MODEL_COST_MAP": "True",
            "OPENAI_API_KEY": "sk-stub",
            "PROMPTOPT_CACHE_DIR": str(root / "cache"),
            "XDG_CONFIG_HOME": str(root / "config"),  # no user config.yaml changes the run
            "COLUMNS": "120",
        }
    )
    return env


def source_version() -> str:
    """The commit measured (read-only git), with '+dirty' when src/ has uncommitted changes."""
    here = Path(__file__).resolve().parents[2]  # the repository (scripts/benchkit/common.py)
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=here, capture_output=True, text=True, timeout=10
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "src"], cwd=here, capture_output=True, text=True, timeout=10
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return (head or "unknown") + ("+dirty" if dirty else "")


def load_info() -> str:
    one, five, _ = os.getloadavg()
    return f"load {one:.2f}/{five:.2f} on {os.cpu_count()} cores"


def write_template(path: Path, questions: int) -> Path:
    qa = [
        {
            "question": f"Question {i + 1}: explain {TOPICS[i % len(TOPICS)]} to a curious twelve-year-old"
            f" (variant {i // len(TOPICS) + 1}).",
            "answer": None,
        }
        for i in range(questions)
    ]
    data = {
        "prompt": "Answer the question clearly in a short paragraph.\n",
        "requirements": "Accurate, concrete, at most five sentences, no jargon without a definition.\n",
        "count": None,
        "qa": qa,
    }
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def promptopt_command() -> list[str]:
    """The installed console script next to this interpreter (a venv's bin/), not a pyenv shim."""
    beside = Path(sys.executable).with_name("promptopt")
    if beside.exists():
        return [str(beside)]
    found = shutil.which("promptopt")
    return [found] if found else [sys.executable, "-m", "promptopt"]


def pct(est: float, real: float) -> float | None:
    return None if real == 0 else (est - real) / real * 100


def waves(n: int, concurrency: int) -> int:
    return math.ceil(n / concurrency) if n else 0


MODULE_PROBE = (
    "import atexit, sys\n"
    f"H = {HEAVY!r}\n"
    "atexit.register(lambda: sys.__stderr__.write('BENCH_HEAVY ' + ','.join(sorted("
    "{m.split('.')[0] for m in sys.modules} & set(H))) + '\\n'))\n"
    "sys.argv = ['promptopt'] + sys.argv[1:]\n"
    "from promptopt.cli import main\n"
    "main()\n"
)


def run_cmd(cmd: list[str], env: dict[str, str], cwd: Path) -> tuple[float, subprocess.CompletedProcess[str]]:
    start = time.perf_counter()
    proc = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=SUBPROCESS_TIMEOUT)
    return time.perf_counter() - start, proc


def heavy_modules(args_: list[str], env: dict[str, str], cwd: Path) -> list[str]:
    _, proc = run_cmd([sys.executable, "-c", MODULE_PROBE, *args_], env, cwd)
    for line in proc.stderr.splitlines():
        if line.startswith("BENCH_HEAVY"):
            return [m for m in line.split(" ", 1)[1].strip().split(",") if m]
    raise RuntimeError(f"module probe failed for {args_}: {proc.stderr[-500:]}")


class StubProcess:
    """`python -m promptopt.testing.stub_server` with a JSON-lines request log."""

    def __init__(self, latency: float, log: Path, env: dict[str, str]) -> None:
        self.log = log
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "promptopt.testing.stub_server",
                "--latency",
                str(latency),
                "--log",
                str(log),
            ],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        self.url = ""
        ready = threading.Event()

        def read() -> None:
            assert self.proc.stdout is not None
            for line in self.proc.stdout:
                if line.startswith("STUB_URL "):
                    self.url = line.split(" ", 1)[1].strip()
                    ready.set()
                    return

        threading.Thread(target=read, daemon=True).start()
        if not ready.wait(30):
            self.stop()
            raise RuntimeError("the stub server did not print STUB_URL within 30 s")

    def count(self) -> int:
        if not self.log.exists():
            return 0
        return sum(1 for line in self.log.read_text(encoding="utf-8").splitlines() if line.strip())

    def requests(self) -> list[dict[str, Any]]:
        """The log's records (role, t_start, t_end on the system-wide monotonic clock; no bodies)."""
        if not self.log.exists():
            return []
        lines = self.log.read_text(encoding="utf-8").splitlines()
        return sorted((json.loads(x) for x in lines if x.strip()), key=lambda r: r["t_start"])

    def peak(self) -> int:
        edges = sorted([(r["t_start"], 1) for r in self.requests()] + [(r["t_end"], -1) for r in self.requests()])
        level = top = 0
        for _, step in edges:
            level += step
            top = max(top, level)
        return top

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


# --- stub server -----------------------------------------------------------------------------


@contextlib.contextmanager
def serve(mode: str, latency: float, log: Path, env: dict[str, str], responder: Any = None) -> Any:
    """A stub in this process (threads) or in its own process; yields (url, fetch requests, fetch peak)."""
    if mode == "thread":
        from promptopt.testing.stub_server import StubServer

        with StubServer(latency=latency, responder=responder) as stub:
            yield stub.url, lambda: stub.requests, lambda: stub.max_in_flight
        return
    if responder is not None:
        raise ValueError("a custom responder needs the in-process stub")
    proc = StubProcess(latency, log, env)
    try:
        yield proc.url, proc.requests, proc.peak
    finally:
        proc.stop()


def bytecode_env(env: dict[str, str], root: Path) -> dict[str, str]:
    """Bytecode written to (and read from) a private folder, as a wheel install has it precompiled."""
    pyc_env = {k: v for k, v in env.items() if k != "PYTHONDONTWRITEBYTECODE"}
    pyc_env["PYTHONPYCACHEPREFIX"] = str(root / "pycache")
    return pyc_env
