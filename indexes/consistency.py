"""Does an index hold exactly the documents of the store? The comparison behind ``/ready``, the CLI's
warnings and the repair that re-encodes only what is missing.

Any index keyed by the store's int64 ids can be compared (``KeyedIndex``: the vector indexes today, a
sparse index the same way): an index *lacks* a document whose id is in the store but not in the index
(stored, never findable: what two writers on one directory used to cause), and holds a *stale* entry
whose document is gone (deleted or replaced where the index kind cannot remove, or written just before a
crash: harmless, searches drop it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np


class KeyedIndex(Protocol):
    """An index of the store's documents by their int64 ids."""

    @property
    def count(self) -> int: ...

    def ids(self) -> np.ndarray:
        """Every id the index holds an entry for (int64)."""
        ...


@dataclass(frozen=True)
class IndexGap:
    """How one index differs from the store."""

    name: str
    documents: int  # documents in the store
    entries: int  # entries in the index (stale ones included)
    missing: np.ndarray  # store ids the index has no entry for
    stale: np.ndarray  # index ids whose document is not in the store

    @property
    def consistent(self) -> bool:
        """Every stored document can be found through this index (stale entries are harmless)."""
        return not len(self.missing)

    def describe(self) -> str:
        text = f"index {self.name} holds {self.entries} entries for {self.documents} documents in the store"
        if len(self.missing):
            text += f": {len(self.missing)} stored documents are missing from it"
        if len(self.stale):
            text += f"{',' if len(self.missing) else ':'} {len(self.stale)} entries belong to removed documents"
        return text


def compare(name: str, store_ids: np.ndarray, index: KeyedIndex) -> IndexGap:
    """The gap between the store's ids and what ``index`` holds."""
    held = np.unique(index.ids().astype(np.int64))
    store = np.unique(np.asarray(store_ids, dtype=np.int64))
    return IndexGap(name=name, documents=len(store), entries=index.count,
                    missing=np.setdiff1d(store, held, assume_unique=True),
                    stale=np.setdiff1d(held, store, assume_unique=True))
