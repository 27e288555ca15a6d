"""FAISS index store: one index per document encoder, a SQLite document store, atomic persistence."""

from indexes.document_store import DocumentStore
from indexes.expert_index import ExpertIndex, IndexManifest

__all__ = ["DocumentStore", "ExpertIndex", "IndexManifest"]
