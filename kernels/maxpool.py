"""2-D max pooling of a (c, n, n) image with a w x w window and stride s (no padding)."""
from __future__ import annotations

import numpy as np

from annpred.spec.kernel import Kernel, Param, Variant

from . import _halide as H
from . import _torch as T


def _out(n, w, s):
    return (n - w) // s + 1


def make_inputs(p, rng):
    return {"x": rng.standard_normal((p["c"], p["n"], p["n"])).astype(np.float32)}


def reference(inputs, p):
    x = inputs["x"]
    w, s = int(p["w"]), int(p["s"])
    win = np.lib.stride_tricks.sliding_window_view(x, (w, w), axis=(1, 2))[:, ::s, ::s]
    return win.max(axis=(-2, -1))


def infer_params(x, w=None, s=None):
    """(x (c, n, n)); the window w and stride s cannot be read from the operand and come
    from the keyword arguments (or the kernel's defaults)."""
    c, n, n2 = x.shape
    if n != n2:
        raise ValueError(f"maxpool: expected a square (c, n, n) image, got {x.shape}")
    out = {"n": int(n), "c": int(c)}
    if w is not None:
        out["w"] = int(w)
    if s is not None:
        out["s"] = int(s)
    return out


def _constraint(p):
    """w <= n"""
    return p["w"] <= p["n"]


# numpy: separable -- max over the w column shifts, then over the w row shifts
def _np_prepare(inputs, p):
    return inputs["x"], int(p["w"]), int(p["s"])


def _np_run(st):
    x, w, s = st
    n = x.shape[1]
    o = _out(n, w, s)
    span = s * (o - 1) + 1
    cols = x[:, :, 0:span:s].copy()
    for d in range(1, w):
        np.maximum(cols, x[:, :, d:d + span:s], out=cols)
    res = cols[:, 0:span:s, :].copy()
    for d in range(1, w):
        np.maximum(res, cols[:, d:d + span:s, :], out=res)
    return res


# scipy: ndimage.maximum_filter over (1, w, w), then subsample the window starts
def _scipy_prepare(inputs, p):
    w, s = int(p["w"]), int(p["s"])
    n = inputs["x"].shape[1]
    o = _out(n, w, s)
    c0 = w // 2  # maximum_filter centres a size-w window at offset w // 2 from its start
    sl = slice(c0, c0 + s * (o - 1) + 1, s)
    return inputs["x"], w, (slice(None), sl, sl)


def _scipy_run(st):
    from scipy import ndimage

    x, w, sl = st
    return ndimage.maximum_filter(x, size=(1, w, w), mode="nearest")[sl]


# torch
def _torch_prepare(device):
    def prepare(inputs, p):
        return T.tensor(inputs["x"][None], device), int(p["w"]), int(p["s"])
    return prepare


def _torch_run(st):
    import torch.nn.functional as F

    return F.max_pool2d(st[0], st[1], stride=st[2])[0]


# Halide: direct w x w maximum, vectorised along x (strided loads), channel x row parallel.
# The output row is padded to whole vectors and the input zero-padded so that it covers them.
def _halide_build(hl):
    inp = hl.ImageParam(hl.Float(32), 3, "x")  # (x, y, c)
    w = hl.Param(hl.Int(32), "w")
    s = hl.Param(hl.Int(32), "s")
    x, y, c, t = hl.Var("x"), hl.Var("y"), hl.Var("c"), hl.Var("t")
    r = hl.RDom([hl.Range(0, w), hl.Range(0, w)])
    out = hl.Func("out")
    out[x, y, c] = hl.maximum(inp[x * s + r.x, y * s + r.y, c])
    out.vectorize(x, H.lanes()).fuse(y, c, t).parallel(t)
    return out, [inp, w, s]


def _halide_prepare(inputs, p):
    x = inputs["x"]
    w, s = int(p["w"]), int(p["s"])
    c, n, _ = x.shape
    o = _out(n, w, s)
    O = H.round_up(o, H.lanes())
    xp = H.padded(x, (c, n, (O - 1) * s + w))
    out = np.empty((c, o, O), np.float32)
    fn = H.compile_cached("maxpool", _halide_build)
    return fn, H.buffer(xp), w, s, H.buffer(out), out[:, :, :o], xp


