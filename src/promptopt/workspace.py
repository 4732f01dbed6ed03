"""The workspace on disk: SPO's layout, atomic writes, a lock, and tolerant reading.

Only the disk: what a round *is* lives in `records.py`.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import ValidationError

from promptopt.errors import TemplateError, WorkspaceError, WorkspaceLocked
from promptopt.files import atomic_write
from promptopt.records import AnswerRecord, GateRecord, RoundRecord, now_string

if TYPE_CHECKING:
    from promptopt.template import Template

try:  # POSIX: the kernel releases the lock when the holder dies, even on kill -9.
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]


def check_plain_name(name: str) -> str:
    """A run name is one folder: no separators, no '..', nothing that escapes the workspace."""
    if not name.isprintable():  # control characters would reach terminals and file names
        shown = name.encode("unicode_escape").decode("ascii")
        raise ValueError(f"'{shown}' must be a plain name (no control or invisible characters)")
    if not name or name in {".", ".."} or any(c in name for c in "/\\:") or name.strip() != name:
        raise ValueError(f"'{name}' must be a plain name (no path separators)")
    return name


def format_answers(answers: list[AnswerRecord]) -> str:
    """answers.txt in SPO's format."""
    parts = []
    for item in answers:
        answer = item.answer if item.error is None else f"[failed: {item.error}]"
        parts.append(f"Question:\n{item.question}\nAnswer:\n{answer}\n\n")
    return "".join(parts)


