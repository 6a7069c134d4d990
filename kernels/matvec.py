"""Matrix-vector product y = A @ x (float32), A with a given density."""
from __future__ import annotations

import numpy as np

from annpred.spec.expr import group_passes
from annpred.spec.kernel import Kernel, Param, Variant

from . import _halide as H
from . import _torch as T
from ._common import (density, nonzero_values, product_run, random_sparse_dense,
                      sparse_product_prepare,
                      torch_product_prepare)


def make_inputs(p, rng):
    return {"A": random_sparse_dense(rng, (p["m"], p["n"]), p["density"]),
            "x": nonzero_values(rng, p["n"])}


def reference(inputs, p):
    return inputs["A"].astype(np.float64) @ inputs["x"].astype(np.float64)


def infer_params(A, x):
    """(A (m x n) numpy array or scipy sparse matrix, x (n,))."""
    m, n = A.shape
    if np.shape(x)[0] != n:
        raise ValueError(f"matvec: A is {A.shape} but x has {np.shape(x)[0]} entries")
    return {"m": int(m), "n": int(n), "density": density(A)}


# Halide: 4 rows at a time, each row reduced with 2 vector accumulators over the columns
# (columns padded to a multiple of 2 vectors, rows to a multiple of 4, with zeros).
_ROWS = 4


def _halide_build(hl):
    L2 = 2 * H.lanes()
    A = hl.ImageParam(hl.Float(32), 2, "A")  # A(j, i)
    x = hl.ImageParam(hl.Float(32), 1, "x")
    v, i, io, ii = hl.Var("v"), hl.Var("i"), hl.Var("io"), hl.Var("ii")
    r = hl.RDom([hl.Range(0, A.dim(0).extent() // L2)])
    partial = hl.Func("partial")
    partial[v, i] = hl.f32(0)
    partial[v, i] += A[r.x * L2 + v, i] * x[r.x * L2 + v]
    rv = hl.RDom([hl.Range(0, L2)])
    y = hl.Func("y")
    y[i] = hl.f32(0)
    y[i] += partial[rv.x, i]
    y.split(i, io, ii, _ROWS).parallel(io)
    y.update().split(i, io, ii, _ROWS).parallel(io)
    partial.compute_at(y, io).vectorize(v, H.lanes()).unroll(v).unroll(i)
    partial.update().reorder(v, i, r.x).vectorize(v, H.lanes()).unroll(v).unroll(i)
    return y, [A, x]


def _halide_prepare(inputs, p):
    A, x = inputs["A"], inputs["x"]
    m, n = A.shape
    L2 = 2 * H.lanes()
    N = H.round_up(n, L2)
    Ap = H.padded(A, (H.round_up(m, _ROWS), N))
    xp = H.padded(x, (N,))
    y = np.empty(Ap.shape[0], np.float32)
    fn = H.compile_cached("matvec", _halide_build)
    return fn, H.buffer(Ap), H.buffer(xp), H.buffer(y), y[:m], (Ap, xp)


def _halide_run(s):
    s[0](s[1], s[2], s[3])
    return s[4]


_DENSE = {"flops": "m*n", "memory": "m*n + m + n"}
# OpenBLAS's sgemv, like its sgemm (see matmul), runs the contiguous dimension n in groups
# of 4 and the last n mod 4 one by one. Development splits (experiments/dev_splits.py, 4
# seeds), NN+C mean MAPE before -> after, numpy: AMD EPYC 1 thread 4.95 -> 4.24%, 2 threads
# 10.80 -> 10.68%; Intel Xeon 1 thread 8.19 -> 7.98%, 2 threads 13.58 -> 13.50%. torch.mv
# (MKL) not: AMD 4.67 -> 4.10% and 9.07 -> 8.70%, but Intel 8.31 -> 10.14% and 20.56 -> 23.19%
# (MKL's kernels on an Intel CPU show no such edge), so torch keeps the plain terms.
_OPENBLAS = {"flops": _DENSE["flops"], "column_passes": f"m*({group_passes('n', 4)})",
             "memory": _DENSE["memory"]}
_DENSE_PARAMS = ("m", "n")  # a dense product's runtime does not depend on the density

def _budget(p):
    """profiled matrices stay under 128 MB (float32): m*n <= 2^25"""
    return p["m"] * p["n"] <= 1 << 25


KERNEL = Kernel(
    name="matvec",
    description="y = A @ x for float32 A (m x n) with the given density and a dense x (n).",
    params=[
        Param("m", "int", 16, 8192, "log", description="rows of A"),
        Param("n", "int", 16, 8192, "log", description="columns of A, length of x"),
        Param("density", "float", 0.001, 1.0, "log", description="density of A (nnz / size)"),
    ],
    complexity={"flops": "m*n", "sparse_flops": "m*n*density", "memory": "m*n + m + n"},
    make_inputs=make_inputs,
    reference=reference,
    infer_params=infer_params,
    rtol=1e-3,
    atol=1e-3,
    defaults={"density": 1.0},  # dense operands unless said otherwise
    variants=[
        Variant("numpy", run=product_run, description="numpy @ (BLAS sgemv)", complexity=_OPENBLAS, params=_DENSE_PARAMS),
        Variant("torch", run=product_run, prepare=torch_product_prepare("A", "x", "cpu"), to_numpy=T.to_numpy,
                description="torch.mv on CPU", complexity=_DENSE, params=_DENSE_PARAMS),
        Variant("sparse", run=product_run, prepare=sparse_product_prepare("A", "x"),
                description="scipy.sparse CSR(A) @ x (CSR built in prepare)",
                # CSR traversal: one multiply-add per stored value and one pass per row
                # (the row-pointer loop), so the work is their sum, which log inputs alone
                # cannot add
                complexity={"csr": "m*n*density + m", "sparse_flops": "m*n*density",
                            "rows": "m"}),
        Variant("halide", run=_halide_run, prepare=_halide_prepare,
                description="Halide: 4 rows at a time, 2 vector accumulators per row, "
                            "row blocks parallel", complexity=_DENSE, params=_DENSE_PARAMS),
        Variant("torch_cuda", run=product_run, prepare=torch_product_prepare("A", "x", "cuda"),
                to_numpy=T.to_numpy, device="cuda", available=T.cuda_available,
                sync=T.cuda_sync, description="torch.mv on the GPU", complexity=_DENSE, params=_DENSE_PARAMS),
    ],
    profile_constraint=_budget,
)
