"""The engine's own router as configured: pilots from the config's ``[[domains]]`` (real training queries or
corpus sentences, never a test query), one centroid per domain for the domain's expert, the fallback expert
for queries unlike every domain; and leave-one-domain-out, where a collection's domain, its pilots and its
expert are removed and its test queries are routed among the rest (from the expert table, and by the engine's own
search with the config's top-m, mixing and fallback)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from router_retriever.config import Settings
from router_retriever.core.types import Route
from router_retriever.eval.protocol import EvalCollection
from router_retriever.eval.results import HeldOutDomain
from router_retriever.eval.significance import paired_randomization_test
from router_retriever.experts import router_identity
from router_retriever.metrics import HEADLINE, evaluate
from router_retriever.routing.pilot_building import domain_queries
from router_retriever.routing.pilots import PilotLibrary
from router_retriever.routing.router import PilotRouter

Group = tuple[str, str, np.ndarray]  # (domain, expert, base vectors of its pilot queries)


def config_groups(settings: Settings, collections: list[EvalCollection]) -> list[Group]:
    """The pilot queries of ``settings.domains``, embedded by the router's base model (cached in the first
    collection's data directory); empty without domains."""
    runs = collections[0].runs
    return [(d.name, d.expert, runs.base_vectors(domain_queries(d)[0])) for d in settings.domains]


def config_library(settings: Settings, groups: list[Group]) -> PilotLibrary | None:
    """The ``domain`` pilot library the engine builds from these groups; None without any."""
    return PilotLibrary.from_vectors(groups, router_identity(settings)) if groups else None


def engine_router(settings: Settings, library: PilotLibrary, experts: list[str], fallback: bool) -> PilotRouter:
    """The engine router as configured (with or without its fallback expert) over ``library``."""
    return PilotRouter(library, experts, settings.router.aggregate, settings.router.fallback if fallback else None,
                       settings.router.fallback_percentile, settings.router.mix_fallback)


def engine_routes(settings: Settings, library: PilotLibrary, experts: list[str], vectors: np.ndarray,
                  fallback: bool) -> list[Route]:
    """The engine router's route for each base vector (with or without the configured fallback expert)."""
    return engine_router(settings, library, experts, fallback).route(vectors.astype(np.float32))


def _ndcg(scores: np.ndarray, experts: list[str], routes: list[Route]) -> np.ndarray:
    """Per query, the nDCG@10 (``scores``: queries x ``experts``) of the expert its route picked."""
    column = {e: j for j, e in enumerate(experts)}
    return np.array([scores[i, column[r.expert]] for i, r in enumerate(routes)])


def leave_one_domain_out(settings: Settings, library: PilotLibrary, groups: list[Group],
                         collections: list[EvalCollection]) -> list[HeldOutDomain]:
    """For each collection named like a configured domain: route its test queries without that domain's
    pilots and expert, with and without the fallback, and compare with the base (fallback, else first) expert.
    ``library`` is built from ``groups``; the library without the domain is built again from the other groups,
    so a fallback percentile learnt from the pilots (``"auto"``) is learnt without that domain too (with a single
    domain left, nothing is left to learn it from: then ``library``'s is used)."""
    experts = [e.name for e in settings.experts]
    base_expert = settings.router.fallback or experts[0]
    rows = []
    for c in collections:
        domain = next((d for d in settings.domains if d.name == c.name), None)
        if domain is None or domain.expert == base_expert:
            continue
        kept = [e for e in experts if e != domain.expert]
        held_out = config_library(settings, [g for g in groups if g[0] != domain.name])
        assert held_out is not None
        if held_out.calibrated_percentile is None:
            held_out = replace(held_out, calibrated_percentile=library.calibrated_percentile)
        scores = c.table.scores()
        base = scores[:, c.table.experts.index(base_expert)]
        plain = _ndcg(scores, c.table.experts, engine_routes(settings, held_out, kept, c.table.vectors, fallback=False))
        guarded = engine_router(settings, held_out, kept, fallback=True)
        guarded_routes = guarded.route(c.table.vectors.astype(np.float32))
        guarded_ndcg = _ndcg(scores, c.table.experts, guarded_routes)
        in_domain = _ndcg(scores, c.table.experts, engine_routes(settings, library, experts, c.table.vectors, fallback=True))
        engine = _engine_ndcg(c, held_out)
        chosen = [r.expert for r in guarded_routes]
        rows.append(HeldOutDomain(
            c.name, domain.name, domain.expert, base_expert, len(c.table.qids), float(base.mean()),
            float(plain.mean()), paired_randomization_test(list(plain), list(base)),
            float(guarded_ndcg.mean()), paired_randomization_test(list(guarded_ndcg), list(base)),
            float(np.mean([r.fallback for r in guarded_routes])), guarded.percentile,
            {e: chosen.count(e) for e in dict.fromkeys(chosen)}, float(in_domain.mean()),
            float(engine.mean()), paired_randomization_test(list(engine), list(base))))
    return rows


def _engine_ndcg(collection: EvalCollection, library: PilotLibrary) -> np.ndarray:
    """Per test query (in the expert table's order), the nDCG@10 of the engine's own dense search routed with
    ``library``: the config's top-m, soft mixing and fallback, which the expert table cannot replay. A domain
    whose pilots are not in ``library`` is not routed to, so its expert drops out without rebuilding anything."""
    run = collection.runs.engine_run(collection.test.queries, library, "dense").run
    per_query = evaluate(run, collection.test.qrels).per_query
    return np.array([per_query.get(q, {}).get(HEADLINE, 0.0) for q in collection.table.qids])
