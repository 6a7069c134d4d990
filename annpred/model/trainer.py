"""Train one model per (kernel, variant, hardware) found in profiling CSVs into a model
directory laid out as ``<out>/<hardware>/<kernel>/<variant>.json``."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pandas as pd

from annpred.data import profiles as _data
from annpred.spec import expr as _expr
from annpred.errors import DataError, UnknownKernelError
from annpred.model.estimator import AugmentedNNRegressor
from annpred.model.layout import model_path
from annpred.model.schema import save_model

@dataclass
class TrainReport:
    kernel: str
    variant: str
    hardware: str
    n_train: int
    n_holdout: int
    val_mape: float
    holdout_mape: float | None
    n_params: int
    train_time_s: float
    path: Path | None
    steps: dict | None = None  # detected step periods {param: period} (step-aware features)


def split_rows(n: int, n_train, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Training and held-out row indices; ``n_train="auto"`` trains on 75%."""
    order = np.random.default_rng([seed, 4242]).permutation(n)
    if n_train == "auto":
        n_train = max(8, int(round(0.75 * n)))
    if n_train is None or n_train >= n:
        return np.sort(order), np.array([], dtype=int)
    return np.sort(order[:n_train]), np.sort(order[n_train:])


def _catalog_complexity(kernel: str, variant: str, params: list[str]) -> dict[str, str] | None:
    from annpred.spec.catalog import get_kernel

    try:
        k = get_kernel(kernel)
    except UnknownKernelError:
        return None
    try:
        comp = k.complexity_for(variant)
    except UnknownKernelError:
        comp = k.complexity
    usable = {}
    for name, text in comp.items():
        if set(_expr.free_symbols(text)) <= set(params):
            usable[name] = text
    return usable


def train_frame(df: pd.DataFrame, out: str | os.PathLike | None, *,
                complexity: str | dict | None = None, features: Sequence[str] | None = None,
                seed: int = 0, n_train: int | None = None, hidden=None,
                on_done: Callable[[TrainReport], None] | None = None,
                steps: str | dict | None = "auto",
                **regressor_kw) -> list[TrainReport]:
    """Train every combination in a loaded frame (see :func:`annpred.data.load_profiles`).

    ``steps``: ``"auto"`` detects step periods from 1-D sweeps in the data (PR sampling
    writes them; random samples have none, so nothing changes for them) and trains on
    step-aware complexity features; a dict ``{param: period}`` forces periods; ``None``
    disables steps."""
    reports = []
    if "pass" in df.columns:
        first = df["pass"].fillna(0) == 0
        df = df[first]
    combos = list(_data.combinations(df))
    if not combos:
        raise DataError("no rows to train on")
    for (kernel, variant, hw_id), g in combos:  # validate everything before writing anything
        model_path(".", kernel, variant, hw_id)
        if len(g) < _data.MIN_ROWS:
            src = g["_source"].iloc[0]
            raise DataError(f"{src}: combination {kernel}/{variant}/{hw_id} has {len(g)} rows; "
                            f"at least {_data.MIN_ROWS} are needed to train a model")
    for (kernel, variant, hw_id), g in combos:
        feats = list(features) if features else _data.feature_columns(g)
        feats = [c for c in feats if c not in ("pass",)]
        if complexity is not None:
            comp = complexity if isinstance(complexity, dict) else {"complexity": complexity}
            for text in comp.values():
                _expr.parse(text, feats)
        else:
            comp = _catalog_complexity(kernel, variant, feats) or {}
        tr, ho = split_rows(len(g), n_train, seed)
        X = g[feats].reset_index(drop=True)
        y = g["runtime_s"].to_numpy(dtype=float)
        found, fits = {}, []
        if isinstance(steps, dict):
            found = {k: int(v) for k, v in steps.items() if k in feats}
        elif steps == "auto" and comp:
            from annpred.model.steps import detect_steps

            found, fits = detect_steps(g.iloc[tr].reset_index(drop=True), feats, comp)
        model = AugmentedNNRegressor(complexity=comp or None, parameters=feats, hidden=hidden,
                                     seed=seed, steps=(found if comp else None) or None,
                                     **regressor_kw)
        model.fit(X.iloc[tr], y[tr])
        holdout = None
        if len(ho):
            pred = model.predict(X.iloc[ho])
            holdout = float(np.mean(np.abs(pred - y[ho]) / y[ho]) * 100)
        extra = {"n_holdout": int(len(ho)), "holdout_mape": holdout,
                 "sources": sorted({Path(s).name for s in g["_source"]})}
        if fits:
            extra["step_detection"] = [f.to_dict() for f in fits]
        if "runtime_cv" in g.columns and g["runtime_cv"].notna().any():
            extra["median_runtime_cv"] = float(g["runtime_cv"].median())
        path = None
        if out is not None:
            path = model_path(out, kernel, variant, hw_id)
            save_model(model.to_dict(kernel, variant, hw_id, extra_train=extra), path)
        rep = TrainReport(kernel, variant, hw_id, len(tr), len(ho), model.val_mape_, holdout,
                          model.n_params_, model.train_time_s_, path,
                          dict(model.steps_) if model.steps_ else None)
        reports.append(rep)
        if on_done:
            on_done(rep)
    return reports


def train_csvs(paths: Sequence[str | os.PathLike], out: str | os.PathLike | None, *,
               target: str = "runtime_s", features: Sequence[str] | None = None,
               complexity: str | None = None, kernel: str | None = None,
               variant: str | None = None, hardware: str | None = None, seed: int = 0,
               n_train: int | None = None, on_done=None, **kw) -> list[TrainReport]:
    if complexity is not None:
        if features is None:
            raise DataError("--complexity needs --features (the columns it may use)")
        _expr.parse(complexity, features)
    df = _data.load_profiles(paths, target=target, features=features, kernel=kernel,
                             variant=variant, hardware=hardware)
    return train_frame(df, out, complexity=complexity, features=features, seed=seed,
                       n_train=n_train, on_done=on_done, **kw)


def refit(feedback, out, base_csvs: Sequence = (), **train_kw) -> list:
    """Retrain the combinations seen in ``feedback`` (an :class:`annpred.runtime.feedback.
    Feedback`) from ``base_csvs`` plus the recorded calls, into model directory ``out``."""
    import tempfile

    seen = {(r.kernel, r.variant, r.hardware) for r in feedback.records}
    if not seen:
        raise DataError("no dispatched calls recorded; nothing to refit")
    with tempfile.TemporaryDirectory() as tmp:
        fb = feedback.to_csv(Path(tmp) / "feedback")
        paths = ([str(p) for p in sorted(Path(fb).glob("*.csv"))] if Path(fb).is_dir()
                 else [str(fb)])
        df = _data.load_profiles([*map(str, base_csvs), *paths])
        key = list(zip(df["kernel"], df["variant"], df["hardware"]))
        df = df[[k in seen for k in key]]
        counts = df.groupby(["kernel", "variant", "hardware"]).size()
        keep = {k for k, n in counts.items() if n >= _data.MIN_ROWS}
        df = df[[k in keep for k in zip(df["kernel"], df["variant"], df["hardware"])]]
        if df.empty:
            raise DataError(f"every combination has fewer than {_data.MIN_ROWS} rows; "
                            "record more calls or pass the original data as base_csvs")
        return train_frame(df, out, **train_kw)
