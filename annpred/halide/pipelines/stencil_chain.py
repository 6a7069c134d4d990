"""stencil_chain: six 3x3 stencils in a row (after Halide's ``apps/stencil_chain``), sizes ``W,H``.

Stage k (1..6) is a weighted 3x3 sum of stage k-1 (stage 0 is the input), with weights
``[[1,2,1],[2,4,2],[1,2,1]] / 16`` scaled by a per-stage factor so no two stages are alike.
Input ``(H + 12, W + 12)`` float32, output ``(H, W)``. The schedule decides which
intermediate stages are stored (every ``group``-th one; the rest are inlined into their
consumer) and where the stored ones are computed.
"""
from __future__ import annotations

from typing import Mapping

import numpy as np

from ..space import Knob, Recorder, Space
from .base import (IMAGE_SIZES, PAR_KNOB, VEC_KNOB, Built, HalidePipeline, padded_image_sizes,
                   place, strip_ty_knob, strips_valid, tile_and_parallel, rows_canonical)

STAGES = 6
_W = [[1.0, 2.0, 1.0], [2.0, 4.0, 2.0], [1.0, 2.0, 1.0]]
_SCALE = [1.0 / 16 * (1.0 + 0.01 * k) for k in range(1, STAGES + 1)]


def _build() -> Built:
    import halide as hl

    inp = hl.ImageParam(hl.Float(32), 2, "input")
    x, y = hl.Var("x"), hl.Var("y")
    funcs = {}
    # as in Halide's app: clamp reads to the image, so that no schedule (an autoscheduler's
    # tiles shifted at the edges included) reads outside it
    prev = hl.BoundaryConditions.repeat_edge(inp)
    for k in range(1, STAGES + 1):
        f = hl.Func(f"s{k}")
        f[x, y] = hl.f32(_SCALE[k - 1]) * sum(
            _W[j][i] * prev[x + i, y + j] for j in range(3) for i in range(3))
        funcs[f"s{k}"] = f
        prev = f
    return Built([inp], prev, funcs, {"x": x, "y": y})


_CODE = f"""
input = hl.ImageParam(hl.Float(32), 2, "input")  # (W+12) x (H+12)
x, y = hl.Var("x"), hl.Var("y")
W3 = {_W!r}
scale = {_SCALE!r}
prev = hl.BoundaryConditions.repeat_edge(input)  # reads stay inside the image
for k in range(1, {STAGES + 1}):
    f = hl.Func(f"s{{k}}")
    f[x, y] = hl.f32(scale[k - 1]) * sum(W3[j][i] * prev[x + i, y + j]
                                          for j in range(3) for i in range(3))
    globals()[f"s{{k}}"] = prev = f
pipeline = hl.Pipeline(s{STAGES})  # inputs: [input]; output s{STAGES} is W x H
"""


def stored(group: int) -> list[int]:
    """The intermediate stages (1..STAGES-1) that are stored under ``group``."""
    return [k for k in range(1, STAGES) if k % group == 0]


def _valid(s) -> bool:
    return (s["tx"] == 0 or s["vec"] <= s["tx"]) and strips_valid(s)


def _schedule(b: Built, s: Mapping, rec: Recorder) -> None:
    x, y = b.vars["x"], b.vars["y"]
    out = rec.func(b.funcs[f"s{STAGES}"])
    at, xi, yi = tile_and_parallel(rec, out, x, y, s["tx"], s["ty"], s["par"])
    out.vectorize(xi, s["vec"])
    for k in reversed(stored(int(s["group"]))):  # consumers before producers
        place(rec, rec.func(b.funcs[f"s{k}"]), out, at, yi, s["stage_at"], s["vec"],
              s["par"], x, y)


def _inputs(sz, rng):
    return [rng.random((sz["H"] + 2 * STAGES, sz["W"] + 2 * STAGES), dtype=np.float32)]


def _output(sz):
    return np.empty((sz["H"], sz["W"]), np.float32)


def reference(inputs):
    a = inputs[0].astype(np.float64)
    for k in range(STAGES):
        h, w = a.shape[0] - 2, a.shape[1] - 2
        a = _SCALE[k] * sum(_W[j][i] * a[j:j + h, i:i + w] for j in range(3) for i in range(3))
    return a.astype(np.float32)


