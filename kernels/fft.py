"""Batched 1-D complex FFT along the last axis (complex64), any length n."""
from __future__ import annotations

import numpy as np

from annpred.spec.expr import group_passes
from annpred.spec.kernel import Kernel, Param, Variant

from . import _torch as T


def make_inputs(p, rng):
    b, n = p["b"], p["n"]
    z = rng.standard_normal((b, n, 2)).astype(np.float32) / np.float32(np.sqrt(2.0 * n))
    return {"x": np.ascontiguousarray(z[..., 0] + 1j * z[..., 1]).astype(np.complex64)}


def reference(inputs, p):
    return np.fft.fft(inputs["x"].astype(np.complex128), axis=-1)


def infer_params(x):
    """(x (b, n) or (n,)); transforms along the last axis."""
    x = np.asarray(x) if not hasattr(x, "shape") else x
    n = int(x.shape[-1])
    b = int(np.prod(x.shape[:-1])) if len(x.shape) > 1 else 1
    return {"n": n, "b": b}


def _np_run(s):
    return np.fft.fft(s["x"], axis=-1)


def _scipy_run(s):
    import scipy.fft

    return scipy.fft.fft(s["x"], axis=-1)


def _torch_prepare(device):
    def prepare(inputs, p):
        return T.tensor(inputs["x"], device)
    return prepare


def _torch_run(s):
    import torch

    return torch.fft.fft(s, dim=-1)


def _budget(p):
    """profiled batches stay under 32 MB of complex64: n*b <= 2^22"""
    return p["n"] * p["b"] <= 1 << 22


_COMPLEXITY = {"fft_cost": "b*fftcost(n)", "factor_flops": "b*n*sopfr(n)",
               "flops": "b*n*log(n, 2)"}

# scipy.fft (pocketfft C++, general_nd) runs the transforms of a batch VLEN at a time in SIMD
# registers and the rest one by one; VLEN<float> is 4 on the baseline x86-64 (SSE2) and
# aarch64 (NEON) builds that the wheels ship. So b = 4q + r transforms cost q vector passes
# plus r scalar ones: a batch of 4 runs about as fast as one of 3 (numpy.fft loops over the
# transforms one at a time, and torch calls MKL; neither shows it). The network gets the
# pass count beside the batch (it learns what a vector pass costs against a scalar one).
# Development splits (experiments/dev_splits.py protocol, 250 + 250 points of the pool, 8
# seeds; the test points never took part), NN+C mean MAPE: AMD EPYC 1 thread 10.29 -> 7.52%,
# 2 threads 12.11 -> 9.48%; Intel Xeon (3 seeds, about 130 training points) 1 thread
# 22.99 -> 22.91%, 2 threads 15.82 -> 16.27%. Residuals by b mod 4 before it (log of
# measured / predicted, AMD, 1 thread): -0.15 at b = 4q, +0.08 at b = 4q + 3; Intel -0.16 /
# +0.20.
_SCIPY_VLEN = 4
_SCIPY_COMPLEXITY = {  # the kernel's terms, vector_passes second
    "fft_cost": _COMPLEXITY["fft_cost"],
    "vector_passes": f"({group_passes('b', _SCIPY_VLEN)})*fftcost(n)",
    **_COMPLEXITY,
}

# torch's CPU FFT calls MKL, which runs the power-of-two factor of a length in vectorised
# radix-2^k passes and is comparatively slow on odd lengths: against scipy.fft (pocketfft)
# on the same batch, torch took 1.3-2.5x as long at odd n and about as long from 4 x odd n on
# (AMD EPYC, 1 thread, n = 343..1331 times 1, 2, 4, 8, 16). fftcost(n), after pocketfft's
# planner, prices a radix-2 pass like the rest, so the network gets the radix-2 work beside
# it (it learns what a power-of-two pass saves). Before it, the log residual of the 1-thread
# AMD profile by twos(n) (n >= 256) ran from +0.10 at odd n to -0.31 at 16 x odd n.
# Development splits (experiments/dev_splits.py protocol, 4 seeds), NN+C mean MAPE: AMD
# EPYC 1 thread 14.11 -> 9.99%, 2 threads 23.40 -> 20.92%; Intel Xeon (87 training points
# of its 175-point pool) 1 thread 45.56 -> 45.96%, 2 threads 42.23 -> 42.02% (its residuals
# there are 0.5-0.9 in log at every size: noise this term cannot explain).
_TORCH_COMPLEXITY = {"fft_cost": _COMPLEXITY["fft_cost"], "radix2_work": "b*n*(1 + twos(n))",
                     **_COMPLEXITY}

KERNEL = Kernel(
    name="fft",
    description="Batched complex-to-complex FFT of b complex64 signals of length n (any "
                "integer; the runtime steps with the factorisation of n).",
    params=[
        Param("n", "int", 2, 1 << 20, "log", description="transform length"),
        Param("b", "int", 1, 64, "log", description="batch (number of signals)"),
    ],
    # mixed-radix FFTs cost ~ n * (sum of the prime factors of n); n*log2(n) is the
    # power-of-two case. With only n*log(n), held-out MAPE was ~35%; with sopfr ~12-18%.
    # fftcost(n) adds the planner's choice of Bluestein's algorithm for lengths with a
    # large prime factor (n*sopfr(n) would call a prime length n^2). Held-out MAPE (Intel
    # Xeon models, n up to 2^20, 100 points): 1 thread numpy 15.0->13.1%, scipy 18.4->14.0%,
    # torch 36.1->33.4%; 2 threads numpy 9.8->10.8%, scipy 13.4->11.3%, torch 29.7->27.6%.
    # AMD EPYC 1 thread (n up to 16311, 3 seeds): numpy 6.9->6.5%, scipy 13.3->12.2%,
    # torch 15.7->15.6%.
    complexity=_COMPLEXITY,
    make_inputs=make_inputs,
    reference=reference,
    infer_params=infer_params,
    rtol=1e-3,
    atol=1e-4,
    variants=[
        Variant("numpy", run=_np_run, description="numpy.fft.fft (pocketfft, complex64)"),
        Variant("scipy", run=_scipy_run, description="scipy.fft.fft (pocketfft C++, complex64)",
                complexity=_SCIPY_COMPLEXITY),
        Variant("torch", run=_torch_run, prepare=_torch_prepare("cpu"), to_numpy=T.to_numpy,
                description="torch.fft.fft on CPU (MKL)", complexity=_TORCH_COMPLEXITY),
        Variant("torch_cuda", run=_torch_run, prepare=_torch_prepare("cuda"),
                to_numpy=T.to_numpy, device="cuda", available=T.cuda_available,
                sync=T.cuda_sync, description="torch.fft.fft (cuFFT) on the GPU"),
    ],
    profile_constraint=_budget,
)
