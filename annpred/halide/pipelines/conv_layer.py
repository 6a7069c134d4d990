"""conv_layer: 3x3 convolution + bias + ReLU over a batch (after Halide's ``apps/conv_layer``),
sizes ``W,H,C``.

``relu(c, x, y, n) = max(0, bias(c) + sum_{ci, dx, dy} filter(c, ci, dx, dy) *
input(ci, x + dx, y + dy, n))`` with ``C`` input and ``C`` output channels and a batch of
``BATCH`` images. numpy layouts (channels innermost, as the app): input
``(BATCH, H + 2, W + 2, C)``, filter ``(3, 3, C, C)`` indexed ``[dy, dx, ci, co]``, bias
``(C,)``, output ``(BATCH, H, W, C)``. The schedule space is the app's: a register block of
``cb`` channel vectors by ``xb`` pixels, where the convolution is accumulated, the order of
the reduction, and the parallel loop.
"""
from __future__ import annotations

from typing import Mapping

import numpy as np

from ...spec.machine import vector_registers
from ..space import Knob, Recorder, Space
from .base import VEC_KNOB, Built, HalidePipeline

BATCH = 2
_CW = "(2**log2_vec*2**log2_cb)"  # output channels per register block
_BLOCK = "(1 - conv_at_row - conv_at_root)"  # 1 where conv is accumulated in registers
_REGS = vector_registers()


def _build() -> Built:
    import halide as hl

    inp = hl.ImageParam(hl.Float(32), 4, "input")
    filt = hl.ImageParam(hl.Float(32), 4, "filter")
    bias = hl.ImageParam(hl.Float(32), 1, "bias")
    c, x, y, n = hl.Var("c"), hl.Var("x"), hl.Var("y"), hl.Var("n")
    r = hl.RDom([(0, inp.dim(0).extent()), (0, 3), (0, 3)], "r")
    conv, relu = hl.Func("conv"), hl.Func("relu")
    conv[c, x, y, n] = bias[c]
    conv[c, x, y, n] += filt[c, r.x, r.y, r.z] * inp[r.x, x + r.y, y + r.z, n]
    relu[c, x, y, n] = hl.max(0.0, conv[c, x, y, n])
    return Built([inp, filt, bias], relu, {"conv": conv, "relu": relu},
                 {"c": c, "x": x, "y": y, "n": n, "r": r})


_CODE = """
input = hl.ImageParam(hl.Float(32), 4, "input")    # (ci, x, y, n): numpy (N, H+2, W+2, C)
filter = hl.ImageParam(hl.Float(32), 4, "filter")  # (co, ci, dx, dy): numpy (3, 3, C, C)
bias = hl.ImageParam(hl.Float(32), 1, "bias")      # (co,)
c, x, y, n = hl.Var("c"), hl.Var("x"), hl.Var("y"), hl.Var("n")
r = hl.RDom([(0, input.dim(0).extent()), (0, 3), (0, 3)], "r")
conv, relu = hl.Func("conv"), hl.Func("relu")
conv[c, x, y, n] = bias[c]
conv[c, x, y, n] += filter[c, r.x, r.y, r.z] * input[r.x, x + r.y, y + r.z, n]
relu[c, x, y, n] = hl.max(0.0, conv[c, x, y, n])
pipeline = hl.Pipeline(relu)  # inputs: [input, filter, bias]; relu: numpy (N, H, W, C)
"""


def _schedule(b: Built, s: Mapping, rec: Recorder) -> None:
    c, x, y, n = (b.vars[k] for k in ("c", "x", "y", "n"))
    r = b.vars["r"]
    conv, relu = rec.func(b.funcs["conv"]), rec.func(b.funcs["relu"])
    vec, cw, xb = s["vec"], s["vec"] * s["cb"], s["xb"]
    co, ci, xo, xi = (rec.var(k) for k in ("co", "ci", "xo", "xi"))
    # register block: cw channels (cb vectors) x xb pixels; channel blocks outermost
    relu.split(c, co, ci, cw).split(x, xo, xi, xb).reorder(ci, xi, xo, y, n, co)
    relu.vectorize(ci, vec).unroll(ci).unroll(xi)
    if s["par"] == "y":
        t = rec.var("t")
        relu.fuse(y, n, t).parallel(t)
        row = t
    else:
        row = y
        if s["par"] == "co":
            relu.parallel(co)
    upd = conv.update(0)
    red = [r.x, r.y, r.z] if s["red"] == "ci_inner" else [r.y, r.z, r.x]
    if s["conv_at"] == "block":  # accumulators in registers, reduction outside the block
        conv.compute_at(relu, xo).vectorize(c, vec).unroll(c).unroll(x)
        upd.reorder(*([c, x, y] + red + [n])).vectorize(c, vec).unroll(c).unroll(x)
    elif s["conv_at"] == "row":  # one row of a channel block accumulated in memory
        conv.compute_at(relu, row).vectorize(c, vec)
        upd.reorder(*([c, x] + red + [y, n])).vectorize(c, vec)
    else:  # root: the whole batch accumulated in memory, reduction outside the pixels
        conv.compute_root().vectorize(c, vec)
        upd.reorder(*([c, x] + red + [y, n])).vectorize(c, vec)
        if s["par"] != "none":
            upd.parallel(n if s["par"] == "y" else y)
    if s["unroll_r"] > 1:
        upd.unroll(red[0], s["unroll_r"])


