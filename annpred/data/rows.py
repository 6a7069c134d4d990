"""The profiling-CSV row format, and the one writer every producer of rows uses.

One row per measured point: ``kernel, variant, hardware``, one column per kernel parameter,
then :data:`TAIL_COLUMNS`; the last, ``machine``, holds the fingerprint of the machine that
measured the row, and the full descriptions live in a sidecar ``<csv>.machine.json``
(``{"format": "annpred-machines/1", "machines": {fingerprint: machine object}}``, see
:mod:`annpred.spec.machine`). Files written before that column existed keep loading, and a
resumed run appends to them in their own format. The profiler (every sampler), dispatch feedback and the
accelerator models write rows through :class:`RowWriter`: the header is checked against an
existing file, a torn last line (hard kill) is cut, rows are flushed one by one so that an
interrupted run keeps every finished row, and :meth:`RowWriter.recorded` lets a rerun resume.
This module needs no pandas (the decision side writes feedback rows with it).
"""
from __future__ import annotations

import csv
import json
import math
import os
import re
import time
from pathlib import Path
from typing import Iterable, Mapping, Sequence

from annpred.errors import DataError
from annpred.validate import column_name, read_limited, regular_file

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no advisory locks, one writer assumed
    fcntl = None
from annpred.files import atomic_write_text

KEY_COLUMNS = ("kernel", "variant", "hardware")
TARGET = "runtime_s"
TAIL_COLUMNS = ["runtime_s", "runtime_cv", "repeats", "runtime_min_s", "threads", "sampler",
                "seed", "point", "pass", "timestamp", "annpred_version"]
# Columns added after the first files were written: a file without them (or without the
# later ones) is still resumed in its own format (its rows simply lack them).
# load_avg: the 1-minute load average when the row was measured; machine: the fingerprint of
# the machine that measured it (descriptions in the sidecar, see the module doc); ref_s: the
# median seconds of a fixed reference kernel timed right after the point (``annpred profile
# --reference``; empty otherwise), for drift correction (:func:`annpred.data.profiles.correct_drift`);
# input_sets: how many distinct input sets the point's runs rotated through (``annpred profile
# --fresh-inputs``, :mod:`annpred.measure.protocol`; empty: one, every run on the same data).
OPTIONAL_COLUMNS = ["load_avg", "machine", "ref_s", "input_sets"]
# a GPU tuning space's problem size ("4096x4096") and constant parameters
# ("filter_height=15;filter_width=15"), written by ``annpred convert`` beside the rows of a
# Kernel Tuner cache so that the CSV trains as the cache does (launch structure); like every
# column starting with "_", never a feature
SPACE_COLUMNS = ["_problem_size", "_constants"]
META_COLUMNS = set(KEY_COLUMNS) | set(TAIL_COLUMNS) | set(OPTIONAL_COLUMNS)
MACHINES_FORMAT = "annpred-machines/1"


def columns_for(param_names: Iterable[str], optional: bool = True) -> list[str]:
    """The header of a profiling CSV for a kernel with these parameters."""
    return [*KEY_COLUMNS, *param_names, *TAIL_COLUMNS, *(OPTIONAL_COLUMNS if optional else [])]


def load_average() -> float | str:
    try:
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):  # pragma: no cover - not on this platform
        return ""


def version() -> str:
    """The installed annpred version (recorded in every row and model file)."""
    try:
        from importlib.metadata import version as v

        return v("annpred")
    except Exception:  # pragma: no cover - running from a source tree without install
        import annpred

        return annpred.__version__


MAX_CSV_BYTES = 1 << 34  # 16 GiB


def sidecar_path(path: str | os.PathLike) -> Path:
    """The machine descriptions of CSV ``path``: ``<path>.machine.json``."""
    return Path(str(path) + ".machine.json")


MAX_SIDECAR_BYTES = 4 << 20  # about 1 KiB a machine: thousands of machines
FINGERPRINT = re.compile(r"^[0-9a-f]{12}$")  # a machine's fingerprint: 12 hex digits


def machine_field_ok(v) -> bool:
    """Whether ``v`` may be a field of a machine object (here and in model files,
    :func:`annpred.model.schema.validate_machine`): text, a finite number, null or a list
    of text."""
    return (v is None or isinstance(v, str)
            or (isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v))
            or (isinstance(v, list) and all(isinstance(x, str) for x in v)))


