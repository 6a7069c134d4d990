"""Corrections that map a model's predictions to another machine: format and fitting.

A model measured on one machine predicts another machine's runtimes off by a factor that
may drift with the size of the call (the issue that motivated this measured 0.38x at the
smallest matrix products and 0.64x at the largest). A correction, fitted on a few probe
points measured on the new machine, rewrites a prediction ``s`` as

    log s' = log s + offset + slope * (clip(log s, lo, hi) - ref)
                        + sum_j weights[j] * (clip(x_j, x_lo[j], x_hi[j]) - center[j])

where ``x`` are the model's own transformed inputs (log of parameters and complexities).
Three forms, from the fewest numbers up: ``factor`` (slope and weights 0: one factor for
every call), ``factor+slope`` (the error drifts with the runtime) and ``features`` (a ridge
fit of the log error on the inputs: e.g. another cache size shifts large sizes only). The
clips keep a correction from extrapolating beyond the probes (outside them it stays at its
edge value). The form, and the ridge strength, are chosen on the probe data only, by
leave-one-out error; ``features`` needs at least twice as many probes as inputs.

The corrections of one machine live in ``<models>/calibration/<fingerprint>.json``
(:data:`FORMAT`); each names the model it corrects by kernel, variant, hardware id and the
digest of the model file's content (:func:`model_digest`), so a retrained or replaced model is
never corrected with another model's numbers. Fitting needs numpy only; applying lives on the
runtime side (:mod:`annpred.runtime.correction`).
"""
from __future__ import annotations

import hashlib
import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from annpred.data.rows import CsvLock
from annpred.errors import ModelFormatError
from annpred.files import atomic_write_text
from annpred.model.schema import parse_json, validate_machine
from annpred.validate import read_limited

FORMAT = "annpred-calibration/1"
FOLDER = "calibration"
MIN_FOR_SLOPE = 5  # probes needed before the slope form is considered
SLOPE_BOUNDS = (-0.9, 2.0)  # 1 + slope stays positive: a correction never reverses order


def model_digest(model: dict) -> str:
    """16 hex digits of the SHA-256 of a model dict's canonical JSON."""
    text = json.dumps(model, sort_keys=True, separators=(",", ":"), default=float)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def apply_log(logs, corr: dict, x=None):
    """Corrected log-seconds; ``x``: the model's transformed inputs, (n, F) (needed by the
    ``features`` form)."""
    clipped = np.clip(logs, corr["lo"], corr["hi"])
    out = logs + corr["offset"] + corr["slope"] * (clipped - corr["ref"])
    w = corr.get("weights")
    if w:
        if x is None:
            raise ModelFormatError("a features correction needs the model's inputs")
        xc = np.clip(np.asarray(x, dtype=float), corr["x_lo"], corr["x_hi"])
        out = out + (xc - np.asarray(corr["center"])) @ np.asarray(w)
    return out


RIDGE = (0.1, 1.0, 10.0)  # ridge strengths tried (on standardised inputs, times n)


def _fit_features(x: np.ndarray, d: np.ndarray):
    """Ridge of the log error on standardised inputs; the strength with the lowest
    leave-one-out error (closed form). Returns (loo MAPE, offset, weights, center)."""
    mu, sd = x.mean(axis=0), x.std(axis=0)
    use = sd > 1e-9
    z = (x[:, use] - mu[use]) / sd[use]
    n, f = z.shape
    A = np.hstack([np.ones((n, 1)), z])
    best = None
    for lam in RIDGE:
        pen = lam * n * np.eye(f + 1)
        pen[0, 0] = 0.0  # the intercept is not shrunk
        M = np.linalg.solve(A.T @ A + pen, A.T)
        coef = M @ d
        h = np.einsum("ij,ji->i", A, M)
        loo = (d - A @ coef) / np.maximum(1 - h, 1e-6)
        err = _mape(loo)
        if best is None or err < best[0]:
            best = (err, coef)
    err, coef = best
    w = np.zeros(x.shape[1])
    w[use] = coef[1:] / sd[use]
    return err, float(coef[0]), w, mu


def _mape(resid: np.ndarray) -> float:
    """MAPE (%) of predictions whose log error is ``resid`` (log measured - log predicted)."""
    return float(np.mean(np.abs(np.exp(-resid) - 1.0)) * 100)


