"""Kernel Tuner cache files as input: reader, convert, train/predict, tune-space."""
from __future__ import annotations

import csv
import gzip
import itertools
import json
import math
import re
import warnings

import numpy as np
import pytest

from annpred.data import kerneltuner as kt
from annpred.data.profiles import load_profiles
from annpred.errors import DataError
from conftest import run_cli


def make_cache(n_failed: int = 3, seed: int = 0) -> dict:
    """A small synthetic tuning space whose runtime follows the launch structure."""
    rng = np.random.default_rng(seed)
    tune = {"block_size_x": [16, 32, 48, 64, 128], "block_size_y": [1, 2, 4, 8],
            "tile_size_x": [1, 2, 3, 4], "tile_size_y": [1, 2], "use_shmem": [0, 1],
            "filter_width": [15]}
    keys = list(tune)
    cache = {}
    for i, vals in enumerate(itertools.product(*tune.values())):
        p = dict(zip(keys, vals))
        key = ",".join(map(str, vals))
        if i < n_failed:
            cache[key] = {**p, "time": "CompilationFailedConfig"}
            continue
        threads = p["block_size_x"] * p["block_size_y"]
        blocks = (math.ceil(2048 / (p["block_size_x"] * p["tile_size_x"]))
                  * math.ceil(512 / (p["block_size_y"] * p["tile_size_y"])))
        t = 1e-4 * blocks * math.ceil(threads / 32) * (0.7 if p["use_shmem"] else 1.0) + 0.05
        times = list(t * (1 + 0.01 * rng.standard_normal(7)))
        cache[key] = {**p, "time": float(np.mean(times)), "times": times,
                      "compile_time": 100.0, "timestamp": "2024-01-01 00:00:00+00:00"}
    return {"device_name": "NVIDIA Test GPU", "kernel_name": "conv_kernel",
            "problem_size": [2048, 512], "tune_params_keys": keys, "tune_params": tune,
            "objective": "time", "cache": cache}


@pytest.fixture
def cache_file(tmp_path):
    p = tmp_path / "conv_test.json.gz"
    p.write_bytes(gzip.compress(json.dumps(make_cache()).encode()))
    return p


def test_reader_rows_units_failures_constants(cache_file):
    c = kt.read_cache(cache_file)
    doc = make_cache()
    assert c.n_failed == 3 and c.failures == {"CompilationFailedConfig": 3}
    assert c.n_rows == len(doc["cache"]) - 3
    assert c.constants == {"filter_width": 15.0}
    assert "filter_width" not in c.params and "use_shmem" in c.params
    assert c.kernel == "conv_kernel_2048x512" and c.hardware == "cuda-test-gpu"
    first = next(v for v in doc["cache"].values() if not isinstance(v["time"], str))
    assert c.rows[0]["runtime_s"] == pytest.approx(first["time"] / 1000)
    assert c.rows[0]["repeats"] == 7
    assert 0 < c.rows[0]["runtime_cv"] < 0.05
    assert kt.hardware_id("AMD Radeon PRO W6600") == "gpu-amd-radeon-pro-w6600"


def test_plain_json_and_load_profiles(tmp_path, cache_file):
    plain = tmp_path / "plain.json"
    plain.write_text(json.dumps(make_cache()))
    a, b = load_profiles([cache_file]), load_profiles([plain])
    assert len(a) == len(b) == len(make_cache()["cache"]) - 3
    assert {"kernel", "variant", "hardware", "runtime_s", "_problem_size"} <= set(a.columns)
    assert np.allclose(a["runtime_s"], b["runtime_s"])
    assert kt.parse_problem_size(a["_problem_size"].iloc[0]) == [2048.0, 512.0]
    assert kt.parse_constants(a["_constants"].iloc[0]) == {"filter_width": 15.0}
    assert kt.parse_constants(kt.format_constants({"b": 2.5, "a": 3.0})) == {"a": 3.0, "b": 2.5}
    assert kt.parse_constants("x=1;bad;1y=2;z=nan;w=") == {"x": 1.0}


def test_space_structure_uses_the_constant_filter_size(cache_file):
    from annpred.study import tunespace as T

    c = T.space_combination(load_profiles([cache_file]))
    assert c.constants == {"filter_width": 15.0}
    # block_size_x 48 leaves a partial block in x; the filter's halo along x only
    assert list(c.complexity) == ["ragged", "guarded_work", "grid_blocks", "halo_ratio",
                                  "threads"]
    assert "+15-1" in c.complexity["halo_ratio"]


def _bad(doc_fn):
    return doc_fn(make_cache())


@pytest.mark.parametrize("name,content,message", [
    ("notjson.json", b"this is not json", "not valid JSON"),
    ("empty.json", b"", "empty"),
    ("list.json", b"[1, 2]", "top level is not an object"),
    ("nokeys.json", json.dumps({"cache": {}}).encode(), "missing key"),
    ("emptycache.json", json.dumps({**make_cache(), "cache": {}}).encode(), "cache is empty"),
    ("allfailed.json.gz", gzip.compress(json.dumps(make_cache(n_failed=10 ** 6)).encode()),
     "every configuration failed"),
    ("badtime.json", json.dumps({**make_cache(), "cache": {"a": {"time": -1.0}}}).encode(),
     "not a positive number"),
])
def test_bad_files_raise_one_data_error_naming_the_file(tmp_path, name, content, message):
    p = tmp_path / name
    p.write_bytes(content)
    with pytest.raises(DataError, match=message) as e:
        kt.read_cache(p)
    assert name in str(e.value)


