"""The profiling-CSV row format, and the one writer every producer of rows uses.

One row per measured point: ``kernel, variant, hardware``, one column per kernel parameter,
then :data:`TAIL_COLUMNS`. The profiler (every sampler), dispatch feedback and the
accelerator models write rows through :class:`RowWriter`: the header is checked against an
existing file, a torn last line (hard kill) is cut, rows are flushed one by one so that an
interrupted run keeps every finished row, and :meth:`RowWriter.recorded` lets a rerun resume.
This module needs no pandas (the decision side writes feedback rows with it).
"""
from __future__ import annotations

import csv
import os
import time
from pathlib import Path
from typing import Iterable, Mapping, Sequence

from annpred.errors import DataError

KEY_COLUMNS = ("kernel", "variant", "hardware")
TARGET = "runtime_s"
TAIL_COLUMNS = ["runtime_s", "runtime_cv", "repeats", "runtime_min_s", "threads", "sampler",
                "seed", "point", "pass", "timestamp", "annpred_version"]
META_COLUMNS = set(KEY_COLUMNS) | set(TAIL_COLUMNS)


def columns_for(param_names: Iterable[str]) -> list[str]:
    """The header of a profiling CSV for a kernel with these parameters."""
    return [*KEY_COLUMNS, *param_names, *TAIL_COLUMNS]


def version() -> str:
    """The installed annpred version (recorded in every row and model file)."""
    try:
        from importlib.metadata import version as v

        return v("annpred")
    except Exception:  # pragma: no cover - running from a source tree without install
        import annpred

        return annpred.__version__


def read_header(path: Path) -> list[str]:
    """The header of CSV ``path``, checked: present, named columns, no duplicates."""
    try:
        with open(path, newline="", encoding="utf-8") as f:
            header = next(csv.reader(f), None)
    except FileNotFoundError:
        raise DataError(f"{path}: file does not exist") from None
    except IsADirectoryError:
        raise DataError(f"{path}: is a directory, not a CSV file") from None
    except UnicodeDecodeError:
        raise DataError(f"{path}: not a UTF-8 text CSV") from None
    except csv.Error as exc:
        raise DataError(f"{path}: malformed CSV header ({exc})") from None
    if not header or all(not h.strip() for h in header):
        raise DataError(f"{path}: file is empty (no header row)")
    header = [h.strip() for h in header]
    seen = set()
    for i, h in enumerate(header):
        if not h:
            raise DataError(f"{path}: column {i + 1} of the header has no name")
        if h in seen:
            raise DataError(f"{path}: duplicate column {h!r} in the header")
        seen.add(h)
    return header


def repair_tail(path: Path) -> None:
    """Cut a torn last line (no trailing newline) left by a hard kill."""
    with open(path, "rb+") as f:
        f.seek(0, os.SEEK_END)
        size = f.tell()
        if size == 0:
            return
        f.seek(size - 1)
        if f.read(1) == b"\n":
            return
        f.seek(0)
        data = f.read()
        f.truncate(data.rfind(b"\n") + 1)


class RowWriter:
    """Appends profiling rows to ``path`` (created with its header if new or empty)."""

    def __init__(self, path: str | os.PathLike, param_names: Sequence[str]):
        self.path = Path(path)
        self.param_names = list(param_names)
        self.columns = columns_for(self.param_names)
        self._version = version()
        self._f = None
        self._w = None

    def existing(self) -> list[dict]:
        """Rows already in the file (after checking its header and cutting a torn tail)."""
        if not self.path.exists() or self.path.stat().st_size == 0:
            return []
        repair_tail(self.path)
        header = read_header(self.path)
        if header != self.columns:
            raise DataError(f"{self.path}: exists with columns {header}, which do not match "
                            f"this run ({self.columns}); choose another output file")
        with open(self.path, newline="", encoding="utf-8") as f:
            return list(csv.DictReader(f))

    def __enter__(self) -> "RowWriter":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        new = not self.path.exists() or self.path.stat().st_size == 0
        self._f = open(self.path, "a", newline="", encoding="utf-8")
        self._w = csv.writer(self._f, lineterminator="\n")
        if new:
            self._w.writerow(self.columns)
            self._f.flush()
        return self

    def __exit__(self, *exc) -> None:
        if self._f is not None:
            self._f.close()
            self._f = self._w = None

    def write(self, kernel: str, variant: str, hardware: str, point: Mapping, *,
              runtime_s: float, runtime_cv: float | None = None, repeats: int = 1,
              runtime_min_s: float | None = None, threads: int | str = "",
              sampler: str = "", seed: int | str = "", point_id: int | str = "",
              pass_id: int | str = 0) -> None:
        """One measured point; flushed at once."""
        self._w.writerow([
            kernel, variant, hardware, *[point[p] for p in self.param_names],
            repr(float(runtime_s)), "" if runtime_cv is None else f"{runtime_cv:.5f}",
            repeats, repr(float(runtime_s if runtime_min_s is None else runtime_min_s)),
            threads, sampler, seed, point_id, pass_id,
            time.strftime("%Y-%m-%dT%H:%M:%S"), self._version])
        self._f.flush()
