"""Searching: query vectors -> one expert's index -> live documents from the store -> hits.

Deleted or replaced documents may still have vectors (HNSW cannot remove them): such ids are dropped
here, and the search reaches deeper until ``k`` live hits are found or the index is exhausted. Lists of
several experts are fused by reciprocal rank, each hit keeping the expert that ranked it best.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from core.errors import IndexNotBuiltError
from core.types import Document, Hit
from indexes.data_dir import DataDirectory
from retriever.experts import Expert
from retriever.fusion import reciprocal_rank_fusion

Ranked = list[tuple[Document, float]]
FILTER_DEPTH = 8  # with metadata filters, first fetch this many times k candidates


class Searcher:
    """Top-k live documents of an expert's index for query vectors."""

    def __init__(self, data_dir: DataDirectory) -> None:
        self.data_dir = data_dir

    def search(self, expert: Expert, vectors: np.ndarray, k: int, filters: Mapping[str, Any]) -> list[Ranked]:
        """Per query vector, up to ``k`` (document, score) pairs, best first, that pass ``filters``."""
        index, docs = expert.index, self.data_dir.docs
        if index.is_empty and len(docs):
            raise IndexNotBuiltError(f"the index of expert {expert.name!r} is not built: run `retriever build`")
        depth = (k + self.data_dir.stale_count(index)) * (FILTER_DEPTH if filters else 1)
        while True:
            scores, ids = index.search(vectors, depth)
            found = docs.fetch(sorted({int(i) for i in ids.ravel() if i >= 0}))
            lists = [
                [(found[int(i)], float(s)) for s, i in zip(row_s, row_i)
                 if int(i) in found and matches(found[int(i)], filters)][:k]
                for row_s, row_i in zip(scores, ids)
            ]
            if depth >= index.count or all(len(hits) >= k for hits in lists):
                return lists
            depth *= 4


def hits(lists: Mapping[str, Ranked], top_k: int) -> list[Hit]:
    """One expert's list as hits, or several fused by reciprocal rank (provenance: best-ranked expert)."""
    if len(lists) == 1:
        name, ranked = next(iter(lists.items()))
        return [_hit(doc, score, name) for doc, score in ranked]
    fused = reciprocal_rank_fusion({name: [doc.id for doc, _ in ranked] for name, ranked in lists.items()})
    docs = {doc.id: doc for ranked in lists.values() for doc, _ in ranked}
    return [_hit(docs[doc_id], score, source) for doc_id, score, source in fused[:top_k]]


def matches(doc: Document, filters: Mapping[str, Any]) -> bool:
    """Metadata equality filters; a list value means 'any of'."""
    for key, wanted in filters.items():
        value = doc.metadata.get(key)
        if value not in wanted if isinstance(wanted, list) else value != wanted:
            return False
    return True


def _hit(doc: Document, score: float, expert: str) -> Hit:
    return Hit(id=doc.id, score=score, expert=expert, title=doc.title, text=doc.text, metadata=doc.metadata)
