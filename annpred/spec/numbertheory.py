"""Integer functions of complexity expressions: ``sopfr``, ``lpf``, ``twos``, ``fftcost`` and
``fastlen``.

Each exists three times, kept together here: as a sympy function (exact on numbers, symbolic
otherwise), as a cached numpy function (for ``lambdify``) and as C code (for exported
headers). Arguments are rounded to integers and bounded by ``MAX_FACTOR_INT`` (trial
division stays fast).
"""
from __future__ import annotations

import functools
import math
from typing import Callable

import numpy as np
import sympy as sp

from annpred.errors import ExpressionError

MAX_FACTOR_INT = 2**31  # sopfr/lpf/twos/fftcost/fastlen take integers up to this (trial division)


def _factor(n: int) -> list[int]:
    out, p = [], 2
    while p * p <= n:
        while n % p == 0:
            out.append(p)
            n //= p
        p += 1 if p == 2 else 2
    if n > 1:
        out.append(n)
    return out


def _int_arg(x, name: str) -> int:
    v = float(x)
    if not math.isfinite(v) or abs(v) > MAX_FACTOR_INT:
        raise ExpressionError(f"{name} takes integers up to {MAX_FACTOR_INT}, got {v:g}")
    return max(int(round(v)), 1)


class sopfr(sp.Function):
    """Sum of the prime factors of round(n), with repetition (sopfr(12) = 2+2+3 = 7).

    The arithmetic cost of a mixed-radix FFT of length n is proportional to n*sopfr(n)."""

    is_real = True

    @classmethod
    def eval(cls, n):
        if n.is_Number:
            return sp.Integer(sum(_factor(_int_arg(n, "sopfr"))))


class lpf(sp.Function):
    """Largest prime factor of round(n) (1 for n <= 1)."""

    is_real = True

    @classmethod
    def eval(cls, n):
        if n.is_Number:
            return sp.Integer(max(_factor(_int_arg(n, "lpf")), default=1))


def _twos(n: int) -> int:
    return (n & -n).bit_length() - 1 if n > 0 else 0


class twos(sp.Function):
    """Exponent of 2 in round(n): how many times n halves evenly (twos(12) = 2, twos(7) = 0).

    FFT libraries run the power-of-two factor of a length in their best-vectorised radix-2^k
    passes (MKL, behind torch's CPU FFT, is 1.3-2.5x slower than pocketfft on odd lengths
    and on par from 2^2 x odd on, measured on an AMD EPYC)."""

    is_real = True

    @classmethod
    def eval(cls, n):
        if n.is_Number:
            return sp.Integer(_twos(_int_arg(n, "twos")))


# fftcost: how FFT libraries plan a length-n transform, after pocketfft's C++ planner (used by
# numpy >= 2 and scipy.fft; FFTW, MKL and cuFFT make the same kind of choice). A mixed-radix
# plan costs n * (sum of its factor costs): a radix-4 or radix-2 pass 2, an odd prime p up to 5
# p, larger primes (no hand-written butterfly) 1.1*p. When the largest prime factor exceeds
# sqrt(n) (and n >= 50), Bluestein's algorithm may be cheaper: a transform via two FFTs of the
# smallest 2,3,5,7,11-smooth length m >= 2n-1, weighted 1.5 by the planner. The constants are
# pocketfft's own (cost_guess, good_size_cmplx, the pocketfft_c constructor), not fitted to
# any data.
_FFT_LARGE_PRIME_PENALTY = 1.1
_FFT_BLUESTEIN_WEIGHT = 2 * 1.5
_FFT_SMOOTH = (11, 7, 5, 3)  # with 2: the lengths the planner pads Bluestein transforms to


def _mixed_radix_cost(n: int, factors: list[int] | None = None) -> float:
    """``factors``: n's prime factors, ascending, when the caller has them."""
    factors = _factor(n) if factors is None else factors
    twos = factors.count(2)
    passes = twos // 2 + twos % 2            # radix-4 passes, then a radix-2 one: 2 each
    return n * (2 * passes + sum(p if p <= 5 else _FFT_LARGE_PRIME_PENALTY * p
                                 for p in factors if p != 2))