class Workspace:
    """`<workspace>/<name>/prompts/round_N/{prompt,answers}.txt` plus `prompts/results.json`."""

    def __init__(self, root: Path, name: str) -> None:
        try:
            check_plain_name(name)
        except ValueError as exc:
            raise WorkspaceError(f"--name {exc}") from None
        self.base = Path(root)
        self.name = name
        self.root = self.base / name
        self.prompts = self.root / "prompts"
        self.results_path = self.prompts / "results.json"
        # The template of the latest run, so `compare WORKSPACE/NAME:ROUND` knows the questions.
        self.template_path = self.root / "template.yaml"
        # The confirmation gate's outcome for the current best round (see records.GateRecord).
        self.gate_path = self.root / "gate.json"
        # Rounds that results.json held more than once at the last load() (the last entry is kept).
        self.duplicate_rounds: list[int] = []

    @classmethod
    def from_path(cls, path: str | Path) -> Workspace:
        """`show workspace/Poem` (or a path to its prompts/ folder or results.json)."""
        p = Path(path)
        if p.name == "results.json":
            p = p.parent
        if p.name == "prompts" and (p / "results.json").exists():
            p = p.parent
        return cls(p.parent if str(p.parent) else Path("."), p.name)

    def round_dir(self, number: int) -> Path:
        return self.prompts / f"round_{number}"

    def exists(self) -> bool:
        return self.results_path.is_file()

    def load(self) -> list[RoundRecord]:
        """results.json as records, sorted by round; [] when there is none yet."""
        if not self.results_path.exists():
            return []
        try:
            raw = self.results_path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise WorkspaceError(f"{self.results_path}: cannot read ({exc})") from None
        if not raw.strip():
            return []
        try:
            data = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise WorkspaceError(
                f"{self.results_path}: not valid JSON (line {exc.lineno}); fix or move it away"
            ) from None
        except (ValueError, RecursionError) as exc:  # a >4300-digit number, absurd nesting
            raise WorkspaceError(f"{self.results_path}: not valid JSON ({exc}); fix or move it away") from None
        if not isinstance(data, list):
            raise WorkspaceError(f"{self.results_path}: expected a list of rounds (is this a promptopt/SPO workspace?)")
        records: list[RoundRecord] = []
        for i, entry in enumerate(data):
            try:
                records.append(RoundRecord.model_validate(entry))
            except ValidationError as exc:
                first = exc.errors()[0]
                loc = ".".join(str(p) for p in first["loc"])
                raise WorkspaceError(f"{self.results_path}: [{i}].{loc}: {first['msg']}") from None
        numbers = [r.round for r in records]
        self.duplicate_rounds = sorted({n for n in numbers if numbers.count(n) > 1})
        if self.duplicate_rounds:
            # SPO can write a round twice; the last entry for a round wins, as in SPO's own reading.
            unique: dict[int, RoundRecord] = {}
            for record in records:
                unique[record.round] = record
            records = list(unique.values())
        return sorted(records, key=lambda r: r.round)

    def save_round(self, record: RoundRecord, records: list[RoundRecord]) -> list[RoundRecord]:
        """Write the round's files, then commit it to results.json (the commit point)."""
        folder = self.round_dir(record.round)
        try:
            # Copies of what results.json holds: atomic, but only the commit point pays for fsync.
            atomic_write(folder / "prompt.txt", record.prompt, durable=False)
            atomic_write(folder / "answers.txt", format_answers(record.answers), durable=False)
            updated = [r for r in records if r.round != record.round] + [record]
            updated.sort(key=lambda r: r.round)
            self.write_results(updated)
        except OSError as exc:
            raise WorkspaceError(f"cannot write workspace {self.root}: {exc.strerror or exc}") from None
        return updated

    def write_results(self, records: list[RoundRecord]) -> None:
        data = [r.model_dump(mode="json", exclude_none=True) for r in records]
        atomic_write(self.results_path, json.dumps(data, indent=2, ensure_ascii=False) + "\n")

    def archive_results(self, tag: str) -> Path | None:
        """Copy results.json aside before an operation that drops rounds; nothing is lost."""
        if not self.results_path.exists():
            return None
        stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        target = self.prompts / f"results.{tag}-{stamp}.json"
        n = 1
        while target.exists():  # two archives in the same second must not overwrite each other
            n += 1
            target = self.prompts / f"results.{tag}-{stamp}-{n}.json"
        atomic_write(target, self.results_path.read_text(encoding="utf-8"))
        return target

    def read_gate(self) -> GateRecord | None:
        """The stored gate; None when there is none or it cannot be read (it is then run again)."""
        try:
            return GateRecord.model_validate_json(self.gate_path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValidationError, ValueError):
            return None

    def write_gate(self, gate: GateRecord) -> None:
        try:
            atomic_write(self.gate_path, gate.model_dump_json(indent=2, exclude_none=True) + "\n")
        except OSError as exc:
            raise WorkspaceError(f"cannot write workspace {self.root}: {exc.strerror or exc}") from None

    def read_template(self) -> Template | None:
        """The template the latest run used; None when there is none (an SPO workspace) or it is unreadable."""
        from promptopt.template import load_template

        if not self.template_path.is_file():
            return None
        try:
            return load_template(self.template_path)[0]
        except TemplateError:
            return None

    def write_template(self, template: Template) -> None:
        from promptopt.template import dump_template

        try:
            atomic_write(self.template_path, dump_template(template))
        except OSError as exc:
            raise WorkspaceError(f"cannot write workspace {self.root}: {exc.strerror or exc}") from None

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Hold `<name>/.lock` for the run; a lock left by a dead process is taken over."""
        try:
            self.prompts.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise WorkspaceError(f"cannot create workspace {self.root}: {exc.strerror or exc}") from None
        path = self.root / ".lock"
        try:
            handle = open(path, "a+", encoding="utf-8")  # noqa: SIM115 - held for the whole run
        except OSError as exc:
            raise WorkspaceError(f"cannot write workspace {self.root}: {exc.strerror or exc}") from None
        acquired = False
        try:
            if fcntl is not None:
                try:
                    fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                except OSError:
                    handle.seek(0)
                    holder = handle.read().strip() or "another process"
                    raise WorkspaceLocked(
                        f"workspace {self.root} is in use by {holder}; wait for it or stop it first"
                    ) from None
            acquired = True
            handle.seek(0)
            handle.truncate()
            handle.write(f"pid {os.getpid()} on {socket.gethostname()} since {now_string()[:19]}\n")
            handle.flush()
            yield
        finally:
            if acquired:  # a refused attempt must not erase the holder's pid line
                with contextlib.suppress(OSError):
                    handle.seek(0)
                    handle.truncate()
            handle.close()
