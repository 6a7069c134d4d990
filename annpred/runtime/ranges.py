"""Training ranges: a point is inside a model's range when every parameter lies inside the
range the model was trained on, widened by a margin (random samples never reach a domain's
ends, so a dense operand, density 1, must not count as an extrapolation)."""
from __future__ import annotations

import math

RANGE_MARGIN = 0.05  # default margin: 5% of the range's width (in log scale when positive)


def widen_range(lo: float, hi: float, margin: float) -> tuple[float, float]:
    """Widen [lo, hi] by ``margin`` times its width (in log scale for positive ranges)."""
    if margin <= 0 or hi < lo:
        return lo, hi
    if lo > 0:
        d = (math.log(hi) - math.log(lo)) * margin
        return lo * math.exp(-d), hi * math.exp(d)
    d = (hi - lo) * margin
    return lo - d, hi + d