def _smooth_at_least(n: int, primes: tuple[int, ...] = _FFT_SMOOTH) -> int:
    """Smallest integer >= n whose prime factors are 2 and ``primes`` (descending)."""
    best = 1 << max(n - 1, 0).bit_length()

    def walk(base: int, primes: tuple[int, ...]) -> None:
        nonlocal best
        if not primes:
            while base < n:
                base *= 2
            best = min(best, base)
            return
        while base < best:
            walk(base, primes[1:])
            base *= primes[0]
    walk(1, primes)
    return best


def _fft_cost(n: int) -> float:
    n = max(n, 1)
    factors = _factor(n)
    direct = _mixed_radix_cost(n, factors)
    if n < 50 or factors[-1] ** 2 <= n:
        return direct
    return min(direct, _FFT_BLUESTEIN_WEIGHT * _mixed_radix_cost(_smooth_at_least(2 * n - 1)))


class fftcost(sp.Function):
    """Planned arithmetic cost of a complex FFT of length round(n): the cheaper of the
    mixed-radix plan (n times its weighted factors) and Bluestein's algorithm, as FFT
    libraries choose (constants from pocketfft's planner). For powers of two it is
    n*log2(n); for a large prime it is about 3 FFTs of length >= 2n-1, not n**2."""

    is_real = True

    @classmethod
    def eval(cls, n):
        if n.is_Number:
            return sp.Float(_fft_cost(_int_arg(n, "fftcost")))


# fastlen: the length a real FFT is padded to before it runs. scipy.signal.fftconvolve (and
# scipy.fft.next_fast_len(n, real=True)) pads each axis to the next 2,3,5-smooth length, the
# lengths pocketfft's real transforms run fastest (good_size_real); the work follows the
# padded length, not the requested one.
_REAL_FFT_SMOOTH = (5, 3)


class fastlen(sp.Function):
    """Smallest 2,3,5-smooth integer >= round(n): the length scipy pads a real FFT of length
    n to (``scipy.fft.next_fast_len(n, real=True)``; fastlen(97) = 100, fastlen(64) = 64)."""

    is_integer = True
    is_positive = True

    @classmethod
    def eval(cls, n):
        if n.is_Number:
            return sp.Integer(_smooth_at_least(_int_arg(n, "fastlen"), _REAL_FFT_SMOOTH))


def _vectorised(name: str, fn: Callable[[int], float]):
    """numpy version of an integer function, cached per distinct argument (a bounded cache:
    a long-running process that sees many lengths does not grow without limit)."""
    value = functools.lru_cache(maxsize=1 << 16)(lambda v: float(fn(v)))

    def call(x):
        arr = np.asarray(x, dtype=float)
        if arr.size and not np.all(np.abs(arr) <= MAX_FACTOR_INT):
            bad = arr.ravel()[~(np.abs(arr.ravel()) <= MAX_FACTOR_INT)][0]
            raise ExpressionError(f"{name} takes finite integers up to {MAX_FACTOR_INT}, got "
                                  f"{float(bad):g} (a parameter value too large for it)")
        flat = np.rint(arr.ravel()).astype(np.int64)
        out = np.empty(flat.shape, dtype=float)
        for i, v in enumerate(flat):
            out[i] = value(int(max(v, 1)))
        return out.reshape(arr.shape) if arr.ndim else float(out[0])
    return call


_np_sopfr = _vectorised("sopfr", lambda n: sum(_factor(n)))
_np_lpf = _vectorised("lpf", lambda n: max(_factor(n), default=1))
_np_twos = _vectorised("twos", _twos)
_np_fftcost = _vectorised("fftcost", _fft_cost)
_np_fastlen = _vectorised("fastlen", lambda n: _smooth_at_least(n, _REAL_FFT_SMOOTH))

