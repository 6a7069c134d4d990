"""iir_blur: first-order IIR blur down and up the columns, twice with a transpose in between
(after Halide's ``apps/iir_blur``), sizes ``W,H``.

Each pass runs ``b(y) = (1 - a) b(y - 1) + a in(y)`` down every column (a scan: serial in
y, vectorisable and parallel across x), then ``b(y) = (1 - a) b(y + 1) + a b(y)`` back up,
and transposes; the second pass does the same to the transposed image, which blurs the
rows. Input and output ``(3, H, W)`` planar float32; ``a = 0.1``.
"""
from __future__ import annotations

from typing import Mapping

import numpy as np

from ..space import Knob, Recorder, Space
from .base import Built, HalidePipeline, VEC_KNOB

ALPHA = 0.1


def _pass(hl, f, height, x, y, c, n):
    """One column pass of ``f`` over ``height`` rows, then its transpose (blur, transpose)."""
    a = hl.f32(ALPHA)
    blur, tr = hl.Func(f"blur{n}"), hl.Func(f"transpose{n}")
    blur[x, y, c] = hl.undef(hl.Float(32))
    blur[x, 0, c] = f[x, 0, c]
    ry = hl.RDom([(1, height - 1)], f"down{n}")
    blur[x, ry.x, c] = (1 - a) * blur[x, ry.x - 1, c] + a * f[x, ry.x, c]
    ru = hl.RDom([(0, height - 1)], f"up{n}")
    flip = height - ru.x - 2
    blur[x, flip, c] = (1 - a) * blur[x, flip + 1, c] + a * blur[x, flip, c]
    tr[x, y, c] = blur[y, x, c]
    return blur, tr, ry.x, ru.x


def _build() -> Built:
    import halide as hl

    inp = hl.ImageParam(hl.Float(32), 3, "input")
    x, y, c = hl.Var("x"), hl.Var("y"), hl.Var("c")
    b1, t1, d1, u1 = _pass(hl, inp, inp.height(), x, y, c, 1)
    b2, t2, d2, u2 = _pass(hl, t1, inp.width(), x, y, c, 2)
    return Built([inp], t2, {"blur1": b1, "transpose1": t1, "blur2": b2, "transpose2": t2},
                 {"x": x, "y": y, "c": c, "down1": d1, "up1": u1, "down2": d2, "up2": u2})


_CODE = f"""
input = hl.ImageParam(hl.Float(32), 3, "input")  # W x H x 3, planar
x, y, c = hl.Var("x"), hl.Var("y"), hl.Var("c")
a = hl.f32({ALPHA!r})

def column_pass(f, height, n):  # IIR down and up every column, then transpose
    blur, tr = hl.Func(f"blur{{n}}"), hl.Func(f"transpose{{n}}")
    blur[x, y, c] = hl.undef(hl.Float(32))
    blur[x, 0, c] = f[x, 0, c]
    down = hl.RDom([(1, height - 1)], f"down{{n}}")
    blur[x, down.x, c] = (1 - a) * blur[x, down.x - 1, c] + a * f[x, down.x, c]
    up = hl.RDom([(0, height - 1)], f"up{{n}}")
    flip = height - up.x - 2
    blur[x, flip, c] = (1 - a) * blur[x, flip + 1, c] + a * blur[x, flip, c]
    tr[x, y, c] = blur[y, x, c]
    return blur, tr, down, up

blur1, transpose1, down1, up1 = column_pass(input, input.height(), 1)
blur2, transpose2, down2, up2 = column_pass(transpose1, input.width(), 2)
pipeline = hl.Pipeline(transpose2)  # inputs: [input]; output W x H x 3
"""


def _valid(s) -> bool:
    return s["vec"] <= s["strip"] and s["vec"] <= s["tx"]


