"""harris: Harris corner response of an RGB image (after Halide's ``apps/harris``), sizes ``W,H``.

gray -> Sobel gradients Ix, Iy -> 3x3 box sums of Ix*Ix, Iy*Iy, Ix*Iy -> det - k * trace^2.
Input ``(3, H + 4, W + 4)`` planar float32 (no boundary condition: the input carries the
2-pixel halo), output ``(H, W)``.
"""
from __future__ import annotations

from typing import Mapping

import numpy as np

from ..space import Knob, Recorder, Space
from .base import (IMAGE_SIZES, PAR_KNOB, VEC_KNOB, Built, HalidePipeline, levels_valid,
                   padded_image_sizes, place, strip_ty_knob, strips_valid, tile_and_parallel,
                   rows_canonical)

K = 0.04
_CR, _CG, _CB = (float(np.float32(v)) for v in (0.299, 0.587, 0.114))


def _build() -> Built:
    import halide as hl

    inp = hl.ImageParam(hl.Float(32), 3, "input")
    x, y = hl.Var("x"), hl.Var("y")
    gray, ix, iy, out = (hl.Func(n) for n in ("gray", "Ix", "Iy", "harris"))
    # as in Halide's app: clamp reads to the image, so that no schedule (an autoscheduler's
    # tiles shifted at the edges included) reads outside it
    clamped = hl.BoundaryConditions.repeat_edge(inp)
    gray[x, y] = _CR * clamped[x, y, 0] + _CG * clamped[x, y, 1] + _CB * clamped[x, y, 2]
    # Sobel, centred on gray(x + 1, y + 1), divided by 12 as in the app
    ix[x, y] = ((gray[x + 2, y] - gray[x, y]) + 2.0 * (gray[x + 2, y + 1] - gray[x, y + 1])
                + (gray[x + 2, y + 2] - gray[x, y + 2])) / 12.0
    iy[x, y] = ((gray[x, y + 2] - gray[x, y]) + 2.0 * (gray[x + 1, y + 2] - gray[x + 1, y])
                + (gray[x + 2, y + 2] - gray[x + 2, y])) / 12.0
    sxx = sum(ix[x + i, y + j] * ix[x + i, y + j] for j in range(3) for i in range(3))
    syy = sum(iy[x + i, y + j] * iy[x + i, y + j] for j in range(3) for i in range(3))
    sxy = sum(ix[x + i, y + j] * iy[x + i, y + j] for j in range(3) for i in range(3))
    det = sxx * syy - sxy * sxy
    trace = sxx + syy
    out[x, y] = det - hl.f32(K) * trace * trace
    return Built([inp], out, {"gray": gray, "Ix": ix, "Iy": iy, "harris": out},
                 {"x": x, "y": y})


_CODE = f"""
input = hl.ImageParam(hl.Float(32), 3, "input")  # (W+4) x (H+4) x 3, planar
x, y = hl.Var("x"), hl.Var("y")
gray, Ix, Iy, harris = (hl.Func(n) for n in ("gray", "Ix", "Iy", "harris"))
clamped = hl.BoundaryConditions.repeat_edge(input)  # reads stay inside the image
gray[x, y] = {_CR!r} * clamped[x, y, 0] + {_CG!r} * clamped[x, y, 1] + {_CB!r} * clamped[x, y, 2]
Ix[x, y] = ((gray[x + 2, y] - gray[x, y]) + 2.0 * (gray[x + 2, y + 1] - gray[x, y + 1])
            + (gray[x + 2, y + 2] - gray[x, y + 2])) / 12.0
Iy[x, y] = ((gray[x, y + 2] - gray[x, y]) + 2.0 * (gray[x + 1, y + 2] - gray[x + 1, y])
            + (gray[x + 2, y + 2] - gray[x + 2, y])) / 12.0
sxx = sum(Ix[x + i, y + j] * Ix[x + i, y + j] for j in range(3) for i in range(3))
syy = sum(Iy[x + i, y + j] * Iy[x + i, y + j] for j in range(3) for i in range(3))
sxy = sum(Ix[x + i, y + j] * Iy[x + i, y + j] for j in range(3) for i in range(3))
harris[x, y] = sxx * syy - sxy * sxy - hl.f32({K!r}) * (sxx + syy) * (sxx + syy)
pipeline = hl.Pipeline(harris)  # inputs: [input]; output W x H
"""

_EDGES = (("gray", "grad"), ("grad", "harris"))


def _valid(s) -> bool:
    return ((s["tx"] == 0 or s["vec"] <= s["tx"]) and strips_valid(s)
            and levels_valid(s, _EDGES, "harris"))