def read_machines(path: str | os.PathLike) -> dict[str, dict]:
    """Fingerprint -> machine object recorded beside CSV ``path`` ({} without a sidecar).
    Read bounded (a regular file of at most :data:`MAX_SIDECAR_BYTES`, parsed as the JSON
    data files are: :func:`annpred.data.jsondoc.loads`) and checked; anything else is one
    DataError naming the sidecar."""
    from annpred.data import jsondoc

    side = sidecar_path(path)
    if not side.exists():
        return {}
    raw = read_limited(side, "machine descriptions", MAX_SIDECAR_BYTES, DataError)
    try:
        d = jsondoc.loads(raw.decode("utf-8"), side)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"{side}: unreadable machine descriptions ({str(exc)[:100]})") from None
    ms = d.get("machines") if isinstance(d, dict) else None
    if not isinstance(d, dict) or d.get("format") != MACHINES_FORMAT \
            or not isinstance(ms, dict) or not all(
            isinstance(v, dict) and v.get("fingerprint") == k and FINGERPRINT.match(k)
            and all(machine_field_ok(x) for x in v.values()) for k, v in ms.items()):
        raise DataError(f"{side}: not an {MACHINES_FORMAT} file (an object 'machines' "
                        "mapping each fingerprint, 12 hex digits, to a machine object with "
                        "that fingerprint whose fields are text, numbers or lists of text)")
    return ms


def write_machines(path: str | os.PathLike, machines: Mapping[str, dict]) -> None:
    """Add ``machines`` (fingerprint -> object) to the sidecar of CSV ``path`` atomically."""
    have = read_machines(path)
    if all(k in have for k in machines):
        return
    have.update(machines)
    atomic_write_text(sidecar_path(path), json.dumps(
        {"format": MACHINES_FORMAT, "machines": have}, indent=1, sort_keys=True) + "\n")


def read_header(path: Path) -> list[str]:
    """The header of CSV ``path``, checked: a regular file, present, named columns (printable,
    at most 100 characters), no duplicates. A UTF-8 byte-order mark is ignored; spaces after
    a comma are skipped as pandas does (``skipinitialspace``), so both split it alike."""
    regular_file(path, "CSV", MAX_CSV_BYTES, DataError)
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            header = next(csv.reader(f, skipinitialspace=True), None)
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
    for sep, name in ((";", "';'"), ("\t", "a tab")):
        if len(header) == 1 and len(header[0].split(sep)) > 2:
            raise DataError(f"{path}: the file seems to use {name} as the delimiter (its "
                            f"header is one column holding {header[0].count(sep)} of them); "
                            "CSVs must be comma-separated")
    seen = set()
    for i, h in enumerate(header):
        if not h:
            raise DataError(f"{path}: column {i + 1} of the header has no name")
        column_name(h, f"{path}: column {i + 1}", DataError)
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


def lock_path(path: str | os.PathLike) -> Path:
    """The sidecar lock file of a CSV (``<name>.lock`` beside it)."""
    path = Path(path)
    return path.with_name(path.name + ".lock")


def row_values(kernel: str, variant: str, hardware: str, point: Mapping,
               param_names: Sequence[str], *, runtime_s: float,
               runtime_cv: float | None = None, repeats: int | str = 1,
               runtime_min_s: float | None = None, threads: int | str = "",
               sampler: str = "", seed: int | str = "", point_id: int | str = "",
               pass_id: int | str = 0, timestamp: str = "", version: str = "") -> dict:
    """One profiling row by column name (the base columns; writers add optional ones)."""
    return {"kernel": kernel, "variant": variant, "hardware": hardware,
            **{p: point[p] for p in param_names},
            "runtime_s": repr(float(runtime_s)),
            "runtime_cv": "" if runtime_cv is None or runtime_cv != runtime_cv
            else f"{runtime_cv:.5f}",
            "repeats": repeats,
            "runtime_min_s": repr(float(runtime_s if runtime_min_s is None else runtime_min_s)),
            "threads": threads, "sampler": sampler, "seed": seed, "point": point_id,
            "pass": pass_id, "timestamp": timestamp, "annpred_version": version}


class CsvLock:
    """An exclusive, non-blocking ``flock`` on the sidecar :func:`lock_path` of a CSV (or
    another file), held until :meth:`release` (or the process ends, however it ends): a
    second writer of the same file fails at once (after ``wait`` seconds, for a short
    read-merge-write) with a :class:`DataError` naming the file instead of waiting or
    losing rows. Use as a context manager or with :meth:`acquire` (idempotent)."""

    def __init__(self, path: str | os.PathLike, wait: float = 0.0):
        self.path = Path(path)
        self.wait = float(wait)  # seconds to wait for another holder (a short critical part)
        self._fd = None
        self._created = False

    def acquire(self) -> None:
        if self._fd is not None or fcntl is None:
            return
        lp = lock_path(self.path)
        lp.parent.mkdir(parents=True, exist_ok=True)
        self._created = not lp.exists()
        fd = os.open(lp, os.O_RDWR | os.O_CREAT, 0o666)
        deadline = time.monotonic() + self.wait
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError:
                if time.monotonic() < deadline:
                    time.sleep(0.05)
                    continue
            os.close(fd)
            raise DataError(f"{self.path} is being written by another annpred process (it "
                            f"holds {lp.name}); wait for it to finish or choose another "
                            "--out") from None
        self._fd = fd

    def release(self, drop: bool = False) -> None:
        """Release the lock; ``drop``: also remove the lock file if this lock created it."""
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor releases the flock
            self._fd = None
            if drop and self._created:
                lock_path(self.path).unlink(missing_ok=True)

    def __enter__(self) -> "CsvLock":
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()


