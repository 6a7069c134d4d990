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

from annpred.errors import ParameterError
from annpred.model.steps import MIN_SWEEP, StepFit, detect_steps
from annpred.spec.kernel import Kernel

MIN_BUDGET_FOR_SWEEPS = 24  # below this the PR sampler only does the space-filling part
SWEEP_FRACTION = 0.4
MIN_SWEEP_RANGE = 16  # parameters spanning fewer values are not swept
MAX_SWEEP = 16  # most points of one sweep (more rarely change the detected period)
PLANNER_VERSION = 2  # bumped when the planner's requests change for the same measurements


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
        return self.kernel.profilable(point) and (self.v is None or self.v.supports_point(point))

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
        from annpred.measure.sampling import random_points

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
