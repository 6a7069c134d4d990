"""The kernel catalog (kernels/): every available variant matches its kernel's reference on
sampled points, sampled points respect the constraints, infer_params round-trips, and
importing the catalog does not import torch or halide."""
from __future__ import annotations

import functools
import os
import subprocess
import sys

import numpy as np
import pytest

import annpred.spec.catalog as catalog
from annpred.errors import ParameterError

KERNELS = catalog.kernels()
EXPECTED = {"matmul", "matvec", "conv2d", "maxpool", "blur", "fft"}
CASES = [(k, v.name) for k, K in KERNELS.items() for v in K.variants]


def sample_points(K, n, seed):
    """``n`` profilable points of kernel ``K`` (the sampler the profiler uses)."""
    return K.sample_points(n, seed)


def _size(K, pt):
    return float(np.prod([pt[p.name] for p in K.params if p.kind == "int"]))


@functools.lru_cache(maxsize=None)
def check_cases(name):
    """A few small-to-medium sampled points plus the low corner, with inputs and reference."""
    K = KERNELS[name]
    pts = sorted(sample_points(K, 30, seed=7), key=lambda p: _size(K, p))
    chosen = [pts[0], pts[6], pts[12]]
    low = {p.name: (p.low if p.kind == "float" else int(p.low)) for p in K.params}
    if K.valid(low):
        chosen.append(low)
    rng = np.random.default_rng(11)
    out = []
    for pt in chosen:
        inputs = K.make_inputs(pt, rng)
        out.append((pt, inputs, np.asarray(K.reference(inputs, pt))))
    return out


def test_catalog_has_the_kernels():
    assert EXPECTED <= set(KERNELS)
    for K in KERNELS.values():
        assert K.description and K.infer_params is not None
        assert all(v.description for v in K.variants)
        cpu = {v.name for v in K.variants if v.device == "cpu"}
        assert len(cpu) >= 3
        assert "torch_cuda" in {v.name for v in K.variants if v.device == "cuda"}