class RowWriter:
    """Appends profiling rows to ``path`` (created with its header if new or empty).

    One writer per CSV at a time: :meth:`existing` and entering the writer take its
    :class:`CsvLock`, held until the writer exits. A second writer -- another ``annpred
    profile`` on the same ``--out`` -- fails at once instead of duplicating rows."""

    def __init__(self, path: str | os.PathLike, param_names: Sequence[str]):
        self.path = Path(path)
        self.param_names = list(param_names)
        self.columns = columns_for(self.param_names)
        self._version = version()
        self._f = None
        self._w = None
        self._lock = CsvLock(self.path)
        self._machines: dict[str, str] = {}  # hardware id -> fingerprint (sidecar written)

    def acquire(self) -> None:
        """Take the exclusive lock on the CSV (idempotent); raise if another holds it."""
        self._lock.acquire()

    def release(self) -> None:
        self._lock.release()

    def _older(self, header: list[str]) -> bool:
        """A header written before some optional columns existed (resumed as it is)."""
        base = columns_for(self.param_names, optional=False)
        return any(header == base + OPTIONAL_COLUMNS[:k] for k in range(len(OPTIONAL_COLUMNS)))

    def existing(self) -> list[dict]:
        """Rows already in the file (after checking its header and runtimes and cutting a
        torn tail). A file refused here is left as it was, without a lock file beside it."""
        self.acquire()
        try:
            return self._existing()
        except DataError:
            self._lock.release(drop=True)
            raise

    def _existing(self) -> list[dict]:
        if not self.path.exists() or self.path.stat().st_size == 0:
            return []
        header = read_header(self.path)  # before the repair: a refused file stays as it was
        if self._older(header):
            self.columns = header  # an older file: keep its header
        if header != self.columns:
            raise DataError(f"{self.path}: exists with columns {header}, which do not match "
                            f"this run ({self.columns}); choose another output file")
        repair_tail(self.path)
        with open(self.path, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
        for i, r in enumerate(rows):  # appending to an untrainable file helps nobody
            try:
                ok = math.isfinite(t := float(r.get("runtime_s") or "nan")) and t > 0
            except ValueError:
                ok = False
            if not ok:
                raise DataError(f"{self.path}: row {i + 2}, column 'runtime_s': "
                                f"{r.get('runtime_s')!r} is not a positive runtime; mend the "
                                "file or choose another output file")
        return rows

    def __enter__(self) -> "RowWriter":
        self.acquire()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        new = not self.path.exists() or self.path.stat().st_size == 0
        if new:
            self.columns = columns_for(self.param_names)
        else:
            header = read_header(self.path)
            if self._older(header):
                self.columns = header
        self._f = open(self.path, "a", newline="", encoding="utf-8")
        self._w = csv.writer(self._f, lineterminator="\n")
        if new:
            self._w.writerow(self.columns)
            self._f.flush()
        return self

    def __exit__(self, *exc) -> None:
        try:
            if self._f is not None:
                self._f.close()
                self._f = self._w = None
        finally:
            self.release()

    def write(self, kernel: str, variant: str, hardware: str, point: Mapping, *,
              runtime_s: float, runtime_cv: float | None = None, repeats: int = 1,
              runtime_min_s: float | None = None, threads: int | str = "",
              sampler: str = "", seed: int | str = "", point_id: int | str = "",
              pass_id: int | str = 0, ref_s: float | None = None,
              input_sets: int | None = None) -> None:
        """One measured point; flushed at once (with this machine's fingerprint when the
        file has the column, the reference kernel's seconds when measured, and the number of
        input sets the runs rotated through when they did)."""
        row = row_values(kernel, variant, hardware, point, self.param_names,
                         runtime_s=runtime_s, runtime_cv=runtime_cv, repeats=repeats,
                         runtime_min_s=runtime_min_s, threads=threads, sampler=sampler,
                         seed=seed, point_id=point_id, pass_id=pass_id,
                         timestamp=time.strftime("%Y-%m-%dT%H:%M:%S"), version=self._version)
        row["load_avg"] = load_average()
        for col, val in (("ref_s", None if ref_s is None else repr(float(ref_s))),
                         ("input_sets", None if input_sets is None else str(int(input_sets)))):
            if val is not None:
                if col not in self.columns:
                    raise DataError(f"{self.path} was written before the {col} column "
                                    "existed; write to a new --out file")
                row[col] = val
        if "machine" in self.columns:
            row["machine"] = self._fingerprint(hardware)
        self._w.writerow([row.get(c, "") for c in self.columns])
        self._f.flush()

    def _fingerprint(self, hardware: str) -> str:
        fp = self._machines.get(hardware)
        if fp is None:
            from annpred.spec.hardware import machine

            m = machine(hardware)
            fp = self._machines[hardware] = m["fingerprint"]
            write_machines(self.path, {fp: m})
        return fp
