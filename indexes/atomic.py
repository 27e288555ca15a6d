"""Crash-safe file writes (temp file in the same folder, fsync, rename, fsync the folder) and the checksummed
reads that go with them."""

from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from router_retriever.core.errors import IndexCorruptError


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


def replace_folder(folder: Path, write: Callable[[Path], None]) -> None:
    """Replace ``folder`` with what ``write`` puts into a new sibling folder, as one step: every file is fsynced,
    then the two folders are swapped atomically (Linux ``renameat2`` with ``RENAME_EXCHANGE``), so a crash at any
    point leaves the old folder or the new one, whole. Where the swap is not available the old folder is renamed
    aside first (a crash between the two renames leaves ``folder`` absent, its old files beside it). Leftovers of
    an earlier crash (``.<name>.*.tmp`` siblings) are removed first."""
    parent = folder.parent
    parent.mkdir(parents=True, exist_ok=True)
    for leftover in parent.glob(f".{folder.name}.*.tmp"):
        shutil.rmtree(leftover, ignore_errors=True)
    new = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", suffix=".tmp", dir=parent))
    try:
        write(new)
    except BaseException:
        shutil.rmtree(new, ignore_errors=True)
        raise
    for file in new.rglob("*"):
        if file.is_file():
            with file.open("rb") as handle:
                os.fsync(handle.fileno())
    fsync_dir(new)
    new.chmod(0o755)
    if not folder.exists():
        os.replace(new, folder)
    elif not _exchange(new, folder):
        aside = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", suffix=".tmp", dir=parent))
        os.replace(folder, aside / folder.name)
        os.replace(new, folder)
        new = aside
    fsync_dir(parent)
    shutil.rmtree(new, ignore_errors=True)  # the old folder's files, now under the temporary name


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically (Linux renameat2 RENAME_EXCHANGE); False where the system cannot."""
    renameat2 = getattr(ctypes.CDLL(None, use_errno=True), "renameat2", None)
    if renameat2 is None:
        return False
    at_fdcwd, rename_exchange = -100, 2
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    errno = ctypes.get_errno()
    if errno in (22, 38, 95):  # EINVAL, ENOSYS, EOPNOTSUPP: this filesystem or kernel cannot swap
        return False
    raise OSError(errno, os.strerror(errno), str(b))


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
