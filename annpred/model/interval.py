"""Split-conformal prediction intervals on log runtime (one home for every interval:
the estimator's, from its validation split, and the tuning search's picks')."""
from __future__ import annotations

import numpy as np

from annpred.errors import DataError


def conformal_interval(residuals: np.ndarray, coverage: float) -> dict | None:
    """Split-conformal bounds on log(measured / predicted): the ``floor((n+1) a/2)``-th and
    ``ceil((n+1)(1 - a/2))``-th smallest of ``n`` held-out residuals (a = 1 - coverage),
    which cover a new point with probability >= coverage when it is exchangeable with the
    held-out ones. None when ``n`` is too small for that coverage."""
    if not 0 < coverage < 1:
        raise DataError(f"coverage must be in (0, 1), got {coverage}")
    r, a = np.sort(np.asarray(residuals, dtype=float)), 1.0 - coverage
    n = len(r)
    k_lo = int(np.floor((n + 1) * a / 2 + 1e-9))  # 1e-9: 1 - 0.9 is 0.0999... in floats
    k_hi = int(np.ceil((n + 1) * (1 - a / 2) - 1e-9))
    if n == 0 or k_lo < 1 or k_hi > n:
        return None
    return {"nominal": float(coverage), "lo": float(r[k_lo - 1]), "hi": float(r[k_hi - 1]),
            "n": int(n), "method": "split conformal, log runtime, validation split"}
