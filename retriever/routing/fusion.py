"""Fusing ranked lists of several retrievers into one: reciprocal rank fusion (Cormack et al., 2009) or a
weighted sum of min-max normalised scores. Each fused id keeps the source that ranked it best."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal

RRF_K = 60
Fusion = Literal["rrf", "weighted"]


def reciprocal_rank_fusion(
    rankings: Mapping[str, Sequence[str]], k: int = RRF_K
) -> list[tuple[str, float, str]]:
    """Fuse ranked id lists; returns (id, fused score, source that ranked it best), best first."""
    scores: dict[str, float] = {}
    for ids in rankings.values():
        for rank, doc_id in enumerate(ids, 1):
            scores[doc_id] = scores.get(doc_id, 0.0) + 1.0 / (k + rank)
    return _ordered(scores, rankings)


def weighted_fusion(scored: Mapping[str, Sequence[tuple[str, float]]],
                    weights: Mapping[str, float]) -> list[tuple[str, float, str]]:
    """Fuse (id, score) lists by ``sum(weight * min-max normalised score)`` (absent: 0); returns
    (id, fused score, source that ranked it best), best first."""
    scores: dict[str, float] = {}
    for source, ranked in scored.items():
        values = [s for _, s in ranked]
        low, span = (min(values), max(values) - min(values)) if values else (0.0, 0.0)
        for doc_id, score in ranked:
            normalised = (score - low) / span if span > 0 else 1.0
            scores[doc_id] = scores.get(doc_id, 0.0) + weights.get(source, 0.0) * normalised
    return _ordered(scores, {source: [d for d, _ in ranked] for source, ranked in scored.items()})


def fuse(scored: Mapping[str, Sequence[tuple[str, float]]], method: Fusion = "rrf", k: int = RRF_K,
         weights: Mapping[str, float] | None = None) -> list[tuple[str, float, str]]:
    """``reciprocal_rank_fusion`` or ``weighted_fusion`` of (id, score) lists."""
    if method == "weighted":
        return weighted_fusion(scored, weights or dict.fromkeys(scored, 1.0))
    return reciprocal_rank_fusion({source: [d for d, _ in ranked] for source, ranked in scored.items()}, k)


def _ordered(scores: dict[str, float], rankings: Mapping[str, Sequence[str]]) -> list[tuple[str, float, str]]:
    """Best first; ties broken by the best rank any source gave, then by id."""
    best: dict[str, tuple[int, str]] = {}
    for source, ids in rankings.items():
        for rank, doc_id in enumerate(ids, 1):
            if doc_id not in best or rank < best[doc_id][0]:
                best[doc_id] = (rank, source)
    ordered = sorted(scores, key=lambda d: (-scores[d], best[d][0], d))
    return [(d, scores[d], best[d][1]) for d in ordered]
