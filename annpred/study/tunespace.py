"""Selection on a tuning space: fit on ``budget`` measured configurations, predict every
configuration, and judge the pick.

The space is every configuration a Kernel Tuner cache holds (failures excluded), all of them
measured, so the choice can be scored: *regret* is the best runtime among the ``budget``
measured configurations plus the ``top`` best predicted unmeasured ones, divided by the true
optimum (1.0 = found it). Random sampling with the same number of measurements is the
baseline: the same ``budget`` measured configurations plus ``top`` random ones instead of the
predicted ones (paired, so that it judges the picks); its regret is averaged over many
draws.

Two ways to spend the budget (``strategy``): ``random`` measures ``budget`` configurations
drawn at random and fits once; ``guided`` measures half the budget at random, then, in
rounds, fits and measures new configurations until the budget is spent (a model-guided
search, as autotuners do). Half of each round goes to a local search: the neighbours of the
fastest measured configurations (those that differ in one tuning parameter), the
``NEIGHBOURS_EACH`` best predicted of each, fastest measured first; the other half to the
fastest predicted configurations anywhere. A model that ranks a basin right but misses its
floor by one parameter step still reaches it, and the search does not stay where the model
alone points. Guided measurements crowd the fast region, so the MAPE over the rest (mostly
slow configurations) says less about the model than the regret does.

:func:`predict_unmeasured` is the same fit for a space that is *not* fully measured (a
cache of a partial tuning run): fit on the measured configurations, predict the others
(e.g. the product of the cache's ``tune_params``, :func:`annpred.data.kerneltuner.product_space`),
rank them. Nothing can be judged there; the network's conformal interval says how far to
trust each prediction.

The picks' expected runtime and interval (``SpaceResult.picks``, ``SpaceResult.expected``)
come from :mod:`annpred.study.picks`: each guided round records how what it picked ran
against its prediction when picked, cautiously predicted (the slower of that fit's and the
previous fit's prediction)."""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable

import numpy as np

from annpred.errors import FewRowsWarning
from annpred.study.combos import Combination
from annpred.study.metrics import mape
from annpred.study.picks import PICK_COVERAGE, apply_picks, cautious, pick_interval

if TYPE_CHECKING:
    import pandas as pd

STRATEGIES = ("random", "guided")
GUIDED_ROUNDS = 5  # rounds after the random half
NEIGHBOUR_SHARE = 0.5  # share of each guided round spent on neighbours of the fastest measured
NEIGHBOURS_EACH = 2  # best predicted unmeasured neighbours taken per measured configuration


@dataclass
class SpaceResult:
    model: str
    seed: int
    budget: int
    top: int
    mape: float  # over every configuration not measured (percent)
    regret: float  # best of (measured + top predicted) / true optimum
    random_regret: float  # expected best of (the same budget + top random ones) / optimum
    best_row: int  # row of the predicted best unmeasured configuration
    top_rows: list = field(default_factory=list)  # the top predicted unmeasured rows
    predicted: np.ndarray | None = None  # predicted runtime of every configuration (s)
    measured: np.ndarray | None = None  # rows measured (training)
    complexity: dict | None = None  # the expressions the fitted network uses (if a network)
    low: np.ndarray | None = None  # the network's conformal interval for every configuration
    high: np.ndarray | None = None
    picks: dict | None = None  # guided: the interval calibrated on the rounds' picks
    cautious: np.ndarray | None = None  # guided: the slower of the last two fits' predictions

    def expected(self, rows) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """``(expected, low, high)`` seconds of configurations ``rows`` as picks (see
        :func:`~annpred.study.picks.pick_interval`), or None without a guided search's picks."""
        if self.picks is None:
            return None
        return apply_picks(self.picks, self.cautious[np.asarray(rows, dtype=int)])

    @property
    def unmeasured(self) -> np.ndarray:
        """Rows of the space not measured, ascending."""
        return np.setdiff1d(np.arange(len(self.predicted)), self.measured)


