"""Dense/sparse matrix multiplication C = A @ B (float32)."""
from __future__ import annotations

import numpy as np

from annpred.spec.expr import binary_passes
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
# (Those were groups of 4 and the rest one by one, `group_passes`; since stop 43 the passes
# follow the libraries' binary edges, below.)
# MKL (torch), swept on the AMD EPYC Zen 5 (1 thread, m x k = 512 x 512, 96 x 700, 700 x 96,
# 128 x 128, every n to 19 and 32-49; time / (m*k)): from n = 12 on, blocks of 16 columns
# (about 320 ps each) and then the remainder in halving chunks of 8, 4, 2, 1 columns at about
# 250 ps each whatever their width, so n = 16q + r costs by the set bits of r (n = 31: 1,407,
# n = 32: 707); for 2 <= n <= 11 another path, about 800-1,150 ps whatever n (n = 2 and
# n = 12: 812 and 572); n = 1 is a matrix-vector product (54). So the column passes are
# binary (`binary_passes`), and `narrow` flags 2 <= n <= 11. Development splits
# (experiments/dev_splits.py, 5 seeds, test points never used), NN+C mean MAPE, 4-groups ->
# binary passes -> binary passes and narrow (the three sets fixed before the runs): AMD EPYC
# legacy 1 thread 5.87 -> 5.31 -> 3.22%, 2 threads 25.21 -> 24.59 -> 23.41%; Zen 5 10.28 ->
# 8.78 -> 8.28%, 25.09 -> 24.55 -> 20.84%; Intel Xeon 13.89 -> 14.42 -> 14.74% (one seed
# of five moved: 12.11 -> 16.88%), 53.17 -> 52.16 -> 55.40% (two-pass floors of 20-60%).
_MKL = {"flops": _DENSE["flops"], "column_passes": f"m*k*({binary_passes('n', 16)})",
        "memory": _DENSE["memory"], "narrow": "min(max(12 - n, 0), 1)*min(max(n - 1, 0), 1)"}
# OpenBLAS (numpy), the same sweep along n (512 x 512 times 512 x n) and along m: its sgemm
# runs numpy's n (its M, the column-major result's rows) in blocks of 16 and the remainder in
# chunks of 8, 4, 2, 1 (n = 47: 1,017 ps, n = 48: 861), and numpy's m (its N) in blocks of 4
# and then 2, 1 (m = 35: 870, m = 36: 706): binary passes along both. Development splits, NN+C
# mean MAPE, 4-groups -> binary (16 along n, 4 along m) -> binary (8 along n, 4 along m):
# AMD EPYC legacy 1 thread 4.23 -> 2.98 -> 2.91%, 2 threads 12.83 -> 11.81 -> 12.09%; Zen 5
# 8.46 -> 7.46 -> 7.32%, 13.19 -> 12.89 -> 12.97%; Intel Xeon 11.29 -> 13.20 -> 11.20%, 17.71
# -> 15.81 -> 18.58%. The second (mean over the six 10.69%, against 11.29% and 10.85%).
_OPENBLAS = {"flops": _DENSE["flops"], "column_passes": f"m*k*({binary_passes('n', 16)})",
             "row_passes": f"n*k*({binary_passes('m', 4)})", "memory": _DENSE["memory"]}
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
