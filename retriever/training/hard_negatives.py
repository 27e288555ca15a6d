"""Hard negatives and cross-encoder margins for (query, document) training pairs: the labels of GPL (Wang et al.,
NAACL 2022) for generated queries.

For each pair, the documents that the base model and BM25 rank highest for its query (its own document aside) are
its hard negatives; a cross-encoder scores the query against its document and against each negative, and the margin
``CE(query, document) - CE(query, negative)`` is what the expert learns to reproduce (MarginMSE). A negative that is
in truth relevant gets a small or negative margin instead of being pushed away. Cross-encoder scores are cached on
disk (one line per query), so a rerun or an interrupted run scores nothing twice.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from router_retriever.core.types import Document
from router_retriever.corpus import GeneratedPair
from router_retriever.training.query_generation import append_log, bm25_top, read_log, text_hash

# The cross-encoder reads the query and the first 256 tokens of a document: half its 512, for half the time on CPU
# (ms-marco-MiniLM-L-12 int8: about 7 pairs a second on 2 busy cores at 256 tokens, 2 at 512).
CROSS_ENCODER_MAX_LENGTH = 256

Scorer = Callable[[str, list[str]], np.ndarray]  # (query, document texts) -> one relevance score per text


@dataclass(frozen=True)
class MarginTriple:
    """A query, its document, one hard negative, and the cross-encoder's score margin between the two."""

    query: str
    positive: str
    negative: str
    margin: float


def mine_negatives(pairs: Sequence[GeneratedPair], docs: Sequence[Document], query_vectors: np.ndarray,
                   document_vectors: np.ndarray, depth: int) -> list[list[str]]:
    """Each pair's hard negatives (document ids): the base model's top ``depth`` (``query_vectors`` row ``i`` is pair
    ``i``'s query, ``document_vectors`` row ``j`` document ``j``, unit vectors) and BM25's top ``depth`` for its
    query, its own document left out, taken in turn (dense first) without repeats."""
    ids = [doc.id for doc in docs]
    depth = min(depth, len(docs))
    scores = query_vectors @ document_vectors.T
    dense = np.argsort(-scores, axis=1)[:, :depth + 1]
    sparse = bm25_top([p.query for p in pairs], docs, depth + 1)
    negatives = []
    for pair, dense_row, sparse_row in zip(pairs, dense, sparse):
        lists = [[ids[j] for j in dense_row], [ids[j] for j in sparse_row if j >= 0]]
        merged = [doc_id for both in _interleave(lists) for doc_id in both]
        negatives.append(list(dict.fromkeys(d for d in merged if d != pair.doc_id))[:2 * depth])
    return negatives


def _interleave(lists: list[list[str]]) -> Iterable[list[str]]:
    for rank in range(max(map(len, lists))):
        yield [items[rank] for items in lists if rank < len(items)]


class MarginCache:
    """Cross-encoder scores of (query, documents) already computed: an append-only JSONL log keyed by the scorer's
    name, one row per query (``{"query", "doc_hashes", "scores"}``); a torn last line is ignored."""

    def __init__(self, folder: Path, scorer_name: str) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / f"{text_hash(scorer_name)[:16]}.jsonl"
        self.scores: dict[tuple[str, str], float] = {
            (row["query"], h): float(s) for row in read_log(self.path) for h, s in zip(row["doc_hashes"], row["scores"])}

    def add(self, query: str, texts: list[str], scores: np.ndarray) -> None:
        hashes = [text_hash(t) for t in texts]
        append_log(self.path, {"query": query, "doc_hashes": hashes, "scores": [round(float(s), 5) for s in scores]})
        self.scores |= {(query, h): float(s) for h, s in zip(hashes, scores)}

    def get(self, query: str, text: str) -> float | None:
        return self.scores.get((query, text_hash(text)))


def label_margins(pairs: Sequence[GeneratedPair], negatives: Sequence[Sequence[str]], docs: Sequence[Document],
                  scorer: Scorer, cache: MarginCache) -> list[MarginTriple]:
    """One triple per (pair, negative): the cross-encoder margin between the pair's document and the negative,
    scored with ``scorer`` where ``cache`` has no score yet."""
    content: Mapping[str, str] = {doc.id: doc.content for doc in docs}
    triples = []
    for pair, negative_ids in tqdm(list(zip(pairs, negatives)), desc="cross-encoder margins", unit="query"):
        texts = [content[pair.doc_id], *(content[d] for d in negative_ids)]
        missing = [t for t in dict.fromkeys(texts) if cache.get(pair.query, t) is None]
        if missing:
            cache.add(pair.query, missing, scorer(pair.query, missing))
        positive = cache.get(pair.query, texts[0])
        assert positive is not None
        for text in texts[1:]:
            score = cache.get(pair.query, text)
            assert score is not None
            triples.append(MarginTriple(pair.query, texts[0], text, positive - score))
    return triples
