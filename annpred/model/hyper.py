"""Up-front checks of :class:`~annpred.model.estimator.AugmentedNNRegressor`'s
hyperparameters and inputs (numpy only; torch is not imported here).

``fit`` calls :func:`check_params` before it reads the data and :func:`check_layout` once
the number of network inputs is known, so that a bad value is refused with one
:class:`~annpred.errors.ParameterError` (or :class:`~annpred.errors.DataError` for the data)
that names the parameter, before any training starts. Valid values pass through unchanged:
the checks never alter what a fit computes."""
from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from annpred.errors import DataError, ParameterError
from annpred.model.features import AUTO
from annpred.model.network import ACTIVATIONS, TRANSFORMS, count_params, default_hidden
from annpred.validate import MAX_SEED, shown

OPTIMIZERS = ("lbfgs", "adam")
LOSSES = ("huber", "mse", "l1", "mape")  # and "auto" (the estimator chooses among them)
# Validation rows are carved from the training rows: above a half the network would be fitted
# on fewer rows than choose its stopping point, loss and features (and at 1.0 on none).
MAX_VAL_FRACTION = 0.5


@dataclass(frozen=True)
class Resolved:
    """Parameters in the form ``fit`` uses: the seed drawn for ``seed=None``, and ``hidden``
    as a tuple (an int ``h`` means one hidden layer of ``h`` units)."""
    seed: int
    hidden: tuple[int, ...] | None


def _int(value, name: str, lo: int, hi: int | None = None, none_ok: bool = False):
    if value is None and none_ok:
        return None
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise ParameterError(f"{name} must be an integer >= {lo}"
                             + (" or None" if none_ok else "") + f", got {shown(value)}")
    if value < lo or (hi is not None and value > hi):
        raise ParameterError(f"{name} must be an integer >= {lo}"
                             + (f" and <= {hi}" if hi is not None else "") + f", got {value}")
    return int(value)


def _number(value, name: str, lo: float, hi: float = math.inf, *, open_lo=False,
            open_hi=False, none_ok=False, why: str = ""):
    if value is None and none_ok:
        return
    ok = (not isinstance(value, (bool, np.bool_)) and isinstance(value, (int, float, np.integer, np.floating))
          and math.isfinite(float(value)))
    if ok:
        v = float(value)
        ok = (v > lo if open_lo else v >= lo) and (v < hi if open_hi else v <= hi)
    if not ok:
        rng = (("(" if open_lo else "[") + f"{lo:g}, {hi:g}" + (")" if open_hi else "]")
               if math.isfinite(hi) else (f"> {lo:g}" if open_lo else f">= {lo:g}"))
        raise ParameterError(f"{name} must be a number {'in ' if math.isfinite(hi) else ''}"
                             f"{rng}{' or None' if none_ok else ''}{why}, got {shown(value)}")


def _choice(value, name: str, allowed) -> None:
    if not isinstance(value, str) or value not in allowed:
        raise ParameterError(f"{name} must be one of {', '.join(map(repr, allowed))}, "
                             f"got {shown(value)}")


def _bool(value, name: str) -> None:
    if not isinstance(value, (bool, np.bool_)):
        raise ParameterError(f"{name} must be True or False, got {shown(value)}")


def _names(value, name: str) -> None:
    if value is None:
        return
    if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
        raise ParameterError(f"{name} must be a list of column names (or None), got "
                             f"{shown(value)}")


def _complexity(value, name: str) -> None:
    if name != "complexity" and isinstance(value, str) and value.strip() == AUTO:
        raise ParameterError(f"{name} cannot be 'auto': it is the expression(s) that "
                             "complexity='auto' starts from (a string or a dict), or None")
    if value is None or isinstance(value, (str, Mapping)):
        return
    raise ParameterError(
        f"{name} must be None, 'auto', an expression string such as 'm*n*k', or a dict "
        "name -> expression such as {'flops': 'm*n*k', 'words': 'm*k + k*n'} (several "
        f"expressions go in a dict), got {shown(value)}")


def hidden_tuple(hidden) -> tuple[int, ...] | None:
    """``hidden`` as a tuple of layer sizes (None stays None; an int is one layer)."""
    if hidden is None:
        return None
    if isinstance(hidden, (int, np.integer)) and not isinstance(hidden, (bool, np.bool_)):
        return (int(hidden),)
    return tuple(int(h) for h in hidden)


def seed_or_draw(seed) -> int:
    """``seed``, or for ``None`` one drawn from numpy's global random state (as scikit-learn
    does for ``random_state=None``): the fit is then random, and ``seed_`` records it."""
    if seed is None:
        return int(np.random.randint(0, MAX_SEED + 1, dtype=np.int64))
    return int(seed)


