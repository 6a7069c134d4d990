"""AugmentedNNRegressor follows scikit-learn's estimator conventions."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone, is_regressor
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import cross_val_score
from sklearn.utils.estimator_checks import check_estimator

from annpred import AugmentedNNRegressor

# Checks that cannot apply here, and why (none at present: every applicable check passes).
SKIPPED: dict[str, str] = {
    "check_array_api_input": "needs SCIPY_ARRAY_API set and an array-API library; annpred "
                             "computes in numpy/torch",
}


def _data(n=120, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.integers(8, 256, size=(n, 3)).astype(float)
    y = 1e-9 * X[:, 0] * X[:, 1] * X[:, 2] * (1 + 0.02 * rng.standard_normal(n)) + 1e-6
    return X, y


def test_passes_the_scikit_learn_estimator_checks():
    results = check_estimator(AugmentedNNRegressor(max_epochs=30, n_init=1), on_fail=None)
    failed = [(r["check_name"], str(r["exception"])[:200]) for r in results
              if r["status"] == "failed" and r["check_name"] not in SKIPPED]
    assert len(results) > 30
    assert not failed, failed


def test_base_class_behaviour():
    est = AugmentedNNRegressor(complexity="m*n*k", feature_names=["m", "n", "k"], seed=3)
    assert is_regressor(est)
    assert est.__sklearn_tags__().target_tags.positive_only
    c = clone(est)
    assert c.get_params() == est.get_params() and c is not est
    with pytest.raises(NotFittedError):
        est.predict(np.ones((2, 3)))


def test_numpy_input_with_feature_names_uses_the_complexity():
    X, y = _data()
    est = AugmentedNNRegressor(complexity="m*n*k", feature_names=["m", "n", "k"],
                               max_epochs=100).fit(X[:90], y[:90])
    assert est.features_ == ["m", "n", "k", "complexity"]
    assert est.n_features_in_ == 3
    r2 = est.score(X[90:], y[90:])
    assert r2 > 0.9
    with pytest.warns(UserWarning, match="feature names"):  # sklearn's own warning
        pred_df = est.predict(pd.DataFrame(X[90:], columns=["m", "n", "k"]))
    assert np.allclose(pred_df, est.predict(X[90:]))


def test_cross_val_score_works():
    X, y = _data(80)
    scores = cross_val_score(AugmentedNNRegressor(complexity="m*n*k",
                                                  feature_names=["m", "n", "k"], max_epochs=40,
                                                  n_init=1), X, y, cv=3)
    assert scores.shape == (3,) and np.all(np.isfinite(scores))


def test_wrong_names_are_refused():
    X, y = _data(40)
    with pytest.raises(ValueError, match="names"):
        AugmentedNNRegressor(feature_names=["m", "n"]).fit(X, y)


def test_a_feature_constant_in_training_is_ignored_not_broken():
    """A launch-structure flag that was 1 on every training row (a small tuning budget) got
    a log input transform and random weights: a 0 elsewhere predicted -inf or noise."""
    X, y = _data(100)
    X[:, 2] = 1.0  # k: the same on every training row
    est = AugmentedNNRegressor(feature_names=["m", "n", "k"], complexity="m*n",
                               max_epochs=40, n_init=1).fit(X, y)
    assert est.input_transform_[2] == "identity"
    assert all(row[2] == 0.0 for row in est.layers_[0]["weight"])
    probe = X[:5].copy()
    base = est.predict(probe)
    for k in (0.0, 7.0):
        probe[:, 2] = k
        assert np.allclose(est.predict(probe), base)
