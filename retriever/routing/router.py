"""Routing: which expert(s) answer a query.

``PilotRouter`` is the RouterRetriever rule on vectors: compare a query's base embedding with every pilot
embedding, aggregate the similarities per expert (mean, as in the paper, or max, as in its released code)
and pick the expert(s) with the highest score. ``QueryRouter`` is the engine's routing step on text: the
router's base encoder plus the pilot library saved in the data directory.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Literal

import numpy as np

from router_retriever.config import RouterConfig
from router_retriever.core.errors import ConfigError
from router_retriever.core.types import Route
from router_retriever.encoding.encoders import Encoder
from router_retriever.routing.pilots import PilotLibrary

PEAK_DEPTH = 10  # a list's peak: its top score minus the mean of its first this many


def list_peak(scores: Sequence[float]) -> float:
    """How far a ranked list's top score stands above the mean of its first ``PEAK_DEPTH`` scores (0 if empty)."""
    head = scores[:PEAK_DEPTH]
    return float(head[0] - np.mean(head)) if len(head) else 0.0


def mix_weights(route: Route, temperature: float, peaks: Mapping[str, float] | None = None,
                peak_weight: float = 0.0) -> dict[str, float]:
    """Soft mixing weights of a route's experts: the softmax over ``temperature`` of their router scores plus
    ``peak_weight`` times their lists' ``peaks``, summing to 1 (an expert without a score, e.g. the fallback, takes
    the best router score)."""
    known = [route.scores[e] for e in route.experts if e in route.scores]
    top = max(known, default=0.0)
    peak = {e: peak_weight * (peaks or {}).get(e, 0.0) for e in route.experts}
    logits = np.array([route.scores.get(e, top) - top + peak[e] - max(peak.values()) for e in route.experts])
    weights = np.exp(logits / temperature)
    return dict(zip(route.experts, (weights / weights.sum()).tolist()))


class PilotRouter:
    """Routes base-model query vectors to experts by their pilot similarities."""

    def __init__(self, library: PilotLibrary, experts: Sequence[str], aggregate: Literal["mean", "max"] = "mean",
                 fallback: str | None = None, percentile: float | Literal["auto"] = 5.0, mix_fallback: bool = False):
        self.library = library.restricted_to(experts)
        self.experts = [e for e in experts if e in set(self.library.experts)]
        self.aggregate = aggregate
        self.fallback = fallback
        self.mix_fallback = mix_fallback and fallback is not None
        self.percentile = self.library.percentile(percentile) if fallback else None
        self._floors = self.library.floors(self.percentile) if self.percentile is not None else None
        self._membership = np.array([[p == e for p in self.library.experts] for e in self.experts],
                                    dtype=np.float32)  # (experts, pilots)

    def expert_scores(self, vectors: np.ndarray) -> np.ndarray:
        """(queries, experts) scores: mean or max cosine similarity to each expert's pilots."""
        sims = vectors @ self.library.vectors.T  # (queries, pilots)
        if self.aggregate == "mean":
            return (sims @ self._membership.T) / self._membership.sum(axis=1)
        masked = np.where(self._membership[None, :, :] > 0, sims[:, None, :], -np.inf)
        return masked.max(axis=2)

    def unlike_every_domain(self, vectors: np.ndarray) -> np.ndarray:
        """(queries,) True where a query's cosine to every pilot is below that pilot's floor (the
        ``percentile`` of its own queries' cosines): such a query goes to the fallback expert."""
        if self._floors is None:
            return np.zeros(len(vectors), dtype=bool)
        return np.asarray((vectors @ self.library.vectors.T < self._floors).all(axis=1))

    def route(self, vectors: np.ndarray, top_m: int = 1) -> list[Route]:
        """The best ``top_m`` experts for each query vector (then the fallback expert, with ``mix_fallback``), with
        every routable expert's score."""
        scores = self.expert_scores(vectors)
        order = np.argsort(-scores, axis=1, kind="stable")[:, :top_m]
        outside = self.unlike_every_domain(vectors)
        return [
            Route(
                experts=(self.fallback,) if out and self.fallback else self._with_fallback([self.experts[j] for j in row]),
                scores={e: round(float(s), 6) for e, s in zip(self.experts, q_scores)},
                fallback=bool(out),
            )
            for row, q_scores, out in zip(order, scores, outside)
        ]

    def _with_fallback(self, chosen: list[str]) -> tuple[str, ...]:
        """``chosen``, followed by the fallback expert when it is mixed into every route."""
        if self.mix_fallback and self.fallback is not None and self.fallback not in chosen:
            return (*chosen, self.fallback)
        return tuple(chosen)