def test_convert_cli_writes_profiling_csv(cache_file, tmp_path):
    out = tmp_path / "out.csv"
    r = run_cli(["convert", cache_file, "-o", out])
    assert r.returncode == 0, r.stderr
    assert "skipped 3 failed" in r.stdout
    with open(out, newline="") as f:
        data = list(csv.DictReader(f))
    assert len(data) == len(make_cache()["cache"]) - 3
    assert data[0]["kernel"] == "conv_kernel_2048x512" and "filter_width" not in data[0]
    assert float(data[0]["runtime_s"]) > 0
    assert data[0]["_problem_size"] == "2048x512" and data[0]["_constants"] == "filter_width=15"
    # the CSV trains as the cache file does: the same launch structure, options and model
    # (it trained without them, 276% against 50% held-out MAPE on a W6600 convolution)
    models = {}
    for name, src in (("csv", out), ("cache", cache_file)):
        r = run_cli(["train", src, "--out", tmp_path / name, "--n-train", "60"])
        assert r.returncode == 0, r.stderr
        models[name] = json.loads((tmp_path / name / "cuda-test-gpu" / "conv_kernel_2048x512"
                                   / "default.json").read_text())
    assert models["csv"]["complexity"] == models["cache"]["complexity"] != {}
    assert models["csv"]["train"]["val_mape"] == models["cache"]["train"]["val_mape"]


def test_convert_bad_file_exit_2_nothing_written(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"device_name": "x"}')
    out = tmp_path / "out.csv"
    r = run_cli(["convert", bad, "-o", out])
    assert r.returncode == 2
    assert r.stderr.strip().startswith("annpred: error:") and "bad.json" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
    assert not out.exists() and list(tmp_path.iterdir()) == [bad]


def test_train_auto_and_predict_on_a_cache_file(cache_file, tmp_path):
    models = tmp_path / "m"
    r = run_cli(["train", cache_file, "--out", models, "--n-train", "100",
                 "--complexity", "auto"])
    assert r.returncode == 0, r.stderr
    assert "complexity (auto):" in r.stdout
    f = models / "cuda-test-gpu" / "conv_kernel_2048x512" / "default.json"
    d = json.loads(f.read_text())
    assert d["train"]["auto_complexity"][0]["tried"] == "(start)"
    assert set(d["complexity"]) <= set(d["features"])
    r = run_cli(["predict", "conv_kernel_2048x512", "--variant", "default", "--models",
                 models, "block_size_x=32", "block_size_y=4", "tile_size_x=2",
                 "tile_size_y=1", "use_shmem=1"])
    assert r.returncode == 0, r.stderr
    assert "conv_kernel_2048x512/default on cuda-test-gpu" in r.stdout


def test_explicit_complexity_on_a_cache_file_needs_no_feature_list(cache_file, tmp_path):
    """A cache file names its tuning parameters, so an expression of them is enough."""
    r = run_cli(["train", cache_file, "--out", tmp_path / "m", "--n-train", "60",
                 "--complexity", "block_size_x*block_size_y"])
    assert r.returncode == 0, r.stderr
    d = json.loads((tmp_path / "m" / "cuda-test-gpu" / "conv_kernel_2048x512"
                    / "default.json").read_text())
    assert list(d["complexity"].values()) == ["block_size_x*block_size_y"]
    r = run_cli(["train", cache_file, "--out", tmp_path / "bad", "--complexity",
                 "block_size_x*bogus"])
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "conv_kernel_2048x512/default/cuda-test-gpu" in r.stderr
    assert "unknown symbol 'bogus'" in r.stderr and not (tmp_path / "bad").exists()


def test_tune_space_cli_reports_pick_and_regret(cache_file):
    r = run_cli(["tune-space", cache_file, "--budget", "60", "--top", "5", "--model", "NN+C"])
    assert r.returncode == 0, r.stderr
    assert "predicted best:" in r.stdout and "regret" in r.stdout
    # 12 validation rows of 60: too few for a 90% interval, and the output says so
    assert "note: no network interval" in r.stdout and "network's interval covers" not in r.stdout
    import re

    assert len([l for l in r.stdout.splitlines() if re.match(r"\s+\d+\. ", l)]) == 5
    # the fastest measured configuration is named, not only its time
    assert re.search(r"best measured of the 60: block_size_x=\d+ block_size_y=\d+ .*s$",
                     r.stdout, re.M)
    # warnings are one "annpred: warning:" line each (the final fit's few rows per parameter),
    # never Python's; the guided rounds' partial fits say nothing
    assert "UserWarning" not in r.stderr and r.stderr.count("rows for") <= 1, r.stderr
    assert all(l.startswith("annpred: ") for l in r.stderr.splitlines()), r.stderr
    # a fit takes seconds: each stage says so on stderr
    assert "annpred: guided round 1 of 5: fitting on 30 configurations" in r.stderr
    assert "annpred: final fit on 60 configurations" in r.stderr
    r = run_cli(["tune-space", cache_file, "--budget", "100000"])
    assert r.returncode == 2 and "--budget" in r.stderr
    r = run_cli(["tune-space", cache_file, "--strategy", "smart"])
    assert r.returncode == 2 and "--strategy" in r.stderr and "guided" in r.stderr


