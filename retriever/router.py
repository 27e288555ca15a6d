"""The pilot router (RouterRetriever): compare the query's base embedding with every pilot embedding,
aggregate the similarities per expert (mean, as in the paper, or max, as in its released code), and
pick the expert(s) with the highest score."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np

from core.types import Route
from retriever.pilots import PilotLibrary


class PilotRouter:
    """Routes base-model query vectors to experts by their pilot similarities."""

    def __init__(self, library: PilotLibrary, experts: Sequence[str], aggregate: Literal["mean", "max"] = "mean"):
        self.library = library.restricted_to(experts)
        self.experts = [e for e in experts if e in set(self.library.experts)]
        self.aggregate = aggregate
        self._membership = np.array([[p == e for p in self.library.experts] for e in self.experts],
                                    dtype=np.float32)  # (experts, pilots)

    def expert_scores(self, vectors: np.ndarray) -> np.ndarray:
        """(queries, experts) scores: mean or max cosine similarity to each expert's pilots."""
        sims = vectors @ self.library.vectors.T  # (queries, pilots)
        if self.aggregate == "mean":
            return (sims @ self._membership.T) / self._membership.sum(axis=1)
        masked = np.where(self._membership[None, :, :] > 0, sims[:, None, :], -np.inf)
        return masked.max(axis=2)

    def route(self, vectors: np.ndarray, top_m: int = 1) -> list[Route]:
        """The best ``top_m`` experts for each query vector, with every routable expert's score."""
        scores = self.expert_scores(vectors)
        order = np.argsort(-scores, axis=1, kind="stable")[:, :top_m]
        return [
            Route(
                experts=tuple(self.experts[j] for j in row),
                scores={e: round(float(s), 6) for e, s in zip(self.experts, q_scores)},
            )
            for row, q_scores in zip(order, scores)
        ]
