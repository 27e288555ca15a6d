"""Experts: a named domain embedding model with its query encoder, document encoder and index."""

from __future__ import annotations

from dataclasses import dataclass

from indexes.data_dir import DataDirectory
from indexes.vector_index import VectorIndex
from retriever.config import ExpertConfig
from retriever.encoders import Encoder, EncoderSpec, check_available, encoder


@dataclass(frozen=True)
class Expert:
    """One domain expert. The query encoder may carry a LoRA adapter; the document encoder (and so the
    index) is shared with every expert built on the same document model. Models load on first use."""

    name: str
    description: str
    query_encoder: Encoder
    document_encoder: Encoder
    index: VectorIndex

    @classmethod
    def from_config(cls, config: ExpertConfig, data_dir: DataDirectory) -> Expert:
        check_available(query_spec(config))
        check_available(document_spec(config))
        documents = encoder(document_spec(config), "document")
        return cls(config.name, config.description, encoder(query_spec(config), "query"), documents,
                   data_dir.index_for(documents.identity))


def query_spec(config: ExpertConfig) -> EncoderSpec:
    """The query encoder of an expert: its model, adapter, query prefix and truncation."""
    return EncoderSpec(config.model, config.adapter, config.query_prefix, config.max_seq_length, config.backend, config.pooling)


def document_spec(config: ExpertConfig) -> EncoderSpec:
    """The document encoder of an expert: its document model (default: its model) without adapter, on the
    expert's backend."""
    return EncoderSpec(config.document_model or config.model, None, config.document_prefix, config.max_seq_length,
                       config.backend, config.pooling)
