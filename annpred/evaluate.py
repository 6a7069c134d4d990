"""The accuracy study: every model, the same splits, honest metrics.

For each (kernel, variant, hardware) combination in profiling CSVs:

* **Test set.** When the CSV holds a second measurement pass (``pass`` = 1) over some points,
  those points form the test set: their pass-0 runtimes are the truth the models are judged
  against, and the MAPE between the two passes over exactly those points is the combination's
  *noise floor* (how well a repeat measurement "predicts" the first one). Without a second
  pass, a fixed random held-out set is used and the floor is estimated from ``runtime_cv``
  when present (labelled: it only sees the jitter inside one measurement, not drift between
  passes, so it is a lower bound), else reported as not available.
* **Training pool.** Every other pass-0 point. Seed ``s`` draws a fixed random permutation of
  the pool; a model trained on ``n`` points uses its first ``n`` (so learning curves are
  nested). Validation data for early stopping / model selection is carved out of those ``n``
  points by each model; the test points are never seen in training, and every scaler is
  fitted on training rows only.
* **Models** (all fitted on log runtime): ``Cons`` (linear in log of the main complexity
  feature), ``LR+C`` (linear in log parameters and log complexities), ``RF+C`` (random
  forest, 200 trees), ``GBT+C`` (gradient-boosted trees, number of trees chosen by early
  stopping on a validation split), ``NN`` (our network without complexity), ``NN+C`` (ours,
  < 75 parameters) and ``NN+C-L`` (a 32x32 network trained on the whole pool).
* **Metrics**: MAPE over all test points (headline), the papers' filtered MAPE (smallest 30%
  of measured runtimes dropped), the share of predictions within +-10%, Spearman's rho.

:func:`evaluate` computes everything; :func:`write_outputs` writes CSV, Markdown and PNGs.
Nothing here imports torch at module level (the network models import it when fitted).
"""
from __future__ import annotations

import math
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np
import pandas as pd

from . import data as _data
from . import expr as _expr
from .errors import DataError, ParameterError

MODELS = ("Cons", "LR+C", "RF+C", "GBT+C", "NN", "NN+C", "NN+C-L")
BASELINES = ("Cons", "LR+C", "RF+C", "GBT+C", "NN")  # what NN+C must beat
NEEDS_COMPLEXITY = {"Cons", "LR+C", "RF+C", "GBT+C", "NN+C", "NN+C-L"}
# LR+C/RF+C/GBT+C degrade to their plain form without complexity; Cons and NN+C* cannot run
REQUIRES_COMPLEXITY = {"Cons", "NN+C", "NN+C-L"}
DESCRIPTIONS = {
    "Cons": "linear regression of log runtime on log(main complexity feature)",
    "LR+C": "linear regression of log runtime on log parameters + log complexity features",
    "RF+C": "random forest (200 trees) on parameters + complexity features, log target",
    "GBT+C": "gradient-boosted trees (Huber loss, depth 3, lr 0.05, subsample 0.8, number "
             "of trees chosen by early stopping on 20% validation) on parameters + complexity "
             "features, log target",
    "NN": "AugmentedNNRegressor without complexity features (< 75 parameters; defaults: "
          "L-BFGS, Huber loss on log runtime, 2 initialisations)",
    "NN+C": "AugmentedNNRegressor with the catalog complexity features (< 75 parameters; "
            "ours; same defaults, incl. keeping all complexity features or only the main one, "
            "whichever validates better)",
    "NN+C-L": "larger network (hidden 32x32, about 1,300 parameters) with all complexity "
              "features, trained on the whole training pool (more data)",
}
DEFAULT_CURVE_SIZES = (25, 50, 100, 250, 500, 1000)
FILTER_DROP = 0.3  # the papers' filter: drop the smallest 30% of runtimes
NN_DEFAULTS: dict = {}  # the regressor's own defaults: the model users get
LARGE_HIDDEN = (32, 32)


# -- metrics ---------------------------------------------------------------------------------
def _pair(y_true, y_pred) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y_true, dtype=float).ravel()
    p = np.asarray(y_pred, dtype=float).ravel()
    if y.shape != p.shape:
        raise ValueError(f"y_true has {y.size} values but y_pred has {p.size}")
    if y.size == 0:
        raise ValueError("no values to score")
    if np.any(y <= 0) or not np.all(np.isfinite(y)):
        raise ValueError("measured runtimes must be finite and positive")
    return y, p


def relative_errors(y_true, y_pred) -> np.ndarray:
    y, p = _pair(y_true, y_pred)
    return np.abs(p - y) / y


def mape(y_true, y_pred) -> float:
    """Mean absolute percentage error over all points, in percent."""
    return float(np.mean(relative_errors(y_true, y_pred)) * 100.0)


def filtered_mape(y_true, y_pred, drop: float = FILTER_DROP) -> float:
    """The papers' filtered MAPE (percent): the ``floor(drop * n)`` smallest *measured*
    runtimes are dropped before averaging. Reported for comparison only, and labelled."""
    y, p = _pair(y_true, y_pred)
    if not 0 <= drop < 1:
        raise ValueError("drop must be in [0, 1)")
    keep = np.argsort(y, kind="stable")[int(math.floor(drop * y.size)):]
    return mape(y[keep], p[keep])


def mdape(y_true, y_pred) -> float:
    """Median absolute percentage error (percent): insensitive to the few measurements a busy
    machine spoils, which dominate the mean on noisy combinations."""
    return float(np.median(relative_errors(y_true, y_pred)) * 100.0)


def within(y_true, y_pred, tol: float = 0.10) -> float:
    """Share of predictions within +-``tol`` of the measurement, in percent."""
    return float(np.mean(relative_errors(y_true, y_pred) <= tol + 1e-12) * 100.0)


def spearman(y_true, y_pred) -> float:
    """Spearman's rank correlation (ties get average ranks); NaN if either side is constant."""
    y, p = _pair(y_true, y_pred)
    ry = pd.Series(y).rank(method="average").to_numpy()
    rp = pd.Series(p).rank(method="average").to_numpy()
    ry, rp = ry - ry.mean(), rp - rp.mean()
    den = math.sqrt(float(ry @ ry) * float(rp @ rp))
    return float(ry @ rp / den) if den > 0 else float("nan")


