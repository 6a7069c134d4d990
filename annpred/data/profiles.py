"""Profiling CSVs: loading with validation that names file, row and column."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from annpred.data.rows import KEY_COLUMNS, META_COLUMNS, TARGET, read_header
from annpred.errors import DataError

MIN_ROWS = 8


def read_csv(path: str | os.PathLike) -> pd.DataFrame:
    """Read a CSV with string-safe parsing and header checks."""
    path = Path(path)
    header = read_header(path)
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False, skipinitialspace=True)
    except pd.errors.ParserError as exc:
        raise DataError(f"{path}: malformed CSV ({exc})") from None
    df.columns = header
    if len(df) == 0:
        raise DataError(f"{path}: has a header but no data rows")
    return df


def numeric_column(df: pd.DataFrame, col: str, path, *, positive: bool = False) -> np.ndarray:
    """Convert a string column to floats; errors name file, row (1-based, header = row 1)."""
    if col not in df.columns:
        raise DataError(f"{path}: missing column {col!r}; columns: {', '.join(df.columns)}")
    raw = df[col]
    vals = pd.to_numeric(raw, errors="coerce").to_numpy(dtype=float)
    bad = np.flatnonzero(~np.isfinite(vals))
    if len(bad):
        i = int(bad[0])
        what = "empty" if str(raw.iloc[i]).strip() == "" else f"{raw.iloc[i]!r}"
        kind = "not a finite number"
        raise DataError(f"{path}: row {i + 2}, column {col!r}: {what} is {kind}"
                        + (f" ({len(bad)} bad cells in this column)" if len(bad) > 1 else ""))
    if positive:
        bad = np.flatnonzero(vals <= 0)
        if len(bad):
            i = int(bad[0])
            raise DataError(f"{path}: row {i + 2}, column {col!r}: runtime {raw.iloc[i]} is "
                            "not positive")
    return vals


def load_profiles(paths: Sequence[str | os.PathLike], target: str = TARGET,
                  features: Sequence[str] | None = None, kernel: str | None = None,
                  variant: str | None = None, hardware: str | None = None) -> pd.DataFrame:
    """Load and validate CSVs into one frame with numeric target and feature columns.

    ``kernel``/``variant``/``hardware`` fill (or override) the key columns, which external
    CSVs usually lack. The frame gains ``runtime_s`` (from ``target``) and ``_source``.
    """
    if not paths:
        raise DataError("no CSV files given")
    frames = []
    for p in paths:
        df = read_csv(p)
        for key, value in (("kernel", kernel), ("variant", variant), ("hardware", hardware)):
            if value is not None:
                df[key] = value
            elif key not in df.columns:
                raise DataError(f"{p}: missing column {key!r}; external CSVs need --kernel, "
                                "--variant and --hardware (and --target/--features)")
            elif (df[key].str.strip() == "").any():
                i = int(np.flatnonzero((df[key].str.strip() == "").to_numpy())[0])
                raise DataError(f"{p}: row {i + 2}, column {key!r} is empty")
        y = numeric_column(df, target, p, positive=True)
        if features is None:
            feats = [c for c in df.columns if c not in META_COLUMNS and c != target
                     and not c.startswith("_")]
        else:
            feats = list(features)
        out = pd.DataFrame({k: df[k].astype(str) for k in KEY_COLUMNS})
        for c in feats:
            out[c] = numeric_column(df, c, p) if c in df.columns else _missing(df, c, p)
        out[TARGET] = y
        for extra in ("runtime_cv", "repeats", "threads", "point", "pass", "seed"):
            if extra in df.columns and extra not in out.columns:
                out[extra] = pd.to_numeric(df[extra], errors="coerce")
        out["_source"] = str(p)
        out["_row"] = np.arange(2, len(df) + 2)
        frames.append(out)
    return pd.concat(frames, ignore_index=True)


def _missing(df, c, p):
    raise DataError(f"{p}: missing feature column {c!r}; columns: {', '.join(df.columns)}")


def combinations(df: pd.DataFrame):
    """Yield ``((kernel, variant, hardware), frame)`` for each combination."""
    for key, g in df.groupby(list(KEY_COLUMNS), sort=True):
        yield tuple(key), g


def feature_columns(g: pd.DataFrame) -> list[str]:
    """Numeric parameter columns present (non-NaN) in a combination's rows."""
    return [c for c in g.columns if c not in META_COLUMNS and not c.startswith("_")
            and c not in KEY_COLUMNS and g[c].notna().all()]
