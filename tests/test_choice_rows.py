"""Training cost on many rows: fitted starts are reused within one fit (the result is the
same bit for bit), and with more training rows than ``choice_rows`` the choices (features,
loss, start) are made on a seeded subset and the chosen network is fitted further on every
training row."""
import json

import numpy as np
import pytest

from annpred.errors import ParameterError
from annpred.model import candidate, network
from annpred.model import fit as _train
from annpred.model.estimator import AugmentedNNRegressor

FIT_KW = dict(hidden=(5,), activation="tanh", skip=True, seed=3, max_epochs=80, patience=30,
              lr=0.02, weight_decay=0.0, max_params=network.MAX_PARAMS, optimizer="lbfgs")


def _data(n=150, seed=0):
    rng = np.random.default_rng(seed)
    Z = rng.standard_normal((n, 3))
    t = np.tanh(2 * Z[:, 0]) * Z[:, 1] + 0.3 * np.sin(3 * Z[:, 2]) \
        + 0.05 * rng.standard_normal(n)
    return Z[:110], t[:110], Z[110:], t[110:]


def _weights(model):
    layers, skip = model.export()
    return json.dumps([layers, skip])


def _count_lbfgs(monkeypatch):
    calls = []
    real = _train._fit_lbfgs

    def counted(model, zt, *a, **k):
        calls.append(len(zt))
        return real(model, zt, *a, **k)

    monkeypatch.setattr(_train, "_fit_lbfgs", counted)
    return calls


@pytest.mark.parametrize("loss", ["huber", "mse", "mape"])
def test_a_start_taken_from_the_dict_equals_a_start_fitted_again(monkeypatch, loss):
    """Fitting with ``starts`` (empty, then filled) gives the very weights and validation
    loss of a fit without it; the second fit runs no L-BFGS at all, and a ``mape`` fit
    continues from the ``mse`` starts already there (one L-BFGS run per start, not two)."""
    Ztr, ttr, Zv, tv = _data()
    kw = dict(FIT_KW, loss=loss, target_scale=0.7, huber_delta=0.1)
    plain = _train.fit_network(Ztr, ttr, Zv, tv, n_init=3, **kw)
    starts = {}
    if loss == "mape":
        _train.fit_network(Ztr, ttr, Zv, tv, n_init=3, starts=starts, **{**kw, "loss": "mse"})
    calls = _count_lbfgs(monkeypatch)
    first = _train.fit_network(Ztr, ttr, Zv, tv, n_init=3, starts=starts, **kw)
    assert len(calls) == 3  # mape: the mse stage of every start came from the dict
    again = _train.fit_network(Ztr, ttr, Zv, tv, n_init=3, starts=starts, **kw)
    assert len(calls) == 3  # nothing fitted the second time
    for other in (first, again):
        assert _weights(other[0]) == _weights(plain[0])
        assert other[1:] == plain[1:]
    # more starts than the dict holds: the missing one is fitted, the rest reused
    _train.fit_network(Ztr, ttr, Zv, tv, n_init=4, starts=starts, **kw)
    assert len(calls) == 3 + (2 if loss == "mape" else 1)


def _synthetic(n, seed=0):
    import pandas as pd

    rng = np.random.default_rng(seed)
    df = pd.DataFrame({"m": rng.integers(8, 400, n), "n": rng.integers(8, 400, n),
                       "k": rng.integers(8, 400, n)})
    y = 1e-9 * df.m * df.n * df.k * (1 + 0.3 * (df.k % 64 == 0)) \
        * np.exp(0.03 * rng.standard_normal(n)) + 2e-6
    return df, y.to_numpy()


def test_the_start_cache_does_not_change_an_estimator_fit(monkeypatch):
    """``complexity="auto"`` with ``loss="auto"`` fits start 0 of some sets twice and every
    mse start twice without the cache: the model is the same with and without it."""
    df, y = _synthetic(160)
    kw = dict(complexity="auto", base_complexity={"flops": "m*n*k"}, loss="auto", seed=2,
              max_epochs=60)
    cached = AugmentedNNRegressor(**kw).fit(df, y).to_dict()
    real = candidate.fit_candidate
    monkeypatch.setattr(candidate, "fit_candidate",
                        lambda *a, **k: real(*a, **{**k, "starts": None}))
    fresh = AugmentedNNRegressor(**kw).fit(df, y).to_dict()
    for d in (cached, fresh):
        d["train"].pop("train_time_s")
        d.pop("versions")
    assert cached == fresh


