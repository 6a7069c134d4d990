"""Training schedule models and compile-time schedule selection.

One augmented network per pipeline (and hardware) predicts the runtime of a schedule at a size
from the sizes, the encoded schedule knobs and the complexity. ``select_schedule`` predicts
every member of a candidate set and compiles only the predicted best.
"""
from __future__ import annotations

import time
import warnings
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from ..spec import hardware as hw
from ..errors import DataError, ParameterError
from ..validate import integer
from .pipelines import HalidePipeline, get
from .runtime import Compiled, compile_schedule
from .store import (data_path, halide_root, load_schedule_model, model_path,  # noqa: F401
                    save_schedule_model, user_root)

MAX_THREADS = 1024  # --threads above this is refused (no machine here has more)
CANDIDATE_SEED = 2024  # the candidate set is sampled with another seed than the profiling
DEFAULT_CANDIDATES = 128
TRAIN_SEED = 0


def train_model(pipeline: str | HalidePipeline, df: pd.DataFrame, *, seed: int = TRAIN_SEED,
                hidden=None, max_params: int | None = None, steps: bool = False,
                ragged: bool = False, **kw):
    """Fit an :class:`~annpred.model.estimator.AugmentedNNRegressor` on a profiling frame
    (``steps``: on the pipeline's step-aware complexity, see :mod:`annpred.halide.sampling`;
    ``ragged``: with the partial-tile terms, see
    :meth:`~annpred.halide.pipelines.HalidePipeline.complexity_for`)."""
    from ..model.estimator import AugmentedNNRegressor
    from .profile import training_frame

    p = get(pipeline)
    X, y = training_frame(p, df)
    extra = {} if max_params is None else {"max_params": max_params}
    # every term of the pipeline's complexity is kept: the estimator's own choice (the
    # first term alone if it validates better on a random 20% of the rows) flips with the
    # network seed, and the argmin over candidates flips with it (see SELECT_COMPLEXITY)
    kw.setdefault("select_complexity", SELECT_COMPLEXITY)
    model = AugmentedNNRegressor(complexity=p.complexity_for(steps, ragged), hidden=hidden,
                                 seed=seed, **extra, **kw)
    model.fit(X, y)
    model.tile_steps_ = bool(steps)
    model.ragged_ = bool(ragged)
    model.protocol_factor_ = protocol_factor(df)
    return model


# Schedule models use every complexity term of their pipeline. Measured on the profiles
# (schedule-grouped 4-fold CV, 2 seeds; the regret of picking by the out-of-fold predictions
# among the schedules profiled at each size): all terms 1.096 vs the estimator's choice
# 1.254 on conv_layer, 1.36 vs 1.42 blur, 1.12 vs 1.18 harris, 1.12 vs 1.16 max_filter,
# equal on matmul and stencil_chain, worse on iir_blur (1.067 vs 1.053) and unsharp (1.19 vs
# 1.13); geomean over the eight 0.976x
SELECT_COMPLEXITY = False
FORM_FOLDS = 4
FORM_MIN_SCHEDULES = 24  # fewer schedules than this: no cross-validation, the plain form


def choose_form(pipeline: str | HalidePipeline, df: pd.DataFrame, *, seed: int = TRAIN_SEED,
                steps: bool | None = None, ragged: bool | None = None,
                folds: int = FORM_FOLDS, **kw) -> tuple[bool, bool, list[dict]]:
    """Choose the complexity form (step-aware or not, partial-tile terms or not) of a
    pipeline's schedule model by cross-validation over *schedules* on the profile: the
    schedules are split into ``folds`` groups, each group is predicted by a model trained on
    the others, and the form with the lowest MAPE over all held-out rows wins (the rows of
    one schedule never sit on both sides, as at selection time, when the candidates are
    schedules the profile may not hold). ``steps``/``ragged`` fixed to a bool are not
    searched. Profile rows only: nothing of a study's or user's test data is looked at.
    Returns ``(steps, ragged, table)`` with one row per form tried."""
    from .profile import training_frame

    p = get(pipeline)
    tiled = bool(p.tile_knobs)
    s_opts = [False, True] if steps is None and tiled else [bool(steps) and tiled]
    r_opts = [False, True] if ragged is None and tiled else [bool(ragged) and tiled]
    forms = [(s, r) for s in s_opts for r in r_opts]
    first = df[df["pass"] == 1] if "pass" in df.columns else df
    first = first.reset_index(drop=True)
    variants = first["variant"].to_numpy()
    unique = np.unique(variants)
    if len(forms) == 1 or len(unique) < max(FORM_MIN_SCHEDULES, folds):
        return forms[0][0], forms[0][1], []
    X, y = training_frame(p, first)
    order = np.random.default_rng(seed).permutation(len(unique))
    fold_of = {unique[i]: j % folds for j, i in enumerate(order)}
    fold = np.array([fold_of[v] for v in variants])
    table = []
    for s, r in forms:
        pred = np.empty(len(y))
        for f in range(folds):
            tr = fold != f
            with warnings.catch_warnings():  # the final fit warns, once, not every fold
                warnings.simplefilter("ignore", UserWarning)
                m = train_model(p, first[tr], seed=seed, steps=s, ragged=r, **kw)
            pred[~tr] = m.predict(X[~tr].reset_index(drop=True))
        mape = float(np.mean(np.abs(pred - y) / y) * 100)
        table.append({"tile_steps": s, "ragged": r, "cv_mape_pct": mape})
    best = min(table, key=lambda row: row["cv_mape_pct"])
    return best["tile_steps"], best["ragged"], table