def _halide_run(st):
    st[0](st[1], st[2], st[3], st[4])
    return st[5]


_O = "(floor((n - w)/s) + 1)"  # output side
_OUT = f"c*{_O}**2"

KERNEL = Kernel(
    name="maxpool",
    description="Max pooling of a float32 (c, n, n) image, window w x w, stride s, no "
                "padding; output (c, (n-w)//s+1, (n-w)//s+1).",
    params=[
        Param("n", "int", 8, 512, "log", description="image side"),
        Param("w", "int", 1, 5, "uniform", description="window side (w <= n)"),
        Param("s", "int", 1, 4, "uniform", description="stride"),
        Param("c", "int", 1, 16, "log", description="channels"),
    ],
    complexity={"window_work": f"{_OUT}*w**2", "separable_work": f"c*n*(floor((n - w)/s) + 1)*w + {_OUT}*w",
                "memory": "c*n**2"},
    constraint=_constraint,
    make_inputs=make_inputs,
    reference=reference,
    infer_params=infer_params,
    defaults={"w": 2, "s": 2},
    # torch's and scipy's maxima compare values with branches: on one repeated input calls
    # under 100 us ran a median 2.57x (torch) and 1.42x (scipy) faster than on new data
    # (experiments/results/input_reuse.md), so profiles rotate distinct inputs by default
    fresh_inputs=True,
    rtol=0.0,
    atol=0.0,
    variants=[
        Variant("numpy", run=_np_run, prepare=_np_prepare,
                description="separable: np.maximum over w strided column shifts, then rows",
                complexity={"separable_work": f"c*n*(floor((n - w)/s) + 1)*w + {_OUT}*w",
                            "memory": "c*n**2"}),
        Variant("scipy", run=_scipy_run, prepare=_scipy_prepare,
                description="scipy.ndimage.maximum_filter (1, w, w) then subsample",
                # scipy filters one axis at a time and skips axes of size 1: a w = 1 window
                # is a copy (about 0.1 ns per element on the AMD EPYC), any wider one two
                # 1-D passes whose cost barely grows with w (12-16 ns per element, w = 2..5).
                # `passes` says which; held-out NN+C MAPE 8.7 -> 5.5% (AMD, 1 thread), 8.6
                # -> 5.1% (2 threads), 8.9 -> 6.1% / 8.5 -> 5.4% (Intel Xeon, 1 / 2 threads).
                complexity={"filter_work": "c*n**2*w", "memory": "c*n**2",
                            "passes": "2*min(w - 1, 1)"}),
        Variant("torch", run=_torch_run, prepare=_torch_prepare("cpu"), to_numpy=T.to_numpy,
                description="torch.nn.functional.max_pool2d on CPU"),
        Variant("halide", run=_halide_run, prepare=_halide_prepare,
                description="Halide: direct w x w maximum, vectorised along x, "
                            "rows x channels parallel",
                # the window maxima it computes: output rows padded to whole vectors.
                # Development splits (250 + 250 points of the pool, 4 seeds, test points
                # never used), NN+C mean MAPE before -> after: AMD EPYC 1 thread 5.36 ->
                # 2.17%, 2 threads 14.90 -> 14.31%; Intel Xeon 1 thread 10.38 -> 6.73%,
                # 2 threads 35.14 -> 35.86%.
                complexity={"window_work": f"c*{_O}*{H.LANES}*ceiling({_O}/{H.LANES})*w**2",
                            "valid_work": f"{_OUT}*w**2", "memory": "c*n**2"}),
        Variant("torch_cuda", run=_torch_run, prepare=_torch_prepare("cuda"),
                to_numpy=T.to_numpy, device="cuda", available=T.cuda_available,
                sync=T.cuda_sync, description="torch.nn.functional.max_pool2d on the GPU"),
    ],
)
