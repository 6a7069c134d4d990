"""Dense/sparse matrix multiplication C = A @ B (float32)."""
from __future__ import annotations

import numpy as np

from annpred.spec.expr import group_passes
from annpred.spec.kernel import Kernel, Param, Variant

from . import _halide as H
from . import _torch as T
from ._common import (density, random_sparse_dense, product_run, sparse_product_prepare,
                      torch_product_prepare)


def make_inputs(p, rng):
    return {"A": random_sparse_dense(rng, (p["m"], p["k"]), p["da"]),
            "B": random_sparse_dense(rng, (p["k"], p["n"]), p["db"])}


def reference(inputs, p):
    return inputs["A"].astype(np.float64) @ inputs["B"].astype(np.float64)


def infer_params(A, B):
    """(A (m x k), B (k x n)); numpy arrays or scipy sparse matrices."""
    m, k = A.shape
    k2, n = B.shape
    if k != k2:
        raise ValueError(f"matmul: inner dimensions differ ({A.shape} @ {B.shape})")
    return {"m": int(m), "n": int(n), "k": int(k), "da": density(A), "db": density(B)}


# Halide: register-blocked tiles (2 vectors of C columns x 4 rows), vectorised, rows parallel
_TI = 4


def _halide_build(hl):
    L = H.lanes()
    A = hl.ImageParam(hl.Float(32), 2, "A")  # A(kk, i)
    B = hl.ImageParam(hl.Float(32), 2, "B")  # B(j, kk)
    j, i = hl.Var("j"), hl.Var("i")
    ji, ii, jo, io = hl.Var("ji"), hl.Var("ii"), hl.Var("jo"), hl.Var("io")
    r = hl.RDom([hl.Range(0, A.dim(0).extent())])
    prod = hl.Func("prod")
    prod[j, i] = hl.f32(0)
    prod[j, i] += A[r.x, i] * B[j, r.x]
    C = hl.Func("C")
    C[j, i] = prod[j, i]
    C.tile(j, i, jo, io, ji, ii, 2 * L, _TI).vectorize(ji, L).unroll(ji).unroll(ii).parallel(io)
    prod.compute_at(C, jo).vectorize(j, L).unroll(j).unroll(i)
    prod.update().reorder(j, i, r.x).vectorize(j, L).unroll(j).unroll(i)
    return C, [A, B]


def _halide_prepare(inputs, p):
    A, B = inputs["A"], inputs["B"]
    m, k = A.shape
    n = B.shape[1]
    L = H.lanes()
    Ap = H.padded(A, (max(m, _TI), k))
    Bp = H.padded(B, (k, max(n, 2 * L)))
    C = np.empty((Ap.shape[0], Bp.shape[1]), np.float32)
    fn = H.compile_cached("matmul", _halide_build)
    return fn, H.buffer(Ap), H.buffer(Bp), H.buffer(C), C[:m, :n], (Ap, Bp)


def _halide_run(s):
    s[0](s[1], s[2], s[3])
    return s[4]


_DENSE = {"flops": "m*n*k", "memory": "m*k + k*n + m*n"}
# BLAS kernels compute the result in register tiles and finish each dimension's remainder
# with narrower edge kernels, so a product's cost follows the passes over a dimension, e.g.
# floor(n/4) + n mod 4 for groups of 4, not n: n = 4q + 3 costs about as much as 4q + 6.
# Found in the residuals (pool points only) of a cross-validated tree model on the sizes and
# the terms above: on AMD, torch, 1 thread, the log residual rose from -0.15 at n = 0 mod 16
# to +0.11 at 15 mod 16, in steps within each 4 (passes with wider first groups, 16 then 4,
# were no better). torch (MKL) shows it along n, the contiguous dimension of B and C; numpy
# (OpenBLAS, whose sgemm kernel here is 16 x 4) along both n and m. Development splits
# (experiments/dev_splits.py, 4 seeds, test points never used), NN+C mean MAPE, none ->
# n passes -> n and m passes:
#   numpy: AMD EPYC 1 thread 5.85 -> 5.45 -> 4.31%, 2 threads 14.05 -> 13.92 -> 13.80%;
#          Intel Xeon 1 thread 11.61 -> 11.46 -> 10.99%, 2 threads 17.91 -> 15.58 -> 18.47%
#          (87 training points of a 175-point pool, two-pass floors of 20-60%)
#   torch: AMD EPYC 1 thread 9.99 -> 6.01 -> 6.11%, 2 threads 26.15 -> 25.75 -> 26.08%;
#          Intel Xeon 1 thread 13.58 -> 13.33 -> 13.58%, 2 threads 47.19 -> 45.32 -> 45.84%
_COLUMN_PASSES = f"m*k*({group_passes('n', 4)})"
_MKL = {"flops": _DENSE["flops"], "column_passes": _COLUMN_PASSES, "memory": _DENSE["memory"]}
_OPENBLAS = {"flops": _DENSE["flops"], "column_passes": _COLUMN_PASSES,
             "row_passes": f"n*k*({group_passes('m', 4)})", "memory": _DENSE["memory"]}
