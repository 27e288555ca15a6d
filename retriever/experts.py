"""Experts: a named domain embedding model with its query encoder, document encoder and index."""

from __future__ import annotations

from dataclasses import dataclass

from indexes.data_dir import DataDirectory
from indexes.vector_index import VectorIndex
from retriever.config import ExpertConfig
from retriever.encoders import Encoder, EncoderSpec, get_encoder


@dataclass(frozen=True)
class Expert:
    """One domain expert. The query encoder may carry a LoRA adapter; the document encoder (and so the
    index) is shared with every expert built on the same document model."""

    name: str
    description: str
    query_encoder: Encoder
    document_encoder: Encoder
    index: VectorIndex

    @classmethod
    def from_config(cls, config: ExpertConfig, store: DataDirectory) -> Expert:
        query, document = get_encoder(query_spec(config)), get_encoder(document_spec(config))
        return cls(config.name, config.description, query, document,
                   store.index_for(document.identity, document.dimension))

    def describe(self) -> dict[str, object]:
        return {
            "name": self.name,
            "description": self.description,
            "query_encoder": self.query_encoder.identity,
            "document_encoder": self.document_encoder.identity,
            "dimension": self.document_encoder.dimension,
            "index_documents": self.index.count,
        }


def query_spec(config: ExpertConfig) -> EncoderSpec:
    """The query encoder of an expert: its model, adapter, query prefix and truncation."""
    return EncoderSpec(config.model, config.adapter, config.query_prefix, config.max_seq_length)


def document_spec(config: ExpertConfig) -> EncoderSpec:
    """The document encoder of an expert: its document model (default: its model) without adapter."""
    return EncoderSpec(config.document_model or config.model, None, config.document_prefix, config.max_seq_length)
