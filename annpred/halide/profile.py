"""Profile sampled schedules of a Halide pipeline over input sizes.

Each sampled schedule is JIT-compiled once (compiling costs more than running) and timed
with :func:`annpred.measure.measure` at several sizes drawn from a pool. Points are grouped by
size (inputs are allocated once per size); the order of sizes and the order of schedules
within each size are shuffled. A second pass over a random tenth of the points, in a new
order, gives the noise floor (rows with ``pass == 2``; training uses ``pass == 1``).
"""
from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from ..data.rows import CsvLock
from ..spec import hardware as hw
from ..measure.protocol import measure
from .pipelines import HalidePipeline, get
from .runtime import compile_schedule
from .space import from_key, key_of
from .store import machine

# measurement settings for profiling and for the comparison (slow schedules: warm-up + 1 run)
MEASURE = {"min_runs": 5, "min_time": 0.02, "max_time": 0.3}
PROFILE_SEED = 0
PROFILE_SCHEDULES = 200
SIZES_PER_SCHEDULE = 5
SIZE_POOL = 24


def _version() -> str:
    try:
        from importlib.metadata import version
        return version("annpred")
    except Exception:  # pragma: no cover
        return "0+unknown"


def size_pool(p: HalidePipeline, n: int, seed: int) -> list[dict]:
    """Half log-uniform sizes, half 'round' sizes (multiples of 256, incl. powers of two;
    of a smaller power of two where the range holds fewer than two multiples of 256): real
    inputs are often round, and round strides behave differently in caches."""
    rng = np.random.default_rng(seed + 7919)
    sizes = p.sample_sizes(n - n // 2, seed=seed + 1)
    for _ in range(n // 2):
        s = {}
        for name in p.size_names:
            lo, hi = p.size_range[name]
            unit = 256
            while True:
                steps = [v for v in range(unit, int(hi) + 1, unit) if v >= lo]
                if len(steps) >= 2 or unit <= 1:
                    break
                unit //= 2
            s[name] = int(rng.choice(steps))
        sizes.append(s)
    return sizes


def random_plan(p: HalidePipeline, n_schedules: int = PROFILE_SCHEDULES,
                sizes_per_schedule: int = SIZES_PER_SCHEDULE, n_sizes: int = SIZE_POOL,
                seed: int = PROFILE_SEED, noise_fraction: float = 0.1
                ) -> list[tuple[dict, dict, int]]:
    """The points of a random profile: ``(sizes, schedule, pass)``, deterministic in ``seed``.
    Each sampled schedule gets ``sizes_per_schedule`` distinct sizes from a pool; a random
    ``noise_fraction`` of the points is measured a second time (pass 2, the noise floor)."""
    rng = np.random.default_rng(seed + 104729)
    schedules = p.space.sample(n_schedules, seed=seed)
    pool = size_pool(p, n_sizes, seed)
    points = []
    for si in range(len(schedules)):
        for zi in rng.choice(len(pool), size=min(sizes_per_schedule, len(pool)),
                             replace=False):
            points.append((pool[int(zi)], schedules[si], 1))
    extra = rng.choice(len(points), size=int(round(noise_fraction * len(points))),
                       replace=False)
    return points + [(points[int(i)][0], points[int(i)][1], 2) for i in extra]


def _point_key(p: HalidePipeline, sizes: Mapping, variant: str, pass_no: int) -> tuple:
    return (variant, *(int(sizes[n]) for n in p.size_names), int(pass_no))


def profile_pipeline(pipeline: str | HalidePipeline, *, n_schedules: int = PROFILE_SCHEDULES,
                     sizes_per_schedule: int = SIZES_PER_SCHEDULE, n_sizes: int = SIZE_POOL,
                     seed: int = PROFILE_SEED, threads: int = 2, noise_fraction: float = 0.1,
                     out: str | Path | None = None, progress: bool = True,
                     plan: Sequence[tuple[dict, dict, int]] | None = None,
                     sampler: str = "random", max_seconds: float | None = None
                     ) -> pd.DataFrame:
    """Measure a plan of points (default: :func:`random_plan`, ``n_schedules`` sampled
    schedules at ``sizes_per_schedule`` sizes each).

    Points are grouped by size (inputs are allocated once per size); sizes, and schedules
    within a size, run in shuffled order; each schedule is JIT-compiled once, when first
    needed. With ``out``, the CSV is rewritten atomically after every size, and a run with the
    same arguments resumes: points already in it are skipped. ``max_seconds`` stops after the
    size that crosses it (run again to continue). Returns all rows measured so far, with
    ``attrs["left"]``: the planned points still to measure, of ``attrs["planned"]``. Another
    process writing the same ``out`` meanwhile is refused (:class:`annpred.data.rows.CsvLock`).
    """
    from ..threads import fix_threads

    fix_threads(threads)
    hw.warn_if_busy(threads)
    p = get(pipeline)
    hardware = hw.cpu_id(threads)
    if plan is None:
        plan = random_plan(p, n_schedules, sizes_per_schedule, n_sizes, seed, noise_fraction)
    out = Path(out) if out is not None else None
    with CsvLock(out) if out is not None else contextlib.nullcontext():
        return _profile(p, threads, hardware, plan, out, seed, sampler, max_seconds, progress)


def _profile(p, threads, hardware, plan, out, seed, sampler, max_seconds, progress):
    from ..files import atomic_write_text

    old = load_profile(out, p) if out is not None and out.exists() else None
    if old is not None and "threads" in old.columns:  # a resume must not mix thread counts
        other = sorted({int(t) for t in old["threads"].dropna()} - {int(threads)})
        if other:
            from ..errors import DataError

            raise DataError(f"{out} holds rows measured with {other[0]} thread(s); this run "
                            f"uses {threads}: choose another --out")
    rows = [] if old is None else old.to_dict("records")
    n_old = len(rows)
    done = set() if old is None else {
        _point_key(p, r, r["variant"], r.get("pass", 1)) for r in rows}
    todo: dict[tuple, list] = {}
    for sizes, sched, pass_no in plan:
        if _point_key(p, sizes, key_of(sched), pass_no) in done:
            continue
        todo.setdefault(tuple(int(sizes[n]) for n in p.size_names), []).append(
            (sched, pass_no))
    rng = np.random.default_rng(seed + 15485863)
    compiled: dict[str, object] = {}
    t_start = time.perf_counter()
    n_todo = sum(len(v) for v in todo.values())
    n_had = len(plan) - n_todo
    bar = _bar(n_todo, f"profile {p.name}" + (f" ({n_had} already measured)" if n_had else ""),
               progress)
    for zi in rng.permutation(len(todo)):
        size_key = list(todo)[int(zi)]
        sizes = dict(zip(p.size_names, size_key))
        inputs = p.make_inputs(sizes, seed=int(zi))
        outbuf = p.make_output(sizes)
        pts = todo[size_key]
        for i in rng.permutation(len(pts)):
            sched, pass_no = pts[int(i)]
            k = key_of(sched)
            if k not in compiled:
                compiled[k] = compile_schedule(p, sched)
            c = compiled[k]
            t = measure(c.bind(inputs, outbuf), **MEASURE)
            rows.append(_row(p, hardware, threads, sizes, c.schedule, t, pass_no,
                             c.compile_s, seed, int(zi), sampler))
            bar.update(1)
        del inputs, outbuf
        if out is not None:
            out.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_text(out, pd.DataFrame(rows).to_csv(index=False))
        if max_seconds is not None and time.perf_counter() - t_start > max_seconds:
            break
    bar.close()
    df = pd.DataFrame(rows)
    df.attrs["left"] = n_todo - (len(rows) - n_old)  # planned points not measured (max_seconds ended it)
    df.attrs["planned"] = len(plan)
    return df


def _row(p, hardware, threads, sizes, schedule, t, pass_no, compile_s, seed, point, sampler):
    row = {"kernel": f"halide_{p.name}", "variant": key_of(schedule), "hardware": hardware}
    row.update({n: int(sizes[n]) for n in p.size_names})
    row.update({f"knob_{k}": v for k, v in schedule.items()})
    row.update(t.as_row())
    row.update({"compile_s": round(compile_s, 4), "threads": threads, "sampler": sampler,
                "seed": seed, "point": point, "pass": pass_no,
                "loadavg_1min": round(os.getloadavg()[0], 2),
                "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S"),
                "annpred_version": _version(), "machine": machine()["fingerprint"]})
    return row


def _bar(total, desc, enabled):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, disable=not enabled, leave=False, mininterval=1.0)