def score(y_true, y_pred) -> dict[str, float]:
    return {"mape": mape(y_true, y_pred), "filtered_mape": filtered_mape(y_true, y_pred),
            "within10": within(y_true, y_pred, 0.10), "spearman": spearman(y_true, y_pred),
            "mdape": mdape(y_true, y_pred)}


def noise_floor(first, second) -> float:
    """MAPE (percent) between two measurement passes over the same points: mean
    ``|second - first| / first``."""
    return mape(first, second)


def noise_floor_from_cv(cv, repeats=None) -> float:
    """Expected MAPE between two independent medians of ``repeats`` runs with robust
    coefficient of variation ``cv`` (normal approximation; percent). Sees only jitter within
    one measurement, not drift between passes: a lower bound on the two-pass floor."""
    cv = np.asarray(cv, dtype=float)
    r = np.ones_like(cv) if repeats is None else np.maximum(np.asarray(repeats, float), 1.0)
    sd_median = 1.2533 * cv / np.sqrt(r)  # sampling sd of a median, relative
    return float(np.mean(2.0 / math.sqrt(math.pi) * math.sqrt(2.0) * sd_median) * 100.0)


# -- one combination's data and splits ------------------------------------------------------
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
    params = list(features) if features else [c for c in _data.feature_columns(g)
                                              if c not in ("pass",)]
    if not params:
        raise DataError(f"{src}: combination {kernel}/{variant}/{hw_id} has no parameter "
                        "(feature) columns")
    if complexity is None:
        from .trainer import _catalog_complexity

        complexity = _catalog_complexity(kernel, variant, params) or {}
    for text in complexity.values():
        _expr.parse(text, params)
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
    F = _feature_matrix(X, params, complexity)
    bad = ~np.all(np.isfinite(F), axis=1)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise DataError(f"{src}: combination {kernel}/{variant}/{hw_id}: the complexity "
                        f"features are not finite at {dict(X.iloc[i])}")
    floor_median = (mdape(y[test], y_repeat) if y_repeat is not None else float("nan"))
    return Combination(kernel, variant, hw_id, params, dict(complexity), X, F, y,
                       test, pool, floor, floor_source, y_repeat, floor_median=floor_median,
                       source=src)


def _feature_matrix(X: pd.DataFrame, params, complexity) -> np.ndarray:
    values = {c: X[c].to_numpy(dtype=float) for c in params}
    cols = [values[c] for c in params]
    for text in complexity.values():
        cols.append(np.broadcast_to(np.asarray(_expr.evaluate(text, values), float),
                                    (len(X),)))
    return np.column_stack(cols).astype(float)


def prepare(df: pd.DataFrame, **kw) -> list[Combination]:
    return [prepare_combination(key, g, **kw) for key, g in _data.combinations(df)]


# -- the model zoo ---------------------------------------------------------------------------
class _Model:
    name = ""

    def fit(self, c: Combination, rows: np.ndarray, seed: int) -> "_Model":
        raise NotImplementedError

    def predict(self, c: Combination, rows: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    n_params: int = 0


def _log_safe(F: np.ndarray, positive: np.ndarray) -> np.ndarray:
    out = F.copy()
    out[:, positive] = np.log(F[:, positive])
    return out


class LogLinear(_Model):
    """Least squares of log runtime on (log) feature columns ``cols`` of ``Combination.F``."""

    def __init__(self, name: str, cols: Callable[[Combination], list[int]]):
        self.name, self._cols = name, cols

    def _design(self, c, rows):
        F = c.F[:, self.cols_][rows]
        return _log_safe(F, self.positive_)

    def fit(self, c, rows, seed):
        from sklearn.linear_model import LinearRegression

        self.cols_ = self._cols(c)
        self.positive_ = np.all(c.F[:, self.cols_] > 0, axis=0)
        self.model_ = LinearRegression().fit(self._design(c, rows), np.log(c.y[rows]))
        self.n_params = len(self.cols_) + 1
        return self

    def predict(self, c, rows):
        return np.exp(self.model_.predict(self._design(c, rows)))


class Trees(_Model):
    """A scikit-learn tree ensemble on parameters + complexity features, log target.
    ``n_params`` counts tree nodes (each holds a split or a leaf value)."""

    def __init__(self, name: str, make: Callable[[int], object]):
        self.name, self._make = name, make

    def fit(self, c, rows, seed):
        self.model_ = self._make(seed).fit(c.F[rows], np.log(c.y[rows]))
        est = np.ravel(getattr(self.model_, "estimators_", []))
        self.n_params = int(sum(e.tree_.node_count for e in est))
        return self

    def predict(self, c, rows):
        return np.exp(self.model_.predict(c.F[rows]))


def _rf(seed):
    from sklearn.ensemble import RandomForestRegressor

    return RandomForestRegressor(n_estimators=200, random_state=seed, n_jobs=1)


def _gbt(seed):
    from sklearn.ensemble import GradientBoostingRegressor

    # Huber loss (corner at the 80th percentile of residuals): on dev data (never the
    # study's test points) it beat squared error, 9.5% vs 10.3% median MAPE; the networks
    # get a robust loss too, so the baseline gets the same advantage.
    return GradientBoostingRegressor(loss="huber", alpha=0.8, n_estimators=2000,
                                     learning_rate=0.05, max_depth=3, subsample=0.8,
                                     validation_fraction=0.2, n_iter_no_change=50,
                                     random_state=seed)


class Network(_Model):
    """An :class:`~annpred.regressor.AugmentedNNRegressor` (validation carved inside fit)."""

    def __init__(self, name: str, use_complexity: bool, **kw):
        self.name, self.use_complexity, self.kw = name, use_complexity, kw

    def fit(self, c, rows, seed):
        from .regressor import AugmentedNNRegressor

        comp = dict(c.complexity) if self.use_complexity and c.complexity else None
        self.model_ = AugmentedNNRegressor(complexity=comp, parameters=list(c.params),
                                           seed=seed, **self.kw)
        self.model_.fit(c.X.iloc[rows], c.y[rows])
        self.n_params = int(self.model_.n_params_)
        return self

    def predict(self, c, rows):
        return self.model_.predict(c.X.iloc[rows])


def make_model(name: str, nn_options: dict | None = None) -> _Model:
    nn = {**NN_DEFAULTS, **(nn_options or {})}
    if name == "Cons":
        return LogLinear(name, lambda c: [len(c.params)])
    if name == "LR+C":
        return LogLinear(name, lambda c: list(range(c.F.shape[1])))
    if name == "RF+C":
        return Trees(name, _rf)
    if name == "GBT+C":
        return Trees(name, _gbt)
    if name == "NN":
        return Network(name, False, **nn)
    if name == "NN+C":
        return Network(name, True, **nn)
    if name == "NN+C-L":
        # the parameter budget does not bind here, so no complexity selection: all features
        return Network(name, True, **{"select_complexity": False, **nn, "hidden": LARGE_HIDDEN,
                                      "max_params": 10 ** 6})
    raise ParameterError(f"unknown model {name!r}; models: {', '.join(MODELS)}")


# -- the run ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Fit:
    combo: int
    model: str
    n: int
    seed: int


@dataclass
class Config:
    n_train: int = 250
    n_test: int = 250
    seeds: int = 5
    models: tuple[str, ...] = MODELS
    curve_sizes: tuple[int, ...] = DEFAULT_CURVE_SIZES
    curve_seeds: int = 2
    jobs: int = 1
    nn_options: dict = field(default_factory=dict)


@dataclass
class Result:
    combos: list[Combination]
    config: Config
    runs: pd.DataFrame  # one row per (combination, model, n, seed)
    summary: pd.DataFrame  # one row per (combination, model) at the study's sizes
    curves: pd.DataFrame  # one row per (combination, model, n): mean over curve seeds
    predictions: dict  # (combo index, model) -> test predictions of seed 0
    cost: pd.DataFrame | None = None
    timings: dict = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)


