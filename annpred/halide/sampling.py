"""PR (performance representatives) sampling of a schedule space, and tile-step features.

Tiles make a schedule's runtime step in the image size: Halide computes whole tiles (the
last one shifted inwards), so the work of a schedule with tile width ``tx`` follows
``ceiling(W/tx)*tx``, not ``W``. The PR plan for a schedule space, for a budget of ``n``
points:

1. **sweeps** (about a quarter of the budget): a few tiled schedules, each measured at
   ``SWEEP_POINTS`` widths ``size_multiple`` apart at one height, so that several tile
   edges fall inside the sweep; :func:`detect_tile_steps` runs the step detector of
   :mod:`annpred.model.steps` on them and accepts tile steps when the detected period lies
   on the sweep schedule's tile lattice;
2. **representatives** (the rest): a pool of random (schedule, size) points is clustered
   (k-means on the encoded knobs and log sizes) and the pool point nearest each centre is
   measured, so every kind of schedule is seen once before any is seen twice.

With steps accepted, the model is trained on the pipeline's *step-aware* complexity
(:meth:`~annpred.halide.pipelines.HalidePipeline.complexity_for`): every ``W`` and ``H`` in
the expressions becomes ``ceiling(W/TX)*TX`` with the schedule's tile extent ``TX``.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import ParameterError
from .pipelines import HalidePipeline, get
from .space import from_key

SWEEP_FRACTION = 0.25
SWEEP_POINTS = 12
POOL_FACTOR = 20


def sweep_plan(p: HalidePipeline, n: int, seed: int = 0) -> list[tuple[dict, dict, int]]:
    """About ``n`` points: 1-D width sweeps of tiled schedules (see module doc)."""
    if "W" not in p.size_names or not p.tile_steps:
        return []
    rng = np.random.default_rng(seed + 31)
    tiled = [s for s in p.space.sample(400, seed=seed + 5) if _tile(p, s) in (32, 64, 128)]
    plan = []
    m = p.size_multiple
    for s in tiled[:max(1, n // SWEEP_POINTS)]:
        lo = max(p.size_range["W"][0], p.min_size("W"))
        start = int(lo + m * rng.integers(0, 8))
        fixed = {k: int(min(max(p.size_range[k][0], 256), p.size_range[k][1]))
                 for k in p.size_names if k != "W"}
        for i in range(SWEEP_POINTS):
            plan.append(({"W": start + i * m, **fixed}, s, 1))
    return plan[:n] if n >= SWEEP_POINTS else []


def _tile(p: HalidePipeline, s) -> int | None:
    key = p.tile_knobs.get("W")
    return None if key is None else int(s[key])


def representatives(p: HalidePipeline, n: int, seed: int = 0,
                    exclude: int = 0) -> list[tuple[dict, dict, int]]:
    """``n`` space-filling (sizes, schedule) points: nearest pool points to k-means centres."""
    from sklearn.cluster import KMeans

    if n <= 0:
        return []
    pool_n = max(POOL_FACTOR * n, 200)
    scheds = p.space.sample(min(pool_n, 2000), seed=seed + 11)
    sizes = p.sample_sizes(pool_n, seed=seed + 13)
    rng = np.random.default_rng(seed + 17)
    pairs = [(sizes[i], scheds[int(rng.integers(len(scheds)))]) for i in range(pool_n)]
    X = np.array([[np.log(float(sz[k])) for k in p.size_names]
                  + list(p.space.features(s).values()) for sz, s in pairs])
    X = (X - X.mean(0)) / np.where(X.std(0) > 0, X.std(0), 1.0)
    km = KMeans(n_clusters=min(n, len(pairs)), n_init=1, random_state=seed).fit(X)
    chosen: list[int] = []
    for c in km.cluster_centers_:
        d = np.sum((X - c) ** 2, axis=1)
        d[chosen] = np.inf
        chosen.append(int(np.argmin(d)))
    return [(pairs[i][0], pairs[i][1], 1) for i in chosen]


def pr_plan(pipeline: str | HalidePipeline, budget: int, seed: int = 0
            ) -> list[tuple[dict, dict, int]]:
    """The whole PR plan of ``budget`` points (sweeps, then representatives)."""
    p = get(pipeline)
    if budget < 1:
        raise ParameterError(f"PR budget must be >= 1, got {budget}")
    sw = sweep_plan(p, int(round(SWEEP_FRACTION * budget)), seed)
    return sw + representatives(p, budget - len(sw), seed)


def detect_tile_steps(pipeline: str | HalidePipeline, df: pd.DataFrame) -> dict:
    """Run the step detector on the width sweeps in a profile. Returns ``{"steps": bool,
    "fits": [...]}``: steps are accepted when a sweep's detected period divides, or is a
    multiple of, its schedule's tile width (the step lattice tiles predict)."""
    from ..model.steps import detect_period, find_sweeps

    p = get(pipeline)
    if "W" not in p.size_names or not p.tile_steps:
        return {"steps": False, "fits": []}
    df = df[df["pass"] == 1] if "pass" in df.columns else df
    fits, ok = [], False
    for variant, g in df.groupby("variant"):
        others = [k for k in p.size_names if k != "W"]
        for sw in find_sweeps(g, list(p.size_names), "W"):
            tile = _tile(p, from_key(variant))
            fit = detect_period([sw], None, list(p.size_names))
            on_lattice = (fit.period is not None and tile and
                          (tile % fit.period == 0 or fit.period % tile == 0))
            ok = ok or bool(on_lattice)
            fits.append({"variant": variant, "tile": tile, **{k: sw.fixed.get(k) for k in others},
                         **fit.to_dict(), "on_tile_lattice": bool(on_lattice)})
    return {"steps": ok, "fits": fits}
