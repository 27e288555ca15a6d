"""One FAISS index of a corpus under one document encoder, persisted with a manifest.

Layout of an index folder: ``manifest.json`` plus ``index-<sha12>.faiss``. The manifest names the
index file and its SHA-256, so replacing the manifest (atomically) is the commit point: a crash at
any moment leaves the previous complete index in force.

Small stores work for every kind: an IVF-PQ index stays exact (a flat index, ``form = "exact"`` in its
manifest) until it holds ``train_threshold`` vectors (39 per cluster, FAISS's own minimum, and at least
16 clusters' worth for the product quantiser), then it is trained on all of them (``form = "ivfpq"``).
An approximate index (HNSW, IVF) that returns fewer than ``k`` ids although it holds more (HNSW's graph
walk can miss nodes when ``k`` nears the number of vectors; IVF's probed lists can run short) answers
those queries by exhaustive search over the same vectors instead.
"""

from __future__ import annotations

import hashlib
import json
import math
import threading
from pathlib import Path
from typing import Literal

import faiss
import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from router_retriever.core.errors import IndexCorruptError, IndexMismatchError, IndexNotBuiltError
from router_retriever.indexes.atomic import atomic_write_bytes, read_checked

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
POINTS_PER_CLUSTER = 39  # FAISS warns below this many training points per centroid
PQ_MIN_CLUSTERS = 16  # 4-bit product-quantiser codebooks: 16 centroids each
REBUILD = "re-encode it from the documents in the store: `retriever build --rebuild` (keeps every document)"


class IndexConfig(BaseModel):
    """FAISS index kind and its parameters (exact inner product by default); the ``[index]`` config table.
    How the kinds compare (recall, latency, memory, build time): ``bench/index_kinds.py``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["flat", "hnsw", "ivfpq"] = Field(
        default="flat", description="flat (exact inner product) | hnsw (a graph, approximate) | ivfpq (inverted lists "
        "of product-quantised codes, approximate)")
    hnsw_m: int = Field(default=32, gt=1, description="HNSW: neighbours per node of the graph (M)")
    hnsw_ef_construction: int = Field(default=200, gt=0, description="HNSW: candidate list size while building "
                                      "(efConstruction)")
    hnsw_ef_search: int = Field(default=64, gt=0, description="HNSW: candidate list size while searching (efSearch)")
    ivf_nlist: int = Field(default=0, ge=0, description="IVF-PQ: clusters (inverted lists); 0 = 4*sqrt(n), at most n/39")
    ivf_nprobe: int = Field(default=64, gt=0, description="IVF-PQ: clusters searched per query")
    pq_m: int = Field(default=64, gt=0, description="IVF-PQ: sub-quantisers per vector code; must divide the dimension")
    pq_refine: bool = Field(default=True, description="IVF-PQ: re-rank the candidates the codes find by their exact "
                            "vectors (kept in the index beside the codes)")
    pq_refine_factor: int = Field(default=64, gt=0, description="refined IVF-PQ: re-rank this many x top_k candidates")
    shards: int = Field(default=1, ge=1, description="1 = one index; N = N shards by a hash of the document key")


class IndexManifest(BaseModel):
    """What an index was built from; checked against the expert's configuration on load."""

    format_version: int = FORMAT_VERSION
    encoder: str
    dimension: int
    normalized: bool = True
    metric: str = "inner_product"
    kind: str
    form: str = ""  # the FAISS form in use: the kind itself, or "exact" for an IVF-PQ index not yet trained
    count: int
    file: str
    sha256: str