def protocol_factor(df: pd.DataFrame) -> float:
    """How much slower the protocol's median is than the fastest repeat the model is fitted
    on (see :data:`annpred.halide.profile.TARGET`), as the median ratio over the training
    rows. Predictions are multiplied by it, so that they estimate what a measurement reports;
    a scalar, so the ranking of schedules does not change."""
    df = df[df["pass"] == 1] if "pass" in df.columns else df
    if "runtime_min_s" not in df.columns:
        return 1.0
    r = (pd.to_numeric(df["runtime_s"], errors="coerce")
         / pd.to_numeric(df["runtime_min_s"], errors="coerce")).to_numpy(float)
    r = r[np.isfinite(r) & (r > 0)]
    return float(np.median(r)) if r.size else 1.0


def fit_profile(pipeline: str | HalidePipeline, df: pd.DataFrame, *, seed: int = TRAIN_SEED,
                steps: bool | str = "auto", ragged: bool | str = "auto", **kw):
    """The schedule model of a profile frame, its complexity form chosen as
    :func:`train_pipeline` documents (nothing saved). ``model.form_cv_`` is the table of
    forms tried."""
    p = get(pipeline)
    if steps == "auto":
        from .sampling import detect_tile_steps

        steps = True if detect_tile_steps(p, df)["steps"] else None
    steps, ragged, form_cv = choose_form(p, df, seed=seed, steps=steps,
                                         ragged=None if ragged == "auto" else bool(ragged),
                                         **kw)
    model = train_model(p, df, seed=seed, steps=steps, ragged=ragged, **kw)
    model.form_cv_ = form_cv
    return model


def rows_at_threads(df: pd.DataFrame, path, threads: int | None = None
                    ) -> tuple[pd.DataFrame, int]:
    """The rows of profile ``df`` (read from ``path``) measured with ``threads`` threads,
    and that thread count. A model is filed under one thread count's hardware id
    (``...-t<threads>``), so rows measured with another count are never pooled into it.
    ``threads=None``: the profile's only thread count (2 for a profile without a
    ``threads`` column, whose rows are all taken). A profile holding several thread counts
    without ``threads``, or none at ``threads``, is refused naming the counts it holds."""
    if "threads" not in df.columns:
        return df, 2 if threads is None else threads
    t = pd.to_numeric(df["threads"], errors="coerce").to_numpy(float)
    bad = np.flatnonzero(~(np.isfinite(t) & (t >= 1) & (t == np.round(t))))
    if bad.size:
        i = int(bad[0])
        raise DataError(f"profile {path}, row {i + 2}, column threads: "
                        f"{df['threads'].iloc[i]!r} is not a thread count (an integer >= 1)")
    held = sorted({int(v) for v in t})
    counts = " and ".join([", ".join(str(v) for v in held[:-1]), str(held[-1])]
                          if len(held) > 1 else [str(held[0])])
    if threads is None:
        if len(held) > 1:
            raise ParameterError(f"profile {path} holds rows measured with {counts} threads; "
                                 "choose which to train on with --threads (one model per "
                                 "thread count)")
        return df.reset_index(drop=True), held[0]
    keep = t == threads
    if not keep.any():
        raise DataError(f"profile {path} has no rows measured with {threads} thread"
                        f"{'s' if threads != 1 else ''} (its threads column holds {counts}); "
                        + (f"use --threads {held[0]}" if len(held) == 1 else
                           "use --threads with one of those")
                        + f", or profile with --threads {threads} first")
    return df[keep].reset_index(drop=True), threads


