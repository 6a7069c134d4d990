"""blur: 3x3 separable box blur (the original study's pipeline), sizes ``W,H``."""
from __future__ import annotations

from typing import Mapping

import numpy as np

from ..space import Knob, Recorder, Space
from .base import (PAR_KNOB, VEC_KNOB, Built, HalidePipeline, padded_image_sizes,
                   strip_ty_knob, strips_valid, tile_and_parallel, rows_canonical)


# ============================================================================================
# blur: out(x, y) = mean of the 3x3 box around input(x+1, y+1); input is (W+2) x (H+2).

def _blur_build() -> Built:
    import halide as hl

    inp = hl.ImageParam(hl.Float(32), 2, "input")
    x, y = hl.Var("x"), hl.Var("y")
    blur_x, blur_y = hl.Func("blur_x"), hl.Func("blur_y")
    blur_x[x, y] = (inp[x, y] + inp[x + 1, y] + inp[x + 2, y]) / 3.0
    blur_y[x, y] = (blur_x[x, y] + blur_x[x, y + 1] + blur_x[x, y + 2]) / 3.0
    return Built([inp], blur_y, {"blur_x": blur_x, "blur_y": blur_y}, {"x": x, "y": y})


_BLUR_CODE = """
input = hl.ImageParam(hl.Float(32), 2, "input")
x, y = hl.Var("x"), hl.Var("y")
blur_x, blur_y = hl.Func("blur_x"), hl.Func("blur_y")
blur_x[x, y] = (input[x, y] + input[x + 1, y] + input[x + 2, y]) / 3.0
blur_y[x, y] = (blur_x[x, y] + blur_x[x, y + 1] + blur_x[x, y + 2]) / 3.0
pipeline = hl.Pipeline(blur_y)  # inputs: [input]; output blur_y is W x H, input (W+2) x (H+2)
"""
def _blur_schedule(b: Built, s: Mapping, rec: Recorder) -> None:
    x, y = b.vars["x"], b.vars["y"]
    bx, by = rec.func(b.funcs["blur_x"]), rec.func(b.funcs["blur_y"])
    at, xi, yi = tile_and_parallel(rec, by, x, y, s["tx"], s["ty"], s["par"])
    by.vectorize(xi, s["vec"])
    where = s["blur_x_at"]
    if where == "tile":
        bx.compute_at(by, at).vectorize(x, s["vec"])
    elif where == "row":  # sliding window: one new row of blur_x per output row
        bx.store_at(by, at).compute_at(by, yi).vectorize(x, s["vec"])
    elif where == "root":
        bx.compute_root().vectorize(x, s["vec"])
        if s["par"] != "none":
            bx.parallel(y)
    # "inline": nothing (blur_x is recomputed three times per output)


def _blur_inputs(sz, rng):
    return [rng.random((sz["H"] + 2, sz["W"] + 2), dtype=np.float32)]


def _blur_output(sz):
    return np.empty((sz["H"], sz["W"]), np.float32)


def _blur_reference(inputs):
    a = inputs[0].astype(np.float64)
    bx = (a[:, :-2] + a[:, 1:-1] + a[:, 2:]) / 3.0
    return ((bx[:-2] + bx[1:-1] + bx[2:]) / 3.0).astype(np.float32)


def _blur_estimates(b: Built, sz):
    b.inputs[0].set_estimates([(0, sz["W"] + 2), (0, sz["H"] + 2)])
    b.output.set_estimates([(0, sz["W"]), (0, sz["H"])])


def _blur_complexity() -> dict[str, str]:
    """Additions per output pixel, counting recompute: blur_y's 3 plus 3 per evaluation of
    blur_x, which is evaluated 3 times per output (inline), once (root), or over the tile's
    rows plus the 2-row halo (tile; row too, a sliding window restarts in every tile; a
    column strip, ty = 0, is all H rows); blur_y reads blur_x at its own x, so no x halo.
    Traffic: the input and output (8 bytes per pixel), and blur_x's image through memory
    when it is computed at root."""
    ty = "min(2**log2_ty, H)"
    evals = (f"(3*blur_x_at_inline + blur_x_at_root + (1 - blur_x_at_inline - blur_x_at_root)"
             f"*({ty} + 2)/{ty})")
    return {"work": f"W*H*(3 + 3*{evals})", "traffic": "W*H*(8 + 8*blur_x_at_root)",
            "pixels": "W*H"}


BLUR = HalidePipeline(
    name="blur",
    description="3x3 separable box blur, float32 (blur_x -> blur_y)",
    size_names=("W", "H"),
    size_range={"W": (512, 4096), "H": (256, 4096)},
    size_multiple=16,
    complexity=_blur_complexity(),
    space=Space((
        Knob("tx", (16, 32, 64, 128, 256, 512, 0), codes=((0, 13),),
             description="output tile width (0: whole rows)"),
        strip_ty_knob((4, 8, 16, 32, 64, 128)),
        VEC_KNOB,
        Knob("blur_x_at", ("tile", "inline", "root", "row"), categorical=True,
             description="where blur_x is computed"),
        PAR_KNOB,
    ), valid=lambda s: (s["tx"] == 0 or s["vec"] <= s["tx"]) and strips_valid(s),
       canonical=rows_canonical),
    algorithm_code=_BLUR_CODE,
    _build=_blur_build, _schedule=_blur_schedule, _inputs=_blur_inputs,
    _output=_blur_output, _reference=_blur_reference, _estimates=_blur_estimates,
    compare_sizes=((512, 512), (1024, 1024), (2048, 2048), (4096, 4096), (4096, 512)),
    min_sizes={"W": 512, "H": 128},
    tile_knobs={"W": "tx", "H": "ty"},
    _sizes_of=padded_image_sizes(2),
)


PIPELINE = BLUR
