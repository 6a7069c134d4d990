"""Profiling: measure a kernel's variants over sampled points into a CSV, resumably.

Rows are appended and flushed one by one, so an interrupted run leaves a valid CSV (a torn
last line from a hard kill is cut off on the next run), and running the same command again
resumes where it stopped: a row is identified by (kernel, variant, hardware, sampler, seed,
point, pass).
"""
from __future__ import annotations

import csv
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from . import hardware as hw
from . import measure as _measure
from . import sampling, threads
from .catalog import get_kernel
from .errors import DataError, ParameterError
from .kernel import Kernel

TAIL_COLUMNS = ["runtime_s", "runtime_cv", "repeats", "runtime_min_s", "threads", "sampler",
                "seed", "point", "pass", "timestamp", "annpred_version"]


def columns_for(kernel: Kernel) -> list[str]:
    return ["kernel", "variant", "hardware", *kernel.param_names, *TAIL_COLUMNS]


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


def measure_point(kernel: Kernel, v, inputs, point, *, min_runs: int, min_time: float,
                  check: bool = False) -> _measure.Timing:
    """Prepare variant ``v`` on ``inputs`` (untimed), time its run with the protocol, and
    optionally check its result against the kernel's reference."""
    simulate = getattr(v, "simulate", None)
    if simulate is not None:   # a modelled accelerator: the fast model, not a timer
        return simulate(point)
    try:
        state = v.prepare(inputs, point)
        if "torch" in sys.modules:  # torch was imported lazily by a variant: fix its threads
            threads.ensure_torch_threads()
        timing = _measure.measure(lambda: v.run(state), sync=v.sync, min_runs=min_runs,
                                  min_time=min_time)
    except Exception as exc:
        raise RuntimeError(f"{kernel.name}/{v.name} failed at point {point}: "
                           f"{type(exc).__name__}: {exc}") from exc
    if check:
        ref = kernel.reference(inputs, point)
        if not np.allclose(v.to_numpy(timing.result), ref, rtol=kernel.rtol, atol=kernel.atol):
            raise RuntimeError(f"{kernel.name}/{v.name} result differs from the reference at "
                               f"point {point}")
    return timing


def _with_variants(kernel: Kernel, vlist) -> Kernel:
    import dataclasses

    return dataclasses.replace(kernel, variants=list(vlist))


def _repair_tail(path: Path) -> None:
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
        cut = data.rfind(b"\n") + 1
        f.truncate(cut)


def _done_keys(path: Path, expected: list[str]) -> set:
    from .data import read_header

    header = read_header(path)
    if header != expected:
        raise DataError(f"{path}: exists with columns {header}, which do not match this "
                        f"profile run ({expected}); choose another --out")
    keys = set()
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        for row in reader:
            keys.add((row["variant"], row["hardware"], row["sampler"], row["seed"],
                      row["point"], row["pass"]))
    return keys


