"""Profile sampled schedules of a Halide pipeline over input sizes.

Each sampled schedule is JIT-compiled once (compiling costs more than running) and timed
with :func:`annpred.measure.measure` at several sizes drawn from a pool. Points are grouped by
size (inputs are allocated once per size); the order of sizes and the order of schedules
within each size are shuffled. A second pass over a random tenth of the points, in a new
order, gives the noise floor (rows with ``pass == 2``; training uses ``pass == 1``).
"""
from __future__ import annotations

import math
import os
import sys
import time
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from ..spec import hardware as hw
from ..measure.protocol import measure
from .pipelines import HalidePipeline, get
from .runtime import compile_schedule
from .space import from_key, key_of

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
    """Half log-uniform sizes, half 'round' sizes (multiples of 256, incl. powers of two):
    real inputs are often round, and round strides behave differently in caches."""
    rng = np.random.default_rng(seed + 7919)
    sizes = p.sample_sizes(n - n // 2, seed=seed + 1)
    for _ in range(n // 2):
        s = {}
        for name in p.size_names:
            lo, hi = p.size_range[name]
            steps = [v for v in range(256, int(hi) + 1, 256) if v >= lo]
            s[name] = int(rng.choice(steps))
        sizes.append(s)
    return sizes


def profile_pipeline(pipeline: str | HalidePipeline, *, n_schedules: int = PROFILE_SCHEDULES,
                     sizes_per_schedule: int = SIZES_PER_SCHEDULE, n_sizes: int = SIZE_POOL,
                     seed: int = PROFILE_SEED, threads: int = 2, noise_fraction: float = 0.1,
                     out: str | Path | None = None, progress: bool = True) -> pd.DataFrame:
    """Measure ``n_schedules`` sampled schedules at ``sizes_per_schedule`` sizes each."""
    from ..threads import fix_threads

    fix_threads(threads)
    busy = hw.busy_warning(threads)
    if busy:
        print(busy, file=sys.stderr)
    p = get(pipeline)
    hardware = hw.cpu_id(threads)
    rng = np.random.default_rng(seed + 104729)
    schedules = p.space.sample(n_schedules, seed=seed)
    pool = size_pool(p, n_sizes, seed)
    # assign sizes to schedules: each schedule gets distinct sizes, sizes used evenly
    plan: dict[int, list[int]] = {i: [] for i in range(len(pool))}
    for si in range(len(schedules)):
        for zi in rng.choice(len(pool), size=min(sizes_per_schedule, len(pool)),
                             replace=False):
            plan[int(zi)].append(si)
    points = [(zi, si) for zi, sis in plan.items() for si in sis]
    extra = rng.choice(len(points), size=int(round(noise_fraction * len(points))),
                       replace=False)

    bar = _bar(len(schedules), f"compile {p.name}", progress)
    compiled = []
    for s in schedules:
        compiled.append(compile_schedule(p, s))
        bar.update(1)
    bar.close()

    rows = []
    bar = _bar(len(points) + len(extra), f"profile {p.name}", progress)
    for pass_no, point_list in ((1, points), (2, [points[i] for i in extra])):
        by_size: dict[int, list[int]] = {}
        for zi, si in point_list:
            by_size.setdefault(zi, []).append(si)
        for zi in rng.permutation(list(by_size)):
            zi = int(zi)
            sizes = pool[zi]
            inputs = p.make_inputs(sizes, seed=zi)
            outbuf = p.make_output(sizes)
            for si in rng.permutation(by_size[zi]):
                c = compiled[int(si)]
                t = measure(c.bind(inputs, outbuf), **MEASURE)
                rows.append(_row(p, hardware, threads, sizes, c.schedule, t, pass_no,
                                 c.compile_s, seed, zi))
                bar.update(1)
            del inputs, outbuf
    bar.close()
    df = pd.DataFrame(rows)
    if out is not None:
        from annpred.files import atomic_write_text

        atomic_write_text(out, df.to_csv(index=False))
    return df


def _row(p, hardware, threads, sizes, schedule, t, pass_no, compile_s, seed, point):
    row = {"kernel": f"halide_{p.name}", "variant": key_of(schedule), "hardware": hardware}
    row.update({n: int(sizes[n]) for n in p.size_names})
    row.update({f"knob_{k}": v for k, v in schedule.items()})
    row.update(t.as_row())
    row.update({"compile_s": round(compile_s, 4), "threads": threads, "sampler": "random",
                "seed": seed, "point": point, "pass": pass_no,
                "loadavg_1min": round(os.getloadavg()[0], 2),
                "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S"),
                "annpred_version": _version()})
    return row


def _bar(total, desc, enabled):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, disable=not enabled, leave=False, mininterval=1.0)


def load_profile(path: str | Path) -> pd.DataFrame:
    return pd.read_csv(path)


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
