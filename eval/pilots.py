"""The engine's pilot library built the paper's way from the configured domains' training queries:
score every expert on every training query (nDCG@10 against the training qrels, searching the
pipeline's own indexes), group each domain's queries by the expert that wins, one centroid per group.
Domains given as plain query files (no qrels) count as won by their own expert."""

from __future__ import annotations

import numpy as np

from eval.metrics import evaluate
from retriever.corpus import read_training_queries
from retriever.pilots import PilotLibrary
from retriever.pipeline import SearchPipeline

MEASURE = "nDCG@10"


def winner_library(pipeline: SearchPipeline) -> PilotLibrary:
    """Score experts on every domain's training queries and build the winner-grouped pilot library."""
    experts = list(pipeline.experts)
    vectors, domains, scores = [], [], []
    for domain in pipeline.settings.domains:
        queries, qrels = read_training_queries(domain.queries)
        texts = list(queries.values())
        vectors.append(pipeline.router_encoder.encode(texts, pipeline.settings.batch_size))
        domains += [domain.name] * len(texts)
        scores.append(_expert_scores(pipeline, queries, qrels) if qrels else
                      np.tile(np.eye(len(experts))[experts.index(domain.expert)], (len(texts), 1)))
    return PilotLibrary.from_winners(np.concatenate(vectors), domains, np.concatenate(scores), experts,
                                     pipeline.router_encoder.identity)


def _expert_scores(pipeline: SearchPipeline, queries: dict[str, str],
                   qrels: dict[str, dict[str, int]]) -> np.ndarray:
    """(queries, experts) nDCG@10 of each expert on the judged training queries."""
    qids = list(queries)
    columns = []
    for name in pipeline.experts:
        results = pipeline.search_many([queries[q] for q in qids], top_k=10, expert=name)
        run = {qid: {hit.id: hit.score for hit in r.hits} for qid, r in zip(qids, results)}
        per_query = evaluate(run, qrels, (MEASURE,)).per_query
        columns.append([per_query.get(qid, {}).get(MEASURE, 0.0) for qid in qids])
    return np.asarray(columns, dtype=np.float64).T
