"""Fix the thread count of every library that spawns threads (BLAS, OpenMP, torch, Halide).

Call :func:`fix_threads` before the first kernel runs (profiling: the whole process);
:func:`limit_threads` limits one call and restores the previous counts (dispatch). Halide reads ``HL_NUM_THREADS`` when
its runtime thread pool starts, so the environment variable must be set before the first
parallel Halide pipeline runs in this process.
"""
from __future__ import annotations

import os
import sys
from contextlib import contextmanager

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


def ensure_torch_threads() -> None:
    """Apply the fixed thread count to torch once torch has been imported lazily."""
    if _current is not None:
        _set_torch(_current)


_CONTROLLER = {"ctl": None, "nmods": -1}


@contextmanager
def limit_threads(n: int | None):
    """Limit BLAS/OpenMP (threadpoolctl) and torch to ``n`` threads for one call, then
    restore them; ``None`` leaves them as they are. Cheap when nothing needs changing."""
    if n is None:
        yield
        return
    ctl = _CONTROLLER["ctl"]
    if ctl is None or _CONTROLLER["nmods"] != len(sys.modules):
        from threadpoolctl import ThreadpoolController

        ctl = _CONTROLLER["ctl"] = ThreadpoolController()
        _CONTROLLER["nmods"] = len(sys.modules)
    torch = sys.modules.get("torch")
    old_torch = torch.get_num_threads() if torch is not None else None
    if torch is not None and old_torch != n:
        torch.set_num_threads(n)
    try:
        if all(info.get("num_threads") == n for info in ctl.info()):
            yield
        else:
            with ctl.limit(limits=n):
                yield
    finally:
        if torch is not None and old_torch != n:
            torch.set_num_threads(old_torch)


def pool_limits(n: int):
    """Limit BLAS/OpenMP pools only (threadpoolctl; no environment, no torch) to ``n``
    threads until the returned limiter's ``restore_original_limits()``; None if
    threadpoolctl is missing. For worker processes that each own one core."""
    try:
        from threadpoolctl import threadpool_limits

        return threadpool_limits(n)
    except Exception:  # pragma: no cover
        return None
