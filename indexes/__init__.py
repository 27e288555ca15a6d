"""Storage: the SQLite document store, one FAISS vector index per document encoder, atomic writes.

Depends only on ``core`` (types and errors); the engine (``retriever``) depends on it.
"""

from router_retriever.indexes.data_dir import DataDirectory
from router_retriever.indexes.document_store import DocumentStore
from router_retriever.indexes.lock import WriterLock
from router_retriever.indexes.sharded_index import ShardedIndex
from router_retriever.indexes.vector_index import IndexConfig, IndexManifest, VectorIndex

__all__ = ["DataDirectory", "DocumentStore", "IndexConfig", "IndexManifest", "ShardedIndex", "VectorIndex", "WriterLock"]
