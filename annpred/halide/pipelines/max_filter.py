"""max_filter: 17x17 max filter by doubling (after Halide's ``apps/max_filter``), sizes ``W,H``.

Like the app, the window maximum is built from maxima over power-of-two spans:
``v1 = max(in(y), in(y+1))``, ``v2 = max(v1(y), v1(y+2))``, ``v4``, ``v8`` (16 rows), then
``vert = max(v8(y), in(y+16))`` (17 rows); the same along x on ``vert`` gives the output.
Input ``(H + 16, W + 16)`` float32, output ``(H, W)``: ``out[y, x]`` is the maximum of
``in[y:y+17, x:x+17]``. Inlining the doubling stages turns each 5-op chain into a 16-op
tree of loads; storing them costs memory and halo.
"""
from __future__ import annotations

from typing import Mapping

import numpy as np

from ..space import Knob, Recorder, Space
from .base import (IMAGE_SIZES, PAR_KNOB, VEC_KNOB, Built, HalidePipeline, padded_image_sizes,
                   place, strip_ty_knob, strips_valid, tile_and_parallel, rows_canonical)

SPAN = 16  # the window is SPAN + 1 = 17 pixels each way
_STEPS = (1, 2, 4, 8)


def _build() -> Built:
    import halide as hl

    inp = hl.ImageParam(hl.Float(32), 2, "input")
    x, y = hl.Var("x"), hl.Var("y")
    funcs = {}
    prev = inp
    for d in _STEPS:
        f = hl.Func(f"v{d}")
        f[x, y] = hl.max(prev[x, y], prev[x, y + d])
        funcs[f"v{d}"], prev = f, f
    vert = hl.Func("vert")
    vert[x, y] = hl.max(prev[x, y], inp[x, y + SPAN])
    funcs["vert"] = prev = vert
    for d in _STEPS:
        f = hl.Func(f"h{d}")
        f[x, y] = hl.max(prev[x, y], prev[x + d, y])
        funcs[f"h{d}"], prev = f, f
    out = hl.Func("max_filter")
    out[x, y] = hl.max(prev[x, y], vert[x + SPAN, y])
    funcs["max_filter"] = out
    return Built([inp], out, funcs, {"x": x, "y": y})


_CODE = f"""
input = hl.ImageParam(hl.Float(32), 2, "input")  # (W+16) x (H+16)
x, y = hl.Var("x"), hl.Var("y")
prev = input
for d in {_STEPS!r}:  # v1, v2, v4, v8: maxima over 2, 4, 8, 16 rows
    f = hl.Func(f"v{{d}}")
    f[x, y] = hl.max(prev[x, y], prev[x, y + d])
    globals()[f"v{{d}}"] = prev = f
vert = hl.Func("vert")
vert[x, y] = hl.max(prev[x, y], input[x, y + {SPAN}])  # 17 rows
prev = vert
for d in {_STEPS!r}:  # h1 .. h8 along x
    f = hl.Func(f"h{{d}}")
    f[x, y] = hl.max(prev[x, y], prev[x + d, y])
    globals()[f"h{{d}}"] = prev = f
max_filter = hl.Func("max_filter")
max_filter[x, y] = hl.max(prev[x, y], vert[x + {SPAN}, y])
pipeline = hl.Pipeline(max_filter)  # inputs: [input]; output W x H
"""

_LEVEL = {"root": 0, "tile": 1, "row": 2}


def _valid(s) -> bool:
    if not (s["tx"] == 0 or s["vec"] <= s["tx"]) or not strips_valid(s):
        return False
    # vert (and the v stages with it) feed the h stages: no deeper than where those are
    h_level = 3 if s["hsteps_at"] == "inline" else _LEVEL[s["hsteps_at"]]
    return _LEVEL[s["vert_at"]] <= h_level


def _schedule(b: Built, s: Mapping, rec: Recorder) -> None:
    x, y = b.vars["x"], b.vars["y"]
    out = rec.func(b.funcs["max_filter"])
    at, xi, yi = tile_and_parallel(rec, out, x, y, s["tx"], s["ty"], s["par"])
    out.vectorize(xi, s["vec"])
    if s["hsteps_at"] != "inline":
        for d in reversed(_STEPS):
            place(rec, rec.func(b.funcs[f"h{d}"]), out, at, yi, s["hsteps_at"], s["vec"],
                  s["par"], x, y)
    place(rec, rec.func(b.funcs["vert"]), out, at, yi, s["vert_at"], s["vec"], s["par"], x, y)
    if s["vsteps"] == "stored":  # the v stages where vert is
        for d in reversed(_STEPS):
            place(rec, rec.func(b.funcs[f"v{d}"]), out, at, yi, s["vert_at"], s["vec"],
                  s["par"], x, y)