def _estimates(b: Built, sz):
    b.inputs[0].set_estimates([(0, sz["W"] + 2 * STAGES), (0, sz["H"] + 2 * STAGES)])
    b.output.set_estimates([(0, sz["W"]), (0, sz["H"])])


def _complexity() -> dict[str, str]:
    """Stencil evaluations (17 flops each) per output pixel, counting recompute, for each
    grouping: a stored stage k is evaluated over the output tile plus its halo of
    ``STAGES - k`` pixels per side (``tile``; ``row``, a sliding window, too: it starts
    again in every tile, so only column strips, ``ty = 0``, compute each row once) or once
    (``root``); an inlined stage 9 times per evaluation of its consumer."""
    tx, ty = "min(2**log2_tx, W)", "min(2**log2_ty, H)"

    def stored_evals(halo):
        # a sliding window (row) restarts in every tile: ty + 2*halo rows, as a tile does
        return (f"((1 - stage_at_root)*({tx} + {2 * halo})*({ty} + {2 * halo})"
                f"/({tx}*{ty}) + stage_at_root)")

    def counts(group):
        """Evaluations per output pixel as ``const + sum_h coef[h] * stored_evals(h)``."""
        keep, const, coef = set(stored(group)), 1, {}
        factor, halo = 1, None  # evaluations of the current consumer: factor * E(halo)
        for k in range(STAGES - 1, 0, -1):
            if k in keep:
                factor, halo = 1, STAGES - k
            else:
                factor *= 9
            if halo is None:
                const += factor
            else:
                coef[halo] = coef.get(halo, 0) + factor
        return const, coef
    weights = {1: "(1 - group_2 - group_3)", 2: "group_2", 3: "group_3"}
    const = " + ".join(f"{counts(g)[0]}*{w}" for g, w in weights.items())
    terms = []
    for h in range(1, STAGES):
        c = " + ".join(f"{counts(g)[1][h]}*{w}" for g, w in weights.items()
                       if h in counts(g)[1])
        if c:
            terms.append(f"({c})*{stored_evals(h)}")
    work = f"17*W*H*({const} + " + " + ".join(terms) + ")"
    stored_root = f"stage_at_root*((1 - group_2 - group_3)*{STAGES - 1} + group_2*2 + group_3)"
    # bytes of one stored stage's buffer (stage 1, the widest halo): the whole image, a
    # tile (a column strip when ty is 0) or three rows of a tile (a sliding window)
    h = STAGES - 1
    tile_buf = (f"(1 - stage_at_root - stage_at_row)*({tx} + {2 * h})*({ty} + {2 * h}) + "
                f"stage_at_row*3*({tx} + {2 * h})")
    buffer = f"4*(stage_at_root*W*H + {tile_buf})"
    return {"work": work, "traffic": f"W*H*(8 + 8*{stored_root})", "pixels": "W*H",
            "buffer": buffer}


PIPELINE = HalidePipeline(
    name="stencil_chain",
    description=f"chain of {STAGES} 3x3 stencils, float32, after Halide's apps/stencil_chain",
    size_names=("W", "H"),
    size_range={"W": (256, 2560), "H": (256, 2560)},
    size_multiple=16,
    complexity=_complexity(),
    space=Space((
        Knob("tx", (32, 64, 128, 256, 0), codes=((0, 13),),
             description="output tile width (0: whole rows)"),
        # up to 256 rows: Mullapudi2016 prints 256 x 256 tiles with every stage computed per
        # tile for this pipeline at every comparison size (halo recompute 1.08x, against
        # 1.20x for 256 x 64, the tallest tile before)
        strip_ty_knob((8, 16, 32, 64, 128, 256)),
        VEC_KNOB,
        Knob("group", (1, 2, 3), categorical=True,
             description="store every group-th intermediate stage; inline the others"),
        Knob("stage_at", ("tile", "root", "row"), categorical=True,
             description="where the stored stages are computed"),
        PAR_KNOB,
    ), valid=_valid, canonical=rows_canonical),
    algorithm_code=_CODE,
    _build=_build, _schedule=_schedule, _inputs=_inputs, _output=_output,
    _reference=reference, _estimates=_estimates,
    **{**IMAGE_SIZES, "min_sizes": {"W": 256, "H": 256}},  # a 256-row tile must fit
    _sizes_of=padded_image_sizes(2 * STAGES),
    default_schedule_ok=False,  # all inlined: 9**6 taps per pixel, minutes to compile
)
