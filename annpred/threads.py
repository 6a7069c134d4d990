"""Fix the thread count of every library that spawns threads (BLAS, OpenMP, torch, Halide).

Call :func:`fix_threads` before the first kernel runs. Halide reads ``HL_NUM_THREADS`` when
its runtime thread pool starts, so the environment variable must be set before the first
parallel Halide pipeline runs in this process.
"""
from __future__ import annotations

import os
import sys

_ENV_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
             "BLIS_NUM_THREADS", "NUMEXPR_NUM_THREADS", "HL_NUM_THREADS",
             "VECLIB_MAXIMUM_THREADS")
_limiter = None
_current: int | None = None


def fix_threads(n: int) -> int:
    """Limit BLAS/OpenMP/torch/Halide to ``n`` threads in this process; returns ``n``."""
    global _limiter, _current
    n = int(n)
    if n < 1:
        raise ValueError(f"threads must be >= 1, got {n}")
    for var in _ENV_VARS:
        os.environ[var] = str(n)
    from threadpoolctl import threadpool_limits

    _limiter = threadpool_limits(limits=n)
    if "torch" in sys.modules:
        _set_torch(n)
    _current = n
    return n


def _set_torch(n: int) -> None:
    import torch

    torch.set_num_threads(n)
    try:
        torch.set_num_interop_threads(n)
    except RuntimeError:
        pass  # can only be set once, before any parallel work


def current_threads() -> int | None:
    return _current


def ensure_torch_threads() -> None:
    """Apply the fixed thread count to torch once torch has been imported lazily."""
    if _current is not None:
        _set_torch(_current)
