"""The evaluation report as types: what ``run_eval`` returns and ``router_retriever.eval.report`` writes."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Kind = Literal["baseline", "expert", "router", "fusion", "oracle"]


@dataclass
class CollectionInfo:
    """One evaluated collection and how its routers were trained."""

    name: str
    spec: str
    test: str
    train: str | None
    documents: int
    test_queries: int
    data_dir: str
    router_training: str
    train_queries: int


@dataclass
class ExpertSpec:
    name: str
    model: str
    adapter: str | None
    document_model: str


@dataclass
class CollectionScore:
    """One system on one collection: mean measures, per-query nDCG@10, and (routed systems) the choices."""

    mean: dict[str, float]
    ndcg_per_query: dict[str, float]
    oracle_gap: float
    choices: dict[str, str] | None = None
    chosen_counts: dict[str, int] | None = None
    oracle_agreement: float | None = None


@dataclass
class Comparison:
    """A system against the best single expert: nDCG@10 difference, paired p-value, oracle gap closed."""

    expert: str
    delta: float
    p_value: float | None
    oracle_gap_closed: float | None


@dataclass
class HeldOutDomain:
    """One leave-one-domain-out row: the collection's test queries routed without its domain, against the base."""

    collection: str
    domain: str
    removed_expert: str
    base_expert: str
    queries: int
    base: float
    routed: float
    routed_p: float | None
    with_fallback: float
    with_fallback_p: float | None
    fallback_share: float
    fallback_percentile: float | None  # the floor used without the domain (learnt without it under "auto")
    choices: dict[str, int]
    in_domain: float  # the same queries routed with every domain configured
    engine: float  # the engine's own dense search without the domain (the config's top-m, mixing and fallback)
    engine_p: float | None


@dataclass
class SystemResult:
    """One row of the table."""

    system: str
    kind: Kind
    collections: dict[str, CollectionScore]
    average: dict[str, float]
    vs_best_expert: Comparison | None = None


@dataclass
class Report:
    """Every figure of one evaluation run, the settings, and which queries trained which router."""

    collections: list[CollectionInfo]
    experts: list[ExpertSpec]
    settings: dict[str, Any]
    routers: dict[str, dict[str, object]]
    systems: list[SystemResult]
    timings: dict[str, float]
    queries_encoded: int
    training_qids: dict[int, list[str]] = field(default_factory=dict)  # per fold: the routers' training queries
    routed_qids: dict[int, list[str]] = field(default_factory=dict)  # per fold: the test queries they routed
    engine_router: str | None = None  # the row of the engine's own router (the config's [[domains]] pilots)
    engine_router_versus: list[Comparison] = field(default_factory=list)  # against each expert and the dataset oracle
    held_out_domains: list[HeldOutDomain] = field(default_factory=list)  # leave-one-domain-out

    def system(self, name: str) -> SystemResult:
        return next(row for row in self.systems if row.system == name)

    def rows(self, kind: Kind | None = None) -> list[SystemResult]:
        return [row for row in self.systems if kind is None or row.kind == kind]

    def to_json(self) -> dict[str, Any]:
        """Everything but the per-fold query id lists (kept in memory for the separation tests)."""
        public = asdict(self)
        del public["training_qids"], public["routed_qids"]
        return public