def _schedule_pass(b: Built, s: Mapping, rec: Recorder, n: int, root_output: bool) -> None:
    x, y, c = b.vars["x"], b.vars["y"], b.vars["c"]
    down, up = b.vars[f"down{n}"], b.vars[f"up{n}"]
    blur, tr = rec.func(b.funcs[f"blur{n}"]), rec.func(b.funcs[f"transpose{n}"])
    import halide as hl

    vec, strip = s["vec"], s["strip"]
    xo, yo = rec.var("xo"), rec.var("yo")
    xi, yi = rec.var("xi"), rec.var("yi")
    if not root_output:
        tr.compute_root()
    # the transpose in tiles: rows of tiles are strips of the blur's columns
    tr.tile(x, y, xo, yo, xi, yi, s["tx"], strip).vectorize(xi, vec)
    if s["par"] == "strips":
        tr.parallel(yo)
    elif s["par"] == "channels":
        tr.parallel(c)
    if s["blur_at"] == "strip":  # one strip of columns at a time, while it is in cache
        blur.compute_at(tr, yo)
        loops = []
    else:  # the whole image down, then up, then transposed
        blur.compute_root()
        loops = ["root"]
    for i, r in ((0, None), (1, down), (2, up)):
        u = blur.update(i)
        if loops:  # root: split the columns into strips that run in parallel
            bo, bi = rec.var("bo"), rec.var("bi")
            # an update's split rounds up by default: guard the last strip instead of
            # reading past the image
            u.split(x, bo, bi, strip, hl.TailStrategy.GuardWithIf)
            if r is not None:
                u.reorder(bi, r, bo)
            u.vectorize(bi, vec)
            if s["par"] == "strips":
                u.parallel(bo)
            elif s["par"] == "channels":
                u.parallel(c)
        else:
            if r is not None:
                u.reorder(x, r)
            u.vectorize(x, vec)


def _schedule(b: Built, s: Mapping, rec: Recorder) -> None:
    _schedule_pass(b, s, rec, 2, root_output=True)
    _schedule_pass(b, s, rec, 1, root_output=False)


def _inputs(sz, rng):
    return [rng.random((3, sz["H"], sz["W"]), dtype=np.float32)]


def _output(sz):
    return np.empty((3, sz["H"], sz["W"]), np.float32)


def _column_pass(a: np.ndarray) -> np.ndarray:
    """IIR down then up the columns of ``a`` (c, h, w), float64."""
    b = a.copy()
    for i in range(1, b.shape[1]):
        b[:, i] = (1 - ALPHA) * b[:, i - 1] + ALPHA * a[:, i]
    for i in range(b.shape[1] - 2, -1, -1):
        b[:, i] = (1 - ALPHA) * b[:, i + 1] + ALPHA * b[:, i]
    return b


def reference(inputs):
    a = inputs[0].astype(np.float64)  # (c, H, W): Halide's y is the H axis
    t1 = _column_pass(a).transpose(0, 2, 1)  # (c, W, H)
    return _column_pass(t1).transpose(0, 2, 1).astype(np.float32)


def _estimates(b: Built, sz):
    b.inputs[0].set_estimates([(0, sz["W"]), (0, sz["H"]), (0, 3)])
    b.output.set_estimates([(0, sz["W"]), (0, sz["H"]), (0, 3)])


PIPELINE = HalidePipeline(
    name="iir_blur",
    description="first-order IIR blur down/up the columns, transposed, twice (RGB float32), "
                "after Halide's apps/iir_blur",
    size_names=("W", "H"),
    size_range={"W": (256, 2560), "H": (256, 2560)},
    size_multiple=16,
    # 3 channels x 2 passes x (down 3 + up 3 flops) per pixel, plus the transposes' traffic;
    # a strip-wise blur keeps strip x H floats in cache: the strip's footprint
    complexity={"work": "36*W*H", "footprint": "4*2**log2_strip*(H + W)",
                "pixels": "W*H"},
    space=Space((
        Knob("strip", (8, 16, 32, 64, 128), description="columns per strip (transpose "
             "tile height; the unit of parallel work)"),
        Knob("tx", (8, 16, 32, 64), description="transpose tile width"),
        VEC_KNOB,
        Knob("blur_at", ("strip", "root"), categorical=True,
             description="blur each strip inside the transpose's loop over strips (in "
                         "cache), or the whole image at root"),
        Knob("par", ("strips", "channels", "none"), categorical=True,
             description="parallel loop: strips, the 3 channels, or serial"),
    ), valid=_valid),
    algorithm_code=_CODE,
    _build=_build, _schedule=_schedule, _inputs=_inputs, _output=_output,
    _reference=reference, _estimates=_estimates,
    compare_sizes=((512, 512), (1024, 1024), (1920, 1080), (2560, 2560)),
    min_sizes={"W": 256, "H": 256},
    _sizes_of=lambda ins: {"W": ins[0].shape[2], "H": ins[0].shape[1]},
    # Halide's default computes each scan where its consumer needs one value: a whole
    # column scan per output pixel, O(W*H*(W+H)), seconds to minutes per run
    default_schedule_ok=False,
)
