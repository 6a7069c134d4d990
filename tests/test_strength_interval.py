"""Mutation-found gaps in the split-conformal interval (annpred.model.interval): the ranks,
bounds and row counts are checked against their definitions, computed here by brute force."""
import math

import numpy as np
import pytest

from annpred.errors import DataError
from annpred.model.interval import (MIN_SPLIT_ROWS, conformal_interval, min_residuals,
                                    min_training_rows)


@pytest.mark.parametrize("n,coverage,lo,hi", [
    (19, 0.9, 1, 19),   # floor(20*0.05) = 1, ceil(20*0.95) = 19: the extremes
    (50, 0.9, 2, 49),   # floor(51*0.05) = 2, ceil(51*0.95) = 49
    (99, 0.8, 10, 90),  # floor(100*0.1) = 10, ceil(100*0.9) = 90
    (39, 0.95, 1, 39),
])
def test_bounds_are_the_ranked_residuals_of_unsorted_input(n, coverage, lo, hi):
    residuals = np.random.default_rng(n).permutation(np.arange(1.0, n + 1))  # k-th smallest is k
    iv = conformal_interval(residuals, coverage)
    assert iv["lo"] == lo and iv["hi"] == hi, iv
    assert iv["n"] == n and iv["nominal"] == coverage


@pytest.mark.parametrize("coverage", [0.0, 1.0, -0.1, 1.5, float("nan")])
def test_coverage_outside_the_open_unit_interval_is_refused(coverage):
    with pytest.raises(DataError, match="coverage must be in"):
        conformal_interval(np.arange(100.0), coverage)


def test_too_few_residuals_give_no_interval_at_the_boundary():
    for coverage in (0.8, 0.9, 0.95):
        n = min_residuals(coverage)
        assert conformal_interval(np.arange(float(n)), coverage) is not None
        assert conformal_interval(np.arange(float(n - 1)), coverage) is None
    assert conformal_interval(np.array([]), 0.5) is None


@pytest.mark.parametrize("coverage", [0.5, 0.8, 0.9, 0.95])
@pytest.mark.parametrize("fraction", [0.1, 0.2, 0.25, 0.5, 0.9])
def test_min_training_rows_is_the_fewest_rows_by_its_definition(coverage, fraction):
    """At least MIN_SPLIT_ROWS rows and round(rows * fraction) >= min_residuals: the fewest."""
    need = min_residuals(coverage)
    want = next(r for r in range(MIN_SPLIT_ROWS, 10_000) if int(round(r * fraction)) >= need)
    assert min_training_rows(coverage, fraction) == want


def test_min_residuals_is_the_fewest_by_brute_force():
    for coverage in (0.5, 0.6, 0.8, 0.9, 0.95, 0.99):
        a = 1 - coverage
        ok = [n for n in range(1, 500)
              if math.floor((n + 1) * a / 2 + 1e-9) >= 1 and math.ceil((n + 1) * (1 - a / 2)
                                                                       - 1e-9) <= n]
        assert min_residuals(coverage) == ok[0], coverage