# The flops the Halide schedule computes: whole 2-vector x 4-row tiles (its inputs are padded
# to one tile, larger extents end in a shifted-inwards tile). Development splits (250 + 250
# points of the pool, 4 seeds, test points never used), NN+C mean MAPE, before -> after:
# AMD EPYC 1 thread 7.55 -> 3.91%, 2 threads 16.23 -> 14.38%; Intel Xeon 1 thread 16.54 ->
# 11.90%, 2 threads 41.79 -> 41.07%.
_HALIDE = {"flops": f"{2 * H.LANES}*ceiling(n/{2 * H.LANES})*{_TI}*ceiling(m/{_TI})*k",
           "valid_flops": _DENSE["flops"], "memory": _DENSE["memory"]}
_DENSE_PARAMS = ("m", "n", "k")  # a dense product's runtime does not depend on the densities

def _budget(p):
    """profiled products stay under about a second at 1 thread: m*n*k <= 2^32"""
    return p["m"] * p["n"] * p["k"] <= 1 << 32


KERNEL = Kernel(
    name="matmul",
    description="C = A @ B for float32 A (m x k) and B (k x n) with densities da, db "
                "(fraction of nonzeros); the result is dense.",
    params=[
        Param("m", "int", 8, 2048, "log", description="rows of A and C"),
        Param("n", "int", 8, 2048, "log", description="columns of B and C"),
        Param("k", "int", 8, 2048, "log", description="inner dimension"),
        Param("da", "float", 0.001, 1.0, "log", description="density of A (nnz / size)"),
        Param("db", "float", 0.001, 1.0, "log", description="density of B (nnz / size)"),
    ],
    complexity={"flops": "m*n*k", "sparse_flops": "m*n*k*da", "memory": "m*k + k*n + m*n"},
    make_inputs=make_inputs,
    reference=reference,
    infer_params=infer_params,
    rtol=1e-3,
    atol=1e-3,
    defaults={"da": 1.0, "db": 1.0},  # dense operands unless said otherwise
    variants=[
        Variant("numpy", run=product_run, description="numpy @ (BLAS sgemm)", complexity=_OPENBLAS, params=_DENSE_PARAMS),
        Variant("torch", run=product_run, prepare=torch_product_prepare("A", "B", "cpu"), to_numpy=T.to_numpy,
                description="torch.matmul on CPU (MKL)", complexity=_MKL, params=_DENSE_PARAMS),
        Variant("halide", run=_halide_run, prepare=_halide_prepare,
                description="Halide: 2-vector x 4-row register tiles, vectorised, "
                            "row blocks parallel", complexity=_HALIDE, params=_DENSE_PARAMS),
        Variant("sparse", run=product_run, prepare=sparse_product_prepare("A", "B"),
                description="scipy.sparse CSR(A) @ dense B (CSR built in prepare)",
                # CSR times dense: a row of B scaled into the output per stored value of A,
                # and a pass over each output row; the work is their sum, which log inputs
                # alone cannot add
                complexity={"csr": "m*n*k*da + m*n", "sparse_flops": "m*n*k*da",
                            "nnz_a": "m*k*da", "output": "m*n"}),
        Variant("torch_cuda", run=product_run, prepare=torch_product_prepare("A", "B", "cuda"),
                to_numpy=T.to_numpy, device="cuda", available=T.cuda_available,
                sync=T.cuda_sync, description="torch.matmul on the GPU", complexity=_DENSE, params=_DENSE_PARAMS),
    ],
    profile_constraint=_budget,
)
