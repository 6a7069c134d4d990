"""Performance-representative sampling: step detection, budget, step-aware features."""
import csv
import json
import math

import numpy as np
import pandas as pd
import pytest

from annpred.spec import expr
from annpred.errors import ModelFormatError, ParameterError
from annpred.spec.kernel import Kernel, Param, Variant
from annpred.measure.pr import Measurement, PRPlanner
from annpred.model.steps import (Sweep, detect_period, detect_steps, point_noise,
                                 step_complexity, step_expr)
from annpred.measure.sampling import sample
from annpred.model.schema import load_model, save_model, validate

PARAMS = ["m", "n", "k"]
COMP = {"flops": "m*n*k", "memory": "m*k + k*n + m*n"}


def _sweep(fn, xs, noise, rng, fixed=None):
    xs = np.asarray(xs, dtype=float)
    t = fn(xs) * (1 + noise * rng.standard_normal(len(xs)))
    return Sweep("n", dict(fixed or {"m": 64, "k": 64}), xs, t,
                 point_noise(t, np.full(len(xs), noise)))


def _xs(rng, lo, hi, k):
    return np.sort(rng.choice(np.arange(lo, hi + 1), k, replace=False))


@pytest.mark.parametrize("period,lo,hi", [(8, 1, 128), (32, 1, 128), (16, 1, 256),
                                          (256, 16, 1536)])
def test_detects_period_of_noisy_steps(period, lo, hi):
    rng = np.random.default_rng(period)
    found = 0
    for trial in range(5):
        xs = _xs(rng, lo, hi, 14)
        sw = _sweep(lambda x: 2e-6 + 1e-10 * np.ceil(x / period) * period * 64 * 64, xs,
                    0.015, rng)
        fit = detect_period([sw], COMP, PARAMS)
        assert fit.period in (None, period), fit  # never a wrong period
        found += fit.period == period
    assert found >= 4


@pytest.mark.parametrize("shape", ["linear", "nlogn", "quadratic", "overhead"])
def test_no_false_steps_on_smooth_noisy_data(shape):
    fns = {"linear": lambda x: 1e-9 * x * 4096,
           "nlogn": lambda x: 1e-8 * x * np.log2(x + 1),
           "quadratic": lambda x: 1e-9 * x ** 2 + 1e-7 * x,
           "overhead": lambda x: 5e-6 + 1e-10 * x * 4096}
    rng = np.random.default_rng(7)
    for trial in range(10):
        xs = _xs(rng, 1, 1024, 16)
        # noise up to 3x what the repeats report (load spikes): still no step
        sw = _sweep(fns[shape], xs, 0.03, rng)
        sw.sigma = sw.sigma / 3
        fit = detect_period([sw], COMP, PARAMS)
        assert fit.period is None, fit


def test_point_noise_from_repeats():
    sig = point_noise([1.0, 1.0, 1.0], [0.02, float("nan"), 0.0001], [0.9, 0.96, 0.999])
    assert sig.tolist() == pytest.approx([0.02, 0.04, 0.005])


def test_detect_steps_finds_sweeps_in_a_frame():
    rng = np.random.default_rng(3)
    rows = []
    for n in _xs(rng, 1, 128, 14):  # a sweep of n at m=k=64
        rows.append({"m": 64, "n": int(n), "k": 64})
    for _ in range(30):  # scattered points: not sweeps
        rows.append({p: int(rng.integers(1, 129)) for p in PARAMS})
    df = pd.DataFrame(rows)
    t = 1e-6 + 1e-10 * df.m * np.ceil(df.n / 32) * 32 * df.k
    df["runtime_s"] = t * (1 + 0.01 * rng.standard_normal(len(df)))
    df["runtime_cv"] = 0.01
    steps, fits = detect_steps(df, PARAMS, COMP)
    assert steps == {"n": 32}
    assert [f.param for f in fits] == ["n"]  # m and k have no sweeps
    assert detect_steps(df.iloc[14:], PARAMS, COMP) == ({}, [])


