"""Reciprocal rank fusion: scores, order and provenance."""

import pytest

from router_retriever.routing.fusion import RRF_K, reciprocal_rank_fusion


def test_rrf_scores_order_and_best_source() -> None:
    fused = reciprocal_rank_fusion({"a": ["x", "y", "z"], "b": ["y", "w"]})
    assert [doc for doc, _, _ in fused] == ["y", "x", "w", "z"]
    scores = {doc: score for doc, score, _ in fused}
    assert scores["y"] == pytest.approx(1 / (RRF_K + 2) + 1 / (RRF_K + 1))
    assert scores["x"] == pytest.approx(1 / (RRF_K + 1))
    assert {doc: source for doc, _, source in fused} == {"y": "b", "x": "a", "w": "b", "z": "a"}