# C implementations for exported headers (trial division; exact for n < 2**53)
C_SUPPORT = {
    "sopfr": """static double annpred_sopfr(double x) {
    long long n = (long long)(x + 0.5), s = 0, p;
    if (n < 2) return 0.0;
    for (p = 2; p * p <= n; p += (p == 2 ? 1 : 2))
        while (n % p == 0) { s += p; n /= p; }
    if (n > 1) s += n;
    return (double)s;
}""",
    "lpf": """static double annpred_lpf(double x) {
    long long n = (long long)(x + 0.5), m = 1, p;
    if (n < 2) return 1.0;
    for (p = 2; p * p <= n; p += (p == 2 ? 1 : 2))
        while (n % p == 0) { m = p; n /= p; }
    if (n > 1) m = n;
    return (double)m;
}""",
    "twos": """static double annpred_twos(double x) {
    long long n = (long long)(x + 0.5), s = 0;
    if (n < 1) return 0.0;
    while (n % 2 == 0) { s++; n /= 2; }
    return (double)s;
}""",
    "fftcost": """static double annpred_fftcost_radix(long long n) {
    long long p, m = n;
    double s = 0.0;
    while (m % 4 == 0) { s += 2.0; m /= 4; }
    while (m % 2 == 0) { s += 2.0; m /= 2; }
    for (p = 3; p * p <= m; p += 2)
        while (m % p == 0) { s += p <= 5 ? (double)p : 1.1 * (double)p; m /= p; }
    if (m > 1) s += m <= 5 ? (double)m : 1.1 * (double)m;
    return s * (double)n;
}
static double annpred_fftcost(double x) {
    long long n = (long long)(x + 0.5), m = 1, p, q, best, f11, f7, f5, f3, f2, t;
    double direct, blue;
    if (n < 1) n = 1;
    direct = annpred_fftcost_radix(n);
    for (p = 2, q = n; p * p <= q; p += (p == 2 ? 1 : 2))
        while (q % p == 0) { m = p; q /= p; }
    if (q > 1) m = q;
    if (n < 50 || m * m <= n) return direct;
    t = 2 * n - 1;
    for (best = 1; best < t; best *= 2) {}
    for (f11 = 1; f11 < best; f11 *= 11)
        for (f7 = f11; f7 < best; f7 *= 7)
            for (f5 = f7; f5 < best; f5 *= 5)
                for (f3 = f5; f3 < best; f3 *= 3) {
                    for (f2 = f3; f2 < t; f2 *= 2) {}
                    if (f2 < best) best = f2;
                }
    blue = 3.0 * annpred_fftcost_radix(best);
    return blue < direct ? blue : direct;
}""",
    "fastlen": """static double annpred_fastlen(double x) {
    long long n = (long long)(x + 0.5), best, f5, f3, f2;
    if (n < 1) n = 1;
    for (best = 1; best < n; best *= 2) {}
    for (f5 = 1; f5 < best; f5 *= 5)
        for (f3 = f5; f3 < best; f3 *= 3) {
            for (f2 = f3; f2 < n; f2 *= 2) {}
            if (f2 < best) best = f2;
        }
    return (double)best;
}""",
}


NUMPY = {"sopfr": _np_sopfr, "lpf": _np_lpf, "twos": _np_twos, "fftcost": _np_fftcost,
         "fastlen": _np_fastlen}
# The revision of each function's values. A model file records them (``versions.functions``)
# and is refused where a function its complexity uses had another revision: its predictions
# would change silently (annpred.model.schema). Bump a revision whenever a definition here
# changes its values. fftcost 1 (commit 445509d) gave other values; 2 (1d822f1) follows
# pocketfft's C++ planner. Files written before the record cannot be told apart and load as
# the current revision.
REVISIONS = {"sopfr": 1, "lpf": 1, "twos": 1, "fftcost": 2, "fastlen": 1}
C_NAMES = {name: f"annpred_{name}" for name in NUMPY}
