"""Metrics through ir-measures, checked against values worked out by hand."""

import math

import numpy as np
import pytest

from router_retriever.eval.significance import paired_randomization_test
from router_retriever.metrics import DEFAULT_MEASURES, evaluate

INV_LOG2_3 = 1 / math.log2(3)  # discount of rank 2


def test_relevant_doc_at_rank_1_vs_rank_2():
    qrels = {"q1": {"d1": 1}, "q2": {"d1": 1}}
    run = {"q1": {"d1": 2.0, "d2": 1.0}, "q2": {"d2": 2.0, "d1": 1.0}}
    result = evaluate(run, qrels)
    assert result.per_query["q1"] == {"nDCG@10": 1.0, "R@100": 1.0, "RR@10": 1.0}
    assert result.per_query["q2"] == pytest.approx({"nDCG@10": INV_LOG2_3, "R@100": 1.0, "RR@10": 0.5})
    assert result.mean == pytest.approx({"nDCG@10": (1 + INV_LOG2_3) / 2, "R@100": 1.0, "RR@10": 0.75})
    assert list(result.mean) == list(DEFAULT_MEASURES)
    assert result.headline == pytest.approx(0.8154648767857287)


def test_graded_relevance_uses_trec_eval_linear_gain():
    result = evaluate({"q": {"d2": 2.0, "d1": 1.0}}, {"q": {"d1": 2, "d2": 1}})
    dcg = 1 + 2 * INV_LOG2_3
    ideal = 2 + 1 * INV_LOG2_3
    assert result.mean["nDCG@10"] == pytest.approx(dcg / ideal)


def test_unranked_query_counts_as_zero_and_unjudged_query_is_ignored():
    qrels = {"q1": {"d1": 1}, "q2": {"d9": 1}}
    run = {"q1": {"d1": 1.0}, "unjudged": {"d1": 1.0}}
    result = evaluate(run, qrels)
    assert set(result.per_query) == {"q1", "q2"}
    assert result.per_query["q2"] == {"nDCG@10": 0.0, "R@100": 0.0, "RR@10": 0.0}
    assert result.mean == pytest.approx({"nDCG@10": 0.5, "R@100": 0.5, "RR@10": 0.5})


def test_cutoffs():
    ranking = {f"d{i}": float(200 - i) for i in range(1, 102)}  # d1 first ... d101 last
    qrels = {"q": {"d11": 1, "d101": 1}}
    result = evaluate({"q": ranking}, qrels)
    assert result.mean["RR@10"] == 0.0  # first relevant doc at rank 11
    assert result.mean["R@100"] == 0.5  # d101 is past rank 100
    assert evaluate({"q": ranking}, qrels, ["RR@100"]).mean == {"RR@100": pytest.approx(1 / 11)}


def test_ties_broken_like_trec_eval_for_every_measure():
    # trec_eval ranks tied docs by doc id, descending: d2 before d1
    result = evaluate({"q": {"d1": 1.0, "d2": 1.0}}, {"q": {"d1": 1}})
    assert result.mean == pytest.approx({"nDCG@10": INV_LOG2_3, "R@100": 1.0, "RR@10": 0.5})


def test_bad_input():
    with pytest.raises(ValueError, match="unknown measure 'nDCG@x'"):
        evaluate({}, {"q": {"d": 1}}, ["nDCG@x"])
    with pytest.raises(ValueError, match="qrels are empty"):
        evaluate({"q": {"d": 1.0}}, {})


def test_paired_randomization_test():
    # differences 1, 0, 1, -1: every one of the 16 sign swaps gives |mean| >= 0.25, the observed value
    assert paired_randomization_test([1, 2, 3, 4], [0, 2, 2, 5]) == pytest.approx(1.0)
    # 8 queries, each +1: only all-kept and all-swapped reach |mean| = 1 -> exact p = 2 / 2**8
    assert paired_randomization_test([1.0] * 8, [0.0] * 8) == pytest.approx(2 / 256)
    # per-group averaging: one group of +1s and one of -1s average to 0 -> nothing unusual
    assert paired_randomization_test([1, 1, 1, 0, 0], [0, 0, 0, 1, 1], groups=list("aaabb")) == pytest.approx(1.0)
    assert paired_randomization_test([0.5, 0.2], [0.5, 0.2]) is None  # nothing differs
    with pytest.raises(ValueError, match="same queries"):
        paired_randomization_test([0.1, 0.2], [0.1])


def test_randomization_test_agrees_with_scipy_permutation_test():
    from scipy.stats import permutation_test

    rng = np.random.default_rng(1)
    a = rng.random(300)
    b = np.clip(a - 0.02 + rng.normal(0, 0.2, 300), 0, 1)
    scipy_p = permutation_test((a, b), lambda u, v, axis: np.mean(u - v, axis=axis), permutation_type="samples",
                               vectorized=True, n_resamples=10_000, random_state=0).pvalue
    assert paired_randomization_test(a, b) == pytest.approx(scipy_p, abs=0.02)  # Monte Carlo error of 10,000 draws
