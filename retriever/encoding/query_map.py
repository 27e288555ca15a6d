"""A linear query map: a domain expert for any model family, trained on the vectors the model gives.

An expert whose model cannot take a LoRA adapter here (an ONNX-only model such as bge-small) still adapts
to a domain: its query vectors ``q`` become ``normalize(q + q @ delta.T)``, ``delta`` a square matrix learnt
from (query, document) pairs (``retriever train-expert --linear EXPERT``). The document side, and so the
expert's index, stays the model's own. A folder holds ``query_map.safetensors`` (tensor ``delta``) and the
training card ``training.json``.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from safetensors import SafetensorError
from safetensors.numpy import load_file, save

from router_retriever.core.errors import IndexMismatchError, ModelNotFoundError
from router_retriever.indexes.atomic import atomic_write_bytes
from router_retriever.locations import resolve_location

MAP_FILE = "query_map.safetensors"


@dataclass(frozen=True)
class QueryMap:
    """``delta`` (dimension x dimension): the learnt change of the identity map of query vectors."""

    delta: np.ndarray

    @property
    def dimension(self) -> int:
        return int(self.delta.shape[0])

    def apply(self, vectors: np.ndarray) -> np.ndarray:
        """Mapped query vectors, unit-normalised again (inner product stays cosine)."""
        if vectors.shape[1] != self.dimension:
            raise IndexMismatchError(f"query map is {self.dimension}-dimensional, the model's vectors are "
                                     f"{vectors.shape[1]}-dimensional: it was trained on another model")
        mapped = vectors + vectors @ self.delta.T
        return np.ascontiguousarray(mapped / np.maximum(np.linalg.norm(mapped, axis=1, keepdims=True), 1e-12),
                                    dtype=np.float32)

    def save(self, folder: Path) -> None:
        """Write ``query_map.safetensors`` into ``folder`` atomically."""
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(folder / MAP_FILE, save({"delta": np.ascontiguousarray(self.delta, dtype=np.float32)}))


def map_file(location: str) -> Path:
    """The weights file of a query-map folder given as a path or ``pkg:`` location."""
    return Path(resolve_location(location)) / MAP_FILE


def check_query_map(location: str) -> None:
    """Refuse a query-map folder without its weights file, before any model loads."""
    if not map_file(location).is_file():
        raise ModelNotFoundError(f"query map not found: {location} has no {MAP_FILE} "
                                 "(train one with `retriever train-expert --linear EXPERT`)")


def load_query_map(location: str) -> QueryMap:
    """The query map of a folder (read once per file version)."""
    check_query_map(location)
    file = map_file(location)
    stat = file.stat()
    return _load(str(file), stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=64)
def _load(file: str, mtime_ns: int, size: int) -> QueryMap:
    try:
        delta = load_file(file)["delta"].astype(np.float32)
    except (SafetensorError, KeyError, OSError) as exc:
        raise ModelNotFoundError(f"query map {file} is unreadable: {exc}") from exc
    if delta.ndim != 2 or delta.shape[0] != delta.shape[1]:
        raise ModelNotFoundError(f"query map {file} holds a {delta.shape} tensor, not a square matrix")
    return QueryMap(delta)
