"""The engine's parts on Ray Serve (``retriever serve --ray`` with ``[ray] split``): which deployments a
config needs, what each replica holds, and the stand-ins the ingress's ``Retriever`` uses in their place
(``ServeParts``, a ``router_retriever.parts.Parts``).

- ``router``: the router's base encoder (its pass routes every query, and is the pass of each expert whose
  query encoder is that model; the pilot comparison, one small matrix product, stays in the ingress);
- ``encoder-<expert>``: every other distinct query encoder (LoRA adapter, prefix, query map, other model);
- ``index-<j>-shard-<i>``: shard ``i`` of document encoder ``j``'s index, loaded alone (``[index] shards``;
  one deployment per index when unsharded).

The ingress sends each call through a ``DeploymentHandle`` and waits at most ``[ray] call_timeout_s``: a
replica that died or does not answer fails the request with ``UnavailableError`` (HTTP 503, Retry-After),
never a hang. Shard deployments are read-only (they load the committed index at start): a ``RemoteIndex``
refuses writes with ``ReadOnlyError``. Ray is imported on use (the ``[ray]`` extra)."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import numpy as np

from router_retriever.config import Settings
from router_retriever.core.errors import ReadOnlyError, RetrieverError, UnavailableError
from router_retriever.encoding.encoders import Encoder, EncoderSpec, encoder
from router_retriever.experts import document_spec, query_spec, router_spec
from router_retriever.indexes.data_dir import EXPORTS_FOLDER, folder_name
from router_retriever.indexes.sharded_index import DenseIndex, merged, open_shard
from router_retriever.indexes.vector_index import IndexConfig
from router_retriever.ray.cluster import import_ray

ROUTER = "router"


@dataclass(frozen=True)
class ShardPlace:
    """One shard deployment: shard ``shard`` of document encoder ``encoder``'s index in ``folder``."""

    folder: Path
    encoder: str
    shard: int


@dataclass(frozen=True)
class PartPlan:
    """The deployments of a split service, by deployment name."""

    encoders: dict[str, EncoderSpec]
    shards: dict[str, ShardPlace]


def part_plan(settings: Settings) -> PartPlan:
    """The router's encoder, every other distinct query encoder (named after its first expert) and every
    shard of every distinct document encoder's index, as the ingress's ``Retriever`` will ask for them."""
    exports = settings.data_dir / EXPORTS_FOLDER
    router = router_spec(settings, exports)
    encoders = {ROUTER: router}
    seen = {router.identity}
    for config in settings.experts:
        spec = query_spec(config, exports)
        if spec.identity not in seen:
            seen.add(spec.identity)
            encoders[f"encoder-{config.name}"] = spec
    documents = list(dict.fromkeys(document_spec(config, exports).identity for config in settings.experts))
    shards = {f"index-{j}-shard-{i}": ShardPlace(settings.data_dir / "indexes" / folder_name(identity), identity, i)
              for j, identity in enumerate(documents) for i in range(settings.index.shards)}
    return PartPlan(encoders, shards)


# ---- what the replicas of the part deployments hold -----------------------------------------------
class EncoderPart:
    """One replica of a query-encoder deployment: the model, loaded when the replica starts."""

    def __init__(self, spec: EncoderSpec) -> None:
        self.encoder = encoder(spec, "query")
        self.width = self.encoder.dimension  # loads the model: the replica is ready once it can encode

    def encode(self, texts: list[str], batch_size: int) -> np.ndarray:
        return self.encoder.encode(texts, batch_size)

    def dimension(self) -> int:
        return self.width

    def pid(self) -> int:
        """This replica's process (for tests that kill it)."""
        return os.getpid()


@dataclass(frozen=True)
class ShardInfo:
    exists: bool
    dimension: int | None
    count: int
    is_empty: bool