@pytest.mark.parametrize("kernel,variant", CASES, ids=[f"{k}-{v}" for k, v in CASES])
def test_variant_matches_reference(kernel, variant):
    K = KERNELS[kernel]
    v = K.variant(variant)
    if not v.available():
        pytest.skip(f"{kernel}/{variant} needs {v.device}, not present here")
    for pt, inputs, ref in check_cases(kernel):
        state = v.prepare(inputs, pt)
        result = v.run(state)
        if v.sync is not None:
            v.sync()
        got = np.asarray(v.to_numpy(result))
        assert got.shape == ref.shape, (kernel, variant, pt)
        np.testing.assert_allclose(got, ref, rtol=K.rtol, atol=K.atol,
                                   err_msg=f"{kernel}/{variant} at {pt}")
        # running again on the same prepared state gives the same answer
        again = np.asarray(v.to_numpy(v.run(state)))
        np.testing.assert_allclose(again, got, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("kernel", sorted(KERNELS))
def test_sampled_points_respect_domain(kernel):
    K = KERNELS[kernel]
    for pt in sample_points(K, 200, seed=3):
        checked = K.check_params(pt, strict=True)  # inside the profiling domain
        assert K.profilable(checked)
        for v in K.variants:
            assert v.supports_point(checked)


def test_constraints_reject():
    with pytest.raises(ParameterError):
        KERNELS["conv2d"].check_params({"n": 8, "k": 9, "c": 1, "f": 1})
    assert not KERNELS["maxpool"].valid({"n": 8, "w": 9, "s": 1, "c": 1})


@pytest.mark.parametrize("kernel", sorted(KERNELS))
def test_infer_params_round_trip(kernel):
    K = KERNELS[kernel]
    rng = np.random.default_rng(5)
    pts = sorted(sample_points(K, 12, seed=9), key=lambda p: _size(K, p))[:6]
    for pt in pts:
        inputs = K.make_inputs(pt, rng)
        operands = list(inputs.values())
        got = K.infer_params(*operands)
        for name in K.param_names:
            if name not in got:
                assert name in K.defaults, (kernel, name)
                continue
            p = K.param(name)
            if p.kind == "int":
                assert got[name] == pt[name], (kernel, name, got, pt)
            else:  # densities: exact up to the rounding of nnz (and at least one nonzero)
                size = min(int(np.prod(o.shape)) for o in operands)
                assert abs(got[name] - pt[name]) <= 1.0 / size + 1e-12, (kernel, name)
        # the inferred sizes form a valid point (densities taken from the sampled point)
        K.check_params({**pt, **{k: v for k, v in got.items() if K.param(k).kind == "int"}})


def test_infer_params_accepts_scipy_sparse():
    import scipy.sparse as sp

    K = KERNELS["matmul"]
    pt = {"m": 30, "n": 20, "k": 40, "da": 0.1, "db": 0.5}
    inputs = K.make_inputs(pt, np.random.default_rng(0))
    dense = K.infer_params(inputs["A"], inputs["B"])
    sparse = K.infer_params(sp.csr_array(inputs["A"]), inputs["B"])
    assert dense == sparse
    assert KERNELS["maxpool"].infer_params(np.zeros((3, 10, 10), np.float32), w=3, s=2) == \
        {"n": 10, "c": 3, "w": 3, "s": 2}


def test_import_does_not_import_torch_or_halide():
    code = ("import annpred.spec.catalog as c; c.kernels(); import sys; "
            "assert 'torch' not in sys.modules and 'halide' not in sys.modules; "
            "assert 'scipy' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_torch_conv2d_backend_terms_follow_torch_own_choice():
    """The ``mkldnn`` (one thread) and ``mkldnn_mt`` (more threads) complexity terms of
    conv2d/torch are 1 exactly where torch runs oneDNN rather than its own im2col + GEMM,
    as torch itself decides it."""
    torch = pytest.importorskip("torch")
    select = getattr(torch._C, "_select_conv_backend", None)
    if select is None:
        pytest.skip("this torch does not expose _select_conv_backend")
    from annpred.spec import expr

    comp = catalog.get_kernel("conv2d").complexity_for("torch")
    old = torch.get_num_threads()
    try:
        for threads, term in ((1, comp["mkldnn"]), (2, comp["mkldnn_mt"])):
            torch.set_num_threads(threads)
            seen = set()
            for n in (8, 16, 35, 36, 64):
                for k in (1, 2, 3, 4, 7):
                    for c in (1, 4, 16):
                        backend = str(select(torch.zeros(1, c, n, n), torch.zeros(3, c, k, k),
                                             None, [1, 1], [0, 0], [1, 1], False, [0, 0], 1,
                                             None))
                        want = float("Mkldnn" in backend)
                        got = expr.evaluate(term, {"n": np.array([n]), "k": np.array([k]),
                                                   "c": np.array([c]), "f": np.array([3])})[0]
                        assert got == want, (threads, n, k, c, backend)
                        seen.add(want)
            assert seen == {0.0, 1.0}  # both paths occur on this grid
    finally:
        torch.set_num_threads(old)


def test_scipy_conv2d_method_terms_follow_scipy_own_choice():
    """``scipy_fft`` is 1 exactly where scipy.signal.correlate(method="auto") runs the FFT
    method rather than the direct one, as scipy itself decides it, and ``scipy_work`` is the
    estimate of the method it runs (its own cost model, per filter, times the filters), the
    FFT one at the lengths fftconvolve pads to (scipy.fft.next_fast_len, real=True)."""
    signal = pytest.importorskip("scipy.signal")
    sp_fft = pytest.importorskip("scipy.fft")
    from annpred.spec import expr

    comp = catalog.get_kernel("conv2d").complexity_for("scipy")
    rng = np.random.default_rng(0)
    seen = set()
    for _ in range(400):
        n = int(rng.integers(8, 129))
        k, c, f = int(rng.integers(1, 8)), int(rng.integers(1, 17)), int(rng.integers(1, 17))
        method = signal.choose_conv_method(np.zeros((c, n, n), np.float32),
                                           np.zeros((c, k, k), np.float32), mode="valid")
        vals = {"n": np.array([n]), "k": np.array([k]), "c": np.array([c]), "f": np.array([f])}
        fft = expr.evaluate(comp["scipy_fft"], vals)[0]
        assert fft == float(method == "fft"), (n, k, c, method)
        direct = 2.11242e-8 * c * k**2 * (n - k + 1)**2
        padded = (sp_fft.next_fast_len(2 * c - 1, True)
                  * sp_fft.next_fast_len(n + k - 1, True)**2)
        est = 1.85927e-9 * 3 * padded * np.log(padded) + 1e-4 if fft else direct
        assert np.isclose(expr.evaluate(comp["scipy_work"], vals)[0], f * est, rtol=1e-9)
        seen.add(method)
    assert seen == {"fft", "direct"}  # both methods occur in the catalog's domain


def test_vector_lanes_follow_the_isa_and_halide():
    from annpred.spec.machine import vector_lanes

    assert vector_lanes({"isa": ["sse4_2"]}) == 4
    assert vector_lanes({"arch": "aarch64", "isa": ["asimd"]}) == 4
    assert vector_lanes({"isa": ["sse4_2", "avx", "avx2", "fma"]}) == 8
    assert vector_lanes({"isa": ["avx2", "avx512f"]}) == 16
    # the host's lanes, whatever machine ANNPRED_MACHINE emulates (even a broken one): the
    # catalog imports without the machine description
    code = ("import annpred.spec.catalog as c; c.kernels(); "
            "from annpred.kernels import _halide as H; print(H.LANES)")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                         text=True, env={**os.environ, "ANNPRED_MACHINE": "/nonexistent.json"})
    assert int(out.stdout) == vector_lanes()
    pytest.importorskip("halide")
    from annpred.kernels import _halide as H

    assert H.LANES == H.lanes()  # what the catalog assumes is what Halide compiles to


def _halide_work(kernel, pt):
    """The work the Halide variant's prepared buffers make it compute (its padded output
    times the work per output element), from the buffers themselves."""
    K = KERNELS[kernel]
    state = K.variant("halide").prepare(K.make_inputs(pt, np.random.default_rng(0)), pt)
    if kernel == "conv2d":
        out = state[3]
        return out.dim(0).extent() * out.dim(1).extent() * out.dim(2).extent() * \
            pt["c"] * pt["k"] ** 2
    if kernel == "maxpool":
        out = state[4]
        return out.dim(0).extent() * out.dim(1).extent() * out.dim(2).extent() * pt["w"] ** 2
    # matmul: whole 2-vector x 4-row tiles over the padded operands (larger extents end in
    # a tile shifted inwards, which recomputes columns/rows: a whole tile's work)
    from annpred.kernels import _halide as H
    from annpred.kernels.matmul import _TI

    A, B = state[1], state[2]
    cols, rows = B.dim(0).extent(), A.dim(1).extent()
    return (-(-cols // (2 * H.lanes())) * 2 * H.lanes()) * (-(-rows // _TI) * _TI) * pt["k"]


@pytest.mark.parametrize("kernel,term", [("conv2d", "macs"), ("maxpool", "window_work"),
                                         ("matmul", "flops")])
def test_halide_complexity_counts_the_padded_work(kernel, term):
    """The main complexity of a Halide variant is the work its schedule computes, padding to
    whole vectors and tiles included (not the valid output's work)."""
    pytest.importorskip("halide")
    from annpred.spec import expr

    K = KERNELS[kernel]
    text = K.complexity_for("halide")[term]
    padded = 0
    for pt in sample_points(K, 12, seed=5):
        pt = {**pt, "da": 1.0, "db": 1.0} if kernel == "matmul" else pt
        got = expr.evaluate(text, {k: np.array([v]) for k, v in pt.items()})[0]
        want = _halide_work(kernel, pt)
        assert got == pytest.approx(want), (kernel, pt)
        valid = expr.evaluate(K.complexity_for("halide")[
            {"conv2d": "valid_macs", "maxpool": "valid_work", "matmul": "valid_flops"}[kernel]],
            {k: np.array([v]) for k, v in pt.items()})[0]
        padded += got > valid
    assert padded > 0  # the sample holds points where padding adds work


@pytest.mark.parametrize("kernel,variant,term,size,rest", [
    ("matvec", "numpy", "column_passes", "n", {"m": 5}),
])
def test_blas_pass_terms_count_groups_of_four_and_the_rest_one_by_one(kernel, variant, term,
                                                                      size, rest):
    """A BLAS edge: a dimension of 4q + r takes q passes of 4 and r single ones, so 4q + 3
    costs more passes than 4q + 4 (a padded or plain count would order them the other way)."""
    from annpred.spec import expr

    text = KERNELS[kernel].complexity_for(variant)[term]
    per = {"matvec": lambda: rest["m"]}[kernel]()
    for v in range(1, 17):
        got = expr.evaluate(text, {size: np.array([float(v)]),
                                   **{k: np.array([float(x)]) for k, x in rest.items()}})[0]
        assert got == per * (v // 4 + v % 4), (term, v)


@pytest.mark.parametrize("kernel,variant,term,size,block,rest", [
    ("matmul", "numpy", "column_passes", "n", 16, {"m": 5, "k": 7}),
    ("matmul", "numpy", "row_passes", "m", 4, {"n": 5, "k": 7}),
    ("matmul", "torch", "column_passes", "n", 16, {"m": 5, "k": 7}),
    ("conv2d", "numpy", "filter_passes", "f", 4, {"n": 9, "k": 3, "c": 2}),
])
def test_gemm_pass_terms_count_blocks_and_halving_remainder_chunks(kernel, variant, term,
                                                                   size, block, rest):
    """MKL's and OpenBLAS's GEMM edges: blocks of ``block``, then the remainder in chunks of
    half, a quarter, ... (one pass per set bit), so 16q + 15 costs 4 passes more than 16q
    and 16q + 16 one more than 16q."""
    from annpred.spec import expr

    text = KERNELS[kernel].complexity_for(variant)[term]
    per = (rest["c"] * rest["k"] ** 2 * (rest["n"] - rest["k"] + 1) ** 2 if kernel == "conv2d"
           else rest["m" if size == "n" else "n"] * rest["k"])
    for v in range(1, 70):
        got = expr.evaluate(text, {size: np.array([float(v)]),
                                   **{k: np.array([float(x)]) for k, x in rest.items()}})[0]
        assert got == per * (v // block + bin(v % block).count("1")), (kernel, term, v)


def test_mkl_narrow_flags_its_own_path_for_2_to_11_columns():
    from annpred.spec import expr

    text = KERNELS["matmul"].complexity_for("torch")["narrow"]
    n = np.arange(1, 40, dtype=float)
    got = expr.evaluate(text, {"n": n, "m": np.ones_like(n), "k": np.ones_like(n)})
    assert got.tolist() == [1.0 if 2 <= v <= 11 else 0.0 for v in n]


def test_binary_passes_refuses_a_block_that_is_not_a_power_of_two():
    from annpred.spec.expr import binary_passes

    assert binary_passes("n", 4) == "n - floor(n/2) - floor(n/4)"
    for bad in (1, 3, 12):
        with pytest.raises(ValueError, match="power of two"):
            binary_passes("n", bad)
