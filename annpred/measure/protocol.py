"""The measurement protocol: warm up, repeat until at least ``min_runs`` runs and
``min_time`` seconds, record the median and the dispersion (a robust coefficient of
variation, IQR / 1.349 / median, which equals std / mean for normal noise but is not blown
up by one preempted run on a shared machine)."""
from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from typing import Any, Callable

DEFAULT_MIN_RUNS = 5
DEFAULT_MIN_TIME = 0.02
DEFAULT_MAX_RUNS = 1_000_000  # min_time, not a run cap, decides for tiny kernels
DEFAULT_WARMUP = 1


@dataclass(frozen=True)
class Timing:
    median_s: float
    cv: float  # robust coefficient of variation: IQR / 1.349 / median of the repeats
    repeats: int
    min_s: float
    max_s: float
    result: Any = None  # the last result, for checking

    def as_row(self) -> dict:
        return {"runtime_s": self.median_s, "runtime_cv": self.cv, "repeats": self.repeats,
                "runtime_min_s": self.min_s}


def measure(fn: Callable[[], Any], *, sync: Callable[[], None] | None = None,
            warmup: int = DEFAULT_WARMUP, min_runs: int = DEFAULT_MIN_RUNS,
            min_time: float = DEFAULT_MIN_TIME, max_runs: int = DEFAULT_MAX_RUNS,
            max_time: float = 10.0) -> Timing:
    """Time ``fn()`` with the protocol; ``sync`` is called after each run (CUDA)."""
    result = None
    for _ in range(max(warmup, 0)):
        result = fn()
        if sync is not None:
            sync()
    times: list[float] = []
    clock = time.perf_counter
    start = clock()
    while True:
        t0 = clock()
        result = fn()
        if sync is not None:
            sync()
        times.append(clock() - t0)
        spent = clock() - start
        if len(times) >= max_runs or spent >= max_time:
            break
        if len(times) >= min_runs and spent >= min_time:
            break
    med = statistics.median(times)
    cv = 0.0
    if len(times) >= 4 and med > 0:
        # robust to the rare long outlier of a shared machine (a plain std/mean is not)
        q = statistics.quantiles(times, n=4)
        cv = (q[2] - q[0]) / 1.349 / med
    return Timing(med, cv, len(times), min(times), max(times), result)


# -- drift: a fixed reference kernel timed beside each point -----------------------------------
REFERENCE_SIZE = 96  # a float32 96x96x96 product: ~0.1 ms, in cache, one BLAS call


def reference_kernel(size: int = REFERENCE_SIZE) -> Callable[[], Any]:
    """A fixed, cheap kernel whose runtime tracks the machine's speed of the moment (the
    host's neighbours, frequency): timed next to each point, its ratio to its own median over
    a run corrects the point's runtime for drift (``runtime_s * ref_median / ref_s``)."""
    import numpy as np

    rng = np.random.default_rng(12345)
    a = rng.standard_normal((size, size)).astype(np.float32)
    b = rng.standard_normal((size, size)).astype(np.float32)
    return lambda: a @ b


def measure_with_reference(fn: Callable[[], Any], ref: Callable[[], Any], **kw
                           ) -> tuple[Timing, Timing]:
    """Time ``fn`` with the protocol and the reference kernel right after it (same settings):
    the pair is recorded together so that runtimes can be drift-corrected later."""
    t = measure(fn, **kw)
    r = measure(ref, **{k: v for k, v in kw.items() if k != "sync"})
    return t, r
