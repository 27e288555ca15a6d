"""Searching: one retriever's ranked lists (an expert's vector index, or BM25), joined with the document
store, and their fusion into hits with per-hit provenance.

Deleted or replaced documents may still have index entries (HNSW cannot remove vectors): such ids are
dropped here, and the search reaches deeper until ``k`` live hits are found or the index is exhausted.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

import numpy as np

from router_retriever.core.errors import IndexNotBuiltError
from router_retriever.core.types import SPARSE, Document, Hit, Provenance
from router_retriever.experts import Expert
from router_retriever.indexes.data_dir import DataDirectory
from router_retriever.routing.fusion import Fusion, fuse

Ranked = list[tuple[Document, float]]
FILTER_DEPTH = 8  # with metadata filters, first fetch this many times k candidates


class Index(Protocol):
    """What the searcher needs of a vector or BM25 index."""

    @property
    def count(self) -> int: ...

    @property
    def is_empty(self) -> bool: ...

    def search(self, queries: Any, k: int) -> tuple[np.ndarray, np.ndarray]: ...


class Searcher:
    """Top-k live documents of one retriever, per query."""

    def __init__(self, data_dir: DataDirectory) -> None:
        self.data_dir = data_dir

    def dense(self, expert: Expert, vectors: np.ndarray, k: int, filters: Mapping[str, Any]) -> list[Ranked]:
        """Per query vector, up to ``k`` (document, score) pairs of ``expert``'s index, best first."""
        return self._ranked(expert.index, vectors, k, filters, f"the index of expert {expert.name!r}")

    def sparse(self, queries: list[str], k: int, filters: Mapping[str, Any]) -> list[Ranked]:
        """Per query, up to ``k`` (document, BM25 score) pairs, best first."""
        return self._ranked(self.data_dir.sparse, queries, k, filters, "the BM25 index")

    def _ranked(self, index: Index, inputs: Any, k: int, filters: Mapping[str, Any], what: str) -> list[Ranked]:
        docs = self.data_dir.docs
        if index.is_empty and len(docs):
            raise IndexNotBuiltError(f"{what} is not built: run `retriever build`")
        stale = max(0, index.count - len(docs))  # entries whose document is gone (deleted, replaced, uncommitted)
        depth = (k + stale) * (FILTER_DEPTH if filters else 1)
        while True:
            scores, ids = index.search(inputs, depth)
            found = docs.fetch(sorted({int(i) for i in ids.ravel() if i >= 0}))
            lists = [
                [(found[int(i)], float(s)) for s, i in zip(row_s, row_i)
                 if int(i) in found and matches(found[int(i)], filters)][:k]
                for row_s, row_i in zip(scores, ids)
            ]
            if depth >= index.count or all(len(hits) >= k for hits in lists):
                return lists
            depth *= 4


def fused(lists: Mapping[str, Ranked], method: Fusion, rrf_k: int, weights: Mapping[str, float] | None = None) -> Ranked:
    """One list from several retrievers' lists (a single list is returned as it is)."""
    if len(lists) == 1:
        return next(iter(lists.values()))
    docs = {doc.id: doc for ranked in lists.values() for doc, _ in ranked}
    merged = fuse({name: [(doc.id, score) for doc, score in ranked] for name, ranked in lists.items()},
                  method, rrf_k, weights)
    return [(docs[doc_id], score) for doc_id, score, _ in merged]


def hits(ranked: Ranked, sources: Mapping[str, Ranked], top_k: int) -> list[Hit]:
    """The first ``top_k`` of ``ranked`` as hits; each hit's provenance lists every source list that holds
    it (rank and score there) and ``expert`` names the source that ranked it best."""
    positions = {name: {doc.id: (rank, score) for rank, (doc, score) in enumerate(lst, 1)} for name, lst in sources.items()}
    out = []
    for doc, score in ranked[:top_k]:
        provenance = tuple(Provenance(name, *where[doc.id]) for name, where in positions.items() if doc.id in where)
        best = min(provenance, key=lambda p: (p.rank, p.retriever != SPARSE)).retriever if provenance else SPARSE
        out.append(Hit(id=doc.id, score=score, expert=best, title=doc.title, text=doc.text, metadata=doc.metadata,
                       provenance=provenance))
    return out


def matches(doc: Document, filters: Mapping[str, Any]) -> bool:
    """Metadata equality filters; a list value means 'any of'."""
    for key, wanted in filters.items():
        value = doc.metadata.get(key)
        if value not in wanted if isinstance(wanted, list) else value != wanted:
            return False
    return True