def load_profile(path: str | Path, pipeline: str | HalidePipeline | None = None
                 ) -> pd.DataFrame:
    """Read a profile CSV; with ``pipeline``, check it has the columns training needs."""
    from ..data.rows import MAX_CSV_BYTES
    from ..errors import DataError
    from ..validate import regular_file

    path = Path(path)
    regular_file(path, "profile", MAX_CSV_BYTES)  # a FIFO or device would block pandas
    try:
        df = pd.read_csv(path)
    except FileNotFoundError:
        raise DataError(f"profile {path} does not exist") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise DataError(f"profile {path}: cannot read it as CSV ({exc})") from None
    if pipeline is not None:
        p = get(pipeline)
        need = ["variant", *p.size_names, "runtime_s"]
        missing = [c for c in need if c not in df.columns]
        if missing:
            raise DataError(f"profile {path} lacks column(s) {missing} (a profile of "
                            f"pipeline {p.name} has {', '.join(need)})")
        if df.empty:
            raise DataError(f"profile {path} has no rows")
        for col in [*p.size_names, "runtime_s"]:
            v = pd.to_numeric(df[col], errors="coerce")
            bad = np.flatnonzero(~(v > 0))
            if bad.size:
                raise DataError(f"profile {path}, row {int(bad[0]) + 2}, column {col}: "
                                f"{df[col].iloc[int(bad[0])]!r} is not a positive number")
        for i, key in enumerate(df["variant"]):
            try:
                p.space.check(from_key(str(key)))
            except Exception as exc:  # noqa: BLE001 - any malformed schedule key
                raise DataError(f"profile {path}, row {i + 2}, column variant: not a "
                                f"schedule of pipeline {p.name} ({exc})") from None
    return df


