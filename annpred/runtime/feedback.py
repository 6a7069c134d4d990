"""Measured runtimes of dispatched calls beside their predictions; CSV export and refit."""
from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from annpred.data.rows import CsvLock, RowWriter, read_machines, write_machines
from annpred.errors import ParameterError
from annpred.runtime import caches
from annpred.runtime.choice import Choice
from annpred.spec import hardware as hw
from annpred.validate import number


@dataclass
class FeedbackRecord:
    kernel: str
    params: dict
    variant: str
    hardware: str
    predicted_s: float | None
    measured_s: float
    in_range: bool
    fallback: bool

    @property
    def ratio(self) -> float | None:
        """measured / predicted."""
        if not self.predicted_s:
            return None
        return self.measured_s / self.predicted_s


def _threshold(value) -> float:
    """A relative error threshold: a finite number >= 0 (0.5: off by more than 50%)."""
    t = number(value, "Feedback threshold")
    if t < 0:
        raise ParameterError(f"Feedback threshold must be >= 0 (a relative error), got {t:g}")
    return t


class Feedback:
    """Records the measured runtime of dispatched calls beside their prediction.

    One dispatched call is one measurement (no repeats; the first call of a variant includes
    warm-up), so judge the error on many calls: :meth:`off` lists the calls whose prediction
    was off by more than ``threshold`` (relative), :meth:`report` summarises them, and
    :meth:`to_csv` writes a profiling CSV that ``annpred train`` accepts, so models can be
    refitted from real calls (:meth:`refit`)."""

    def __init__(self, threshold: float = 0.5):
        self.threshold = _threshold(threshold)
        self.records: list[FeedbackRecord] = []

    def record(self, choice: Choice, measured_s: float) -> FeedbackRecord:
        r = FeedbackRecord(choice.kernel, dict(choice.params), choice.variant, choice.hardware,
                           choice.seconds, float(measured_s),
                           bool(choice.in_range.get(choice.best, False)), choice.fallback)
        self.records.append(r)
        return r

    def off(self, threshold: float | None = None) -> list[FeedbackRecord]:
        t = self.threshold if threshold is None else _threshold(threshold)
        return [r for r in self.records
                if r.ratio is None or abs(r.ratio - 1.0) > t]

    def report(self, threshold: float | None = None) -> dict:
        t = self.threshold if threshold is None else _threshold(threshold)
        ratios = [r.ratio for r in self.records if r.ratio is not None]
        errs = [abs(q - 1) for q in ratios]
        bad = self.off(t)
        per: dict[str, int] = {}
        for r in bad:
            key = f"{r.kernel}/{r.variant}@{r.hardware}"
            per[key] = per.get(key, 0) + 1
        return {"calls": len(self.records), "threshold": t, "off": len(bad),
                "mape": float(np.mean(errs) * 100) if errs else None,
                "median_ratio": float(np.median(ratios)) if ratios else None,
                "off_by_combination": per}

    def to_csv(self, path, only_off: bool = False, threshold: float | None = None) -> Path:
        """A profiling CSV (one file per kernel if several: ``path`` must then be a
        directory) with the measured calls; train on it with ``annpred train``."""
        from annpred.spec.catalog import get_kernel

        rows = self.off(threshold) if only_off else self.records
        kernels = sorted({r.kernel for r in rows})
        path = Path(path)
        if len(kernels) > 1 or path.is_dir():
            path.mkdir(parents=True, exist_ok=True)
            for k in kernels:
                self._write(path / f"{k}.csv", [r for r in rows if r.kernel == k],
                            get_kernel(k).param_names)
            return path
        if kernels:
            self._write(path, rows, get_kernel(kernels[0]).param_names)
        return path

    @staticmethod
    def _write(path: Path, rows, param_names) -> None:
        """Export ``rows`` whole to ``path``: written beside it in a temporary folder (with its
        machine sidecar) and renamed into place, so an interrupted export leaves the old file
        as it was; ``path``'s lock is held throughout (another writer fails at once)."""
        lock = CsvLock(path)
        lock.acquire()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryDirectory(prefix=f".{path.name}.", dir=path.parent) as d:
                tmp = Path(d) / path.name
                with RowWriter(tmp, param_names) as w:
                    _rows(w, rows)
                machines = read_machines(tmp)
                if machines:
                    write_machines(path, machines)
                os.replace(tmp, path)
        finally:
            lock.release()

    def refit(self, out, base_csvs: Sequence = (), **train_kw):
        """Retrain the combinations seen in the feedback from ``base_csvs`` (the original
        profiling data, optional) plus the recorded calls, into model directory ``out``.
        Combinations with fewer than 8 rows in all are skipped. Returns the train reports.

        This is the one bridge from the decision side to training
        (:func:`annpred.model.retrain.refit`); it imports torch when called."""
        from annpred.model.retrain import refit

        reports = refit(self, out, base_csvs, **train_kw)
        caches.clear()
        return reports


def _rows(w: RowWriter, rows) -> None:
    for i, r in enumerate(rows):
        w.write(r.kernel, r.variant, r.hardware, r.params, runtime_s=r.measured_s,
                repeats=1, threads=hw.parse_id(r.hardware)["threads"] or "",
                sampler="dispatch", seed=0, point_id=i)