def train_pipeline(pipeline: str | HalidePipeline, data: str | Path | None = None,
                   out: str | Path | None = None, *, threads: int | None = None,
                   seed: int = TRAIN_SEED, steps: bool | str = "auto",
                   ragged: bool | str = "auto", **kw):
    """Train the schedule model of ``pipeline`` from a profile and save it.

    ``data`` is a profiling CSV (default: this machine's profile in the shipped root,
    ``halide/<hardware>/data/<pipeline>.csv``); ``out`` is a model root (default: the user's,
    ``$ANNPRED_MODELS``), and the model goes to ``<out>/halide/<hardware>/<pipeline>.json``
    (``out`` ending in ``.json``: that file). Only the profile rows measured with
    ``threads`` threads (its ``threads`` column) are trained on, and the model is filed
    under that thread count's hardware id; ``threads=None``: the profile's one thread count
    (2 without ``data``, or for a profile without a ``threads`` column); a profile holding
    several needs ``threads``, and one without rows at ``threads`` is refused
    (:func:`rows_at_threads`). ``steps="auto"`` uses the step-aware
    complexity when the profile's width sweeps (PR profiles have them) show tile steps, and
    otherwise lets :func:`choose_form` decide, as it decides ``ragged="auto"``.
    Returns ``(model, path)``; ``model.form_cv_`` is the table of forms tried (empty when
    none was searched).
    """
    import hashlib

    from .profile import load_profile

    p = get(pipeline)
    if threads is not None:
        threads = integer(threads, "threads", 1, MAX_THREADS)
    data = Path(data) if data is not None else data_path(p.name, threads=threads or 2)
    if not data.exists():
        raise DataError(f"no profile for Halide pipeline {p.name!r} at {data}; measure one "
                        f"with `annpred halide profile {p.name}` (Python: "
                        "annpred.halide.profile.profile_pipeline)")
    df, threads = rows_at_threads(load_profile(data, p), data, threads)
    model = fit_profile(p, df, seed=seed, steps=steps, ragged=ragged, **kw)
    form_cv = model.form_cv_
    model.threads_ = threads
    if out is not None and Path(out).suffix == ".json":
        path = Path(out)
    else:
        path = halide_root(out if out is not None else user_root()) / hw.cpu_id(threads) / \
            f"{p.name}.json"
    from .profile import noise_floor

    save_schedule_model(model, p, path, threads,
                        extra={"noise_floor_pct": noise_floor(df, p.size_names),
                               "csv": data.name, "form_cv": form_cv,
                               "csv_sha256": hashlib.sha256(data.read_bytes()).hexdigest()})
    return model, path


MAX_EXTENT = 2**31 - 1  # Halide extents are int32
MAX_BUFFER_BYTES = 2**31 - 1  # Halide's buffer limit on targets without large_buffers


def check_sizes(pipeline: str | HalidePipeline, sizes, what: str = "--size") -> dict[str, int]:
    """``sizes`` (text ``"1920,1080"``, a sequence or a mapping) parsed by
    :meth:`~annpred.halide.pipelines.HalidePipeline.parse_size`, and refused where Halide
    could not run the pipeline at them: a text with an empty field (``"1920,,1080"``), a
    size beyond Halide's 32-bit extents, or one whose input or output buffer is larger than
    a Halide buffer may be (2**31 - 1 bytes without the ``large_buffers`` target feature).
    Every refusal is one :class:`~annpred.errors.ParameterError` naming the size."""
    p = get(pipeline)
    if isinstance(sizes, str):
        fields = sizes.replace("x", ",").replace("X", ",").split(",")
        if not sizes.strip() or any(not f.strip() for f in fields):
            raise ParameterError(f"{what} {sizes!r} of pipeline {p.name} has an empty field; "
                                 f"give {','.join(p.size_names)} as integers separated by "
                                 f"commas (e.g. {','.join(str(v) for v in p.example_size())})")
    out = p.parse_size(sizes)
    for n, v in out.items():
        if v > MAX_EXTENT:
            raise ParameterError(f"{what} {n}={v} of pipeline {p.name} is beyond "
                                 f"Halide's 32-bit extents (at most {MAX_EXTENT})")
    limit = _buffer_limit()
    buffers = _buffer_elements(p, out)
    for i, elems in enumerate(buffers):
        if 4 * elems > limit:  # every buffer of the shipped pipelines is float32
            which = ("output buffer" if i == len(buffers) - 1 else "input buffer"
                     + (f" {i + 1}" if len(buffers) > 2 else ""))
            raise ParameterError(
                f"{what} {p.size_label(out)} of pipeline {p.name} needs a {4 * elems:,}-byte "
                f"{which}; a Halide buffer holds at most {limit:,} bytes")
    return out


