"""Sub-kernels for the sampling study (load with ANNPRED_KERNELS=experiments/study_kernels.py
or import; experiments/sampling.py registers them itself).

``matmul_small``: the catalog's dense matmul restricted to small products, m, n, k uniform in
[1, 128] (dense operands), where tile and vector-width steps dominate the runtime. Its
variants are the catalog's own numpy and Halide variants (same code, same inputs layout).
"""
from __future__ import annotations

import numpy as np

from annpred.kernel import Kernel, Param

from kernels import matmul as _mm
from kernels._common import nonzero_values


def _make(p, rng):
    m, n, k = int(p["m"]), int(p["n"]), int(p["k"])
    return {"A": nonzero_values(rng, m * k).reshape(m, k),
            "B": nonzero_values(rng, k * n).reshape(k, n)}


_VARIANTS = [_mm.KERNEL.variant(v) for v in ("numpy", "halide")]

MATMUL_SMALL = Kernel(
    name="matmul_small",
    description="Dense float32 C = A @ B for small m, n, k in [1, 128] (study sub-kernel of "
                "matmul where tile/vector steps dominate).",
    params=[Param("m", "int", 1, 128, "uniform", description="rows of A and C"),
            Param("n", "int", 1, 128, "uniform", description="columns of B and C"),
            Param("k", "int", 1, 128, "uniform", description="inner dimension")],
    complexity={"flops": "m*n*k", "memory": "m*k + k*n + m*n"},
    make_inputs=_make,
    reference=_mm.reference,
    infer_params=lambda A, B: {"m": A.shape[0], "n": B.shape[1], "k": A.shape[1]},
    rtol=1e-3,
    atol=1e-3,
    variants=_VARIANTS,
)

KERNELS = [MATMUL_SMALL]
