"""The data directory: the shared document store, one vector index per document encoder, one BM25 index."""

from __future__ import annotations

import hashlib
import re
import shutil
import threading
from pathlib import Path

from indexes.document_store import DocumentStore
from indexes.sparse_index import SparseConfig, SparseIndex
from indexes.vector_index import IndexConfig, VectorIndex

SPARSE_FOLDER = "bm25"  # under indexes/; vector index folders always end in an encoder hash


class DataDirectory:
    """Owns ``<data_dir>/docs.sqlite``, ``<data_dir>/indexes/<encoder>/`` and ``<data_dir>/indexes/bm25/``;
    experts sharing a document encoder share its index object. ``write_lock`` serialises writes within
    this process."""

    def __init__(self, path: Path, config: IndexConfig, sparse: SparseConfig | None = None) -> None:
        self.path = path
        self.config = config
        self.docs = DocumentStore(path / "docs.sqlite")
        self._indexes: dict[str, VectorIndex] = {}
        self.sparse = SparseIndex(path / "indexes" / SPARSE_FOLDER, sparse or SparseConfig())
        if self.sparse.exists:
            self.sparse.load()
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
