"""Complexity expressions: parsed with a whitelist, never evaluated as Python.

The text is parsed by :func:`ast.parse` (which only builds a syntax tree) and every node is
checked against a whitelist of arithmetic, powers and a few functions before a sympy
expression is built from it node by node. ``sympy.sympify`` is never called on user text
(it uses ``eval``).
"""
from __future__ import annotations

import ast
import functools
import math
import time
from typing import Callable, Iterable, Mapping

import numpy as np
import sympy as sp

from annpred.errors import ExpressionError
from annpred.spec.numbertheory import (C_NAMES, C_SUPPORT, NUMPY, fastlen, fftcost, lpf, sopfr,
                                       twos)

MAX_LENGTH = 2000
MAX_CONST_EXPONENT = 16
# Cost bounds: parsing (and so loading a model file) stays fast for any text.
MAX_NODES = 1500  # syntax-tree nodes
MAX_DEPTH = 100  # nesting of operators and calls
MAX_ARGS = 16  # arguments of min/max
MAX_CONST = 1e18  # magnitude of a numeric constant
MAX_CONST_LOG10 = 300  # constant parts (powers, operands, arguments): below 10**this
MAX_CONST_DIGITS = 40  # characters of a numeric constant
MAX_SECONDS = 5.0  # a last resort: building one expression may take at most this long

_BINOPS = {
    ast.Add: lambda a, b: a + b,
    ast.Sub: lambda a, b: a - b,
    ast.Mult: lambda a, b: a * b,
    ast.Div: lambda a, b: a / b,
    ast.Pow: None,  # checked separately
}


def _log(*args):
    if len(args) == 1:
        return sp.log(args[0])
    if len(args) == 2:
        return sp.log(args[0], args[1])
    raise ExpressionError("log takes 1 or 2 arguments (log(x) or log(x, base))")


def _fixed(name, n, fn):
    def call(*args):
        if len(args) != n:
            raise ExpressionError(f"{name} takes {n} argument(s), got {len(args)}")
        return fn(*args)
    return call


def _variadic(name, fn):
    def call(*args):
        if len(args) < 1:
            raise ExpressionError(f"{name} needs at least one argument")
        if len(args) > MAX_ARGS:
            raise ExpressionError(f"{name} takes at most {MAX_ARGS} arguments, got {len(args)}")
        if all(a.is_Number for a in args):
            return fn(*args)
        # symbolic min/max: sympy's simplification is quadratic (or worse) in the arguments
        return fn(*args, evaluate=False)
    return call


# integer-valued: sympy computes these exactly on a constant argument (the integer part of
# exp(exp(16)) has millions of digits), so their constant arguments are bounded by MAX_CONST
INTEGER_VALUED = frozenset({"ceiling", "ceil", "floor", "sopfr", "lpf", "twos", "fftcost",
                            "fastlen"})

FUNCTIONS: dict[str, Callable] = {
    "log": _log,
    "log2": _fixed("log2", 1, lambda x: sp.log(x, 2)),
    "log10": _fixed("log10", 1, lambda x: sp.log(x, 10)),
    "sqrt": _fixed("sqrt", 1, sp.sqrt),
    "exp": _fixed("exp", 1, sp.exp),
    "abs": _fixed("abs", 1, sp.Abs),
    "min": _variadic("min", sp.Min),
    "max": _variadic("max", sp.Max),
    "ceiling": _fixed("ceiling", 1, sp.ceiling),
    "ceil": _fixed("ceil", 1, sp.ceiling),
    "floor": _fixed("floor", 1, sp.floor),
    "sopfr": _fixed("sopfr", 1, lambda x: sopfr(x)),
    "lpf": _fixed("lpf", 1, lambda x: lpf(x)),
    "twos": _fixed("twos", 1, lambda x: twos(x)),
    "fftcost": _fixed("fftcost", 1, lambda x: fftcost(x)),
    "fastlen": _fixed("fastlen", 1, lambda x: fastlen(x)),
}