def test_select_on_space_regret_is_judged_on_the_space(cache_file):
    from annpred.study import tunespace as T
    from annpred.study.zoo import make_model

    c = T.space_combination(load_profiles([cache_file]))
    assert {"grid_blocks", "threads"} <= set(c.complexity)
    r = T.select_on_space(c, make_model("NN+C"), budget=80, top=5, seed=0)
    assert r.regret >= 1.0 and r.random_regret >= 1.0
    assert len(r.top_rows) == 5 and not set(r.top_rows) & set(r.measured.tolist())
    assert r.mape < 15  # the runtime follows the structure features exactly


def test_guided_strategy_spends_the_budget_on_the_fast_region(cache_file):
    """Guided: half the budget at random, the rest on the fastest predicted configurations;
    it measures exactly the budget, finds faster configurations than one random draw of the
    same size, and the random baseline is random sampling of as many measurements."""
    from annpred.errors import ParameterError
    from annpred.study import tunespace as T
    from annpred.study.zoo import make_model

    c = T.space_combination(load_profiles([cache_file]))
    rnd = T.select_on_space(c, make_model("GBT+C"), budget=40, top=3, seed=1)
    gd = T.select_on_space(c, make_model("GBT+C"), budget=40, top=3, seed=1,
                           strategy="guided")
    assert len(gd.measured) == len(set(gd.measured.tolist())) == 40
    assert gd.random_regret == rnd.random_regret  # the same baseline for both strategies
    fast = np.quantile(c.y, 0.1)
    assert (c.y[gd.measured] <= fast).sum() > (c.y[rnd.measured] <= fast).sum()
    assert gd.regret <= rnd.regret
    with pytest.raises(ParameterError, match="strategy"):
        T.select_on_space(c, make_model("GBT+C"), budget=40, top=3, seed=1, strategy="x")


def test_guided_local_search_takes_the_best_predicted_neighbours_of_the_fastest_measured():
    """The local half of a guided round: unmeasured configurations one parameter away from a
    measured one, the NEIGHBOURS_EACH best predicted per measured row, fastest row first."""
    from annpred.study import tunespace as T

    grid = np.array([(a, b, d) for a in range(3) for b in range(3) for d in range(2)])
    y = np.arange(len(grid), dtype=float) + 1.0
    measured = np.zeros(len(grid), dtype=bool)
    slow, fast = 0, len(grid) - 1  # (0, 0, 0) and (2, 2, 1)
    measured[[slow, fast]] = True
    y[fast] = 0.5  # the fastest measured row is searched first
    pred = -np.arange(len(grid), dtype=float)  # later rows predicted faster
    got = T._local_search(grid, y, measured, pred, want=3)
    one_away = lambda i, j: (grid[i] != grid[j]).sum() == 1  # noqa: E731
    assert all(one_away(fast, j) for j in got[:T.NEIGHBOURS_EACH])
    assert one_away(slow, got[T.NEIGHBOURS_EACH])
    near_fast = [j for j in range(len(grid)) if one_away(fast, j)]
    assert got[:T.NEIGHBOURS_EACH] == sorted(near_fast, key=lambda j: pred[j])[:T.NEIGHBOURS_EACH]
    assert not measured[got].any() and len(set(got)) == 3
    assert T._local_search(grid, y, measured, pred, want=0) == []


def test_evaluate_cli_on_a_cache_file_uses_the_launch_structure(cache_file, tmp_path):
    r = run_cli(["evaluate", cache_file, "--out", tmp_path / "ev", "--n-train", "60",
                 "--n-test", "60", "--seeds", "1", "--no-curves", "--no-cost", "--no-plots",
                 "--models", "NN+C,GBT+C", "--quiet", "--max-epochs", "60"])
    assert r.returncode == 0, r.stderr
    assert "| NN+C |" in r.stdout and "| GBT+C |" in r.stdout and "skipped" not in r.stdout


def _partial(tmp_path, n: int, seed: int = 0, name: str = "partial.json", slowest=1.0):
    """A cache of a partial tuning run: ``n`` of the synthetic space's configurations
    (and its failures), as Kernel Tuner writes it when a search stops early; drawn from the
    ``slowest`` share of the configurations."""
    doc = make_cache()
    keys = sorted(doc["cache"])
    rng = np.random.default_rng(seed)
    failed = [k for k in keys if isinstance(doc["cache"][k]["time"], str)]
    ok = sorted((k for k in keys if k not in failed), key=lambda k: doc["cache"][k]["time"])
    ok = sorted(ok[int(len(ok) * (1 - slowest)):])
    pick = set(rng.choice(ok, n, replace=False).tolist()) | set(failed)
    doc["cache"] = {k: v for k, v in doc["cache"].items() if k in pick}
    p = tmp_path / name
    p.write_text(json.dumps(doc))
    return p, make_cache()


