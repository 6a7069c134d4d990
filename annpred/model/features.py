"""The network's raw input matrix: the parameters, then one column per complexity expression
evaluated over them. One function for training, prediction and the study (numpy only); and
the forms a ``complexity`` argument may take."""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from annpred.errors import DataError
from annpred.spec import expr as _expr

AUTO = "auto"  # complexity="auto": derived and selected inside the estimator's fit


def feature_matrix(columns: Mapping[str, np.ndarray], params: Sequence[str],
                   complexity: Mapping[str, str] | Sequence[str]) -> np.ndarray:
    """``(n, len(params) + len(complexity))`` float matrix from parameter columns.

    ``columns`` maps names to 1-D arrays (a DataFrame works); ``complexity`` is a mapping
    name -> expression or a sequence of expressions over ``params``."""
    missing = [p for p in params if p not in columns]
    if missing:
        raise DataError(f"missing feature column(s): {', '.join(missing)}")
    cols = [np.asarray(columns[p], dtype=float) for p in params]
    n = len(cols[0]) if cols else len(next(iter(columns.values()), []))
    texts = complexity.values() if isinstance(complexity, Mapping) else complexity
    if texts:
        fns = [_expr.compile(t, params) for t in texts]
        # IEEE semantics on purpose (e.g. max(0, -inf) where a demand point lies beyond a
        # stream); callers check that the features or predictions they use are finite
        with np.errstate(all="ignore"):
            for f in fns:
                cols.append(np.broadcast_to(np.asarray(f(*cols[:len(params)]), dtype=float),
                                            (n,)))
    return np.column_stack(cols).astype(float, copy=False) if cols else np.empty((n, 0))


def normalise_complexity(complexity) -> dict[str, str]:
    if complexity is None:
        return {}
    if isinstance(complexity, str) and complexity == AUTO:
        raise TypeError("complexity='auto' is resolved inside fit")
    if isinstance(complexity, str):
        return {"complexity": complexity}
    if isinstance(complexity, Mapping):
        return {str(k): str(v) for k, v in complexity.items()}
    raise TypeError("complexity must be None, an expression string, or a dict name -> expr")


def finite_features(columns, params: Sequence[str], complexity: Mapping[str, str]) -> np.ndarray:
    """:func:`feature_matrix`, refused with one error naming the first feature that is NaN or
    infinite (its expression and the row's parameters) where one is."""
    F = feature_matrix(columns, params, complexity)
    bad = ~np.isfinite(F)
    if bad.any():
        i, j = (int(a[0]) for a in np.nonzero(bad))
        names = list(params) + list(complexity)
        what = (f"feature {names[j]!r} = {complexity[names[j]]}" if j >= len(params)
                else f"parameter {names[j]!r}")
        at = ", ".join(f"{p}={F[i, k]:g}" for k, p in enumerate(params))
        raise DataError(f"{what} is {F[i, j]:g} (not finite) on fitted row {i} ({at}) and "
                        f"{int(bad[:, j].sum()) - 1} more; features must be finite numbers")
    return F
