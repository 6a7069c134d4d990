"""Fix the thread count of every library that spawns threads (BLAS, OpenMP, torch, Halide).

Call :func:`fix_threads` before the first kernel runs (profiling: the whole process);
:func:`limit_threads` limits one call and restores the previous counts; :func:`shared_limit_threads` does it for calls that overlap in threads (dispatch). Halide reads ``HL_NUM_THREADS`` when
its runtime thread pool starts, so the environment variable must be set before the first
parallel Halide pipeline runs in this process.
"""
from __future__ import annotations

import os
import sys
import threading
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


_GATE = threading.Condition()
_HELD: dict = {"n": None, "count": 0, "limit": None}  # the thread count running calls share
_INSIDE = threading.local()


@contextmanager
def shared_limit_threads(n: int | None):
    """:func:`limit_threads` for one call of many running at once in threads (dispatch).
    Thread counts are process-wide: overlapping limits undo each other, and the last call to
    restore would leave the process at another call's count. Calls needing one count run
    together (the first sets it, the last restores); a call needing another waits for them.
    A dispatch inside a running call (a variant that dispatches) limits as before."""
    if n is None or getattr(_INSIDE, "depth", 0):
        with limit_threads(n):
            yield
        return
    with _GATE:
        while _HELD["count"] and _HELD["n"] != n:
            _GATE.wait()
        if not _HELD["count"]:
            lim = limit_threads(n)
            lim.__enter__()
            _HELD["n"], _HELD["limit"] = n, lim
        _HELD["count"] += 1
    _INSIDE.depth = 1
    try:
        yield
    finally:
        _INSIDE.depth = 0
        with _GATE:
            _HELD["count"] -= 1
            if not _HELD["count"]:
                lim, _HELD["limit"], _HELD["n"] = _HELD["limit"], None, None
                try:
                    lim.__exit__(None, None, None)
                finally:
                    _GATE.notify_all()


def _reset_gate() -> None:  # in a forked child: the calls of the parent's threads are gone
    global _GATE
    _GATE = threading.Condition()
    _HELD.update(n=None, count=0, limit=None)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_gate)


def pool_limits(n: int):
    """Limit BLAS/OpenMP pools only (threadpoolctl; no environment, no torch) to ``n``
    threads until the returned limiter's ``restore_original_limits()``; None if
    threadpoolctl is missing. For worker processes that each own one core."""
    try:
        from threadpoolctl import threadpool_limits

        return threadpool_limits(n)
    except Exception:  # pragma: no cover
        return None