def _truth(doc) -> dict:
    return {tuple(float(v[k]) for k in ("block_size_x", "block_size_y", "tile_size_x",
                                          "tile_size_y", "use_shmem")): v["time"] / 1000
            for v in doc["cache"].values() if not isinstance(v["time"], str)}


def test_product_space_minus_failures_and_restrictions(tmp_path):
    p, _ = _partial(tmp_path, 60)
    c = kt.read_cache(p)
    full = kt.product_space(c)
    assert full.n_product == 5 * 4 * 4 * 2 * 2 and full.n_failed == 3
    assert full.size == full.n_product - 3 and full.n_restricted == 0
    r = kt.product_space(c, ["block_size_x*block_size_y <= 256", "use_shmem == 0 or "
                             "tile_size_x in (1, 2)"])
    cols = r.columns
    assert np.all(cols["block_size_x"] * cols["block_size_y"] <= 256)
    assert not np.any((cols["use_shmem"] == 1) & (cols["tile_size_x"] > 2))
    assert r.size + r.n_restricted + r.n_failed == r.n_product
    with pytest.raises(Exception) as e:
        kt.product_space(c, ["block_size_z < 4"])
    assert "block_size_z" in str(e.value)
    with pytest.raises(Exception) as e:
        kt.product_space(c, limit=100)
    assert "320" in str(e.value) and "100" in str(e.value)


def test_product_space_holds_a_parameter_the_run_never_varied(tmp_path):
    doc = make_cache(n_failed=0)
    doc["tune_params"]["filter_width"] = [7, 15]  # tuned, but the run measured 15 only
    p = tmp_path / "held.json"
    p.write_text(json.dumps(doc))
    s = kt.product_space(kt.read_cache(p))
    assert s.held == {"filter_width": (15.0, [7.0])} and "filter_width" not in s.columns
    doc["tune_params"]["use_shmem"] = [0, "yes"]
    p.write_text(json.dumps(doc))
    with pytest.raises(DataError) as e:
        kt.product_space(kt.read_cache(p))
    assert "use_shmem" in str(e.value) and "'yes'" in str(e.value)


def test_tune_space_product_predicts_the_unmeasured_rest(tmp_path):
    """A partial run of 80 configurations: --space product fits on them and ranks the rest
    of the space; the predicted best is close to the true best of the unmeasured ones, and
    --out holds every candidate, fastest predicted first."""
    p, doc = _partial(tmp_path, 80)
    out = tmp_path / "pred.csv"
    r = run_cli(["tune-space", p, "--space", "product", "--model", "NN+C", "--top", "5",
                 "--restrict", "block_size_x*block_size_y <= 512", "--out", out, "--quiet"])
    assert r.returncode == 0, r.stderr
    assert "to predict" in r.stdout and "not judged" in r.stdout
    assert "fitting" not in r.stderr  # --quiet
    import re

    assert len([l for l in r.stdout.splitlines() if re.match(r"\s+\d+\. ", l)]) == 5
    with open(out) as f:
        rows = list(csv.DictReader(f))
    truth = _truth(doc)
    measured = _truth(json.loads(p.read_text()))
    params = ("block_size_x", "block_size_y", "tile_size_x", "tile_size_y", "use_shmem")
    keys = [tuple(float(r[k]) for k in params) for r in rows]
    expect = {k for k in truth if k not in measured and k[0] * k[1] <= 512}
    assert set(keys) == expect and len(keys) == len(expect)  # failures left out too
    pred = [float(r["predicted_s"]) for r in rows]
    assert pred == sorted(pred) and [int(r["rank"]) for r in rows][:3] == [1, 2, 3]
    best_true = min(truth[k] for k in expect)
    assert truth[keys[0]] <= 1.15 * best_true  # the structure is learnable: a good pick
    # an interval where the network could calibrate one (enough validation rows)
    assert ("low_s" in rows[0]) == ("interval" in r.stdout)


def test_tune_space_product_refuses_bad_use(tmp_path, cache_file):
    p, _ = _partial(tmp_path, 40)
    out = tmp_path / "pred.csv"
    for args, words in [
        (["--restrict", "block_size_x <"], ["restriction", "syntax"]),
        (["--restrict", "__import__('os')"], ["unknown name", "__import__"]),
        (["--restrict", "threads > 1"], ["unknown name", "threads"]),
        (["--strategy", "guided"], ["--strategy"]),
        (["--budget", "1000"], ["--budget"]),
    ]:
        r = run_cli(["tune-space", p, "--space", "product", "--out", out, *args])
        assert r.returncode == 2 and all(w in r.stderr for w in words), (args, r.stderr)
        assert "Traceback" not in r.stderr and not out.exists()
    r = run_cli(["tune-space", cache_file, "--restrict", "block_size_x > 16"])
    assert r.returncode == 2 and "--space product" in r.stderr
    csv_path = tmp_path / "space.csv"
    assert run_cli(["convert", p, "-o", csv_path]).returncode == 0
    r = run_cli(["tune-space", csv_path, "--space", "product"])
    assert r.returncode == 2 and "tune_params" in r.stderr