def check_params(est) -> Resolved:
    """Every hyperparameter of ``est`` that can be checked without the data."""
    _complexity(est.complexity, "complexity")
    _complexity(est.base_complexity, "base_complexity")
    _names(est.parameters, "parameters")
    _names(est.feature_names, "feature_names")
    _int(est.seed, "seed", 0, MAX_SEED, none_ok=True)
    h = est.hidden
    if h is not None and not (isinstance(h, (int, np.integer))
                              and not isinstance(h, (bool, np.bool_))):
        if isinstance(h, (str, bytes)) or not hasattr(h, "__iter__"):
            raise ParameterError("hidden must be None, an integer (one hidden layer) or a "
                                 f"tuple of layer sizes such as (8,) or (4, 3), got {shown(h)}")
        h = list(h)
        for size in h:
            _int(size, "hidden: every layer size", 1)
    else:
        _int(h, "hidden", 1, none_ok=True)
    _choice(est.activation, "activation", sorted(ACTIVATIONS))
    _bool(est.skip, "skip")
    _bool(est.select_complexity, "select_complexity")
    _int(est.max_epochs, "max_epochs", 0, none_ok=True)
    _int(est.patience, "patience", 0, none_ok=True)
    _int(est.n_init, "n_init", 1)
    _int(est.refit_iter, "refit_iter", 0)
    _int(est.choice_rows, "choice_rows", 8, none_ok=True)
    _int(est.max_params, "max_params", 2)
    _number(est.lr, "lr", 0, open_lo=True)
    _number(est.weight_decay, "weight_decay", 0)
    _number(est.huber_delta, "huber_delta", 0, none_ok=True)
    _number(est.val_fraction, "val_fraction", 0, MAX_VAL_FRACTION,
            why=" (the share of the training rows held out to validate; 0 = no split)")
    _number(est.coverage, "coverage", 0, 1, open_lo=True, open_hi=True)
    _choice(est.optimizer, "optimizer", OPTIMIZERS)
    _choice(est.loss, "loss", LOSSES + (AUTO,))
    it = est.input_transform
    allowed = (AUTO,) + TRANSFORMS
    if isinstance(it, str) or it is None or not hasattr(it, "__iter__"):
        if it not in allowed:
            raise ParameterError(
                f"input_transform must be one of {', '.join(map(repr, allowed))} or a list of "
                f"{' / '.join(map(repr, TRANSFORMS))} (one per network input), got {shown(it)}")
    else:
        bad = [t for t in it if not isinstance(t, str) or t not in TRANSFORMS]
        if bad:
            raise ParameterError(f"input_transform lists {shown(bad[0])}; each entry must be "
                                 f"one of {', '.join(map(repr, TRANSFORMS))}")
    if est.steps is not None:
        if not isinstance(est.steps, Mapping):
            raise ParameterError(f"steps must be None or a dict parameter -> period, got "
                                 f"{shown(est.steps)}")
        for k, v in est.steps.items():
            _int(v, f"steps[{k!r}]", 2)
    if est.constants is not None and not isinstance(est.constants, Mapping):
        raise ParameterError(f"constants must be None or a dict parameter -> value, got "
                             f"{shown(est.constants)}")
    ps = est.problem_size
    if ps is not None and (isinstance(ps, (str, bytes)) or not hasattr(ps, "__iter__")):
        raise ParameterError(f"problem_size must be None or a sequence of numbers (x, y, z), "
                             f"got {shown(ps)}")
    return Resolved(seed=seed_or_draw(est.seed), hidden=hidden_tuple(est.hidden))


def check_layout(est, resolved: Resolved, params: list, n_complexity: int) -> None:
    """What depends on the number of network inputs (``params`` + ``n_complexity``
    complexity features; with ``complexity="auto"`` the base set, which the search only
    extends): a list ``input_transform`` of that length, and a network under ``max_params``."""
    n_in = len(params) + n_complexity
    auto = isinstance(est.complexity, str) and est.complexity == AUTO
    it = est.input_transform
    if not isinstance(it, str):
        if auto:
            raise ParameterError("input_transform as a list needs fixed complexity features; "
                                 "with complexity='auto' give 'auto', 'log' or 'identity'")
        if len(list(it)) != n_in:
            raise ParameterError(f"input_transform lists {len(list(it))} transform(s) but the "
                                 f"network has {n_in} inputs ({len(params)} parameter(s), "
                                 f"then {n_complexity} complexity feature(s))")
    if resolved.hidden is not None:
        n = count_params(n_in, resolved.hidden, bool(est.skip))
        if n >= est.max_params:
            raise ParameterError(
                f"hidden={resolved.hidden}: a network with {n_in} inputs and hidden layers "
                f"{resolved.hidden} has {n} trainable parameters; the limit is fewer than "
                f"{est.max_params} (max_params); use smaller layers, or hidden=None for the "
                "widest single layer that fits")
    else:
        try:
            default_hidden(n_in, est.max_params)
        except ValueError as exc:
            raise ParameterError(f"max_params={est.max_params}: {exc}") from None


def text_columns(X, exc: Exception) -> DataError | None:
    """For a DataFrame ``X`` that failed to convert to numbers: a :class:`DataError` naming
    its text columns and pointing to ``parameters=[...]`` (None for anything else)."""
    if not hasattr(X, "columns"):
        return None
    import pandas as pd

    bad, numeric = [], []
    try:
        for c in X.columns:
            col = X[c]
            if pd.api.types.is_numeric_dtype(col) or pd.api.types.is_bool_dtype(col):
                numeric.append(str(c))
                continue
            try:
                conv = pd.to_numeric(col, errors="coerce")
            except (TypeError, ValueError):
                bad.append(str(c))
                continue
            (bad if (conv.isna() & col.notna()).any() else numeric).append(str(c))
    except Exception:  # duplicate or odd column labels: keep the original error
        return None
    if not bad:
        return None
    more = ", ..." if len(numeric) > 12 else ""
    hint = f" (its numeric columns: {', '.join(numeric[:12])}{more})" if numeric else ""
    return DataError(f"X has column(s) that are not numbers: {', '.join(bad[:12])} ({exc}); "
                     "the network's inputs must be numbers: pass parameters=[...] naming the "
                     f"parameter columns to use{hint}")


def data_error(est, exc: ValueError) -> DataError:
    """scikit-learn's refusal of ``X`` (NaN, wrong number of columns, ...) as a
    :class:`DataError` with the same text; a wrong width also names the fitted columns."""
    msg = str(exc)
    names = getattr(est, "feature_names_in_", None)
    if names is None:
        names = getattr(est, "parameters_", None)
    if msg.startswith("X has ") and "features, but" in msg and names is not None:
        msg += f" (the fitted columns, in this order: {', '.join(map(str, names))})"
    return DataError(msg)
