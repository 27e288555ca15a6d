"""Plain data types shared by the engine, the index store, the service and the evaluation."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Mode = Literal["dense", "sparse", "hybrid"]  # routed dense experts, BM25 alone, or both fused
MODES: tuple[Mode, ...] = ("dense", "sparse", "hybrid")
SPARSE = "bm25"  # the name of the sparse retriever in routes and provenance (no expert may take it)


@dataclass(frozen=True)
class Document:
    """One corpus document (BEIR fields)."""

    id: str
    text: str
    title: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def content(self) -> str:
        """Title and body as one string: what document encoders and BM25 see."""
        return f"{self.title} {self.text}".strip() if self.title else self.text


@dataclass(frozen=True)
class Route:
    """Why a query went where it went: chosen experts (best first) and every expert's router score."""

    experts: tuple[str, ...]
    scores: dict[str, float]
    forced: bool = False
    fallback: bool = False  # unlike every domain's pilots: sent to the router's fallback expert

    @property
    def expert(self) -> str:
        return self.experts[0]


@dataclass(frozen=True)
class Provenance:
    """One retriever that found a hit: its name (an expert, or ``bm25``), its rank (1-based) and its score."""

    retriever: str
    rank: int
    score: float


@dataclass(frozen=True)
class Hit:
    """One ranked result; ``expert`` is the retriever that ranked it best, ``provenance`` every one that found it."""

    id: str
    score: float
    expert: str
    title: str = ""
    text: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)
    provenance: tuple[Provenance, ...] = ()


@dataclass(frozen=True)
class SearchResult:
    """Hits for one query plus the route that produced them."""

    query: str
    hits: list[Hit]
    route: Route
    mode: Mode = "dense"


@dataclass(frozen=True)
class ExpertInfo:
    """What an expert is: its encoders, its index and whether the router can choose it."""

    name: str
    description: str
    query_encoder: str
    document_encoder: str
    query_fingerprint: str  # the query encoder plus a hash of its adapter's weights
    dimension: int | None  # None until the index is built
    index_documents: int
    index_kind: str
    domains: tuple[str, ...]  # pilot domains that route to this expert
    routable: bool


@dataclass(frozen=True)
class Status:
    """Documents in the store, vectors per index, the experts whose index is not built yet, and per built
    index the stored documents it lacks (``missing``: not findable until re-encoded) and its entries of
    removed documents (``stale``: harmless); ``unreadable``: per vector index whose files cannot be used
    (corrupt, or built another way), why (BM25 searches still work; `retriever build --rebuild` repairs it)."""

    documents: int
    indexes: dict[str, int]
    unbuilt: tuple[str, ...]
    missing: dict[str, int] = field(default_factory=dict)
    stale: dict[str, int] = field(default_factory=dict)
    unreadable: dict[str, str] = field(default_factory=dict)
