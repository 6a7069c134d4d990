"""Profiling CSVs: loading with validation that names file, row and column."""
from __future__ import annotations

import math
import os
import warnings
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from annpred.data import checks as _checks
from annpred.data import kerneltuner as _kt
from annpred.data import transfer as _transfer
from annpred.data.rows import (KEY_COLUMNS, META_COLUMNS, SPACE_COLUMNS, TARGET, read_header,
                               read_machines)
from annpred.errors import AnnpredWarning, DataError
from annpred.validate import safe_name

MIN_ROWS = 8


TEXT_COLUMNS = (*KEY_COLUMNS, "sampler", "timestamp", "annpred_version", *SPACE_COLUMNS)
MIN_RUNTIME, MAX_RUNTIME = 1e-15, 1e9  # seconds a measured runtime can take (1 fs .. 30 yr)


def read_csv(path: str | os.PathLike) -> pd.DataFrame:
    """Read a CSV: the header checked by :func:`annpred.data.rows.read_header` (one split
    shared with pandas), every row with as many fields as the header, text columns as
    categories and the others parsed by pandas (numbers as floats, fast); a column holding
    anything else stays text and :func:`numeric_column` names its first bad cell."""
    path = Path(path)
    header = read_header(path)
    text = {i: "category" for i, h in enumerate(header) if h in TEXT_COLUMNS}
    try:
        df = pd.read_csv(path, header=None, skiprows=1, dtype=text, skipinitialspace=True,
                         encoding="utf-8", keep_default_na=False, na_values=[""],
                         skip_blank_lines=True, low_memory=False)
    except pd.errors.EmptyDataError:
        df = pd.DataFrame()
    except pd.errors.ParserError as exc:
        raise DataError(f"{path}: malformed CSV ({str(exc).replace('C error: ', '')}; "
                        f"the header has {len(header)} columns)") from None
    except (UnicodeDecodeError, ValueError, OverflowError) as exc:
        raise DataError(f"{path}: unreadable CSV ({str(exc)[:120]})") from None
    if len(df) == 0:
        raise DataError(f"{path}: has a header but no data rows")
    if df.shape[1] != len(header):
        _check_row_lengths(path, len(header))
        raise DataError(f"{path}: rows have {df.shape[1]} fields but the header names "
                        f"{len(header)} columns")
    df.columns = header
    if df[header[-1]].isna().any():  # an empty last cell, or a short row
        _check_row_lengths(path, len(header))
    return df


def _check_row_lengths(path: Path, n: int) -> None:
    """Raise naming the first row whose field count differs from the header's."""
    import csv

    with open(path, newline="", encoding="utf-8-sig") as f:
        for i, row in enumerate(csv.reader(f, skipinitialspace=True)):
            if row and len(row) != n:
                raise DataError(f"{path}: row {i + 1} has {len(row)} fields; the header "
                                f"names {n} columns")


def _float(cell) -> float:
    try:
        return float(str(cell).strip())
    except (ValueError, OverflowError):
        return math.nan


def floats(raw: pd.Series) -> np.ndarray:
    """A column as floats (NaN where a cell is not a number); pandas' fast path for columns
    it parsed as numbers, a per-cell conversion for the rest (huge integers included)."""
    if pd.api.types.is_numeric_dtype(raw.dtype) and not pd.api.types.is_bool_dtype(raw.dtype):
        try:
            return raw.to_numpy(dtype=float)
        except (OverflowError, TypeError, ValueError):
            pass
    if pd.api.types.is_bool_dtype(raw.dtype):
        return np.full(len(raw), math.nan)
    try:
        out = pd.to_numeric(raw.astype(str), errors="coerce")
        return out.to_numpy(dtype=float)
    except (OverflowError, TypeError, ValueError):
        return np.fromiter((_float(c) for c in raw), dtype=float, count=len(raw))


def numeric_column(df: pd.DataFrame, col: str, path, *, positive: bool = False) -> np.ndarray:
    """Convert a column to floats; errors name file, row (1-based, header = row 1)."""
    if col not in df.columns:
        raise DataError(f"{path}: missing column {col!r}; columns: {', '.join(df.columns)}")
    raw = df[col]
    vals = floats(raw)
    bad = np.flatnonzero(~np.isfinite(vals))
    if len(bad):
        i = int(bad[0])
        cell = raw.iloc[i]
        what = ("empty" if cell is None or (isinstance(cell, float) and np.isnan(cell))
                or str(cell).strip() == "" else repr(str(cell)[:40]))
        kind = "not a finite number"
        raise DataError(f"{path}: row {i + 2}, column {col!r}: {what} is {kind}"
                        + (f" ({len(bad)} bad cells in this column)" if len(bad) > 1 else ""))
    if positive:
        bad = np.flatnonzero((vals < MIN_RUNTIME) | (vals > MAX_RUNTIME))
        if len(bad):
            i = int(bad[0])
            raise DataError(f"{path}: row {i + 2}, column {col!r}: runtime {raw.iloc[i]} is "
                            + ("not positive" if vals[i] <= 0 else
                               f"outside [{MIN_RUNTIME:g}, {MAX_RUNTIME:g}] seconds"))
    return vals


