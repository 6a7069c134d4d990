"""Profiling: measure a kernel's variants over sampled points into a CSV, resumably.

One loop serves every sampler. A sampler either yields its points up front (``random``) or
asks for measurements while it plans (``pr``, :class:`annpred.measure.pr.PRPlanner`, which
receives a ``measure(point, role)`` callback). Either way each measurement goes through
:meth:`_Session.measure`: resume check, inputs built outside the timed region, the protocol
(:func:`annpred.measure.protocol.measure`), one row appended and flushed
(:class:`annpred.data.rows.RowWriter`), progress. An interrupted run leaves a valid CSV, and
running the same command again resumes: a row is identified by (variant, hardware, sampler,
seed, point, pass); the pr planner is replayed from the recorded rows and makes the same
requests, so only missing points are measured.
"""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from annpred import threads
from annpred.data.rows import RowWriter
from annpred.errors import ParameterError
from annpred.measure import protocol as _measure
from annpred.measure import sampling
from annpred.spec import hardware as hw
from annpred.spec.catalog import get_kernel
from annpred.spec.kernel import Kernel


def hardware_for(variant, n_threads: int) -> str:
    if getattr(variant, "hardware", ""):   # a modelled accelerator (annpred.accel)
        return variant.hardware
    return hw.cuda_id() if variant.device == "cuda" else hw.cpu_id(n_threads)


@dataclass
class ProfileResult:
    path: Path
    written: int
    skipped: int
    total: int
    pr: dict = field(default_factory=dict)  # sampler pr: variant -> PRResult (steps, points)
    stopped: bool = False  # the time budget ended the run before every planned point
    fresh_inputs: bool = False  # the runs rotated distinct input sets

    def summary(self) -> str:
        """One line: what was measured, and what is left when the time budget ended it."""
        line = f"{self.path}: {self.written} rows measured, {self.skipped} already there"
        inputs = "; each point's runs on distinct input sets" if self.fresh_inputs else ""
        if not self.stopped:
            return line + f" (of {self.total} rows this run planned){inputs}"
        left = (f"{self.total - self.written - self.skipped} of {self.total} planned rows "
                "left" if not self.pr else "more planned")
        return line + (f"; the time budget ended the run ({left}: the same command "
                       f"continues){inputs}")


def measure_point(kernel: Kernel, v, inputs, point, *, min_runs: int, min_time: float,
                  check: bool = False) -> _measure.Timing:
    """Prepare variant ``v`` on ``inputs`` (untimed), time its run with the protocol, and
    optionally check its result against the kernel's reference. ``inputs`` may be a list of
    distinct input sets (:func:`input_sets_for`): the runs take them in turn, and the check
    uses the first."""
    simulate = getattr(v, "simulate", None)
    if simulate is not None:   # a modelled accelerator: the fast model, not a timer
        return simulate(point)
    sets = inputs if isinstance(inputs, list) else [inputs]
    try:
        states = [v.prepare(i, point) for i in sets]
        if "torch" in sys.modules:  # torch was imported lazily by a variant: fix its threads
            threads.ensure_torch_threads()
        timing = _measure.measure([lambda s=s: v.run(s) for s in states], sync=v.sync,
                                  min_runs=min_runs, min_time=min_time)
        result = v.run(states[0]) if check and len(states) > 1 else timing.result
    except Exception as exc:
        raise RuntimeError(f"{kernel.name}/{v.name} failed at point {point}: "
                           f"{type(exc).__name__}: {exc}") from exc
    if check:
        ref = kernel.reference(sets[0], point)
        if not np.allclose(v.to_numpy(result), ref, rtol=kernel.rtol, atol=kernel.atol):
            raise RuntimeError(f"{kernel.name}/{v.name} result differs from the reference at "
                               f"point {point}")
    return timing


def input_sets_for(kernel: Kernel, point, seed: int, idx: int, fresh: bool,
                   rotate_bytes: int = _measure.ROTATE_BYTES) -> list[dict]:
    """The input sets of point number ``idx``: the first from ``[seed, idx]`` (the same as
    ever, so passes and resumed runs time the same data), and with ``fresh`` as many more
    as :func:`annpred.measure.protocol.input_sets` asks for, from ``[seed, idx, j]``."""
    first = kernel.make_inputs(point, np.random.default_rng([seed, idx]))
    nbytes = sum(getattr(a, "nbytes", 0) for a in first.values())
    k = _measure.input_sets(nbytes, rotate_bytes) if fresh else 1
    return [first] + [kernel.make_inputs(point, np.random.default_rng([seed, idx, j]))
                      for j in range(1, k)]


