"""The data directory: the shared document store, one vector index per document encoder, one BM25 index."""

from __future__ import annotations

import hashlib
import re
import shutil
import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np

from router_retriever.core.errors import IndexCorruptError, IndexMismatchError, IndexNotBuiltError, ReadOnlyError
from router_retriever.indexes.consistency import IndexGap, KeyedIndex, compare
from router_retriever.indexes.document_store import DocumentStore
from router_retriever.indexes.lock import LOCK_FILE, WriterLock
from router_retriever.indexes.sharded_index import (
    SHARDS_MANIFEST,
    DenseIndex,
    ShardedIndex,
    UnreadableIndex,
    new_index,
    open_index,
    remove_orphans,
)
from router_retriever.indexes.sparse_index import SparseConfig, SparseIndex
from router_retriever.indexes.vector_index import MANIFEST, IndexConfig, VectorIndex

SPARSE_FOLDER = "bm25"  # under indexes/; vector index folders always end in an encoder hash
EXPORTS_FOLDER = "onnx"  # ONNX exports of torch models, one folder per key (written by the encoders)
# opens one document encoder's vector index (folder, encoder identity, config): ``open_index`` loads it here;
# another opener may return an index searched elsewhere (a Serve deployment per shard)
IndexOpener = Callable[[Path, str, IndexConfig], DenseIndex]
Committed = tuple[tuple[int, int, int] | None, ...]  # an index folder's manifests, as ``_manifests`` identifies them


