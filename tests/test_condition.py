"""Conditions on tuning parameters (Kernel Tuner restrictions): whitelist parsing, vectorised
evaluation with Python's semantics, one ExpressionError for anything else."""
import numpy as np
import pytest

from annpred.errors import ExpressionError
from annpred.spec.condition import evaluate_condition

COLS = {"bx": np.array([16.0, 32, 48, 64, 128]), "by": np.array([1.0, 8, 16, 2, 4]),
        "shm": np.array([0.0, 1, 1, 0, 1])}

CASES = [
    "bx*by <= 256",
    "bx % 32 == 0 or shm",
    "not shm and bx >= 32",
    "1 < by < 16",
    "bx in (16, 64) and by not in [8]",
    "max(bx, by*8) >= 64",
    "min(bx, 40) == 40 or abs(-by) == 1",
    "(bx // 3) * 3 != bx",
    "bx / 16 ** 2 < 0.3",
    "-bx + 2 * by > -100",
    "shm",
    "True",
]


@pytest.mark.parametrize("text", CASES)
def test_condition_matches_python_row_by_row(text):
    """Each row's value is what Python gives for the same text with the row's values."""
    got = evaluate_condition(text, COLS)
    assert got.dtype == bool and got.shape == (5,)
    for i in range(5):
        row = {k: float(v[i]) for k, v in COLS.items()}
        # the reference: Python itself on our own fixed texts (never user text)
        want = bool(eval(text, {"__builtins__": {}, "max": max, "min": min, "abs": abs}, row))
        assert got[i] == want, (text, row)


REFUSED = {
    "syntax": "bx <",
    "unknown name": "foo > 1",
    "builtin": "__import__('os').system('true')",
    "attribute": "bx.real > 1",
    "subscript": "bx[0] > 1",
    "string": "bx == 'a'",
    "in a name": "bx in by",
    "in strings": "bx in ('a',)",
    "conditional": "bx if by else shm",
    "lambda": "(lambda: 1)()",
    "comprehension": "[x for x in (1, 2)]",
    "keyword": "max(bx, key=by)",
    "other call": "len(bx)",
    "bare function": "max",
    "walrus": "(x := 1)",
    "huge constant": "bx < 1" + "0" * 400,
    "too deep": "-" * 150 + "bx > 1",
    "empty": "  ",
}


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_condition_refuses_with_one_clear_error(name):
    with pytest.raises(ExpressionError) as e:
        evaluate_condition(REFUSED[name], COLS)
    assert "restriction" in str(e.value)


def test_division_by_zero_is_not_satisfied():
    got = evaluate_condition("bx / (by - 1) > 1", COLS)
    assert not got[0] and got[1]  # by == 1: undefined, so the configuration is left out


def test_short_circuit_guards_as_in_python():
    """`by == 1 or bx / (by - 1) > 1`: Python never divides by zero on the row where by == 1;
    neither do we (the row is kept)."""
    got = evaluate_condition("by == 1 or bx / (by - 1) > 1", COLS)
    assert got.tolist() == [True, True, True, True, True]
    got = evaluate_condition("by != 1 and bx / (by - 1) > 5", COLS)
    assert got.tolist() == [False, False, False, True, True]
