"""Roofline baseline: a layer takes the longer of its compute time at full PE utilisation
and its minimal DRAM traffic (every distinct word moved once) at the DRAM bandwidth."""
from __future__ import annotations

import math

from .description import Accelerator
from .layers import Layer


def roofline_cycles(acc: Accelerator, layer: Layer, mode: str = "user") -> int:
    compute = math.ceil(layer.macs() / (acc.rows * acc.cols))
    if mode == "calc":       # ideal DRAM bandwidth: compute bound
        return compute
    words = sum(layer.words().values()) * layer.groups
    # ifmap and filter have a port each; the ofmap drains through the third
    memory = math.ceil(words / (3 * acc.dram_bandwidth))
    return max(compute, memory)