def load_profiles(paths: Sequence[str | os.PathLike], target: str = TARGET,
                  features: Sequence[str] | None = None, kernel: str | None = None,
                  variant: str | None = None, hardware: str | None = None,
                  drift_correct: bool = False, problem_size: str | None = None,
                  constants: str | None = None, transfer: str | None = None) -> pd.DataFrame:
    """Load and validate CSVs into one frame with numeric target and feature columns.

    ``kernel``/``variant``/``hardware`` fill the key columns, which external CSVs usually
    lack; where a CSV has the column with one value, they rename it, and where it holds
    several (a profile of several variants), they select the rows of that value. The frame
    gains ``runtime_s`` (from ``target``) and ``_source``.
    ``drift_correct``: runtimes corrected with the recorded reference timings (see
    :func:`correct_drift`).
    ``problem_size``/``constants``: a GPU tuning space's problem size (``4096x4096``) and
    constant parameters (``filter_width=15``) for every row, in place of what a file
    records (T4 files and other tools' CSVs record none), for the launch structure.
    ``transfer``: a file of the same tuning space on another device, whose runtimes become
    the input column ``transfer_s`` (:mod:`annpred.data.transfer`).
    """
    _kt.space_arguments(problem_size, constants)  # checked before any file is read
    if not paths:
        raise DataError("no CSV files given")
    frames = []
    for p in paths:
        if _kt.is_cache_file(p):  # a Kernel Tuner cache file: one row per configuration
            frames.append(_cache_frame(p, features, kernel, variant, hardware))
            continue
        df = read_csv(p)
        keep = np.ones(len(df), bool)  # rows of the selected kernel/variant/hardware
        file_kernels = (sorted(df["kernel"].dropna().astype(str).unique())
                        if "kernel" in df.columns else [])  # before --kernel renames them
        for key, value in (("kernel", kernel), ("variant", variant), ("hardware", hardware)):
            present = (sorted(df[key].dropna().astype(str).unique())
                       if value is not None and key in df.columns else [])
            if len(present) > 1:  # select, never merge several kernels/variants/hardware
                keep &= (df[key].astype(str) == str(value)).to_numpy()
                if not keep.any():
                    raise DataError(f"{p}: no rows with {key} {value!r} (the column "
                                    f"{key!r} holds {', '.join(present)})")
            elif value is not None:
                df[key] = value
            elif key not in df.columns:
                raise DataError(f"{p}: missing column {key!r}; external CSVs need --kernel, "
                                "--variant and --hardware (and --target/--features)")
            else:
                empty = df[key].isna().to_numpy()
                if empty.any():
                    i = int(np.flatnonzero(empty)[0])
                    raise DataError(f"{p}: row {i + 2}, column {key!r} is empty")
                for name in df[key].astype(str).unique():  # few distinct values
                    safe_name(name, f"{p}: column {key!r}:", DataError)
        _checks.catalog_rows(df, p, keep, features, file_kernels)
        y = numeric_column(df, target, p, positive=True)
        if features is None:
            feats = [c for c in df.columns if c not in META_COLUMNS and c != target
                     and not c.startswith("_")]
        else:
            feats = list(features)
        for key, value in (("kernel", kernel), ("variant", variant), ("hardware", hardware)):
            if value is not None:
                safe_name(value, key, DataError)
        if target in feats:
            raise DataError(f"the target column {target!r} cannot also be a feature")
        out = pd.DataFrame({k: df[k].astype(str) for k in KEY_COLUMNS})
        for c in feats:
            out[c] = numeric_column(df, c, p) if c in df.columns else _missing(df, c, p)
        out[TARGET] = y
        for extra in _checks.BOOKKEEPING:
            if extra in df.columns and extra not in out.columns:
                out[extra] = _checks.bookkeeping(df, extra, p)
        if "sampler" in df.columns:
            out["sampler"] = df["sampler"].astype(str)
        out["machine"] = (df["machine"].astype(str).str.strip() if "machine" in df.columns
                          else "")
        for extra in SPACE_COLUMNS:  # a converted Kernel Tuner cache's problem size and
            if extra in df.columns:  # constant parameters, for the launch structure
                out[extra] = df[extra].astype(object).where(df[extra].notna(), "").astype(str)
        if "timestamp" in df.columns:  # provenance: when the rows were measured
            out["timestamp"] = df["timestamp"]  # text (a category: millions of rows are cheap)
        out["_source"] = str(p)
        out["_row"] = np.arange(2, len(df) + 2)
        frames.append(out if keep.all() else out[keep])
    df = pd.concat(frames, ignore_index=True)
    df = _kt.with_space(df, problem_size, constants)
    df = correct_drift(df) if drift_correct else df
    return _transfer.with_transfer(df, transfer, kernel, variant)


