"""The evaluation protocol's data: each collection with its cached expert tables, and the routers'
cross-fitting (fitted on training splits, or on the other folds of a collection without one)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from router_retriever.config import Settings
from router_retriever.eval.datasets import Collection, load_collection, train_spec
from router_retriever.eval.routers import Router, RoutingData
from router_retriever.eval.runs import CorpusRuns, ExpertTable, Run, corpus_dir, expert_table


@dataclass
class EvalCollection:
    name: str
    spec: str
    test: Collection
    train: Collection | None
    runs: CorpusRuns
    table: ExpertTable
    train_table: ExpertTable | None
    bm25: Run | None  # Pyserini's (the reference)
    sparse: Run  # the engine's BM25 (bm25s)
    train_sparse: Run | None


def collection_label(name: str) -> str:
    """'beir/scifact/test', 'beir/arguana' and 'scifact/test' -> the collection's name."""
    parts = name.rstrip("/").split("/")
    if parts[0] == "beir" and len(parts) > 1:
        return parts[1]
    return name.rstrip("/").rsplit("/", 1)[0].rsplit("/", 1)[-1]


def load_collections(specs: list[str], settings: Settings, out: Path, bm25: bool, top_k: int) -> list[EvalCollection]:
    collections: list[EvalCollection] = []
    seen: Counter[str] = Counter()
    for spec in specs:
        test = load_collection(spec)
        tspec = train_spec(spec)
        train = load_collection(tspec) if tspec else None
        label = collection_label(test.name)
        seen[label] += 1
        name = label if seen[label] == 1 else f"{label}-{seen[label]}"
        runs = CorpusRuns(settings, test.docs, corpus_dir(out, test.name, test.docs), top_k)
        table = expert_table(runs, name, "test", test.queries, test.qrels)
        train_table = expert_table(runs, name, "train", train.queries, train.qrels) if train else None
        bm25_run = runs.bm25_run(test.queries) if bm25 else None
        collections.append(EvalCollection(name, spec, test, train, runs, table, train_table, bm25_run,
                                          runs.sparse_run(test.queries), runs.sparse_run(train.queries) if train else None))
    return collections


def _routing_data(tables: list[tuple[str, ExpertTable, np.ndarray]]) -> RoutingData:
    """Stack (domain, table, row mask) parts into the routers' training data."""
    experts = tables[0][1].experts
    return RoutingData(
        qids=[f"{d}/{q}" for d, t, m in tables for q, keep in zip(t.qids, m) if keep],
        domains=[d for d, t, m in tables for keep in m if keep],
        vectors=np.concatenate([t.vectors[m] for _, t, m in tables]),
        scores=np.concatenate([t.scores()[m] for _, t, m in tables]),
        experts=experts,
    )


def route_all(routers: list[Router], collections: list[EvalCollection], folds: int, seed: int = 0) -> tuple[dict, dict, dict]:
    """Router scores for every test query: {router: {collection: (queries, experts)}}, the protocol used
    per collection, and each router's description (from its last fit)."""
    no_train = [c for c in collections if c.train_table is None]
    n_folds = folds if no_train else 1
    rng = np.random.default_rng(seed)
    fold_of = {c.name: rng.permutation(len(c.table.qids)) % n_folds for c in collections}
    protocol = {
        c.name: {"router_training": "train split", "train_queries": len(c.train_table.qids)} if c.train_table
        else {"router_training": f"{n_folds}-fold cross-validation over test queries (each fold routed by routers "
              "fitted on the training splits and the other folds)", "train_queries": 0}
        for c in collections
    }
    out = {r.name: {c.name: np.zeros((len(c.table.qids), len(c.table.experts))) for c in collections} for r in routers}
    training_qids: dict[int, list[str]] = {}
    routed_qids: dict[int, list[str]] = {}
    for fold in range(n_folds):
        parts = [(c.name, c.train_table, np.ones(len(c.train_table.qids), bool)) for c in collections if c.train_table]
        parts += [(c.name, c.table, fold_of[c.name] != fold) for c in no_train]
        data = _routing_data(parts)
        training_qids[fold] = data.qids
        routed_qids[fold] = [f"{c.name}/{q}" for c in collections for q, f in zip(c.table.qids, fold_of[c.name]) if f == fold]
        for router in routers:
            router.fit(data)
            for c in collections:
                rows = fold_of[c.name] == fold
                out[router.name][c.name][rows] = router.scores(c.table.vectors[rows])
    described = {r.name: r.describe() for r in routers}
    return out, protocol, {"descriptions": described, "training_qids": training_qids, "routed_qids": routed_qids}


