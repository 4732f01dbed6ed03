"""Content-addressed response cache (sqlite): a rerun never pays twice for the same call."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from promptopt.errors import ConfigError

SAMPLING_KEYS = (
    "temperature",
    "top_p",
    "max_tokens",
    "max_completion_tokens",
    "seed",
    "stop",
    "presence_penalty",
    "frequency_penalty",
    "response_format",
    "grammar",
    "reasoning_effort",
)


def cache_key(model: str, messages: list[dict[str, Any]], params: dict[str, Any], sample: int) -> str:
    """sha256 of sorted-key JSON of what determines the answer; never keys or base URLs."""
    sampling = {k: params[k] for k in SAMPLING_KEYS if k in params}
    payload = {"model": model, "messages": messages, "params": sampling, "sample": sample}
    blob = json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def default_cache_dir() -> Path:
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("promptopt"))


@dataclass
class CacheStats:
    path: str
    entries: int
    bytes: int
    saved_usd: float
    models: dict[str, int]


class ResponseCache:
    """One sqlite file; WAL mode so concurrent runs and kill -9 never corrupt it."""

    def __init__(self, folder: Path | None = None) -> None:
        self.folder = Path(folder) if folder else default_cache_dir()
        self.path = self.folder / "responses.sqlite3"
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            # WAL + NORMAL: never corrupt, survives kill -9; skips an fsync per write that would
            # block the event loop (6 ms a call, 200 calls a round on wide runs).
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS responses (key TEXT PRIMARY KEY, model TEXT, role TEXT,"
                " value TEXT NOT NULL, created REAL NOT NULL)"
            )
        except (OSError, sqlite3.Error) as exc:
            raise ConfigError(
                f"cache {self.path}: cannot open ({exc}); use --no-cache or PROMPTOPT_CACHE_DIR"
            ) from None

    def get(self, key: str) -> dict[str, Any] | None:
        try:
            row = self._db.execute("SELECT value FROM responses WHERE key = ?", (key,)).fetchone()
        except sqlite3.Error:
            return None
        if row is None:
            return None
        try:
            value = json.loads(row[0])
        except json.JSONDecodeError:
            return None
        return value if isinstance(value, dict) else None

    def put(self, key: str, model: str, role: str, value: dict[str, Any]) -> None:
        try:
            self._db.execute(
                "INSERT OR REPLACE INTO responses (key, model, role, value, created) VALUES (?, ?, ?, ?, ?)",
                (key, model, role, json.dumps(value, ensure_ascii=False), time.time()),
            )
        except sqlite3.Error:
            pass  # a cache that cannot write only costs money later, it never stops a run

    def completion_averages(self, models: dict[str, str]) -> dict[str, float]:
        """Mean completion tokens of earlier replies per role, for the model each role uses now."""
        out: dict[str, float] = {}
        for role, model in models.items():
            try:
                row = self._db.execute(
                    "SELECT AVG(json_extract(value, '$.completion_tokens')), COUNT(*) FROM responses"
                    " WHERE model = ? AND role = ?",
                    (model, role),
                ).fetchone()
            except sqlite3.Error:
                continue
            if row and row[1] and row[0] is not None:
                out[role] = float(row[0])
        return out

    def stats(self) -> CacheStats:
        rows = self._db.execute("SELECT model, COUNT(*) FROM responses GROUP BY model").fetchall()
        saved = 0.0
        for (value,) in self._db.execute("SELECT value FROM responses"):
            try:
                saved += float(json.loads(value).get("cost_usd", 0.0))
            except (ValueError, AttributeError):
                pass
        size = sum(p.stat().st_size for p in self.folder.glob("responses.sqlite3*") if p.is_file())
        return CacheStats(str(self.path), sum(n for _, n in rows), size, saved, {m: n for m, n in rows})

    def clear(self) -> int:
        (count,) = self._db.execute("SELECT COUNT(*) FROM responses").fetchone()
        self._db.execute("DELETE FROM responses")
        self._db.execute("VACUUM")
        return int(count)

    def close(self) -> None:
        self._db.close()