def test_choices_on_a_subset_then_the_choice_fitted_on_every_row(monkeypatch):
    df, y = _synthetic(300)
    rows = []
    real_fit, real_resume = _train.fit_network, _train.resume_network
    monkeypatch.setattr(_train, "fit_network",
                        lambda Z, *a, **k: rows.append(("fit", len(Z))) or real_fit(Z, *a, **k))
    monkeypatch.setattr(_train, "resume_network",
                        lambda L, S, act, Z, *a, **k: rows.append(("resume", len(Z)))
                        or real_resume(L, S, act, Z, *a, **k))
    kw = dict(complexity={"flops": "m*n*k", "words": "m*k+k*n+m*n"}, loss="auto", seed=4,
              max_epochs=60)
    est = AugmentedNNRegressor(choice_rows=60, **kw).fit(df, y)
    n_tr = 300 - est.n_val_
    # 2 feature sets x 3 losses, each on the 60 chosen rows; then the choice on all 240
    assert rows == [("fit", 60)] * 6 + [("resume", n_tr)], rows
    assert est.choice_rows_ == 60 and est.n_samples_ == 300
    d = est.to_dict()
    assert d["train"]["choice_rows"] == 60
    assert AugmentedNNRegressor.from_dict(json.loads(json.dumps(d))).choice_rows_ == 60
    mape = float(np.mean(np.abs(est.predict(df) / y - 1)) * 100)
    assert mape < 15, mape  # the continued network predicts (the data's own spread is ~3%)
    # the subset is drawn from the seed: the same fit again is the same model
    again = AugmentedNNRegressor(choice_rows=60, **kw).fit(df, y)
    np.testing.assert_array_equal(again.predict(df), est.predict(df))

    # every row chooses: below the bound, or with choice_rows=None
    rows.clear()
    whole = AugmentedNNRegressor(choice_rows=None, **kw).fit(df, y)
    assert rows == [("fit", n_tr)] * 6 and whole.choice_rows_ is None
    assert "choice_rows" not in whole.to_dict()["train"]
    below = AugmentedNNRegressor(choice_rows=n_tr, **kw).fit(df, y)
    np.testing.assert_array_equal(below.predict(df), whole.predict(df))
    # one loss and one expression: nothing to choose, so no subset
    rows.clear()
    one = AugmentedNNRegressor(choice_rows=60, complexity="m*n*k", seed=4,
                               max_epochs=60).fit(df, y)
    assert rows == [("fit", n_tr)] and one.choice_rows_ is None


@pytest.mark.parametrize("bad", [0, 7, 2.5, True, "2000"])
def test_choice_rows_must_be_a_row_count_or_none(bad):
    df, y = _synthetic(40)
    with pytest.raises(ParameterError, match="choice_rows must be an integer >= 8"):
        AugmentedNNRegressor(choice_rows=bad).fit(df, y)


def test_train_cli_choice_rows(tmp_path, capsys):
    """``--choice-rows N`` chooses on N training rows and says so (human line and JSON);
    ``all`` chooses on every row; a bad value exits 2 before anything is read."""
    import pandas as pd

    from annpred.cli.app import main

    rng = np.random.default_rng(1)
    m = rng.integers(2, 500, 150)
    p = tmp_path / "ext.csv"
    pd.DataFrame({"m": m, "time": 1e-6 * m * (1 + 0.05 * rng.standard_normal(150))}).to_csv(
        p, index=False)
    base = ["train", str(p), "--target", "time", "--features", "m", "--kernel", "k",
            "--variant", "v", "--hardware", "h", "--complexity", "auto", "--quiet"]
    assert main(base + ["--out", str(tmp_path / "a"), "--choice-rows", "40"]) == 0
    out = capsys.readouterr().out
    assert "n=150 (chosen on 40)" in out, out
    d = json.loads((tmp_path / "a" / "h" / "k" / "v.json").read_text())
    assert d["train"]["choice_rows"] == 40
    assert main(base + ["--out", str(tmp_path / "b"), "--choice-rows", "all", "--json"]) == 0
    (rep,) = json.loads(capsys.readouterr().out)["models"]
    assert rep["n_choice"] is None and "chosen on" not in json.dumps(rep)
    for bad in ("3", "many", "2.5"):
        assert main(base + ["--out", str(tmp_path / "c"), "--choice-rows", bad]) == 2
        err = capsys.readouterr().err
        assert "--choice-rows: expected a number of rows (at least 8) or all" in err, err
        assert not (tmp_path / "c").exists()
