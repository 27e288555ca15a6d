"""The document store: ids, titles, texts and metadata in SQLite, with int64 keys for FAISS.

Internal ids come from a counter that is committed before any vector is written, so an id is never
handed out twice, even after a crash: a vector whose document row is missing is simply stale.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from router_retriever.core.errors import StoreCorruptError
from router_retriever.core.types import Document

DAMAGED = {"SQLITE_CORRUPT", "SQLITE_NOTADB"}  # sqlite3's names of a file it cannot read as a database

_SCHEMA = """
CREATE TABLE IF NOT EXISTS docs (
    iid INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    title TEXT NOT NULL,
    text TEXT NOT NULL,
    metadata TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT OR IGNORE INTO counters VALUES ('next_iid', 0);
"""


class DocumentStore:
    """SQLite-backed map between document ids, FAISS int64 ids and document content."""

    def __init__(self, path: Path, read_only: bool = False) -> None:
        """Open (or create) the store; ``read_only`` opens an existing file without writing anything, and a
        missing one as an empty store in memory (nothing is created on disk)."""
        self.path = path
        self.read_only = read_only
        self._lock = threading.RLock()
        with self.readable():
            self._db = self._connect()
            self._version = self._data_version()
            self._count = int(self._db.execute("SELECT COUNT(*) FROM docs").fetchone()[0])

    def refresh(self) -> None:
        """Count the documents again when another connection (the writer) committed since (a reader's count is
        otherwise the one it opened with; ``PRAGMA data_version`` tells, without a scan)."""
        with self._lock, self.readable():
            version = self._data_version()
            if version != self._version:
                self._version = version
                self._count = int(self._db.execute("SELECT COUNT(*) FROM docs").fetchone()[0])

    def _data_version(self) -> int:
        return int(self._db.execute("PRAGMA data_version").fetchone()[0])

    def _connect(self) -> sqlite3.Connection:
        path = self.path
        if self.read_only:
            target = f"{path.resolve().as_uri()}?mode=ro" if path.is_file() else "file::memory:"
            db = sqlite3.connect(target, uri=True, check_same_thread=False, isolation_level=None)
            if not path.is_file():
                db.executescript(_SCHEMA)
            return db
        path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        db.executescript(_SCHEMA)
        return db

    @contextmanager
    def readable(self) -> Iterator[None]:
        """Turn SQLite's "file is not a database" / "database disk image is malformed" into a
        ``StoreCorruptError`` naming this file and the way to recover."""
        try:
            yield
        except sqlite3.DatabaseError as exc:
            if getattr(exc, "sqlite_errorname", "") not in DAMAGED:
                raise
            raise StoreCorruptError(
                f"the document store {self.path} is damaged ({exc}). Restore it from a backup, or salvage it with "
                f"`sqlite3 {self.path} .recover | sqlite3 recovered.sqlite` and put recovered.sqlite in its place, "
                "or re-create it from the corpus with `retriever build --reset --discard-added` (documents added "
                "through the API are lost)") from exc

    def __len__(self) -> int:
        """Number of documents (kept in memory: it is read on every search)."""
        return self._count

    def reserve_ids(self, count: int) -> list[int]:
        """Hand out ``count`` fresh internal ids (committed at once, never reused)."""
        with self._lock, self.readable():
            start = self._db.execute(
                "UPDATE counters SET value = value + ? WHERE name = 'next_iid' RETURNING value - ?",
                (count, count),
            ).fetchone()[0]
        return list(range(start, start + count))

    def internal_ids(self, ids: Iterable[str]) -> dict[str, int]:
        """Map the given document ids that exist to their internal ids."""
        ids = list(ids)
        with self._lock, self.readable():
            rows = self._query("SELECT id, iid FROM docs WHERE id IN ({})", ids)
        return {doc_id: iid for doc_id, iid in rows}

    def put(self, docs: Sequence[Document], iids: Sequence[int]) -> list[int]:
        """Insert or replace documents under the given internal ids; returns the replaced ids."""
        with self._lock, self.readable():
            replaced = list(self.internal_ids(d.id for d in docs).values())
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.executemany("DELETE FROM docs WHERE iid = ?", [(i,) for i in replaced])
                self._db.executemany(
                    "INSERT INTO docs VALUES (?, ?, ?, ?, ?)",
                    [(i, d.id, d.title, d.text, json.dumps(d.metadata)) for d, i in zip(docs, iids, strict=True)],
                )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._count += len(docs) - len(replaced)
        return replaced

    def delete(self, ids: Sequence[str]) -> list[int]:
        """Delete documents by id; returns the internal ids that existed."""
        with self._lock, self.readable():
            found = self.internal_ids(ids)
            self._db.executemany("DELETE FROM docs WHERE iid = ?", [(i,) for i in found.values()])
            self._count -= len(found)
        return list(found.values())

    def fetch(self, iids: Sequence[int]) -> dict[int, Document]:
        """Documents for the internal ids that still exist (stale ids are left out)."""
        with self._lock, self.readable():
            rows = self._query("SELECT iid, id, title, text, metadata FROM docs WHERE iid IN ({})", list(iids))
        return {iid: Document(id=i, title=t, text=x, metadata=json.loads(m)) for iid, i, t, x, m in rows}

    def all_ids(self) -> list[int]:
        with self._lock, self.readable():
            return [r[0] for r in self._db.execute("SELECT iid FROM docs ORDER BY iid")]

    def iter_documents(self, batch: int = 1000) -> Iterable[tuple[list[int], list[Document]]]:
        """All documents in internal-id order, in batches (for (re)building indexes)."""
        iids = self.all_ids()
        for start in range(0, len(iids), batch):
            chunk = iids[start : start + batch]
            found = self.fetch(chunk)
            yield chunk, [found[i] for i in chunk]

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _query(self, sql: str, values: list[Any]) -> list[tuple]:
        rows: list[tuple] = []
        for start in range(0, len(values), 900):  # SQLite's bound-parameter limit
            chunk = values[start : start + 900]
            rows += self._db.execute(sql.format(",".join("?" * len(chunk))), chunk).fetchall()
        return rows