def input_protocol(kernel: Kernel, existing: list[dict], columns, fresh: bool | None, out,
                   modelled: bool = False) -> bool:
    """Whether a profiling run rotates distinct input sets: as asked (``fresh``), else as the
    rows already in ``out`` were measured, else as the kernel declares. A file keeps one
    protocol: asking for the other one on a file with rows is refused, before measuring."""
    if modelled:
        return False
    if existing:
        had = any(r.get("input_sets") for r in existing)
        if fresh is not None and fresh != had:
            now, flag = (("one repeated input per point (its input_sets column is "
                          "empty or absent)", "--fresh-inputs") if not had else
                         ("distinct input sets (column input_sets)", "--same-inputs"))
            raise ParameterError(f"{out} holds rows measured on {now}; a file keeps one "
                                 f"protocol: profile without {flag} to add to it, or with "
                                 f"{flag} into a new --out file")
        return had
    fresh = kernel.fresh_inputs if fresh is None else fresh
    if fresh and "input_sets" not in columns:
        raise ParameterError(f"{out} was written before the input_sets column existed; "
                             "profile with --fresh-inputs into a new --out file")
    return fresh


class _Stop(Exception):
    """The time budget is spent."""


class _Session:
    """Shared state of one profiling run: writer, recorded rows, budget, progress bar."""

    def __init__(self, kernel: Kernel, writer: RowWriter, hws: dict, n_threads: int,
                 sampler: str, seed: int, pass_id: int, min_runs: int, min_time: float,
                 check: bool, time_budget: float | None, bar, reference: bool = False,
                 fresh_inputs: bool = False):
        self.kernel, self.writer, self.hws = kernel, writer, hws
        self.n_threads, self.sampler, self.seed, self.pass_id = n_threads, sampler, seed, pass_id
        self.min_runs, self.min_time, self.check = min_runs, min_time, check
        self.time_budget, self.bar = time_budget, bar
        self.t_start = time.perf_counter()
        self.setup_s = 0.0  # first point of each variant: JIT compilation, lazy imports
        self._seen: set = set()
        self.written = self.skipped = 0
        self.recorded: dict = {}  # (variant, point id) -> Measurement
        self._inputs_key, self._inputs = None, None
        # a fixed reference kernel timed right after every point (drift correction)
        self.reference = _measure.reference_kernel() if reference else None
        self.fresh_inputs = fresh_inputs  # rotate distinct input sets (column input_sets)

    def load(self, rows: list[dict]) -> None:
        from annpred.measure.pr import Measurement

        for r in rows:
            if (r["sampler"] == self.sampler and r["seed"] == str(self.seed)
                    and r["pass"] == str(self.pass_id)
                    and self.hws.get(r["variant"]) == r["hardware"]):
                self.recorded[(r["variant"], r["point"])] = Measurement(
                    float(r["runtime_s"]), float(r["runtime_cv"] or "nan"),
                    int(float(r["repeats"] or 0)), float(r["runtime_min_s"] or "nan"))

    def elapsed(self) -> float:
        """Seconds of measuring so far: one-time setup (a variant's first point, where Halide
        compiles and libraries load lazily) does not count against the budget."""
        return time.perf_counter() - self.t_start - self.setup_s

    def out_of_time(self) -> bool:
        return self.time_budget is not None and self.elapsed() > self.time_budget

    def measure(self, v, point: dict, idx: int, label: str = ""):
        """Measure (or replay) variant ``v`` at point number ``idx``; returns a Measurement
        with the values as written to the CSV, so a resumed run replays them exactly."""
        from annpred.measure.pr import Measurement

        hit = self.recorded.get((v.name, str(idx)))
        if hit is not None:
            self.skipped += 1
            self._progress(label or v.name)
            return hit
        key = (self.seed, idx)
        if key != self._inputs_key:  # inputs built outside the timed region, once per point
            if self.out_of_time():  # the budget ends the run between points, never inside one
                raise _Stop
            self._inputs = input_sets_for(self.kernel, point, self.seed, idx,
                                          self.fresh_inputs)
            self._inputs_key = key
        t0 = time.perf_counter()
        t = measure_point(self.kernel, v, self._inputs, point, min_runs=self.min_runs,
                          min_time=self.min_time, check=self.check)
        if v.name not in self._seen:
            self._seen.add(v.name)
            self.setup_s += time.perf_counter() - t0
        ref_s = None
        if self.reference is not None:
            ref_s = _measure.measure(self.reference, min_runs=self.min_runs,
                                     min_time=self.min_time).median_s
        self.writer.write(self.kernel.name, v.name, self.hws[v.name], point,
                          runtime_s=t.median_s, runtime_cv=t.cv, repeats=t.repeats,
                          runtime_min_s=t.min_s, threads=self.n_threads, sampler=self.sampler,
                          seed=self.seed, point_id=idx, pass_id=self.pass_id, ref_s=ref_s,
                          input_sets=len(self._inputs) if self.fresh_inputs else None)
        self.written += 1
        self._progress(label or v.name)
        return Measurement(t.median_s, float(f"{t.cv:.5f}"), t.repeats, t.min_s)

    def _progress(self, label: str) -> None:
        bar = self.bar
        if self.time_budget is not None:  # the budget, not the point count, ends the run
            elapsed = min(max(self.elapsed(), 0.0), bar.total)
            bar.set_postfix_str(f"{self.written} points measured ({label})", refresh=False)
            bar.update(max(0.0, elapsed - bar.n))
        else:
            bar.update(1)
            bar.set_postfix_str(label, refresh=False)


