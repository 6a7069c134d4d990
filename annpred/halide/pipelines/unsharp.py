"""unsharp: RGB unsharp mask (gray -> 7-tap blur_y -> blur_x -> ratio -> output), sizes ``W,H``."""
from __future__ import annotations

from typing import Mapping

import numpy as np

from ..space import Knob, Recorder, Space
from .base import (PAR_KNOB, VEC_KNOB, Built, HalidePipeline, padded_image_sizes,
                   tile_and_parallel, rows_canonical)


# ============================================================================================
# unsharp: RGB unsharp mask; input (W+6) x (H+6) x 3 planar, output W x H x 3.

_GAUSS = np.exp(-0.5 * ((np.arange(7) - 3) / 1.5) ** 2)
_GAUSS = (_GAUSS / _GAUSS.sum()).astype(np.float32)


def _us_build() -> Built:
    import halide as hl

    inp = hl.ImageParam(hl.Float(32), 3, "input")
    x, y, c = hl.Var("x"), hl.Var("y"), hl.Var("c")
    w = [float(v) for v in _GAUSS]
    gray, blur_y, ratio, out = (hl.Func(n) for n in ("gray", "blur_y", "ratio", "output"))
    cr, cg, cb = (float(np.float32(v)) for v in (0.299, 0.587, 0.114))
    gray[x, y] = cr * inp[x, y, 0] + cg * inp[x, y, 1] + cb * inp[x, y, 2]
    blur_y[x, y] = sum(w[i] * gray[x, y + i] for i in range(7))
    blur_x = sum(w[i] * blur_y[x + i, y] for i in range(7))
    sharpen = 2.0 * gray[x + 3, y + 3] - blur_x
    ratio[x, y] = sharpen / gray[x + 3, y + 3]
    out[x, y, c] = ratio[x, y] * inp[x + 3, y + 3, c]
    return Built([inp], out, {"gray": gray, "blur_y": blur_y, "ratio": ratio, "output": out},
                 {"x": x, "y": y, "c": c})


_US_CODE = """
input = hl.ImageParam(hl.Float(32), 3, "input")  # (W+6) x (H+6) x 3, planar
x, y, c = hl.Var("x"), hl.Var("y"), hl.Var("c")
w = %s  # 7-tap Gaussian, sigma 1.5
gray, blur_y, ratio, output = (hl.Func(n) for n in ("gray", "blur_y", "ratio", "output"))
gray[x, y] = (hl.f32(0.299) * input[x, y, 0] + hl.f32(0.587) * input[x, y, 1]
              + hl.f32(0.114) * input[x, y, 2])
blur_y[x, y] = sum(w[i] * gray[x, y + i] for i in range(7))
blur_x = sum(w[i] * blur_y[x + i, y] for i in range(7))
sharpen = 2.0 * gray[x + 3, y + 3] - blur_x
ratio[x, y] = sharpen / gray[x + 3, y + 3]
output[x, y, c] = ratio[x, y] * input[x + 3, y + 3, c]
pipeline = hl.Pipeline(output)  # inputs: [input]; output W x H x 3
""" % repr([float(v) for v in _GAUSS])


_US_LEVEL = {"root": 0, "tile": 1, "row": 2}
_US_EDGES = (("gray", "blur_y"), ("gray", "ratio"), ("blur_y", "ratio"), ("ratio", "output"))


