"""Predictions a runtime can rely on: intervals, provenance, one source per hardware id,
'unsure' decisions, batch predictions (issue 14)."""
from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pandas as pd
import pytest

from annpred import AugmentedNNRegressor
from annpred.errors import ParameterError
from annpred.model.interval import conformal_interval
from annpred.errors import ModelFormatError
from annpred.model.schema import load_model, save_model, validate
from annpred.runtime import caches
from annpred.runtime.predictor import load_models
from annpred.select import choose, set_unsure
from annpred.spec import hardware as hw
from conftest import HERE, run_cli
from synthetic_models import make_toy_models

T1 = hw.cpu_id(1)


@pytest.fixture
def toy(tmp_path, monkeypatch):
    monkeypatch.setenv("ANNPRED_KERNELS", str(HERE / "toy_kernel.py"))
    import annpred.spec.catalog as catalog
    catalog._LOADED = False
    root = tmp_path / "models"
    make_toy_models(root, {T1: 1}, n=160)  # 32 validation rows: a 90% interval exists
    caches.clear()
    yield root
    caches.clear()
    set_unsure(overlap=0.5, action="choose")


def test_conformal_interval_covers_at_the_nominal_rate():
    rng = np.random.default_rng(0)
    cover = []
    for _ in range(200):
        r = rng.standard_normal(50)
        iv = conformal_interval(r, 0.9)
        new = rng.standard_normal(200)
        cover.append(np.mean((new >= iv["lo"]) & (new <= iv["hi"])))
    assert 0.88 <= np.mean(cover) <= 0.95  # >= nominal on average (finite-sample bound)
    assert conformal_interval(r[:5], 0.9) is None  # too few points for 90%


def test_estimator_stores_and_uses_the_interval():
    rng = np.random.default_rng(1)
    X = rng.integers(8, 512, (200, 2)).astype(float)
    y = 1e-8 * X[:, 0] * X[:, 1] * np.exp(0.05 * rng.standard_normal(200))
    m = AugmentedNNRegressor(complexity="a*b", feature_names=["a", "b"], max_epochs=80).fit(X, y)
    s, lo, hi = m.predict_interval(X[:10])
    assert np.all(lo < s) and np.all(s < hi)
    d = m.to_dict()
    assert d["interval"]["nominal"] == 0.9 and d["interval"]["lo"] < 0 < d["interval"]["hi"]
    back = AugmentedNNRegressor.from_dict(json.loads(json.dumps(d)))
    np.testing.assert_allclose(back.predict_interval(X[:10])[2], hi)
    bad = dict(d, interval={"nominal": 0.9, "lo": 1.0, "hi": -1.0})
    with pytest.raises(ModelFormatError, match="interval"):
        validate(bad)


def test_predictions_carry_interval_and_provenance(toy):
    p = load_models(str(toy)).predict("toy", "cumsum", {"n": 1000}, T1)
    lo, hi = p.interval
    assert lo < p.seconds < hi
    prov = p.provenance
    assert prov["source"] == "custom" and prov["model_file"].endswith("cumsum.json")
    assert prov["hardware"] == T1 and prov["n_samples"] > 0
    d = p.to_dict()
    assert d["interval"] == [lo, hi] and d["provenance"]["source"] == "custom"


def test_one_source_per_hardware_id(toy, tmp_path, monkeypatch):
    """A user calibration of one variant hides the shipped models of the same kernel and
    hardware: a choice never mixes a calibration with another machine's models silently."""
    shipped = tmp_path / "shipped"
    shutil.copytree(toy, shipped)
    user = tmp_path / "user"
    (user / T1 / "toy").mkdir(parents=True)
    shutil.copy(toy / T1 / "toy" / "cumsum.json", user / T1 / "toy" / "cumsum.json")
    monkeypatch.setenv("ANNPRED_MODELS", str(user))
    monkeypatch.setenv("ANNPRED_TRAINED", str(shipped))
    caches.clear()
    pred = load_models()
    assert pred.combinations("toy") == [("toy", "cumsum", T1)]
    c = choose("toy", {"n": 500})
    assert c.sources == {T1: "user"}
    assert all(v["source"] == "user" for v in c.provenance.values() if v)
    assert c.to_dict()["sources"] == {T1: "user"}


def test_unsure_when_intervals_overlap_and_the_policy_can_fall_back(toy):
    # two copies of one model: identical predictions, intervals overlap completely
    m = load_model(toy / T1 / "toy" / "cumsum.json")
    save_model(dict(m, variant="accumulate"), toy / T1 / "toy" / "accumulate.json")
    caches.clear()
    c = choose("toy", {"n": 500}, models=str(toy),
               candidates=[f"cumsum@{T1}", f"accumulate@{T1}"])
    assert c.unsure and not c.fallback and "unsure" in c.reason
    set_unsure(action="fallback")
    f = choose("toy", {"n": 500}, models=str(toy), default=f"cumsum@{T1}",
               candidates=[f"cumsum@{T1}", f"accumulate@{T1}"])
    assert f.unsure and f.fallback and f.reason.startswith("unsure")
    with pytest.raises(ParameterError):
        set_unsure(action="maybe")


def test_a_clear_winner_is_not_unsure(toy):
    c = choose("toy", {"n": 100000}, models=str(toy), policy="extrapolate",
               candidates=[f"cumsum@{T1}", f"sleepy@{T1}"])
    lo_hi = c.intervals
    a, b = (lo_hi[x] for x in c.predicted)
    overlap = min(a[1], b[1]) > max(a[0], b[0])
    assert c.unsure == (overlap and c.unsure)  # consistent with its own intervals
    if not overlap:
        assert not c.unsure


def test_batch_predictions_match_single_ones(toy, tmp_path):
    pred = load_models(str(toy))
    n = np.array([10, 100, 1000, 5000])
    out = pred.predict_many("toy", "cumsum", pd.DataFrame({"n": n}), T1)
    single = [pred.predict("toy", "cumsum", {"n": int(v)}, T1).seconds for v in n]
    np.testing.assert_allclose(out["seconds"], single, rtol=1e-12)
    assert out["in_range"].dtype == bool and np.all(out["low"] < out["seconds"])
    with pytest.raises(ParameterError, match="row 1"):
        pred.predict_many("toy", "cumsum", {"n": [5, -1]}, T1)


def test_batch_predict_cli(toy, tmp_path):
    pts = tmp_path / "points.csv"
    pd.DataFrame({"n": [10, 200, 3000], "note": ["a", "b", "c"]}).to_csv(pts, index=False)
    out = tmp_path / "preds.csv"
    env = {**os.environ, "ANNPRED_KERNELS": str(HERE / "toy_kernel.py")}
    r = run_cli(["predict", "toy", "--variant", "cumsum", "--models", toy, "--hardware", T1,
                 "--input", pts, "--output", out], env=env)
    assert r.returncode == 0, r.stderr
    df = pd.read_csv(out)
    assert list(df["note"]) == ["a", "b", "c"] and (df["predicted_seconds"] > 0).all()
    assert {"predicted_low", "predicted_high", "in_range", "hardware"} <= set(df.columns)
    bad = tmp_path / "bad.csv"
    bad.write_text("n\n5\n0\n")
    r = run_cli(["predict", "toy", "--variant", "cumsum", "--models", toy, "--hardware", T1,
                 "--input", bad, "--output", tmp_path / "x.csv"], env=env)
    assert r.returncode == 2 and "row 3: parameter n" in r.stderr and not (tmp_path / "x.csv").exists()
