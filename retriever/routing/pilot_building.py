"""Building the pilot library from the configured domains' queries (real ones, or sentences of a
domain's corpus where it has none).

``domain``: one centroid per domain, for the domain's own expert. ``winner`` (the paper's way): score
every expert on every training query (nDCG@10 against the training qrels, searching the engine's own
indexes), group each domain's queries by the expert that wins, one centroid per group. Domains given
as plain query files or corpora (no qrels) count as won by their own expert.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from router_retriever.config import DomainConfig
from router_retriever.core.errors import ConfigError
from router_retriever.core.types import SearchResult
from router_retriever.corpus import Qrels, read_corpora, read_training_queries
from router_retriever.encoding.encoders import Encoder
from router_retriever.metrics import evaluate
from router_retriever.routing.pilots import PilotGroup, PilotLibrary
from router_retriever.training.pseudo_queries import pilot_queries

MEASURE = "nDCG@10"
ForcedSearch = Callable[[list[str], str], list[SearchResult]]  # (queries, expert) -> top-10 results


def domain_queries(domain: DomainConfig) -> tuple[dict[str, str], Qrels | None]:
    """A domain's pilot queries by id, with their qrels where it has them: its ``queries``, or one
    sentence of each of ``pilot_queries`` sampled documents of its ``corpus``."""
    if domain.queries is not None:
        return read_training_queries(domain.queries)
    texts = pilot_queries(read_corpora([domain.corpus or ""]), domain.pilot_queries)
    if not texts:
        raise ConfigError(f"domain {domain.name!r}: its corpus {domain.corpus} has no sentence to make a pilot of")
    return {str(n): text for n, text in enumerate(texts)}, None


def domain_library(encoder: Encoder, domains: Sequence[DomainConfig], batch_size: int) -> PilotLibrary:
    """One centroid of each domain's training queries, labelled with the domain's expert."""
    groups = [PilotGroup(d.name, d.expert, list(domain_queries(d)[0].values())) for d in domains]
    return PilotLibrary.build(encoder, groups, batch_size)


def winner_library(encoder: Encoder, domains: Sequence[DomainConfig], experts: list[str], search: ForcedSearch,
                   batch_size: int) -> PilotLibrary:
    """Score experts on every domain's training queries and build the winner-grouped pilot library."""
    vectors, labels, scores = [], [], []
    for domain in domains:
        queries, qrels = domain_queries(domain)
        texts = list(queries.values())
        vectors.append(encoder.encode(texts, batch_size))
        labels += [domain.name] * len(texts)
        scores.append(_expert_scores(search, experts, queries, qrels) if qrels else
                      np.tile(np.eye(len(experts))[experts.index(domain.expert)], (len(texts), 1)))
    return PilotLibrary.from_winners(np.concatenate(vectors), labels, np.concatenate(scores), experts, encoder.identity)


def _expert_scores(search: ForcedSearch, experts: list[str], queries: dict[str, str],
                   qrels: dict[str, dict[str, int]]) -> np.ndarray:
    """(queries, experts) nDCG@10 of each expert on the judged training queries."""
    qids = list(queries)
    columns = []
    for name in experts:
        results = search([queries[q] for q in qids], name)
        run = {qid: {hit.id: hit.score for hit in r.hits} for qid, r in zip(qids, results)}
        per_query = evaluate(run, qrels, (MEASURE,)).per_query
        columns.append([per_query.get(qid, {}).get(MEASURE, 0.0) for qid in qids])
    return np.asarray(columns, dtype=np.float64).T
