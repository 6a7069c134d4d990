"""Multi-channel 2-D valid cross-correlation (a convolution layer without bias)."""
from __future__ import annotations

import numpy as np

from annpred.spec.expr import binary_passes
from annpred.spec.kernel import Kernel, Param, Variant

from . import _halide as H
from . import _torch as T


def make_inputs(p, rng):
    n, k, c, f = p["n"], p["k"], p["c"], p["f"]
    return {"image": rng.uniform(-1, 1, (c, n, n)).astype(np.float32),
            "weights": rng.uniform(-1, 1, (f, c, k, k)).astype(np.float32)}


def reference(inputs, p):
    x = inputs["image"].astype(np.float64)
    w = inputs["weights"].astype(np.float64)
    k = w.shape[-1]
    win = np.lib.stride_tricks.sliding_window_view(x, (k, k), axis=(1, 2))  # c,o,o,k,k
    return np.einsum("cyxij,fcij->fyx", win, w, optimize=True)


def infer_params(image, weights):
    """(image (c, n, n), weights (f, c, k, k))."""
    c, n, n2 = image.shape
    f, c2, k, k2 = weights.shape
    if n != n2 or k != k2 or c != c2:
        raise ValueError(f"conv2d: expected image (c,n,n) and weights (f,c,k,k), got "
                         f"{image.shape} and {weights.shape}")
    return {"n": int(n), "k": int(k), "c": int(c), "f": int(f)}


def _constraint(p):
    """k <= n"""
    return p["k"] <= p["n"]


# numpy: im2col with sliding_window_view, then one BLAS matmul
def _np_prepare(inputs, p):
    f, c, k, _ = inputs["weights"].shape
    return inputs["image"], inputs["weights"].reshape(f, c * k * k), k


def _np_run(s):
    x, w2, k = s
    c, n, _ = x.shape
    o = n - k + 1
    win = np.lib.stride_tricks.sliding_window_view(x, (k, k), axis=(1, 2))  # c,o,o,k,k
    cols = win.transpose(0, 3, 4, 1, 2).reshape(c * k * k, o * o)  # copies (im2col)
    return (w2 @ cols).reshape(-1, o, o)


# The product is (f x c*k*k) @ (c*k*k x o*o): OpenBLAS runs the f rows of the result in
# groups of 4 and the last f mod 4 one by one (matmul's row passes; f is at most 16 here, so
# f = 3 costs about what f = 6 does). Development splits (experiments/dev_splits.py, 4
# seeds), NN+C mean MAPE before -> after: AMD EPYC 1 thread 5.62 -> 4.13%, 2 threads 9.15 ->
# 9.05%; Intel Xeon 1 thread 14.08 -> 14.11%, 2 threads 11.68 -> 11.22%. The passes over
# o*o changed nothing in the residual scan that found it. Since stop 43 the remainder runs
# in halving chunks (f = 4q + 3: 2 + 1), as a sweep of matmul/numpy along m showed
# (kernels/matmul.py): `binary_passes('f', 4)`. Development splits (5 seeds), 4-groups ->
# binary: AMD EPYC legacy 4.04 -> 3.83%, 9.42 -> 9.30%; Zen 5 9.69 -> 9.58%, 20.46 -> 20.55%;
# Intel Xeon 13.68 -> 13.77%, 11.22 -> 11.12% (within the seed spread; kept to agree with
# matmul/numpy, the same library's same kernel).
_FILTER_PASSES = f"c*k**2*(n-k+1)**2*({binary_passes('f', 4)})"


# scipy: scipy.signal.correlate(mode="valid") of the (c,n,n) image with each (c,k,k) filter
def _scipy_run(s):
    from scipy import signal

    x, w = s
    return np.concatenate([signal.correlate(x, w[j], mode="valid") for j in range(w.shape[0])])


def _scipy_prepare(inputs, p):
    return inputs["image"], inputs["weights"]


# torch
# Which backend torch's CPU conv2d takes (ATen's ConvParams::use_mkldnn, float32, batch 1,
# stride 1, no dilation, groups 1): oneDNN ("Mkldnn") when the filter is larger than 3x3 or
# the input holds more than 20480 values, except, at one thread, for 1x1 filters; else
# ATen's own im2col + GEMM ("Slow2d"). oneDNN's per-call set-up costs tens of microseconds,
# several times a small convolution's work. ``mkldnn`` is 1 where oneDNN runs at one thread,
# ``mkldnn_mt`` where it runs at more (a model uses the one that fits its hardware's
# threads); both are checked against torch._C._select_conv_backend in the tests.
TORCH_MKLDNN_MT = "max(min(max(k - 3, 0), 1), min(max(c*n**2 - 20480, 0), 1))"
TORCH_MKLDNN = f"min(k - 1, 1)*{TORCH_MKLDNN_MT}"


