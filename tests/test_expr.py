import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from annpred.spec import expr
from annpred.errors import ExpressionError


@pytest.mark.parametrize("text,values,expected", [
    ("m*n*k", {"m": 2, "n": 3, "k": 4}, 24),
    ("n**2*k**2", {"n": 3, "k": 2}, 36),
    ("n*log(n, 2)", {"n": 8}, 24),
    ("sqrt(n) + log2(n)", {"n": 16}, 8),
    ("ceiling(n/8)*8", {"n": 9}, 16),
    ("floor(n/8)", {"n": 17}, 2),
    ("max(m, n) - min(m, n)", {"m": 3, "n": 10}, 7),
    ("-n + 2*n", {"n": 5}, 5),
    ("(m*k + k*n + m*n)/1e3", {"m": 10, "n": 10, "k": 10}, 0.3),
    ("n*sopfr(n)", {"n": 12}, 84),
    ("sopfr(n)", {"n": 1024}, 20),
    ("lpf(n)", {"n": 9127}, 9127),
    ("lpf(n) + sopfr(m)", {"n": 360, "m": 1}, 5),
    ("twos(n)", {"n": 96}, 5),  # 96 = 2^5 * 3
    ("twos(n)", {"n": 7}, 0),
    ("twos(n) + twos(m)", {"n": 1, "m": 2**30}, 30),
    ("fftcost(n)", {"n": 1024}, 1024 * 10),  # 4^5: five radix-4 passes at 2 each, n*log2(n)
    ("fftcost(n)", {"n": 60}, 60 * (2 + 3 + 5)),  # 4*3*5: mixed radix
    ("fftcost(n)", {"n": 77}, 77 * 1.1 * (7 + 11)),  # lpf 11 > sqrt(77), radix still cheaper
    # a prime: Bluestein via the smallest 2,3,5,7,11-smooth m >= 2n-1 = 201 (m = 210 =
    # 2*3*5*7), cheaper than the radix-101 plan (101 * 1.1 * 101 = 11221.1)
    ("fftcost(n)", {"n": 101}, 3 * 210 * (2 + 3 + 5 + 1.1 * 7)),
    ("fastlen(n)", {"n": 97}, 100),  # 2^2 * 5^2: the next 2,3,5-smooth length
    ("fastlen(n)", {"n": 1024}, 1024),
    ("fastlen(n) + fastlen(m)", {"n": 1, "m": 2**20 + 1}, 1 + 1049760),  # 2^5*3^8*5
])
def test_evaluates_whitelisted_expressions(text, values, expected):
    got = expr.evaluate(text, {k: np.array([v], float) for k, v in values.items()})
    assert got[0] == pytest.approx(expected)


@pytest.mark.parametrize("text,fragment", [
    ("__import__('os').system('true')", "allowed"),
    ("m.real", "Attribute"),
    ("(lambda: 1)()", "allowed"),
    ("lambda m: m", "Lambda"),
    ("[m for m in n]", "not allowed"),
    ("m if n else k", "IfExp"),
    ("open('f')", "not allowed"),
    ("m*", "syntax error"),
    ("m +* n", "syntax error"),
    ("q * 2", "unknown symbol 'q'"),
    ("'text'", "numbers"),
    ("m // n", "not allowed"),
    ("m % n", "not allowed"),
    ("m < n", "not allowed"),
    ("10**10**10", "exponent"),
    ("log(m, n, k)", "log takes"),
    ("sqrt(m, n)", "takes 1"),
    ("log(x=m)", "keyword"),
    ("", "empty"),
    ("log", "must be called"),
])
def test_rejects_bad_expressions(text, fragment):
    with pytest.raises(ExpressionError) as e:
        expr.parse(text, ["m", "n", "k"])
    assert fragment in str(e.value)


def test_never_executes_code(tmp_path):
    marker = tmp_path / "pwned"
    with pytest.raises(ExpressionError):
        expr.parse(f"__import__('pathlib').Path({str(marker)!r}).touch()", ["m"])
    assert not marker.exists()


def test_nonfinite_result_is_an_error():
    with pytest.raises(ExpressionError, match="not finite"):
        expr.evaluate("log(n - n)", {"n": np.array([1.0, 2.0])})
    # finite as a formula (parse accepts it), not finite on one of these rows: evaluate's
    # own check, not the parser's, must refuse it
    expr.parse("1/(m - n)", ["m", "n"])
    with pytest.raises(ExpressionError, match="not finite"):
        expr.evaluate("1/(m - n)", {"m": np.array([2.0, 3.0]), "n": np.array([2.0, 1.0])})


def test_number_theory_functions_match_brute_force():
    def factors(n):
        out = []
        for p in range(2, n + 1):
            while n % p == 0:
                out.append(p)
                n //= p
        return out
    ns = np.arange(1, 400, dtype=float)
    s = expr.evaluate("sopfr(n)", {"n": ns})
    l = expr.evaluate("lpf(n)", {"n": ns})
    for n, a, b in zip(ns.astype(int), s, l):
        f = factors(n)
        assert a == sum(f) and b == max(f, default=1)