def _study_n(c: Combination, model: str, cfg: Config) -> int:
    return len(c.pool) if model == "NN+C-L" else min(cfg.n_train, len(c.pool))


def _available(c: Combination, model: str) -> bool:
    return bool(c.complexity) or model not in REQUIRES_COMPLEXITY


def plan(combos: list[Combination], cfg: Config) -> list[Fit]:
    fits: dict[Fit, None] = {}
    for i, c in enumerate(combos):
        for m in cfg.models:
            if not _available(c, m):
                continue
            for s in range(cfg.seeds):
                fits[Fit(i, m, _study_n(c, m, cfg), s)] = None
            for n in cfg.curve_sizes:
                if n > len(c.pool):
                    continue
                for s in range(cfg.curve_seeds):
                    fits[Fit(i, m, n, s)] = None
    return list(fits)


_WORK: dict = {}


def _init_worker(combos, nn_options):
    _WORK["combos"], _WORK["nn"] = combos, nn_options
    _WORK["limits"] = _one_thread()


def _one_thread():
    """Limit BLAS/OpenMP pools to one thread (each worker is one core); returns a restorer."""
    try:
        from threadpoolctl import threadpool_limits

        return threadpool_limits(1)
    except Exception:  # pragma: no cover
        return None


def _run_group(group: list[Fit]) -> list[tuple[Fit, dict, np.ndarray | None]]:
    """Fit and score the models of one (combination, n, seed) group."""
    out = []
    for f in group:
        c = _WORK["combos"][f.combo]
        rows = c.train_rows(f.seed, f.n)
        model = make_model(f.model, _WORK["nn"])
        t0 = time.perf_counter()
        model.fit(c, rows, f.seed)
        t_fit = time.perf_counter() - t0
        t0 = time.perf_counter()
        pred = model.predict(c, c.test)
        t_pred = time.perf_counter() - t0
        rec = score(c.y[c.test], pred)
        rec.update(n_params=model.n_params, train_time_s=t_fit, predict_time_s=t_pred)
        out.append((f, rec, pred if f.seed == 0 else None))
    return out


def _groups(fits: list[Fit]) -> list[list[Fit]]:
    by: dict = {}
    for f in fits:
        by.setdefault((f.combo, f.n, f.seed), []).append(f)
    # big groups first: better load balance across workers
    return sorted(by.values(), key=lambda g: -sum(max(f.n, 50) for f in g))