def _us_valid(s) -> bool:
    """A producer must be computed no deeper than every consumer (inline: where its consumer
    is); ``row`` is inside the tile's row loop, ``tile`` at the tile, ``root`` outside;
    ``in_ratio`` is inside ratio's loop over x-chunks of ``ratio_chunk`` pixels."""
    if s["ratio_chunk"] and not (s["tx"] == 0 or s["ratio_chunk"] <= s["tx"]):
        return False  # a chunk must fit in the tile
    if s["ratio_at"] == "inline" and s["ratio_chunk"]:
        return False  # nothing to split

    def level(name):
        if name == "output":
            return 3.0
        where = s[f"{name}_at"]
        if where == "inline":
            return min(level(c) for p, c in _US_EDGES if p == name)
        if where == "in_ratio":
            return level("ratio") + 0.5
        return float(_US_LEVEL[where])
    for prod, cons in _US_EDGES:
        where = s[f"{prod}_at"]
        if where == "inline":
            continue
        if where == "in_ratio":
            if s["ratio_at"] == "inline" or not s["ratio_chunk"]:
                return False
            if cons != "ratio" and s[f"{cons}_at"] not in ("in_ratio", "inline"):
                return False
        elif level(prod) > level(cons):
            return False
    return True


def _us_schedule(b: Built, s: Mapping, rec: Recorder) -> None:
    x, y, c = b.vars["x"], b.vars["y"], b.vars["c"]
    out = rec.func(b.funcs["output"])
    at, xi, yi = tile_and_parallel(rec, out, x, y, s["tx"], s["ty"], s["par"])
    # rows of the tile outermost inside it, then the three channels, then x (vectorised)
    if s["tx"] == 0 or s["par"] == "tiles":
        out.reorder(xi, c, yi, at)
    else:
        out.reorder(xi, c, yi, at, rec.var("yo"))
    out.vectorize(xi, s["vec"])
    for name in ("ratio", "blur_y", "gray"):  # consumers before producers
        where = s[f"{name}_at"]
        f = rec.func(b.funcs[name])
        vx = x
        if name == "ratio" and s["ratio_chunk"]:  # split x into chunks before vectorising
            vx = rec.var("rxi")
            f.split(x, rec.var("rxo"), vx, s["ratio_chunk"])
        if where == "tile":
            f.compute_at(out, at).vectorize(vx, s["vec"])
        elif where == "row":  # sliding window: computed row by row, stored per tile
            f.store_at(out, at).compute_at(out, yi).vectorize(vx, s["vec"])
        elif where == "root":
            f.compute_root().vectorize(vx, s["vec"])
            if s["par"] != "none":
                f.parallel(y)
        elif where == "in_ratio":  # inside ratio's loop over x-chunks
            f.compute_at(rec.func(b.funcs["ratio"]), rec.var("rxo")).vectorize(x, s["vec"])


def _us_inputs(sz, rng):
    return [0.1 + 0.9 * rng.random((3, sz["H"] + 6, sz["W"] + 6), dtype=np.float32)]


def _us_output(sz):
    return np.empty((3, sz["H"], sz["W"]), np.float32)


def _us_reference(inputs):
    a = inputs[0].astype(np.float64)
    w = _GAUSS.astype(np.float64)
    cr, cg, cb = (float(np.float32(v)) for v in (0.299, 0.587, 0.114))
    gray = cr * a[0] + cg * a[1] + cb * a[2]
    H, W = gray.shape[0] - 6, gray.shape[1] - 6
    by = sum(w[i] * gray[i:i + H, :] for i in range(7))  # (H, W+6)
    bx = sum(w[i] * by[:, i:i + W] for i in range(7))  # (H, W)
    g = gray[3:3 + H, 3:3 + W]
    ratio = (2.0 * g - bx) / g
    return (ratio[None] * a[:, 3:3 + H, 3:3 + W]).astype(np.float32)


def _us_estimates(b: Built, sz):
    b.inputs[0].set_estimates([(0, sz["W"] + 6), (0, sz["H"] + 6), (0, 3)])
    b.output.set_estimates([(0, sz["W"]), (0, sz["H"]), (0, 3)])


