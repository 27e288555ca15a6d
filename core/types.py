"""Plain data types shared by the pipeline, the index store, the service and the evaluation."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


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

    @property
    def expert(self) -> str:
        return self.experts[0]


@dataclass(frozen=True)
class Hit:
    """One ranked result with its provenance (the expert whose index produced it)."""

    id: str
    score: float
    expert: str
    title: str = ""
    text: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SearchResult:
    """Hits for one query plus the route that produced them."""

    query: str
    hits: list[Hit]
    route: Route
