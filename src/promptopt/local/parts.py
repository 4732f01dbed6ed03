"""A GGUF shipped as numbered data-only packages: find the pieces, join them once, check the result.

The packages are read as data through their installed file lists (importlib.metadata): their
code is never imported. The joined file is kept in the user cache folder and must have the
pinned size and sha256; a small stamp beside it records that it was checked, so later runs
only compare size and modification time instead of hashing a gigabyte again.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

CHUNK = 4 << 20


class PartsError(Exception):
    """A one-line reason the file cannot be had: a piece missing, or the result not the pinned file."""


@dataclass(frozen=True)
class PartsSource:
    """Distributions `prefix1` … `prefixN`, each holding one piece at `piece_path` (with {n}, {nn})."""

    prefix: str
    count: int
    piece_path: str
    version: str
    filename: str
    size: int
    sha256: str

    def distribution(self, n: int) -> str:
        return f"{self.prefix}{n}"

    def piece(self, n: int) -> str:
        return self.piece_path.format(n=n, nn=f"{n:02d}")


def locate_pieces(source: PartsSource) -> list[Path]:
    """The installed pieces in order; PartsError naming the first missing or wrong package."""
    pieces = []
    for n in range(1, source.count + 1):
        name = source.distribution(n)
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            raise PartsError(f"package {name}=={source.version} is not installed") from None
        if dist.version != source.version:
            raise PartsError(f"package {name} is version {dist.version}, expected {source.version}")
        path = Path(str(dist.locate_file(source.piece(n))))
        if not path.is_file():
            raise PartsError(f"package {name} has no {source.piece(n)}")
        pieces.append(path)
    return pieces


def _stamp(path: Path) -> Path:
    return path.with_name(path.name + ".checked")


def _stat_key(path: Path) -> dict[str, int]:
    st = path.stat()
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}


def _checked(path: Path, source: PartsSource) -> bool:
    """The stamp says this very file (size, mtime) was hashed and matched the pinned sha256."""
    try:
        stamp = json.loads(_stamp(path).read_text(encoding="utf-8"))
        return bool(stamp == {"sha256": source.sha256, **_stat_key(path)})
    except (OSError, ValueError):
        return False


def _hash(path: Path) -> tuple[int, str]:
    digest, size = hashlib.sha256(), 0
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return size, digest.hexdigest()


def _mismatch(source: PartsSource, size: int, sha: str) -> str:
    return (
        f"{source.filename}: got {size:,} bytes with sha256 {sha[:12]}…, expected {source.size:,} bytes"
        f" with sha256 {source.sha256[:12]}…: refusing it"
    )


def ensure_file(source: PartsSource, folder: Path) -> Path:
    """The checked GGUF in `folder`: reused when stamped, else joined from the pieces and verified.

    Raises PartsError (one line) when a piece is missing or the joined bytes are not the pinned
    file; a wrong file is never left where a later run would use it.
    """
    target = folder / source.filename
    if target.is_file():
        if _checked(target, source):
            return target
        try:  # there but never checked (copied in, or the stamp lost): hash it once
            verify_existing(target, source)
            return target
        except PartsError:
            pass  # not the pinned file: joined again below, replacing it
    pieces = locate_pieces(source)
    total = sum(p.stat().st_size for p in pieces)
    if total != source.size:
        raise PartsError(
            f"{source.filename}: the {source.count} pieces add up to {total:,} bytes, expected"
            f" {source.size:,}: refusing them (reinstall {source.prefix}1…{source.count}=={source.version})"
        )
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{source.filename}.", suffix=".part", dir=folder)
    except OSError as exc:
        raise PartsError(f"cannot write {folder}: {exc.strerror or exc} (set PROMPTOPT_MODELS_DIR)") from None
    tmp = Path(tmp_name)
    try:
        digest, size = hashlib.sha256(), 0
        with os.fdopen(fd, "wb") as out:
            for piece in pieces:
                with piece.open("rb") as f:
                    while chunk := f.read(CHUNK):
                        digest.update(chunk)
                        size += len(chunk)
                        out.write(chunk)
        sha = digest.hexdigest()
        if size != source.size or sha != source.sha256:
            raise PartsError(_mismatch(source, size, sha))
        os.chmod(tmp, 0o644)  # mkstemp's 0600 would hide a shared cache from other users
        os.replace(tmp, target)
    except OSError as exc:
        raise PartsError(f"cannot write {target}: {exc.strerror or exc} (set PROMPTOPT_MODELS_DIR)") from None
    finally:
        tmp.unlink(missing_ok=True)
    _write_stamp(target, sha)
    return target


def _write_stamp(path: Path, sha: str) -> None:
    try:
        _stamp(path).write_text(json.dumps({"sha256": sha, **_stat_key(path)}), encoding="utf-8")
    except OSError:
        pass  # without a stamp the next run hashes the file again: slower, never wrong


def verify_existing(path: Path, source: PartsSource) -> None:
    """Hash a file someone else put there; PartsError unless it is the pinned one (then stamp it)."""
    size, sha = _hash(path)
    if size != source.size or sha != source.sha256:
        raise PartsError(_mismatch(source, size, sha))
    _write_stamp(path, sha)
