"""The estimator's Python API: hyperparameters and inputs are checked up front (one annpred
error naming the parameter, before torch is imported), intervals need enough validation
rows (and ``fit`` says so), arrays after a DataFrame fit are taken positionally, and a model
file brings back the constructor parameters it records."""
from __future__ import annotations

import json
import subprocess
import sys
import warnings

import numpy as np
import pandas as pd
import pytest

from annpred import AugmentedNNRegressor
from annpred.errors import AnnpredError, DataError, FewRowsWarning, ParameterError
from annpred.model.interval import (NoIntervalWarning, conformal_interval, min_residuals,
                                    min_training_rows)

QUICK = dict(max_epochs=5, n_init=1, refit_iter=0)


def _frame(n=40, seed=0):
    rng = np.random.default_rng(seed)
    X = pd.DataFrame(rng.integers(8, 256, size=(n, 3)).astype(float), columns=["m", "n", "k"])
    y = 1e-9 * X.m * X.n * X.k * (1 + 0.02 * rng.standard_normal(n)) + 1e-6
    return X, y.to_numpy()


def _fit(X, y, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FewRowsWarning)
        return AugmentedNNRegressor(**{"complexity": "m*n*k", **QUICK, **kw}).fit(X, y)


def _same(a: dict, b: dict) -> bool:
    strip = lambda d: {**d, "versions": None, "train": {**d["train"], "train_time_s": None}}
    return json.dumps(strip(a), sort_keys=True) == json.dumps(strip(b), sort_keys=True)


# (keyword arguments, text the message must contain); every one is refused in fit
BAD = [
    ({"input_transform": "sqrt"}, "input_transform"),
    ({"input_transform": ["log", "sqrt", "log", "log"]}, "input_transform"),
    ({"input_transform": ["log", "log"]}, "input_transform lists 2"),
    ({"complexity": "auto", "input_transform": ["log"] * 4}, "input_transform"),
    ({"seed": -1}, "seed"),
    ({"seed": 1.5}, "seed"),
    ({"seed": "0"}, "seed"),
    ({"seed": 2 ** 40}, "seed"),
    ({"hidden": "4"}, "hidden"),
    ({"hidden": (4, 0)}, "hidden"),
    ({"hidden": 2.5}, "hidden"),
    ({"hidden": (200,)}, "max_params"),
    ({"max_params": 5}, "max_params"),
    ({"val_fraction": 0.9}, "val_fraction"),
    ({"val_fraction": 1.0}, "val_fraction"),
    ({"val_fraction": -0.1}, "val_fraction"),
    ({"val_fraction": float("nan")}, "val_fraction"),
    ({"complexity": ["m*n*k", "m*n"]}, "complexity"),
    ({"complexity": 5}, "complexity"),
    ({"optimizer": "sgd"}, "optimizer"),
    ({"loss": "xyz"}, "loss"),
    ({"activation": "relu6"}, "activation"),
    ({"coverage": 1.5}, "coverage"),
    ({"n_init": 0}, "n_init must be an integer >= 1"),
    ({"refit_iter": -1}, "refit_iter"),
    ({"lr": 0}, "lr"),
    ({"weight_decay": -1}, "weight_decay"),
    ({"max_epochs": -1}, "max_epochs"),
    ({"skip": "yes"}, "skip"),
    ({"steps": {"m": 1}}, "steps"),
    ({"parameters": "mnk"}, "parameters"),
]


@pytest.mark.parametrize("kw, text", BAD, ids=[f"{k}" for k, _ in BAD])
def test_bad_hyperparameters_raise_one_annpred_error_naming_them(kw, text):
    X, y = _frame()
    with pytest.raises(AnnpredError) as err:
        AugmentedNNRegressor(**{"complexity": "m*n*k", **QUICK, **kw}).fit(X, y)
    assert isinstance(err.value, ValueError) and isinstance(err.value, (ParameterError,
                                                                         DataError))
    assert text in str(err.value), str(err.value)


