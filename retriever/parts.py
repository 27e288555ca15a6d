"""Where a retriever's parts run: its query encoders (the router's base encoder included) and its vector
indexes. ``LocalParts`` (the default) loads them into this process; another ``Parts`` may hand the engine
stand-ins that run them elsewhere (``router_retriever.service.ray_serve``: Ray Serve deployments) behind the same methods, so
the data path (router -> chosen expert's query encoder -> its index, shards merged -> fusion -> hits) and
the engine's code are the same either way."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from router_retriever.encoding.encoders import Encoder, EncoderSpec, encoder
from router_retriever.indexes.sharded_index import DenseIndex, open_index
from router_retriever.indexes.vector_index import IndexConfig


class Parts(Protocol):
    """Provides a retriever's query encoders and vector indexes."""

    def query_encoder(self, spec: EncoderSpec) -> Encoder:
        """The query encoder of ``spec`` (``encode`` gives its vectors, query map applied)."""
        ...

    def dense_index(self, folder: Path, encoder: str, config: IndexConfig) -> DenseIndex:
        """The vector index of document encoder ``encoder``, kept in ``folder`` (``router_retriever.indexes.data_dir.IndexOpener``)."""
        ...


class LocalParts:
    """Everything in this process: the shared encoder objects, indexes loaded from the data directory."""

    def query_encoder(self, spec: EncoderSpec) -> Encoder:
        return encoder(spec, "query")

    def dense_index(self, folder: Path, encoder: str, config: IndexConfig) -> DenseIndex:
        return open_index(folder, encoder, config)