def test_suggest_next_is_one_guided_round_and_the_loop_finds_the_optimum(tmp_path):
    """A user's loop on a partial run: fit, measure the suggested batch (here: looked up in
    the complete synthetic space), add it, again. Each batch is new, unmeasured, of the size
    asked, neighbours of the fastest measured first; three rounds of 10 after 40 random
    measurements, all among the slower half, end near the optimum of the whole space."""

    from annpred.study import tunespace as T
    from annpred.study.zoo import make_model

    p, doc = _partial(tmp_path, 40, seed=3, slowest=0.5)
    truth = _truth(doc)
    params = ["block_size_x", "block_size_y", "tile_size_x", "tile_size_y", "use_shmem"]
    start = min(_truth(json.loads(p.read_text())).values())
    assert start >= 1.2 * min(truth.values())  # far from the optimum to begin with
    part = json.loads(p.read_text())
    for rnd in range(3):
        p.write_text(json.dumps(part))
        cache = kt.read_cache(p)
        c = T.space_combination(load_profiles([p]))
        cand = T.unmeasured(c, kt.product_space(cache).columns)
        sp = T.predict_unmeasured(c, make_model("NN+C"), cand, seed=rnd)
        nxt = T.suggest_next(c, sp, 10)
        assert len(nxt) == len(set(nxt.tolist())) == 10 and nxt.min() >= 0
        seen = set(map(tuple, c.X[params].to_numpy().tolist()))
        picks = [tuple(cand.iloc[j][params].tolist()) for j in nxt]
        assert not set(picks) & seen
        # the first half: one parameter away from a measured configuration
        assert all(min(sum(a != b for a, b in zip(q, s)) for s in seen) == 1
                   for q in picks[:5])
        for q in picks:  # "measure" them
            rec = dict(zip(params, (int(v) for v in q)), filter_width=15)
            part["cache"][",".join(str(rec[k]) for k in part["tune_params_keys"])] = {
                **rec, "time": truth[q] * 1000, "times": [truth[q] * 1000]}
    found = min(_truth(part).values())
    assert found <= start and found <= 1.05 * min(truth.values())


def test_tune_space_next_cli(tmp_path, cache_file):
    p, _ = _partial(tmp_path, 50)
    r = run_cli(["tune-space", p, "--space", "product", "--model", "NN+C", "--top", "2",
                 "--next", "4"])
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    i = next(k for k, l in enumerate(lines) if l.startswith("next 4 to measure"))
    assert all(l.strip().startswith(f"{n}. ") for n, l in zip(range(1, 5), lines[i + 1:i + 5]))
    r = run_cli(["tune-space", cache_file, "--next", "4"])
    assert r.returncode == 2 and "--space product" in r.stderr
    r = run_cli(["tune-space", p, "--space", "product", "--next", "0"])
    assert r.returncode == 2 and "--next" in r.stderr


def test_tune_space_judges_the_interval_on_the_picks_too(cache_file):
    """With a network, the judged run also says how its interval did: over the unmeasured
    configurations and on the top k (where a model errs low)."""
    import re

    from annpred.study import tunespace as T
    from annpred.study.zoo import make_model

    c = T.space_combination(load_profiles([cache_file]))
    r = T.select_on_space(c, make_model("NN+C"), budget=200, top=5, seed=0)
    assert r.low is not None and np.all(r.low <= r.predicted) and np.all(r.predicted <= r.high)
    rest = np.setdiff1d(np.arange(len(c.y)), r.measured)
    cover = np.mean((c.y[rest] >= r.low[rest]) & (c.y[rest] <= r.high[rest]))
    assert cover >= 0.5  # a 90% interval on a learnable space
    g = T.select_on_space(c, make_model("GBT+C"), budget=200, top=5, seed=0)
    assert g.low is None  # trees carry no interval
    out = run_cli(["tune-space", cache_file, "--budget", "200", "--top", "5", "--model",
                   "NN+C", "--strategy", "random"])
    assert out.returncode == 0, out.stderr
    m = re.search(r"interval covers (\d+)% of the unmeasured configurations and (\d) of the "
                  r"top 5", out.stdout)
    assert m and abs(int(m.group(1)) - cover * 100) <= 1 and int(m.group(2)) <= 5