def profile(kernel_name: str, out: str | os.PathLike, variants: Sequence[str] | None = None,
            n_threads: int = 1, samples: int = 300, sampler: str = "random", seed: int = 0,
            pass_id: int = 0, progress: bool = True, min_runs: int = _measure.DEFAULT_MIN_RUNS,
            min_time: float = _measure.DEFAULT_MIN_TIME, points=None,
            check: bool = False, first: int | None = None,
            time_budget: float | None = None, hardware: str | None = None,
            accel_mode: str = "user") -> ProfileResult:
    """Measure ``samples`` points of ``kernel_name`` for each variant into CSV ``out``.

    ``points`` (a DataFrame of parameter columns) replaces sampling when given. ``first``
    measures only the first N sampled points (a re-measurement pass over a subset, with the
    same point ids and inputs). ``time_budget`` (seconds) stops cleanly when exceeded.
    ``hardware="sim-<name>"`` writes rows of a modelled accelerator (annpred.accel) instead
    of measuring this machine.
    """
    kernel = get_kernel(kernel_name)
    if hardware is not None:
        from .accel.profile import sim_variant

        v = sim_variant(kernel.name, hardware, accel_mode)
        if variants and variants != [v.name]:
            raise ParameterError(f"{hardware} has one variant, {v.name!r}")
        kernel = _with_variants(kernel, [v])
        variants, check, min_runs = [v.name], False, 1
    if n_threads < 1 or n_threads > 1024:
        raise ParameterError(f"--threads must be between 1 and 1024, got {n_threads}")
    threads.fix_threads(n_threads)
    busy = None if hardware is not None else hw.busy_warning(n_threads)
    if busy:
        print(busy, file=sys.stderr)
    if variants:
        vlist = [kernel.variant(v) for v in variants]
    else:
        vlist = [v for v in kernel.variants if v.device == "cpu" or v.available()]
    unavailable = [v.name for v in vlist if not v.available()]
    if unavailable:
        raise ParameterError(f"variant(s) {', '.join(unavailable)} of {kernel.name} cannot run "
                             "on this machine (no CUDA device?)")
    if sampler == "pr" and points is None:  # measures while sampling (annpred.representatives)
        if first is not None:
            raise ParameterError("--first is not supported with --sampler pr (re-measure "
                                 "its points by passing them as points=)")
        from .representatives import profile_pr

        return profile_pr(kernel, out, vlist, {v.name: hardware_for(v, n_threads) for v in vlist},
                          n_threads, samples, seed, pass_id, progress, min_runs, min_time,
                          check, time_budget)
    if points is None:
        pts = sampling.sample(kernel, samples, sampler=sampler, seed=seed)
    else:
        pts = points.reset_index(drop=True)
    if first is not None:
        if first < 1:
            raise ParameterError(f"--first must be >= 1, got {first}")
        pts = pts.iloc[:first]
    records = pts.to_dict("records")
    cols = columns_for(kernel)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    done: set = set()
    if out.exists() and out.stat().st_size > 0:
        _repair_tail(out)
        done = _done_keys(out, cols)
    version = _version()
    hws = {v.name: hardware_for(v, n_threads) for v in vlist}

    rng = np.random.default_rng([seed, pass_id, 7919])
    tasks = []
    for idx in rng.permutation(len(records)):
        vs = [v for v in vlist if v.supports_point(records[idx])]
        for j in rng.permutation(len(vs)):
            v = vs[j]
            key = (v.name, hws[v.name], sampler, str(seed), str(int(idx)), str(pass_id))
            tasks.append((int(idx), v, key in done))
    todo = sum(1 for t in tasks if not t[2])
    skipped = len(tasks) - todo

    from tqdm import tqdm

    new_file = not out.exists() or out.stat().st_size == 0
    written = 0
    timed = time_budget is not None
    if timed:  # the budget, not the point count, ends the run: show time against budget
        bar = tqdm(total=max(1, round(time_budget)), disable=not progress, unit="s",
                   desc=f"{kernel.name} t{n_threads}", file=sys.stderr, dynamic_ncols=True,
                   bar_format="{desc}: {percentage:3.0f}%|{bar}| {n:.0f}/{total} s of "
                              "the time budget{postfix}")
    else:
        bar = tqdm(total=len(tasks), initial=skipped, disable=not progress, unit="pt",
                   desc=f"{kernel.name} t{n_threads}", file=sys.stderr, dynamic_ncols=True)
    try:
        with open(out, "a", newline="", encoding="utf-8") as f:
            writer = csv.writer(f, lineterminator="\n")
            if new_file:
                writer.writerow(cols)
                f.flush()
            current_idx, inputs = None, None
            t_start = time.perf_counter()
            for idx, v, is_done in tasks:
                if is_done:
                    continue
                if (time_budget is not None and idx != current_idx
                        and time.perf_counter() - t_start > time_budget):
                    break
                point = records[idx]
                if idx != current_idx:
                    inputs = kernel.make_inputs(point, np.random.default_rng([seed, idx]))
                    current_idx = idx
                timing = measure_point(kernel, v, inputs, point, min_runs=min_runs,
                                       min_time=min_time, check=check)
                row = [kernel.name, v.name, hws[v.name],
                       *[point[p] for p in kernel.param_names],
                       repr(timing.median_s), f"{timing.cv:.5f}", timing.repeats,
                       repr(timing.min_s), n_threads, sampler, seed, idx, pass_id,
                       time.strftime("%Y-%m-%dT%H:%M:%S"), version]
                writer.writerow(row)
                f.flush()
                written += 1
                if timed:
                    elapsed = min(time.perf_counter() - t_start, bar.total)
                    bar.set_postfix_str(f"{written} points measured ({v.name})", refresh=False)
                    bar.update(max(0.0, elapsed - bar.n))
                else:
                    bar.update(1)
                    bar.set_postfix_str(v.name, refresh=False)
    finally:
        bar.close()
    return ProfileResult(out, written, skipped, len(tasks))


def _version() -> str:
    from .regressor import _version as v
    return v()
