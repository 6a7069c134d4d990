"""Issue 11, findings 2 and 3 (expressions): bounded cost, every failure an ExpressionError,
validation cached per file content."""
import json
import random
import sys
from pathlib import Path

import numpy as np
import pytest

from annpred.errors import ExpressionError
from annpred.model import schema
from annpred.spec import expr

# appended, not prepended: experiments/halide.py must not shadow the halide package
sys.path.append(str(Path(__file__).resolve().parent.parent / "experiments"))
from fuzz import make_model  # noqa: E402

REFUSED = {
    # finding 2: cost
    "sopfr of a 16-digit prime": "sopfr(9007199254740881)",
    "83 factorings": "+".join(["sopfr(9007199254740881)"] * 83),
    "max of 300 args": "max(" + ",".join(f"m*{i}+n" for i in range(300)) + ")",
    "max of 17 args": "max(" + ",".join(f"m+{i}" for i in range(17)) + ")",
    "lpf of a huge constant": "lpf(2**60)",
    # finding 3: tracebacks
    "400 zeros": "m*1" + "0" * 400,
    "complex exponent": "m**sqrt(-1)",
    "infinite exponent": "m**(1/0)",
    "complex base": "sqrt(-1)**2",
    "200-deep tower": "m**" * 200 + "m",
    "350-deep tower": "m**" * 350 + "m",
    "400-deep parentheses": "(" * 400 + "m" + ")" * 400,
    "deep unary minus": "-" * 500 + "m",
    "float overflow": "1e400*m",
    "huge float": "1e300*m",
    "log of zero": "log(0)*m",
    "too long": "m+" * 1001 + "m",
}


@pytest.mark.parametrize("name", list(REFUSED))
def test_costly_or_broken_expressions_are_expression_errors(name):
    with pytest.raises(ExpressionError):
        expr.parse(REFUSED[name], ["m", "n"])


def test_bounded_expressions_still_work():
    text = "max(" + ",".join(f"m+{i}" for i in range(16)) + ")"
    assert expr.evaluate(text, {"m": np.array([1.0])})[0] == 16
    assert expr.evaluate("sopfr(m)*lpf(m)", {"m": np.array([12.0, 97.0])}).tolist() == \
        [7 * 3, 97 * 97]
    assert float(expr.parse("sopfr(2147483647)")) == 2147483647  # a prime at the bound
    assert expr.evaluate("m*1e18", {"m": np.array([1.0])})[0] == 1e18


def test_integer_functions_refuse_huge_values_at_evaluation():
    with pytest.raises(ExpressionError, match="sopfr"):
        expr.evaluate("sopfr(m)", {"m": np.array([12.0, 2.0**60])})


def test_model_file_validation_is_cached_by_content(tmp_path, monkeypatch):
    d = make_model(random.Random(0), ["m", "n"], {"work": "m*n*sopfr(m)"})
    p = tmp_path / "m.json"
    p.write_text(json.dumps(d))
    first = schema.load_model(p)
    calls = []
    monkeypatch.setattr(schema, "validate", lambda *a, **k: calls.append(1) or a[0])
    again = schema.load_model(p)
    assert calls == [] and again == first and again is not first
    again["kernel"] = "changed"  # a caller's change does not leak into the cache
    assert schema.load_model(p)["kernel"] == "kern"
    d["variant"] = "other"  # new content is validated
    p.write_text(json.dumps(d))
    schema.load_model(p)
    assert calls == [1]


def test_model_with_a_stalling_expression_is_refused(tmp_path):
    d = make_model(random.Random(0), ["m", "n"], {"work": "+".join(
        ["sopfr(9007199254740881)"] * 20) + "+m"})
    p = tmp_path / "m.json"
    p.write_text(json.dumps(d))
    with pytest.raises(schema.ModelFormatError, match="sopfr"):
        schema.load_model(p)


def test_a_complexity_that_overflows_names_itself_and_the_row():
    import numpy as np

    from annpred import AugmentedNNRegressor
    from annpred.errors import DataError

    X = np.array([[float(m), 3.0] for m in range(10, 40)])
    y = X[:, 0] * 1e-6
    est = AugmentedNNRegressor(feature_names=["m", "n"], complexity="exp(m*30)", max_epochs=5,
                               n_init=1)
    with pytest.raises(DataError, match=r"feature 'complexity' = exp\(m\*30\) is inf "
                                        r"\(not finite\) on fitted row \d+ \(m=\d+, n=3\)"):
        est.fit(X, y)
