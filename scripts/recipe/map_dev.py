"""Dev sweep of the linear query-map recipe over bge-small, scored on SciFact TRAIN queries only.

Two questions, neither reading a test split:
- corpus-only: a map trained on pseudo-queries of SciFact's corpus, scored on all 809 train queries;
- supervised: a map trained on half of the train queries' qrels pairs, scored on the other half (2 folds:
  alternate queries, or, with --folds document-disjoint, no relevant document shared across the folds).
Each configuration (lr, steps, scale, shrink) appends one JSON line to the log. bge's SciFact document vectors
come from the evaluation's own index (runs/eval/corpora/scifact-*), query vectors from the training cache.
Usage: map_dev.py [--log scripts/recipe/map-dev.jsonl]
"""

from __future__ import annotations

import argparse
import itertools
import json
import sqlite3
import sys
from pathlib import Path

import faiss
import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
import devkit

from router_retriever.config import load_settings
from router_retriever.corpus import read_qrels, read_queries
from router_retriever.encoding.encoders import encoder
from router_retriever.encoding.query_map import QueryMap, load_query_map
from router_retriever.eval.significance import paired_randomization_test
from router_retriever.experts import query_spec
from router_retriever.indexes.data_dir import EXPORTS_FOLDER
from router_retriever.metrics import evaluate
from router_retriever.training.trainer import (
    TrainingOptions,
    TrainingPair,
    encode_cached,
    pairs_from_qrels,
    pseudo_query_pairs,
    train_query_map,
)

ROOT = Path(__file__).resolve().parents[2]
SHRINK = [0.25, 0.5, 1.0]


def bge_documents() -> tuple[list[str], np.ndarray]:
    """(doc ids, bge document vectors) of SciFact, read back from the evaluation's flat bge index."""
    folder = next((ROOT / "runs/eval/corpora").glob("scifact-*"))
    index = faiss.read_index(str(next((folder / "indexes").glob("vectrixdb-*/index-*.faiss"))))  # owns the index
    assert isinstance(index, faiss.IndexIDMap)
    iids = faiss.vector_to_array(index.id_map)
    vectors = faiss.downcast_index(index.index).reconstruct_n(0, index.ntotal)
    with sqlite3.connect(folder / "docs.sqlite") as db:
        ids = dict(db.execute("SELECT iid, id FROM docs"))
    return [ids[int(i)] for i in iids], vectors


def search(queries: np.ndarray, qids: list[str], doc_ids: list[str], doc_emb: np.ndarray,
           k: int = 100) -> dict[str, dict[str, float]]:
    scores = queries @ doc_emb.T
    top = np.argpartition(-scores, k, axis=1)[:, :k]
    return {q: {doc_ids[j]: float(scores[r, j]) for j in top[r]} for r, q in enumerate(qids)}


def ndcg(run: dict[str, dict[str, float]], qrels: dict) -> dict[str, float]:
    return {q: v["nDCG@10"] for q, v in evaluate(run, qrels).per_query.items()}


def shrunk(query_map: QueryMap, alpha: float) -> QueryMap:
    return QueryMap(alpha * query_map.delta)


def sweep(tag: str, grid: dict[str, list[float]], pairs: list[TrainingPair], query_vectors: dict, document_vectors: dict,
          dev_q: np.ndarray, dev_ids: list[str], qrels: dict, doc_ids: list[str], doc_emb: np.ndarray,
          log: Path) -> None:
    base = ndcg(search(dev_q, dev_ids, doc_ids, doc_emb), qrels)
    qids = sorted(base)
    for lr, steps, scale in itertools.product(grid["lr"], grid["steps"], grid["scale"]):
        out = Path("/tmp/map-dev") / tag
        report = train_query_map("bge", pairs, query_vectors, document_vectors, out,
                                 TrainingOptions(lr=lr, epochs=1000, max_steps=int(steps), scale=scale))
        learnt = load_query_map(str(out))
        for alpha in SHRINK:
            mapped = ndcg(search(shrunk(learnt, alpha).apply(dev_q), dev_ids, doc_ids, doc_emb), qrels)
            a, b = [mapped[q] for q in qids], [base[q] for q in qids]
            row = {"tag": tag, "lr": lr, "steps": steps, "scale": scale, "shrink": alpha, "pairs": len(pairs),
                   "queries": len(qids), "base": round(100 * np.mean(b), 2), "map": round(100 * np.mean(a), 2),
                   "delta": round(100 * (np.mean(a) - np.mean(b)), 2),
                   "p": paired_randomization_test(a, b, resamples=2000), "train_s": report.wall_time_s}
            print(json.dumps(row), flush=True)
            with log.open("a") as f:
                f.write(json.dumps(row) + "\n")