def _magnitude(x: sp.Expr) -> float:
    """``|x|`` of a constant as a float, computed in machine floats (``math``), never by
    sympy: its exact evaluation (``float``, ``evalf``, ``floor``, ``log`` of a huge integer)
    can run for hours on a short constant such as ``exp(exp(exp(16)))``. ``inf`` where the
    value overflows or cannot be computed."""
    try:
        if x.is_Number:
            return abs(float(x))
        return float(abs(lambdify(x, (), scalar=True)()))
    except (ArithmeticError, ValueError, TypeError, NameError, SyntaxError, RecursionError,
            MemoryError, ExpressionError):
        return math.inf


def _describe(node: ast.AST) -> str:
    return type(node).__name__


def _shape(tree: ast.AST) -> tuple[int, int]:
    """(node count, depth) of a syntax tree, without recursion."""
    count, deepest, stack = 0, 0, [(tree, 1)]
    while stack:
        node, depth = stack.pop()
        count += 1
        deepest = max(deepest, depth)
        if count > MAX_NODES or deepest > MAX_DEPTH:
            break
        stack.extend((c, depth + 1) for c in ast.iter_child_nodes(node))
    return count, deepest


class _Builder:
    def __init__(self, text: str, symbols: Iterable[str] | None):
        self.text = text
        self.allowed = None if symbols is None else set(symbols)
        self.deadline = time.monotonic() + MAX_SECONDS

    def fail(self, node, what):
        col = getattr(node, "col_offset", None)
        where = f" at column {col + 1}" if col is not None else ""
        raise ExpressionError(f"complexity expression {self.text!r}: {what}{where}")

    def bounded(self, node, x, limit: float, what: str) -> None:
        """Refuse constant ``x`` above ``limit`` in magnitude (or not computable in floats)
        before sympy computes with it: one sympy call cannot be interrupted by the deadline."""
        if x.is_number and not _magnitude(x) <= limit:
            self.fail(node, what)

    def build(self, node):
        if time.monotonic() > self.deadline:
            self.fail(node, "too costly to analyse (simplify it)")
        if isinstance(node, ast.Expression):
            return self.build(node.body)
        if isinstance(node, ast.Constant):
            if isinstance(node.value, bool) or not isinstance(node.value, (int, float)):
                self.fail(node, f"only numbers are allowed as constants, not {node.value!r}")
            seg = ast.get_source_segment(self.text.strip(), node) or ""
            if len(seg) > MAX_CONST_DIGITS:
                self.fail(node, f"numeric constants are limited to {MAX_CONST_DIGITS} "
                                "characters")
            if isinstance(node.value, int) and abs(node.value) > MAX_CONST:
                self.fail(node, f"numeric constants are limited to {MAX_CONST:g} in magnitude")
            if not math.isfinite(node.value) or abs(node.value) > MAX_CONST:
                self.fail(node, f"constants must be finite and at most {MAX_CONST:g} in "
                                "magnitude")
            return sp.Integer(node.value) if isinstance(node.value, int) else sp.Float(node.value)
        if isinstance(node, ast.Name):
            if node.id in FUNCTIONS:
                self.fail(node, f"{node.id!r} is a function and must be called")
            if self.allowed is not None and node.id not in self.allowed:
                known = ", ".join(sorted(self.allowed)) or "(none)"
                self.fail(node, f"unknown symbol {node.id!r}; known symbols: {known}")
            return sp.Symbol(node.id, positive=True)
        if isinstance(node, ast.UnaryOp):
            if isinstance(node.op, ast.USub):
                return -self.build(node.operand)
            if isinstance(node.op, ast.UAdd):
                return self.build(node.operand)
            self.fail(node, f"operator {_describe(node.op)} is not allowed")
        if isinstance(node, ast.BinOp):
            if type(node.op) not in _BINOPS:
                self.fail(node, f"operator {_describe(node.op)} is not allowed "
                                "(use + - * / ** and the functions " + ", ".join(FUNCTIONS) + ")")
            a, b = self.build(node.left), self.build(node.right)
            for x in (a, b):
                if x.is_number and not (x.is_finite and x.is_extended_real):
                    self.fail(node, "a constant part is infinite, undefined or complex")
            if isinstance(node.op, ast.Pow):
                if b.is_number and not _magnitude(b) <= MAX_CONST_EXPONENT:
                    self.fail(node, f"constant exponents are limited to +-{MAX_CONST_EXPONENT}")
                if a.is_number and b.is_number and a != 0:
                    log10 = math.log10(max(_magnitude(a), 1e-300))
                    if _magnitude(b) * log10 > MAX_CONST_LOG10:
                        self.fail(node, "constant power is too large")
            for x in (a, b):  # e.g. exp(exp(16)) - 2: sympy would work on it exactly
                self.bounded(node, x, 10.0 ** MAX_CONST_LOG10, "a constant part is larger than "
                             f"1e{MAX_CONST_LOG10} in magnitude")
            if isinstance(node.op, ast.Pow):
                return a ** b
            return _BINOPS[type(node.op)](a, b)
        if isinstance(node, ast.Call):
            if not isinstance(node.func, ast.Name):
                self.fail(node, "only plain calls of " + ", ".join(FUNCTIONS) + " are allowed")
            if node.func.id not in FUNCTIONS:
                self.fail(node, f"function {node.func.id!r} is not allowed; allowed: "
                                + ", ".join(FUNCTIONS))
            if node.keywords:
                self.fail(node, "keyword arguments are not allowed")
            args = [self.build(a) for a in node.args]
            name = node.func.id
            for x in args:
                if name in INTEGER_VALUED:
                    self.bounded(node, x, MAX_CONST, f"{name}() of a constant is limited to "
                                 f"arguments of at most {MAX_CONST:g} in magnitude")
                else:
                    self.bounded(node, x, 10.0 ** MAX_CONST_LOG10, f"{name}() of a constant is "
                                 f"limited to arguments of at most 1e{MAX_CONST_LOG10} in "
                                 "magnitude")
            return FUNCTIONS[name](*args)
        self.fail(node, f"syntax {_describe(node)} is not allowed")


