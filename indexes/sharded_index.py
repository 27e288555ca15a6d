"""One document encoder's index split into N shards, each a ``VectorIndex`` in its own folder, searched in
parallel and merged to one top-k (``[index] shards = N``; 1 keeps the single unsharded index).

A document's shard is fixed by a stable hash (BLAKE2b) of its store key, the int64 id every index is keyed
by: ``add`` and ``remove`` go to the owning shard only. (The index layer never sees string ids: an index is
written before the store rows that name its keys, so a key is all there is when a vector arrives.)

Layout: ``shards.json`` plus ``shard-000/ ... shard-<N-1>/``, each holding ``index-<sha12>.faiss`` files.
``save`` writes every shard's file atomically, then replaces ``shards.json`` (each shard's file, checksum
and count): that manifest is the one commit point of the whole shard set, so a crash leaves the previous
complete set in force; files it no longer names are removed after it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Protocol

import numpy as np
from pydantic import BaseModel, ValidationError

from router_retriever.core.errors import IndexCorruptError, IndexMismatchError
from router_retriever.indexes.atomic import atomic_write_bytes
from router_retriever.indexes.vector_index import MANIFEST, REBUILD, IndexConfig, IndexManifest, VectorIndex, remove_unnamed

SHARDS_MANIFEST = "shards.json"
FORMAT_VERSION = 1
MISSING_SCORE = np.finfo(np.float32).min  # FAISS's score for an empty inner-product slot


class ShardsManifest(BaseModel):
    """The committed shard set: one index manifest per shard, in shard order."""

    format_version: int = FORMAT_VERSION
    encoder: str
    kind: str
    shards: list[IndexManifest]


class ShardedIndex:
    """Vectors of one document encoder in ``config.shards`` FAISS shards, keyed by the store's int64 ids."""

    def __init__(self, folder: Path, encoder: str, config: IndexConfig) -> None:
        self.folder = folder
        self.encoder = encoder
        self.config = config
        self.shards = [VectorIndex(folder / f"shard-{i:03d}", encoder, config) for i in range(config.shards)]
        self._pool = ThreadPoolExecutor(max_workers=config.shards, thread_name_prefix="shard")

    @property
    def exists(self) -> bool:
        return (self.folder / SHARDS_MANIFEST).is_file()

    @property
    def dimension(self) -> int | None:
        return next((s.dimension for s in self.shards if s.dimension is not None), None)

    @property
    def count(self) -> int:
        return sum(s.count for s in self.shards)

    @property
    def is_empty(self) -> bool:
        return all(s.is_empty for s in self.shards)

    @property
    def form(self) -> str:
        """The shards' forms ("flat", or "exact+ivfpq" while only some IVF-PQ shards hold enough to train)."""
        return "+".join(sorted({s.form for s in self.shards}))

    def build(self, vectors: np.ndarray, ids: np.ndarray) -> None:
        """Replace every shard with a fresh one over its part of ``vectors`` (call ``save`` to persist)."""
        for shard, rows in zip(self.shards, _split(ids, len(self.shards))):
            shard.build(vectors[rows], ids[rows])

    def add(self, vectors: np.ndarray, ids: np.ndarray) -> None:
        """Add each vector to the shard that owns its id (a shard given none is still built, empty)."""
        for shard, rows in zip(self.shards, _split(ids, len(self.shards))):
            if len(rows) or shard.count == 0:
                shard.add(vectors[rows], ids[rows])

    def remove(self, ids: list[int]) -> int:
        """Remove ids from their owning shards; returns how many were removed (HNSW: none)."""
        keys = np.asarray(ids, dtype=np.int64)
        return sum(shard.remove(keys[rows].tolist()) for shard, rows in zip(self.shards, _split(keys, len(self.shards)))
                   if len(rows))

    def ids(self) -> np.ndarray:
        """Every id any shard holds a vector for."""
        return np.concatenate([s.ids() for s in self.shards])

    def search(self, vectors: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` (scores, ids) per query vector over every shard (searched in parallel, FAISS releasing the
        GIL), merged by score, ties by id; missing slots have id -1."""
        k = min(k, self.count)
        return merged(list(self._pool.map(lambda shard: shard.search(vectors, k), [s for s in self.shards if s.count])),
                      len(vectors), k)

    def save(self) -> ShardsManifest:
        """Persist atomically: every shard's file, then ``shards.json`` naming them all; then old files go."""
        manifest = ShardsManifest(encoder=self.encoder, kind=self.config.kind,
                                  shards=[shard.write_file() for shard in self.shards])
        atomic_write_bytes(self.folder / SHARDS_MANIFEST, manifest.model_dump_json(indent=2).encode())
        for shard, committed in zip(self.shards, manifest.shards):
            remove_unnamed(shard.folder, {committed.file})
        return manifest

    def load(self) -> ShardsManifest:
        """Load every shard the manifest names, refusing another shard count, encoder or kind, or a corrupt file."""
        manifest = _read_shards(self.folder, len(self.shards))
        for shard, committed in zip(self.shards, manifest.shards):
            shard.load(committed)
        return manifest


class DenseIndex(Protocol):
    """What the engine asks of one document encoder's vector index: a ``VectorIndex``, a ``ShardedIndex``, or
    an index whose shards are searched elsewhere (``router_retriever.ray.parts``: Serve deployments, read-only)."""

    @property
    def exists(self) -> bool: ...

    @property
    def dimension(self) -> int | None: ...

    @property
    def count(self) -> int: ...

    @property
    def is_empty(self) -> bool: ...

    def build(self, vectors: np.ndarray, ids: np.ndarray) -> None: ...

    def add(self, vectors: np.ndarray, ids: np.ndarray) -> None: ...

    def remove(self, ids: list[int]) -> int: ...

    def ids(self) -> np.ndarray: ...

    def search(self, vectors: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]: ...

    def save(self) -> object: ...


class UnreadableIndex:
    """Stands in for a vector index whose files cannot be used (corrupt, or of another encoder, kind or layout), so
    that the data directory still opens (BM25 needs no vector index): every use of it raises the error that
    refused it."""

    def __init__(self, error: IndexCorruptError | IndexMismatchError) -> None:
        self.error = error

    @property
    def exists(self) -> bool:
        return True

    @property
    def dimension(self) -> int | None:
        return None

    @property
    def count(self) -> int:
        return 0

    @property
    def is_empty(self) -> bool:
        return False  # built, not usable: not "unbuilt"

    def build(self, vectors: np.ndarray, ids: np.ndarray) -> None:
        raise self.error

    def add(self, vectors: np.ndarray, ids: np.ndarray) -> None:
        raise self.error

    def remove(self, ids: list[int]) -> int:
        raise self.error

    def ids(self) -> np.ndarray:
        raise self.error

    def search(self, vectors: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        raise self.error

    def save(self) -> object:
        raise self.error


def merged(parts: list[tuple[np.ndarray, np.ndarray]], queries: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """One top-``k`` (scores, ids) per query from the shards' own top-k lists (``parts``, one per shard that
    holds vectors): by score, ties by id; missing slots (id -1) last."""
    if not parts:
        return np.zeros((queries, 0), dtype=np.float32), np.zeros((queries, 0), dtype=np.int64)
    scores = np.hstack([p[0] for p in parts])
    ids = np.hstack([p[1] for p in parts])
    scores = np.where(ids < 0, MISSING_SCORE, scores)
    order = np.lexsort((np.where(ids < 0, np.iinfo(np.int64).max, ids), -scores), axis=-1)[:, :k]
    return np.take_along_axis(scores, order, axis=1), np.take_along_axis(ids, order, axis=1)


def open_index(folder: Path, encoder: str, config: IndexConfig) -> VectorIndex | ShardedIndex:
    """The index of ``folder`` as ``config`` lays it out (sharded when ``shards`` > 1), loaded when it exists;
    a folder laid out only the other way is refused (both ways: a rebuild to this layout committed, and the
    other manifest is a leftover)."""
    index = new_index(folder, encoder, config)
    if not index.exists and (folder / other_manifest(config)).is_file():
        found = "a single unsharded index" if config.shards > 1 else "a sharded index"
        raise IndexMismatchError(f"index in {folder} is {found}, config wants shards = {config.shards}; {REBUILD}")
    if index.exists:
        index.load()
    return index


def new_index(folder: Path, encoder: str, config: IndexConfig) -> VectorIndex | ShardedIndex:
    """An empty index of ``folder`` as ``config`` lays it out, nothing read from disk (a rebuild's: its ``save``
    replaces what the folder holds, atomically)."""
    return ShardedIndex(folder, encoder, config) if config.shards > 1 else VectorIndex(folder, encoder, config)


def other_manifest(config: IndexConfig) -> str:
    """The manifest of the layout ``config`` does not use (``shards.json`` or the unsharded ``manifest.json``)."""
    return MANIFEST if config.shards > 1 else SHARDS_MANIFEST


def open_shard(folder: Path, encoder: str, config: IndexConfig, shard: int) -> VectorIndex:
    """Shard ``shard`` of the index in ``folder`` loaded alone, as ``shards.json`` commits it (what one Serve shard
    deployment holds); with ``shards = 1`` the unsharded index itself. Not built yet: an empty, unloaded shard."""
    if config.shards == 1:
        index = open_index(folder, encoder, config)
        assert isinstance(index, VectorIndex)
        return index
    if not 0 <= shard < config.shards:
        raise IndexMismatchError(f"shard {shard} of an index of {config.shards} shards")
    if (folder / MANIFEST).is_file():
        raise IndexMismatchError(f"index in {folder} is a single unsharded index, config wants shards = "
                                 f"{config.shards}; {REBUILD}")
    index = VectorIndex(folder / f"shard-{shard:03d}", encoder, config)
    if (folder / SHARDS_MANIFEST).is_file():
        index.load(_read_shards(folder, config.shards).shards[shard])
    return index


def _read_shards(folder: Path, shards: int) -> ShardsManifest:
    """``shards.json`` of ``folder``, refusing a corrupt one or another shard count."""
    path = folder / SHARDS_MANIFEST
    try:
        manifest = ShardsManifest(**json.loads(path.read_text()))
    except (json.JSONDecodeError, ValidationError, TypeError) as exc:
        raise IndexCorruptError(f"shard manifest {path} is corrupt: {exc}; {REBUILD}") from exc
    if len(manifest.shards) != shards:
        raise IndexMismatchError(f"index in {folder} has {len(manifest.shards)} shards, config wants "
                                 f"shards = {shards}; {REBUILD}")
    return manifest


def shard_of(ids: np.ndarray, shards: int) -> np.ndarray:
    """The owning shard of each int64 id: BLAKE2b (8 bytes) of its little-endian bytes, modulo ``shards``
    (the same on every machine and run, unlike Python's salted ``hash``)."""
    keys = np.asarray(ids, dtype="<i8")
    return np.fromiter((int.from_bytes(hashlib.blake2b(key.tobytes(), digest_size=8).digest(), "little") % shards
                        for key in keys), dtype=np.int64, count=len(keys))


def _split(ids: np.ndarray, shards: int) -> list[np.ndarray]:
    """Row numbers of ``ids`` per owning shard, in their order."""
    owners = shard_of(ids, shards)
    return [np.flatnonzero(owners == i) for i in range(shards)]


def remove_orphans(folder: Path, config: IndexConfig) -> None:
    """Delete what a crash (``kill -9``) left in one encoder's index folder that no committed manifest names:
    temp files of interrupted atomic writes, index files of either layout their manifest does not name (all of
    them without one), and the other layout's manifest where ``config``'s is committed too (a rebuild that
    changed the shard count). A manifest that cannot be read keeps every file of its layout. Writers only."""
    if (folder / (SHARDS_MANIFEST if config.shards > 1 else MANIFEST)).is_file():
        (folder / other_manifest(config)).unlink(missing_ok=True)
    for part in [folder, *folder.glob("shard-*")]:
        for temp in part.glob(".*.tmp"):
            temp.unlink(missing_ok=True)
    single = _committed(folder / MANIFEST, lambda m: [IndexManifest(**m).file])
    if single is not None:
        remove_unnamed(folder, set(single))
    sharded = _committed(folder / SHARDS_MANIFEST, lambda m: [s.file for s in ShardsManifest(**m).shards])
    if sharded is not None:
        for part in folder.glob("shard-*"):
            shard = int(part.name.removeprefix("shard-")) if part.name.removeprefix("shard-").isdigit() else -1
            remove_unnamed(part, {sharded[shard]} if 0 <= shard < len(sharded) else set())


def _committed(path: Path, files: Callable[[dict], list[str]]) -> list[str] | None:
    """The files the manifest ``path`` names (none when it is absent; None when it cannot be read)."""
    if not path.is_file():
        return []
    try:
        return files(json.loads(path.read_text()))
    except (OSError, json.JSONDecodeError, ValidationError, TypeError):
        return None
