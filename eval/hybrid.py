"""The evaluation's own variants of hybrid search beside the engine's (``router_retriever.eval.engine``): the engine's BM25 (bm25s)
fused with the engine's routed dense list by RRF, a weighted fusion whose weight is chosen on training queries
only, and a router among retrievers (BM25 / routed dense / hybrid per query).

Training data for the choices: the collections' training splits (SciFact train), where the routed dense
list of a training query is its domain's best expert's list (the domain pilot router's choice); collections
without a training split are cross-fitted by `route_all`'s folds (each query routed by a router that never
saw it).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import partial

import numpy as np

from router_retriever.core.types import SPARSE
from router_retriever.eval.protocol import EvalCollection, route_all
from router_retriever.eval.routers import KnnRouter
from router_retriever.eval.runs import ExpertTable, Run
from router_retriever.metrics import HEADLINE, evaluate
from router_retriever.routing.fusion import RRF_K, reciprocal_rank_fusion, weighted_fusion

WEIGHTS = tuple(round(0.1 * i, 1) for i in range(1, 10))
RETRIEVERS = (SPARSE, "dense", "hybrid")


@dataclass(frozen=True)
class FusionChoice:
    """The fusion chosen on training queries and the training nDCG@10 of every candidate."""

    method: str  # "rrf" or "weighted"
    dense_weight: float | None
    training_ndcg: dict[str, float]
    training_queries: int


def ranked(run: dict[str, float]) -> list[tuple[str, float]]:
    return sorted(run.items(), key=lambda kv: (-kv[1], kv[0]))


def rrf(lists: list[dict[str, float]], top_k: int) -> dict[str, float]:
    """RRF (k = the engine's) of per-query runs, cut to ``top_k``."""
    fused = reciprocal_rank_fusion({str(i): [d for d, _ in ranked(r)] for i, r in enumerate(lists)}, RRF_K)
    return {doc: score for doc, score, _ in fused[:top_k]}


def weighted(dense: dict[str, float], sparse: dict[str, float], weight: float, top_k: int) -> dict[str, float]:
    """The engine's weighted fusion: ``weight`` * dense + (1 - weight) * BM25, min-max normalised."""
    fused = weighted_fusion({"dense": ranked(dense), SPARSE: ranked(sparse)}, {"dense": weight, SPARSE: 1 - weight})
    return {doc: score for doc, score, _ in fused[:top_k]}


def _training_runs(c: EvalCollection, dense_expert: str) -> tuple[Run, Run] | None:
    """(dense, BM25) runs of a collection's training queries, or None without a training split. The dense run
    is ``dense_expert``'s (the router's own model): an expert trained on these very queries would score them
    in-sample and so favour dense."""
    if c.train_table is None or c.train_sparse is None:
        return None
    return c.train_table.runs[dense_expert], c.train_sparse


def choose_fusion(collections: list[EvalCollection], top_k: int, dense_expert: str) -> FusionChoice | None:
    """RRF or weighted fusion (and its weight), whichever scores best on the training queries with
    ``dense_expert``'s dense runs (None when no collection has a training split)."""
    parts = [(c, runs) for c in collections if (runs := _training_runs(c, dense_expert)) is not None]
    if not parts:
        return None
    candidates: dict[str, float] = {}
    queries = [(c.train_table.qids, c.train.qrels) for c, _ in parts if c.train_table and c.train]

    def mean_ndcg(fuse: Callable[[dict[str, float], dict[str, float]], dict[str, float]]) -> float:
        scores = []
        for (qids, qrels), (_, (dense, sparse)) in zip(queries, parts):
            run = {q: fuse(dense.get(q, {}), sparse.get(q, {})) for q in qids}
            scores.append(evaluate(run, qrels).mean[HEADLINE])
        return float(np.mean(scores))

    candidates["rrf"] = mean_ndcg(lambda d, s: rrf([s, d], top_k))
    for w in WEIGHTS:
        candidates[f"weighted {w}"] = mean_ndcg(partial(weighted, weight=w, top_k=top_k))
    best = max(candidates, key=lambda k: (candidates[k], k == "rrf"))
    weight = float(best.split()[1]) if best != "rrf" else None
    return FusionChoice("rrf" if weight is None else "weighted", weight, candidates, sum(len(q) for q, _ in queries))


def retriever_table(name: str, split: str, qids: list[str], vectors: np.ndarray, runs: dict[str, Run],
                    qrels: dict[str, dict[str, int]]) -> ExpertTable:
    """A routing table whose columns are retrievers (BM25, routed dense, hybrid) instead of experts."""
    per_query = {r: evaluate({q: runs[r].get(q, {}) for q in qids}, qrels).per_query for r in RETRIEVERS}
    return ExpertTable(name, split, qids, list(RETRIEVERS), runs, per_query, vectors)


def route_retrievers(collections: list[EvalCollection], test_runs: dict[str, dict[str, Run]], top_k: int,
                     folds: int, dense_expert: str) -> tuple[dict[str, list[str]], dict[str, object]]:
    """Per test query, the retriever (BM25 / dense / hybrid) a kNN router picks, fitted on training queries
    and cross-fitted folds; returns the choices per collection and the router's description."""
    tables = []
    for c in collections:
        test = retriever_table(c.name, "test", c.table.qids, c.table.vectors, test_runs[c.name], c.test.qrels)
        train = None
        training = _training_runs(c, dense_expert)
        if training is not None and c.train is not None and c.train_table is not None:
            dense, sparse = training
            runs = {SPARSE: sparse, "dense": dense,
                    "hybrid": {q: rrf([sparse.get(q, {}), dense.get(q, {})], top_k) for q in c.train_table.qids}}
            train = retriever_table(c.name, "train", c.train_table.qids, c.train_table.vectors, runs, c.train.qrels)
        tables.append(replace(c, table=test, train_table=train))
    router = KnnRouter()
    router.name, router.label = "retriever-knn", "retriever router (kNN: BM25 / routed dense / hybrid)"
    scores, _, fitted = route_all([router], tables, folds)
    choices = {t.name: [RETRIEVERS[j] for j in scores[router.name][t.name].argmax(axis=1)] for t in tables}
    return choices, fitted["descriptions"][router.name]

