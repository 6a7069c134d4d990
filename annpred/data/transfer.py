"""Another device's runtimes as an input: ``--transfer FILE``.

A tuning space measured on one GPU says much about the same space on another: the same
configurations are fast or slow for the same reasons (tiles, shared memory, launch shape),
scaled and bent by the device. ``--transfer FILE`` (``train``, ``evaluate``,
``tune-space``) reads FILE, a Kernel Tuner cache, T4 results file or profiling CSV of the
same kernel on another device, and gives every row one more input column, ``transfer_s``:
that configuration's runtime in FILE. The model then learns how this device differs, which
takes far fewer measurements than learning the space (``experiments/transfer.py``).

Configurations FILE lacks (failed there, or not in its space) get the prediction of a
gradient-boosted tree fitted on FILE's rows (log runtime on the tuning parameters), and a
warning counts them. A model trained with the column takes it as one more parameter:
``annpred predict ... transfer_s=0.0123``.
"""
from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import AnnpredWarning, DataError
from . import kerneltuner as _kt

COLUMN = "transfer_s"


class TransferWarning(AnnpredWarning):
    """Some configurations are not in the ``--transfer`` file; their runtime there is
    predicted."""


@dataclass
class TransferTable:
    """The runtimes of one tuning space on another device, by configuration."""

    path: str
    params: list  # the tuning parameters FILE varies
    constants: dict  # the ones it holds at one value
    runtimes: dict  # configuration (tuple of floats over ``params``) -> median runtime (s)
    frame: pd.DataFrame  # FILE's rows: params and runtime_s
    _model: object = None

    def lookup(self, rows: pd.DataFrame) -> tuple[np.ndarray, int]:
        """Runtime in FILE of each row of ``rows`` (which must hold ``params`` or agree
        with ``constants``), and how many were predicted instead of found."""
        missing = [p for p in self.params if p not in rows.columns]
        if missing:
            raise DataError(f"--transfer {self.path}: the data have no parameter "
                            f"{missing[0]!r}, which {os.path.basename(self.path)} varies: "
                            "is it the same tuning space?")
        keys = rows[self.params].to_numpy(dtype=float)
        out = np.array([self.runtimes.get(tuple(k), np.nan) for k in keys.tolist()])
        for p, v in self.constants.items():  # FILE held p at v: other values are not in it
            if p in rows.columns:
                out[rows[p].to_numpy(dtype=float) != v] = np.nan
        gap = np.isnan(out)
        if gap.all() and len(out):
            raise DataError(f"--transfer {self.path} shares no configuration with the data "
                            f"(parameters {', '.join(self.params)}): is it the same tuning "
                            "space?")
        if gap.any():
            out[gap] = np.exp(self._fitted().predict(keys[gap]))
        return out, int(gap.sum())

    def _fitted(self):
        if self._model is None:
            from sklearn.ensemble import HistGradientBoostingRegressor

            self._model = HistGradientBoostingRegressor(random_state=0).fit(
                self.frame[self.params].to_numpy(dtype=float),
                np.log(self.frame["runtime_s"].to_numpy(dtype=float)))
        return self._model


def read_table(path: str | os.PathLike, kernel: str | None = None,
               variant: str | None = None) -> TransferTable:
    """Read ``path`` (one kernel on one device) as a :class:`TransferTable`."""
    from . import profiles

    with warnings.catch_warnings():  # its kernel/device names do not matter here
        warnings.simplefilter("ignore", _kt.NameFromFileWarning)
        if _kt.is_cache_file(path):  # a configuration recorded twice: the median, below
            df = _kt.load_frame(path, kernel, unique=False)
        else:
            df = profiles.load_profiles([str(path)], kernel=kernel, variant=variant,
                                        hardware=None if _has_hardware(path) else "transfer")
    combos = list(profiles.combinations(df))
    if len(combos) != 1:
        raise DataError(f"--transfer {path}: holds {len(combos)} kernel-variant-hardware "
                        "combinations; give a file of one kernel on one device")
    g = combos[0][1]
    params = [p for p in profiles.feature_columns(g) if p != COLUMN]
    if not params:
        raise DataError(f"--transfer {path}: no numeric tuning parameters")
    per = g.groupby(params, sort=False)["runtime_s"].median()  # repeats, passes: one value
    runtimes = {tuple(float(v) for v in (k if isinstance(k, tuple) else (k,))): float(t)
                for k, t in per.items()}
    return TransferTable(str(path), params, _kt.space_constants(g) or {}, runtimes,
                         g[params + ["runtime_s"]].reset_index(drop=True))


def _has_hardware(path) -> bool:
    """Whether a CSV names its hardware (caches and T4 files always give one)."""
    from .rows import read_header

    return _kt.is_cache_file(path) or "hardware" in read_header(Path(path))


def with_transfer(df: pd.DataFrame, source: "str | os.PathLike | TransferTable | None",
                  kernel: str | None = None, variant: str | None = None) -> pd.DataFrame:
    """``df`` with the ``transfer_s`` column from ``source`` (a path or a table read
    already; ``df`` unchanged for None)."""
    if source is None:
        return df
    table = source if isinstance(source, TransferTable) else read_table(source, kernel,
                                                                          variant)
    path = table.path
    if "kernel" in df.columns and df["kernel"].nunique() > 1:
        raise DataError(f"--transfer {path}: the data hold {df['kernel'].nunique()} kernels; "
                        "a transfer file serves one (select it with --kernel)")
    from .profiles import feature_columns

    extra = [p for p in feature_columns(df) if p != COLUMN and p not in table.params
             and p not in table.constants]
    if extra:
        raise DataError(f"--transfer {path} has no parameter {extra[0]!r}, which the data "
                        "vary: is it the same tuning space?")
    held = _kt.space_constants(df) or {}  # e.g. the filter size both spaces fix
    for p, v in held.items():
        if p in table.constants and table.constants[p] != v:
            raise DataError(f"--transfer {path} holds {p}={table.constants[p]:g}, the data "
                            f"{p}={v:g}: another tuning space")
    out = df.copy()
    values, gap = table.lookup(out)
    out[COLUMN] = values
    if gap:
        warnings.warn(f"--transfer {path}: {gap} of {len(out)} configurations are not in it "
                      "(failed there, or outside its space); their transfer_s is predicted "
                      "by a tree fitted on its rows", TransferWarning, stacklevel=2)
    return out