def test_fftcost_is_the_cheaper_plan_and_never_quadratic_in_a_prime():
    ns = np.arange(1, 3000, dtype=float)
    cost = expr.evaluate("fftcost(n)", {"n": ns})
    radix = expr.evaluate("n*sopfr(n)", {"n": ns})
    assert np.all(cost <= 1.1 * radix + 1e-9)
    primes = [p for p in range(1000, 3000) if all(p % q for q in range(2, int(p**0.5) + 1))]
    # Bluestein keeps a prime's cost near 3 * 2n * log2(2n), far below the radix plan's n^2
    for p in primes:
        c = expr.evaluate("fftcost(n)", {"n": np.array([float(p)])})[0]
        assert c < 3 * 4 * p * np.log2(4 * p) * 2 and c < 0.2 * p * p
    assert float(expr.parse("fftcost(1024)")) == 10240.0


def test_fastlen_is_scipys_padded_real_fft_length():
    """fastlen(n) is the length scipy pads a real FFT to (scipy.fft.next_fast_len(n, real=True)),
    the smallest 2,3,5-smooth integer >= n, in sympy and numpy alike."""
    sp_fft = pytest.importorskip("scipy.fft")
    ns = np.concatenate([np.arange(1, 4000), [2**31 - 1, 1_000_003, 387_420_490]]).astype(float)
    got = expr.evaluate("fastlen(n)", {"n": ns})
    assert np.array_equal(got, [sp_fft.next_fast_len(int(n), True) for n in ns])
    assert float(expr.parse("fastlen(7)")) == 8.0
    assert float(expr.parse("fastlen(1048577)")) == 1049760


def test_twos_divides_exactly():
    ns = np.arange(1, 5000, dtype=float)
    t = expr.evaluate("twos(n)", {"n": ns}).astype(int)
    assert np.all(ns % 2.0**t == 0) and np.all(ns % 2.0**(t + 1) != 0)
    assert float(expr.parse("twos(3145728)")) == 20.0  # 3 * 2^20


def test_c_code_of_expression():
    code = expr.to_c("ceiling(n/8)*8 + max(m, n)")
    assert "ceil" in code and "fmax" in code


names = st.sampled_from(["m", "n", "k"])
leaf = st.one_of(names, st.integers(1, 9).map(str))


def _combine(children):
    return st.one_of(
        st.tuples(children, st.sampled_from(["+", "*", "/"]), children).map(
            lambda t: f"({t[0]} {t[1]} {t[2]})"),
        st.tuples(st.sampled_from(["sqrt", "log", "ceiling", "floor"]), children).map(
            lambda t: f"{t[0]}({t[1]} + 1)"),
        st.tuples(children, st.integers(1, 3)).map(lambda t: f"({t[0]})**{t[1]}"),
    )


@settings(max_examples=60, deadline=None)
@given(st.recursive(leaf, _combine, max_leaves=6))
def test_generated_arithmetic_matches_python_math(text):
    vals = {"m": 3.0, "n": 5.0, "k": 7.0}
    got = float(expr.evaluate(text, {k: np.array([v]) for k, v in vals.items()})[0])
    py = text.replace("sqrt", "math.sqrt").replace("log", "math.log").replace(
        "ceiling", "math.ceil").replace("floor", "math.floor")
    want = eval(py, {"math": math}, dict(vals))  # test oracle only, on generated text
    assert got == pytest.approx(want, rel=1e-9)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=40))
def test_arbitrary_text_parses_or_raises_expression_error(text):
    try:
        e = expr.parse(text, ["m", "n", "k"])
    except ExpressionError:
        return
    assert {str(s) for s in e.free_symbols} <= {"m", "n", "k"}


def test_within_bounds_matches_what_parse_accepts():
    from annpred.spec.expr import MAX_LENGTH, within_bounds

    assert within_bounds("m*n*k + ceiling(m/8)")
    assert not within_bounds("m" * (MAX_LENGTH + 1))
    with pytest.raises(ExpressionError, match=f"longer than {MAX_LENGTH}"):
        expr.parse("m" * (MAX_LENGTH + 1))
    deep = "(" * 150 + "m" + ")*2" * 150
    assert not within_bounds(deep)
    with pytest.raises(ExpressionError):
        expr.parse(deep)

    def accepted(text):
        try:
            expr.parse(text)
            return True
        except ExpressionError:
            return False
    # around the nesting limit, one level at a time: both agree on every depth
    verdicts = [(within_bounds("-" * k + "m"), accepted("-" * k + "m")) for k in range(90, 106)]
    assert all(a == b for a, b in verdicts), verdicts
    assert verdicts[0] == (True, True) and verdicts[-1] == (False, False)