def test_sweeps_fitted_together_give_each_sweep_own_fit():
    """Detection evaluates the basis of all sweeps at once (one call per complexity
    function); each sweep's misfit is the one it gets when fitted alone, including sweeps
    where a column is unusable (here ``k - 70`` is negative at the second sweep's k)."""
    from annpred.model.steps import _Fit, _chi2, stepped

    rng = np.random.default_rng(11)
    comp = {**COMP, "shifted": "m*n*(k - 70)"}
    fns = [(names, expr.compile(t, names)) for t in comp.values()
           for names in [tuple(expr.free_symbols(t, PARAMS))]]
    sweeps = [_sweep(lambda x, m=m: 1e-6 + 1e-10 * m * np.ceil(x / 8) * 8 * k,
                     _xs(rng, 1, 128, 12), 0.01, rng, {"m": m, "k": k})
              for m, k in ((64, 80), (16, 32), (128, 100))]
    for period in (1, 4, 8):
        gs = [stepped(sw.x, period) for sw in sweeps]
        alone = [_Fit(sw, g, fns) for sw, g in zip(sweeps, gs)]
        assert _chi2(sweeps, gs, fns) == sum(f.chi2 for f in alone)
        assert [len(f.keep) for f in alone] == [5, 4, 5]  # "shifted" dropped where k < 70


def _kernel():
    return Kernel(name="synthetic_mm", params=[Param(p, "int", 1, 128, "uniform") for p in PARAMS],
                  complexity=dict(COMP), make_inputs=lambda p, rng: {},
                  reference=lambda i, p: np.zeros(1), variants=[Variant("v", run=lambda s: s)])


def _runtime(p):
    m = math.ceil(p["m"] / 4) * 4
    n = math.ceil(p["n"] / 32) * 32
    return 1e-6 + 1e-10 * m * n * p["k"]


@pytest.mark.parametrize("budget", [10, 30, 60, 100])
def test_planner_respects_budget_and_finds_steps(budget):
    k = _kernel()
    rng = np.random.default_rng(budget)
    calls = []

    def measure(point, role):
        calls.append((dict(point), role))
        t = _runtime(point) * (1 + 0.01 * rng.standard_normal())
        return Measurement(t, 0.01, 50, t * 0.99)

    res = PRPlanner(k, budget, seed=1, variant="v").run(measure)
    assert len(calls) <= budget
    keys = [tuple(c[0][p] for p in PARAMS) for c in calls]
    assert len(set(keys)) == len(keys)  # no point measured twice
    assert res.n_measured == len(calls)
    assert len(calls) >= budget - 2  # the budget is used
    for point, _ in calls:
        assert all(1 <= point[p] <= 128 for p in PARAMS)
    roles = {r for _, r in calls}
    if budget < 24:
        assert roles == {"representative"} and res.steps == {}
    else:
        assert "sweep" in roles
    if budget >= 60:
        assert res.steps.get("n") == 32
        reps = [c[0] for c in calls if c[1] == "representative"]
        # representatives sit in the middle of their n-plateau ((q-1)*32, q*32]
        assert all(pt["n"] % 32 in (16, 17) for pt in reps)


def test_planner_is_deterministic():
    k = _kernel()

    def measure(point, role):
        return Measurement(_runtime(point), 0.01, 50, _runtime(point))

    a = PRPlanner(k, 60, seed=5).run(measure).points
    b = PRPlanner(k, 60, seed=5).run(measure).points
    pd.testing.assert_frame_equal(a, b)


def test_pr_sampler_needs_measurements():
    with pytest.raises(ParameterError, match="measures while it samples"):
        sample(_kernel(), 20, sampler="pr")


