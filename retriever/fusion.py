"""Reciprocal rank fusion (Cormack et al., 2009) of ranked lists from several sources."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

RRF_K = 60


def reciprocal_rank_fusion(
    rankings: Mapping[str, Sequence[str]], k: int = RRF_K
) -> list[tuple[str, float, str]]:
    """Fuse ranked id lists; returns (id, fused score, source that ranked it best), best first."""
    scores: dict[str, float] = {}
    best: dict[str, tuple[int, str]] = {}
    for source, ids in rankings.items():
        for rank, doc_id in enumerate(ids, 1):
            scores[doc_id] = scores.get(doc_id, 0.0) + 1.0 / (k + rank)
            if doc_id not in best or rank < best[doc_id][0]:
                best[doc_id] = (rank, source)
    ordered = sorted(scores, key=lambda d: (-scores[d], best[d][0], d))
    return [(d, scores[d], best[d][1]) for d in ordered]
