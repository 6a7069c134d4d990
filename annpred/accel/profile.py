"""Profiling CSV rows from the fast model: ``annpred profile KERNEL --hardware sim-<name>``.

A modelled accelerator is one more hardware id. Its only variant, ``sim``, is "measured" by
the fast dependency-graph evaluation (cycles / clock = seconds; deterministic, so the
dispersion is 0 and one repeat is recorded), so the usual data line (train, predict, PR
sampling with step-aware features) works unchanged.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import ParameterError
from ..spec.kernel import Variant
from .description import Accelerator, get
from .evaluate import estimate
from .layers import make

VARIANT = "sim"


def layer_for(kernel: str, point) -> object:
    """The accelerator layer of a catalog kernel's parameter point."""
    p = {k: int(round(float(v))) for k, v in point.items() if k in "nkcfms" or len(k) == 1}
    if kernel == "conv2d":    # square image n, k x k filters, c -> f channels, stride 1
        return make("conv2d", dict(H=p["n"], W=p["n"], R=p["k"], S=p["k"], C=p["c"],
                                   M=p["f"], stride=p.get("s", 1)))
    if kernel == "matmul":    # dense (m x k) @ (k x n); densities do not change the array's work
        return make("gemm", dict(M=p["m"], K=p["k"], N=p["n"]))
    raise ParameterError(f"kernel {kernel!r} has no accelerator mapping; modelled: conv2d, "
                         f"matmul")


@dataclass(eq=False)
class SimVariant(Variant):
    """The ``sim`` variant of a kernel on a modelled accelerator."""
    acc: Accelerator | None = None
    mode: str = "user"
    kernel: str = ""
    hardware: str = field(default="")

    def simulate(self, point):
        from ..measure.protocol import Timing

        r = estimate(self.acc, layer_for(self.kernel, point), self.mode)
        return Timing(median_s=r["seconds"], cv=0.0, repeats=1, min_s=r["seconds"],
                      max_s=r["seconds"])


def sim_variant(kernel: str, hardware: str, mode: str = "user") -> SimVariant:
    if not hardware.startswith("sim-"):
        raise ParameterError(f"--hardware {hardware!r}: modelled accelerators are sim-<name>")
    acc = get(hardware)
    if kernel not in ("conv2d", "matmul"):
        layer_for(kernel, {})    # raises the clear error
    return SimVariant(name=VARIANT, run=lambda state: None,
                      description=f"fast model of {acc.name} ({mode} mode)", acc=acc,
                      mode=mode, kernel=kernel, hardware=acc.hardware_id())
