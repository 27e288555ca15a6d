"""Storage: the SQLite document store, one FAISS vector index per document encoder, atomic writes.

Depends only on ``core`` (types and errors); the engine (``retriever``) depends on it.
"""

from indexes.data_dir import DataDirectory
from indexes.document_store import DocumentStore
from indexes.lock import WriterLock
from indexes.sharded_index import ShardedIndex
from indexes.vector_index import IndexConfig, IndexManifest, VectorIndex

__all__ = ["DataDirectory", "DocumentStore", "IndexConfig", "IndexManifest", "ShardedIndex", "VectorIndex", "WriterLock"]
