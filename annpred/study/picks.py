"""How far the picks of a tuning-space search can be trusted.

The picks: of thousands of candidates, those a model ranks fastest are those it
underestimates most, so they run slower than predicted, and an interval calibrated on random
validation rows covers them far less often than it says. The guided rounds pick the same
way, so each round records log(measured / predicted when picked) of what it picked;
:func:`pick_interval` turns those into the picks' expected runtime (the median ratio) and a
split-conformal interval for the final top picks (``SpaceResult.picks``, judged by
:func:`judge_picks`). A pick's prediction there is the *cautious* one, the slower of the
last two fits' (``SpaceResult.cautious``): a fit that alone predicts a region far faster
than the fit before it (e.g. 8x on a configuration family it never measured) is not
believed; the ranking itself stays the last fit's, which finds the optimum more often. In a
partial run, :func:`picks_since` reads the ratios from an earlier prediction, which is also
the cautious one's second fit (``tune-space --previous``)."""
from __future__ import annotations

import numpy as np

PICK_COVERAGE = 0.9  # nominal coverage of the picks' interval for models without their own


def pick_interval(log_ratios, coverage: float | None = None) -> dict | None:
    """How the configurations a model picks as fastest really run: from ``log(measured /
    predicted when picked)`` of the guided rounds' picks, the median (``expected`` =
    predicted * exp(median)) and split-conformal bounds at ``coverage``, to be applied to
    the final top picks (both predicted cautiously: the slower of the last two fits). A
    model's fastest predictions are where it errs low (of thousands of candidates, those it
    underestimates most rank first), so its interval from random validation rows covers
    them far less often than it says; the rounds' picks were chosen the same way, by an
    earlier fit of the same model. None when there are too few picks."""
    from annpred.model.interval import conformal_interval

    r = np.asarray(log_ratios, dtype=float)
    r = r[np.isfinite(r)]
    iv = conformal_interval(r, PICK_COVERAGE if coverage is None else coverage)
    if iv is None:
        return None
    return {**iv, "median": float(np.median(r)),
            "method": "split conformal on the guided rounds' picks, log(measured / the "
                      "slower of the last two fits' predictions when picked)"}


def cautious(predicted, earlier=None) -> np.ndarray:
    """The cautious prediction of picks: the slower of ``predicted`` and an ``earlier``
    prediction of the same configurations (``predicted`` where there is none: ``earlier``
    None or NaN)."""
    p = np.asarray(predicted, dtype=float)
    return p if earlier is None else np.fmax(p, np.asarray(earlier, dtype=float))


def previous_predictions(X, params, previous) -> np.ndarray:
    """An earlier prediction (``previous``: a frame of the parameters and ``predicted_s``,
    as ``tune-space --out`` writes it) of each row of ``X``, matched by the tuning
    parameters; NaN where it has none."""
    from annpred.data.transfer import COLUMN  # an input, not a tuning parameter

    keys = [p for p in params if p in previous.columns and p != COLUMN]
    then = dict(zip(map(tuple, previous[keys].to_numpy(dtype=float).tolist()),
                    previous["predicted_s"].to_numpy(dtype=float)))
    return np.array([then.get(t, np.nan) for t in
                     map(tuple, X[keys].to_numpy(dtype=float).tolist())], dtype=float)


def picks_since(c, previous) -> np.ndarray:
    """log(measured / predicted) of the configurations ``c`` (a combination) has measured
    that an earlier prediction covered (then unmeasured): in a partial tuning run, the
    rounds' picks (see :func:`pick_interval`)."""
    then = previous_predictions(c.X, c.params, previous)
    ok = np.isfinite(then)
    return np.log(c.y[ok] / then[ok])


def apply_picks(picks: dict, predicted) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(expected, low, high)`` seconds for picks predicted at ``predicted`` seconds, from a
    :func:`pick_interval`."""
    p = np.asarray(predicted, dtype=float)
    return p * np.exp(picks["median"]), p * np.exp(picks["lo"]), p * np.exp(picks["hi"])


def judge_picks(r, y: np.ndarray) -> dict:
    """How the top picks of ``r`` (a :class:`~annpred.study.tunespace.SpaceResult`) ran
    (``y``: every configuration's runtime): how many of them each interval covers (``None``
    where there is no such interval), the median of measured / predicted and of measured /
    expected, and each interval's width (high / low)."""
    top = np.asarray(r.top_rows, dtype=int)
    out = {"top": len(top), "over_predicted": float(np.median(y[top] / r.predicted[top])),
           "net_covered": None, "net_width": None, "picks_covered": None,
           "over_expected": None, "picks_width": None, "picks_n": None}
    if r.low is not None:
        out["net_covered"] = int(((y[top] >= r.low[top]) & (y[top] <= r.high[top])).sum())
        out["net_width"] = float(np.median(r.high[top] / r.low[top]))
    if r.picks is not None:
        expected, low, high = r.expected(top)
        out.update(picks_covered=int(((y[top] >= low) & (y[top] <= high)).sum()),
                   over_expected=float(np.median(y[top] / expected)),
                   picks_width=float(np.exp(r.picks["hi"] - r.picks["lo"])),
                   picks_n=int(r.picks["n"]))
    return out
