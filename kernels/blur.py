"""The 3x3 separable box blur of the Halide paper, same-size output with clamp-to-edge
(repeat_edge) boundaries: blur_x averages 3 horizontal neighbours, blur_y 3 vertical ones."""
from __future__ import annotations

import numpy as np

from annpred.spec.kernel import Kernel, Param, Variant

from . import _halide as H
from . import _torch as T

_THIRD = np.float32(1.0 / 3.0)


def make_inputs(p, rng):
    return {"image": rng.uniform(0, 1, (p["h"], p["w"])).astype(np.float32)}


def reference(inputs, p):
    x = np.pad(inputs["image"].astype(np.float64), 1, mode="edge")
    bx = (x[:, :-2] + x[:, 1:-1] + x[:, 2:]) / 3
    return (bx[:-2] + bx[1:-1] + bx[2:]) / 3


def infer_params(image):
    """(image (h, w))."""
    h, w = image.shape
    return {"w": int(w), "h": int(h)}


def _np_run(s):
    x = np.pad(s["image"], 1, mode="edge")
    bx = x[:, :-2] + x[:, 1:-1]
    bx += x[:, 2:]
    bx *= _THIRD
    by = bx[:-2] + bx[1:-1]
    by += bx[2:]
    by *= _THIRD
    return by


def _scipy_run(s):
    from scipy import ndimage

    bx = ndimage.uniform_filter1d(s["image"], 3, axis=1, mode="nearest")
    return ndimage.uniform_filter1d(bx, 3, axis=0, mode="nearest")


def _torch_prepare(device):
    def prepare(inputs, p):
        return T.tensor(inputs["image"][None, None], device)
    return prepare


def _torch_run(x):
    # A 3x3 box average is avg_pool2d(3, stride 1). (F.conv2d with a 1x3 and a 3x1 filter is
    # 10x slower on one channel with oneDNN, far outside the sampled range's budget.)
    import torch.nn.functional as F

    p = F.pad(x, (1, 1, 1, 1), mode="replicate")
    return F.avg_pool2d(p, 3, stride=1)[0, 0]


def _algorithm(hl):
    inp = hl.ImageParam(hl.Float(32), 2, "image")
    x, y = hl.Var("x"), hl.Var("y")
    c = hl.BoundaryConditions.repeat_edge(inp)
    third = hl.f32(1.0 / 3.0)
    blur_x = hl.Func("blur_x")
    blur_x[x, y] = (c[x - 1, y] + c[x, y] + c[x + 1, y]) * third
    blur_y = hl.Func("blur_y")
    blur_y[x, y] = (blur_x[x, y - 1] + blur_x[x, y] + blur_x[x, y + 1]) * third
    return inp, x, y, blur_x, blur_y


_TILE = (256, 32)


def _build_tiled(hl):
    inp, x, y, blur_x, blur_y = _algorithm(hl)
    xi, yi = hl.Var("xi"), hl.Var("yi")
    L = H.lanes()
    blur_y.tile(x, y, xi, yi, _TILE[0], _TILE[1]).vectorize(xi, L).parallel(y)
    blur_x.compute_at(blur_y, x).vectorize(x, L)
    return blur_y, [inp]


def _build_root(hl):
    inp, x, y, blur_x, blur_y = _algorithm(hl)
    L = H.lanes()
    blur_x.compute_root().vectorize(x, L).parallel(y)
    blur_y.vectorize(x, L).parallel(y)
    return blur_y, [inp]


def _halide_prepare(key, build, min_w, min_h):
    def prepare(inputs, p):
        img = np.ascontiguousarray(inputs["image"])
        h, w = img.shape
        # outputs at least one tile (ShiftInwards); repeat_edge keeps reads inside the input
        out = np.empty((max(h, min_h()), max(w, min_w())), np.float32)
        fn = H.compile_cached(key, build)
        return fn, H.buffer(img), H.buffer(out), out[:h, :w], img
    return prepare


def _halide_run(s):
    s[0](s[1], s[2])
    return s[3]


KERNEL = Kernel(
    name="blur",
    description="3x3 separable box blur (Halide paper) of a float32 (h, w) image, same-size "
                "output, clamp-to-edge boundary.",
    params=[
        Param("w", "int", 16, 4096, "log", description="image width (columns)"),
        Param("h", "int", 16, 4096, "log", description="image height (rows)"),
    ],
    complexity={"pixels": "w*h"},
    make_inputs=make_inputs,
    reference=reference,
    infer_params=infer_params,
    rtol=1e-5,
    atol=1e-5,
    variants=[
        Variant("numpy", run=_np_run, description="np.pad(edge) + shifted adds, in place"),
        Variant("scipy", run=_scipy_run,
                description="scipy.ndimage.uniform_filter1d(3, mode='nearest') along x then y"),
        Variant("torch", run=_torch_run, prepare=_torch_prepare("cpu"), to_numpy=T.to_numpy,
                description="replicate pad + avg_pool2d(3, stride=1) on CPU"),
        Variant("halide_tiled", run=_halide_run,
                prepare=_halide_prepare("blur_tiled", _build_tiled,
                                        lambda: _TILE[0], lambda: _TILE[1]),
                description="Halide: 256x32 tiles parallel over tile rows, vectorised, "
                            "blur_x computed per tile",
                complexity={"pixels": "w*h",
                            "tiles": "ceiling(w/256)*ceiling(h/32)",
                            "padded": "max(w, 256)*max(h, 32)"}),
        Variant("halide_root", run=_halide_run,
                prepare=_halide_prepare("blur_root", _build_root, H.lanes, lambda: 1),
                description="Halide: blur_x and blur_y compute_root, vectorised, rows parallel"),
        Variant("torch_cuda", run=_torch_run, prepare=_torch_prepare("cuda"),
                to_numpy=T.to_numpy, device="cuda", available=T.cuda_available,
                sync=T.cuda_sync, description="replicate pad + avg_pool2d(3, stride=1) on the GPU"),
    ],
)