def evaluate(df: pd.DataFrame, config: Config | None = None, *,
             features: Sequence[str] | None = None, complexity: dict | None = None,
             progress: bool = True, cost: bool = True,
             log: Callable[[str], None] | None = None) -> Result:
    """Run the study on a frame from :func:`annpred.data.load_profiles`."""
    cfg = config or Config()
    for m in cfg.models:
        if m not in MODELS:
            raise ParameterError(f"unknown model {m!r}; models: {', '.join(MODELS)}")
    if cfg.n_train < 8:
        raise ParameterError(f"--n-train must be at least 8, got {cfg.n_train}")
    if cfg.seeds < 1 or cfg.curve_seeds < 0:
        raise ParameterError("--seeds must be >= 1 and --curve-seeds >= 0")
    if cfg.jobs < 1:
        raise ParameterError(f"--jobs must be >= 1, got {cfg.jobs}")
    say = log or (lambda s: print(s, file=sys.stderr))
    t_start = time.perf_counter()
    combos = prepare(df, features=features, complexity=complexity, n_test=cfg.n_test)
    if not combos:
        raise DataError("no combinations to evaluate")
    skipped = []
    for c in combos:
        if not c.complexity:
            missing = [m for m in cfg.models if m in REQUIRES_COMPLEXITY]
            skipped.append(f"{c.name}: no complexity expression (catalog or --complexity); "
                           f"skipped {', '.join(missing)}")
        if len(c.pool) < cfg.n_train:
            say(f"note: {c.name}: training pool has {len(c.pool)} points (< {cfg.n_train}); "
                "training on all of them")
        if len(c.test) < cfg.n_test:
            say(f"note: {c.name}: {len(c.test)} test points (< {cfg.n_test})")
    for s in skipped:
        say("note: " + s)
    fits = plan(combos, cfg)
    groups = _groups(fits)
    from tqdm import tqdm

    results: list = []
    bar = tqdm(total=len(fits), disable=not progress, unit="fit", desc="evaluate",
               file=sys.stderr, dynamic_ncols=True)
    try:
        if cfg.jobs == 1:
            _init_worker(combos, cfg.nn_options)
            try:
                for g in groups:
                    res = _run_group(g)
                    results.extend(res)
                    bar.update(len(res))
            finally:
                limits = _WORK.get("limits")
                if limits is not None:
                    limits.restore_original_limits()
                _WORK.clear()
        else:
            import multiprocessing as mp

            ctx = mp.get_context("forkserver" if "forkserver" in mp.get_all_start_methods()
                                 else "spawn")
            with ctx.Pool(cfg.jobs, initializer=_init_worker,
                          initargs=(combos, cfg.nn_options)) as pool:
                for res in pool.imap_unordered(_run_group, groups):
                    results.extend(res)
                    bar.update(len(res))
    finally:
        bar.close()
    t_fit = time.perf_counter() - t_start

    rows, preds = [], {}
    for f, rec, pred in results:
        c = combos[f.combo]
        rows.append({"kernel": c.kernel, "variant": c.variant, "hardware": c.hardware,
                     "combo": f.combo, "model": f.model, "n_train": f.n, "seed": f.seed,
                     **rec})
        if pred is not None and f.n == _study_n(c, f.model, cfg):
            preds[(f.combo, f.model)] = pred
    runs = pd.DataFrame(rows)
    runs["model"] = pd.Categorical(runs["model"], categories=list(MODELS), ordered=True)
    runs = runs.sort_values(["combo", "model", "n_train", "seed"]).reset_index(drop=True)
    summary = _summarise(runs, combos, cfg)
    curves = _curves(runs, combos, cfg)
    res = Result(combos, cfg, runs, summary, curves, preds, skipped=skipped)
    res.timings["fits_s"] = t_fit
    res.timings["n_fits"] = len(fits)
    if cost:
        t0 = time.perf_counter()
        res.cost = cost_benchmark(_cost_combination(combos), n_train=cfg.n_train,
                                  nn_options=cfg.nn_options)
        res.timings["cost_s"] = time.perf_counter() - t0
    res.timings["total_s"] = time.perf_counter() - t_start
    return res


def _summarise(runs: pd.DataFrame, combos, cfg: Config) -> pd.DataFrame:
    out = []
    for i, c in enumerate(combos):
        for m in cfg.models:
            n = _study_n(c, m, cfg)
            r = runs[(runs.combo == i) & (runs.model == m) & (runs.n_train == n)
                     & (runs.seed < cfg.seeds)]
            if r.empty:
                continue
            row = {"kernel": c.kernel, "variant": c.variant, "hardware": c.hardware,
                   "model": m, "n_train": n, "n_test": len(c.test), "seeds": len(r)}
            for k in ("mape", "filtered_mape", "within10", "spearman", "mdape"):
                row[f"{k}_mean"] = float(r[k].mean())
                row[f"{k}_std"] = float(r[k].std(ddof=1)) if len(r) > 1 else 0.0
            row["noise_floor"] = c.floor
            row["noise_floor_source"] = c.floor_source
            row["noise_floor_median"] = c.floor_median
            row["n_params"] = int(r["n_params"].median())
            row["train_time_mean_s"] = float(r["train_time_s"].mean())
            out.append(row)
    return pd.DataFrame(out)


def _curves(runs: pd.DataFrame, combos, cfg: Config) -> pd.DataFrame:
    if not cfg.curve_sizes or cfg.curve_seeds == 0:
        return pd.DataFrame()
    r = runs[runs.n_train.isin(cfg.curve_sizes) & (runs.seed < cfg.curve_seeds)]
    g = r.groupby(["combo", "kernel", "variant", "hardware", "model", "n_train"],
                  observed=True)
    cur = g.agg(mape_mean=("mape", "mean"), mape_std=("mape", "std"), seeds=("mape", "size"),
                train_time_mean_s=("train_time_s", "mean")).reset_index()
    return cur.drop(columns="combo")


# -- cost benchmark ----------------------------------------------------------------------------
def _cost_combination(combos: list[Combination]) -> Combination:
    """The combination the cost benchmark uses: a matmul one if present (the most features),
    else the one with the most features."""
    with_c = [c for c in combos if c.complexity] or combos
    return max(with_c, key=lambda c: (c.kernel == "matmul", c.F.shape[1], -len(c.test)))


def _time(fn, repeat: int, number: int = 1) -> float:
    """Median seconds of one call of ``fn`` over ``repeat`` timings of ``number`` calls."""
    fn()
    ts = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        for _ in range(number):
            fn()
        ts.append((time.perf_counter() - t0) / number)
    return float(np.median(ts))


def cost_benchmark(c: Combination, n_train: int = 250, nn_options: dict | None = None,
                   n_batch: int = 10_000, seed: int = 0) -> pd.DataFrame:
    """Parameter count, training time and prediction latency (one point; ``n_batch``
    points) of NN+C (numpy path and torch forward), RF+C and GBT+C, on one combination, in
    one process, one thread."""
    limits = _one_thread()
    try:
        return _cost(c, n_train, nn_options, n_batch, seed)
    finally:
        if limits is not None:
            limits.restore_original_limits()