def _bar(kernel: Kernel, n_threads: int, total: int, skipped: int, time_budget, progress,
         sampler: str):
    from tqdm import tqdm

    desc = f"{kernel.name}{' pr' if sampler == 'pr' else ''} t{n_threads}"
    if time_budget is not None:
        return tqdm(total=max(1, round(time_budget)), disable=not progress, unit="s",
                    desc=desc, file=sys.stderr, dynamic_ncols=True,
                    bar_format="{desc}: {percentage:3.0f}%|{bar}| {n:.0f}/{total} s of "
                               "the time budget{postfix}")
    return tqdm(total=total, initial=skipped, disable=not progress, unit="pt", desc=desc,
                file=sys.stderr, dynamic_ncols=True)


def profile(kernel_name: str, out, variants: Sequence[str] | None = None,
            n_threads: int = 1, samples: int = 300, sampler: str = "random", seed: int = 0,
            pass_id: int = 0, progress: bool = True, min_runs: int = _measure.DEFAULT_MIN_RUNS,
            min_time: float = _measure.DEFAULT_MIN_TIME, points=None,
            check: bool = False, first: int | None = None,
            time_budget: float | None = None, hardware: str | None = None,
            accel_mode: str = "user", reference: bool = False,
            fresh_inputs: bool | None = None) -> ProfileResult:
    """Measure ``samples`` points of ``kernel_name`` for each variant into CSV ``out``.

    ``points`` (a DataFrame of parameter columns) replaces sampling when given. ``first``
    measures only the first N sampled points (a re-measurement pass over a subset, with the
    same point ids and inputs). ``time_budget`` (seconds) stops cleanly when exceeded.
    ``sampler="pr"``: a budget of ``samples`` measured points per variant, sweeps included
    (:mod:`annpred.measure.pr`). ``hardware="sim-<name>"`` writes rows of a modelled
    accelerator (:mod:`annpred.accel`) instead of measuring this machine.
    ``reference``: time a fixed reference kernel right after every point and record it in
    the ``ref_s`` column, so that runtimes can be drift-corrected
    (:func:`annpred.data.profiles.correct_drift`, ``annpred train --drift-correct``).
    ``fresh_inputs``: rotate each point's runs through distinct input sets, so that no run
    replays the data of the one before (:mod:`annpred.measure.protocol`); their number goes
    to the ``input_sets`` column. ``None`` (the default): as the rows already in ``out`` were
    measured (a file keeps one protocol), in a new file as the kernel declares
    (:attr:`Kernel.fresh_inputs`, e.g. max pooling).
    """
    from annpred import validate as _v

    _v.seed(seed)
    _v.integer(pass_id, "--pass", 0, 10**6)
    _v.integer(samples, "--samples", 1, 10**8)
    _v.output_file(out, "--out")
    kernel = get_kernel(kernel_name)
    if hardware is not None:
        import dataclasses

        from annpred.accel.profile import sim_variant

        sv = sim_variant(kernel.name, hardware, accel_mode)
        if variants and list(variants) != [sv.name]:
            raise ParameterError(f"{hardware} has one variant, {sv.name!r}")
        kernel = dataclasses.replace(kernel, variants=[sv])
        variants, check, min_runs = [sv.name], False, 1
        if reference or fresh_inputs:
            raise ParameterError(f"{'--reference' if reference else '--fresh-inputs'} is "
                                 "about timing this machine; a modelled accelerator is not "
                                 "timed")
    if n_threads < 1 or n_threads > 1024:
        raise ParameterError(f"--threads must be between 1 and 1024, got {n_threads}")
    if sampler not in sampling.SAMPLERS:
        raise ParameterError(f"unknown sampler {sampler!r}; samplers: "
                             f"{', '.join(sampling.SAMPLERS)}")
    threads.fix_threads(n_threads)
    if hardware is None:
        hw.warn_if_busy(n_threads)
    if variants:
        vlist = [kernel.variant(v) for v in variants]
    else:
        vlist = [v for v in kernel.variants if v.device == "cpu" or v.available()]
    unavailable = [v.name for v in vlist if not v.available()]
    if unavailable:
        raise ParameterError(f"variant(s) {', '.join(unavailable)} of {kernel.name} cannot run "
                             "on this machine (no CUDA device?)")
    planned = sampler == "pr" and points is None  # the planner measures while sampling
    if planned and first is not None:
        raise ParameterError("--first is not supported with --sampler pr (re-measure "
                             "its points by passing them as points=)")
    if first is not None and first < 1:
        raise ParameterError(f"--first must be >= 1, got {first}")
    hws = {v.name: hardware_for(v, n_threads) for v in vlist}
    writer = RowWriter(out, kernel.param_names)
    existing = writer.existing()  # takes the CSV's lock: a second profiler fails here
    try:
        if reference and "ref_s" not in writer.columns:
            raise ParameterError(f"{out} was written before the ref_s column existed; "
                                 "profile with --reference into a new --out file")
        fresh_inputs = input_protocol(kernel, existing, writer.columns, fresh_inputs, out,
                                      modelled=hardware is not None)
        return _run(kernel, writer, existing, vlist, hws, n_threads, samples, sampler, seed,
                    pass_id, progress, min_runs, min_time, points, check, first, time_budget,
                    planned, out, reference, fresh_inputs)
    finally:
        writer.release()


