"""Drift correction with a reference kernel recorded beside each point (``ref_s``), and
per-variant parameter lists (a dense product's model ignores the densities)."""
import csv
import json

import numpy as np
import pandas as pd
import pytest

from annpred.data.profiles import REF_WINDOW, correct_drift, load_profiles
from annpred.data.rows import columns_for
from annpred.errors import DataError, ParameterError
from annpred.spec.catalog import get_kernel
from annpred.spec.kernel import Kernel, Param, Variant
from conftest import run_cli


def _rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_profile_reference_records_ref_s_and_train_corrects(toy_env, tmp_path):
    out = tmp_path / "toy.csv"
    r = run_cli(["profile", "toy", "--variant", "cumsum", "--samples", "12", "--reference",
                 "--min-time-ms", "2", "--out", out, "--quiet"], env=toy_env)
    assert r.returncode == 0, r.stderr
    rows = _rows(out)
    assert len(rows) == 12 and "ref_s" in rows[0]
    refs = np.array([float(d["ref_s"]) for d in rows])
    assert (refs > 0).all()
    raw = load_profiles([out])
    fixed = load_profiles([out], drift_correct=True)
    smooth = pd.Series(refs).rolling(REF_WINDOW, center=True, min_periods=1).median()
    expect = raw["runtime_s"].to_numpy() * np.median(refs) / smooth.to_numpy()
    np.testing.assert_allclose(fixed["runtime_s"].to_numpy(), expect, rtol=1e-12)
    np.testing.assert_allclose(fixed["_runtime_raw_s"], raw["runtime_s"])
    assert "ref_s" not in fixed.columns.drop("ref_s").tolist()  # not a feature
    models = tmp_path / "m"
    r = run_cli(["train", out, "--out", models, "--drift-correct", "--quiet"], env=toy_env)
    assert r.returncode == 0, r.stderr
    d = json.loads(next(models.rglob("cumsum.json")).read_text())
    assert d["parameters"] == ["n"]


def test_drift_correct_scales_a_slow_stretch_back_and_ignores_one_jittery_reference():
    n = 4 * REF_WINDOW
    slow = np.arange(n) >= n // 2  # the second half measured while the machine ran 20% slow
    ref = np.where(slow, 1.2, 1.0)
    ref[5] = 3.0  # one jittery reference timing: the running median ignores it
    true = np.linspace(1.0, 2.0, n)
    df = pd.DataFrame({"kernel": "k", "variant": "v", "hardware": "h", "n": np.arange(n),
                       "runtime_s": true * np.where(slow, 1.2, 1.0), "ref_s": ref,
                       "_source": "f.csv", "_row": np.arange(2, n + 2)})
    out = correct_drift(df)
    # away from the switch (within half a window of it the median mixes both stretches),
    # every runtime is back on one scale: the median reference's
    far = np.abs(np.arange(n) - n // 2) > REF_WINDOW // 2
    scale = np.median(ref)
    np.testing.assert_allclose(out["runtime_s"][far], (true * scale)[far], rtol=1e-12)


def test_drift_correct_names_the_row_without_a_reference(tmp_path):
    df = pd.DataFrame({"kernel": "k", "variant": "v", "hardware": "h", "n": [1, 2],
                       "runtime_s": [1.0, 2.0], "ref_s": [1.0, np.nan],
                       "_source": "f.csv", "_row": [2, 3]})
    with pytest.raises(DataError, match=r"f.csv: row 3, column 'ref_s'"):
        correct_drift(df)
    with pytest.raises(DataError, match="no ref_s column"):
        correct_drift(df.drop(columns="ref_s"))


def test_cli_drift_correct_without_reference_exits_2(toy_env, tmp_path):
    out = tmp_path / "toy.csv"
    r = run_cli(["profile", "toy", "--variant", "cumsum", "--samples", "10",
                 "--min-time-ms", "2", "--out", out, "--quiet"], env=toy_env)
    assert r.returncode == 0, r.stderr
    r = run_cli(["train", out, "--out", tmp_path / "m", "--drift-correct"], env=toy_env)
    assert r.returncode == 2
    assert "ref_s" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "m").exists() or not list((tmp_path / "m").rglob("*.json"))