def _cost(c, n_train, nn_options, n_batch, seed):
    rows = c.train_rows(seed, n_train)
    rng = np.random.default_rng(seed)
    big = rng.choice(len(c.y), n_batch, replace=True)
    F1, Fb = c.F[c.test[:1]], c.F[big]
    out = []
    models = {m: make_model(m, nn_options) for m in ("NN+C", "RF+C", "GBT+C")}
    fit_s = {}
    for name in models:  # warm-up: imports and first-call costs are not training time
        if name != "NN+C" or c.complexity:
            make_model(name, nn_options).fit(c, rows[:40], seed)
    for name, m in models.items():
        if name == "NN+C" and not c.complexity:
            continue
        t0 = time.perf_counter()
        m.fit(c, rows, seed)
        fit_s[name] = time.perf_counter() - t0
    base = {"kernel": c.kernel, "variant": c.variant, "hardware": c.hardware,
            "n_train": len(rows)}
    if "NN+C" in fit_s:
        from . import network
        from .predict import LoadedModel

        reg = models["NN+C"].model_
        d = reg.to_dict(c.kernel, c.variant, c.hardware)
        compiled = network.compile_model(d)
        out.append({**base, "model": "NN+C (numpy path)", "n_params": reg.n_params_,
                    "train_time_s": fit_s["NN+C"],
                    "predict_1_us": _time(lambda: network.predict_seconds(F1, compiled),
                                          200, 20) * 1e6,
                    "predict_10k_ms": _time(lambda: network.predict_seconds(Fb, compiled),
                                            20) * 1e3,
                    "note": "network.predict_seconds on the feature row(s)"})
        lm = LoadedModel(d)
        cols1 = {p: c.X[p].to_numpy(float)[c.test[:1]] for p in c.params}
        colsb = {p: c.X[p].to_numpy(float)[big] for p in c.params}
        out.append({**base, "model": "NN+C (numpy, from parameters)", "n_params": reg.n_params_,
                    "train_time_s": fit_s["NN+C"],
                    "predict_1_us": _time(lambda: lm.predict(cols1), 200, 20) * 1e6,
                    "predict_10k_ms": _time(lambda: lm.predict(colsb), 20) * 1e3,
                    "note": "annpred.load_models path: parameters -> complexity features "
                            "-> network"})
        import torch

        from .train import AugmentedMLP

        net = AugmentedMLP.from_weights(d["layers"], d.get("skip"), d["activation"])
        net.eval()
        mean = torch.tensor(d["scaler"]["mean"], dtype=torch.float64)
        std = torch.tensor(d["scaler"]["std"], dtype=torch.float64)
        tm, ts = d["target_scaler"]["mean"], d["target_scaler"]["std"]
        logs = torch.tensor([t == "log" for t in d["input_transform"]])

        def torch_predict(F):
            with torch.no_grad():
                x = torch.from_numpy(F)
                x = torch.where(logs, torch.log(x), x)
                return torch.exp(net((x - mean) / std) * ts + tm).numpy()

        assert np.allclose(torch_predict(Fb), network.predict_seconds(Fb, compiled),
                           rtol=1e-9)
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            out.append({**base, "model": "NN+C (torch forward)", "n_params": reg.n_params_,
                        "train_time_s": fit_s["NN+C"],
                        "predict_1_us": _time(lambda: torch_predict(F1), 200, 20) * 1e6,
                        "predict_10k_ms": _time(lambda: torch_predict(Fb), 20) * 1e3,
                        "note": "torch module on the feature row(s), no_grad, 1 thread"})
        finally:
            torch.set_num_threads(threads)
    for name in ("RF+C", "GBT+C"):
        est = models[name].model_
        out.append({**base, "model": name, "n_params": models[name].n_params,
                    "train_time_s": fit_s[name],
                    "predict_1_us": _time(lambda: est.predict(F1), 50, 4) * 1e6,
                    "predict_10k_ms": _time(lambda: est.predict(Fb), 5) * 1e3,
                    "note": "sklearn predict on the feature row(s) (n_params = tree nodes), "
                            "log target"})
    return pd.DataFrame(out)


# -- outputs -----------------------------------------------------------------------------------
ACCURACY_COLUMNS = ["kernel", "variant", "hardware", "model", "n_train", "n_test", "seeds",
                    "mape_mean", "mape_std", "filtered_mape_mean", "filtered_mape_std",
                    "within10_mean", "within10_std", "spearman_mean", "spearman_std",
                    "noise_floor", "noise_floor_source", "mdape_mean", "mdape_std",
                    "noise_floor_median", "n_params", "train_time_mean_s"]


def _combo_name(row) -> str:
    return f"{row['kernel']}/{row['variant']}/{row['hardware']}"


def _wide(summary: pd.DataFrame, value: str = "mape_mean") -> pd.DataFrame:
    """combination x model table of ``value`` (combinations in summary order)."""
    s = summary.assign(combination=summary.apply(_combo_name, axis=1))
    order = list(dict.fromkeys(s["combination"]))
    w = s.pivot(index="combination", columns="model", values=value)
    return w.reindex(index=order, columns=[m for m in MODELS if m in w.columns])


def headline(summary: pd.DataFrame) -> pd.DataFrame:
    """Per model, over combinations: median and worst MAPE, medians of the other metrics,
    and on how many combinations the model has the lowest mean MAPE."""
    w = _wide(summary)
    best = w.idxmin(axis=1)
    out = []
    for m in w.columns:
        col = w[m].dropna()
        sub = summary[summary.model == m]
        out.append({
            "model": m, "combinations": len(col),
            "median_mape": float(col.median()), "mean_mape": float(col.mean()),
            "worst_mape": float(col.max()), "worst_combination": str(col.idxmax()),
            "median_filtered_mape": float(sub["filtered_mape_mean"].median()),
            "median_within10": float(sub["within10_mean"].median()),
            "median_spearman": float(sub["spearman_mean"].median()),
            "median_mdape": float(sub["mdape_mean"].median()),
            "best_on": int((best == m).sum()),
            "median_params": int(sub["n_params"].median()),
            "median_n_train": int(sub["n_train"].median()),
        })
    return pd.DataFrame(out)


def verdicts(summary: pd.DataFrame, ours: str = "NN+C",
             baselines: Sequence[str] = BASELINES) -> pd.DataFrame:
    """Per combination: does ``ours`` have a mean MAPE at or below every baseline's?"""
    w = _wide(summary)
    std = _wide(summary, "mape_std")
    floors = _wide(summary, "noise_floor")
    rows = []
    if ours not in w.columns:
        return pd.DataFrame()
    base = [b for b in baselines if b in w.columns]
    for combo in w.index:
        o = w.at[combo, ours]
        b = w.loc[combo, base].dropna()
        if b.empty or not np.isfinite(o):
            continue
        winner = b.idxmin()
        floor = floors.loc[combo].dropna()
        rows.append({"combination": combo, "ours": float(o),
                     "ours_std": float(std.at[combo, ours]),
                     "best_baseline": winner, "best_baseline_mape": float(b.min()),
                     "best_baseline_std": float(std.at[combo, winner]),
                     "beats_all": bool(o <= b.min()),
                     "lost_to": ", ".join(f"{k} ({v:.2f}%)" for k, v in b.items() if v < o),
                     "noise_floor": float(floor.iloc[0]) if len(floor) else float("nan")})
    return pd.DataFrame(rows)