def _fit_factor(x: np.ndarray, d: np.ndarray) -> tuple[float, float]:
    return float(np.median(d)), 0.0


def _fit_slope(x: np.ndarray, d: np.ndarray, ref: float) -> tuple[float, float]:
    """Theil-Sen: median of pairwise slopes (robust to a spoiled probe), then the median
    offset."""
    i, j = np.triu_indices(len(x), 1)
    dx = x[j] - x[i]
    ok = np.abs(dx) > 1e-9
    if not ok.any():
        return _fit_factor(x, d)
    b = float(np.median((d[j] - d[i])[ok] / dx[ok]))
    b = min(max(b, SLOPE_BOUNDS[0]), SLOPE_BOUNDS[1])
    return float(np.median(d - b * (x - ref))), b


def _loo(x: np.ndarray, d: np.ndarray, form: str) -> float:
    resid = []
    for k in range(len(x)):
        keep = np.arange(len(x)) != k
        xs, ds = x[keep], d[keep]
        ref = float(np.mean(xs))
        a, b = _fit_factor(xs, ds) if form == "factor" else _fit_slope(xs, ds, ref)
        pred = a + b * (min(max(x[k], xs.min()), xs.max()) - ref)
        resid.append(d[k] - pred)
    return _mape(np.asarray(resid))


def fit_correction(predicted_s, measured_s, inputs=None) -> dict:
    """Fit a correction from a model's predictions and this machine's measurements at the
    same probe points (``inputs``: the model's transformed inputs there, (n, F), for the
    ``features`` form). Returns the correction fields plus the probes' MAPE before and
    after, and the leave-one-out MAPE of each form considered."""
    p = np.asarray(predicted_s, dtype=float)
    m = np.asarray(measured_s, dtype=float)
    if p.shape != m.shape or p.ndim != 1 or len(p) < 1:
        raise ModelFormatError("a correction needs predicted and measured seconds of the same "
                               "(non-empty) probe points")
    if not (np.all(np.isfinite(p)) and np.all(p > 0) and np.all(np.isfinite(m))
            and np.all(m > 0)):
        raise ModelFormatError("predicted and measured seconds must be finite and positive")
    x, d = np.log(p), np.log(m) - np.log(p)
    ref = float(np.mean(x))
    forms = {"factor": _loo(x, d, "factor") if len(x) >= 2 else None}
    if len(x) >= MIN_FOR_SLOPE and np.ptp(x) > 0.5:  # a slope needs a spread of runtimes
        forms["factor+slope"] = _loo(x, d, "factor+slope")
    feat = None
    if inputs is not None:
        X = np.asarray(inputs, dtype=float)
        if X.ndim != 2 or len(X) != len(x) or not np.all(np.isfinite(X)):
            raise ModelFormatError("inputs must be a finite (n_probes, n_features) matrix")
        if len(x) >= 2 * X.shape[1] + 2:
            feat = _fit_features(X, d)
            forms["features"] = feat[0]
    cands = {k: v for k, v in forms.items() if v is not None}
    form = min(cands, key=cands.get) if cands else "factor"
    a, b = _fit_factor(x, d) if form != "factor+slope" else _fit_slope(x, d, ref)
    corr = {"form": form, "offset": a, "slope": b, "ref": ref, "lo": float(x.min()),
            "hi": float(x.max())}
    if form == "features":
        corr.update(offset=feat[1], slope=0.0, weights=feat[2].tolist(),
                    center=feat[3].tolist(), x_lo=X.min(axis=0).tolist(),
                    x_hi=X.max(axis=0).tolist())
    after = d - (apply_log(x, corr, X if form == "features" else None) - x)
    corr.update({"n_probes": int(len(x)), "probe_mape_before": _mape(d),
                 "probe_mape_after": _mape(after),
                 "loo_mape": {k: v for k, v in forms.items() if v is not None}})
    return corr


# -- files --------------------------------------------------------------------------------
_NUM = ("offset", "slope", "ref", "lo", "hi")


def validate(d: Any, where: str) -> dict:
    if not isinstance(d, dict) or d.get("format") != FORMAT:
        raise ModelFormatError(f"{where}: not an {FORMAT} file")
    validate_machine(d.get("machine"), f"{where}: machine")
    cs = d.get("corrections")
    if not isinstance(cs, list):
        raise ModelFormatError(f"{where}: corrections must be a list")
    for i, c in enumerate(cs):
        check_one(c, f"{where}: corrections[{i}]")
    return d