def _inputs(sz, rng):
    C, W, H = sz["C"], sz["W"], sz["H"]
    return [rng.random((BATCH, H + 2, W + 2, C), dtype=np.float32) - 0.5,
            (rng.random((3, 3, C, C), dtype=np.float32) - 0.5) / np.float32(3 * C ** 0.5),
            rng.random(C, dtype=np.float32) - 0.5]


def _output(sz):
    return np.empty((BATCH, sz["H"], sz["W"], sz["C"]), np.float32)


def reference(inputs):
    inp, filt, bias = (a.astype(np.float64) for a in inputs)
    n, h2, w2, _ = inp.shape
    h, w = h2 - 2, w2 - 2
    acc = np.broadcast_to(bias, (n, h, w, bias.shape[0])).copy()
    for dy in range(3):
        for dx in range(3):
            acc += inp[:, dy:dy + h, dx:dx + w, :] @ filt[dy, dx]
    return np.maximum(acc, 0.0).astype(np.float32)


def _estimates(b: Built, sz):
    C, W, H = sz["C"], sz["W"], sz["H"]
    b.inputs[0].set_estimates([(0, C), (0, W + 2), (0, H + 2), (0, BATCH)])
    b.inputs[1].set_estimates([(0, C), (0, C), (0, 3), (0, 3)])
    b.inputs[2].set_estimates([(0, C)])
    b.output.set_estimates([(0, C), (0, W), (0, H), (0, BATCH)])


def _valid(s) -> bool:
    # unrolling the channel reduction by 2 needs it innermost (the taps loop is 3 long)
    return not (s["unroll_r"] > 1 and s["red"] != "ci_inner")


def _sizes_of(inputs):
    n, h2, w2, c = inputs[0].shape
    return {"W": w2 - 2, "H": h2 - 2, "C": c}


PIPELINE = HalidePipeline(
    name="conv_layer",
    description=f"3x3 convolution + bias + ReLU, C -> C channels, batch {BATCH}, float32, "
                "after Halide's apps/conv_layer",
    size_names=("W", "H", "C"),
    size_range={"W": (16, 96), "H": (16, 96), "C": (64, 192)},
    size_multiple=16,
    complexity={
        # whole channel blocks are computed (the last one shifted inwards over channels
        # already done), so the work steps with ceiling(C / block channels)
        "flops": f"{2 * 9 * BATCH}*W*H*C*ceiling(C/{_CW})*{_CW}",
        "input_bytes": f"{4 * BATCH}*(W + 2)*(H + 2)*C",
        # accumulators held by conv per block / row / batch (bytes)
        "acc_bytes": f"4*({_BLOCK}*2**log2_vec*2**log2_cb"
                     f"*2**log2_xb + conv_at_row*W*2**log2_vec*2**log2_cb"
                     f" + conv_at_root*{BATCH}*W*H*C)",
        # vector loads: a register block of cb vectors x xb pixels loads cb filter vectors
        # and xb broadcast inputs per cb*xb fused multiply-adds; accumulators in memory
        # load and store the accumulator as well (about 3 per multiply-add)
        "loads": f"{9 * BATCH}*W*H*C*C/2**log2_vec*({_BLOCK}*(2**log2_cb + 2**log2_xb)"
                 f"/(2**log2_cb*2**log2_xb) + 3*(conv_at_row + conv_at_root))",
        # registers a block needs beyond this CPU's vector registers (cb*xb accumulators,
        # cb filter vectors, one broadcast input): the block spills
        "spill": f"{_BLOCK}*max(0, 2**log2_cb*2**log2_xb + 2**log2_cb + 1 - {_REGS})"},
    space=Space((
        VEC_KNOB,
        Knob("cb", (1, 2, 4), description="channel vectors per register block"),
        Knob("xb", (1, 2, 4, 8), description="pixels per register block (unrolled)"),
        Knob("conv_at", ("block", "row", "root"), categorical=True,
             description="where the convolution is accumulated: per register block, per "
                         "row of a channel block, or for the whole batch"),
        Knob("red", ("ci_inner", "taps_inner"), categorical=True,
             description="reduction order: input channels innermost, or the 3x3 taps"),
        Knob("par", ("y", "co", "none"), categorical=True,
             description="parallel loop: rows of all images, channel blocks, or serial"),
        Knob("unroll_r", (1, 2), description="unroll factor of the innermost reduction loop"),
    ), valid=_valid),
    algorithm_code=_CODE,
    _build=_build, _schedule=_schedule, _inputs=_inputs, _output=_output,
    _reference=reference, _estimates=_estimates,
    compare_sizes=((32, 32, 64), (56, 56, 128), (64, 64, 96), (96, 96, 192)),
    min_sizes={"W": 8, "H": 1, "C": 64},
    _sizes_of=_sizes_of,
    # Halide's default (serial, scalar) takes seconds per run at the comparison sizes
    default_schedule_ok=False,
)