class ShardPart:
    """One replica of a shard deployment: that shard's committed FAISS index, loaded alone, read-only."""

    def __init__(self, place: ShardPlace, config: IndexConfig) -> None:
        self.index = open_shard(place.folder, place.encoder, config, place.shard)

    def search(self, vectors: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        return self.index.search(vectors, k)

    def describe(self) -> ShardInfo:
        index = self.index
        return ShardInfo(index.exists, index.dimension, index.count, index.is_empty)

    def ids(self) -> np.ndarray:
        return self.index.ids()

    def pid(self) -> int:
        return os.getpid()


# ---- the stand-ins the ingress's Retriever uses ------------------------------------------------------
def answer(response: Any, timeout_s: float, what: str) -> Any:
    """The result of a deployment call within ``timeout_s``; a dead, unreachable or silent replica raises
    ``UnavailableError``; an engine error raised by the part is raised as itself (a bug in it: as it is)."""
    ray = import_ray()
    serve_exceptions = import_ray("ray.serve.exceptions")
    try:
        return response.result(timeout_s=timeout_s)
    except RetrieverError as exc:  # a part's own engine error, which Ray raises as an instance of its class
        cause = getattr(exc, "cause", None)  # the error itself, its message without the remote traceback
        raise (cause if isinstance(cause, RetrieverError) else exc) from None
    except TimeoutError as exc:
        response.cancel()
        raise UnavailableError(f"{what} did not answer within {timeout_s:g} s; retry shortly") from exc
    except ray.exceptions.RayTaskError:
        raise
    except (ray.exceptions.RayError, serve_exceptions.RayServeException) as exc:
        raise UnavailableError(f"{what} is unavailable ({type(exc).__name__}); retry shortly") from exc


class RemoteEncoder(Encoder):
    """A query encoder whose model runs in a Serve deployment (its spec, identity and query map are local)."""

    def __init__(self, spec: EncoderSpec, handle: Any, timeout_s: float) -> None:
        super().__init__(spec, "query")
        self.handle = handle
        self.timeout_s = timeout_s
        self._dimension: int | None = None

    @property
    def dimension(self) -> int:
        if self._dimension is None:
            self._dimension = int(answer(self.handle.dimension.remote(), self.timeout_s, self._what))
        return self._dimension

    def encode(self, texts: list[str], batch_size: int = 32, progress: bool = False) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        return np.asarray(answer(self.handle.encode.remote(list(texts), batch_size), self.timeout_s, self._what))

    @property
    def _what(self) -> str:
        return f"the query encoder {self.identity!r}"


class RemoteIndex:
    """A document encoder's index whose shards are searched by Serve deployments (in parallel), merged here
    by score as ``ShardedIndex`` merges its own; read-only. The shards' sizes are asked once: they load the
    committed index when they start, and never change."""

    def __init__(self, encoder: str, shards: Sequence[Any], timeout_s: float) -> None:
        self.encoder = encoder
        self.shards = list(shards)
        self.timeout_s = timeout_s
        self._infos: list[ShardInfo] | None = None

    @property
    def infos(self) -> list[ShardInfo]:
        if self._infos is None:
            self._infos = self._all([shard.describe.remote() for shard in self.shards])
        return self._infos

    @property
    def exists(self) -> bool:
        return any(info.exists for info in self.infos)

    @property
    def dimension(self) -> int | None:
        return next((info.dimension for info in self.infos if info.dimension is not None), None)

    @property
    def count(self) -> int:
        return sum(info.count for info in self.infos)

    @property
    def is_empty(self) -> bool:
        return all(info.is_empty for info in self.infos)

    def ids(self) -> np.ndarray:
        parts = self._all([shard.ids.remote() for shard in self.shards])
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)

    def search(self, vectors: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        k = min(k, self.count)
        asked = [shard.search.remote(vectors, k) for shard, info in zip(self.shards, self.infos) if info.count]
        return merged(self._all(asked), len(vectors), k)

    def build(self, vectors: np.ndarray, ids: np.ndarray) -> None:
        self._refuse()

    def add(self, vectors: np.ndarray, ids: np.ndarray) -> None:
        self._refuse()

    def remove(self, ids: list[int]) -> int:
        self._refuse()

    def save(self) -> object:
        self._refuse()

    def _all(self, responses: list[Any]) -> list[Any]:
        """Every response (all asked before the first is awaited), each within the timeout."""
        return [answer(response, self.timeout_s, f"a shard of the index of {self.encoder!r}") for response in responses]

    def _refuse(self) -> NoReturn:
        raise ReadOnlyError("the index shards are Ray Serve deployments, read-only: write with `retriever build` or "
                            "a `retriever serve` without --ray, or set [ray] split = false")


class ServeParts:
    """``Parts`` whose query encoders and indexes are the handles of a split service's deployments: encoder
    handles by encoder identity, shard handles (in shard order) by document encoder identity."""

    def __init__(self, encoders: Mapping[str, Any], shards: Mapping[str, Sequence[Any]], timeout_s: float) -> None:
        self.encoders = dict(encoders)
        self.shards = {name: list(handles) for name, handles in shards.items()}
        self.timeout_s = timeout_s

    def query_encoder(self, spec: EncoderSpec) -> Encoder:
        return RemoteEncoder(spec, self.encoders[spec.identity], self.timeout_s)

    def dense_index(self, folder: Path, encoder: str, config: IndexConfig) -> DenseIndex:
        return RemoteIndex(encoder, self.shards[encoder], self.timeout_s)