def test_empty_device_name_takes_the_hardware_from_the_file_name(tmp_path):
    """Published caches with an empty device_name (e.g. an MI250X run) must not merge into
    one 'gpu-unknown' combination: the id comes from the file name, with a warning, unless
    --hardware names it."""
    from annpred.errors import AnnpredWarning

    for name in ("MI250X.json.gz", "W7800.json.gz"):
        doc = {**make_cache(), "device_name": " "}
        (tmp_path / name).write_bytes(gzip.compress(json.dumps(doc).encode()))
    with pytest.warns(AnnpredWarning, match="'device_name' is empty.*'gpu-mi250x'"):
        assert kt.read_cache(tmp_path / "MI250X.json.gz").hardware == "gpu-mi250x"
    with pytest.warns(AnnpredWarning):
        df = load_profiles([tmp_path / "MI250X.json.gz", tmp_path / "W7800.json.gz"])
    assert sorted(df["hardware"].unique()) == ["gpu-mi250x", "gpu-w7800"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # named by the user: nothing to warn about
        df = load_profiles([tmp_path / "MI250X.json.gz"], hardware="gpu-instinct")
    assert set(df["hardware"]) == {"gpu-instinct"}


def as_t4(doc: dict, unit: str = "miliseconds", scale: float = 1.0) -> dict:
    """The cache ``doc`` as a T4 results document (Kernel Tuner's store_output_file), its
    times multiplied by ``scale`` (to express them in ``unit``)."""
    results = []
    for rec in doc["cache"].values():
        conf = {k: rec[k] for k in doc["tune_params_keys"]}
        if isinstance(rec["time"], str):
            results.append({"configuration": conf, "times": {"runtimes": []},
                            "invalidity": "compile", "correctness": 0, "measurements": []})
            continue
        results.append({"timestamp": rec.get("timestamp"), "configuration": conf,
                        "times": {"compilation": 100.0, "runtimes": [
                            t * scale for t in rec["times"]]},
                        "invalidity": "correct", "correctness": 1,
                        "measurements": [{"name": "time", "value": rec["time"] * scale,
                                          "unit": ""}], "objectives": ["time"]})
    return {"schema_version": "1.0.0", "metadata": {"timeunit": unit}, "results": results}


def test_t4_results_file_reads_as_the_same_cache(tmp_path, cache_file):
    """A T4 results file of the same run gives the same rows (runtime in seconds whatever
    its time unit, the spread, the repeats), counts invalid configurations as failures and
    names kernel and hardware from the file name, with a warning each, unless named."""
    from annpred.errors import AnnpredWarning

    ref = kt.read_cache(cache_file)
    p = tmp_path / "A100_T4.json.gz"
    p.write_bytes(gzip.compress(json.dumps(as_t4(make_cache(), "microseconds", 1e3))
                                .encode()))
    with pytest.warns(AnnpredWarning) as seen:
        c = kt.read_cache(p)
    text = " ".join(str(w.message) for w in seen)
    assert "names no kernel; kernel 'a100_t4'" in text
    assert "names no device; hardware id 'gpu-a100-t4'" in text
    assert "records no problem size or constant parameters" in text  # what is lost
    assert c.n_failed == 3 and c.failures == {"invalid: compile": 3}
    assert c.params == ref.params and c.constants == ref.constants
    assert len(c.rows) == len(ref.rows)
    for a, b in zip(c.rows, ref.rows):
        assert {k: a[k] for k in ref.params} == {k: b[k] for k in ref.params}
        assert a["runtime_s"] == pytest.approx(b["runtime_s"], rel=1e-12)
        assert a["runtime_cv"] == pytest.approx(b["runtime_cv"], rel=1e-9)
        assert a["repeats"] == b["repeats"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # both named by the user: nothing to warn about
        df = load_profiles([p], kernel="conv", hardware="cuda-a100")
    assert set(df["kernel"]) == {"conv"} and set(df["hardware"]) == {"cuda-a100"}
    out = tmp_path / "t4.csv"
    r = run_cli(["convert", p, "-o", out, "--kernel", "conv", "--hardware", "cuda-a100"])
    assert r.returncode == 0 and "warning" not in r.stderr, r.stderr
    assert "3 invalid: compile" in r.stdout
    with open(out, newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == len(ref.rows) and rows[0]["kernel"] == "conv"
    assert float(rows[0]["runtime_s"]) == pytest.approx(ref.rows[0]["runtime_s"], rel=1e-9)


@pytest.mark.parametrize("edit, message", [
    (lambda d: d.update(results=[]), "the results are empty"),
    (lambda d: d.update(results={"a": 1}), "'results' must be a list"),
    (lambda d: d["results"][5].pop("configuration"), "result 5: no 'configuration'"),
    (lambda d: d["metadata"].update(timeunit="fortnights"), "'fortnights' is not a time unit"),
    (lambda d: d["results"][4].update(measurements=[], times={}),
     "result 4: neither a 'time' measurement nor 'times.runtimes'"),
    (lambda d: d["results"][4]["measurements"][0].update(value="fast"),
     "result 4: the 'time' measurement 'fast' is not a number"),
    (lambda d: d["results"][7]["configuration"].pop("tile_size_x"),
     "result 7: tuning parameter 'tile_size_x' is missing"),
    (lambda d: d["results"][7]["configuration"].update(tile_size_x="2"),
     "result 7: tuning parameter 'tile_size_x' is '2', not a number"),
    (lambda d: [r.update(invalidity="runtime") for r in d["results"]],
     "every configuration failed (320 invalid: runtime)"),
])
def test_broken_t4_files_get_one_clear_error_and_nothing_written(tmp_path, edit, message):
    doc = as_t4(make_cache())
    edit(doc)
    p = tmp_path / "broken_T4.json"
    p.write_text(json.dumps(doc))
    with pytest.raises(DataError, match=re.escape(message)):
        kt.read_cache(p)
    out = tmp_path / "out.csv"
    r = run_cli(["convert", p, "-o", out])
    assert r.returncode == 2 and message in r.stderr and "Traceback" not in r.stderr
    assert r.stderr.count("\n") == 1, r.stderr  # the error alone: no name guesses before it
    assert not out.exists()


def test_problem_size_and_constants_given_make_a_t4_file_train_as_its_cache(tmp_path, cache_file):
    """A T4 file records no problem size: with --problem-size it trains to the same model as
    the cache file of the same run; bad values get one error each and nothing is written."""
    t4 = tmp_path / "run_T4.json.gz"
    t4.write_bytes(gzip.compress(json.dumps(as_t4(make_cache())).encode()))
    models = {}
    for name, args in (("cache", [cache_file]),
                       ("t4", [t4, "--kernel", "conv_kernel_2048x512", "--hardware",
                               "cuda-test-gpu", "--problem-size", "2048x512"])):
        r = run_cli(["train", *args, "--out", tmp_path / name, "--n-train", "60"])
        assert r.returncode == 0 and "taken from the file name" not in r.stderr, r.stderr
        models[name] = json.loads((tmp_path / name / "cuda-test-gpu" / "conv_kernel_2048x512"
                                   / "default.json").read_text())
    assert "grid_blocks" in models["cache"]["complexity"]
    assert models["t4"]["complexity"] == models["cache"]["complexity"]
    assert models["t4"]["train"]["val_mape"] == models["cache"]["train"]["val_mape"]
    df = load_profiles([t4], kernel="k", hardware="h", problem_size="2048x512",
                       constants="filter_height=3;filter_width=15")
    assert kt.space_problem_size(df) == [2048.0, 512.0]
    assert kt.space_constants(df) == {"filter_height": 3.0, "filter_width": 15.0}
    for cmd in ("train", "tune-space", "convert"):
        for bad, message in ((["--problem-size", "2048x"], "--problem-size '2048x'"),
                             (["--problem-size", "0x512"], "--problem-size '0x512'"),
                             (["--constants", "filter_width"], "'filter_width' is not "
                              "name=number"),
                             (["--constants", "1x=3"], "'1x=3' is not name=number")):
            out = tmp_path / f"bad_{cmd}"
            r = run_cli([cmd, cache_file, *bad, *(["--out", out] if cmd == "train" else
                                                  ["-o", out] if cmd == "convert" else [])])
            assert r.returncode == 2 and message in r.stderr, (cmd, bad, r.stderr)
            assert r.stderr.count("\n") == 1 and not out.exists(), r.stderr


class _Overoptimistic:
    """A 'model' that knows each runtime up to a fixed log-normal error per configuration
    (sigma 0.5), whatever it is fitted on: the configurations it ranks fastest are those it
    underestimates most, as with any model that picks from thousands."""

    name = "biased"

    def __init__(self, n: int):
        self.err = np.random.default_rng(7).normal(0.0, 0.5, n)

    def fit(self, c, rows, seed):
        return self

    def predict(self, c, rows):
        return c.y[rows] * np.exp(self.err[rows])


def test_picks_interval_is_calibrated_on_the_guided_rounds_picks(cache_file):
    """The guided search records measured / predicted of what its rounds picked; the
    expected runtime and interval of the final picks come from it. With a model that errs
    low on what it ranks first, the picks run slower than predicted, and the picks' interval
    (not a plain one) accounts for it."""
    from annpred.study import picks as P
    from annpred.study import tunespace as T

    c = T.space_combination(load_profiles([cache_file]))
    model = _Overoptimistic(len(c.y))
    r = T.select_on_space(c, model, budget=120, top=10, seed=1, strategy="guided")
    p = r.picks
    assert p is not None and p["n"] == 120 - 60 and p["nominal"] == P.PICK_COVERAGE
    assert p["lo"] <= p["median"] <= p["hi"]
    assert p["median"] > 0.1  # the rounds' picks ran slower than their prediction
    j = P.judge_picks(r, c.y)
    assert j["over_predicted"] > 1.1  # ... and so do the final ones
    assert 0.85 <= j["over_expected"] <= 1.15  # which the expected runtime corrects
    assert j["picks_covered"] >= 7 and j["net_covered"] is None
    expected, low, high = r.expected(r.top_rows)
    assert np.array_equal(r.cautious, r.predicted)  # every fit predicts the same here
    assert np.allclose(expected, r.predicted[r.top_rows] * np.exp(p["median"]))
    assert np.all(low < expected) and np.all(expected < high)
    # a random draw has no rounds, so no picks to learn from
    assert T.select_on_space(c, model, budget=120, top=10, seed=1).picks is None


class _LastFitDreams(_Overoptimistic):
    """Like :class:`_Overoptimistic`, but the fit on the whole budget predicts one family of
    configurations (shared memory with 1-wide tiles) 8x too fast, as a network that settles
    in a different minimum on its last fit can."""

    def fit(self, c, rows, seed):
        self.last = len(rows) >= 120
        return self

    def predict(self, c, rows):
        p = super().predict(c, rows)
        X = c.X.iloc[rows]
        family = (X["use_shmem"].to_numpy() == 1) & (X["tile_size_x"].to_numpy() == 1)
        return np.where(family & self.last, p / 8, p)


def test_picks_expected_is_cautious_about_a_last_fit_alone(cache_file):
    """The final fit ranks the family it dreams up first (the ranking stays the last fit's),
    but the expected runtime takes the slower of the last two fits' predictions: the picks
    run about as expected, not 8x slower."""
    from annpred.study import picks as P
    from annpred.study import tunespace as T

    c = T.space_combination(load_profiles([cache_file]))
    r = T.select_on_space(c, _LastFitDreams(len(c.y)), budget=120, top=10, seed=1,
                          strategy="guided")
    X = c.X.iloc[r.top_rows]
    assert ((X["use_shmem"] == 1) & (X["tile_size_x"] == 1)).all()
    j = P.judge_picks(r, c.y)
    assert j["over_predicted"] > 5
    assert 0.7 <= j["over_expected"] <= 1.4 and j["picks_covered"] >= 7


def test_pick_interval_needs_enough_picks():
    from annpred.study.picks import pick_interval

    assert pick_interval(np.zeros(10)) is None  # a 90% split-conformal bound needs 19
    r = np.log(np.linspace(0.5, 3.0, 39))
    iv = pick_interval(r)
    assert iv["n"] == 39 and np.isclose(iv["lo"], r[1]) and np.isclose(iv["hi"], r[-2])
    assert np.isclose(iv["median"], r[19])
    assert pick_interval(np.r_[r, np.nan, np.inf])["n"] == 39  # non-finite ratios dropped


def test_tune_space_prints_expected_runtimes_of_the_picks(cache_file):
    out = run_cli(["tune-space", cache_file, "--budget", "120", "--top", "4", "--model",
                   "GBT+C"])
    assert out.returncode == 0, out.stderr
    assert re.search(r"expected = the slower of the last two fits' predictions x \d+\.\d\d, "
                     r"how the 60 configurations the search picked ran", out.stdout)
    rows = re.findall(r"predicted (\S+ \S+), expected (\S+ \S+) \[(\S+ \S+) - (\S+ \S+)\]",
                      out.stdout)
    assert len(rows) == 1 + 4  # the predicted best and the top 4
    assert re.search(r"the picks' interval covers [0-4] of the top 4; they run a median "
                     r"\d+\.\d\dx the expected runtime", out.stdout)
    assert "picked too few" not in out.stdout
    out = run_cli(["tune-space", cache_file, "--budget", "30", "--top", "2", "--model",
                   "GBT+C"])  # 15 picks: no interval, and a note says why
    assert out.returncode == 0 and "picked too few" in out.stdout
    assert ", expected " not in out.stdout


def test_tune_space_product_previous_calibrates_the_picks(tmp_path):
    """A partial run's rounds: --out keeps every prediction; once the suggestions are
    measured, --previous reads them back, and the picks' ratio to their prediction there
    gives the top picks an expected runtime and interval."""
    p, full = _partial(tmp_path, 50)
    out1 = tmp_path / "round1.csv"
    r = run_cli(["tune-space", p, "--space", "product", "--model", "GBT+C", "--next", "30",
                 "--out", out1])
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    i = next(k for k, l in enumerate(lines) if l.startswith("next 30 to measure"))
    part, truth = json.loads(p.read_text()), _truth(full)
    params = ("block_size_x", "block_size_y", "tile_size_x", "tile_size_y", "use_shmem")
    with open(out1) as f:
        then = {tuple(float(row[k]) for k in params): float(row["predicted_s"])
                for row in csv.DictReader(f)}
    ratios = []
    for line in lines[i + 1:i + 31]:  # measure the 30 suggestions
        q = tuple(float(dict(kv.split("=") for kv in line.split()[1:6])[k]) for k in params)
        rec = dict(zip(params, (int(v) for v in q)), filter_width=15)
        part["cache"][",".join(str(rec[k]) for k in part["tune_params_keys"])] = {
            **rec, "time": truth[q] * 1000, "times": [truth[q] * 1000]}
        ratios.append(truth[q] / then[q])
    p.write_text(json.dumps(part))
    r = run_cli(["tune-space", p, "--space", "product", "--model", "GBT+C", "--top", "3",
                 "--previous", out1])
    assert r.returncode == 0, r.stderr
    m = re.search(r"the 30 configurations of \S+ measured since ran a median (\d+\.\d\d)x "
                  r"their prediction there", r.stdout)
    assert m and abs(float(m.group(1)) - np.median(ratios)) < 0.006
    assert len(re.findall(r"expected \S+ \S+ \[\S+ \S+ - \S+ \S+\]", r.stdout)) == 3
    # too few measured since: a note, no interval
    few = tmp_path / "few.csv"
    few.write_text("\n".join(out1.read_text().splitlines()[:5]) + "\n")
    r = run_cli(["tune-space", p, "--space", "product", "--model", "GBT+C", "--previous", few])
    assert r.returncode == 0 and "needs at least 19" in r.stdout and "expected " not in r.stdout
    # bad files: one error each, exit 2
    bad = tmp_path / "bad.csv"
    bad.write_text("rank,block_size_x\n1,16\n")
    r = run_cli(["tune-space", p, "--space", "product", "--previous", bad])
    assert r.returncode == 2 and "bad.csv: no column" in r.stderr and "predicted_s" in r.stderr
    text = out1.read_text().splitlines()
    bad.write_text("\n".join(text[:3] + [text[3].rsplit(",", 1)[0] + ",-1"]) + "\n")
    r = run_cli(["tune-space", p, "--space", "product", "--previous", bad])
    assert r.returncode == 2 and "row 4, column predicted_s" in r.stderr
    r = run_cli(["tune-space", p, "--previous", out1])
    assert r.returncode == 2 and "--previous applies to --space product" in r.stderr