def random_regret(y: np.ndarray, measured: np.ndarray, extra: int, draws: int = 2000,
                  seed: int = 0) -> float:
    """Expected (best of the ``measured`` rows plus ``extra`` more drawn at random from the
    rest) / optimum: random sampling with the same measurements, paired with the model's
    draw of measured configurations (so the comparison is about the ``extra`` picks)."""
    rng = np.random.default_rng([seed, 99])
    rest = np.setdiff1d(np.arange(len(y)), measured)
    base = y[measured].min()
    extra = min(extra, len(rest))
    if extra == 0:
        return float(base / y.min())
    best = [min(base, y[rest[rng.choice(len(rest), extra, replace=False)]].min())
            for _ in range(draws)]
    return float(np.mean(best) / y.min())


def select_on_space(c: Combination, model, *, budget: int, top: int, seed: int,
                    name: str = "", strategy: str = "random",
                    progress: Callable[[str], None] | None = None) -> SpaceResult:
    """Fit ``model`` (a :mod:`annpred.study.zoo` model) on ``budget`` configurations of
    ``c`` (all rows are the space), measured as ``strategy`` says, and score the pick.
    ``progress(message)`` receives a line per fit."""
    say = progress or (lambda msg: None)
    n = len(c.y)
    if budget >= n:
        from annpred.errors import ParameterError

        raise ParameterError(f"--budget {budget} must be below the {n} configurations of "
                             "the space")
    if strategy not in STRATEGIES:
        from annpred.errors import ParameterError

        raise ParameterError(f"strategy must be one of {', '.join(STRATEGIES)}, got "
                             f"{strategy!r}")
    order = np.random.default_rng([int(seed), 31337, n]).permutation(n)
    if strategy == "random":
        train = np.sort(order[:budget])
        say(f"fitting {name or 'the model'} on {budget} random configurations")
        model.fit(c, train, seed)
        pred = np.asarray(model.predict(c, np.arange(n)), dtype=float)
    else:
        train, pred, picked, last = _guided(c, model, order, budget, seed, say)
    rest = np.setdiff1d(np.arange(n), train)
    ranked = rest[np.argsort(pred[rest], kind="stable")]
    top_rows = ranked[:top]
    found = min(c.y[train].min(), c.y[top_rows].min() if top else np.inf)
    low, high, coverage = _interval(model, c.X)
    picks = None if strategy == "random" else pick_interval(picked, coverage or PICK_COVERAGE)
    slower = None if strategy == "random" else cautious(pred, last)
    return SpaceResult(name or getattr(model, "name", ""), seed, budget, top,
                       mape(c.y[rest], pred[rest]), float(found / c.y.min()),
                       # random sampling with as many measurements: the first budget of
                       # the same random order (the random strategy's own draw) + top more
                       random_regret(c.y, np.sort(order[:budget]), top, seed=seed),
                       int(ranked[0]),
                       [int(r) for r in top_rows], pred, train,
                       getattr(getattr(model, "model_", None), "complexity_", None), low, high,
                       picks, slower)


def _interval(model, X):
    """``(low, high, coverage)`` of a fitted network's conformal interval over the rows of
    ``X``, or Nones for a model without one."""
    est = getattr(model, "model_", None)
    if not (hasattr(est, "predict_interval") and getattr(est, "interval_", None)):
        return None, None, None
    _, low, high = est.predict_interval(X)
    return low, high, float(est.coverage)