def document_disjoint_folds(qrels: dict[str, dict[str, int]], qids: list[str]) -> dict[str, int]:
    """Two folds of the queries such that no relevant document is shared across folds (queries linked by a
    shared relevant document stay together): a held-out query's documents were never a training target."""
    parent = {q: q for q in qids}

    def root(q: str) -> str:
        while parent[q] != q:
            parent[q] = parent[parent[q]]
            q = parent[q]
        return q

    owner: dict[str, str] = {}
    for q in qids:
        for d in qrels[q]:
            if d in owner:
                parent[root(q)] = root(owner[d])
            owner.setdefault(d, q)
    fold = {group: i % 2 for i, group in enumerate(sorted({root(q) for q in qids}))}
    return {q: fold[root(q)] for q in qids}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--log", type=Path, default=Path(__file__).parent / "map-dev.jsonl")
    parser.add_argument("--only", choices=["corpus", "supervised"])
    parser.add_argument("--folds", choices=["random", "document-disjoint"], default="random",
                        help="supervised: alternate queries, or keep queries sharing a relevant document together")
    parser.add_argument("--lr", type=float, nargs="+", default=[3e-5, 1e-4, 3e-4])
    parser.add_argument("--steps", type=int, nargs="+", default=[30, 100, 300])
    parser.add_argument("--scale", type=float, nargs="+", default=[20.0, 50.0])
    args = parser.parse_args()
    grid = {"lr": args.lr, "steps": args.steps, "scale": args.scale}
    config = load_settings(ROOT / "configs/beir5.toml")
    bge = config.expert("bge")
    exports, cache = config.data_dir / EXPORTS_FOLDER, config.data_dir / "cache" / "vectors"
    query_encoder = encoder(query_spec(bge, exports), "query")
    doc_ids, doc_emb = bge_documents()
    by_id = dict(zip(doc_ids, doc_emb))
    docs = devkit.corpus("scifact")
    document_vectors = {d.content: by_id[d.id] for d in docs}
    folder = devkit.BEIR / "scifact"
    qrels = read_qrels(folder, "train")
    queries = {q: t for q, t in read_queries(folder, "train").items() if q in qrels}
    dev_ids = sorted(queries)
    query_vectors = encode_cached(query_encoder, [queries[q] for q in dev_ids], cache)
    dev_q = np.stack([query_vectors[queries[q]] for q in dev_ids])
    if args.only in (None, "corpus"):
        pairs = pseudo_query_pairs(docs, kind="sentences", per_doc=3)
        pseudo = encode_cached(query_encoder, [p.query for p in pairs], cache)
        sweep("corpus-sentences3", grid, pairs, pseudo, document_vectors, dev_q, dev_ids, qrels, doc_ids, doc_emb, args.log)
    if args.only in (None, "supervised"):
        contents = {d.id: d.content for d in docs}
        folds = (document_disjoint_folds(qrels, dev_ids) if args.folds == "document-disjoint"
                 else {q: i % 2 for i, q in enumerate(dev_ids)})
        for fold in (0, 1):
            fit = {q: queries[q] for q in dev_ids if folds[q] != fold}
            held = [q for q in dev_ids if folds[q] == fold]
            pairs = pairs_from_qrels(fit, {q: qrels[q] for q in fit}, contents)
            held_q = np.stack([query_vectors[queries[q]] for q in held])
            sweep(f"supervised-{args.folds}-fold{fold}", grid, pairs, query_vectors, document_vectors, held_q, held,
                  {q: qrels[q] for q in held}, doc_ids, doc_emb, args.log)


if __name__ == "__main__":
    main()
