"""Sub-kernels for the sampling study (load with ANNPRED_KERNELS=experiments/study_kernels.py
or import; experiments/sampling.py registers them itself).

``matmul_small``: the catalog's dense matmul restricted to small products, m, n, k uniform in
[1, 128] (dense operands), where tile and vector-width steps dominate the runtime. Its
variants are the catalog's own numpy and Halide variants (same code, same inputs layout).
"""
from __future__ import annotations

from annpred.spec.kernel import Kernel, Param

from annpred.kernels import matmul as _mm
from annpred.kernels._common import nonzero_values


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


# ``blur_plain``: the catalog's blur with only the generic complexity (pixels = w*h) for its
# Halide schedules -- the catalog's halide_tiled variant carries hand-written tile features
# (ceiling(w/256)*ceiling(h/32)); here PR has to discover the tile steps from measurements.
import dataclasses as _dc  # noqa: E402

from annpred.kernels import blur as _blur  # noqa: E402

BLUR_PLAIN = Kernel(
    name="blur_plain",
    description="3x3 box blur (catalog blur) whose Halide variants use only pixels = w*h "
                "as complexity (study sub-kernel: steps must be discovered).",
    params=list(_blur.KERNEL.params),
    complexity={"pixels": "w*h"},
    make_inputs=_blur.make_inputs,
    reference=_blur.reference,
    infer_params=_blur.infer_params,
    rtol=_blur.KERNEL.rtol,
    atol=_blur.KERNEL.atol,
    variants=[_dc.replace(_blur.KERNEL.variant(v), complexity=None)
              for v in ("halide_tiled", "halide_root")],
)

KERNELS = [MATMUL_SMALL, BLUR_PLAIN]