def test_bad_hyperparameters_are_refused_before_torch_is_imported():
    code = ("import sys, numpy as np, pandas as pd\n"
            "from annpred import AugmentedNNRegressor as R\n"
            "from annpred.errors import AnnpredError\n"
            "X = pd.DataFrame(np.arange(1, 121, dtype=float).reshape(40, 3), "
            "columns=['m', 'n', 'k']); y = np.linspace(1e-6, 1e-5, 40)\n"
            f"bad = {[kw for kw, _ in BAD if 'nan' not in repr(kw)]!r}\n"
            "for kw in bad:\n"
            "    try:\n"
            "        R(**{'complexity': 'm*n*k', **kw}).fit(X, y)\n"
            "    except AnnpredError:\n"
            "        pass\n"
            "    else:\n"
            "        raise SystemExit(f'accepted {kw}')\n"
            "try:\n"
            "    R(complexity='m*n*k').fit(X.assign(kernel='matmul'), y)\n"
            "except AnnpredError:\n"
            "    pass\n"
            "assert 'torch' not in sys.modules, 'torch was imported'\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]


def test_a_frame_with_text_columns_points_to_parameters():
    X, y = _frame()
    frame = X.assign(kernel="matmul", variant="numpy")
    with pytest.raises(DataError, match=r"kernel, variant.*parameters=\[") as err:
        AugmentedNNRegressor(complexity="m*n*k", **QUICK).fit(frame, y)
    assert "m, n, k" in str(err.value)  # the numeric columns, as a hint
    m = _fit(frame, y, parameters=["m", "n", "k"])  # the documented way
    assert np.allclose(m.predict(frame), m.predict(X))


def test_seed_none_draws_a_seed_that_is_recorded_and_repeats_the_fit():
    X, y = _frame()
    a = _fit(X, y, seed=None)
    assert isinstance(a.seed_, int) and 0 <= a.seed_ < 2 ** 32
    assert a.get_params()["seed"] is None  # the parameter itself is left alone
    assert a.to_dict()["train"]["seed"] == a.seed_
    assert _same(_fit(X, y, seed=a.seed_).to_dict(), a.to_dict())


def test_equivalent_spellings_give_the_same_model():
    """An int hidden is one layer; numpy integers work as ints (the checks change nothing)."""
    X, y = _frame()
    ref = _fit(X, y, hidden=(4,), seed=3)
    assert ref.hidden_ == (4,)
    for kw in ({"hidden": 4}, {"hidden": [4]}, {"hidden": np.int64(4), "seed": np.int64(3)}):
        m = _fit(X, y, **{"seed": 3, **kw})
        assert m.hidden_ == (4,) and _same(m.to_dict(), ref.to_dict()), kw
    json.dumps(_fit(X, y, hidden=4, seed=np.int64(3)).to_dict())  # plain ints in the file


def test_interval_row_rule():
    assert min_residuals(0.9) == 19 and min_residuals(0.95) == 39
    assert min_training_rows(0.9, 0.2) == 93 and min_training_rows(0.9, 0.0) is None
    for cov in (0.5, 0.8, 0.9, 0.95, 0.99):
        n = min_residuals(cov)
        assert conformal_interval(np.zeros(n), cov) is not None
        assert n == 1 or conformal_interval(np.zeros(n - 1), cov) is None


def test_fit_warns_once_when_the_validation_split_is_too_small_for_an_interval():
    X, y = _frame(120)
    with pytest.warns(NoIntervalWarning) as rec:
        small = AugmentedNNRegressor(complexity="m*n*k", **QUICK).fit(X[:92], y[:92])
    mine = [w for w in rec if issubclass(w.category, NoIntervalWarning)]
    assert len(mine) == 1
    assert "18 validation rows" in str(mine[0].message)
    assert "at least 19" in str(mine[0].message) and "93 training rows" in str(mine[0].message)
    assert small.n_val_ == 18 and small.interval_ is None
    assert np.isnan(small.predict_interval(X[:3])[1]).all()
    assert issubclass(NoIntervalWarning, FewRowsWarning)  # studies silence both
    with warnings.catch_warnings():
        warnings.simplefilter("error", NoIntervalWarning)
        big = AugmentedNNRegressor(complexity="m*n*k", **QUICK).fit(X[:93], y[:93])
        assert big.n_val_ == 19 and big.interval_ is not None
        assert np.isfinite(big.predict_interval(X[:3])[1]).all()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FewRowsWarning)
            _fit(X[:15], y[:15])  # no split at all: documented, no such warning
            _fit(X, y, val_fraction=0.0)


