"""Split-conformal prediction intervals on log runtime (one home for every interval:
the estimator's, from its validation split, and the tuning search's picks')."""
from __future__ import annotations

import numpy as np

from annpred.errors import DataError, FewRowsWarning

MIN_SPLIT_ROWS = 20  # the estimator carves a validation split from this many rows on


class NoIntervalWarning(FewRowsWarning):
    """A model was fitted with a validation split too small for a split-conformal interval
    at its ``coverage``: it has no interval (``interval_`` None, NaN bounds from
    ``predict_interval``, ``interval`` None from ``Predictor.predict``)."""


def _ranks(n: int, coverage: float) -> tuple[int, int]:
    a = 1.0 - coverage
    return (int(np.floor((n + 1) * a / 2 + 1e-9)),  # 1e-9: 1 - 0.9 is 0.0999... in floats
            int(np.ceil((n + 1) * (1 - a / 2) - 1e-9)))


def min_residuals(coverage: float) -> int:
    """The fewest held-out residuals for which :func:`conformal_interval` gives bounds at
    ``coverage`` (19 at 0.9, 39 at 0.95)."""
    n = max(1, int(2 / (1.0 - coverage)) - 3)
    while True:
        k_lo, k_hi = _ranks(n, coverage)
        if k_lo >= 1 and k_hi <= n:
            return n
        n += 1


def min_training_rows(coverage: float, val_fraction: float) -> int | None:
    """The fewest rows an estimator fit needs for an interval: at least ``MIN_SPLIT_ROWS``
    and ``round(rows * val_fraction) >= min_residuals(coverage)`` (93 at 0.9 and 0.2).
    None when ``val_fraction`` is 0 (no split, never an interval)."""
    if val_fraction <= 0:
        return None
    need = min_residuals(coverage)
    rows = max(MIN_SPLIT_ROWS, int((need - 0.5) / val_fraction) - 2)
    while int(round(rows * val_fraction)) < need:
        rows += 1
    return rows


def conformal_interval(residuals: np.ndarray, coverage: float) -> dict | None:
    """Split-conformal bounds on log(measured / predicted): the ``floor((n+1) a/2)``-th and
    ``ceil((n+1)(1 - a/2))``-th smallest of ``n`` held-out residuals (a = 1 - coverage),
    which cover a new point with probability >= coverage when it is exchangeable with the
    held-out ones. None when ``n`` is too small for that coverage."""
    if not 0 < coverage < 1:
        raise DataError(f"coverage must be in (0, 1), got {coverage}")
    r = np.sort(np.asarray(residuals, dtype=float))
    n = len(r)
    k_lo, k_hi = _ranks(n, coverage)
    if n == 0 or k_lo < 1 or k_hi > n:
        return None
    return {"nominal": float(coverage), "lo": float(r[k_lo - 1]), "hi": float(r[k_hi - 1]),
            "n": int(n), "method": "split conformal, log runtime, validation split"}


def no_interval_message(n_val: int, n_rows: int, coverage: float, val_fraction: float) -> str:
    """The text of :class:`NoIntervalWarning` for a fit on ``n_rows`` rows."""
    need = min_residuals(coverage)
    rows = min_training_rows(coverage, val_fraction)
    return (f"{n_val} validation rows (of {n_rows}) are too few for a {coverage:g} "
            f"split-conformal prediction interval, which needs at least {need}"
            + (f" ({rows} training rows at val_fraction={val_fraction:g})" if rows else "")
            + ": the model has no interval (predict_interval gives NaN bounds)")
