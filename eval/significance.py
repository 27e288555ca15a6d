"""Significance of a difference between two systems on the same queries."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def paired_randomization_test(a: Sequence[float], b: Sequence[float], groups: Sequence[str] | None = None,
                              resamples: int = 10_000, seed: int = 0) -> float | None:
    """Two-sided paired randomization test (scipy's permutation test, swapping each query's two values) of
    the mean difference a - b, averaged per group (collection) when ``groups`` are given, so it tests the
    statistic the report shows. Exact when 2**queries <= ``resamples``. None when no query differs."""
    from scipy.stats import permutation_test

    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if x.shape != y.shape:
        raise ValueError(f"paired test needs the same queries: {len(x)} vs {len(y)} values")
    if not np.any(x != y):
        return None
    labels = np.asarray(groups if groups is not None else [""] * len(x))
    masks = [labels == g for g in dict.fromkeys(labels.tolist())]

    def statistic(u: np.ndarray, v: np.ndarray, axis: int) -> np.ndarray:
        return np.mean([(u - v)[..., m].mean(axis=-1) for m in masks], axis=0)

    result = permutation_test((x, y), statistic, permutation_type="samples", vectorized=True, n_resamples=resamples,
                              alternative="two-sided", random_state=seed)
    return float(min(1.0, result.pvalue))
