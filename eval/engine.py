"""The engine's own rows: what ``retriever search`` returns on every test query with the config's settings (mode,
fusion, dense weight, router, fallback, top-m), computed by ``Retriever.search_many`` over the collection's
indexes (``CorpusRuns.engine_run``, cached) and routed with the config's ``[[domains]]`` pilots; beside them the
same search with each base model alone (no routing), so that a table shows whether routing is worth it."""

from __future__ import annotations

from dataclasses import dataclass

from router_retriever.config import Settings
from router_retriever.core.types import Mode
from router_retriever.eval.protocol import EvalCollection
from router_retriever.eval.results import Kind
from router_retriever.eval.runs import Run
from router_retriever.routing.pilots import PilotLibrary


@dataclass(frozen=True)
class EngineRow:
    """One engine row: its label, kind, runs per collection and (routed dense rows) the expert per query."""

    label: str
    kind: Kind
    runs: dict[str, Run]
    choices: dict[str, list[str]] | None = None


def describe_search(settings: Settings, mode: Mode) -> str:
    """The search a mode runs under the config, e.g. 'hybrid, weighted 0.7 dense + 0.3 BM25'."""
    search = settings.search
    if mode != "hybrid":
        return mode
    if search.fusion == "rrf":
        return f"hybrid, RRF (k {search.rrf_k}) of dense + BM25"
    return f"hybrid, weighted {search.dense_weight:g} dense + {1 - search.dense_weight:.2g} BM25"


def routed_label(settings: Settings, mode: Mode, library: PilotLibrary | None) -> str:
    """The label of the engine's routed search in ``mode``."""
    router = settings.router
    routing = "routed by the config's [[domains]] pilots (no test query)"
    if router.fallback and library is not None:
        learnt = " learnt from the pilots" if router.fallback_percentile == "auto" else ""
        routing += f", fallback to {router.fallback} below the {library.percentile(router.fallback_percentile):g}th percentile{learnt}"
    if router.top_m > 1 or router.mix_fallback:
        experts = f"top-{router.top_m} experts" + (f" and {router.fallback}" if router.mix_fallback else "")
        peaks = f", list peaks x{router.mix_peak_weight:g}" if router.mix_peak_weight else ""
        fusion = f"soft mixing (T {router.mix_temperature:g}{peaks})" if router.mix_temperature is not None else "RRF"
        routing += f", {experts} fused by {fusion}"
    if router.partners:
        pairs = ", ".join(f"{e} + {p.expert} {p.share:g}" for e, p in router.partners.items())
        routing += f", partners ({pairs})"
    return f"engine: {describe_search(settings, mode)}, {routing}"


def base_experts(settings: Settings) -> list[str]:
    """The models a user would search without routing: the first expert, the router's own and the fallback."""
    names = [settings.experts[0].name, settings.router.expert, settings.router.fallback]
    return [n for n in dict.fromkeys(names) if n is not None]


def engine_rows(settings: Settings, collections: list[EvalCollection], library: PilotLibrary | None) -> list[EngineRow]:
    """The engine's routed search in the config's mode and in dense mode (when it can route: pilots, or a single
    expert), then hybrid with each base model alone. The first row is what ``retriever search`` returns."""
    rows: list[EngineRow] = []
    if library is not None or len(settings.experts) == 1:
        for mode in dict.fromkeys(m for m in (settings.search.mode, "dense") if m != "sparse"):
            runs = {c.name: c.runs.engine_run(c.test.queries, library, mode) for c in collections}
            choices = {c.name: runs[c.name].choices(c.table.qids) for c in collections} if mode == "dense" else None
            rows.append(EngineRow(routed_label(settings, mode, library), "router" if mode == "dense" else "fusion",
                                  {name: r.run for name, r in runs.items()}, choices))
    for expert in base_experts(settings):
        label = f"engine: {describe_search(settings, 'hybrid')}, {expert} alone (no routing)"
        rows.append(EngineRow(label, "fusion", {c.name: c.runs.engine_run(c.test.queries, library, "hybrid", expert).run
                                                for c in collections}))
    return rows
