"""bench/stats.py: the one percentile of every bench."""

from __future__ import annotations

import math

import numpy as np

from bench.stats import percentile


def test_the_percentile_interpolates_between_ranks_as_numpy_does() -> None:
    values = [0.31, 0.12, 0.95, 0.47, 0.52, 0.2, 0.8]
    for q in (0.0, 0.25, 0.5, 0.9, 0.95, 1.0):
        assert math.isclose(percentile(values, q), float(np.percentile(values, q * 100)))
    assert percentile([3.0], 0.95) == 3.0
    assert math.isnan(percentile([], 0.5))
    assert percentile([1.0, math.inf, math.inf], 0.95) == math.inf