def check_all(texts: Iterable[str], symbols: Iterable[str], where: str) -> None:
    """Parse each of ``texts`` against ``symbols``; an error is prefixed with ``where``
    (e.g. the combination the expressions are for)."""
    for text in texts:
        try:
            parse(text, symbols)
        except ExpressionError as e:
            raise ExpressionError(f"{where}: {e}") from None


def parse(text: str, symbols: Iterable[str] | None = None) -> sp.Expr:
    """Parse complexity text into a sympy expression.

    ``symbols`` restricts the names that may appear (parameters or CSV columns); ``None``
    allows any identifier. Raises :class:`ExpressionError` on anything else. The cost is
    bounded (length, terms, nesting, constants, min/max arguments) and results are cached,
    so validating the same text again (every model load) is a dictionary look-up.
    """
    if isinstance(text, str) and (symbols is None or not isinstance(symbols, str)):
        key = None if symbols is None else tuple(sorted(set(map(str, symbols))))
        return _parse_cached(text, key)
    return _parse(text, symbols)


@functools.lru_cache(maxsize=4096)
def _parse_cached(text: str, symbols: tuple[str, ...] | None) -> sp.Expr:
    return _parse(text, symbols)


def syntax_tree(text: str, what: str) -> ast.Expression:
    """``text``'s syntax tree (:func:`ast.parse` only, nothing runs) within the size bounds
    (length, nodes, nesting); ``what`` names the text in the one error raised otherwise."""
    if len(text) > MAX_LENGTH:
        raise ExpressionError(f"{what} is longer than {MAX_LENGTH} characters")
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as exc:
        col = f" at column {exc.offset}" if exc.offset else ""
        raise ExpressionError(f"{what} {text!r}: syntax error{col}") from None
    except (ValueError, RecursionError, MemoryError) as exc:
        raise ExpressionError(f"{what} {text!r}: cannot parse ({exc})") from None
    count, depth = _shape(tree)
    if count > MAX_NODES:
        raise ExpressionError(f"{what} {text!r}: more than {MAX_NODES} terms")
    if depth > MAX_DEPTH:
        raise ExpressionError(f"{what} {text!r}: nested more than {MAX_DEPTH} levels deep")
    return tree