class QueryRouter:
    """Embeds queries with the router's base encoder and routes them with the saved pilot library
    (read from ``pilots_path`` on first use; a library of another encoder is ignored)."""

    def __init__(self, encoder: Encoder, pilots_path: Path, experts: Sequence[str], config: RouterConfig,
                 batch_size: int) -> None:
        self.encoder = encoder
        self.pilots_path = pilots_path
        self.experts = list(experts)
        self.config = config
        self.batch_size = batch_size
        self._router: PilotRouter | None = None

    @property
    def library(self) -> PilotLibrary | None:
        """The pilot library in use, or None when none has been built for this router encoder."""
        router = self._pilot_router()
        return router.library if router else None

    def use(self, library: PilotLibrary) -> None:
        """Route with ``library`` from now on (after it was rebuilt)."""
        self._router = PilotRouter(library, self.experts, self.config.aggregate, self.config.fallback,
                                   self.config.fallback_percentile, self.config.mix_fallback)

    def routable(self) -> list[str]:
        """Experts that have pilots, so the router can choose them."""
        router = self._pilot_router()
        return list(router.experts) if router else ([] if len(self.experts) > 1 else list(self.experts))

    def route(self, queries: list[str], top_m: int) -> tuple[list[Route], np.ndarray | None]:
        """Routes of valid queries plus their base-model vectors (None when no pass was needed)."""
        router = self._pilot_router()
        if router is None:
            if len(self.experts) > 1:
                raise ConfigError(self._no_library())
            only = self.experts[0]
            return [Route(experts=(only,), scores={only: 1.0}) for _ in queries], None
        vectors = self.encoder.encode(queries, batch_size=self.batch_size)
        return router.route(vectors, top_m), vectors

    def _no_library(self) -> str:
        if self.pilots_path.is_file():
            reason = self._unusable(PilotLibrary.load(self.pilots_path))
            if reason:
                return reason
        return "no pilot library: configure [[domains]] and run `retriever build` (or `retriever pilots build`), or name an expert"

    def _unusable(self, library: PilotLibrary) -> str | None:
        """Why this configuration cannot route with the saved ``library`` (None: it can)."""
        if library.encoder != self.encoder.identity:
            return (f"the pilot library {self.pilots_path} was embedded by {library.encoder!r}, not by the router's "
                    f"encoder {self.encoder.identity!r}: run `retriever build` (or `retriever pilots build`), or name "
                    "an expert")
        if self.config.fallback is not None and self.config.fallback_percentile == "auto" and library.calibrated_percentile is None:
            return (f"the pilot library {self.pilots_path} has no learnt fallback percentile, which "
                    "router.fallback_percentile = \"auto\" needs: run `retriever build` (or `retriever pilots build`) "
                    "with two or more [[domains]]")
        return None

    def _pilot_router(self) -> PilotRouter | None:
        """The router over the saved library; None without one this configuration can use (``_unusable``), so
        that ``build`` remakes it."""
        if self._router is None and self.pilots_path.is_file():
            library = PilotLibrary.load(self.pilots_path)
            if self._unusable(library) is None:
                self.use(library)
        return self._router