def _run(kernel, writer, existing, vlist, hws, n_threads, samples, sampler, seed, pass_id,
         progress, min_runs, min_time, points, check, first, time_budget, planned, out,
         reference=False, fresh_inputs=False):
    tasks = []
    if not planned:
        pts = (sampling.sample(kernel, samples, sampler=sampler, seed=seed) if points is None
               else points.reset_index(drop=True))
        if first is not None:
            pts = pts.iloc[:first]
        records = pts.to_dict("records")
        rng = np.random.default_rng([seed, pass_id, 7919])  # points, then variants, shuffled
        for idx in rng.permutation(len(records)):
            vs = [v for v in vlist if v.supports_point(records[idx])]
            tasks.extend((int(idx), vs[j], records[idx]) for j in rng.permutation(len(vs)))
    total = samples * len(vlist) if planned else len(tasks)
    bar = _bar(kernel, n_threads, total, 0, time_budget, progress, sampler)
    s = _Session(kernel, writer, hws, n_threads, sampler, seed, pass_id, min_runs, min_time,
                 check, time_budget, bar, reference, fresh_inputs)
    s.load(existing)
    results, stopped = {}, False
    try:
        with writer:
            if planned:
                from annpred.measure.pr import PRPlanner

                for v in vlist:
                    counter = iter(range(10**9))

                    def measure(point, role, v=v, counter=counter):
                        return s.measure(v, point, next(counter), f"{v.name} {role}")

                    try:
                        results[v.name] = PRPlanner(kernel, samples, seed=seed,
                                                    variant=v.name).run(measure)
                    except _Stop:
                        stopped = True
                        break
            else:
                for idx, v, point in tasks:
                    try:
                        s.measure(v, point, idx)
                    except _Stop:
                        stopped = True
                        break
    finally:
        bar.close()
    return ProfileResult(Path(out), s.written, s.skipped, s.written + s.skipped if planned
                         else len(tasks), results, stopped, fresh_inputs)
