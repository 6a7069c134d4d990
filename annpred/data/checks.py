"""What a profiling CSV's cells must hold beyond being numbers: the bookkeeping columns
(``seed``, ``pass``, ``threads``, ...) and, for a kernel in the catalog, its parameters.

A catalog kernel's rows are held to what ``annpred predict`` accepts
(:meth:`annpred.spec.kernel.Param.check`: positive integer sizes, densities in (0, 1], the
kernel's constraint), integers below 2**53 (exact as floats), and, where ``--features`` is
not given, every parameter its model takes must be a column. Every error names the file,
the row (its line in the file, the header being line 1) and the column.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from annpred.errors import DataError, ParameterError, UnknownKernelError
from annpred.validate import MAX_SEED

MAX_EXACT = 2.0 ** 53  # integers at or beyond are not exact as floats

# column -> (integer, lowest, highest); an empty cell is allowed (older files, other tools)
BOOKKEEPING = {
    "runtime_cv": (False, 0, math.inf),
    "repeats": (True, 1, MAX_EXACT - 1),
    "threads": (True, 1, MAX_EXACT - 1),
    "point": (True, 0, MAX_EXACT - 1),
    "pass": (True, 0, MAX_EXACT - 1),
    "seed": (True, 0, MAX_SEED),
    "load_avg": (False, 0, math.inf),
    "ref_s": (False, 0, math.inf),
    "input_sets": (True, 1, MAX_EXACT - 1),
}


def _cell(raw, i: int) -> str:
    c = raw.iloc[i]
    return repr(str(c)[:40])


def bookkeeping(df, col: str, path) -> np.ndarray:
    """Column ``col`` of :data:`BOOKKEEPING` as floats (NaN where empty), each filled cell
    checked: a number, an integer where it counts something, within its range."""
    from annpred.data.profiles import floats

    raw = df[col]
    vals = floats(raw)
    integer, lo, hi = BOOKKEEPING[col]
    fin = np.isfinite(vals)
    filled = np.zeros(len(vals), bool)  # cells that are neither numbers nor empty
    odd = np.flatnonzero(~fin)
    if len(odd) and pd.api.types.is_numeric_dtype(raw.dtype) and not \
            pd.api.types.is_bool_dtype(raw.dtype):  # parsed as numbers: NaN is empty
        filled[odd] = ~np.isnan(vals[odd])
    elif len(odd):
        sub = raw.iloc[odd]
        filled[odd] = sub.notna().to_numpy() & (sub.astype(str).str.strip() != "").to_numpy()
    checks = [(filled, "is not a finite number")]
    if integer:
        checks.append((fin & (vals != np.round(vals)), "is not an integer"))
    checks.append((fin & (vals < lo), "is negative" if lo == 0 else f"is below {lo:g}"))
    checks.append((fin & (vals > hi), f"is above {hi:.0f}"))
    for bad, why in checks:
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise DataError(f"{path}: row {i + 2}, column {col!r}: {_cell(raw, i)} {why}"
                            + (f" ({int(bad.sum())} such cells)" if bad.sum() > 1 else ""))
    return vals


def catalog_rows(df, path, keep: np.ndarray, features, file_kernels=()) -> None:
    """Check the rows ``keep`` of a raw CSV frame against the catalog entry of their kernel
    (rows of kernels not in the catalog pass). ``features``: the user's ``--features``
    (None: every catalog parameter of the kernel/variant must be a column).
    ``file_kernels``: the names the file's kernel column held (before ``--kernel`` renamed
    a single one)."""
    from annpred.spec.catalog import get_kernel

    rows = df.loc[keep, ["kernel", "variant"]]
    for key, idx in rows.groupby(["kernel", "variant"], sort=True, observed=True
                                 ).groups.items():
        kname, vname = map(str, key)
        try:
            spec = get_kernel(kname)
        except UnknownKernelError:
            continue
        try:
            needed = spec.model_params(vname)
        except UnknownKernelError:  # a variant of the user's own: all of the kernel's
            needed = spec.param_names
        missing = [c for c in needed if c not in df.columns]
        if features is None and missing:
            renamed = len(file_kernels) == 1 and file_kernels[0] != kname  # by --kernel
            raise DataError(
                f"{path}: missing parameter column(s) {', '.join(map(repr, missing))} of "
                f"catalog kernel {kname}/{vname} (its parameters: "
                f"{', '.join(needed)}; give them, or name the inputs with --features)"
                + (f"; the file's kernel column holds {file_kernels[0]!r}, not {kname!r}"
                   if renamed else ""))
        pos = df.index.get_indexer(idx)
        _domain(df, path, spec, vname, pos)


def _domain(df, path, spec, vname: str, pos: np.ndarray) -> None:
    from annpred.data.profiles import floats

    cols = {}
    for p in spec.params:
        if p.name not in df.columns:
            if p.name in spec.defaults:
                cols[p.name] = np.full(len(pos), float(spec.defaults[p.name]))
            continue
        raw = df[p.name].iloc[pos]
        v = floats(raw)
        seen = ~np.isnan(v)  # empty and non-numeric cells: numeric_column names them
        bad = seen & p.invalid(v)  # as predict checks them (Kernel.check_columns)
        if p.kind == "int":
            bad |= seen & np.isfinite(v) & (np.abs(v) >= MAX_EXACT)
        if bad.any():
            j = int(np.flatnonzero(bad)[0])
            try:
                p.check(float(v[j]))
                why = f"parameter {p.name}={raw.iloc[j]} is too large (at most 2**53)"
            except ParameterError as exc:
                why = str(exc)
            raise DataError(f"{path}: row {int(pos[j]) + 2}, column {p.name!r}: {why} "
                            f"(kernel {spec.name})"
                            + (f"; {int(bad.sum())} such rows" if bad.sum() > 1 else ""))
        cols[p.name] = v
    if len(cols) < len(spec.params):
        return  # a parameter not given (--features names the inputs): no joint check
    tests = [(spec.constraint, f"the constraint of kernel {spec.name}")]
    if vname in {v.name for v in spec.variants}:
        tests.append((spec.variant(vname).supports, f"what {spec.name}/{vname} supports"))
    for fn, what in tests:
        if fn is None:
            continue
        ok = _holds(fn, cols, len(pos))
        if not ok.all():
            j = int(np.flatnonzero(~ok)[0])
            point = {k: float(c[j]) for k, c in cols.items()}
            raise DataError(f"{path}: row {int(pos[j]) + 2}: parameters "
                            f"{', '.join(f'{k}={x:g}' for k, x in point.items())} violate "
                            f"{what} ({fn.__doc__ or 'see the kernel spec'})")


def _holds(fn, cols: dict, n: int) -> np.ndarray:
    """``fn`` (a condition on one point) on every row: on the columns at once where it
    works with arrays, else row by row. NaN rows (cells numeric_column will name) pass."""
    nan = np.zeros(n, bool)
    for c in cols.values():
        nan |= np.isnan(c)
    try:
        with np.errstate(all="ignore"):
            res = np.broadcast_to(np.asarray(fn(cols), dtype=bool), (n,))
    except Exception:
        res = np.fromiter((nan[i] or _one(fn, {k: c[i] for k, c in cols.items()})
                           for i in range(n)), dtype=bool, count=n)
    return res | nan


def _one(fn, point: dict) -> bool:
    try:
        return bool(fn(point))
    except Exception:  # a condition that cannot judge the point: not supported
        return False
