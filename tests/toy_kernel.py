"""A tiny, fast, deterministic kernel for CLI tests (loaded through ANNPRED_KERNELS)."""
import time

import numpy as np

from annpred.spec.kernel import Kernel, Param, Variant


def _make(params, rng):
    return {"x": rng.random(int(params["n"]))}


def _ref(inputs, params):
    return np.cumsum(inputs["x"])


def _sleepy(state):
    time.sleep(2e-4)
    return np.cumsum(state["x"])


KERNEL = Kernel(
    name="toy",
    description="cumulative sum of n numbers (test kernel)",
    params=[Param("n", "int", 16, 4096, "log")],
    complexity={"work": "n"},
    make_inputs=_make,
    reference=_ref,
    variants=[Variant("cumsum", run=lambda s: np.cumsum(s["x"])),
              Variant("accumulate", run=lambda s: np.add.accumulate(s["x"])),
              Variant("sleepy", run=_sleepy)],
)
