"""Performance representatives (PR): fewer measurements by finding where runtime steps.

Tile sizes, vector widths and padded array dimensions make a kernel's runtime constant over
intervals of a parameter and jump at their edges. The PR sampler

1. **sweeps** each integer parameter in one dimension around one or two base points (the
   other parameters held fixed), stratified over the range (half log-, half linearly spaced
   strata) so that both small and large values are seen;
2. **detects steps** per parameter: for every candidate period ``s`` it fits the sweep with
   the kernel's complexity expressions evaluated at ``x -> ceiling(x/s)*s`` (non-negative
   least squares on ``[1, x, complexity...]``, residuals weighted by the measurement noise
   estimated from the repeats) and compares with the smooth fit (``s = 1``). A period is
   accepted only if it lowers the noise-weighted misfit by at least ``TAU`` (a "5 sigma"
   improvement), at least halves it, explains the sweep down to the noise (chi-square per
   degree of freedom at most ``MAX_CHI2_DOF``), and the fitted jumps at two or more plateau
   edges inside the sweep exceed ``K_NOISE`` times the noise. Smooth noisy data, and
   runtimes whose shape the step model cannot explain, therefore yield no step;
3. picks **representatives**, one per plateau cell: random candidate points are snapped to
   the middle of their plateau for every stepped parameter, and a space-filling subset of
   distinct cells (support points: k-means centres of the candidate pool, the measured
   points held as fixed centres) is measured with the rest of the budget.

Every measured point, sweeps included, counts against the budget and is training data.
The detected steps feed step-aware features: :func:`step_complexity` rewrites each
complexity expression with ``x -> ceiling(x/s)*s`` (sympy, on the whitelisted parse).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

import numpy as np
import pandas as pd
import sympy as sp

from . import expr as _expr
from .errors import ParameterError
from .kernel import Kernel

NOISE_FLOOR = 0.005  # relative noise never assumed below 0.5 %
TAU = 25.0  # minimum drop of the noise-weighted chi-square (a 5-sigma improvement)
RATIO = 0.5  # the step model must at least halve the smooth model's misfit
K_NOISE = 3.0  # a plateau edge counts when the fitted jump exceeds K_NOISE x noise
MIN_EDGES = 2  # edges needed to accept a period
MIN_SWEEP = 8  # fewest distinct values in a sweep used for detection
MAX_CHI2_DOF = 6.0  # the step model must explain a sweep down to the noise (rms <= ~2.5 sigma)
MAX_PERIOD = 512
MIN_BUDGET_FOR_SWEEPS = 24  # below this the PR sampler only does the space-filling part
SWEEP_FRACTION = 0.4
MIN_SWEEP_RANGE = 16  # parameters spanning fewer values are not swept
MAX_SWEEP = 16  # most points of one sweep (more rarely change the detected period)
PLANNER_VERSION = 2  # bumped when the planner's requests change for the same measurements


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


def _columns(sweep: Sweep, g: np.ndarray, fns) -> list[np.ndarray]:
    """Raw basis columns [1, x, complexity(x)...] at (stepped) values ``g``."""
    cols = [np.ones_like(g), g]
    for names, fn in fns:
        vals = [g if n == sweep.param else np.full_like(g, float(sweep.fixed[n])) for n in names]
        with np.errstate(all="ignore"):
            cols.append(np.broadcast_to(np.asarray(fn(*vals), dtype=float), g.shape))
    return cols


class _Fit:
    """Noise-weighted non-negative least squares of a sweep on the basis at ``g``."""

    def __init__(self, sweep: Sweep, g: np.ndarray, fns):
        from scipy.optimize import nnls

        self.sweep, self.fns = sweep, fns
        cols = _columns(sweep, g, fns)
        self.keep = [i for i, c in enumerate(cols) if np.all(np.isfinite(c)) and np.all(c >= 0)]
        X = np.column_stack([cols[i] for i in self.keep])
        scale = np.abs(X).max(axis=0)
        self.scale = np.where(scale > 0, scale, 1.0)
        X = X / self.scale
        w = 1.0 / (sweep.sigma * sweep.t)
        self.coef, _ = nnls(X * w[:, None], sweep.t * w)
        self.chi2 = float(np.sum(((sweep.t - X @ self.coef) * w) ** 2))

    def predict(self, g: np.ndarray) -> np.ndarray:
        cols = _columns(self.sweep, np.asarray(g, dtype=float), self.fns)
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
    chi0 = sum(_Fit(s, s.x.astype(float), fns).chi2 for s in sweeps)
    top = int(min(max_period, (x_hi - x_lo) / min_edges))
    chis = {}
    for period in range(2, top + 1):
        # at least min_edges plateau edges (multiples of the period) inside some sweep
        if max(_edges_inside(s.x, period) for s in sweeps) < min_edges:
            continue
        chis[period] = sum(_Fit(s, stepped(s.x, period), fns).chi2 for s in sweeps)
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


# -- planning -------------------------------------------------------------------------------
@dataclass
class Measurement:
    runtime_s: float
    runtime_cv: float = float("nan")
    repeats: int = 0
    runtime_min_s: float = float("nan")


@dataclass
class PRResult:
    steps: dict[str, int]
    fits: list[StepFit]
    points: pd.DataFrame  # parameters, role (sweep/representative), runtime_s, ...
    budget: int

    @property
    def n_measured(self) -> int:
        return len(self.points)


class BudgetExhausted(Exception):
    pass


def _to_unit(p, v: float) -> float:
    if p.sampling == "choice":
        ch = sorted(p.choices)
        return ch.index(v) / max(len(ch) - 1, 1) if v in ch else 0.0
    if p.high <= p.low:
        return 0.0
    if p.sampling in ("log", "pow2"):
        return (math.log(v) - math.log(p.low)) / (math.log(p.high) - math.log(p.low))
    return (v - p.low) / (p.high - p.low)


def _from_unit(p, u: float):
    if p.sampling == "choice":
        ch = sorted(p.choices)
        return ch[min(int(u * len(ch)), len(ch) - 1)]
    if p.sampling in ("log", "pow2"):
        v = math.exp(math.log(p.low) + u * (math.log(p.high) - math.log(p.low)))
        if p.sampling == "pow2":
            v = 2.0 ** round(math.log2(v))
    else:
        v = p.low + u * (p.high - p.low)
    v = min(max(v, p.low), p.high)
    return int(round(v)) if p.kind == "int" else float(v)


def _support_points(U: np.ndarray, fixed: np.ndarray, n: int, rng: np.random.Generator,
                    iters: int = 25) -> list[int]:
    """Indices of ``n`` distinct rows of the candidate pool ``U`` (unit coordinates, drawn
    from the kernel's sampling distribution) that represent the pool: k-means with ``n``
    free centres plus the already measured points as fixed centres, each free centre then
    replaced by its nearest unused candidate. Unlike maximin designs this follows the
    sampling distribution (which the test points follow too) instead of crowding the
    boundary, while spreading points evenly and away from what was measured."""
    if n <= 0:
        return []
    k0 = len(fixed)
    # k-means++ seeding of the free centres, taking the fixed ones into account
    d = (np.min(((U[:, None, :] - fixed[None]) ** 2).sum(-1), axis=1) if k0
         else np.full(len(U), 1.0))
    centres = []
    for _ in range(n):
        prob = d / d.sum() if d.sum() > 0 else np.full(len(U), 1.0 / len(U))
        i = int(rng.choice(len(U), p=prob))
        centres.append(U[i].copy())
        d = np.minimum(d, ((U - U[i]) ** 2).sum(-1))
    C = np.array(centres)
    for _ in range(iters):
        allc = np.vstack([fixed, C]) if k0 else C
        lab = np.argmin(((U[:, None, :] - allc[None]) ** 2).sum(-1), axis=1) - k0
        moved = False
        for j in range(n):
            members = U[lab == j]
            if len(members):
                c = members.mean(axis=0)
                moved |= not np.allclose(c, C[j])
                C[j] = c
        if not moved:
            break
    chosen: list[int] = []
    taken = np.zeros(len(U), dtype=bool)
    for j in range(n):
        dist = ((U - C[j]) ** 2).sum(-1)
        dist[taken] = np.inf
        i = int(np.argmin(dist))
        taken[i] = True
        chosen.append(i)
    return chosen


def _centre(p):
    if p.sampling == "choice":
        ch = sorted(p.choices)
        return ch[len(ch) // 2]
    if p.sampling in ("log", "pow2"):
        v = math.sqrt(p.low * p.high)
        if p.sampling == "pow2":
            v = 2.0 ** round(math.log2(v))
    else:
        v = (p.low + p.high) / 2
    v = min(max(v, p.low), p.high)
    return int(round(v)) if p.kind == "int" else float(v)


class PRPlanner:
    """Plans and runs PR sampling for one (kernel, variant) within ``budget`` measurements.

    ``run(measure)`` calls ``measure(point, role)`` (``role`` is ``"sweep"`` or
    ``"representative"``) once per distinct point and expects a :class:`Measurement`.
    The sequence of requests depends only on the seed and the measured values, so replaying
    recorded measurements reproduces it (the profiler resumes this way).
    """

    def __init__(self, kernel: Kernel, budget: int, seed: int = 0, variant: str | None = None,
                 sweep_fraction: float = SWEEP_FRACTION, n_base: int | None = None,
                 complexity: Mapping[str, str] | None = None):
        if budget < 1:
            raise ParameterError(f"number of samples must be >= 1, got {budget}")
        if not 0 <= sweep_fraction < 1:
            raise ParameterError("sweep_fraction must be in [0, 1)")
        self.kernel = kernel
        self.budget = int(budget)
        self.seed = int(seed)
        self.variant = variant
        self.v = kernel.variant(variant) if variant else None
        self.sweep_fraction = sweep_fraction
        self.n_base = n_base
        self.complexity = dict(complexity if complexity is not None
                               else kernel.complexity_for(variant))
        self.rng = np.random.default_rng([self.seed, 0x5052])

    # -- helpers
    def valid(self, point) -> bool:
        return self.kernel.valid(point) and (self.v is None or self.v.supports_point(point))

    def sweep_params(self) -> list[str]:
        return [p.name for p in self.kernel.params
                if p.kind == "int" and p.sampling in ("log", "uniform")
                and p.high - p.low + 1 >= MIN_SWEEP_RANGE]

    def base_points(self, n: int) -> list[dict]:
        """The centre of the domain (in each parameter's sampling scale), then random points
        in the upper-middle of every range (unit coordinate in [0.4, 0.9]), where the work
        dominates fixed overheads and steps show most clearly."""
        bases = []
        centre = {p.name: _centre(p) for p in self.kernel.params}
        if self.valid(centre):
            bases.append(centre)
        for _ in range(200):
            if len(bases) >= n:
                break
            pt = {p.name: _from_unit(p, float(self.rng.uniform(0.4, 0.9)))
                  for p in self.kernel.params}
            if self.valid(pt):
                bases.append(pt)
        if not bases:
            raise ParameterError(f"kernel {self.kernel.name}: no valid base point for sweeps")
        return bases[:n]

    def _coerce(self, pt) -> dict:
        return {p.name: (int(pt[p.name]) if p.kind == "int" else float(pt[p.name]))
                for p in self.kernel.params}

    def sweep_values(self, p, k: int) -> list[int]:
        """``k`` distinct integers over [low, high]: half in log-spaced strata, half in
        linear strata, one uniform draw per stratum."""
        lo, hi = int(math.ceil(p.low)), int(math.floor(p.high))
        k = min(k, hi - lo + 1)
        n_log = k // 2 if lo > 0 else 0
        vals: list[int] = []
        if n_log:
            edges = np.exp(np.linspace(math.log(lo), math.log(hi + 1), n_log + 1))
            for a, b in zip(edges[:-1], edges[1:]):
                vals.append(int(self.rng.integers(int(a), max(int(a) + 1, int(b)))))
        edges = np.linspace(lo, hi + 1, k - n_log + 1)
        for a, b in zip(edges[:-1], edges[1:]):
            vals.append(int(self.rng.integers(int(a), max(int(a) + 1, int(b)))))
        seen: list[int] = []
        for v in vals:
            v = min(max(v, lo), hi)
            while v in seen:
                v = int(self.rng.integers(lo, hi + 1))
            seen.append(v)
        return sorted(seen)

    def plan_sweeps(self) -> list[tuple[dict, str]]:
        names = self.sweep_params()
        if self.budget < MIN_BUDGET_FOR_SWEEPS or not names or self.sweep_fraction == 0:
            return []
        total = int(self.budget * self.sweep_fraction)
        per = total // len(names)
        while per < MIN_SWEEP and len(names) > 1:
            names = names[:-1]  # too little budget: sweep the first parameters only
            per = total // len(names)
        if per < MIN_SWEEP:
            return []
        n_base = self.n_base or (2 if per >= 3 * MIN_SWEEP else 1)
        per_base = min(per // n_base, MAX_SWEEP)
        if per_base < MIN_SWEEP:
            n_base, per_base = 1, per
        plan = []
        for base in self.base_points(n_base):
            for name in names:
                for x in self.sweep_values(self.kernel.param(name), per_base):
                    pt = dict(base)
                    pt[name] = x
                    if self.valid(pt):
                        plan.append((pt, name))
        return plan

    def snap(self, point: dict, steps: Mapping[str, int]) -> dict:
        """Move each stepped parameter to the middle of its plateau ((q-1)s, qs]."""
        out = dict(point)
        for name, s in steps.items():
            p = self.kernel.param(name)
            x = int(point[name])
            q = math.ceil(x / s)
            a, b = max(int(p.low), (q - 1) * s + 1), min(int(p.high), q * s)
            if a <= b:
                out[name] = (a + b) // 2
        if not self.valid(out):
            return dict(point)
        return out

    def representatives(self, steps: Mapping[str, int], measured: Sequence[dict],
                        n: int) -> list[dict]:
        """``n`` space-filling points, one per plateau cell, away from ``measured``."""
        from .sampling import random_points

        if n <= 0:
            return []
        pool_n = max(2000, 30 * n)
        pool = random_points(self.kernel, pool_n, seed=self.seed + 104729,
                             variant=self.variant).to_dict("records")
        params = self.kernel.params
        keys = {tuple(pt[p.name] for p in params) for pt in measured}
        cand, seen = [], set()
        for pt in pool:
            sp_ = self.snap(self._coerce(pt), steps)
            key = tuple(sp_[p.name] for p in params)
            if key in seen or key in keys:
                continue
            seen.add(key)
            cand.append(sp_)
        if not cand:
            return []
        U = np.array([[_to_unit(p, c[p.name]) for p in params] for c in cand])
        M = (np.array([[_to_unit(p, m[p.name]) for p in params] for m in measured])
             if measured else np.empty((0, len(params))))
        idx = _support_points(U, M, min(n, len(cand)), self.rng)
        return [cand[i] for i in idx]

    # -- run
    def run(self, measure: Callable[[dict, str], Measurement]) -> PRResult:
        rows: list[dict] = []
        done: dict[tuple, Measurement] = {}
        names = self.kernel.param_names

        def take(pt, role):
            key = tuple(pt[n] for n in names)
            if key in done:
                return
            if len(done) >= self.budget:
                raise BudgetExhausted
            m = measure(pt, role)
            done[key] = m
            rows.append({**pt, "role": role, "runtime_s": m.runtime_s,
                         "runtime_cv": m.runtime_cv, "repeats": m.repeats,
                         "runtime_min_s": m.runtime_min_s})

        plan = self.plan_sweeps()
        order = self.rng.permutation(len(plan))  # shuffled, as the protocol asks
        try:
            for i in order:
                take(plan[i][0], "sweep")
        except BudgetExhausted:
            pass
        frame = pd.DataFrame(rows, columns=[*names, "role", "runtime_s", "runtime_cv",
                                            "repeats", "runtime_min_s"])
        steps, fits = ({}, [])
        if len(frame):
            steps, fits = detect_steps(frame, names, self.complexity, self.sweep_params())
        reps = self.representatives(steps, [r for r in rows], self.budget - len(done))
        order = self.rng.permutation(len(reps))
        try:
            for i in order:
                take(reps[i], "representative")
        except BudgetExhausted:
            pass
        frame = pd.DataFrame(rows, columns=frame.columns)
        return PRResult(steps, fits, frame, self.budget)


def pr_points(kernel: Kernel, n: int, seed: int = 0, variant: str | None = None,
              measure: Callable[[dict, str], Measurement] | None = None, **kw) -> PRResult:
    """The ``pr`` sampler. It measures while it samples, so it needs ``measure`` (see
    :class:`PRPlanner`); ``annpred profile KERNEL --sampler pr`` supplies one."""
    if measure is None:
        raise ParameterError("the pr sampler measures while it samples (sweeps, then "
                             "representatives); run it through `annpred profile KERNEL "
                             "--sampler pr` or pass measure=callback")
    return PRPlanner(kernel, n, seed=seed, variant=variant, **kw).run(measure)


# -- profiling ------------------------------------------------------------------------------
def _recorded(path, cols, hw_by_variant, seed: int, pass_id: int, names) -> dict:
    """Rows already in ``path`` from an earlier PR run with the same seed and pass:
    variant -> {parameter values (as written): (point id, Measurement)}."""
    import csv

    from .profile import _done_keys

    _done_keys(path, cols)  # checks the header
    out: dict[str, dict] = {}
    with open(path, newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            v = row["variant"]
            if (row["sampler"] != "pr" or row["seed"] != str(seed)
                    or row["pass"] != str(pass_id) or hw_by_variant.get(v) != row["hardware"]):
                continue
            key = tuple(row[n] for n in names)
            out.setdefault(v, {})[key] = (int(row["point"]), Measurement(
                float(row["runtime_s"]), float(row["runtime_cv"] or "nan"),
                int(float(row["repeats"] or 0)), float(row["runtime_min_s"] or "nan")))
    return out


def profile_pr(kernel: Kernel, out, vlist, hws: Mapping[str, str], n_threads: int,
               samples: int, seed: int, pass_id: int, progress: bool, min_runs: int,
               min_time: float, check: bool, time_budget: float | None):
    """``annpred profile KERNEL --sampler pr``: run a :class:`PRPlanner` per variant with a
    budget of ``samples`` measured points each (sweeps included) and append every measured
    point to the CSV (``sampler=pr``; ``point`` numbers the planner's requests).

    Resuming: rows of an earlier run with the same seed, pass and hardware are replayed to
    the planner instead of being measured again; since its decisions depend only on the
    seed and the measured values, it makes the same requests and measures only the missing
    ones. (If an earlier run was cut off, the replay is exact up to the cut.)"""
    import csv
    import sys
    import time
    from pathlib import Path

    from .profile import ProfileResult, _repair_tail, _version, columns_for, measure_point

    names = kernel.param_names
    cols = columns_for(kernel)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    recorded: dict = {}
    if out.exists() and out.stat().st_size > 0:
        _repair_tail(out)
        recorded = _recorded(out, cols, hws, seed, pass_id, names)
    version = _version()
    new_file = not out.exists() or out.stat().st_size == 0
    from tqdm import tqdm

    bar = tqdm(total=samples * len(vlist), disable=not progress, unit="pt",
               desc=f"{kernel.name} pr t{n_threads}", file=sys.stderr, dynamic_ncols=True)
    written = skipped = 0
    results = {}
    t_start = time.perf_counter()
    try:
        with open(out, "a", newline="", encoding="utf-8") as f:
            writer = csv.writer(f, lineterminator="\n")
            if new_file:
                writer.writerow(cols)
                f.flush()
            for v in vlist:
                rec = recorded.get(v.name, {})
                counter = [0]

                def measure(point, role, v=v, rec=rec, counter=counter):
                    nonlocal written, skipped
                    idx = counter[0]
                    counter[0] += 1
                    key = tuple(str(point[n]) for n in names)
                    if key in rec:
                        skipped += 1
                        bar.update(1)
                        return rec[key][1]
                    if time_budget is not None and time.perf_counter() - t_start > time_budget:
                        raise _Stop
                    inputs = kernel.make_inputs(point, np.random.default_rng([seed, idx]))
                    timing = measure_point(kernel, v, inputs, point, min_runs=min_runs,
                                           min_time=min_time, check=check)
                    writer.writerow([kernel.name, v.name, hws[v.name],
                                     *[point[n] for n in names],
                                     repr(timing.median_s), f"{timing.cv:.5f}", timing.repeats,
                                     repr(timing.min_s), n_threads, "pr", seed, idx, pass_id,
                                     time.strftime("%Y-%m-%dT%H:%M:%S"), version])
                    f.flush()
                    written += 1
                    bar.update(1)
                    bar.set_postfix_str(f"{v.name} {role}", refresh=False)
                    # as written to the CSV, so that a resumed run replays exactly the same values
                    return Measurement(timing.median_s, float(f"{timing.cv:.5f}"),
                                       timing.repeats, timing.min_s)

                try:
                    results[v.name] = PRPlanner(kernel, samples, seed=seed,
                                                variant=v.name).run(measure)
                except _Stop:
                    break
    finally:
        bar.close()
    res = ProfileResult(out, written, skipped, written + skipped)
    res.pr = results  # per variant: PRResult (steps, fits, points)
    return res


class _Stop(Exception):
    pass