REF_WINDOW = 15  # measurements (in time order) in the reference's running median


def smooth_reference(ref: pd.Series) -> pd.Series:
    """The running median of reference timings over the ``REF_WINDOW`` measurements around
    each (rows in time order): drift is slow, the jitter of one reference timing is not."""
    return ref.rolling(REF_WINDOW, center=True, min_periods=1).median()


def correct_drift(df: pd.DataFrame) -> pd.DataFrame:
    """Runtimes corrected for the machine's drift with the reference kernel timed beside each
    point (``annpred profile --reference``, column ``ref_s``): ``runtime_s * median(ref_s) /
    ref``, the median over the rows of the same file and hardware id, ``ref`` the running
    median of ``ref_s`` around the row (:func:`smooth_reference`; a file's rows are in the
    order they were measured). A point measured while the machine ran 20% slow (its
    reference 20% slower than usual) is scaled back. The raw runtime stays in
    ``_runtime_raw_s``. Every row needs a positive ``ref_s``.

    It helps where the drift slows the point and the reference alike: compute-bound kernels
    with the default compute reference; a memory-bound kernel's drift follows bandwidth,
    which a small in-cache product does not track (see README, noise floor)."""
    if "ref_s" not in df.columns:
        src = df["_source"].iloc[0] if len(df) else "the data"
        raise DataError(f"{src}: no ref_s column to drift-correct with; profile with "
                        "`annpred profile --reference` (or drop --drift-correct)")
    ref = df["ref_s"].to_numpy(dtype=float)
    bad = np.flatnonzero(~(np.isfinite(ref) & (ref > 0)))
    if len(bad):
        i = int(bad[0])
        raise DataError(f"{df['_source'].iloc[i]}: row {int(df['_row'].iloc[i])}, column "
                        f"'ref_s': {'empty' if np.isnan(ref[i]) else ref[i]} is not a positive "
                        f"reference time ({len(bad)} such rows); drift correction needs every "
                        "row measured with --reference")
    out = df.copy()
    groups = out.groupby(["_source", "hardware"], sort=False)["ref_s"]
    med = groups.transform("median").to_numpy(dtype=float)
    smooth = groups.transform(smooth_reference).to_numpy(dtype=float)
    out["_runtime_raw_s"] = out[TARGET]
    out[TARGET] = out[TARGET].to_numpy(dtype=float) * med / smooth
    return out


def _cache_frame(p, features, kernel, variant, hardware) -> pd.DataFrame:
    for key, value in (("kernel", kernel), ("variant", variant), ("hardware", hardware)):
        if value is not None:
            safe_name(value, key, DataError)
    df = _kt.load_frame(p, kernel, hardware)  # names the user gives: no guesses reported
    if variant is not None:
        df["variant"] = variant
    if features is not None:
        for c in features:
            if c not in df.columns:
                _missing(df, c, p)
        keep = [*KEY_COLUMNS, *features, TARGET, "runtime_cv", "repeats", "_source", "_row",
                "_problem_size", "_constants"]
        df = df[[c for c in dict.fromkeys(keep) if c in df.columns]]
    return df


def _missing(df, c, p):
    raise DataError(f"{p}: missing feature column {c!r}; columns: {', '.join(df.columns)}")


def machine_of(g: pd.DataFrame) -> dict | None:
    """The machine object that measured every row of ``g`` (one combination), from the
    ``machine`` column and the sidecars of the rows' source CSVs; None when the rows carry
    no fingerprint (older files) or come from several machines. A fingerprint without its
    sidecar gives ``{"fingerprint": ...}`` alone."""
    if "machine" not in g.columns:
        return None
    fps = set(g["machine"].astype(str))
    if len(fps) != 1 or "" in fps or "nan" in fps:
        return None
    fp = fps.pop()
    for src in sorted(set(g["_source"])) if "_source" in g.columns else []:
        try:
            m = read_machines(src).get(fp)
        except DataError as exc:  # the description is optional: the fingerprint is kept
            warnings.warn(f"{exc}; the machine is recorded by its fingerprint {fp} alone",
                          AnnpredWarning, stacklevel=2)
            continue
        if m is not None:
            return dict(m)
    return {"fingerprint": fp}


def combinations(df: pd.DataFrame):
    """Yield ``((kernel, variant, hardware), frame)`` for each combination."""
    for key, g in df.groupby(list(KEY_COLUMNS), sort=True):
        yield tuple(key), g


def feature_columns(g: pd.DataFrame) -> list[str]:
    """Numeric parameter columns present (non-NaN) in a combination's rows."""
    return [c for c in g.columns if c not in META_COLUMNS and not c.startswith("_")
            and c not in KEY_COLUMNS and g[c].notna().all()]