def _schedule(b: Built, s: Mapping, rec: Recorder) -> None:
    x, y = b.vars["x"], b.vars["y"]
    out = rec.func(b.funcs["harris"])
    at, xi, yi = tile_and_parallel(rec, out, x, y, s["tx"], s["ty"], s["par"])
    out.vectorize(xi, s["vec"])
    for name in ("Ix", "Iy"):  # consumers before producers
        place(rec, rec.func(b.funcs[name]), out, at, yi, s["grad_at"], s["vec"], s["par"], x, y)
    place(rec, rec.func(b.funcs["gray"]), out, at, yi, s["gray_at"], s["vec"], s["par"], x, y)


def _inputs(sz, rng):
    return [rng.random((3, sz["H"] + 4, sz["W"] + 4), dtype=np.float32)]


def _output(sz):
    return np.empty((sz["H"], sz["W"]), np.float32)


def reference(inputs):
    a = inputs[0].astype(np.float64)
    g = _CR * a[0] + _CG * a[1] + _CB * a[2]  # (H+4, W+4)

    def sh(m, dy, dx, h, w):
        return m[dy:dy + h, dx:dx + w]
    H, W = g.shape[0] - 4, g.shape[1] - 4
    h2, w2 = H + 2, W + 2
    ix = ((sh(g, 0, 2, h2, w2) - sh(g, 0, 0, h2, w2)) + 2 * (sh(g, 1, 2, h2, w2) - sh(g, 1, 0, h2, w2))
          + (sh(g, 2, 2, h2, w2) - sh(g, 2, 0, h2, w2))) / 12.0
    iy = ((sh(g, 2, 0, h2, w2) - sh(g, 0, 0, h2, w2)) + 2 * (sh(g, 2, 1, h2, w2) - sh(g, 0, 1, h2, w2))
          + (sh(g, 2, 2, h2, w2) - sh(g, 0, 2, h2, w2))) / 12.0

    def box(m):
        return sum(sh(m, j, i, H, W) for j in range(3) for i in range(3))
    sxx, syy, sxy = box(ix * ix), box(iy * iy), box(ix * iy)
    return (sxx * syy - sxy * sxy - K * (sxx + syy) ** 2).astype(np.float32)


def _estimates(b: Built, sz):
    b.inputs[0].set_estimates([(0, sz["W"] + 4), (0, sz["H"] + 4), (0, 3)])
    b.output.set_estimates([(0, sz["W"]), (0, sz["H"])])


def _complexity() -> dict[str, str]:
    """Flops per output pixel, counting recompute. The box sums, products and the response
    cost 60 per output; each evaluation of the gradients (Ix and Iy) 22 and reads 12 gray
    values; each gray 5. Gradients ``inline``: evaluated at all 9 box taps; per ``tile``: the
    tile plus a 1-pixel halo; per ``row`` (sliding window): the same, since the window
    starts again in every tile (only a column strip, ``ty = 0``, computes each row once); ``root``:
    once. Gray the same with a 2-pixel halo (or 12 times per gradient evaluation when
    inline). ``traffic``: bytes per pixel for input, output and each root-stored stage."""
    tx, ty = "min(2**log2_tx, W)", "min(2**log2_ty, H)"

    def evals(knob, halo, inline):
        tile = f"(1 - {knob}_inline - {knob}_root - {knob}_row)"
        # a sliding window (row) restarts in every tile: ty + 2*halo rows, as a tile does
        return (f"({knob}_inline*{inline} + ({tile} + {knob}_row)*({tx} + {2 * halo})"
                f"*({ty} + {2 * halo})/({tx}*{ty}) + {knob}_root)")
    g = evals("grad_at", 1, "9")
    gray = evals("gray_at", 2, f"12*{g}")
    return {"work": f"W*H*(60 + 22*{g} + 5*{gray})",
            "traffic": "W*H*(16 + 8*(gray_at_root + 2*grad_at_root))",
            "pixels": "W*H"}


PIPELINE = HalidePipeline(
    name="harris",
    description="Harris corner response, RGB float32 (gray -> Sobel Ix, Iy -> 3x3 box "
                "sums -> det - k trace^2), after Halide's apps/harris",
    size_names=("W", "H"),
    size_range={"W": (256, 2560), "H": (256, 2560)},
    size_multiple=16,
    complexity=_complexity(),
    space=Space((
        Knob("tx", (16, 32, 64, 128, 256, 0), codes=((0, 13),),
             description="output tile width (0: whole rows)"),
        strip_ty_knob((4, 8, 16, 32, 64)),
        VEC_KNOB,
        Knob("grad_at", ("tile", "inline", "root", "row"), categorical=True,
             description="where the gradients Ix, Iy are computed"),
        Knob("gray_at", ("tile", "inline", "root", "row"), categorical=True,
             description="where gray is computed"),
        PAR_KNOB,
    ), valid=_valid, canonical=rows_canonical),
    algorithm_code=_CODE,
    _build=_build, _schedule=_schedule, _inputs=_inputs, _output=_output,
    _reference=reference, _estimates=_estimates,
    **IMAGE_SIZES,
    _sizes_of=padded_image_sizes(4),
)