def test_reference_into_an_older_file_is_refused_before_measuring(toy_env, tmp_path):
    out = tmp_path / "old.csv"
    header = columns_for(["n"], optional=False) + ["load_avg", "machine"]
    out.write_text(",".join(header) + "\n")
    r = run_cli(["profile", "toy", "--variant", "cumsum", "--samples", "5", "--reference",
                 "--out", out, "--quiet"], env=toy_env)
    assert r.returncode == 2
    assert "ref_s" in r.stderr and "Traceback" not in r.stderr
    assert out.read_text().count("\n") == 1  # nothing measured


def test_dense_variants_take_no_density():
    k = get_kernel("matmul")
    assert k.model_params("numpy") == ["m", "n", "k"]
    assert k.model_params("sparse") == ["m", "n", "k", "da", "db"]
    assert get_kernel("matvec").model_params("torch") == ["m", "n"]


def test_variant_params_must_be_kernel_params():
    base = dict(name="bad", params=[Param("n", "int", 1, 10, "log")], complexity={"w": "n"},
                make_inputs=lambda p, r: {}, reference=lambda i, p: 0)
    with pytest.raises(ValueError, match="not a non-empty subset"):
        Kernel(**base, variants=[Variant("v", run=lambda s: 0, params=("n", "q"))])
    with pytest.raises(ValueError, match="outside its params"):
        Kernel(**{**base, "params": [Param("n", "int", 1, 10, "log"),
                                     Param("m", "int", 1, 10, "log")]},
               variants=[Variant("v", run=lambda s: 0, params=("n",),
                                 complexity={"w": "n*m"})])


def test_dense_matmul_model_ignores_densities_and_predicts_any_point(tmp_path):
    from annpred.model.trainer import train_frame
    from annpred.runtime.predictor import load_models

    rng = np.random.default_rng(0)
    n = 60
    m_, n_, k_ = (rng.integers(8, 512, n) for _ in range(3))
    da, db = rng.uniform(0.01, 1, n), rng.uniform(0.01, 1, n)
    rows = []
    for variant in ("numpy", "sparse"):
        t = m_ * n_ * k_ * (1e-10 if variant == "numpy" else 1e-9 * da) + 1e-6
        rows.append(pd.DataFrame({"kernel": "matmul", "variant": variant,
                                  "hardware": "cpu-test-t1", "m": m_, "n": n_, "k": k_,
                                  "da": da, "db": db, "runtime_s": t, "_source": "s.csv",
                                  "_row": np.arange(2, n + 2)}))
    df = pd.concat(rows, ignore_index=True)
    reps = train_frame(df, tmp_path, seed=0)
    by = {r.variant: r for r in reps}
    dense = json.loads(by["numpy"].path.read_text())
    sparse = json.loads(by["sparse"].path.read_text())
    assert dense["parameters"] == ["m", "n", "k"]
    assert "da" not in json.dumps(dense["complexity"])
    assert sparse["parameters"] == ["m", "n", "k", "da", "db"]
    pred = load_models(tmp_path, reload=True)
    p = pred.predict("matmul", "numpy", {"m": 100, "n": 100, "k": 100, "da": 0.5, "db": 1.0},
                     hardware="cpu-test-t1")
    q = pred.predict("matmul", "numpy", {"m": 100, "n": 100, "k": 100, "da": 0.01, "db": 0.2},
                     hardware="cpu-test-t1")
    assert p.seconds == q.seconds > 0
    with pytest.raises(ParameterError):
        from annpred.runtime.choose import choose

        choose("matmul", {"m": 100, "n": 100, "k": 100, "da": 2.0, "db": 1.0},
               models=tmp_path, candidates=["numpy@cpu-test-t1"], memo=False)


def test_huge_integer_parameters_get_one_clear_error_or_a_flagged_extrapolation():
    """An integer beyond the float range is refused by name; a large but representable one
    is decided (flagged outside the training range), never a traceback."""
    from annpred.model.layout import shipped_root
    from annpred.runtime.choose import choose

    p = {"n": 200, "k": 500, "da": 1.0, "db": 1.0}
    with pytest.raises(ParameterError, match=r"parameter m: a \d+-bit integer is too large"):
        choose("matmul", {"m": 10 ** 5000, **p}, models=str(shipped_root()), memo=False,
               candidates=["numpy@cpu-amd-epyc-t1"])
    c = choose("matmul", {"m": 10 ** 30, **p}, models=str(shipped_root()), memo=False,
               candidates=["numpy@cpu-amd-epyc-t1"], trust_machine=True)
    assert c.fallback and "outside" in c.reason