def _parse(text: str, symbols: Iterable[str] | None = None) -> sp.Expr:
    if not isinstance(text, str):
        raise ExpressionError(f"complexity expression must be text, got {type(text).__name__}")
    if not text.strip():
        raise ExpressionError("complexity expression is empty")
    tree = syntax_tree(text, "complexity expression")
    try:
        expr = _Builder(text, symbols).build(tree)
    except ExpressionError:
        raise
    except RecursionError:
        raise ExpressionError(f"complexity expression {text!r}: nested too deeply") from None
    except (ArithmeticError, TypeError, ValueError, MemoryError, AttributeError) as exc:
        raise ExpressionError(f"complexity expression {text!r}: cannot be evaluated "
                              f"({type(exc).__name__}: {str(exc)[:100]})") from None
    if not isinstance(expr, sp.Expr):
        raise ExpressionError(f"complexity expression {text!r} is not arithmetic")
    if expr.has(sp.zoo, sp.oo, -sp.oo, sp.nan) or expr.has(sp.I):
        raise ExpressionError(f"complexity expression {text!r} is not finite for some inputs "
                              "(it simplifies to an infinite or complex value)")
    return expr


def within_bounds(text: str) -> bool:
    """True if ``text`` is within the parser's size bounds (length, syntax-tree nodes,
    nesting): for code that builds long expressions and shortens them until they fit."""
    if len(text) > MAX_LENGTH:
        return False
    try:
        count, depth = _shape(ast.parse(text.strip(), mode="eval"))
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return False
    return count <= MAX_NODES and depth <= MAX_DEPTH


def group_passes(size: str, group: int) -> str:
    """Text of the passes a kernel makes over ``size`` when it runs groups of ``group`` and
    then the remainder one by one: ``floor(size/group) + size mod group`` (SIMD lanes, BLAS
    edge kernels; see kernels/matmul.py)."""
    return f"floor({size}/{group}) + {size} - {group}*floor({size}/{group})"


def binary_passes(size: str, block: int) -> str:
    """Text of the passes a kernel makes over ``size`` when it runs blocks of ``block`` (a
    power of two) and then the remainder in halving chunks (8, 4, 2, 1 after blocks of 16):
    ``floor(size/block) + popcount(size mod block)``, written with floors as ``size -
    floor(size/2) - floor(size/4) - ... - floor(size/block)`` (MKL's and OpenBLAS's GEMM
    edges; see kernels/matmul.py)."""
    if block < 2 or block & (block - 1):
        raise ValueError(f"binary_passes: block must be a power of two >= 2, got {block}")
    halves = []
    b = 2
    while b <= block:
        halves.append(f" - floor({size}/{b})")
        b *= 2
    return size + "".join(halves)


def to_text(expr: sp.Expr) -> str:
    """Canonical text of an expression, parseable again by :func:`parse`."""
    return sp.sstr(expr).replace("Min(", "min(").replace("Max(", "max(")


_NUMPY_FUNCS = {"ceiling": np.ceil, "floor": np.floor, "Min": np.minimum, "Max": np.maximum,
                "log": np.log, "sqrt": np.sqrt, "exp": np.exp, "Abs": np.abs}


def _safe_names(names: list[str]) -> dict[str, str]:
    """``_p0``, ``_p1``, ... for ``names``, numbered (zero-padded) in the names' sorted order:
    the generated code then refers to no parameter by its own name (a parameter named
    ``minimum``, ``reduce``, ``Max`` or ``e`` would shadow what the code calls), and sympy
    orders terms and factors exactly as for the original names (it sorts them by name), so
    the code performs the same floating-point operations in the same order."""
    distinct = sorted(set(names))
    width = len(str(max(len(distinct) - 1, 0)))
    return {n: f"_p{i:0{width}d}" for i, n in enumerate(distinct)}


