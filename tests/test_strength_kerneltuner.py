"""Mutation-found gaps in the Kernel Tuner cache reader (annpred.data.kerneltuner): a cache
small enough that every row's runtime, spread, repeats and minimum are computed by hand."""
import json
import math

import pytest

from annpred.data import kerneltuner as kt
from annpred.errors import DataError, ParameterError

IQR = 1.349  # interquartile range of a standard normal: the robust spread's divisor


def _cache(records, keys=("x", "y", "z"), tune=None):
    return {"device_name": "NVIDIA Hand GPU", "kernel_name": "hand", "problem_size": [64],
            "tune_params_keys": list(keys),
            "tune_params": tune or {"x": [1, 2, 3], "y": [1, 2, 3], "z": [7]},
            "cache": records}


def _rec(x, y, time, times=None):
    r = {"x": x, "y": y, "z": 7, "time": time}
    if times is not None:
        r["times"] = times
    return r


RECORDS = {
    "1,1,7": _rec(1, 1, 2.0, [1.0, 2.0, 3.0, 4.0, 5.0]),  # quartiles 2 and 4, median 3
    "2,1,7": _rec(2, 1, 4.0, [4.0]),                      # one repeat: no spread
    "1,2,7": _rec(1, 2, 3.0, [2.0, 4.0]),                 # two: quartiles 2.5 and 3.5
    "2,2,7": _rec(2, 2, 5.0),                             # no repeats recorded
    "3,3,7": _rec(3, 3, "RuntimeFailedConfig"),
}


@pytest.fixture
def cache(tmp_path):
    p = tmp_path / "hand.json"
    p.write_text(json.dumps(_cache(dict(RECORDS))))
    return kt.read_cache(p)


def test_rows_by_hand(cache):
    rows = {(r["x"], r["y"]): r for r in cache.rows}
    assert set(rows) == {(1, 1), (2, 1), (1, 2), (2, 2)}
    assert [rows[k]["runtime_s"] for k in [(1, 1), (2, 1), (1, 2), (2, 2)]] == \
        pytest.approx([0.002, 0.004, 0.003, 0.005])
    assert rows[(1, 1)]["runtime_cv"] == pytest.approx((4.0 - 2.0) / IQR / 3.0)
    assert rows[(1, 2)]["runtime_cv"] == pytest.approx((3.5 - 2.5) / IQR / 3.0)
    assert rows[(2, 1)]["runtime_cv"] == 0.0
    assert math.isnan(rows[(2, 2)]["runtime_cv"])
    assert [rows[k]["repeats"] for k in [(1, 1), (2, 1), (1, 2), (2, 2)]] == [5, 1, 2, 1]
    # the fastest repeat, not the slowest; without repeats the time itself
    assert [rows[k]["runtime_min_s"] for k in [(1, 1), (2, 1), (1, 2), (2, 2)]] == \
        pytest.approx([0.001, 0.004, 0.002, 0.005])


def test_two_valued_parameters_are_features_and_one_valued_ones_constants(cache):
    assert cache.params == ["x", "y"] and cache.constants == {"z": 7.0}
    assert cache.n_failed == 1 and cache.failed_rows == [{"x": 3.0, "y": 3.0, "z": 7.0}]
    assert cache.hardware == "cuda-hand-gpu"


def test_a_single_configuration_keeps_its_parameters_as_features(tmp_path):
    p = tmp_path / "one.json"
    p.write_text(json.dumps(_cache({"1,1,7": _rec(1, 1, 2.0, [2.0])})))
    c = kt.read_cache(p)
    assert c.params == ["x", "y", "z"] and c.constants == {}


@pytest.mark.parametrize("bad", [0, 0.0, -1.0])
def test_a_time_that_is_not_positive_is_refused(tmp_path, bad):
    p = tmp_path / "zero.json"
    p.write_text(json.dumps(_cache({**RECORDS, "1,3,7": _rec(1, 3, bad)})))
    with pytest.raises(DataError, match="is not a positive number"):
        kt.read_cache(p)


def test_product_space_limit_is_inclusive_and_failures_count_once(cache):
    # x and y vary over 1..3 in tune_params: 9 configurations, one of them failed
    full = kt.product_space(cache, limit=9)
    assert full.n_product == 9 and full.n_failed == 1 and full.size == 8
    with pytest.raises(ParameterError, match="more than 8"):
        kt.product_space(cache, limit=8)
    # a restriction that removes the failed configuration: it is not counted as failed too
    r = kt.product_space(cache, ["x + y < 6"])
    assert (r.n_restricted, r.n_failed, r.size) == (1, 0, 8)


@pytest.mark.parametrize("size", [[], [64, 64, 64, 64], [0], [0.5, 64]])
def test_problem_sizes_outside_one_to_three_dims_of_at_least_one_are_refused(tmp_path, size):
    doc = _cache(dict(RECORDS))
    doc["problem_size"] = size
    p = tmp_path / "ps.json"
    p.write_text(json.dumps(doc))
    if size == []:  # no problem size at all is allowed: the kernel id has none
        assert kt.read_cache(p).kernel == "hand"
        return
    with pytest.raises(DataError, match="problem_size"):
        kt.read_cache(p)
