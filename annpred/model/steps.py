"""Runtime steps: where a parameter makes the runtime constant over intervals and jump at
their edges (tile sizes, vector widths, padded dimensions), found from 1-D sweeps.

:func:`detect_period` fits a sweep, for every candidate period ``s``, with the complexity
expressions evaluated at ``x -> ceiling(x/s)*s`` (noise-weighted non-negative least squares on
``[1, x, complexity...]``) and compares with the smooth fit (``s = 1``). A period is accepted
only if it lowers the noise-weighted misfit by at least ``TAU`` (a "5 sigma" improvement), at
least halves it, explains the sweep down to the noise (chi-square per degree of freedom at most
``MAX_CHI2_DOF``), and the fitted jumps at two or more plateau edges inside the sweep exceed
``K_NOISE`` times the noise. Smooth noisy data therefore yield no step.

The detected steps feed step-aware features: :func:`step_complexity` rewrites each complexity
expression with ``x -> ceiling(x/s)*s`` (sympy, on the whitelisted parse). The PR sampler
(:mod:`annpred.measure.pr`) and training (``--steps auto``) both use this module.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np
import pandas as pd
import sympy as sp

from annpred.errors import ParameterError
from annpred.spec import expr as _expr

NOISE_FLOOR = 0.005  # relative noise never assumed below 0.5 %
TAU = 25.0  # minimum drop of the noise-weighted chi-square (a 5-sigma improvement)
RATIO = 0.5  # the step model must at least halve the smooth model's misfit
K_NOISE = 3.0  # a plateau edge counts when the fitted jump exceeds K_NOISE x noise
MIN_EDGES = 2  # edges needed to accept a period
MIN_SWEEP = 8  # fewest distinct values in a sweep used for detection
MAX_CHI2_DOF = 6.0  # the step model must explain a sweep down to the noise (rms <= ~2.5 sigma)
MAX_PERIOD = 512


# -- noise ----------------------------------------------------------------------------------
def point_noise(runtime, cv=None, runtime_min=None, floor: float = NOISE_FLOOR) -> np.ndarray:
    """Relative noise of each measured median, estimated from its repeats: the repeats'
    dispersion ``runtime_cv`` (a robust CV in the measurement protocol), never below
    ``floor``. Where the CV is missing, the gap to the fastest repeat ``(runtime -
    runtime_min) / runtime`` stands in for it."""
    t = np.asarray(runtime, dtype=float)
    sig = np.full(t.shape, np.nan)
    if cv is not None:
        sig = np.asarray(cv, dtype=float).copy()
    if runtime_min is not None:
        m = np.asarray(runtime_min, dtype=float)
        with np.errstate(all="ignore"):
            gap = (t - m) / t
        sig = np.where(np.isfinite(sig), sig, gap)
    sig = np.where(np.isfinite(sig), sig, 0.0)
    return np.fmax(sig, float(floor))


# -- step-aware expressions -----------------------------------------------------------------
def step_expr(text: str, steps: Mapping[str, int], symbols: Sequence[str] | None = None) -> str:
    """Rewrite one complexity expression with ``x -> ceiling(x/s)*s`` for every ``x: s`` in
    ``steps`` (simultaneously); returns canonical text parseable by :func:`annpred.expr.parse`."""
    e = _expr.parse(text, symbols)
    subs = {}
    for name, s in steps.items():
        s = _check_period(name, s)
        sym = sp.Symbol(name, positive=True)
        subs[sym] = sp.ceiling(sym / s) * s
    return _expr.to_text(e.xreplace(subs))


def step_complexity(complexity: Mapping[str, str], steps: Mapping[str, int] | None,
                    symbols: Sequence[str] | None = None) -> dict[str, str]:
    """:func:`step_expr` applied to every expression of a complexity dict."""
    if not steps:
        return dict(complexity)
    return {name: step_expr(text, steps, symbols) for name, text in complexity.items()}


def _check_period(name, s) -> int:
    if isinstance(s, bool) or not isinstance(s, (int, np.integer, float)) or s != int(s) \
            or int(s) < 2:
        raise ParameterError(f"step period for {name!r} must be an integer >= 2, got {s!r}")
    return int(s)


def stepped(x, s: int) -> np.ndarray:
    x = np.asarray(x, dtype=float)
    return np.ceil(x / s) * s


# -- detection ------------------------------------------------------------------------------
@dataclass
class StepFit:
    """Outcome of step detection for one parameter."""

    param: str
    period: int | None
    chi2_smooth: float
    chi2_step: float
    n_points: int
    n_sweeps: int
    edges: int
    reason: str

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in ("param", "period", "chi2_smooth", "chi2_step",
                                               "n_points", "n_sweeps", "edges", "reason")}


@dataclass
class Sweep:
    """One 1-D sweep: ``x`` varies, ``fixed`` holds the other parameters."""

    param: str
    fixed: dict
    x: np.ndarray
    t: np.ndarray
    sigma: np.ndarray  # relative noise per point


def _columns(sweeps: Sequence[Sweep], gs: Sequence[np.ndarray], fns) -> list[tuple]:
    """Raw basis columns [1, x, complexity(x)...] of each sweep at its (stepped) values
    ``gs[i]``, with the indices of the columns usable there (finite and non-negative on all
    of the sweep's points). Every complexity function is evaluated once over all the sweeps'
    points (the other parameters held at each sweep's fixed values), not once per sweep: a
    tuning space holds hundreds of sweeps, each tried at every candidate period."""
    lengths = [len(g) for g in gs]
    G = np.concatenate([np.asarray(g, dtype=float) for g in gs])
    cols = [np.ones_like(G), G]
    for names, fn in fns:
        vals = [G if n == sweeps[0].param else
                np.repeat([float(sw.fixed[n]) for sw in sweeps], lengths) for n in names]
        with np.errstate(all="ignore"):
            cols.append(np.broadcast_to(np.asarray(fn(*vals), dtype=float), G.shape))
    bounds = np.cumsum([0, *lengths])
    with np.errstate(invalid="ignore"):
        usable = np.logical_and.reduceat(
            np.column_stack([np.isfinite(c) & (c >= 0) for c in cols]), bounds[:-1], axis=0)
    return [([c[a:b] for c in cols], [int(j) for j in np.flatnonzero(ok)])
            for a, b, ok in zip(bounds[:-1], bounds[1:], usable)]


def _chi2(sweeps: Sequence[Sweep], gs: Sequence[np.ndarray], fns) -> float:
    """The summed misfit of the sweeps' fits at values ``gs``."""
    return sum(_Fit(sw, g, fns, basis).chi2
               for sw, g, basis in zip(sweeps, gs, _columns(sweeps, gs, fns)))


class _Fit:
    """Noise-weighted non-negative least squares of a sweep on the basis at ``g`` (``basis``:
    its :func:`_columns` entry, when the caller has it)."""

    def __init__(self, sweep: Sweep, g: np.ndarray, fns, basis=None):
        from scipy.optimize import nnls

        self.sweep, self.fns = sweep, fns
        cols, self.keep = _columns([sweep], [g], fns)[0] if basis is None else basis
        X = np.column_stack([cols[i] for i in self.keep])
        scale = np.abs(X).max(axis=0)
        self.scale = np.where(scale > 0, scale, 1.0)
        X = X / self.scale
        w = 1.0 / (sweep.sigma * sweep.t)
        self.coef, _ = nnls(X * w[:, None], sweep.t * w)
        self.chi2 = float(np.sum(((sweep.t - X @ self.coef) * w) ** 2))

    def predict(self, g: np.ndarray) -> np.ndarray:
        cols, _ = _columns([self.sweep], [g], self.fns)[0]
        X = np.column_stack([cols[i] for i in self.keep]) / self.scale
        return X @ self.coef


def _two_adic(s: int) -> int:
    return (s & -s).bit_length() - 1


def detect_period(sweeps: Sequence[Sweep], complexity: Mapping[str, str] | None = None,
                  params: Sequence[str] | None = None, max_period: int = MAX_PERIOD,
                  tau: float = TAU, ratio: float = RATIO, k_noise: float = K_NOISE,
                  min_edges: int = MIN_EDGES) -> StepFit:
    """Find the period of the steps of one parameter from its sweeps (see module doc)."""
    sweeps = [s for s in sweeps if len(np.unique(s.x)) >= MIN_SWEEP]
    name = sweeps[0].param if sweeps else "?"
    if not sweeps:
        return StepFit(name, None, 0.0, 0.0, 0, 0, 0, f"fewer than {MIN_SWEEP} sweep points")
    n = int(sum(len(s.x) for s in sweeps))
    fns = []
    for text in (complexity or {}).values():
        names = tuple(_expr.free_symbols(text, params))
        if name in names:
            fns.append((names, _expr.compile(text, names)))
    x_lo = min(float(np.min(s.x)) for s in sweeps)
    x_hi = max(float(np.max(s.x)) for s in sweeps)
    chi0 = _chi2(sweeps, [s.x.astype(float) for s in sweeps], fns)
    top = int(min(max_period, (x_hi - x_lo) / min_edges))
    chis = {}
    for period in range(2, top + 1):
        # at least min_edges plateau edges (multiples of the period) inside some sweep
        if max(_edges_inside(s.x, period) for s in sweeps) < min_edges:
            continue
        chis[period] = _chi2(sweeps, [stepped(s.x, period) for s in sweeps], fns)
    if not chis:
        return StepFit(name, None, chi0, chi0, n, len(sweeps), 0, "sweep too short for steps")
    chi_best = min(chis.values())
    near = [p for p, c in chis.items() if c <= chi_best + max(2.0, 0.05 * chi_best)]
    best = max(near, key=lambda p: (_two_adic(p), -chis[p]))
    chi_s = chis[best]
    if chi0 - chi_s < tau:
        return StepFit(name, None, chi0, chi_s, n, len(sweeps), 0,
                       f"best period {best} improves the fit by {chi0 - chi_s:.1f} < {tau:g}")
    if chi_s > ratio * chi0:
        return StepFit(name, None, chi0, chi_s, n, len(sweeps), 0,
                       f"best period {best} leaves {chi_s / chi0:.0%} of the misfit")
    dof = max(1, n - 3 * len(sweeps))
    if chi_s / dof > MAX_CHI2_DOF:
        return StepFit(name, None, chi0, chi_s, n, len(sweeps), 0,
                       f"period {best} does not explain the sweep down to the noise "
                       f"(chi2/dof {chi_s / dof:.1f} > {MAX_CHI2_DOF:g})")
    edges = sum(_visible_edges(s, best, fns, k_noise) for s in sweeps)
    if edges < min_edges:
        return StepFit(name, None, chi0, chi_s, n, len(sweeps), edges,
                       f"period {best}: only {edges} edge(s) above {k_noise:g}x noise")
    return StepFit(name, best, chi0, chi_s, n, len(sweeps), edges, "ok")


def _edges_inside(x: np.ndarray, period: int) -> int:
    lo, hi = float(np.min(x)), float(np.max(x))
    return max(0, int(math.floor((hi - 1) / period) - math.ceil(lo / period) + 1))


def _visible_edges(sweep: Sweep, period: int, fns, k_noise: float) -> int:
    """Plateau edges b (multiples of the period inside the sweep) whose fitted jump
    f(b+1) - f(b) exceeds ``k_noise`` times the sweep's median noise."""
    fit = _Fit(sweep, stepped(sweep.x, period), fns)
    lo, hi = float(np.min(sweep.x)), float(np.max(sweep.x))
    edges = np.arange(math.ceil(lo / period), math.floor((hi - 1) / period) + 1) * period
    if len(edges) == 0:
        return 0
    before = fit.predict(edges.astype(float))
    after = fit.predict((edges + period).astype(float))
    noise = float(np.median(sweep.sigma))
    rel = (after - before) / np.maximum(before, 1e-300)
    return int(np.sum(rel > k_noise * noise))


def find_sweeps(df: pd.DataFrame, params: Sequence[str], param: str,
                min_points: int = MIN_SWEEP) -> list[Sweep]:
    """The 1-D sweeps of ``param`` in a frame of measurements: groups of rows where every
    other parameter is equal and ``param`` takes at least ``min_points`` distinct values.
    Repeated points are averaged."""
    others = [p for p in params if p != param]
    out = []
    cv = df["runtime_cv"] if "runtime_cv" in df.columns else None
    tmin = df["runtime_min_s"] if "runtime_min_s" in df.columns else None
    sig = point_noise(df["runtime_s"], None if cv is None else pd.to_numeric(cv, errors="coerce"),
                      None if tmin is None else pd.to_numeric(tmin, errors="coerce"))
    work = pd.DataFrame({param: pd.to_numeric(df[param]).to_numpy(dtype=float),
                         "_t": df["runtime_s"].to_numpy(dtype=float), "_sig": sig})
    for o in others:
        work[o] = pd.to_numeric(df[o]).to_numpy(dtype=float)
    groups = work.groupby(others, sort=True) if others else [((), work)]
    for key, g in groups:
        if g[param].nunique() < min_points:
            continue
        agg = g.groupby(param, sort=True).agg(_t=("_t", "mean"), _sig=("_sig", "max"))
        key = key if isinstance(key, tuple) else (key,)
        out.append(Sweep(param, dict(zip(others, key)), agg.index.to_numpy(dtype=float),
                         agg["_t"].to_numpy(dtype=float), agg["_sig"].to_numpy(dtype=float)))
    return out


def detect_steps(df: pd.DataFrame, params: Sequence[str],
                 complexity: Mapping[str, str] | None = None,
                 candidates: Sequence[str] | None = None) -> tuple[dict[str, int], list[StepFit]]:
    """Detect step periods for every parameter that has 1-D sweeps in ``df`` (a frame with
    parameter columns, ``runtime_s`` and optionally ``runtime_cv``/``runtime_min_s``).
    Returns ``({param: period}, [StepFit, ...])``; frames without sweeps give ``{}``."""
    steps, fits = {}, []
    for p in (candidates or params):
        if p not in df.columns:
            continue
        vals = pd.to_numeric(df[p], errors="coerce").to_numpy(dtype=float)
        if not np.all(np.isfinite(vals)) or np.any(vals != np.round(vals)) or np.any(vals < 1):
            continue  # steps are for positive integer parameters
        sw = find_sweeps(df, params, p)
        if not sw:
            continue
        fit = detect_period(sw, complexity, params)
        fits.append(fit)
        if fit.period is not None:
            steps[p] = fit.period
    return steps, fits
