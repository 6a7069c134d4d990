"""The model zoo of the study: every baseline and ours behind one fit/predict interface."""
from __future__ import annotations

from typing import Callable

import numpy as np

from annpred.errors import ParameterError
from annpred.study.combos import Combination

MODELS = ("Cons", "LR+C", "RF+C", "GBT+C", "NN", "NN+C", "NN+C-L", "NN+C-auto")
DEFAULT_MODELS = MODELS[:-1]  # what ``annpred evaluate`` runs unless --models says more
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
          "L-BFGS, Huber loss on log runtime, 4 initialisations)",
    "NN+C": "AugmentedNNRegressor with the catalog complexity features (< 75 parameters; "
            "ours; same defaults, incl. keeping all complexity features or only the main one, "
            "whichever validates better)",
    "NN+C-auto": "AugmentedNNRegressor with complexity='auto': the catalog (or structure) "
                 "expressions plus candidates from the columns and GPU launch structure, "
                 "kept greedily when a short fit validates better (validation rows from the "
                 "training data only; < 75 parameters)",
    "NN+C-L": "larger network (hidden 32x32, about 1,300 parameters) with all complexity "
              "features, trained on the whole training pool (more data)",
}
NN_DEFAULTS: dict = {}  # the regressor's own defaults: the model users get
LARGE_HIDDEN = (32, 32)


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
        from annpred.model.estimator import AugmentedNNRegressor

        comp = dict(c.complexity) if self.use_complexity and c.complexity else None
        kw = dict(self.kw)
        if getattr(c, "problem_size", ()):  # a GPU tuning space: its training options
            from annpred.model.trainer import SPACE_OPTIONS

            kw = {**SPACE_OPTIONS, **kw}
        if self.use_complexity == "auto":
            comp, kw["base_complexity"] = "auto", comp
            kw["problem_size"] = list(getattr(c, "problem_size", ()) or ()) or None
            kw["constants"] = dict(getattr(c, "constants", None) or {}) or None
        self.model_ = AugmentedNNRegressor(complexity=comp, parameters=list(c.params),
                                           seed=seed, **kw)
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
    if name == "NN+C-auto":
        return Network(name, "auto", **nn)
    if name == "NN+C-L":
        # the parameter budget does not bind here, so no complexity selection: all features
        return Network(name, True, **{"select_complexity": False, **nn, "hidden": LARGE_HIDDEN,
                                      "max_params": 10 ** 6})
    raise ParameterError(f"unknown model {name!r}; models: {', '.join(MODELS)}")