def _inputs(sz, rng):
    return [rng.random((sz["H"] + SPAN, sz["W"] + SPAN), dtype=np.float32)]


def _output(sz):
    return np.empty((sz["H"], sz["W"]), np.float32)


def reference(inputs):
    from numpy.lib.stride_tricks import sliding_window_view

    a = inputs[0]
    v = sliding_window_view(a, SPAN + 1, axis=0).max(axis=-1)
    return sliding_window_view(v, SPAN + 1, axis=1).max(axis=-1).astype(np.float32)


def _estimates(b: Built, sz):
    b.inputs[0].set_estimates([(0, sz["W"] + SPAN), (0, sz["H"] + SPAN)])
    b.output.set_estimates([(0, sz["W"]), (0, sz["H"])])


def _complexity() -> dict[str, str]:
    """Max operations per output pixel, counting recompute. Along x: 16 inlined, or 5 stored
    per tile/row plus the doubling halo (up to 15 extra columns over the tile width).
    ``vert`` is evaluated over the tile plus 16 columns (tile or row) or once (root); each
    evaluation costs 16 operations with inlined v stages, or 5 plus the doubling halo (up to
    15 extra rows over the tile height, for stages computed per tile)."""
    tx, ty = "min(2**log2_tx, W)", "min(2**log2_ty, H)"
    h_stored = "(hsteps_at_root + hsteps_at_row + hsteps_at_tile)"
    h_cost = f"(16*(1 - {h_stored}) + {h_stored}*5*(1 + 15/{tx}))"
    v_evals = f"(vert_at_root + (1 - vert_at_root)*({tx} + 16)/{tx})"
    v_rows = f"(vert_at_root*H + (1 - vert_at_root)*{ty})"
    v_cost = f"(16*(1 - vsteps_stored) + vsteps_stored*5*(1 + 15/{v_rows}))"
    return {"work": f"W*H*({h_cost} + {v_evals}*{v_cost})",
            "traffic": "W*H*(8 + 8*vert_at_root*(1 + 4*vsteps_stored) + 32*hsteps_at_root)",
            "pixels": "W*H",
            # bytes of the stored intermediates: vert's buffer (the image, a tile -- a
            # column strip when ty is 0 -- plus the halo, or the 17 rows of a sliding
            # window over a tile's columns) and the four h stages' (image, tile, one row)
            "buffer": f"4*(vert_at_root*W*H + (1 - vert_at_root - vert_at_row)*({tx} + 16)"
                      f"*({ty} + 16) + vert_at_row*17*({tx} + 16) + 4*(hsteps_at_root*W*H"
                      f" + hsteps_at_tile*({tx} + 15)*{ty} + hsteps_at_row*({tx} + 15)))"}


PIPELINE = HalidePipeline(
    name="max_filter",
    description="17x17 max filter by doubling (v1..v8 -> vert -> h1..h8 -> out), float32, "
                "after Halide's apps/max_filter",
    size_names=("W", "H"),
    size_range={"W": (256, 2560), "H": (256, 2560)},
    size_multiple=16,
    complexity=_complexity(),
    space=Space((
        Knob("tx", (32, 64, 128, 256, 0), codes=((0, 13),),
             description="output tile width (0: whole rows)"),
        strip_ty_knob(),
        VEC_KNOB,
        Knob("vert_at", ("tile", "root", "row"), categorical=True,
             description="where the vertical maximum vert is computed"),
        Knob("vsteps", ("inline", "stored"), categorical=True,
             description="the vertical doubling stages: inlined into vert, or computed "
                         "where vert is"),
        Knob("hsteps_at", ("inline", "tile", "root", "row"), categorical=True,
             description="where the horizontal doubling stages are computed"),
        PAR_KNOB,
    ), valid=_valid, canonical=rows_canonical),
    algorithm_code=_CODE,
    _build=_build, _schedule=_schedule, _inputs=_inputs, _output=_output,
    _reference=reference, _estimates=_estimates,
    **IMAGE_SIZES,
    _sizes_of=padded_image_sizes(SPAN),
)