class VectorIndex:
    """Vectors of one document encoder, keyed by the document store's int64 ids."""

    def __init__(self, folder: Path, encoder: str, config: IndexConfig) -> None:
        self.folder = folder
        self.encoder = encoder
        self.config = config
        self.dimension: int | None = None  # from the manifest on load, or from the first vectors
        self._index: faiss.Index | None = None
        self._lock = threading.RLock()

    @property
    def exists(self) -> bool:
        return (self.folder / MANIFEST).is_file()

    @property
    def count(self) -> int:
        return 0 if self._index is None else int(self._index.ntotal)

    @property
    def is_empty(self) -> bool:
        return self._index is None or self._index.ntotal == 0

    @property
    def form(self) -> str:
        """The form in use: the configured kind, or "exact" while an IVF-PQ index awaits enough vectors."""
        return "exact" if self.config.kind == "ivfpq" and self._index is not None and _is_flat(self._index) \
            else self.config.kind

    def build(self, vectors: np.ndarray, ids: np.ndarray) -> None:
        """Replace the in-memory index with a fresh one over ``vectors`` (call ``save`` to persist)."""
        if self.dimension is None and vectors.ndim == 2:
            self.dimension = int(vectors.shape[1])
        self._check(vectors)
        index = _new_index(self.config, int(vectors.shape[1]), len(vectors))
        if not index.is_trained:
            index.train(vectors)
        index.add_with_ids(vectors, ids.astype(np.int64))
        with self._lock:
            self._index = index

    def add(self, vectors: np.ndarray, ids: np.ndarray) -> None:
        """Add vectors under the given ids (an empty or untrained index is built from them; an exact IVF-PQ
        index that reaches ``train_threshold`` vectors is trained on all it holds)."""
        self._check(vectors)
        with self._lock:
            if self._index is None or not self._index.is_trained:
                self.build(vectors, ids)
            elif self.form == "exact" and self.count + len(vectors) >= train_threshold(self.config):
                held, held_ids = _flat_contents(self._index)
                self.build(np.vstack([held, vectors]), np.concatenate([held_ids, ids.astype(np.int64)]))
            else:
                self._index.add_with_ids(vectors, ids.astype(np.int64))

    def remove(self, ids: list[int]) -> int:
        """Remove ids where the index kind supports it; returns how many were removed (HNSW: none)."""
        if self._index is None or not ids:
            return 0
        with self._lock:
            try:
                # faiss's Python wrapper takes an id array (its type stubs only name IDSelector)
                return int(self._index.remove_ids(np.asarray(ids, dtype=np.int64)))  # type: ignore[arg-type]
            except RuntimeError:  # HNSW cannot remove: the store drops those ids at search time
                return 0

    def ids(self) -> np.ndarray:
        """Every id this index holds a vector for (removed-but-unremovable ones included: HNSW)."""
        with self._lock:
            return np.zeros(0, dtype=np.int64) if self._index is None else _ids_of(self._index)

    def search(self, vectors: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` (scores, ids) per query vector; missing slots have id -1."""
        self._check(vectors)
        with self._lock:
            if self._index is None or self._index.ntotal == 0:
                n = len(vectors)
                return np.zeros((n, 0), dtype=np.float32), np.zeros((n, 0), dtype=np.int64)
            k = min(k, self.count)
            scores, ids = self._index.search(vectors, k)
            short = (ids < 0).any(axis=1)
            if short.any():  # an approximate walk came back short: exhaustive search for those queries
                scores[short], ids[short] = _exhaustive_search(self._index, vectors[short], k)
            return scores, ids

    def save(self) -> IndexManifest:
        """Persist atomically: new index file first, then the manifest that points at it; then the index files
        it does not name go (the previous one, or any a crash left)."""
        manifest = self.write_file()
        atomic_write_bytes(self.folder / MANIFEST, manifest.model_dump_json(indent=2).encode())
        remove_unnamed(self.folder, {manifest.file})
        return manifest

    def write_file(self) -> IndexManifest:
        """Write the index file (atomically, named by its hash) and return the manifest that would commit it;
        nothing is committed until a manifest naming it replaces the old one (``save``, or a sharded index's)."""
        with self._lock:
            if self._index is None:
                raise IndexNotBuiltError(f"index {self.folder} has nothing to save: build it first")
            data = faiss.serialize_index(self._index).tobytes()
            form, count = self.form, self.count
        digest = hashlib.sha256(data).hexdigest()
        name = f"index-{digest[:12]}.faiss"
        atomic_write_bytes(self.folder / name, data)
        return IndexManifest(encoder=self.encoder, dimension=int(self.dimension or 0), kind=self.config.kind, form=form,
                             count=count, file=name, sha256=digest)

    def load(self, manifest: IndexManifest | None = None) -> IndexManifest:
        """Load from disk (the file ``manifest`` names, by default the folder's own manifest's), refusing an
        index of another encoder/dimension/kind or a corrupt file."""
        manifest = manifest or self._read_manifest()
        expected = {"encoder": self.encoder, "kind": self.config.kind}
        found = {k: getattr(manifest, k) for k in expected}
        if found != expected:
            diff = ", ".join(f"{k}: index has {found[k]!r}, config wants {expected[k]!r}" for k in expected
                             if found[k] != expected[k])
            raise IndexMismatchError(f"index in {self.folder} does not match its expert ({diff}; it holds "
                                     f"{manifest.count} {manifest.dimension}-d vectors); {REBUILD}")
        path = self.folder / manifest.file
        data = read_checked(path, manifest.sha256, "index", REBUILD)
        try:
            index = faiss.deserialize_index(np.frombuffer(data, dtype=np.uint8))
        except RuntimeError as exc:
            raise IndexCorruptError(f"index file {path} cannot be read: {exc}; {REBUILD}") from exc
        _apply_search_params(index, self.config)
        with self._lock:
            self._index = index
            self.dimension = manifest.dimension
        return manifest

    def _read_manifest(self) -> IndexManifest:
        path = self.folder / MANIFEST
        try:
            return IndexManifest(**json.loads(path.read_text()))
        except (json.JSONDecodeError, ValidationError, TypeError) as exc:
            raise IndexCorruptError(f"index manifest {path} is corrupt: {exc}; {REBUILD}") from exc

    def _check(self, vectors: np.ndarray) -> None:
        if vectors.ndim != 2 or (self.dimension is not None and vectors.shape[1] != self.dimension):
            raise IndexMismatchError(f"vectors of shape {vectors.shape} do not fit the index in {self.folder} "
                                     f"(dimension {self.dimension}, encoder {self.encoder!r}); {REBUILD}")


def remove_unnamed(folder: Path, named: set[str]) -> None:
    """Delete the index files of ``folder`` that are not in ``named`` (what its committed manifest names)."""
    for path in folder.glob("index-*.faiss"):
        if path.name not in named:
            path.unlink(missing_ok=True)


def train_threshold(config: IndexConfig) -> int:
    """Vectors an IVF-PQ index needs before it is trained (until then it is kept exact)."""
    return POINTS_PER_CLUSTER * max(config.ivf_nlist, PQ_MIN_CLUSTERS)


def _new_index(config: IndexConfig, dim: int, n: int) -> faiss.Index:
    """An empty index of the configured kind, sized for about ``n`` vectors (IVF-PQ: exact below
    ``train_threshold``)."""
    ip = faiss.METRIC_INNER_PRODUCT
    if config.kind == "flat" or (config.kind == "ivfpq" and n < train_threshold(config)):
        return faiss.IndexIDMap2(faiss.IndexFlatIP(dim))
    if config.kind == "hnsw":
        hnsw = faiss.IndexHNSWFlat(dim, config.hnsw_m, ip)
        hnsw.hnsw.efConstruction = config.hnsw_ef_construction
        index: faiss.Index = faiss.IndexIDMap2(hnsw)
    else:
        if dim % config.pq_m:
            raise IndexMismatchError(f"pq_m={config.pq_m} must divide the dimension {dim}")
        nlist = config.ivf_nlist or max(1, min(int(4 * math.sqrt(n)), n // 39 or 1))
        nbits = 8 if n >= 256 * 39 else max(4, min(8, int(math.log2(max(n, 16) // 39 or 1))))
        ivfpq = faiss.IndexIVFPQ(faiss.IndexFlatIP(dim), dim, nlist, config.pq_m, nbits, ip)
        index = faiss.IndexRefineFlat(ivfpq) if config.pq_refine else ivfpq
        if config.pq_refine:
            index = faiss.IndexIDMap2(index)
    _apply_search_params(index, config)
    return index


def _apply_search_params(index: faiss.Index, config: IndexConfig) -> None:
    """Set query-time knobs (efSearch, nprobe, the refinement depth) on the index or the one it wraps."""
    inner = faiss.downcast_index(index.index) if isinstance(index, faiss.IndexIDMap2) else index
    if isinstance(inner, faiss.IndexRefine):
        inner.k_factor = config.pq_refine_factor
        inner = faiss.downcast_index(inner.base_index)
    if isinstance(inner, faiss.IndexHNSW):
        inner.hnsw.efSearch = config.hnsw_ef_search
    if isinstance(inner, faiss.IndexIVF):
        inner.nprobe = config.ivf_nprobe


def _ids_of(index: faiss.Index) -> np.ndarray:
    """The ids held by an id-mapped index, or by a bare IVF index (ids kept in its inverted lists)."""
    if isinstance(index, faiss.IndexIDMap | faiss.IndexIDMap2):
        return faiss.vector_to_array(index.id_map).astype(np.int64)
    ivf = faiss.extract_index_ivf(index)
    lists = ivf.invlists
    assert lists is not None
    parts = [faiss.rev_swig_ptr(lists.get_ids(i), lists.list_size(i)).copy() for i in range(ivf.nlist)
             if lists.list_size(i)]
    return np.concatenate(parts).astype(np.int64) if parts else np.zeros(0, dtype=np.int64)


def _is_flat(index: faiss.Index) -> bool:
    inner = faiss.downcast_index(index.index) if isinstance(index, faiss.IndexIDMap2) else index
    return isinstance(inner, faiss.IndexFlat)


def _flat_contents(index: faiss.Index) -> tuple[np.ndarray, np.ndarray]:
    """Every vector of an id-mapped flat index with its id."""
    assert isinstance(index, faiss.IndexIDMap2)
    inner = faiss.downcast_index(index.index)
    return inner.reconstruct_n(0, inner.ntotal), faiss.vector_to_array(index.id_map).astype(np.int64)


def _exhaustive_search(index: faiss.Index, vectors: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-``k`` over every vector the index holds: its exact flat storage (HNSW, refined IVF-PQ, flat)
    searched directly, or a bare IVF index with every list probed."""
    if isinstance(index, faiss.IndexIDMap | faiss.IndexIDMap2):
        inner = faiss.downcast_index(index.index)
        storage = inner if isinstance(inner, faiss.IndexFlat) else \
            faiss.downcast_index(inner.storage) if isinstance(inner, faiss.IndexHNSW) else \
            faiss.downcast_index(inner.refine_index) if isinstance(inner, faiss.IndexRefine) else None
        if storage is not None:
            scores, rows = storage.search(vectors, k)
            id_map = faiss.vector_to_array(index.id_map).astype(np.int64)
            return scores, np.where(rows >= 0, id_map[np.maximum(rows, 0)], -1)
    ivf = faiss.extract_index_ivf(index)
    probes = ivf.nprobe
    ivf.nprobe = ivf.nlist
    try:
        return index.search(vectors, k)
    finally:
        ivf.nprobe = probes
