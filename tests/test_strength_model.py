"""Mutation-found gaps in the numpy network (annpred.model.network) and the estimator's
parameter count: each test pins a result computed by hand here, not by the library."""
import warnings

import numpy as np
import pandas as pd
import pytest

from annpred.model import network
from annpred.model.estimator import AugmentedNNRegressor


def _model(activation="tanh", target="log", skip=True):
    """Two inputs (m logged, k plain), one hidden layer of two units, known weights."""
    return network.compile_model({
        "input_transform": ["log", "identity"],
        "scaler": {"mean": [1.0, 2.0], "std": [2.0, 4.0]},
        "target_scaler": {"mean": -3.0, "std": 0.5},
        "layers": [{"weight": [[1.5, -2.0], [-0.5, 1.0]], "bias": [0.25, -0.75]},
                   {"weight": [[2.0, -1.0]], "bias": [0.1]}],
        "skip": {"weight": [[0.3, -0.2]]} if skip else None,
        "activation": activation, "target_transform": target})


def _by_hand(X, act, target="log", skip=True):
    out = []
    for m, k in X:
        z = np.array([(np.log(m) - 1.0) / 2.0, (k - 2.0) / 4.0])
        h = act(np.array([1.5 * z[0] - 2.0 * z[1] + 0.25, -0.5 * z[0] + 1.0 * z[1] - 0.75]))
        y = 2.0 * h[0] - 1.0 * h[1] + 0.1 + ((0.3 * z[0] - 0.2 * z[1]) if skip else 0.0)
        y = y * 0.5 - 3.0
        out.append(np.exp(y) if target == "log" else y)
    return np.array(out)


X = np.array([[0.2, 7.0], [8.0, -3.0], [50.0, 2.0], [1.0, 30.0]])
HAND_ACT = {"tanh": np.tanh, "relu": lambda a: np.maximum(a, 0.0), "identity": lambda a: a}


@pytest.mark.parametrize("activation", sorted(HAND_ACT))
@pytest.mark.parametrize("skip", [True, False])
def test_forward_pass_matches_the_formula_by_hand(activation, skip):
    got = network.predict_seconds(X, _model(activation, skip=skip))
    want = _by_hand(X, HAND_ACT[activation], skip=skip)
    np.testing.assert_allclose(got, want, rtol=1e-12)
    # the rows give different hidden signs, so relu and identity are told apart
    assert not np.allclose(_by_hand(X, HAND_ACT["relu"]), _by_hand(X, HAND_ACT["identity"]))


def test_identity_target_is_the_log_targets_exponent_not_exponentiated():
    log_t = network.predict_seconds(X, _model(target="log"))
    ident = network.predict_seconds(X, _model(target="identity"))
    np.testing.assert_allclose(ident, _by_hand(X, np.tanh, target="identity"), rtol=1e-12)
    np.testing.assert_allclose(np.exp(ident), log_t, rtol=1e-12)
    assert np.any(ident < 0)  # a standardised log value: negative, never a runtime


@pytest.mark.parametrize("n_inputs,hidden,skip,want", [
    (3, (), True, 4),           # linear: weights + bias, no skip path without hidden units
    (3, (), False, 4),
    (3, (4,), True, 3 * 4 + 4 + 4 + 1 + 3),
    (3, (4,), False, 3 * 4 + 4 + 4 + 1),
    (2, (3, 2), True, (2 * 3 + 3) + (3 * 2 + 2) + (2 + 1) + 2),
])
def test_count_params_by_hand(n_inputs, hidden, skip, want):
    assert network.count_params(n_inputs, hidden, skip) == want


def test_a_network_without_hidden_layers_fits_and_counts_its_parameters():
    """hidden=() is a linear model on the standardised inputs: (inputs + 1) parameters."""
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"m": rng.integers(8, 512, 40).astype(float),
                       "n": rng.integers(8, 512, 40).astype(float)})
    y = 1e-9 * (df.m * df.n).to_numpy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est = AugmentedNNRegressor(complexity="m*n", hidden=(), seed=0, max_epochs=50).fit(df, y)
    assert est.hidden_ == () and est.n_params_ == 3 + 1  # m, n, complexity and the bias
    np.testing.assert_allclose(est.predict(df[:5]), y[:5], rtol=0.05)
