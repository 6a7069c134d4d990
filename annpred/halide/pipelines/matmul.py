"""matmul: ``C = A @ B`` with an update definition over ``k``, sizes ``M,N,K``."""
from __future__ import annotations

from typing import Mapping

import numpy as np

from ..space import Knob, Recorder, Space
from .base import Built, HalidePipeline, PAR_KNOB, VEC_KNOB, tile_and_parallel


# ============================================================================================
# matmul: C(M x N) = A(M x K) @ B(K x N); Halide out(x=j, y=i), A(k, i), B(j, k).

def _mm_build() -> Built:
    import halide as hl

    A = hl.ImageParam(hl.Float(32), 2, "A")
    B = hl.ImageParam(hl.Float(32), 2, "B")
    x, y = hl.Var("x"), hl.Var("y")
    k = hl.RDom([(0, A.dim(0).extent())], "k")
    prod, out = hl.Func("prod"), hl.Func("out")
    prod[x, y] = 0.0
    prod[x, y] += A[k.x, y] * B[x, k.x]
    out[x, y] = prod[x, y]
    return Built([A, B], out, {"prod": prod, "out": out}, {"x": x, "y": y, "k": k.x})


_MM_CODE = """
A = hl.ImageParam(hl.Float(32), 2, "A")  # A(k, i): numpy (M, K)
B = hl.ImageParam(hl.Float(32), 2, "B")  # B(j, k): numpy (K, N)
x, y = hl.Var("x"), hl.Var("y")
k = hl.RDom([(0, A.dim(0).extent())], "k")
prod, out = hl.Func("prod"), hl.Func("out")
prod[x, y] = 0.0
prod[x, y] += A[k.x, y] * B[x, k.x]
out[x, y] = prod[x, y]
pipeline = hl.Pipeline(out)  # inputs: [A, B]; out(j, i): numpy (M, N)
"""


def _mm_schedule(b: Built, s: Mapping, rec: Recorder) -> None:
    x, y, k = b.vars["x"], b.vars["y"], b.vars["k"]
    prod, out = rec.func(b.funcs["prod"]), rec.func(b.funcs["out"])
    vec, bi = s["vec"], s["bi"]
    bw = s["bj"] * vec
    at, xi, yi = tile_and_parallel(rec, out, x, y, bw * s["nbx"], s["ty"], s["par"])
    yii = rec.var("yii")
    out.split(yi, yi, yii, bi)
    block = yi
    if s["nbx"] > 1:
        xio, xii = rec.var("xio"), rec.var("xii")
        out.split(xi, xio, xii, bw).reorder(xii, yii, xio, yi, at)
        xi, block = xii, xio
    out.vectorize(xi, vec)
    where = s["prod_at"]
    upd = prod.update(0)
    if s["pack_b"]:
        bp = rec.func(b.inputs[1].in_(), "B.in_()")
        bp.compute_at(out, at).vectorize(rec.var("_0"), vec)  # the wrapper's vars: _0, _1
    if where == "block":  # register block: bw x bi accumulators, k loop outside them
        prod.compute_at(out, block).vectorize(x, vec).unroll(y)
        upd.reorder(x, y, k).vectorize(x, vec).unroll(x).unroll(y)
        if s["unroll_k"] > 1:
            upd.unroll(k, s["unroll_k"])
    elif where == "tile":  # accumulate the whole bw x ty tile in memory, k outermost
        prod.compute_at(out, at).vectorize(x, vec)
        yb = rec.var("yb")
        upd.split(y, y, yb, bi).reorder(x, yb, y, k).vectorize(x, vec).unroll(yb)
        if s["unroll_k"] > 1:
            upd.unroll(k, s["unroll_k"])
    else:  # root: the i-k-j loop over the whole matrix (row of C += A(k, i) * row k of B)
        prod.compute_root().vectorize(x, vec)
        upd.reorder(x, k, y).vectorize(x, vec)
        if s["unroll_k"] > 1:
            upd.unroll(k, s["unroll_k"])
        if s["par"] != "none":
            prod.parallel(y)
            upd.parallel(y)


def _mm_inputs(sz, rng):
    return [rng.random((sz["M"], sz["K"]), dtype=np.float32) - 0.5,
            rng.random((sz["K"], sz["N"]), dtype=np.float32) - 0.5]


def _mm_output(sz):
    return np.empty((sz["M"], sz["N"]), np.float32)


def _mm_reference(inputs):
    return (inputs[0].astype(np.float64) @ inputs[1].astype(np.float64)).astype(np.float32)


def _mm_estimates(b: Built, sz):
    b.inputs[0].set_estimates([(0, sz["K"]), (0, sz["M"])])
    b.inputs[1].set_estimates([(0, sz["N"]), (0, sz["K"])])
    b.output.set_estimates([(0, sz["N"]), (0, sz["M"])])


def _mm_valid(s):
    # a packed panel of B lives in the tile, so prod must be computed inside the tile too
    return (s["ty"] >= s["bi"] and s["ty"] % s["bi"] == 0
            and not (s["pack_b"] and s["prod_at"] == "root"))


MATMUL = HalidePipeline(
    name="matmul",
    description="matrix multiply C = A @ B, float32 (prod with an update over k -> out)",
    size_names=("M", "N", "K"),
    size_range={"M": (128, 1024), "N": (256, 1024), "K": (128, 1024)},
    size_multiple=32,
    complexity={"flops": "M*N*K"},
    space=Space((
        VEC_KNOB,
        Knob("bj", (1, 2, 3, 4), description="register block width in vectors"),
        Knob("nbx", (1, 2, 4), description="register blocks per tile row (tile width = "
             "nbx * bj * vec; blocks sweep a band of bi rows across the tile)"),
        Knob("bi", (1, 2, 4, 8), description="register block height (rows)"),
        Knob("ty", (8, 16, 32, 64, 128), description="output tile height (rows)"),
        Knob("prod_at", ("block", "tile", "root"), categorical=True,
             description="where the accumulator prod is computed"),
        PAR_KNOB,
        Knob("unroll_k", (1, 2, 4), description="unroll factor of the k loop"),
        Knob("pack_b", (0, 1), categorical=True, description="copy the tile's panel of B into a contiguous "
             "buffer (avoids cache-set conflicts at power-of-two strides)"),
    ), valid=_mm_valid),
    algorithm_code=_MM_CODE,
    _build=_mm_build, _schedule=_mm_schedule, _inputs=_mm_inputs,
    _output=_mm_output, _reference=_mm_reference, _estimates=_mm_estimates,
    compare_sizes=((256, 256, 256), (512, 512, 512), (768, 768, 768), (1024, 1024, 1024),
                   (1024, 256, 512)),
    min_sizes={"M": 128, "N": 256, "K": 1},
    _sizes_of=lambda ins: {"M": ins[0].shape[0], "N": ins[1].shape[1], "K": ins[0].shape[1]},
)

PIPELINE = MATMUL
