"""Accuracy metrics on runtimes: MAPE over all points (headline), the papers' filtered MAPE
(smallest 30% of measured runtimes dropped, labelled), MdAPE, share within +-10%, Spearman,
and the noise floor (MAPE between two measurement passes over the same points)."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

FILTER_DROP = 0.3  # the papers' filter: drop the smallest 30% of runtimes


def _pair(y_true, y_pred) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y_true, dtype=float).ravel()
    p = np.asarray(y_pred, dtype=float).ravel()
    if y.shape != p.shape:
        raise ValueError(f"y_true has {y.size} values but y_pred has {p.size}")
    if y.size == 0:
        raise ValueError("no values to score")
    if np.any(y <= 0) or not np.all(np.isfinite(y)):
        raise ValueError("measured runtimes must be finite and positive")
    return y, p


def relative_errors(y_true, y_pred) -> np.ndarray:
    y, p = _pair(y_true, y_pred)
    return np.abs(p - y) / y


def mape(y_true, y_pred) -> float:
    """Mean absolute percentage error over all points, in percent."""
    return float(np.mean(relative_errors(y_true, y_pred)) * 100.0)


def filtered_mape(y_true, y_pred, drop: float = FILTER_DROP) -> float:
    """The papers' filtered MAPE (percent): the ``floor(drop * n)`` smallest *measured*
    runtimes are dropped before averaging. Reported for comparison only, and labelled."""
    y, p = _pair(y_true, y_pred)
    if not 0 <= drop < 1:
        raise ValueError("drop must be in [0, 1)")
    keep = np.argsort(y, kind="stable")[int(math.floor(drop * y.size)):]
    return mape(y[keep], p[keep])


def mdape(y_true, y_pred) -> float:
    """Median absolute percentage error (percent): insensitive to the few measurements a busy
    machine spoils, which dominate the mean on noisy combinations."""
    return float(np.median(relative_errors(y_true, y_pred)) * 100.0)


def within(y_true, y_pred, tol: float = 0.10) -> float:
    """Share of predictions within +-``tol`` of the measurement, in percent."""
    return float(np.mean(relative_errors(y_true, y_pred) <= tol + 1e-12) * 100.0)


def spearman(y_true, y_pred) -> float:
    """Spearman's rank correlation (ties get average ranks); NaN if either side is constant."""
    y, p = _pair(y_true, y_pred)
    ry = pd.Series(y).rank(method="average").to_numpy()
    rp = pd.Series(p).rank(method="average").to_numpy()
    ry, rp = ry - ry.mean(), rp - rp.mean()
    den = math.sqrt(float(ry @ ry) * float(rp @ rp))
    return float(ry @ rp / den) if den > 0 else float("nan")


def score(y_true, y_pred) -> dict[str, float]:
    return {"mape": mape(y_true, y_pred), "filtered_mape": filtered_mape(y_true, y_pred),
            "within10": within(y_true, y_pred, 0.10), "spearman": spearman(y_true, y_pred),
            "mdape": mdape(y_true, y_pred)}


def noise_floor(first, second) -> float:
    """MAPE (percent) between two measurement passes over the same points: mean
    ``|second - first| / first``."""
    return mape(first, second)


def noise_floor_from_cv(cv, repeats=None) -> float:
    """Expected MAPE between two independent medians of ``repeats`` runs with robust
    coefficient of variation ``cv`` (normal approximation; percent). Sees only jitter within
    one measurement, not drift between passes: a lower bound on the two-pass floor."""
    cv = np.asarray(cv, dtype=float)
    r = np.ones_like(cv) if repeats is None else np.maximum(np.asarray(repeats, float), 1.0)
    sd_median = 1.2533 * cv / np.sqrt(r)  # sampling sd of a median, relative
    return float(np.mean(2.0 / math.sqrt(math.pi) * math.sqrt(2.0) * sd_median) * 100.0)
