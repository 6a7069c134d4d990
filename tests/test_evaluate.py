"""The accuracy-study harness: metrics, splits, noise floor, CLI outputs and errors."""
import math

import numpy as np
import pandas as pd
import pytest

from annpred import study as E
from annpred.study import runner, zoo
from annpred.study.zoo import DEFAULT_MODELS
from annpred.data.profiles import load_profiles
from annpred.cli.app import main
from annpred.errors import AnnpredError, ParameterError

from conftest import experiment_script, run_cli


# -- metrics against hand-computed values ---------------------------------------------------
def test_mape_hand_computed():
    y = [1.0, 2.0, 4.0, 10.0]
    p = [1.1, 1.0, 4.0, 12.0]  # errors 10%, 50%, 0%, 20%
    assert E.mape(y, p) == pytest.approx(20.0)


def test_filtered_mape_drops_smallest_30_percent_of_measured():
    y = np.arange(1.0, 11.0)  # 1..10; floor(0.3*10) = 3 smallest (1, 2, 3) dropped
    p = y.copy()
    p[:3] *= 2.0  # huge errors on the dropped ones
    p[3] *= 1.07  # y = 4 -> 7%
    p[9] *= 0.93  # y = 10 -> 7%
    assert E.filtered_mape(y, p) == pytest.approx(2.0)  # (7 + 7) / 7 points
    assert E.mape(y, p) == pytest.approx((300 + 14) / 10)
    # dropping goes by the *measured* runtime, whatever the order of the rows
    order = np.random.default_rng(0).permutation(10)
    assert E.filtered_mape(y[order], p[order]) == pytest.approx(2.0)


