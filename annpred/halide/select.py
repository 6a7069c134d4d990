"""Training schedule models and compile-time schedule selection.

One augmented network per pipeline (and hardware) predicts the runtime of a schedule at a size
from the sizes, the encoded schedule knobs and the complexity. ``select_schedule`` predicts
every member of a candidate set and compiles only the predicted best.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from ..spec import hardware as hw
from ..errors import ModelFormatError, ParameterError
from .pipelines import HalidePipeline, get
from .runtime import Compiled, compile_schedule
from .space import key_of

CANDIDATE_SEED = 2024  # the candidate set is sampled with another seed than the profiling
DEFAULT_CANDIDATES = 128
TRAIN_SEED = 0


def repo_trained_dir() -> Path:
    return Path(__file__).resolve().parents[2] / "trained"


def model_path(pipeline: str, models: str | Path | None = None, threads: int = 2) -> Path:
    """``<models>/<hardware>/halide/<pipeline>.json``; ``models`` may also be the hardware
    folder itself or a ``.json`` file."""
    base = Path(models) if models is not None else repo_trained_dir()
    if base.suffix == ".json":
        return base
    hw_id = hw.cpu_id(threads)
    for cand in (base / hw_id / "halide" / f"{pipeline}.json", base / "halide" / f"{pipeline}.json",
                 base / f"{pipeline}.json"):
        if cand.exists():
            return cand
    # another machine's (or a legacy id's) model for the same thread count; select_schedule
    # flags it (machine_match) and warns
    if base.is_dir():
        for d in sorted(base.iterdir()):
            cand = d / "halide" / f"{pipeline}.json"
            if hw.parse_id(d.name)["threads"] == threads and cand.exists():
                return cand
    return base / hw_id / "halide" / f"{pipeline}.json"


def data_path(pipeline: str, root: str | Path | None = None, threads: int = 2) -> Path:
    base = Path(root) if root is not None else repo_trained_dir()
    return base / hw.cpu_id(threads) / "data" / f"halide_{pipeline}.csv"


def train_model(pipeline: str | HalidePipeline, df: pd.DataFrame, *, seed: int = TRAIN_SEED,
                hidden=None, max_params: int | None = None, **kw):
    """Fit an :class:`~annpred.regressor.AugmentedNNRegressor` on a profiling frame."""
    from ..model.estimator import AugmentedNNRegressor
    from .profile import training_frame

    p = get(pipeline)
    X, y = training_frame(p, df)
    extra = {} if max_params is None else {"max_params": max_params}
    model = AugmentedNNRegressor(complexity=dict(p.complexity), hidden=hidden, seed=seed,
                                 **extra, **kw)
    model.fit(X, y)
    return model


def save_schedule_model(model, pipeline: str | HalidePipeline, path: str | Path,
                        threads: int = 2, extra: Mapping | None = None) -> Path:
    from ..model.schema import save_model

    p = get(pipeline)
    d = model.to_dict(kernel=f"halide_{p.name}", variant="schedule-space",
                      hardware=hw.cpu_id(threads),
                      extra_train={"space": {k.name: list(k.choices) for k in p.space.knobs},
                                   **(extra or {})})
    d["machine"] = hw.machine()  # profiled here (see annpred.spec.machine)
    return save_model(d, path)


def load_schedule_model(pipeline: str | HalidePipeline, models: str | Path | None = None,
                        threads: int = 2):
    from ..model.estimator import AugmentedNNRegressor
    from ..model.schema import load_model

    p = get(pipeline)
    path = model_path(p.name, models, threads)
    if not path.exists():
        raise ModelFormatError(
            f"no schedule model for Halide pipeline {p.name!r} at {path}; train one with "
            f"`python experiments/halide.py --pipelines {p.name}` (profiles with --profile)")
    from ..runtime.correction import check_model

    meta = load_model(path)
    model = AugmentedNNRegressor.from_dict(meta)
    model.machine_match_ = check_model(  # warns once when measured elsewhere
        meta, "may rank schedules wrongly here: re-profile (annpred halide tune ... "
        "--reprofile)")
    model.hardware_ = meta["hardware"]
    missing = [f for f in p.feature_names() if f not in model.parameters_]
    if missing:
        raise ModelFormatError(f"model {path} does not match pipeline {p.name!r}'s schedule "
                               f"space (missing features {missing}); retrain it")
    # the model may keep a subset of the pipeline's complexity (select_complexity), never
    # another expression: a changed pipeline definition needs a retrained model
    foreign = [n for n, e in model.complexity_.items() if dict(p.complexity).get(n) != e]
    if foreign:
        raise ModelFormatError(f"model {path} was trained with complexity {foreign} that "
                               f"pipeline {p.name!r} no longer defines; retrain it with "
                               f"`python experiments/halide.py --retrain --pipelines {p.name}`")
    return model


def candidates_for(pipeline: str | HalidePipeline, n: int = DEFAULT_CANDIDATES,
                   seed: int = CANDIDATE_SEED) -> list[dict]:
    if int(n) < 1:
        raise ParameterError(f"candidates must be >= 1, got {n}")
    return get(pipeline).space.sample(int(n), seed=seed)


def predict_schedules(model, pipeline: str | HalidePipeline, sizes: Mapping[str, int],
                      schedules: Sequence[Mapping]) -> np.ndarray:
    p = get(pipeline)
    X = pd.DataFrame([p.features(sizes, s) for s in schedules], columns=p.feature_names())
    return model.predict(X)


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
    sizes = p.parse_size(sizes)
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
            "machine_match": getattr(model, "machine_match_", True)}
    if not compile:
        return Compiled(p, "annpred", cands[best], None, 0.0, tuning, "", info)
    c = compile_schedule(p, cands[best])
    c.method, c.tuning_s, c.info = "annpred", tuning, info
    return c