def test_step_rewrite_with_sympy():
    text = step_expr("m*n*k + n**2", {"n": 32}, PARAMS)
    assert "ceiling(n/32)" in text
    vals = {"m": np.array([3.0, 5.0]), "n": np.array([1.0, 33.0]), "k": np.array([2.0, 7.0])}
    got = expr.evaluate(text, vals)
    n = np.ceil(vals["n"] / 32) * 32
    assert got == pytest.approx(vals["m"] * n * vals["k"] + n ** 2)
    both = step_complexity(COMP, {"m": 4, "n": 32}, PARAMS)
    got = expr.evaluate(both["memory"], {"m": np.array([5.0]), "n": np.array([40.0]),
                                         "k": np.array([3.0])})
    assert got == pytest.approx([8 * 3 + 3 * 64 + 8 * 64])
    assert step_complexity(COMP, {}, PARAMS) == COMP
    with pytest.raises(ParameterError):
        step_expr("m*n", {"n": 1})


def test_model_file_stores_steps_and_round_trips(tmp_path):
    from annpred import AugmentedNNRegressor

    rng = np.random.default_rng(0)
    X = pd.DataFrame({p: rng.integers(1, 129, 60) for p in PARAMS})
    y = np.array([_runtime(r) for r in X.to_dict("records")])
    m = AugmentedNNRegressor(complexity=COMP, steps={"n": 32, "m": 4}, max_epochs=200,
                             patience=50, n_init=1).fit(X, y)
    d = m.to_dict("synthetic_mm", "v", "cpu-test-t1")
    assert d["steps"] == {"n": 32, "m": 4}
    assert "ceiling(n/32)" in d["complexity"]["flops"]
    path = save_model(d, tmp_path / "m.json")
    loaded = load_model(path)
    assert loaded["steps"] == {"n": 32, "m": 4}
    m2 = AugmentedNNRegressor.from_dict(loaded)
    assert m2.steps_ == {"n": 32, "m": 4}
    np.testing.assert_allclose(m2.predict(X), m.predict(X), rtol=1e-12)
    from annpred.runtime.predictor import LoadedModel

    lm = LoadedModel(loaded)
    np.testing.assert_allclose(lm.predict({p: X[p].to_numpy(float) for p in PARAMS}),
                               m.predict(X), rtol=1e-9)
    for bad in ({"n": 1}, {"n": 2.5}, {"zz": 8}, [8]):
        d2 = json.loads(json.dumps(d))
        d2["steps"] = bad
        with pytest.raises(ModelFormatError, match="steps"):
            validate(d2)


def _rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_cli_profile_toy_with_pr_sampler(toy_env, tmp_path, cli):
    out = tmp_path / "toy_pr.csv"
    args = ["profile", "toy", "--variant", "cumsum", "--sampler", "pr", "--samples", "30",
            "--min-time-ms", "1", "--quiet", "--out", out]
    r = cli(args, env=toy_env)
    assert r.returncode == 0, r.stderr
    rows = _rows(out)
    # the budget caps the rows; the representatives' candidates follow the steps the sweeps
    # found in measured (noisy) times, and can run out before it (seen once in a busy run:
    # 23), so the count is what the summary says, not always 30
    k = len(rows)
    assert 15 <= k <= 30
    assert f"{k} rows measured, 0 already there" in r.stdout
    assert {row["sampler"] for row in rows} == {"pr"}
    assert len({row["n"] for row in rows}) == k
    assert sorted(int(row["point"]) for row in rows) == list(range(k))
    # rerun: replayed from the CSV, nothing measured again
    r = cli(args, env=toy_env)
    assert r.returncode == 0, r.stderr
    assert f"0 rows measured, {k} already there" in r.stdout
    assert len(_rows(out)) == k
    r = cli(["train", out, "--out", tmp_path / "models"], env=toy_env)
    assert r.returncode == 0, r.stderr
    assert "toy/cumsum" in r.stdout
    r = cli(["profile", "toy", "--sampler", "pr", "--first", "3", "--out", out], env=toy_env)
    assert r.returncode == 2 and "--first" in r.stderr