def test_within10_and_spearman_hand_computed():
    y = [1.0, 2.0, 3.0, 4.0]
    p = [1.05, 2.3, 2.8, 4.4]  # 5%, 15%, 6.7%, 10% (boundary counts)
    assert E.within(y, p, 0.10) == pytest.approx(75.0)
    # ranks of p: 1, 2, 3, 4 -> rho = 1
    assert E.spearman(y, p) == pytest.approx(1.0)
    # one swap out of four: d = (0, 1, -1, 0) -> rho = 1 - 6*2 / (4*15) = 0.8
    assert E.spearman([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(0.8)
    # ties get average ranks
    assert E.spearman([1, 2, 3], [5, 5, 6]) == pytest.approx(math.sqrt(3) / 2)
    assert math.isnan(E.spearman([1, 2, 3], [7, 7, 7]))


def test_metric_input_errors():
    with pytest.raises(ValueError):
        E.mape([1, 2], [1])
    with pytest.raises(ValueError):
        E.mape([1, 0], [1, 1])
    with pytest.raises(ValueError):
        E.mape([], [])


def test_noise_floor_from_two_passes_and_cv():
    assert E.noise_floor([1.0, 2.0, 4.0], [1.02, 1.9, 4.0]) == pytest.approx(
        (2 + 5 + 0) / 3)
    # cv 0.1 with 1 repeat: sd 0.12533 -> E|diff| = 2/sqrt(pi)*sqrt(2)*0.12533
    assert E.noise_floor_from_cv([0.1]) == pytest.approx(
        2 / math.sqrt(math.pi) * math.sqrt(2) * 0.12533 * 100)


# -- a small synthetic profiling CSV ---------------------------------------------------------
def synthetic_csv(path, n0=120, n1=40, seed=0, kernel="synth", noise=0.02, second=True):
    rng = np.random.default_rng(seed)
    rows = []
    m = np.round(np.exp(rng.uniform(np.log(4), np.log(256), n0)))
    k = np.round(np.exp(rng.uniform(np.log(4), np.log(256), n0)))
    true = 1e-9 * m * k * np.log2(k) * (1 + 0.3 * (m > 64))
    for v, scale in (("fast", 1.0), ("slow", 3.0)):
        for i in range(n0):
            rows.append({"kernel": kernel, "variant": v, "hardware": "cpu-test-t1", "m": m[i],
                         "k": k[i], "runtime_s": scale * true[i] * np.exp(rng.normal(0, noise)),
                         "runtime_cv": 0.01, "repeats": 10, "seed": 0, "point": i, "pass": 0})
        if second:
            for i in range(n1):  # re-measure the first n1 points, in another order
                j = n1 - 1 - i
                rows.append({"kernel": kernel, "variant": v, "hardware": "cpu-test-t1",
                             "m": m[j], "k": k[j],
                             "runtime_s": scale * true[j] * np.exp(rng.normal(0, noise)),
                             "runtime_cv": 0.01, "repeats": 10, "seed": 0, "point": j,
                             "pass": 1})
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


COMPLEXITY = {"work": "m*k*log(k, 2)"}
FAST_NN = {"max_epochs": 150, "patience": 30}


def test_split_uses_second_pass_as_test_and_never_leaks(tmp_path):
    df = load_profiles([synthetic_csv(tmp_path / "s.csv")])
    combos = E.prepare(df, complexity=COMPLEXITY)
    assert len(combos) == 2
    for c in combos:
        assert c.params == ["m", "k"]
        assert len(c.test) == 40 and len(c.pool) == 80
        assert c.floor_source.startswith("two passes")
        # test rows are exactly the re-measured points (ids 0..39)
        test_pts = set(df[(df.variant == c.variant) & (df["pass"] == 1)]["point"].astype(int))
        rows0 = df[(df.variant == c.variant) & (df["pass"] == 0)].reset_index(drop=True)
        assert set(rows0.loc[c.test, "point"].astype(int)) == test_pts
        assert not set(c.test) & set(c.pool)
        for seed in range(4):
            for n in (10, 25, 80, 500):
                rows = c.train_rows(seed, n)
                assert len(rows) == min(n, 80)
                assert not set(rows) & set(c.test)
                assert len(set(rows)) == len(rows)
        # nested learning-curve draws
        assert set(c.train_rows(1, 25)) <= set(c.train_rows(1, 50))
        # the floor is the MAPE between the passes on exactly the test points
        p1 = df[(df.variant == c.variant) & (df["pass"] == 1)].set_index("point")
        p0 = rows0.set_index("point")
        ids = sorted(test_pts)
        expect = np.mean(np.abs(p1.loc[ids, "runtime_s"].to_numpy()
                                - p0.loc[ids, "runtime_s"].to_numpy())
                         / p0.loc[ids, "runtime_s"].to_numpy()) * 100
        assert c.floor == pytest.approx(expect)


def test_split_without_second_pass_is_random_holdout_with_cv_floor(tmp_path):
    df = load_profiles([synthetic_csv(tmp_path / "s.csv", second=False)])
    c = E.prepare(df, complexity=COMPLEXITY, n_test=50)[0]
    assert len(c.test) == 50 and len(c.pool) == 70
    assert not set(c.test) & set(c.pool)
    assert "runtime_cv estimate" in c.floor_source and np.isfinite(c.floor)
    no_cv = df.drop(columns=["runtime_cv"])
    c = E.prepare(no_cv, complexity=COMPLEXITY, n_test=50)[0]
    assert c.floor_source == "not available" and math.isnan(c.floor)


def test_models_never_see_test_rows(tmp_path, monkeypatch):
    df = load_profiles([synthetic_csv(tmp_path / "s.csv")])
    c = E.prepare(df, complexity=COMPLEXITY)[0]
    seen = []
    orig = zoo.Trees.fit

    def spy(self, combo, rows, seed):
        seen.append(set(rows))
        return orig(self, combo, rows, seed)

    monkeypatch.setattr(zoo.Trees, "fit", spy)
    runner._init_worker([c], {})
    try:
        runner._run_group([runner.Fit(0, "RF+C", 60, 0), runner.Fit(0, "GBT+C", 60, 1)])
    finally:
        runner._WORK.clear()
    assert seen and all(not s & set(c.test) for s in seen)


def test_evaluate_end_to_end_small(tmp_path):
    df = load_profiles([synthetic_csv(tmp_path / "s.csv")])
    cfg = E.Config(n_train=60, seeds=2, curve_sizes=(20, 60), curve_seeds=1,
                   nn_options=FAST_NN)
    res = E.evaluate(df, cfg, complexity=COMPLEXITY, progress=False, cost=False)
    s = res.summary
    assert set(s.model) == set(DEFAULT_MODELS)
    assert len(s) == 2 * len(DEFAULT_MODELS)
    assert (s[s.model == "NN+C-L"].n_train == 80).all()
    assert (s[s.model == "NN+C"].n_train == 60).all()
    assert (s[s.model == "NN+C"].n_params < 75).all()
    assert np.all(np.isfinite(s[["mape_mean", "filtered_mape_mean", "within10_mean",
                                 "spearman_mean", "noise_floor"]].to_numpy()))
    # a power law with a 30% step in m: the network sees the step, Cons cannot
    mean = s.groupby("model", observed=True).mape_mean.mean()
    assert mean["Cons"] > 8 and mean["NN+C"] < mean["Cons"]
    assert set(res.curves.n_train) == {20, 60}


def test_cli_writes_expected_files(tmp_path):
    csv = synthetic_csv(tmp_path / "s.csv")
    out = tmp_path / "out"
    r = run_cli(["evaluate", csv, "--out", out, "--n-train", 40, "--seeds", 2,
                 "--curve-sizes", "20,40", "--curve-seeds", 1, "--max-epochs", 100,
                 "--features", "m,k", "--complexity", "m*k*log(k, 2)", "--quiet"])
    assert r.returncode == 0, r.stderr
    for name in ("accuracy.csv", "accuracy.md", "accuracy_runs.csv", "learning_curves.csv",
                 "cost.csv", "learning_curves.png", "mape_by_combination.png",
                 "pred_vs_measured_cpu-test-t1.png"):
        assert (out / name).is_file(), name
    acc = pd.read_csv(out / "accuracy.csv")
    for col in ("kernel", "variant", "hardware", "model", "n_train", "mape_mean", "mape_std",
                "filtered_mape_mean", "within10_mean", "spearman_mean", "noise_floor"):
        assert col in acc.columns
    assert len(acc) == 2 * len(DEFAULT_MODELS)
    md = (out / "accuracy.md").read_text()
    assert "## Headline" in md and "filtered MAPE" in md and "noise floor" in md.lower()
    assert "median MAPE" in r.stdout
    # the learning curves' small fits are the point of a study: no warning per fit, one note
    # for the study's own fits with fewer than 2 rows per parameter (40 rows, ~70 parameters)
    assert "measure more points" not in r.stderr, r.stderr
    assert r.stderr.count("fewer than 2 training rows per trainable parameter") == 1, r.stderr
    assert "synth/fast/cpu-test-t1: 40 rows" in r.stderr, r.stderr


@pytest.mark.parametrize("args, message", [
    (["--models", "NN+C,XGB"], "unknown model"),
    (["--n-train", "0"], "--n-train"),
    (["--curve-sizes", "10,abc"], "--curve-sizes"),
    (["--complexity", "m*q"], "synth/fast/cpu-test-t1: complexity expression 'm*q'"),
    (["--features", "m,k", "--complexity", "m*q"], "unknown symbol"),
])
def test_cli_bad_options(tmp_path, capsys, args, message):
    csv = synthetic_csv(tmp_path / "s.csv")
    assert main(["evaluate", str(csv), "--out", str(tmp_path / "o"), "--quiet", *args]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "o" / "accuracy.csv").exists()


def test_cli_bad_csv(tmp_path, capsys):
    def run(path):
        assert main(["evaluate", str(path), "--out", str(tmp_path / "o"), "--quiet"]) == 2
        return capsys.readouterr().err

    bad = tmp_path / "bad.csv"
    bad.write_text("kernel,variant,hardware,m,runtime_s\nx,y,z,3,-1\n")
    assert "not positive" in run(bad)
    assert "does not exist" in run(tmp_path / "missing.csv")
    tiny = tmp_path / "tiny.csv"
    tiny.write_text("kernel,variant,hardware,m,runtime_s\nx,y,z,3,1\nx,y,z,4,2\n")
    assert "at least 8" in run(tiny)


def test_unknown_model_in_api():
    with pytest.raises(ParameterError):
        E.make_model("XGB")
    assert issubclass(ParameterError, AnnpredError)


def test_cost_benchmark_when_the_network_keeps_fewer_complexity_features(tmp_path):
    """fft/matvec/maxpool crashed here: NN+C kept only the main complexity feature, the
    benchmark fed it every feature (broadcast error after the whole study)."""
    df = load_profiles([synthetic_csv(tmp_path / "s.csv")])
    comp = {"work": "m*k*log(k, 2)", "other": "m + k", "third": "m*m"}
    c = E.prepare(df, complexity=comp)[0]
    from annpred.study.cost import cost_benchmark

    class Keep1(zoo.Network):  # force the case: a network that keeps only the main feature
        def fit(self, combo, rows, seed):
            from annpred import AugmentedNNRegressor

            self.model_ = AugmentedNNRegressor(complexity={"work": comp["work"]},
                                               parameters=combo.params, seed=seed,
                                               max_epochs=30).fit(combo.X.iloc[rows],
                                                                  combo.y[rows])
            self.n_params = int(self.model_.n_params_)
            return self
    orig = zoo.make_model

    def make(name, nn_options=None):
        return Keep1("NN+C", True) if name == "NN+C" else orig(name, nn_options)
    import annpred.study.cost as cost_mod
    old = cost_mod.make_model
    cost_mod.make_model = make
    try:
        table = cost_benchmark(c, n_train=40, n_batch=200)
    finally:
        cost_mod.make_model = old
    assert {"NN+C (numpy path)", "RF+C", "GBT+C"} <= set(table.model)


def test_interrupted_evaluation_resumes_from_its_checkpoint(tmp_path, monkeypatch):
    df = load_profiles([synthetic_csv(tmp_path / "s.csv")])
    cfg = E.Config(n_train=40, seeds=1, curve_sizes=(), curve_seeds=0, models=("LR+C", "RF+C"))
    ckpt = tmp_path / "ck.jsonl"
    calls = []
    orig = runner._run_group

    def boom(group):
        calls.append(group)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return orig(group)
    monkeypatch.setattr(runner, "_run_group", boom)
    with pytest.raises(KeyboardInterrupt):
        E.evaluate(df, cfg, complexity=COMPLEXITY, progress=False, cost=False,
                   checkpoint=ckpt)
    saved = len(ckpt.read_text().splitlines())
    assert saved >= 1
    monkeypatch.setattr(runner, "_run_group", orig)
    ran = []
    monkeypatch.setattr(runner, "_run_group", lambda g: ran.append(g) or orig(g))
    res = E.evaluate(df, cfg, complexity=COMPLEXITY, progress=False, cost=False,
                     checkpoint=ckpt)
    assert sum(len(g) for g in ran) == len(res.runs) - saved
    # the report counts only the fits made in this run, and says how many were read back
    assert res.timings["n_resumed"] == saved
    from annpred.study.report import _markdown

    text = _markdown(res, [], None, None)
    assert f"{len(res.runs) - saved} fits in " in text
    assert f"({saved} more read back from an interrupted run's checkpoint)" in text
    full = E.evaluate(df, cfg, complexity=COMPLEXITY, progress=False, cost=False)
    assert np.allclose(res.summary.mape_mean.to_numpy(), full.summary.mape_mean.to_numpy())


def test_checkpoint_key_changes_with_the_catalog_complexity(tmp_path, monkeypatch):
    """Fits made before a catalog expression changed are not resumed."""
    import pandas as pd

    from annpred.spec.catalog import get_kernel

    df = pd.DataFrame({"kernel": ["conv2d"] * 2, "variant": ["torch"] * 2, "n": [8.0, 9.0]})
    before = runner._Checkpoint(tmp_path / "c.jsonl", df, "cfg", ["n"], None).key
    k = get_kernel("conv2d")
    changed = {**k.complexity_for("torch"), "extra": "n**2"}
    monkeypatch.setattr(type(k), "complexity_for",
                        lambda self, variant: changed if variant == "torch" else {})
    after = runner._Checkpoint(tmp_path / "c.jsonl", df, "cfg", ["n"], None).key
    assert before != after


def test_figures_of_one_combination_keep_their_text_inside_and_apart(tmp_path, monkeypatch):
    """With one combination the predicted-vs-measured figure is one panel: its title and
    the note naming data and models must still fit in the figure, and the note must not
    cover the x label (it did, on a figure 2.9 in wide)."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    from annpred.study import plots as P

    # quiet measurements: a noise floor of about 0.1%, so the MAPE axes span 0.1-50%
    df = load_profiles([synthetic_csv(tmp_path / "s.csv", noise=0.001)], variant="fast")
    assert df["variant"].nunique() == 1
    cfg = E.Config(n_train=60, seeds=1, curve_sizes=(20, 60), curve_seeds=1,
                   nn_options=FAST_NN, models=("GBT+C", "NN+C"))
    res = E.evaluate(df, cfg, complexity=COMPLEXITY, progress=False, cost=False)
    figs = {}
    monkeypatch.setattr(P, "_save", lambda fig, path: figs.setdefault(path.name, fig))
    import matplotlib.pyplot as plt

    monkeypatch.setattr(plt, "close", lambda fig=None: None)  # keep them to measure
    P.plots(res, tmp_path)
    assert {"pred_vs_measured_cpu-test-t1.png", "mape_by_combination.png",
            "learning_curves.png"} <= set(figs)
    for name, fig in figs.items():
        fig.canvas.draw()
        r = fig.canvas.get_renderer()
        box = fig.bbox
        texts = [t for t in [fig._suptitle, *fig.texts] if t is not None and t.get_text()]
        for ax in fig.axes:
            texts += [t for t in (ax.title, ax.xaxis.label, ax.yaxis.label) if t.get_text()]
        for t in texts:
            e = t.get_window_extent(r)
            assert e.x0 >= box.x0 - 1 and e.x1 <= box.x1 + 1, (name, t.get_text()[:40])
            assert e.y0 >= box.y0 - 1 and e.y1 <= box.y1 + 1, (name, t.get_text()[:40])
        for note in fig.texts:
            for ax in fig.axes:
                if ax.xaxis.label.get_text():
                    assert not note.get_window_extent(r).overlaps(
                        ax.xaxis.label.get_window_extent(r)), name
        for ax in fig.axes:  # tick labels side by side, none on top of another
            for axis in (ax.xaxis, ax.yaxis):
                labels = [t for t in axis.get_ticklabels() if t.get_visible() and t.get_text()]
                boxes = [t.get_window_extent(r) for t in labels]
                for i in range(len(boxes) - 1):
                    assert not boxes[i].overlaps(boxes[i + 1]), (name, labels[i].get_text(),
                                                                 labels[i + 1].get_text())


def test_checkpoint_records_of_another_shape_are_skipped_not_crashed_on(tmp_path):
    import pandas as pd

    df = pd.DataFrame({"kernel": ["conv2d"] * 2, "variant": ["torch"] * 2, "n": [8.0, 9.0]})
    ck = runner._Checkpoint(tmp_path / "c.jsonl", df, "cfg", ["n"], None)
    good = (runner.Fit(0, "NN", 50, 1), {"mape": 3.0}, None)
    ck.append([good])
    ck._file.append([{"fit": [0, "NN"], "rec": {}, "pred": None},          # too short
                     {"fit": [0, "NN", "x", 1], "rec": {}, "pred": None},  # a text count
                     {"fit": [0, "NN", 50, 1], "rec": [], "pred": None},   # rec not a dict
                     {"fit": [0, "NN", 50, 1], "rec": {}, "pred": ["a"]},  # not numbers
                     {"rec": {}, "pred": None}])                           # no fit
    assert ck.load() == [good]


# -- development splits (experiments/dev_splits.py) on the shipped data -----------------------
def test_dev_splits_compare_candidate_terms_and_refuse_bad_ones(capsys):
    """--complexity replaces the catalog's terms for the selected variant (a different fit on
    the same split); bad JSON, a disallowed function and an empty selection exit 2."""
    dev = experiment_script("dev_splits")
    base = ["--hardware", "cpu-amd-epyc-t1", "--kernels", "conv2d", "--variants", "scipy",
            "--seeds", "1"]
    assert dev.main(base) == 0
    kept = capsys.readouterr().out
    assert dev.main(base + ["--complexity", '{"macs": "f*c*k**2*(n-k+1)**2"}']) == 0
    other = capsys.readouterr().out
    assert "conv2d/scipy/cpu-amd-epyc-t1" in kept and "over 1 combinations" in other
    assert kept.splitlines()[-1] != other.splitlines()[-1]  # other terms, another fit
    for extra, message in ((["--complexity", "{bad"], "not a JSON object"),
                           (["--complexity", '{"a": "__import__(1)"}'], "not allowed"),
                           (["--variants", "nope"], "no combinations")):  # the last one wins
        assert dev.main(base + extra) == 2
        assert message in capsys.readouterr().err
