"""Experts: a named domain embedding model with its query encoder, document encoder and index."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from router_retriever.config import ExpertConfig, Settings
from router_retriever.encoding.encoders import Encoder, EncoderSpec, check_available, encoder
from router_retriever.indexes.data_dir import DataDirectory
from router_retriever.indexes.sharded_index import DenseIndex
from router_retriever.parts import LocalParts, Parts


@dataclass(frozen=True)
class Expert:
    """One domain expert. The query encoder may carry a LoRA adapter; the document encoder (and so the
    index) is shared with every expert built on the same document model. Models load on first use.

    Both sides run on the expert's backend and quantization, so query vectors only ever meet document vectors
    of the same runtime: an onnx or int8 document encoder has its own identity, hence its own index, and a
    LoRA expert's query export differs from its document export by the adapter alone."""

    name: str
    description: str
    query_encoder: Encoder
    document_encoder: Encoder
    index: DenseIndex

    @classmethod
    def from_config(cls, config: ExpertConfig, data_dir: DataDirectory, parts: Parts | None = None) -> Expert:
        """The expert of ``config`` over ``data_dir``'s index of its document encoder, its query encoder from
        ``parts`` (default: this process's)."""
        queries, documents = query_spec(config, data_dir.exports), document_spec(config, data_dir.exports)
        check_available(queries)
        check_available(documents)
        document_encoder = encoder(documents, "document")
        return cls(config.name, config.description, (parts or LocalParts()).query_encoder(queries), document_encoder,
                   data_dir.index_for(document_encoder.identity))


def router_spec(settings: Settings, export_dir: Path | None = None) -> EncoderSpec:
    """The router's base encoder: ``[router] model`` (torch, on the first expert's device), ``[router] expert``'s
    query encoder without its query map, or by default the first expert's model with its backend, pooling,
    quantization (an export kept in ``export_dir``), device and providers, without adapter or prefix."""
    first = settings.experts[0]
    if settings.router.model:
        return EncoderSpec(settings.router.model, device=first.device)
    if settings.router.expert:
        return replace(query_spec(settings.expert(settings.router.expert), export_dir), query_map=None)
    return EncoderSpec(first.model, max_seq_length=first.max_seq_length if first.backend == "onnx" else None,
                       backend=first.backend, pooling=first.pooling, quantize=first.quantize, export_dir=export_dir,
                       device=first.device, providers=tuple(first.providers))


def router_identity(settings: Settings) -> str:
    """The identity of the router's base encoder (what its pilot vectors and cached query vectors are keyed by)."""
    return router_spec(settings).identity


def query_spec(config: ExpertConfig, export_dir: Path | None = None) -> EncoderSpec:
    """The query encoder of an expert: its model, adapter, query prefix, truncation and query map, on its
    backend (a torch model on the onnx backend is exported into ``export_dir``)."""
    return EncoderSpec(config.model, config.adapter, config.query_prefix, config.max_seq_length, config.backend,
                       config.pooling, config.quantize, export_dir, config.query_map, config.device,
                       tuple(config.providers))


def document_spec(config: ExpertConfig, export_dir: Path | None = None) -> EncoderSpec:
    """The document encoder of an expert: its document model (default: its model) without adapter, on the
    expert's backend and quantization."""
    return EncoderSpec(config.document_model or config.model, None, config.document_prefix, config.max_seq_length,
                       config.backend, config.pooling, config.quantize, export_dir, device=config.device,
                       providers=tuple(config.providers))
