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

**Refinement** (:func:`refine_plan`, ``annpred halide profile --sampler refine``) adds
points to an existing profile where selection needs the model to be right: a model trained
on the profile predicts a pool of schedules (sampled with a seed of its own, never the
candidate set's) at sizes from the training range, and the predicted fastest schedules at
each size that the profile has not measured there are measured. A random profile spends
most of its points on slow schedules; the choice is made among the fast ones, and a tiny
network extrapolating into the fast corner of the space picks by its errors there (the
winner's curse). Rounds retrain between them, each with another network seed: where the
profile says little, networks from different starts disagree about the fastest schedules,
so the rounds spread over what some plausible model ranks first.

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


REFINE_SEED = 4099  # the refinement pool's seed offset (profiles use 0, candidates 2024)
REFINE_POOL = 512  # schedules predicted at each refinement size
REFINE_PER_SIZE = 8  # predicted-fastest schedules measured per size
REFINE_MAX_REPEATS = 3  # times one schedule may be chosen within a round (at other sizes)


def refine_plan(pipeline: str | HalidePipeline, model, n: int, df: pd.DataFrame | None = None,
                seed: int = 0) -> list[tuple[dict, dict, int]]:
    """``n`` points where ``model`` predicts the fastest schedules (see module doc): at each
    of ``ceil(n / REFINE_PER_SIZE)`` sizes from the training range, the predicted-fastest
    schedules of a pool of ``REFINE_POOL`` that ``df`` (the profile so far) has not measured
    at that size, none chosen more than ``REFINE_MAX_REPEATS`` times. Deterministic in
    ``seed`` and the model."""
    from .profile import size_pool
    from .select import predict_schedules
    from .space import key_of

    p = get(pipeline)
    if n < 1:
        raise ParameterError(f"refinement budget must be >= 1, got {n}")
    scheds = p.space.sample(REFINE_POOL, seed=seed + REFINE_SEED)
    n_sizes = -(-int(n) // REFINE_PER_SIZE)
    pool = size_pool(p, max(n_sizes, 8), seed + REFINE_SEED)
    rng = np.random.default_rng(seed + REFINE_SEED)
    sizes = [pool[int(i)] for i in rng.permutation(len(pool))]
    done = set()
    if df is not None and len(df):
        for r in df[["variant", *p.size_names]].itertuples(index=False):
            done.add((r[0], *(int(v) for v in r[1:])))
    keys = [key_of(s) for s in scheds]
    used: dict[str, int] = {}
    plan: list[tuple[dict, dict, int]] = []
    for i in range(len(sizes) * 4):  # sizes are revisited if every schedule was used up
        if len(plan) >= n:
            break
        sz = sizes[i % len(sizes)]
        at = tuple(int(sz[k]) for k in p.size_names)
        pred = predict_schedules(model, p, sz, scheds)
        take = 0
        for j in np.argsort(pred, kind="stable"):
            k = keys[int(j)]
            if (k, *at) in done or used.get(k, 0) >= REFINE_MAX_REPEATS:
                continue
            plan.append((dict(sz), scheds[int(j)], 1))
            done.add((k, *at))
            used[k] = used.get(k, 0) + 1
            take += 1
            if take >= REFINE_PER_SIZE or len(plan) >= n:
                break
    return plan


def refine_profile(pipeline: str | HalidePipeline, out, budget: int, *, rounds: int = 4,
                   seed: int = 0, threads: int = 2, progress: bool = True,
                   max_seconds: float | None = None) -> pd.DataFrame:
    """Add ``budget`` refinement points (``sampler == "refine"``) to the profile CSV ``out``
    in ``rounds`` rounds, retraining the model on the profile before each
    (:func:`annpred.halide.select.fit_profile`; network seed = the round). Resumable: the
    points already marked ``refine`` count towards the budget, so an interrupted run
    continues where it stopped."""
    import time
    import warnings
    from pathlib import Path

    from ..errors import DataError
    from .profile import load_profile, profile_pipeline
    from .select import fit_profile, rows_at_threads

    p = get(pipeline)
    out = Path(out)
    if budget < 1 or rounds < 1:
        raise ParameterError(f"refinement needs --budget >= 1 and rounds >= 1, got "
                             f"{budget} and {rounds}")
    if not out.exists():
        raise DataError(f"refinement adds to an existing profile, and {out} does not exist: "
                        f"measure one first (`annpred halide profile {p.name} --out {out}`)")
    t0 = time.perf_counter()
    # only the rows measured with ``threads`` threads: the model ranks schedules at them
    df = rows_at_threads(load_profile(out, p), out, threads)[0]
    form: dict = {}
    per_round = -(-budget // rounds)
    for _ in range(rounds):
        have = int((df.get("sampler", pd.Series(dtype=str)) == "refine").sum())
        left = budget - have
        if left <= 0:
            break
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            # a new network seed each round: where the profile says little, networks from
            # different starts disagree about which schedules are fastest, so the rounds
            # explore the schedules that some plausible model ranks first (as Thompson
            # sampling would), not one model's favourites over and over
            model = fit_profile(p, df, seed=have // per_round, **form)
        # the complexity form is chosen (cross-validated) once, in the first round
        form = {"steps": bool(model.tile_steps_), "ragged": bool(model.ragged_)}
        plan = refine_plan(p, model, min(left, per_round), df, seed=seed + 1000 * (have + 1))
        if not plan:
            break
        remaining = None if max_seconds is None else max_seconds - (time.perf_counter() - t0)
        if remaining is not None and remaining <= 0:
            break
        profile_pipeline(p, seed=seed, threads=threads, out=out, plan=plan, sampler="refine",
                         progress=progress, max_seconds=remaining)
        df = rows_at_threads(load_profile(out, p), out, threads)[0]
    return df
