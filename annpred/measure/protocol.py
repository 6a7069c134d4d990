"""The measurement protocol: warm up, repeat until at least ``min_runs`` runs and
``min_time`` seconds, record the median and the dispersion (a robust coefficient of
variation, IQR / 1.349 / median, which equals std / mean for normal noise but is not blown
up by one preempted run on a shared machine).

Repeating a call on the same data lets the processor learn that data: a branch predictor
replays the outcomes of data-dependent branches it has seen (a max-pooling window's
comparisons), so a repeated small call can run several times faster than the same call on
new data (torch's 2x2 max pooling of 10,000 outputs, 1 thread, AMD
EPYC Zen 5: 3.2x). :func:`measure` therefore also takes several calls, one per distinct
input set, and runs them in turn (:func:`input_sets` says how many)."""
from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from typing import Any, Callable, Sequence

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


def measure(fn: Callable[[], Any] | Sequence[Callable[[], Any]], *,
            sync: Callable[[], None] | None = None,
            warmup: int = DEFAULT_WARMUP, min_runs: int = DEFAULT_MIN_RUNS,
            min_time: float = DEFAULT_MIN_TIME, max_runs: int = DEFAULT_MAX_RUNS,
            max_time: float = 10.0) -> Timing:
    """Time ``fn()`` with the protocol; ``sync`` is called after each run (CUDA). ``fn`` may
    be a sequence of calls (the same work on distinct input sets): the runs take them in
    turn, and the warm-up runs each of them."""
    fns = list(fn) if isinstance(fn, Sequence) else [fn]
    if not fns:
        raise ValueError("measure: no call to time")
    result = None
    for _ in range(max(warmup, 0)):
        for f in fns:
            result = f()
            if sync is not None:
                sync()
    times: list[float] = []
    clock = time.perf_counter
    start = clock()
    while True:
        f = fns[len(times) % len(fns)]
        t0 = clock()
        result = f()
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


# -- fresh inputs: no run replays the data of the run before it -------------------------------
# Distinct input sets to rotate through: enough that together they hold ROTATE_BYTES (half a
# million float32 values, beyond what a branch predictor replays: on the Zen 5 a single 2x2
# max pooling of 40,000 values was replayed, 16 of 6,400 values each were not), at most
# MAX_INPUT_SETS; one where a single set is that large already.
ROTATE_BYTES = 2 << 20
MAX_INPUT_SETS = 1024


def input_sets(input_bytes: int, rotate_bytes: int = ROTATE_BYTES) -> int:
    """How many distinct input sets of ``input_bytes`` each a measurement rotates through
    (enough to hold ``rotate_bytes`` together; ``experiments/rotation_bytes.py`` compares
    amounts)."""
    if input_bytes <= 0:
        return 1
    return int(min(MAX_INPUT_SETS, max(1, -(-int(rotate_bytes) // int(input_bytes)))))


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


def measure_with_reference(fn: Callable[[], Any] | Sequence[Callable[[], Any]],
                           ref: Callable[[], Any], **kw) -> tuple[Timing, Timing]:
    """Time ``fn`` with the protocol and the reference kernel right after it (same settings):
    the pair is recorded together so that runtimes can be drift-corrected later."""
    t = measure(fn, **kw)
    r = measure(ref, **{k: v for k, v in kw.items() if k != "sync"})
    return t, r
