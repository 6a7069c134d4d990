"""Torch helpers for the kernel catalog (torch is imported lazily, never at module level)."""
from __future__ import annotations

import numpy as np


def torch():
    import torch as _t

    from annpred.threads import ensure_torch_threads

    ensure_torch_threads()
    return _t


def tensor(a, device: str = "cpu"):
    t = torch()
    x = t.from_numpy(np.ascontiguousarray(a))
    return x.to(device) if device != "cpu" else x


def to_numpy(x) -> np.ndarray:
    return x.detach().cpu().numpy()


def cuda_available() -> bool:
    from annpred.spec.hardware import cuda_available as _avail

    return _avail()


def cuda_sync() -> None:
    import torch as _t

    _t.cuda.synchronize()