def _guided(c: Combination, model, order: np.ndarray, budget: int, seed: int,
            say: Callable[[str], None] = lambda msg: None):
    """Half the budget at random, then rounds of: fit, measure the best predicted unmeasured
    neighbours of the fastest measured configurations (``NEIGHBOUR_SHARE`` of the round),
    then the fastest predicted unmeasured configurations. Returns the measured rows and the
    last fit's predictions, log(measured / predicted) of every configuration a round picked
    (predicted by the slower of that round's fit and the one before it, see
    :func:`annpred.study.picks.pick_interval`), and the last round's predictions."""
    n = len(c.y)
    values = c.X[list(c.params)].to_numpy()
    measured = np.zeros(n, dtype=bool)
    measured[order[:max(8, budget // 2)]] = True
    left = budget - int(measured.sum())
    all_rows = np.arange(n)
    picked: list[float] = []
    pred = None
    for r in range(GUIDED_ROUNDS, 0, -1):
        say(f"guided round {GUIDED_ROUNDS - r + 1} of {GUIDED_ROUNDS}: fitting on "
            f"{int(measured.sum())} configurations")
        with warnings.catch_warnings():  # a round's fit on part of the budget only guides
            warnings.simplefilter("ignore", FewRowsWarning)
            model.fit(c, np.flatnonzero(measured), seed)
        pred, before = np.asarray(model.predict(c, all_rows), dtype=float), pred
        take = -(-left // r)  # what is left, spread over the rounds that are left
        if take <= 0:
            break
        chosen = next_batch(values, c.y, measured, pred, take)
        picked.extend(np.log(c.y[chosen] / cautious(pred, before)[chosen]).tolist())
        measured[chosen] = True
        left -= len(chosen)
    train = np.flatnonzero(measured)
    say(f"final fit on {len(train)} configurations")
    model.fit(c, train, seed)
    return train, np.asarray(model.predict(c, all_rows), dtype=float), picked, pred


def next_batch(values: np.ndarray, y: np.ndarray, measured: np.ndarray, pred: np.ndarray,
               take: int) -> list[int]:
    """One guided round: ``take`` unmeasured rows to measure next, ``NEIGHBOUR_SHARE`` of
    them the best predicted one-parameter neighbours of the fastest measured rows, the rest
    the fastest predicted anywhere (``y`` is read on measured rows only)."""
    chosen = _local_search(values, y, measured, pred, round(take * NEIGHBOUR_SHARE))
    free = ~measured
    free[chosen] = False
    cand = np.flatnonzero(free)
    chosen += cand[np.argsort(pred[cand], kind="stable")[:take - len(chosen)]].tolist()
    return chosen


def suggest_next(c: Combination, sp: "SpacePrediction", take: int) -> np.ndarray:
    """The guided strategy's next round for a partial run: ``take`` candidate rows of ``sp``
    (indices into ``sp.candidates``) to measure next, from every measured configuration of
    ``c`` and the predictions ``sp`` made."""
    n, m = len(c.y), len(sp.candidates)
    values = np.vstack([c.X[list(c.params)].to_numpy(dtype=float),
                        sp.candidates[list(c.params)].to_numpy(dtype=float)])
    y = np.concatenate([c.y, np.full(m, np.inf)])
    measured = np.arange(n + m) < n
    pred = np.concatenate([np.full(n, np.inf), sp.predicted])
    return np.asarray(next_batch(values, y, measured, pred, min(take, m)), dtype=int) - n


def _local_search(values: np.ndarray, y: np.ndarray, measured: np.ndarray, pred: np.ndarray,
                  want: int) -> list[int]:
    """Up to ``want`` unmeasured rows that differ from a measured one in exactly one
    parameter: the ``NEIGHBOURS_EACH`` best predicted of each measured row, fastest measured
    row first."""
    chosen: list[int] = []
    if want <= 0:
        return chosen
    taken = measured.copy()
    done = np.flatnonzero(measured)
    for b in done[np.argsort(y[done], kind="stable")]:
        near = np.flatnonzero(((values != values[b]).sum(axis=1) == 1) & ~taken)
        for j in near[np.argsort(pred[near], kind="stable")][:NEIGHBOURS_EACH]:
            chosen.append(int(j))
            taken[j] = True
            if len(chosen) >= want:
                return chosen
    return chosen


@dataclass
class SpacePrediction:
    """What :func:`predict_unmeasured` fitted and predicted for a partial run."""

    model: str
    fitted: np.ndarray  # rows of the combination the model was fitted on
    candidates: "pd.DataFrame"  # the unmeasured configurations (parameter columns)
    predicted: np.ndarray  # predicted runtime of each candidate (s)
    low: np.ndarray | None  # the network's conformal interval, where it has one
    high: np.ndarray | None
    order: np.ndarray  # candidate rows, fastest predicted first
    outside: int  # candidates with a parameter outside the fitted configurations' range
    complexity: dict | None = None
    coverage: float | None = None  # nominal coverage of [low, high]


def unmeasured(c: Combination, columns: dict) -> "pd.DataFrame":
    """The configurations of ``columns`` (parameter -> array, e.g. a product space) that
    ``c`` has not measured, as a frame of the ``c.params`` that ``columns`` has."""
    import pandas as pd

    params = [p for p in c.params if p in columns]  # not an input such as transfer_s
    cand = pd.DataFrame({p: np.asarray(columns[p], dtype=float) for p in params})
    seen = set(map(tuple, c.X[params].to_numpy(dtype=float).tolist()))
    keep = [t not in seen for t in map(tuple, cand.to_numpy().tolist())]
    return cand[keep].reset_index(drop=True)


def predict_unmeasured(c: Combination, model, candidates, *, seed: int,
                       budget: int | None = None, name: str = "") -> SpacePrediction:
    """Fit ``model`` on the measured configurations of ``c`` (all, or ``budget`` drawn at
    random) and predict ``candidates`` (a frame of ``c.params``), fastest first."""
    import dataclasses

    from annpred.model.features import feature_matrix

    n = len(c.y)
    if budget is not None and not 8 <= budget <= n:
        from annpred.errors import ParameterError

        raise ParameterError(f"--budget must be between 8 and the {n} measured "
                             f"configurations, got {budget}")
    order = np.random.default_rng([int(seed), 31337, n]).permutation(n)
    rows = np.arange(n) if budget is None else np.sort(order[:budget])
    model.fit(c, rows, seed)
    X = candidates[list(c.params)].reset_index(drop=True).astype(float)
    m = len(X)
    cc = dataclasses.replace(c, X=X, F=feature_matrix(X, c.params, c.complexity),
                             y=np.full(m, np.nan), test=np.arange(0), pool=np.arange(m))
    pred = np.asarray(model.predict(cc, np.arange(m)), dtype=float)
    low, high, coverage = _interval(model, X)
    lo, hi = c.X.iloc[rows].min(), c.X.iloc[rows].max()
    outside = int(((X < lo) | (X > hi)).any(axis=1).sum())
    return SpacePrediction(name or getattr(model, "name", ""), rows, X, pred, low, high,
                           np.argsort(pred, kind="stable"), outside,
                           getattr(getattr(model, "model_", None), "complexity_", None),
                           coverage)


def space_combination(df, *, complexity: dict | None = None) -> Combination:
    """One tuning space (a frame from :func:`annpred.data.profiles.load_profiles` with one
    combination) as a :class:`Combination` whose rows are every configuration."""
    from annpred.data import profiles as _data
    from annpred.study.combos import prepare_combination

    combos = list(_data.combinations(df))
    if len(combos) != 1:
        from annpred.errors import DataError

        raise DataError(f"a tuning space is one kernel on one device; got {len(combos)} "
                        "combinations")
    key, g = combos[0]
    g = g.drop(columns=[c for c in ("pass",) if c in g.columns])
    if complexity is None:
        params = [p for p in _data.feature_columns(g)]
        from annpred.model.trainer import _catalog_complexity, _structure

        complexity = (_catalog_complexity(key[0], key[1], params) or _structure(g, params))
    c = prepare_combination(key, g, complexity=complexity, n_test=1)
    return c


def predicted_table(c: Combination, rows, pred) -> list[dict]:
    """Configurations ``rows`` with their parameters and predicted runtime."""
    return [{**{p: float(c.X.iloc[r][p]) for p in c.params}, "predicted_s": float(pred[r]),
             "measured_s": float(c.y[r])} for r in rows]

