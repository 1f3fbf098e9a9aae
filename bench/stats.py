"""The one percentile every bench reports, so their p50s and p95s are comparable."""

from __future__ import annotations

import math
from collections.abc import Sequence


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q`` quantile (0-1) by linear interpolation between ranks, as wyoming-bench and
    numpy's default compute it; nan when there are no values."""
    ordered = sorted(values)
    if not ordered:
        return math.nan
    rank = q * (len(ordered) - 1)
    lo = math.floor(rank)
    hi = min(lo + 1, len(ordered) - 1)
    if ordered[lo] == ordered[hi]:  # also inf == inf, which would interpolate to nan
        return ordered[lo]
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (rank - lo)