def _fmt(v, digits=2, pct=False) -> str:
    if v is None or (isinstance(v, float) and not np.isfinite(v)):
        return "n/a"
    return f"{v:.{digits}f}{'%' if pct else ''}"


def _md_table(df: pd.DataFrame) -> str:
    cols = list(df.columns)
    lines = ["| " + " | ".join(map(str, cols)) + " |",
             "|" + "|".join("---" if i == 0 else "---:" for i in range(len(cols))) + "|"]
    for _, r in df.iterrows():
        lines.append("| " + " | ".join(str(r[c]) for c in cols) + " |")
    return "\n".join(lines)


def headline_markdown(res: Result) -> str:
    """The headline table (also what the README shows)."""
    h = headline(res.summary)
    t = pd.DataFrame({
        "model": h["model"],
        "median MAPE": h["median_mape"].map(lambda v: _fmt(v, pct=True)),
        "worst MAPE": [f"{_fmt(v, pct=True)} ({c})" for v, c in
                       zip(h["worst_mape"], h["worst_combination"])],
        "filtered MAPE (papers', median)": h["median_filtered_mape"].map(
            lambda v: _fmt(v, pct=True)),
        "within +-10% (median)": h["median_within10"].map(lambda v: _fmt(v, 1, pct=True)),
        "Spearman (median)": h["median_spearman"].map(lambda v: _fmt(v, 3)),
        "MdAPE (median)": h["median_mdape"].map(lambda v: _fmt(v, pct=True)),
        "best on": h["best_on"].map(str) + f"/{len(res.combos)}",
        "params (median)": h["median_params"],
        "n train": h["median_n_train"],
    })
    return _md_table(t)


def hardware_table(summary: pd.DataFrame, value: str = "mape_mean") -> pd.DataFrame:
    """Median over each hardware's combinations of ``value``, per model; plus the floor."""
    floor = "noise_floor_median" if value == "mdape_mean" else "noise_floor"
    t = summary.groupby(["model", "hardware"], observed=True)[value].median().unstack()
    t = t.reindex([m for m in MODELS if m in t.index])
    f = summary.groupby("hardware")[floor].median()
    t.loc["noise floor"] = f.reindex(t.columns)
    return t


def floor_summary(res: Result, ours: str = "NN+C") -> dict:
    s = res.summary[res.summary.model == ours]
    f = s["noise_floor"].to_numpy(float)
    m = s["mape_mean"].to_numpy(float)
    ok = np.isfinite(f)
    two = s["noise_floor_source"].str.startswith("two passes").to_numpy()
    return {"combinations": int(len(s)), "with_floor": int(ok.sum()),
            "two_pass": int(two.sum()),
            "median_floor": float(np.median(f[ok])) if ok.any() else float("nan"),
            "median_ratio": float(np.median(m[ok] / f[ok])) if ok.any() else float("nan"),
            "at_or_below_floor": int(np.sum(m[ok] <= f[ok])),
            "within_1_5x_floor": int(np.sum(m[ok] <= 1.5 * f[ok])),
            "median_ours": float(np.median(m)) if len(m) else float("nan")}


def write_outputs(res: Result, out: str | os.PathLike, *, plots: bool = True,
                  command: str | None = None, notes: str | None = None) -> list[Path]:
    """Write accuracy.csv, accuracy_runs.csv, learning_curves.csv, cost.csv, accuracy.md and
    PNGs into ``out``; returns the paths written."""
    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(f"cannot create output directory {out}: {exc}") from None
    written = []
    summ = res.summary[[c for c in ACCURACY_COLUMNS if c in res.summary.columns]]
    p = out / "accuracy.csv"
    summ.to_csv(p, index=False, float_format="%.6g")
    written.append(p)
    p = out / "accuracy_runs.csv"
    res.runs.drop(columns="combo").to_csv(p, index=False, float_format="%.6g")
    written.append(p)
    if not res.curves.empty:
        p = out / "learning_curves.csv"
        res.curves.to_csv(p, index=False, float_format="%.6g")
        written.append(p)
    if res.cost is not None:
        p = out / "cost.csv"
        res.cost.to_csv(p, index=False, float_format="%.6g")
        written.append(p)
    pngs = []
    if plots:
        pngs = _plots(res, out)
        written.extend(pngs)
    p = out / "accuracy.md"
    p.write_text(_markdown(res, pngs, command, notes), encoding="utf-8")
    written.append(p)
    return written


def curve_table(res: Result) -> pd.DataFrame:
    """Median over combinations of the mean MAPE, per model (rows) and training size."""
    if res.curves.empty:
        return pd.DataFrame()
    t = res.curves.groupby(["model", "n_train"], observed=True)["mape_mean"].median()
    t = t.unstack("n_train")
    return t.reindex([m for m in MODELS if m in t.index])