def _buffer_limit() -> int:
    try:
        import halide as hl

        if hl.get_jit_target_from_environment().has_feature(hl.TargetFeature.LargeBuffers):
            return 2**63 - 1
    except Exception:  # noqa: BLE001 - no halide, or an older binding: the default limit
        pass
    return MAX_BUFFER_BYTES


_BUFFER_PROBES: dict = {}  # pipeline name -> (base shapes, per-size shape increments)


def _buffer_elements(p: HalidePipeline, sizes: Mapping[str, int]) -> list[int]:
    """Elements of each input buffer and of the output (last) at ``sizes``, extrapolated
    from the shapes the pipeline allocates at tiny sizes: every dimension of a shipped
    pipeline's buffers is a constant or a size plus a pad (affine in one size), so two
    probes per size give it exactly without allocating anything large."""
    if p.name not in _BUFFER_PROBES:
        base = {n: 4 for n in p.size_names}

        def shapes(sz):
            return [a.shape for a in p.make_inputs(sz)] + [p.make_output(sz).shape]
        try:
            at = shapes(base)
            steps = {n: shapes({**base, n: 5}) for n in p.size_names}
        except Exception:  # noqa: BLE001 - a pipeline that cannot be probed: no bound
            at, steps = [], {}
        _BUFFER_PROBES[p.name] = (at, steps)
    at, steps = _BUFFER_PROBES[p.name]
    out = []
    for b, shape in enumerate(at):
        elems = 1
        for d, v in enumerate(shape):
            v = int(v) + sum((int(steps[n][b][d]) - int(v)) * (int(sizes[n]) - 4)
                             for n in p.size_names)
            elems *= max(v, 0)
        out.append(elems)
    return out


def candidates_for(pipeline: str | HalidePipeline, n: int = DEFAULT_CANDIDATES,
                   seed: int = CANDIDATE_SEED) -> list[dict]:
    if int(n) < 1:
        raise ParameterError(f"candidates must be >= 1, got {n}")
    return get(pipeline).space.sample(int(n), seed=seed)


def predict_schedules(model, pipeline: str | HalidePipeline, sizes: Mapping[str, int],
                      schedules: Sequence[Mapping]) -> np.ndarray:
    p = get(pipeline)
    X = pd.DataFrame([p.features(sizes, s) for s in schedules], columns=p.feature_names())
    return model.predict(X) * float(getattr(model, "protocol_factor_", 1.0))


def select_schedule(pipeline: str | HalidePipeline, sizes,
                    candidates: int | Sequence = DEFAULT_CANDIDATES, *,
                    models: str | Path | None = None, model=None, threads: int = 2,
                    seed: int = CANDIDATE_SEED, compile: bool = True) -> Compiled:
    """Predict every candidate schedule at ``sizes`` and return the predicted best, compiled.

    ``candidates`` is a count (sampled from the pipeline's space with ``seed``) or a list of
    schedules. The result's ``tuning_s`` is the selection time (features + prediction), its
    ``info`` holds the predicted seconds of every candidate and whether ``sizes`` lie inside
    the training range.
    """
    p = get(pipeline)
    sizes = check_sizes(p, sizes, "size")
    if model is None:
        model = load_schedule_model(p, models, threads)
    t0 = time.perf_counter()
    cands = (candidates_for(p, candidates, seed) if isinstance(candidates, (int, np.integer))
             else [p.space.check(c) for c in candidates])
    if not cands:
        raise ParameterError("no candidate schedules to choose from")
    pred = predict_schedules(model, p, sizes, cands)
    best = int(np.argmin(pred))
    tuning = time.perf_counter() - t0
    info = {"sizes": dict(sizes), "predicted_s": float(pred[best]),
            "candidates": [{"schedule": c, "predicted_s": float(v)} for c, v in zip(cands, pred)],
            "in_range": p.in_range(sizes), "n_candidates": len(cands),
            "machine_match": bool(getattr(model, "machine_match_", True))}
    if not compile:
        return Compiled(p, "annpred", cands[best], None, 0.0, tuning, "", info)
    c = compile_schedule(p, cands[best])
    c.method, c.tuning_s, c.info = "annpred", tuning, info
    return c
