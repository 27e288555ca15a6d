"""Indexing: load a corpus into the store, build what is missing (vector indexes, BM25), add and delete.

Every write keeps the store and each document encoder's index in step: vectors are saved before the
document rows that make them reachable, so a crash leaves at most unreachable vectors, never an
unindexed document.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from router_retriever.core.types import SPARSE, Document
from router_retriever.encoding.encoders import Encoder
from router_retriever.experts import Expert
from router_retriever.indexes.data_dir import SPARSE_FOLDER, DataDirectory
from router_retriever.indexes.sharded_index import DenseIndex
from router_retriever.validation import check_unique_ids

# how a build encodes the whole store for one document encoder: in this process (``Encoder.encode``), or
# elsewhere with the same result (``router_retriever.ray.encoding``); takes the texts and the progress flag
DocumentEncoding = Callable[[Encoder, list[str], bool], np.ndarray]


class Indexer:
    """Writes documents into the data directory and every distinct document encoder's index."""

    def __init__(self, data_dir: DataDirectory, experts: Sequence[Expert], batch_size: int) -> None:
        self.data_dir = data_dir
        self.batch_size = batch_size
        unique = {e.document_encoder.identity: (e.document_encoder, e.index) for e in experts}
        self.indexes: list[tuple[Encoder, DenseIndex]] = list(unique.values())

    def missing(self) -> list[tuple[Encoder, DenseIndex]]:
        """Vector indexes that have not been built for the documents in the store."""
        return [(e, i) for e, i in self.indexes if not i.exists] if len(self.data_dir.docs) else []

    def build(self, corpus: Sequence[Document] | None, progress: bool,
              encode: DocumentEncoding | None = None) -> dict[str, int]:
        """Load ``corpus`` into an empty store, encode the store into every missing vector index (with
        ``encode``, by default in this process), build the BM25 index if it is missing, then re-index the
        documents a built index lacks (``repair``); a ``fresh`` data directory (a rebuild) re-encodes every
        index. Returns documents indexed per index (``bm25`` for BM25)."""
        encode = encode or self._encode_here
        self.data_dir.check_writable()
        self.data_dir.check_readable()
        docs = self.data_dir.docs
        if corpus is not None and not len(docs):
            corpus = list(corpus)
            check_unique_ids(corpus, "corpus")
            docs.put(corpus, docs.reserve_ids(len(corpus)))
        built = {}
        rebuild = self.data_dir.fresh  # every index opened empty: each replaces its files when saved
        missing = self.indexes if rebuild and len(docs) else self.missing()
        sparse = self.data_dir.sparse
        sparse_missing = bool(len(docs)) and (rebuild or not sparse.exists)
        if missing or sparse_missing:
            chunks = list(docs.iter_documents())  # read the store once for every missing index
            texts = [d.content for _, batch in chunks for d in batch]
            iids = np.asarray([i for ids, _ in chunks for i in ids])
            for encoder, index in missing:
                index.build(encode(encoder, texts, progress), iids)
                index.save()
                built[encoder.identity] = len(iids)
            if sparse_missing:
                sparse.build(iids, texts)
                sparse.save()
                built[SPARSE] = len(iids)
        if rebuild:
            self.data_dir.remove_orphans()  # the replaced files, and the manifest of a layout no longer used
        self.data_dir.fresh = False
        for name, count in self.repair(progress).items():
            built[name] = built.get(name, 0) + count
        return built

    def _encode_here(self, encoder: Encoder, texts: list[str], progress: bool) -> np.ndarray:
        return encoder.encode(texts, self.batch_size, progress)

    def repair(self, progress: bool = False) -> dict[str, int]:
        """Re-encode only the stored documents that a built index lacks (see ``router_retriever.indexes.consistency``) and
        save that index; returns documents encoded per document encoder (empty when all agree)."""
        self.data_dir.check_writable()
        self.data_dir.check_readable()
        repaired: dict[str, int] = {}
        with self.data_dir.write_lock:
            gaps = self.data_dir.gaps()
            for encoder, index in self.indexes:
                gap = gaps.get(encoder.identity)
                if gap is None or gap.consistent:
                    continue
                found = self.data_dir.docs.fetch(gap.missing.tolist())
                iids = [i for i in gap.missing.tolist() if i in found]
                index.add(encoder.encode([found[i].content for i in iids], self.batch_size, progress), np.asarray(iids))
                index.save()
                repaired[encoder.identity] = len(iids)
            gap = gaps.get(SPARSE_FOLDER)
            if gap is not None and not gap.consistent:
                found = self.data_dir.docs.fetch(gap.missing.tolist())
                iids = [i for i in gap.missing.tolist() if i in found]
                self.data_dir.sparse.add(np.asarray(iids), [found[i].content for i in iids])
                self.data_dir.sparse.save()
                repaired[SPARSE] = len(iids)
        return repaired

    def add(self, docs: Sequence[Document], progress: bool = False) -> int:
        """Add or replace valid documents in the store and every index, persisted before returning."""
        store = self.data_dir.docs
        self.data_dir.check_writable()
        with self.data_dir.write_lock:
            iids = store.reserve_ids(len(docs))
            texts = [d.content for d in docs]
            for encoder, index in self.indexes:
                index.add(encoder.encode(texts, self.batch_size, progress), np.asarray(iids))
                index.save()  # indexes first: a crash now leaves stale entries, never an unindexed document
            self.data_dir.sparse.add(np.asarray(iids), texts)
            self.data_dir.sparse.save()
            replaced = store.put(docs, iids)
            for _, index in self.indexes:
                index.remove(replaced)
            self.data_dir.sparse.remove(replaced)  # stale until saved: the store join drops them meanwhile
        return len(docs)

    def delete(self, ids: Sequence[str]) -> list[str]:
        """Delete documents by id; returns the ids that were found and deleted."""
        store = self.data_dir.docs
        self.data_dir.check_writable()
        with self.data_dir.write_lock:
            found = store.internal_ids(ids)
            store.delete(list(found))
            for _, index in self.indexes:
                if index.remove(list(found.values())):
                    index.save()
            if self.data_dir.sparse.remove(list(found.values())):
                self.data_dir.sparse.save()
        return list(found)