def check_one(c: Any, w: str, ids: bool = True) -> dict:
    """One correction's fields (as in a calibration file; ``ids`` False: without the model's
    kernel, variant, hardware and digest, as :func:`fit_correction` returns it);
    ModelFormatError naming ``w``."""
    if not isinstance(c, dict):
        raise ModelFormatError(f"{w} must be an object")
    for k in ("kernel", "variant", "hardware", "model_digest") if ids else ():
        if not isinstance(c.get(k), str) or not c[k]:
            raise ModelFormatError(f"{w}.{k} must be a non-empty string")
    for k in _NUM:
        v = c.get(k)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise ModelFormatError(f"{w}.{k} must be a finite number")
    if c["lo"] > c["hi"] or not (SLOPE_BOUNDS[0] <= c["slope"] <= SLOPE_BOUNDS[1]):
        raise ModelFormatError(f"{w}: needs lo <= hi and slope in {list(SLOPE_BOUNDS)}")
    v = c.get("input_sets_median")  # absent in calibrations before it (stop 45)
    if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
        raise ModelFormatError(f"{w}.input_sets_median must be an integer >= 1")
    if c.get("weights") is not None:
        n = len(c["weights"]) if isinstance(c["weights"], list) else -1
        for k in ("weights", "center", "x_lo", "x_hi"):
            v = c.get(k)
            if (not isinstance(v, list) or len(v) != n or n < 1 or any(
                    isinstance(e, bool) or not isinstance(e, (int, float))
                    or not math.isfinite(e) for e in v)):
                raise ModelFormatError(f"{w}.{k} must be a list of {max(n, 1)} finite "
                                       "numbers (one per model input)")
    return c


def path_for(root: str | os.PathLike, fingerprint: str) -> Path:
    return Path(root) / FOLDER / f"{fingerprint}.json"


MAX_FILE_BYTES = 4 << 20  # a correction is < 2 kB: thousands of models per machine


def load(path: str | os.PathLike) -> dict:
    """Read and validate a calibration file with the model files' bounded reader and parser
    (a regular file of at most :data:`MAX_FILE_BYTES`, strict JSON of bounded nesting and
    integers); ModelFormatError naming the file otherwise."""
    path = Path(path)
    where = f"calibration file {path}"
    data = read_limited(path, "calibration file", MAX_FILE_BYTES, ModelFormatError)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ModelFormatError(f"{where}: not UTF-8 text") from None
    return validate(parse_json(text, where), where)


def check_fits(corr: dict, model: dict, where: str = "correction") -> dict:
    """``corr`` if it can correct ``model`` (a validated model dict): a ``features``
    correction has one weight, center and clip bound per model input; ModelFormatError
    otherwise (a stale or foreign calibration file)."""
    check_one(corr, where, ids=False)
    n = len(model["features"])
    w = corr.get("weights")
    if w and any(not isinstance(corr.get(k), list) or len(corr[k]) != n
                 for k in ("weights", "center", "x_lo", "x_hi")):
        raise ModelFormatError(f"{where}: a features correction with {len(w)} weight(s) "
                               f"does not fit model {model['kernel']}/{model['variant']}/"
                               f"{model['hardware']}, which has {n} inputs")
    return corr


LOCK_WAIT_S = 30.0  # how long save waits for another process merging into the same file


def save(root: str | os.PathLike, machine: dict, corrections: list[dict]) -> Path:
    """Merge ``corrections`` into the machine's calibration file under ``root`` (a newer
    correction of the same model replaces the older one); atomic, and under the file's lock
    (another process saving into it meanwhile waits up to :data:`LOCK_WAIT_S`)."""
    path = path_for(root, machine["fingerprint"])
    with CsvLock(path, wait=LOCK_WAIT_S):  # two calibrations finishing together: both kept
        old = load(path)["corrections"] if path.exists() else []
        keys = {(c["kernel"], c["variant"], c["hardware"]) for c in corrections}
        merged = [c for c in old if (c["kernel"], c["variant"], c["hardware"]) not in keys]
        merged += corrections
        d = validate({"format": FORMAT, "machine": machine, "corrections": merged}, str(path))
        atomic_write_text(path, json.dumps(d, indent=1) + "\n")
    return path

