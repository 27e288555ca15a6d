"""The consistency filter's k (router_retriever.training.query_generation.CONSISTENCY_K), chosen on SciFact TRAIN queries only:
the smallest k at which the engine's BM25 ranks a relevant document in the top k for CONSISTENCY_SHARE of them.

    python scripts/generate/choose_k.py [../shared/data/beir/scifact]
"""

from __future__ import annotations

import sys
from pathlib import Path

from router_retriever.corpus import read_corpus, read_qrels, read_queries
from router_retriever.training.query_generation import CONSISTENCY_SHARE, bm25_ranks, smallest_k

DEPTH = 100
SCIFACT = Path(__file__).resolve().parents[3] / "shared" / "data" / "beir" / "scifact"


def main(root: Path) -> None:
    docs = read_corpus(root)
    queries, qrels = read_queries(root, "train"), read_qrels(root, "train")
    relevant = [{d for d, grade in qrels[qid].items() if grade > 0} for qid in queries]
    ranks = bm25_ranks(list(queries.values()), relevant, docs, DEPTH)
    for k in (1, 3, 5, 6, 7, 10, 20, 100):
        print(f"k {k:3d}: {sum(r <= k for r in ranks) / len(ranks):.1%} of {len(ranks)} train queries")
    print(f"smallest k for {CONSISTENCY_SHARE:.0%}: {smallest_k(ranks, CONSISTENCY_SHARE)}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else SCIFACT)
