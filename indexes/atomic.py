"""Crash-safe file writes (temp file in the same folder, fsync, rename, fsync the folder) and the checksummed
reads that go with them."""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from core.errors import IndexCorruptError


@contextmanager
def atomic_open(path: Path) -> Iterator[BinaryIO]:
    """A binary file that replaces ``path`` on a clean exit; readers see the old or the new file, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o644)  # mkstemp's 0600 would hide the file from other users of a shared volume
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` atomically."""
    with atomic_open(path) as handle:
        handle.write(data)


def fsync_dir(folder: Path) -> None:
    """Persist a rename: fsync the folder entry itself."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read_checked(path: Path, sha256: str, what: str, advice: str = "rebuild it") -> bytes:
    """The bytes of ``path``, refused with ``IndexCorruptError`` (ending in ``advice``) when the file is
    missing or its SHA-256 is not the one the manifest recorded."""
    try:
        data = path.read_bytes()
    except FileNotFoundError as exc:
        raise IndexCorruptError(f"{what} file missing: {path}; {advice}") from exc
    if hashlib.sha256(data).hexdigest() != sha256:
        raise IndexCorruptError(f"{what} file {path} is corrupt or truncated (checksum mismatch); {advice}")
    return data