class DataDirectory:
    """Owns ``<data_dir>/docs.sqlite``, ``<data_dir>/indexes/<encoder>/`` and ``<data_dir>/indexes/bm25/``;
    experts sharing a document encoder share its index object. ``write_lock`` serialises writes within
    this process; the ``WriterLock`` (``router_retriever.indexes.lock``, taken here unless ``read_only``, or handed over as
    ``lock``) keeps every other process out. A read-only directory writes nothing, not even a missing folder.
    ``<data_dir>/onnx/`` (``exports``) is no data of its own but a cache of model exports, keyed by their
    weights and written atomically by whichever process's encoder first needs one, readers included.
    ``open_dense`` opens each vector index (default ``open_index``: loaded into this process).

    ``fresh`` (a rebuild, writers only) opens every index empty, reading none of its files (they may be corrupt
    or of another kind): they stay in force until the rebuild saves each index's replacement, its manifest the
    commit point, so a crash at any moment leaves every index complete, old or new. A writer first deletes what
    a crash left behind that no manifest names (``remove_orphans``)."""

    def __init__(self, path: Path, config: IndexConfig, sparse: SparseConfig | None = None, read_only: bool = False,
                 lock: WriterLock | None = None, open_dense: IndexOpener = open_index, fresh: bool = False) -> None:
        self.path = path
        self.config = config
        self.read_only = read_only
        self.fresh = fresh and not read_only
        self.open_dense = open_dense
        self.lock = None if read_only else lock or WriterLock.acquire(path)
        try:
            self.docs = DocumentStore(path / "docs.sqlite", read_only=read_only)
        except BaseException:
            self.release()
            raise
        self._indexes: dict[str, DenseIndex] = {}
        self._seen: dict[Path, Committed] = {}  # per index folder, its manifests as last loaded (readers reload on change)
        self._refreshing = threading.Lock()
        self.sparse = SparseIndex(path / "indexes" / SPARSE_FOLDER, sparse or SparseConfig())
        if not read_only:
            self.remove_orphans()
        self._seen[self.sparse.folder] = _manifests(self.sparse.folder)
        if self.sparse.exists and not self.fresh:
            self.sparse.load()
        self.write_lock = threading.RLock()

    def index_for(self, encoder: str) -> DenseIndex:
        """The index of a document encoder (sharded when ``[index] shards`` > 1), loaded from disk when it
        exists there (empty when ``fresh``)."""
        if encoder not in self._indexes:
            opener = new_index if self.fresh else self.open_dense
            folder = self.path / "indexes" / folder_name(encoder)
            self._seen[folder] = _manifests(folder)  # before loading: a change during it is loaded again later
            try:
                index = opener(folder, encoder, self.config)
            except (IndexCorruptError, IndexMismatchError) as exc:  # BM25 searches still work; any use says this
                index = UnreadableIndex(exc)
            self._indexes[encoder] = index
        return self._indexes[encoder]

    def refresh(self) -> bool:
        """A reader's catch-up with its writer: reload every index whose manifest was replaced since it was loaded
        (in place; one that cannot be read now keeps its previous version until the next call) and recount the
        store. The writer saves indexes before the rows that name their vectors, so a reader never finds a stored
        document without its vector this way. Returns whether an index was reloaded. Writers: no-op."""
        if not self.read_only or not self._refreshing.acquire(blocking=False):  # one thread catches up for all
            return False
        try:
            reloaded = False
            for index in [*self._indexes.values(), self.sparse]:
                if isinstance(index, VectorIndex | ShardedIndex | SparseIndex):
                    reloaded |= self._reload_if_replaced(index)
            self.docs.refresh()
            return reloaded
        finally:
            self._refreshing.release()

    def _reload_if_replaced(self, index: VectorIndex | ShardedIndex | SparseIndex) -> bool:
        seen = _manifests(index.folder)
        if seen == self._seen.get(index.folder) or not index.exists:
            return False
        try:
            index.load()
        except (IndexCorruptError, IndexMismatchError, IndexNotBuiltError):  # mid-change: try again next time
            return False
        self._seen[index.folder] = seen
        return True

    def unreadable(self) -> dict[str, IndexCorruptError | IndexMismatchError]:
        """Per document encoder whose index files cannot be used, the error that refused them."""
        return {name: index.error for name, index in self._indexes.items() if isinstance(index, UnreadableIndex)}

    def check_readable(self) -> None:
        """Raise the error of the first vector index whose files cannot be used (before a build or repair)."""
        for error in self.unreadable().values():
            raise error

    def remove_orphans(self) -> None:
        """Delete the files a crash left in ``indexes/`` that no committed manifest names (temp files, earlier
        index files, a rebuild's other-layout manifest) and temp files of the directory's own atomic writes."""
        for temp in self.path.glob(".*.tmp"):
            temp.unlink(missing_ok=True)
        folders = self.path / "indexes"
        for folder in sorted(folders.iterdir()) if folders.is_dir() else []:
            if folder.is_dir() and folder.name != SPARSE_FOLDER:
                remove_orphans(folder, self.config)
        self.sparse.remove_orphans()

    @property
    def exports(self) -> Path:
        """Where ONNX exports of torch models are kept (written by the encoders that need them, not here)."""
        return self.path / EXPORTS_FOLDER

    @property
    def indexes(self) -> dict[str, DenseIndex]:
        return dict(self._indexes)

    @property
    def exists(self) -> bool:
        """Whether the document store has been created (by a build or a first write)."""
        return (self.path / "docs.sqlite").is_file()

    def check_writable(self) -> None:
        """Raise ``ReadOnlyError`` unless this process holds the writer lock."""
        if self.read_only or self.lock is None or not self.lock.held:
            raise ReadOnlyError(f"{self.path} is open read-only here: writes go through its one writer "
                                f"(`retriever build`, `retriever serve` without --read-only; see {self.path / LOCK_FILE})")

    def keyed_indexes(self) -> dict[str, KeyedIndex]:
        """Every built index of this directory that can be read, by name (each vector index by its encoder; a
        sparse index joins this table the same way), for ``gaps``."""
        keyed: dict[str, KeyedIndex] = {name: index for name, index in self._indexes.items()
                                        if (index.exists or not index.is_empty) and not isinstance(index, UnreadableIndex)}
        if self.sparse.exists or not self.sparse.is_empty:
            keyed[SPARSE_FOLDER] = self.sparse
        return keyed

    def gaps(self) -> dict[str, IndexGap]:
        """How each built index differs from the store (documents it lacks, entries of removed ones)."""
        store_ids = np.asarray(self.docs.all_ids(), dtype=np.int64)
        return {name: compare(name, store_ids, index) for name, index in self.keyed_indexes().items()}

    def release(self) -> None:
        """Give up the writer lock (the directory is read-only from then on)."""
        if self.lock is not None:
            self.lock.release()

    def close(self) -> None:
        self.docs.close()
        self.release()

    @staticmethod
    def wipe(path: Path) -> None:
        """Delete a data directory's documents and indexes (for a full rebuild; hold its writer lock)."""
        shutil.rmtree(path / "indexes", ignore_errors=True)
        for name in ("docs.sqlite", "docs.sqlite-wal", "docs.sqlite-shm"):
            (path / name).unlink(missing_ok=True)



def _manifests(folder: Path) -> Committed:
    """What identifies the committed version of an index folder: its manifests' inode, time and size (each is
    replaced by a rename, never written in place)."""
    found: list[tuple[int, int, int] | None] = []
    for name in (MANIFEST, SHARDS_MANIFEST):
        try:
            stat = (folder / name).stat()
        except FileNotFoundError:
            found.append(None)
        else:
            found.append((stat.st_ino, stat.st_mtime_ns, stat.st_size))
    return tuple(found)


def folder_name(encoder: str) -> str:
    """A readable, unique folder name for an encoder identity."""
    model = encoder.split("|")[0].removeprefix("pkg:")
    stem = re.sub(r"[^A-Za-z0-9]+", "-", model).strip("-")[-48:].strip("-")
    return f"{stem or 'index'}-{hashlib.sha1(encoder.encode()).hexdigest()[:10]}"
