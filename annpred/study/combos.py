"""One combination's data for the study: features, the test set (second pass or held out),
the nested training pool, and the noise floor."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd

from annpred.data import profiles as _data
from annpred.errors import DataError
from annpred.model.features import feature_matrix
from annpred.spec import expr as _expr
from annpred.study.metrics import mdape, noise_floor, noise_floor_from_cv


@dataclass
class Combination:
    """A combination's pass-0 data, its complexity features and its fixed test/pool split."""

    kernel: str
    variant: str
    hardware: str
    params: list[str]
    complexity: dict[str, str]
    X: pd.DataFrame  # parameter columns, pass-0 rows (reset index)
    F: np.ndarray  # parameters then complexity features (raw)
    y: np.ndarray  # pass-0 runtimes (seconds)
    test: np.ndarray  # row indices of the test set
    pool: np.ndarray  # row indices training sets are drawn from
    floor: float  # noise floor (percent) or NaN
    floor_source: str  # "two passes (n=...)", "runtime_cv estimate ...", "not available"
    y_repeat: np.ndarray | None = None  # pass-1 runtimes of the test rows, if measured
    floor_median: float = float("nan")  # median |pass 1 - pass 0| / pass 0 (percent)
    source: str = ""
    problem_size: tuple = ()  # a GPU tuning space's problem size (Kernel Tuner caches)
    constants: dict | None = None  # its parameters with one value (e.g. filter_width)

    @property
    def key(self) -> tuple[str, str, str]:
        return self.kernel, self.variant, self.hardware

    @property
    def name(self) -> str:
        return f"{self.kernel}/{self.variant}/{self.hardware}"

    def train_rows(self, seed: int, n: int) -> np.ndarray:
        """The first ``n`` points of seed ``seed``'s permutation of the pool (nested in n)."""
        order = np.random.default_rng([int(seed), 7919, len(self.pool)]).permutation(
            len(self.pool))
        return self.pool[order[:min(n, len(self.pool))]]


def _dedupe(g: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    return g.drop_duplicates(subset=keys, keep="first") if keys else g


def prepare_combination(key, g: pd.DataFrame, *, features: Sequence[str] | None = None,
                        complexity: dict[str, str] | None = None, n_test: int = 250,
                        min_pool: int = 8, seed: int = 0) -> Combination:
    """Split one combination's rows (see the module docstring for the protocol)."""
    kernel, variant, hw_id = key
    src = str(g["_source"].iloc[0]) if "_source" in g.columns else ""
    if features:
        params = list(features)
    else:
        from annpred.model.trainer import _catalog_params

        params = _catalog_params(kernel, variant, [c for c in _data.feature_columns(g)
                                                   if c not in ("pass",)])
    if not params:
        raise DataError(f"{src}: combination {kernel}/{variant}/{hw_id} has no parameter "
                        "(feature) columns")
    if complexity is None:
        from annpred.model.trainer import _catalog_complexity, _structure

        # without a catalog entry a GPU tuning space's launch structure is its complexity
        complexity = _catalog_complexity(kernel, variant, params) or _structure(g, params)
    _expr.check_all(complexity.values(), params, f"{src}: combination {kernel}/{variant}/{hw_id}")
    passes = (g["pass"].fillna(0).astype(int) if "pass" in g.columns
              else pd.Series(0, index=g.index))
    idcols = [c for c in ("seed", "point") if c in g.columns and g[c].notna().all()]
    if "point" not in idcols:
        idcols = []
    matchcols = idcols or params
    p0 = _dedupe(g[passes == 0], matchcols).reset_index(drop=True)
    p1 = _dedupe(g[passes == 1], matchcols)
    if len(p0) < min_pool:
        raise DataError(f"{src}: combination {kernel}/{variant}/{hw_id} has {len(p0)} "
                        f"first-pass rows; at least {min_pool} are needed")
    X = p0[params].reset_index(drop=True).astype(float)
    y = p0["runtime_s"].to_numpy(dtype=float)
    y_repeat = None
    if len(p1):
        m = p0.reset_index().merge(p1[matchcols + params + ["runtime_s"]], on=matchcols,
                                   how="inner", suffixes=("", "_p1"))
        if idcols:  # the same point ids must be the same inputs
            same = np.ones(len(m), dtype=bool)
            for c in params:
                a, b = m[c].to_numpy(float), m[c + "_p1"].to_numpy(float)
                same &= np.isclose(a, b, rtol=1e-9, atol=0)
            m = m[same]
        test = np.sort(m["index"].to_numpy(dtype=int))
        m = m.set_index("index").loc[test]
        y_repeat = m["runtime_s_p1"].to_numpy(dtype=float)
    else:
        test = np.array([], dtype=int)
    if len(test) >= 1 and len(p0) - len(test) >= min_pool:
        pool = np.setdiff1d(np.arange(len(p0)), test)
        floor = noise_floor(y[test], y_repeat)
        floor_source = f"two passes (n={len(test)})"
    else:
        y_repeat = None
        n_hold = min(n_test, len(p0) // 2)
        order = np.random.default_rng([seed, 1234, len(p0)]).permutation(len(p0))
        test, pool = np.sort(order[:n_hold]), np.sort(order[n_hold:])
        if "runtime_cv" in p0.columns and p0["runtime_cv"].notna().all():
            reps = (p0["repeats"].to_numpy(float)[test] if "repeats" in p0.columns
                    and p0["repeats"].notna().all() else None)
            floor = noise_floor_from_cv(p0["runtime_cv"].to_numpy(float)[test], reps)
            floor_source = "runtime_cv estimate (within-pass jitter only; lower bound)"
        else:
            floor, floor_source = float("nan"), "not available"
    if len(test) == 0:
        raise DataError(f"{src}: combination {kernel}/{variant}/{hw_id} has too few rows "
                        "for a held-out test set")
    F = feature_matrix(X, params, complexity)
    bad = ~np.all(np.isfinite(F), axis=1)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise DataError(f"{src}: combination {kernel}/{variant}/{hw_id}: the complexity "
                        f"features are not finite at {dict(X.iloc[i])}")
    floor_median = (mdape(y[test], y_repeat) if y_repeat is not None else float("nan"))
    from annpred.data.kerneltuner import space_constants, space_problem_size

    return Combination(kernel, variant, hw_id, params, dict(complexity), X, F, y,
                       test, pool, floor, floor_source, y_repeat, floor_median=floor_median,
                       source=src, problem_size=tuple(space_problem_size(g) or ()),
                       constants=space_constants(g) or {})


def prepare(df: pd.DataFrame, **kw) -> list[Combination]:
    return [prepare_combination(key, g, **kw) for key, g in _data.combinations(df)]
