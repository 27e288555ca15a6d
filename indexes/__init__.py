"""FAISS index store: one index per document encoder, a SQLite document store, atomic persistence."""

from indexes.document_store import DocumentStore
from indexes.vector_index import IndexManifest, VectorIndex

__all__ = ["DocumentStore", "IndexManifest", "VectorIndex"]
