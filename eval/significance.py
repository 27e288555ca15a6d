"""Significance of a difference between two systems on the same queries."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np

CHUNK = 1_000  # resamples scored per matrix product (bounds memory: CHUNK x queries signs)


def paired_randomization_test(a: Sequence[float], b: Sequence[float], groups: Sequence[str] | None = None,
                              resamples: int = 10_000, seed: int = 0) -> float | None:
    """Two-sided paired randomization test of the mean difference a - b, averaged per group (collection) when
    ``groups`` are given, so it tests the statistic the report shows. Under the null each query's two values
    are exchangeable, so every resample flips the sign of each query's difference at random (what scipy's
    ``permutation_test(permutation_type="samples")`` does, vectorised here: 10,000 resamples of 5,000
    queries take well under a second). Exact (every sign pattern) when 2**queries <= ``resamples``; else
    p = (1 + resamples at least as extreme) / (1 + resamples). None when no query differs."""
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if x.shape != y.shape:
        raise ValueError(f"paired test needs the same queries: {len(x)} vs {len(y)} values")
    if not np.any(x != y):
        return None
    labels = np.asarray(groups if groups is not None else [""] * len(x))
    weights = np.zeros(len(x))
    names = list(dict.fromkeys(labels.tolist()))
    for name in names:
        mask = labels == name
        weights[mask] = 1.0 / (mask.sum() * len(names))
    weighted = weights * (x - y)  # statistic = sum of signs * weighted
    observed = abs(weighted.sum())
    tolerance = 1e-12 * max(1.0, observed)
    if 2 ** len(x) <= resamples:
        signs = np.array(list(itertools.product((1.0, -1.0), repeat=len(x))))
        return float(np.mean(np.abs(signs @ weighted) >= observed - tolerance))
    rng = np.random.default_rng(seed)
    extreme = 0
    for start in range(0, resamples, CHUNK):
        signs = rng.choice((-1.0, 1.0), size=(min(CHUNK, resamples - start), len(x)))
        extreme += int(np.sum(np.abs(signs @ weighted) >= observed - tolerance))
    return float(min(1.0, (extreme + 1) / (resamples + 1)))
