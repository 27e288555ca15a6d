"""The engine's own router as configured: pilots from the config's ``[[domains]]`` (real training queries or
corpus sentences, never a test query), one centroid per domain for the domain's expert, the fallback expert
for queries unlike every domain; and leave-one-domain-out, where a collection's domain, its pilots and its
expert are removed and its test queries are routed among the rest."""

from __future__ import annotations

import numpy as np

from eval.protocol import EvalCollection
from eval.results import HeldOutDomain
from eval.significance import paired_randomization_test
from retriever import PilotLibrary, PilotRouter, Route, Settings, domain_queries, router_identity


def config_library(settings: Settings, collections: list[EvalCollection]) -> PilotLibrary | None:
    """The ``domain`` pilot library the engine builds from ``settings.domains`` (base vectors cached in the
    first collection's data directory); None without domains."""
    if not settings.domains:
        return None
    runs = collections[0].runs
    groups = [(d.name, d.expert, runs.base_vectors(domain_queries(d)[0])) for d in settings.domains]
    return PilotLibrary.from_vectors(groups, router_identity(settings))


def engine_routes(settings: Settings, library: PilotLibrary, experts: list[str], vectors: np.ndarray,
                  fallback: bool) -> list[Route]:
    """The engine router's route for each base vector (with or without the configured fallback expert)."""
    router = PilotRouter(library, experts, settings.router.aggregate,
                         settings.router.fallback if fallback else None, settings.router.fallback_percentile)
    return router.route(vectors.astype(np.float32))


def _ndcg(scores: np.ndarray, experts: list[str], routes: list[Route]) -> np.ndarray:
    """Per query, the nDCG@10 (``scores``: queries x ``experts``) of the expert its route picked."""
    column = {e: j for j, e in enumerate(experts)}
    return np.array([scores[i, column[r.expert]] for i, r in enumerate(routes)])


def leave_one_domain_out(settings: Settings, library: PilotLibrary, collections: list[EvalCollection]) -> list[HeldOutDomain]:
    """For each collection named like a configured domain: route its test queries without that domain's
    pilots and expert, with and without the fallback, and compare with the base (fallback, else first) expert."""
    experts = [e.name for e in settings.experts]
    base_expert = settings.router.fallback or experts[0]
    rows = []
    for c in collections:
        domain = next((d for d in settings.domains if d.name == c.name), None)
        if domain is None or domain.expert == base_expert:
            continue
        kept = [e for e in experts if e != domain.expert]
        held_out = library.without_domain(domain.name)
        scores = c.table.scores()
        base = scores[:, c.table.experts.index(base_expert)]
        plain = _ndcg(scores, c.table.experts, engine_routes(settings, held_out, kept, c.table.vectors, fallback=False))
        guarded_routes = engine_routes(settings, held_out, kept, c.table.vectors, fallback=True)
        guarded = _ndcg(scores, c.table.experts, guarded_routes)
        in_domain = _ndcg(scores, c.table.experts, engine_routes(settings, library, experts, c.table.vectors, fallback=True))
        chosen = [r.expert for r in guarded_routes]
        rows.append(HeldOutDomain(
            c.name, domain.name, domain.expert, base_expert, len(c.table.qids), float(base.mean()),
            float(plain.mean()), paired_randomization_test(list(plain), list(base)),
            float(guarded.mean()), paired_randomization_test(list(guarded), list(base)),
            float(np.mean([r.fallback for r in guarded_routes])), {e: chosen.count(e) for e in dict.fromkeys(chosen)},
            float(in_domain.mean())))
    return rows
