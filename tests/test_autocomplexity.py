"""complexity="auto": candidates from columns and structure, chosen on training data only."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone

from annpred import AugmentedNNRegressor
from annpred.model import autocomplexity as A


def test_structure_candidates_from_kernel_tuner_names():
    s = A.structure_candidates(["block_size_x", "block_size_y", "tile_size_x", "other"],
                               [4096, 1024])
    assert s["threads"] == "block_size_x*block_size_y"
    assert s["grid_blocks"] == ("(ceiling(4096/(block_size_x*tile_size_x)))"
                                "*(ceiling(1024/(block_size_y)))")
    assert "warp_eff32" in s and "padding" in s
    assert A.structure_candidates(["m", "n"]) == {}
    d = A.default_structure(["block_size_x", "block_size_y", "tile_size_x"], [4096, 1024])
    assert list(d) == ["ragged", "guarded_work", "grid_blocks", "threads"]


_CONV = ["block_size_x", "block_size_y", "tile_size_x", "tile_size_y"]


def _eval(text, **v):
    cols = {k: np.array([float(x)]) for k, x in v.items()}
    return float(A.feature_matrix(cols, list(cols), [text])[0, -1])


def test_ragged_is_any_partial_block_and_guards_the_tile_work():
    s = A.structure_candidates(_CONV, [4096, 4096])
    v = dict(block_size_x=32, block_size_y=4, tile_size_x=2, tile_size_y=1)
    assert _eval(s["ragged"], **v) == 0 and _eval(s["guarded_work"], **v) == 1
    v = dict(block_size_x=48, block_size_y=4, tile_size_x=1, tile_size_y=1)  # x partial
    assert _eval(s["ragged"], **v) == 1 and _eval(s["guarded_work"], **v) == 1
    v = dict(block_size_x=32, block_size_y=4, tile_size_x=2, tile_size_y=3)  # y partial
    assert _eval(s["ragged"], **v) == 1 and _eval(s["guarded_work"], **v) == 6
    # lanes of a warp (32) or wavefront (64) used along x
    assert _eval(s["warp_eff_x32"], block_size_x=48) == pytest.approx(0.75)
    assert _eval(s["warp_eff_x64"], block_size_x=128) == 1
    # one dimension only: ragged is that dimension's indicator
    one = A.structure_candidates(["block_size_x", "tile_size_x"], [1000])
    assert one["ragged"] == one["ragged_x"]


def test_stencil_halo_from_constant_or_parameter_filter_size():
    assert "halo_ratio" not in A.structure_candidates(_CONV, [4096, 4096])
    s = A.structure_candidates(_CONV, [4096, 4096], {"filter_width": 15, "filter_height": 5})
    v = dict(block_size_x=16, block_size_y=2, tile_size_x=2, tile_size_y=1)
    assert _eval(s["halo_words"], **v) == (32 + 14) * (2 + 4)
    assert _eval(s["halo_ratio"], **v) == pytest.approx((32 + 14) * (2 + 4) / (32 * 2))
    p = A.structure_candidates(_CONV + ["filter_width"], [4096, 4096])  # a tuned filter
    assert _eval(p["halo_words"], filter_width=3, **v) == 32 + 2
    d = A.default_structure(_CONV, [4096, 4096], {"filter_width": 15, "filter_height": 15})
    assert list(d) == ["ragged", "guarded_work", "grid_blocks", "halo_ratio", "threads"]


def test_default_structure_leaves_out_what_the_data_does_not_vary():
    cols = {"block_size_x": np.array([32., 64, 128]), "block_size_y": np.array([1., 2, 4]),
            "tile_size_x": np.array([1., 2, 4]), "tile_size_y": np.array([1., 1, 2])}
    d = A.default_structure(_CONV, [4096, 4096], columns=cols)  # every block divides 4096
    assert "ragged" not in d and "guarded_work" not in d and "grid_blocks" in d


def _jumps(n=250, seed=0):
    """Runtimes that jump 8x on a flag and follow a power law otherwise."""
    rng = np.random.default_rng(seed)
    a = rng.uniform(1, 100, n)
    f = rng.integers(0, 2, n).astype(float)
    y = 1e-3 * a ** 0.5 * np.where(f > 0, 8.0, 1.0) * (1 + 0.01 * rng.standard_normal(n))
    return pd.DataFrame({"a": a, "f": f}), y


def test_loss_auto_keeps_the_loss_with_the_lower_validation_error():
    X, y = _jumps()
    fits = {loss: AugmentedNNRegressor(loss=loss, seed=0, select_complexity=False).fit(X, y)
            for loss in ("huber", "mse", "mape", "auto")}
    assert fits["auto"].loss_ in ("huber", "mse", "mape")
    assert all(fits[k].loss_ == k for k in ("huber", "mse", "mape"))
    assert fits["auto"].val_mape_ == pytest.approx(
        min(fits[k].val_mape_ for k in ("huber", "mse", "mape")))
    assert fits["auto"].get_params()["loss"] == "auto"


def test_mape_loss_lowers_the_relative_error_where_much_is_unexplained():
    """With log-normal noise the MAPE-optimal prediction sits below the median: the
    ``mape`` loss (started from the ``mse`` fit) must find it, on held-out rows too."""
    rng = np.random.default_rng(3)
    a = rng.uniform(1, 100, 600)
    y = 1e-3 * a * np.exp(0.8 * rng.standard_normal(600))
    X = pd.DataFrame({"a": a})
    fits = {loss: AugmentedNNRegressor(loss=loss, seed=0).fit(X[:300], y[:300])
            for loss in ("mse", "mape")}
    assert fits["mape"].val_mape_ <= fits["mse"].val_mape_ + 1e-9
    held = {k: np.mean(np.abs(m.predict(X[300:]) - y[300:]) / y[300:]) for k, m in fits.items()}
    assert held["mape"] < 0.85 * held["mse"]
    assert np.median(fits["mape"].predict(X[300:]) / (1e-3 * a[300:])) < 0.8


def test_candidates_drop_constant_duplicate_and_invalid():
    cols = {"m": np.array([9., 16, 33, 64]), "bm": np.array([4., 4, 8, 8]),
            "flag": np.array([0., 1, 0, 1])}
    c = A.candidates(cols, ["m", "bm", "flag"], base={"main": "m*bm"})
    assert c["catalog_main"] == "m*bm"
    assert "ceiling(m/bm)" in c.values()
    assert not any("flag" in t for t in c.values())  # not size-like
    texts = list(c.values())
    assert len(texts) == len(set(texts))
    vals = [A.feature_matrix(cols, ["m", "bm", "flag"], [t])[:, -1] for t in texts]
    assert all(np.ptp(v) > 0 for v in vals)


def _tiled(n=240, seed=0):
    """Runtime = number of tiles (a step function of m over the tile bm) + noise."""
    rng = np.random.default_rng(seed)
    m = rng.integers(16, 2048, n).astype(float)
    bm = rng.choice([64.0, 96.0, 256.0, 384.0], n)
    y = 1e-6 * np.ceil(m / bm) ** 1.5 * (1 + 0.005 * rng.standard_normal(n))
    return pd.DataFrame({"m": m, "bm": bm}), y


def test_auto_finds_the_step_feature_and_beats_the_plain_network():
    X, y = _tiled()
    Xt, yt = _tiled(400, seed=1)
    auto = AugmentedNNRegressor(complexity="auto", seed=0).fit(X, y)
    plain = AugmentedNNRegressor(seed=0).fit(X, y)
    assert any("ceiling(m/bm)" in t for t in auto.complexity_.values()), auto.complexity_
    assert auto.auto_log_[0]["tried"] == "(start)"
    assert all(k in auto.features_ for k in auto.complexity_)
    err = lambda m: np.mean(np.abs(m.predict(Xt) - yt) / yt)
    assert err(auto) < 0.7 * err(plain)
    # stored in the model file and restored with the same predictions
    d = auto.to_dict("tiles", "v", "cpu-x-t1")
    assert d["complexity"] == auto.complexity_ and d["train"]["auto_complexity"]
    back = AugmentedNNRegressor.from_dict(d)
    assert np.allclose(back.predict(Xt), auto.predict(Xt))


def test_edge_candidates_only_for_integer_sizes_off_the_group():
    cols = {"n": np.array([5., 8, 13, 64]), "b": np.array([4., 8, 16, 32]),
            "x": np.array([0.5, 1.5, 2.5, 3.5])}
    c = A.edge_candidates(cols, ["n", "b", "x"])
    # b is always a multiple of 4 (not of 8: 4), x is not an integer
    assert list(c) == ["edge4(n)", "bin8(n)", "bin16(n)", "bin8(b)", "bin16(b)"]
    # a tuning parameter named like a block gets the groups of 4, not the GEMM edges
    assert list(A.edge_candidates({"block_size_y": np.array([1., 2, 3, 16])},
                                  ["block_size_y"])) == ["edge4(block_size_y)"]
    got = A.feature_matrix(cols, ["n", "b", "x"], [c["edge4(n)"]])[:, -1]
    assert np.allclose(got, [(1 + 1) / 5, 2 / 8, (3 + 1) / 13, 16 / 64])
    got = A.feature_matrix(cols, ["n", "b", "x"], [c["bin16(n)"]])[:, -1]
    # 5 = 4 + 1, 8, 13 = 8 + 4 + 1, 64 = 4 x 16: the set bits below 16, plus whole blocks
    assert np.allclose(got, [2 / 5, 1 / 8, 3 / 13, 4 / 64])
    # sizes from 53 up leave the ratio in 0.25-0.29: no candidate (it would extrapolate)
    assert A.edge_candidates({"n": np.array([53., 61, 99, 4001])}, ["n"]) == {}


def _edged(n=300, seed=0, binary=False):
    """A product whose columns run in groups of 4 and the remainder one by one, or (binary)
    in blocks of 16 and the rest in chunks of 8, 4, 2, 1."""
    rng = np.random.default_rng(seed)
    m, k, c = (rng.integers(8, 512, n).astype(float) for _ in range(3))
    passes = (c - sum(np.floor(c / b) for b in (2, 4, 8, 16)) if binary
              else np.floor(c / 4) + c % 4)
    y = 1e-9 * m * k * passes * (1 + 0.005 * rng.standard_normal(n))
    return pd.DataFrame({"m": m, "k": k, "c": c}), y


@pytest.mark.parametrize("binary, term", [(False, "floor(c/4)"), (True, "floor(c/16)")])
def test_auto_finds_the_edge_passes(binary, term):
    X, y = _edged(binary=binary)
    Xt, yt = _edged(400, seed=1, binary=binary)
    auto = AugmentedNNRegressor(complexity="auto", base_complexity={"flops": "m*k*c"},
                                seed=0).fit(X, y)
    plain = AugmentedNNRegressor(complexity={"flops": "m*k*c"}, seed=0).fit(X, y)
    assert any(term in t for t in auto.complexity_.values()), auto.complexity_
    err = lambda m: np.mean(np.abs(m.predict(Xt) - yt) / yt)
    assert err(auto) < 0.5 * err(plain)


def test_auto_keeps_the_base_and_is_a_clonable_parameter():
    X, y = _tiled(120)
    est = AugmentedNNRegressor(complexity="auto", base_complexity={"tiles": "m/bm"},
                               max_epochs=60, n_init=1)
    assert clone(est).get_params()["complexity"] == "auto"
    est.fit(X, y)
    assert est.complexity_.get("tiles") == "m/bm" or \
        list(est.complexity_) == ["tiles"][:len(est.complexity_)]
    assert est.n_params_ < 75


def test_auto_with_too_few_rows_keeps_the_base():
    X, y = _tiled(12)
    est = AugmentedNNRegressor(complexity="auto", max_epochs=30, n_init=1).fit(X, y)
    assert est.complexity_ == {}
    assert "too few" in est.auto_log_[0]["tried"]


def test_auto_edges_study_compares_both_candidate_sets(tmp_path, capsys):
    from conftest import experiment_script

    mod = experiment_script("auto_edges")
    assert mod.main(["--profiles", "no-such-machine"]) == 2
    assert "no matmul profiles" in capsys.readouterr().err
    before = A.BINARY_BLOCKS
    out = tmp_path / "edges.csv"
    assert mod.main(["--profiles", "cpu-amd-epyc-t1", "--seeds", "1", "--out", str(out)]) == 0
    assert A.BINARY_BLOCKS == before  # the library's candidates are restored
    rows = pd.read_csv(out)
    assert sorted(rows["candidates"].unique()) == ["edge4 + binary", "edge4 only"]
    assert len(rows) == 4 and (rows["mape"] > 0).all() and (rows["n_test"] > 0).all()
