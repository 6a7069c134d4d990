"""Host-device transfer cost for CUDA candidates: ``latency + bytes / bandwidth``."""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from annpred.spec import hardware as hw


@dataclass
class TransferModel:
    """Seconds to move ``b`` bytes between host and device: ``latency_s + b / bytes_per_s``.

    The defaults are conservative PCIe figures; :func:`calibrate_transfer` measures them."""

    latency_s: float = 15e-6
    bytes_per_s: float = 10e9
    calibrated: bool = False

    def seconds(self, nbytes: float) -> float:
        return self.latency_s + float(nbytes) / self.bytes_per_s


TRANSFER = TransferModel()


def calibrate_transfer(sizes=(1 << 12, 1 << 20, 1 << 24), repeats: int = 5) -> TransferModel:
    """Measure host->device copies with torch (only on a machine with a CUDA GPU) and fit
    latency and bandwidth; updates and returns the module's :data:`TRANSFER`."""
    if not hw.cuda_available():
        return TRANSFER
    import torch

    xs, ts = [], []
    for n in sizes:
        a = torch.empty(n, dtype=torch.uint8)  # pageable memory, like numpy operands
        a.to("cuda")
        torch.cuda.synchronize()
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            a.to("cuda")
            torch.cuda.synchronize()
            times.append(time.perf_counter() - t0)
        xs.append(float(n))
        ts.append(float(np.median(times)))
    slope, icpt = np.polyfit(np.asarray(xs), np.asarray(ts), 1)
    TRANSFER.latency_s = max(float(icpt), 1e-6)
    TRANSFER.bytes_per_s = 1.0 / max(float(slope), 1e-13)
    TRANSFER.calibrated = True
    return TRANSFER
