"""Mutation-found gaps in the expression parser's whitelist (annpred.spec.expr): each test
pins one refusal or result that no other test pinned."""
import numpy as np
import pytest

from annpred.errors import ExpressionError
from annpred.spec import expr


@pytest.mark.parametrize("text", ["m*True", "False + m", "m**True"])
def test_booleans_are_not_numeric_constants(text):
    """``True`` is an int to Python; the whitelist still refuses it as a constant."""
    with pytest.raises(ExpressionError, match="only numbers are allowed as constants"):
        expr.parse(text, ["m"])


def test_a_long_name_is_refused_by_length_not_accepted_as_a_symbol():
    """Without a symbol list any identifier is a symbol; the length bound still holds."""
    name = "m" * (expr.MAX_LENGTH + 5)
    with pytest.raises(ExpressionError, match="longer than"):
        expr.parse(name)
    assert not expr.within_bounds(name)


def test_evaluate_refuses_a_row_where_the_formula_divides_by_zero():
    values = {"m": np.array([4.0, 5.0, 6.0]), "n": np.array([1.0, 5.0, 2.0])}
    with pytest.raises(ExpressionError, match="not finite for some inputs"):
        expr.evaluate("m/(m - n)", values)
    # the same formula on rows where it is finite: one value per row, exact
    ok = expr.evaluate("m/(m - n)", {"m": np.array([4.0, 6.0]), "n": np.array([2.0, 3.0])})
    assert ok.tolist() == [2.0, 2.0]
