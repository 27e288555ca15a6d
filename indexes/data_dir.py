"""The data directory: the shared document store plus one vector index per document encoder."""

from __future__ import annotations

import hashlib
import re
import shutil
import threading
from pathlib import Path

from indexes.document_store import DocumentStore
from indexes.vector_index import IndexConfig, VectorIndex


class DataDirectory:
    """Owns ``<data_dir>/docs.sqlite`` and ``<data_dir>/indexes/<encoder>/``; experts sharing a document
    encoder share its index object. ``write_lock`` serialises writes within this process."""

    def __init__(self, path: Path, config: IndexConfig) -> None:
        self.path = path
        self.config = config
        self.docs = DocumentStore(path / "docs.sqlite")
        self._indexes: dict[str, VectorIndex] = {}
        self.write_lock = threading.RLock()

    def index_for(self, encoder: str) -> VectorIndex:
        """The index of a document encoder, loaded from disk when it exists there."""
        if encoder not in self._indexes:
            index = VectorIndex(self.path / "indexes" / folder_name(encoder), encoder, self.config)
            if index.exists:
                index.load()
            self._indexes[encoder] = index
        return self._indexes[encoder]

    @property
    def indexes(self) -> dict[str, VectorIndex]:
        return dict(self._indexes)

    def stale_count(self, index: VectorIndex) -> int:
        """Vectors in ``index`` whose document is gone (deleted, replaced or never committed)."""
        return max(0, index.count - len(self.docs))

    def close(self) -> None:
        self.docs.close()

    @staticmethod
    def wipe(path: Path) -> None:
        """Delete a data directory's documents and indexes (for a full rebuild)."""
        shutil.rmtree(path / "indexes", ignore_errors=True)
        for name in ("docs.sqlite", "docs.sqlite-wal", "docs.sqlite-shm"):
            (path / name).unlink(missing_ok=True)


def folder_name(encoder: str) -> str:
    """A readable, unique folder name for an encoder identity."""
    model = encoder.split("|")[0].removeprefix("pkg:")
    stem = re.sub(r"[^A-Za-z0-9]+", "-", model).strip("-")[-48:].strip("-")
    return f"{stem or 'index'}-{hashlib.sha1(encoder.encode()).hexdigest()[:10]}"