def _torch_prepare(device):
    def prepare(inputs, p):
        return T.tensor(inputs["image"][None], device), T.tensor(inputs["weights"], device)
    return prepare


def _torch_run(s):
    import torch.nn.functional as F

    return F.conv2d(s[0], s[1])[0]


# Halide: tiles of one vector of x by 4 filters held in registers, reduction over
# (kx, ky, c) inside; rows x filter-blocks parallel. Output x padded to whole vectors and
# filters to a multiple of 4 (zero weights); the input is zero-padded to match.
_FT = 4


def _halide_build(hl):
    L = H.lanes()
    inp = hl.ImageParam(hl.Float(32), 3, "image")  # (x, y, c)
    W = hl.ImageParam(hl.Float(32), 4, "weights")  # (kx, ky, c, f)
    x, y, z = hl.Var("x"), hl.Var("y"), hl.Var("z")
    xo, xi, zo, zi, t = hl.Var("xo"), hl.Var("xi"), hl.Var("zo"), hl.Var("zi"), hl.Var("t")
    r = hl.RDom([hl.Range(0, W.dim(0).extent()), hl.Range(0, W.dim(1).extent()),
                 hl.Range(0, W.dim(2).extent())])
    conv = hl.Func("conv")
    conv[x, y, z] = hl.f32(0)
    conv[x, y, z] += W[r.x, r.y, r.z, z] * inp[x + r.x, y + r.y, r.z]
    out = hl.Func("out")
    out[x, y, z] = conv[x, y, z]
    out.tile(x, z, xo, zo, xi, zi, L, _FT).vectorize(xi).unroll(zi)
    out.reorder(xi, zi, xo, y, zo).fuse(y, zo, t).parallel(t)
    conv.compute_at(out, xo).vectorize(x).unroll(z)
    conv.update().reorder(x, z, r.x, r.y, r.z).vectorize(x).unroll(z)
    return out, [inp, W]


def _halide_prepare(inputs, p):
    x, w = inputs["image"], inputs["weights"]
    c, n, _ = x.shape
    f, _, k, _ = w.shape
    o = n - k + 1
    L = H.lanes()
    O = H.round_up(o, L)
    xp = H.padded(x, (c, n, O + k - 1))
    wp = H.padded(w, (H.round_up(f, _FT), c, k, k))
    out = np.empty((wp.shape[0], o, O), np.float32)
    fn = H.compile_cached("conv2d", _halide_build)
    return fn, H.buffer(xp), H.buffer(wp), H.buffer(out), out[:f, :, :o], (xp, wp)


def _halide_run(s):
    s[0](s[1], s[2], s[3])
    return s[4]


# The MACs the Halide schedule computes: output rows padded to whole vectors (LANES), filters
# to a multiple of 4; beside them `valid_macs`, the same without the padded output columns.
# Development splits (250 + 250 points of the pool, 4 seeds, test points never used), NN+C
# mean MAPE, before -> after:
# AMD EPYC 1 thread 7.72 -> 2.20%, 2 threads 21.60 -> 21.26%; Intel Xeon 1 thread 11.48 ->
# 6.74%, 2 threads 49.21 -> 47.81%.
_MACS = "f*c*k**2*(n-k+1)**2"
_MEMORY = "c*n**2 + f*c*k**2 + f*(n-k+1)**2"