def _markdown(res: Result, pngs: list[Path], command: str | None, notes: str | None) -> str:
    cfg, S = res.config, res.summary
    L = ["# Accuracy study", ""]
    if command:
        L += [f"Regenerate with `{command}`.", ""]
    fs = floor_summary(res) if "NN+C" in set(S.model) else None
    v = verdicts(S)
    L += ["## Headline", "",
          f"{len(res.combos)} kernel-variant-hardware combinations; MAPE over **all** test "
          "points, mean over seeds, then median / worst over combinations. "
          "\"filtered MAPE\" is the papers' metric (smallest 30% of measured runtimes "
          "dropped), shown for comparison only.", "", headline_markdown(res), ""]
    if fs is not None and len(v):
        gap = v.ours - v.best_baseline_mape
        spread = np.maximum(v.ours_std, v.best_baseline_std)
        clear = int(((gap > 0) & (gap >= spread)).sum())
        L += [f"- NN+C has a mean MAPE at or below every baseline "
              f"({', '.join(b for b in BASELINES if b in set(S.model))}) on "
              f"**{int(v.beats_all.sum())} of {len(v)}** combinations; it is worse than the "
              f"best baseline by more than the seed spread on {clear}.",
              f"- Noise floor (MAPE between two measurement passes over the test points): "
              f"median {_fmt(fs['median_floor'], pct=True)} over {fs['with_floor']} "
              f"combinations ({fs['two_pass']} from two passes). NN+C MAPE / floor: median "
              f"{_fmt(fs['median_ratio'])}x; NN+C is at or below the floor on "
              f"{fs['at_or_below_floor']} and within 1.5x of it on "
              f"{fs['within_1_5x_floor']} of them.",
              "- A model that predicted the noise-free runtime exactly would score about "
              "floor / sqrt(2) against one pass (the floor compares two noisy passes).", ""]
    if S["hardware"].nunique() > 1 or "mdape_mean" in S.columns:
        L += ["### By hardware", "",
              "Median over the hardware's combinations of the mean MAPE over all test points, "
              "and of the median absolute percentage error (MdAPE, which a few spoiled "
              "measurements cannot dominate); the last row is the median noise floor "
              "(MAPE, resp. median |pass 1 - pass 0| / pass 0).", ""]
        a, b = hardware_table(S), hardware_table(S, "mdape_mean")
        t = pd.DataFrame({"model": a.index})
        for hw_id in a.columns:
            t[f"MAPE {hw_id}"] = [_fmt(v, pct=True) for v in a[hw_id]]
        for hw_id in b.columns:
            t[f"MdAPE {hw_id}"] = [_fmt(v, pct=True) for v in b[hw_id]]
        L += [_md_table(t), ""]
    L += ["## Protocol", "",
          f"- Test set: the points measured in both passes (pass-0 runtime is the truth), "
          f"else a fixed random hold-out of up to {cfg.n_test} points. Never used in "
          "training; scalers are fitted on training rows only.",
          f"- Training: {cfg.n_train} points drawn from the remaining points, {cfg.seeds} "
          "seeds (different draws and initialisations); every model gets the same rows per "
          "seed. Validation data (early stopping, number of trees) is carved out of the "
          "training rows. NN+C-L trains on the whole pool (\"more data\").",
          "- All models are fitted on log runtime.", ""]
    L += ["| model | definition |", "|---|---|"]
    L += [f"| {m} | {DESCRIPTIONS[m]} |" for m in MODELS if m in set(S.model)]
    L += ["", "## Per combination", "",
          "Mean MAPE over seeds (+- std); **bold** = lowest. Floor = noise floor.", ""]
    w, sd = _wide(S), _wide(S, "mape_std")
    fl = _wide(S, "noise_floor")
    tab = []
    for combo in w.index:
        r = {"combination": combo,
             "n test": int(S[S.apply(_combo_name, axis=1) == combo]["n_test"].iloc[0]),
             "floor": _fmt(fl.loc[combo].dropna().iloc[0] if fl.loc[combo].notna().any()
                           else float("nan"), pct=True)}
        lo = w.loc[combo].min()
        for m in w.columns:
            val = w.at[combo, m]
            cell = f"{_fmt(val)} +- {_fmt(sd.at[combo, m])}" if np.isfinite(val) else "n/a"
            r[m] = f"**{cell}**" if np.isfinite(val) and val == lo else cell
        if "NN+C" in w.columns:
            md, fm = _wide(S, "mdape_mean"), _wide(S, "noise_floor_median")
            r["NN+C MdAPE / floor MdAPE"] = (f"{_fmt(md.at[combo, 'NN+C'])} / "
                                             f"{_fmt(fm.at[combo, 'NN+C'])}")
        if len(v) and combo in set(v.combination):
            vv = v[v.combination == combo].iloc[0]
            r["NN+C vs baselines"] = ("beats all" if vv.beats_all
                                      else f"loses to {vv.lost_to}")
        tab.append(r)
    L += [_md_table(pd.DataFrame(tab)), ""]
    if len(v):
        lost = v[~v.beats_all]
        L += ["## Where NN+C loses", ""]
        if lost.empty:
            L += ["Nowhere: NN+C's mean MAPE is at or below every baseline's on every "
                  "combination.", ""]
        else:
            L += [f"NN+C loses to at least one baseline on {len(lost)} of {len(v)} "
                  "combinations. Gap = NN+C minus the best baseline (percentage points); "
                  "\"within spread\" = the gap is smaller than the larger of the two seed "
                  "standard deviations.", ""]
            t = pd.DataFrame({
                "combination": lost.combination,
                "NN+C": lost.ours.map(lambda x: _fmt(x, pct=True)),
                "best baseline": [f"{b} {_fmt(x, pct=True)}" for b, x in
                                  zip(lost.best_baseline, lost.best_baseline_mape)],
                "gap": (lost.ours - lost.best_baseline_mape).map(lambda x: _fmt(x)),
                "within spread": np.where(
                    (lost.ours - lost.best_baseline_mape)
                    < np.maximum(lost.ours_std, lost.best_baseline_std), "yes", "no"),
                "floor": lost.noise_floor.map(lambda x: _fmt(x, pct=True)),
            })
            L += [_md_table(t), ""]
    ct = curve_table(res)
    if not ct.empty:
        L += ["## Sample efficiency", "",
              f"Median over combinations of the mean test MAPE ({cfg.curve_seeds} seed(s) per size, "
              "nested training sets drawn from the pool; a size appears where the pool "
              "holds that many points). NN+C-L here is the 32x32 network at each size.", ""]
        t = ct.map(lambda x: _fmt(x, pct=True)).reset_index()
        t.columns = ["model"] + [f"n={c}" for c in ct.columns]
        L += [_md_table(t), ""]
    if res.cost is not None and len(res.cost):
        c = res.cost
        L += ["## Cost", "",
              f"One run, one thread, on {c.kernel.iloc[0]}/{c.variant.iloc[0]}/"
              f"{c.hardware.iloc[0]} with {int(c.n_train.iloc[0])} training points. "
              "Parameters of tree models = tree nodes. Latencies are medians.", ""]
        t = pd.DataFrame({"model": c.model, "parameters": c.n_params,
                          "training": c.train_time_s.map(lambda x: f"{x:.2f} s"),
                          "1 prediction": c.predict_1_us.map(lambda x: f"{x:.1f} us"),
                          "10,000 predictions": c.predict_10k_ms.map(
                              lambda x: f"{x:.2f} ms"),
                          "what is timed": c.note})
        L += [_md_table(t), ""]
    tt = (S.groupby("model", observed=True)["train_time_mean_s"].median()
          .reindex([m for m in MODELS if m in set(S.model)]))
    L += ["## Timings", "",
          f"{res.timings.get('n_fits', 0)} fits in {res.timings.get('fits_s', 0):.0f} s "
          f"with {cfg.jobs} worker(s); whole run {res.timings.get('total_s', 0):.0f} s. "
          "Median training time of one fit at the study size: "
          + ", ".join(f"{m} {x:.2f} s" for m, x in tt.items()) + ".", ""]
    if res.skipped:
        L += ["## Skipped", ""] + [f"- {s}" for s in res.skipped] + [""]
    if notes:
        L += [notes.rstrip(), ""]
    if pngs:
        L += ["## Plots", ""] + [f"![{p.stem}]({p.name})" for p in pngs] + [""]
    return "\n".join(L)


