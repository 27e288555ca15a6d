"""One writer per data directory: an exclusive ``flock`` on ``<data_dir>/writer.lock``.

Whoever writes a data directory (``retriever build``, ``retriever serve``, a ``Retriever`` opened for
writing) holds this lock from opening to closing; a second writer is refused with
``DataDirectoryLockedError`` naming the holder (pid, host, command, start time, which the holder writes
into the lock file). Readers (``read_only=True``, ``retriever search``, ``retriever serve --read-only``)
never take it. The kernel drops the lock when the holder's process ends, however it ends (``kill -9``
included), so a stale lock file never blocks the next writer; its old contents are simply overwritten.

The lock file is never replaced or deleted (the lock belongs to its inode). ``flock`` locks are per open
file: two writers in one process conflict too. It is meant for local filesystems (and Docker volumes on
them), where ``flock`` is reliable.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import sys
import time
from pathlib import Path
from typing import Any

from router_retriever.core.errors import DataDirectoryLockedError

LOCK_FILE = "writer.lock"


class WriterLock:
    """The exclusive writer lock of one data directory (``acquire`` it; ``release`` or close the process)."""

    def __init__(self, folder: Path, handle: Any, holder: dict[str, Any]) -> None:
        self.folder = folder
        self.holder = holder
        self._handle = handle

    @classmethod
    def acquire(cls, folder: Path, command: str | None = None) -> WriterLock:
        """Take the lock of ``folder`` (created if missing) or raise ``DataDirectoryLockedError`` at once."""
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / LOCK_FILE
        handle = os.fdopen(os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644), "r+")  # held while locked
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            raise DataDirectoryLockedError(locked_message(folder, read_holder(folder))) from None
        except BaseException:
            handle.close()
            raise
        holder = {"pid": os.getpid(), "host": socket.gethostname(),
                  "command": command or " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]) or "python",
                  "since": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        handle.seek(0)
        handle.truncate()
        handle.write(json.dumps(holder) + "\n")
        handle.flush()
        os.fsync(handle.fileno())
        return cls(folder, handle, holder)

    @property
    def held(self) -> bool:
        return not self._handle.closed

    def release(self) -> None:
        """Give the lock up (idempotent); the file stays, its contents are overwritten by the next holder."""
        if not self._handle.closed:
            fcntl.flock(self._handle.fileno(), fcntl.LOCK_UN)
            self._handle.close()

    def __enter__(self) -> WriterLock:
        return self

    def __exit__(self, *_: object) -> None:
        self.release()


def read_holder(folder: Path) -> dict[str, Any]:
    """The holder's description as written in the lock file ({} while it is being written)."""
    try:
        data = json.loads((folder / LOCK_FILE).read_text() or "{}")
    except (OSError, json.JSONDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def describe(holder: dict[str, Any]) -> str:
    """``pid 123 on host h (retriever serve --port 8000), since 2025-01-01T10:00:00+0000``."""
    if not holder:
        return "another process (it has not written its name yet)"
    return (f"pid {holder.get('pid', '?')} on host {holder.get('host', '?')} ({holder.get('command', '?')}), "
            f"since {holder.get('since', '?')}")


def locked_message(folder: Path, holder: dict[str, Any]) -> str:
    return (f"data directory {folder} is already open for writing by {describe(holder)}: one writer per data "
            "directory. Stop that process, send writes to it, or open this one read-only "
            "(`retriever serve --read-only`, `Retriever(..., read_only=True)`)")