# Which method scipy.signal.correlate(method="auto") runs, as scipy decides it per call
# (choose_conv_method -> _fftconv_faster, scipy >= 1.5, the N-d "valid" constants): the FFT
# method when 1.85927e-9 * 3*N*ln(N) < 2.11242e-8 * c*k**2*(n-k+1)**2 - 1e-4, N =
# (2c-1)*(n+k-1)**2 the full output of the (c,n,n) image and a (c,k,k) filter, else the
# direct one (c*k**2*(n-k+1)**2 multiply-adds). It picks FFT on about half of the catalog's
# points, so the runtime follows two cost laws. ``scipy_work`` is scipy's own estimate of the
# method it runs (seconds on the machine scipy tuned it on) times the f filters; ``scipy_fft``
# is 1 where it runs FFT (both checked against scipy's choice in the tests). Development
# splits (experiments/dev_splits.py protocol, 250 + 250 points of the pool, 5 seeds, the
# test points never used), NN+C mean MAPE before -> after: AMD EPYC 1 thread 6.42 -> 3.93%,
# 2 threads 12.16 -> 8.77%; Zen 5 (150 + 150) 19.15 -> 8.88%, 25.38 -> 19.22%; Intel Xeon
# (about 125 + 125) 24.61 -> 15.39%, 15.57 -> 7.71%; better on every seed of every machine.
# Then the FFT runs on padded lengths: fftconvolve pads each axis of the full output to
# next_fast_len(size, real=True) (``fastlen``), so ``scipy_work`` takes scipy's FFT estimate
# at the padded size where scipy runs FFT (its choice stays on the unpadded size, as scipy
# makes it). Development splits, 5 seeds, mean MAPE before -> after: AMD EPYC 3.93 -> 3.07%,
# 8.77 -> 8.46%; Zen 5 8.88 -> 8.48%, 19.22 -> 17.85%; Intel Xeon 15.39 -> 12.58%, 7.71 ->
# 7.50% (chosen among three sets fixed before the runs; a separate padded term was worse).
_SCIPY_DIRECT = "2.11242e-8*c*k**2*(n-k+1)**2"
_SCIPY_FFT = "1.85927e-9*3*(2*c-1)*(n+k-1)**2*log((2*c-1)*(n+k-1)**2) + 1e-4"
_SCIPY_PADDED = "fastlen(2*c-1)*fastlen(n+k-1)**2"
_SCIPY_FFT_PADDED = f"1.85927e-9*3*{_SCIPY_PADDED}*log({_SCIPY_PADDED}) + 1e-4"
_SCIPY_RUNS_FFT = f"min(ceiling(max({_SCIPY_DIRECT} - ({_SCIPY_FFT}), 0)), 1)"
_SCIPY_COMPLEXITY = {
    "scipy_work": f"f*({_SCIPY_DIRECT} + {_SCIPY_RUNS_FFT}*({_SCIPY_FFT_PADDED} - "
                  f"({_SCIPY_DIRECT})))",
    "scipy_fft": _SCIPY_RUNS_FFT,
    "macs": _MACS,
    "memory": _MEMORY,
}

_HALIDE_COMPLEXITY = {
    "macs": f"4*ceiling(f/4)*c*k**2*(n-k+1)*{H.LANES}*ceiling((n-k+1)/{H.LANES})",
    "valid_macs": "4*ceiling(f/4)*c*k**2*(n-k+1)**2",
    "memory": _MEMORY}

KERNEL = Kernel(
    name="conv2d",
    description="Valid 2-D cross-correlation of a (c, n, n) float32 image with f filters "
                "(f, c, k, k); output (f, n-k+1, n-k+1).",
    params=[
        Param("n", "int", 8, 128, "log", description="image side"),
        Param("k", "int", 1, 7, "uniform", description="filter side (k <= n)"),
        Param("c", "int", 1, 16, "log", description="input channels"),
        Param("f", "int", 1, 16, "log", description="filters (output channels)"),
    ],
    complexity={"macs": _MACS, "memory": _MEMORY},
    constraint=_constraint,
    make_inputs=make_inputs,
    reference=reference,
    infer_params=infer_params,
    rtol=1e-3,
    atol=1e-3,
    variants=[
        Variant("numpy", run=_np_run, prepare=_np_prepare,
                description="im2col (sliding_window_view copy) + BLAS matmul",
                complexity={"macs": _MACS, "filter_passes": _FILTER_PASSES,
                            "im2col": "c*k**2*(n-k+1)**2"}),
        Variant("scipy", run=_scipy_run, prepare=_scipy_prepare,
                description="scipy.signal.correlate(mode='valid', method='auto') per filter",
                complexity=_SCIPY_COMPLEXITY),
        Variant("torch", run=_torch_run, prepare=_torch_prepare("cpu"), to_numpy=T.to_numpy,
                description="torch.nn.functional.conv2d on CPU",
                complexity={"macs": _MACS, "memory": _MEMORY,
                            "mkldnn": TORCH_MKLDNN, "mkldnn_mt": TORCH_MKLDNN_MT}),
        Variant("halide", run=_halide_run, prepare=_halide_prepare,
                description="Halide: vector x 4-filter register tiles, reduction inside, "
                            "rows parallel",
                complexity=_HALIDE_COMPLEXITY),
        Variant("torch_cuda", run=_torch_run, prepare=_torch_prepare("cuda"),
                to_numpy=T.to_numpy, device="cuda", available=T.cuda_available,
                sync=T.cuda_sync, description="torch.nn.functional.conv2d on the GPU"),
    ],
)