def _us_complexity() -> dict[str, str]:
    """Schedule-aware complexity of unsharp, as sympy text over the model's input columns.

    ``work``: arithmetic per output pixel times pixels, counting what a schedule recomputes:
    a stage computed ``inline`` is re-evaluated at every use (ratio once per channel, blur_y
    per x-tap of blur_x, gray per y-tap of blur_y and for ratio), one computed per ``tile``
    or ``row`` covers its consumer's tile plus the stencil halo, ``in_ratio`` covers one
    x-chunk of ratio (plus halo) per row, ``root`` covers the image once. Per evaluation:
    gray 5 flops, blur_y 13, blur_x + sharpen + ratio 16, output 3 (one per channel).
    ``traffic``: bytes per pixel through memory: input and output (24) plus a write and a
    read of every stage stored at ``root`` (8 each).
    Tile extents use the knobs' log2 codes (tx = 0, whole rows, is coded as 2**13, capped at
    W), so the features follow the schedule exactly, with no extra input columns.
    """
    tx, ty = "min(2**log2_tx, W)", "min(2**log2_ty, H)"
    chunk = f"min(2**log2_ratio_chunk, {tx})"  # ratio_chunk = 0 (no split) is coded as 2**12
    r = "(1 + 2*ratio_at_inline)"  # ratio evaluations per output pixel
    gray_tile = "(1 - gray_at_inline - gray_at_root - gray_at_row - gray_at_in_ratio)"
    by_tile = "(1 - blur_y_at_inline - blur_y_at_root - blur_y_at_row - blur_y_at_in_ratio)"
    b = (f"(blur_y_at_inline*7*{r} + ({by_tile} + blur_y_at_row)*({tx} + 6)/{tx}"
         f" + blur_y_at_root + blur_y_at_in_ratio*({chunk} + 6)/{chunk})")
    g = (f"(gray_at_inline*(7*{b} + {r}) + ({gray_tile} + gray_at_row)*({tx} + 6)*({ty} + 6)"
         f"/({tx}*{ty}) + gray_at_root + gray_at_in_ratio*7*({chunk} + 6)/{chunk})")
    return {"work": f"W*H*(5*{g} + 13*{b} + 16*{r} + 3)",
            "traffic": "W*H*(24 + 8*(gray_at_root + blur_y_at_root))",
            "pixels": "W*H"}


UNSHARP = HalidePipeline(
    name="unsharp",
    description="RGB unsharp mask, float32 (gray -> blur_y -> blur_x/ratio -> output)",
    size_names=("W", "H"),
    size_range={"W": (512, 3072), "H": (256, 3072)},
    size_multiple=16,
    complexity=_us_complexity(),
    space=Space((
        Knob("tx", (32, 64, 128, 256, 512, 0), codes=((0, 13),),
             description="output tile width (0: whole rows)"),
        Knob("ty", (4, 8, 16, 32, 64), description="output tile height"),
        VEC_KNOB,
        Knob("gray_at", ("tile", "inline", "root", "row", "in_ratio"), categorical=True,
             description="where gray is computed (row: sliding window in the tile; "
                         "in_ratio: per x-chunk of ratio)"),
        Knob("blur_y_at", ("tile", "inline", "root", "row", "in_ratio"), categorical=True,
             description="where blur_y is computed"),
        Knob("ratio_at", ("tile", "inline", "row"), categorical=True,
             description="where ratio (blur_x, sharpen) is computed"),
        Knob("ratio_chunk", (0, 64, 256), codes=((0, 12),),
             description="split ratio's x into chunks (0: no split)"),
        PAR_KNOB,
    ), valid=_us_valid, canonical=rows_canonical),
    algorithm_code=_US_CODE,
    _build=_us_build, _schedule=_us_schedule, _inputs=_us_inputs,
    _output=_us_output, _reference=_us_reference, _estimates=_us_estimates,
    compare_sizes=((512, 512), (1024, 1024), (2048, 1536), (3072, 3072), (3072, 512)),
    min_sizes={"W": 512, "H": 64},
    tile_knobs={"W": "tx", "H": "ty"},
    _sizes_of=padded_image_sizes(6),
)

PIPELINE = UNSHARP