# Training target. The protocol's median is recorded in ``runtime_s``; the schedule models are
# fitted on the fastest repeat, ``runtime_min_s``: this 2-core machine is shared, and other
# jobs inflate the median of parallel schedules far more than of serial ones (at load 5,
# ``par=none`` looked as fast as ``par=y``), while the minimum stays close to the
# uncontended runtime that the comparison is about. Ranking, not seconds, is what selection
# needs.
TARGET = "runtime_min_s"


def training_frame(p: HalidePipeline, df: pd.DataFrame, target: str = TARGET
                   ) -> tuple[pd.DataFrame, np.ndarray]:
    """Features (sizes + encoded knobs) and runtimes of the first-pass rows."""
    df = df[df["pass"] == 1] if "pass" in df.columns else df
    if target not in df.columns:
        target = "runtime_s"
    feats = [p.features({n: r[n] for n in p.size_names}, from_key(r["variant"]))
             for r in df.to_dict("records")]
    return pd.DataFrame(feats, columns=p.feature_names()), df[target].to_numpy(float)


def noise_floor(df: pd.DataFrame, size_names: Sequence[str]) -> float | None:
    """MAPE (%) between the two measurement passes over the same points."""
    if "pass" not in df.columns or not (df["pass"] == 2).any():
        return None
    keys = ["variant", *size_names]
    a = df[df["pass"] == 1].groupby(keys)["runtime_s"].first()
    b = df[df["pass"] == 2].groupby(keys)["runtime_s"].first()
    j = pd.concat([a.rename("a"), b.rename("b")], axis=1, join="inner")
    if j.empty:
        return None
    return float(np.mean(np.abs(j["b"] - j["a"]) / j["a"]) * 100)