def test_predict_interval_docstring_states_the_rule():
    doc = AugmentedNNRegressor.predict_interval.__doc__
    assert "19" in doc and "93" in doc and "20" in doc


def test_an_array_after_a_dataframe_fit_is_taken_positionally():
    X, y = _frame()
    m = _fit(X, y)
    with pytest.warns(UserWarning, match="feature names"):  # scikit-learn's own
        pred = m.predict(X.to_numpy())
    assert np.array_equal(pred, m.predict(X))
    with pytest.warns(UserWarning, match="feature names"):
        assert m.in_range(X.to_numpy()).all()
    with pytest.raises(DataError, match=r"expecting 3 features.*m, n, k"):
        m.predict(X.to_numpy()[:, :2])
    # with parameters= the frame is cut first; the array holds those columns in that order
    cut = _fit(X.assign(kernel="matmul"), y, parameters=["k", "m", "n"])
    with pytest.warns(UserWarning, match="feature names"):
        assert np.array_equal(cut.predict(X[["k", "m", "n"]].to_numpy()), cut.predict(X))


def test_from_dict_restores_the_recorded_constructor_parameters():
    X, y = _frame(60)
    m = _fit(X, y, seed=5, loss="mse", coverage=0.5, refit_iter=3, hidden=(3,),
             activation="relu", skip=False)
    back = AugmentedNNRegressor.from_dict(json.loads(json.dumps(m.to_dict())))
    p = back.get_params()
    assert p["complexity"] == "m*n*k"
    assert (p["seed"], p["loss"], p["coverage"], p["refit_iter"]) == (5, "mse", 0.5, 3)
    assert (p["hidden"], p["activation"], p["skip"]) == ((3,), "relu", False)
    assert back.loss_ == "mse" and back.seed_ == 5
    assert np.array_equal(back.predict(X), m.predict(X))
    d, d2 = m.to_dict(), back.to_dict()
    assert d2["train"]["loss"] == d["train"]["loss"]
    assert d2["train"]["refit_iter"] == d["train"]["refit_iter"]
    multi = _fit(X, y, complexity={"a": "m*n*k", "b": "m*n"}, select_complexity=False)
    assert AugmentedNNRegressor.from_dict(multi.to_dict()).get_params()["complexity"] == \
        {"a": "m*n*k", "b": "m*n"}


def test_public_methods_have_docstrings():
    for name in ("fit", "predict", "predict_interval", "to_dict", "from_dict", "in_range"):
        doc = getattr(AugmentedNNRegressor, name).__doc__
        assert doc and len(doc.strip()) > 40, name
    assert "save_model" in AugmentedNNRegressor.to_dict.__doc__


def test_base_complexity_auto_is_refused_naming_it():
    """complexity='auto' with base_complexity='auto' raised a bare TypeError naming
    `complexity`; it is a ParameterError naming base_complexity, before any fit."""
    X = np.random.default_rng(0).uniform(1, 10, (30, 2))
    est = AugmentedNNRegressor(complexity="auto", base_complexity="auto",
                               feature_names=["a", "b"])
    with pytest.raises(ParameterError, match="base_complexity cannot be 'auto'"):
        est.fit(X, X[:, 0] * X[:, 1])
