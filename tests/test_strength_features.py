"""Mutation-found gaps in the network's input matrix (annpred.model.features): the missing
column error and the non-finite feature error's count and names."""
import numpy as np
import pytest

from annpred.errors import DataError
from annpred.model.features import feature_matrix, finite_features


def test_a_missing_parameter_column_is_one_data_error_naming_it():
    with pytest.raises(DataError, match=r"missing feature column\(s\): n, k$"):
        feature_matrix({"m": np.array([1.0, 2.0])}, ["m", "n", "k"], {"work": "m*n*k"})


def test_feature_matrix_by_hand():
    F = feature_matrix({"m": np.array([2.0, 3.0]), "n": np.array([5.0, 7.0])}, ["m", "n"],
                       {"work": "m*n", "const": "4"})
    assert F.tolist() == [[2.0, 5.0, 10.0, 4.0], [3.0, 7.0, 21.0, 4.0]]


def test_non_finite_feature_names_the_expression_and_counts_the_other_rows():
    cols = {"m": np.array([5.0, 4.0, 6.0, 4.0, 4.0]), "n": np.ones(5)}
    with pytest.raises(DataError) as e:
        finite_features(cols, ["m", "n"], {"work": "1/(m-4)"})
    msg = str(e.value)
    assert msg.startswith("feature 'work' = 1/(m-4) is inf (not finite) on fitted row 1 "
                          "(m=4, n=1) and 2 more;"), msg


def test_non_finite_parameter_is_named_as_a_parameter_with_no_other_rows():
    cols = {"m": np.array([5.0, np.nan, 6.0]), "n": np.ones(3)}
    with pytest.raises(DataError) as e:
        finite_features(cols, ["m", "n"], {"work": "m*n"})
    assert str(e.value).startswith("parameter 'm' is nan (not finite) on fitted row 1 "
                                   "(m=nan, n=1) and 0 more;"), str(e.value)