def _plots(res: Result, out: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    written = []
    ours = "NN+C" if "NN+C" in res.config.models else res.config.models[0]
    by_hw: dict[str, list[int]] = {}
    for i, c in enumerate(res.combos):
        by_hw.setdefault(c.hardware, []).append(i)
    for hw_id, idx in by_hw.items():
        n = len(idx)
        cols = min(6, max(1, math.ceil(math.sqrt(n))))
        rows = math.ceil(n / cols)
        fig, axes = plt.subplots(rows, cols, figsize=(2.6 * cols, 2.5 * rows), squeeze=False)
        for ax in axes.ravel()[n:]:
            ax.axis("off")
        for ax, i in zip(axes.ravel(), idx):
            c = res.combos[i]
            pred = res.predictions.get((i, ours))
            y = c.y[c.test]
            if pred is None:
                ax.axis("off")
                continue
            lo, hi = float(min(y.min(), pred.min())), float(max(y.max(), pred.max()))
            g = np.array([lo, hi])
            ax.loglog(g, g, color="k", lw=0.8)
            ax.fill_between(g, g / 1.1, g * 1.1, color="0.85", lw=0)
            ax.loglog(y, pred, ".", ms=2.5, alpha=0.7)
            m = mape(y, pred)
            ax.set_title(f"{c.kernel}/{c.variant}\n{ours} {m:.1f}% (floor "
                         f"{_fmt(c.floor, 1, pct=True)})", fontsize=7)
            ax.tick_params(labelsize=6)
        fig.suptitle(f"{ours}: predicted vs measured runtime (s), test points, seed 0, "
                     f"{hw_id}; band = +-10%", fontsize=9)
        fig.tight_layout()
        p = out / f"pred_vs_measured_{_slug(hw_id)}.png"
        fig.savefig(p, dpi=110)
        plt.close(fig)
        written.append(p)
    ct = curve_table(res)
    if not ct.empty:
        from matplotlib.ticker import NullFormatter, ScalarFormatter

        hws = sorted(res.curves["hardware"].unique())
        panels = [("all combinations", None)] + ([(h, h) for h in hws] if len(hws) > 1 else [])
        fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 4.2),
                                 squeeze=False, sharey=True)
        for ax, (title, hw_id) in zip(axes[0], panels):
            cur = res.curves if hw_id is None else res.curves[res.curves.hardware == hw_id]
            t = cur.groupby(["model", "n_train"], observed=True)["mape_mean"].median()
            t = t.unstack("n_train").reindex([m for m in MODELS if m in ct.index])
            for m in t.index:
                sr = t.loc[m].dropna()
                ax.plot(sr.index, sr.values, "o-", label=m, lw=2.4 if m == "NN+C" else 1.2)
            fs = [c.floor for c in res.combos if np.isfinite(c.floor)
                  and (hw_id is None or c.hardware == hw_id)]
            if fs:
                ax.axhline(float(np.median(fs)), color="k", ls=":",
                           label="noise floor (median)")
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_xticks(list(t.columns))
            ax.xaxis.set_major_formatter(ScalarFormatter())
            ax.xaxis.set_minor_formatter(NullFormatter())
            ax.yaxis.set_major_formatter(ScalarFormatter())
            ax.yaxis.set_minor_formatter(NullFormatter())
            ax.set_yticks([3, 5, 10, 20, 30, 50])
            ax.set_xlabel("training points")
            ax.set_title(f"Sample efficiency: {title}", fontsize=9)
            ax.grid(True, which="both", alpha=0.3)
        axes[0][0].set_ylabel("test MAPE (%), median over combinations")
        axes[0][0].legend(fontsize=7)
        fig.tight_layout()
        p = out / "learning_curves.png"
        fig.savefig(p, dpi=110)
        plt.close(fig)
        written.append(p)
    w = _wide(res.summary)
    if len(w):
        fig, ax = plt.subplots(figsize=(max(6, 0.28 * len(w) + 2), 4.5))
        x = np.arange(len(w))
        for m in w.columns:
            ax.plot(x, w[m].values, "o" if m == "NN+C" else ".", label=m,
                    ms=6 if m == "NN+C" else 4)
        fl = _wide(res.summary, "noise_floor").max(axis=1)
        ax.plot(x, fl.values, "k_", ms=10, label="noise floor")
        ax.set_yscale("log")
        ax.set_xticks(x)
        ax.set_xticklabels(w.index, rotation=90, fontsize=6)
        ax.set_ylabel("test MAPE (%)")
        ax.legend(fontsize=7, ncol=4)
        ax.grid(True, axis="y", which="both", alpha=0.3)
        fig.tight_layout()
        p = out / "mape_by_combination.png"
        fig.savefig(p, dpi=110)
        plt.close(fig)
        written.append(p)
    return written


def _slug(s: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in s)