def lambdify(exprs, names: Iterable[str], scalar: bool = False) -> Callable:
    """``f(*values)`` for parsed (whitelisted) sympy expression(s) over ``names``: numpy
    arrays by default, plain floats (``math``, faster for one point) with ``scalar``.

    lambdify prints the whitelisted sympy tree as code; no user text reaches exec. The
    parameters are renamed once, here, to safe names (:func:`_safe_names`); the function
    takes the values in the order of ``names`` as before."""
    names = [str(n) for n in names]
    safe = _safe_names(names)
    syms = [sp.Symbol(safe[n], positive=True) for n in names]

    def rename(e):
        if not isinstance(e, sp.Basic):
            return e
        mapping = {s: sp.Symbol(safe[s.name], **s.assumptions0)
                   for s in e.free_symbols if isinstance(s, sp.Symbol) and s.name in safe}
        # unevaluated: the tree keeps its shape (and min/max are not simplified again)
        with sp.evaluate(False):
            return e.xreplace(mapping)

    exprs = type(exprs)(map(rename, exprs)) if isinstance(exprs, (list, tuple)) \
        else rename(exprs)
    custom = dict(NUMPY)
    if scalar:
        mods = [{"Min": min, "Max": max, "ceiling": math.ceil, "floor": math.floor,
                 "Abs": abs, **custom}, "math"]
    else:
        mods = [{"Min": np.minimum, "Max": np.maximum, **custom}, "numpy"]
    return sp.lambdify(syms, exprs, modules=mods)


@functools.lru_cache(maxsize=512)
def _compiled(text: str, names: tuple[str, ...]):
    e = parse(text, names)
    try:
        return lambdify(e, names)
    except (RecursionError, MemoryError, SyntaxError, TypeError, ValueError) as exc:
        raise ExpressionError(f"complexity expression {text!r}: cannot be compiled "
                              f"({type(exc).__name__})") from None


def compile(text: str, names: Iterable[str]) -> Callable[..., np.ndarray]:
    """Return ``f(*columns)`` computing the expression over numpy arrays (cached)."""
    return _compiled(text, tuple(names))


def evaluate(text: str, values: Mapping[str, np.ndarray | float]) -> np.ndarray:
    """Evaluate an expression over named arrays; raises if the result is not finite."""
    names = tuple(values.keys())
    fn = compile(text, names)
    args = [np.asarray(values[n], dtype=float) for n in names]
    with np.errstate(all="ignore"):
        try:
            raw = np.asarray(fn(*args))
        except ExpressionError:
            raise
        except (ArithmeticError, TypeError, ValueError, RecursionError, MemoryError) as exc:
            raise ExpressionError(f"complexity expression {text!r} cannot be evaluated on "
                                  f"these inputs ({type(exc).__name__})") from None
    if np.iscomplexobj(raw):
        raise ExpressionError(f"complexity expression {text!r} is not finite for some inputs")
    out = raw.astype(float)
    if args:
        out = np.broadcast_to(out, np.broadcast(*args).shape)
    if not np.all(np.isfinite(out)):
        raise ExpressionError(f"complexity expression {text!r} is not finite for some inputs")
    return out


def free_symbols(text: str, symbols: Iterable[str] | None = None) -> list[str]:
    return sorted(str(s) for s in parse(text, symbols).free_symbols)


def ccode(e: sp.Expr) -> str:
    """C99 code of a parsed expression; see :func:`c_support` for helper functions."""
    return sp.ccode(e, user_functions=C_NAMES)


def c_support(e: sp.Expr) -> str:
    """C definitions of the helper functions an expression's C code calls."""
    return "\n".join(code for name, code in C_SUPPORT.items()
                     if any(type(f).__name__ == name for f in e.atoms(sp.Function)))


def to_c(text: str) -> str:
    """C99 code of the expression (symbols stay as C identifiers of the same name)."""
    return ccode(parse(text))
