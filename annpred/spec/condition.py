"""Conditions on tuning parameters (Kernel Tuner's ``restrictions``), parsed with a
whitelist and evaluated over numpy arrays, never as Python.

A condition is one Python-syntax boolean expression over parameter names, as Kernel Tuner
users write them: ``block_size_x*block_size_y <= 1024``, ``use_padding == 0 or use_shmem``,
``tile_size_x in (1, 2, 4)``. Allowed: numbers, parameter names, ``+ - * / // % **``,
comparisons (chained too), ``in`` / ``not in`` a tuple or list of numbers, ``and``, ``or``,
``not``, ``min``, ``max``, ``abs``. The text goes through :func:`ast.parse` only (a syntax
tree); each node is checked and evaluated column-wise by :func:`evaluate_condition`.
"""
from __future__ import annotations

import ast
from typing import Iterable, Mapping

import numpy as np

from annpred.errors import ExpressionError
from annpred.spec.expr import syntax_tree

_BIN = {ast.Add: np.add, ast.Sub: np.subtract, ast.Mult: np.multiply,
        ast.Div: np.true_divide, ast.FloorDiv: np.floor_divide, ast.Mod: np.mod,
        ast.Pow: np.power}
_CMP = {ast.Lt: np.less, ast.LtE: np.less_equal, ast.Gt: np.greater,
        ast.GtE: np.greater_equal, ast.Eq: np.equal, ast.NotEq: np.not_equal}
_CALLS = {"min": np.minimum, "max": np.maximum, "abs": np.abs}


def parse_condition(text: str, names: Iterable[str]) -> ast.Expression:
    """The checked syntax tree of ``text``; raises :class:`ExpressionError` naming the
    condition and what is wrong (syntax, an unknown name, a construct not allowed)."""
    if not isinstance(text, str) or not text.strip():
        raise ExpressionError("a restriction must be a non-empty condition, e.g. "
                              "'block_size_x*block_size_y <= 1024'")
    tree = syntax_tree(text, "restriction")
    known = set(names)
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and node.id not in known and node.id not in _CALLS:
            raise ExpressionError(f"restriction {text!r}: unknown name {node.id!r} "
                                  f"(tuning parameters: {', '.join(sorted(known))})")
    _check(tree.body, text)
    return tree


def _check(node: ast.AST, text: str) -> None:
    def fail(what: str):
        raise ExpressionError(f"restriction {text!r}: {what} is not allowed (numbers, "
                              "parameter names, arithmetic, comparisons, in, and, or, not, "
                              "min, max, abs)")

    if isinstance(node, ast.Constant):
        if not isinstance(node.value, (bool, int, float)):
            fail(f"the constant {node.value!r}")
        try:
            float(node.value)
        except OverflowError:
            fail("a constant this large")
    elif isinstance(node, ast.Name):
        if node.id in _CALLS:
            fail(f"{node.id} without a call")
    elif isinstance(node, ast.BoolOp):
        for v in node.values:
            _check(v, text)
    elif isinstance(node, ast.UnaryOp):
        if not isinstance(node.op, (ast.Not, ast.USub, ast.UAdd)):
            fail(type(node.op).__name__)
        _check(node.operand, text)
    elif isinstance(node, ast.BinOp):
        if type(node.op) not in _BIN:
            fail(type(node.op).__name__)
        _check(node.left, text)
        _check(node.right, text)
    elif isinstance(node, ast.Compare):
        _check(node.left, text)
        for op, right in zip(node.ops, node.comparators):
            if isinstance(op, (ast.In, ast.NotIn)):
                if not isinstance(right, (ast.Tuple, ast.List)) or not right.elts:
                    fail("'in' with anything but a non-empty tuple or list")
                for e in right.elts:
                    if not (isinstance(e, ast.Constant) and isinstance(e.value, (int, float))):
                        fail("'in' with anything but numbers")
            elif type(op) in _CMP:
                _check(right, text)
            else:
                fail(type(op).__name__)
    elif isinstance(node, ast.Call):
        if not isinstance(node.func, ast.Name) or node.func.id not in _CALLS:
            fail("this call")
        if node.keywords or not node.args or (node.func.id == "abs" and len(node.args) != 1):
            fail(f"this use of {node.func.id}")
        for a in node.args:
            _check(a, text)
    else:
        fail(type(node).__name__)


def evaluate_condition(text: str, columns: Mapping[str, np.ndarray]) -> np.ndarray:
    """Boolean array: where the condition holds on the rows of ``columns`` (equal-length
    arrays by parameter name). A row where it cannot be evaluated (e.g. a division by
    zero) does not satisfy it."""
    tree = parse_condition(text, columns.keys())
    n = len(next(iter(columns.values()))) if columns else 1
    cols = {k: np.asarray(v, dtype=float) for k, v in columns.items()}
    bad = np.zeros(n, dtype=bool)  # rows where some arithmetic is undefined (x / 0, ...)
    with np.errstate(all="ignore"):
        out = _eval(tree.body, cols, bad)
    out = np.broadcast_to(np.asarray(out), (n,))
    if out.dtype != bool:  # a bare number or parameter: true where non-zero (Python's rule)
        out = np.isfinite(out) & (out != 0)
    return np.asarray(out, dtype=bool) & ~bad


def _truth(v) -> np.ndarray:
    v = np.asarray(v)
    return v if v.dtype == bool else (np.isfinite(v) & (v != 0))


def _eval(node: ast.AST, cols: Mapping[str, np.ndarray], bad: np.ndarray):
    if isinstance(node, ast.Constant):
        return np.float64(node.value) if not isinstance(node.value, bool) else node.value
    if isinstance(node, ast.Name):
        return cols[node.id]
    if isinstance(node, ast.BoolOp):
        # Python's short circuit, row by row: an operand counts (and can be undefined) only
        # on the rows not yet decided by the operands before it
        is_or = isinstance(node.op, ast.Or)
        res = np.full(bad.shape, not is_or)
        decided = np.zeros(bad.shape, dtype=bool)
        for v_node in node.values:
            b = np.zeros(bad.shape, dtype=bool)
            v = np.broadcast_to(_truth(_eval(v_node, cols, b)), bad.shape)
            live = ~decided & ~bad
            bad |= live & b
            hit = live & ~b & (v if is_or else ~v)
            res[hit] = is_or
            decided |= hit
        return res
    if isinstance(node, ast.UnaryOp):
        v = _eval(node.operand, cols, bad)
        if isinstance(node.op, ast.Not):
            return ~_truth(v)
        return -v if isinstance(node.op, ast.USub) else v
    if isinstance(node, ast.BinOp):
        v = _BIN[type(node.op)](_eval(node.left, cols, bad), _eval(node.right, cols, bad))
        bad |= ~np.isfinite(v)  # broadcast over the rows
        return v
    if isinstance(node, ast.Compare):
        left, out = _eval(node.left, cols, bad), True
        for op, right in zip(node.ops, node.comparators):
            if isinstance(op, (ast.In, ast.NotIn)):
                hit = np.isin(left, [float(e.value) for e in right.elts])
                out = np.logical_and(out, hit if isinstance(op, ast.In) else ~hit)
                continue
            r = _eval(right, cols, bad)
            out = np.logical_and(out, _CMP[type(op)](left, r))
            left = r
        return out
    # a call (checked: min, max or abs with positional arguments)
    args = [_eval(a, cols, bad) for a in node.args]
    fn = _CALLS[node.func.id]
    if fn is np.abs:
        return fn(args[0])
    out = args[0]
    for a in args[1:]:
        out = fn(out, a)
    return out
