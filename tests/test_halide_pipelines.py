"""The pipelines after Halide's apps (harris, stencil_chain, max_filter, iir_blur,
conv_layer): numpy
references checked independently, and schedule-aware complexity against hand counts.
(Every pipeline's sampled schedules are checked against its reference in
test_halide_select.py.)"""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("halide")

from annpred.halide.pipelines import get  # noqa: E402


def _complexity(name, sizes, schedule):
    from annpred.spec import expr

    p = get(name)
    f = p.features(p.parse_size(sizes), schedule)
    vals = {k: np.array([v]) for k, v in f.items()}
    return {n: float(expr.evaluate(e, vals)[0]) for n, e in p.complexity.items()}


def test_max_filter_reference_is_a_17x17_window_maximum():
    p = get("max_filter")
    (a,) = p.make_inputs({"W": 20, "H": 9}, seed=2)
    ref = p.reference([a])
    assert ref.shape == (9, 20)
    for y, x in [(0, 0), (8, 19), (4, 7)]:
        assert ref[y, x] == a[y:y + 17, x:x + 17].max()


def test_stencil_chain_reference_is_six_smoothings():
    p = get("stencil_chain")
    a = np.ones((5 + 12, 7 + 12), np.float32)  # constant input: each stage scales the sum
    out = p.reference([a])
    scale = np.prod([16 * (1 / 16) * (1 + 0.01 * k) for k in range(1, 7)])
    np.testing.assert_allclose(out, scale, rtol=1e-6)


def test_harris_reference_is_zero_on_flat_and_positive_on_a_corner():
    p = get("harris")
    flat = np.full((3, 12, 12), 0.5, np.float32)
    np.testing.assert_allclose(p.reference([flat]), 0.0, atol=1e-12)
    img = np.zeros((3, 24, 24), np.float32)
    img[:, 12:, 12:] = 1.0  # a corner at (12, 12) of the input, (10, 10) of the output
    r = p.reference([img])
    assert np.unravel_index(np.argmax(r), r.shape) in {(9, 9), (9, 10), (10, 9), (10, 10)}
    assert r.max() > 0 and r[18, 9:12].min() < 0  # on the edge away from the corner


def test_iir_blur_reference_preserves_constants_and_smooths():
    p = get("iir_blur")
    c = np.full((3, 16, 24), 2.0, np.float32)
    np.testing.assert_allclose(p.reference([c]), 2.0, rtol=1e-6)
    (a,) = p.make_inputs({"W": 32, "H": 32}, seed=0)
    assert p.reference([a]).std() < 0.5 * a.std()


def test_harris_complexity_counts_recompute():
    base = {"tx": 64, "ty": 8, "vec": 8, "grad_at": "root", "gray_at": "root", "par": "y"}
    W, H = 1024, 512
    px = W * H
    c = _complexity("harris", f"{W},{H}", base)
    assert c["work"] == pytest.approx((60 + 22 + 5) * px)
    assert c["traffic"] == pytest.approx((16 + 24) * px)
    c = _complexity("harris", f"{W},{H}", {**base, "grad_at": "inline"})
    assert c["work"] == pytest.approx((60 + 22 * 9 + 5) * px)
    c = _complexity("harris", f"{W},{H}", {**base, "grad_at": "tile", "gray_at": "inline"})
    g = 66 * 10 / (64 * 8)
    assert c["work"] == pytest.approx((60 + 22 * g + 5 * 12 * g) * px)
    c = _complexity("harris", f"{W},{H}", {**base, "grad_at": "row", "gray_at": "tile"})
    # a sliding window restarts in every tile: the same rows as per tile
    assert c["work"] == pytest.approx((60 + 22 * g + 5 * 68 * 12 / (64 * 8)) * px)
    strip = _complexity("harris", f"{W},{H}", {**base, "grad_at": "row", "gray_at": "row",
                                                "ty": 0})
    assert strip["work"] == pytest.approx(
        (60 + 22 * 66 * (H + 2) / (64 * H) + 5 * 68 * (H + 4) / (64 * H)) * px)


def test_stencil_chain_complexity_counts_recompute():
    W, H = 1024, 512
    px = W * H
    base = {"tx": 64, "ty": 8, "vec": 8, "group": 1, "stage_at": "root", "par": "y"}
    c = _complexity("stencil_chain", f"{W},{H}", base)
    assert c["work"] == pytest.approx(17 * 6 * px)  # every stage once per pixel
    assert c["traffic"] == pytest.approx((8 + 8 * 5) * px)
    # group 3: stage 3 stored per tile (halo 3); 4, 5 inlined (81, 9); 1, 2 inlined into 3
    c = _complexity("stencil_chain", f"{W},{H}", {**base, "group": 3, "stage_at": "tile"})
    e3 = 70 * 14 / (64 * 8)
    assert c["work"] == pytest.approx(17 * (1 + 9 + 81 + e3 * (1 + 9 + 81)) * px)
    assert c["traffic"] == pytest.approx(8 * px)
    row = _complexity("stencil_chain", f"{W},{H}", {**base, "group": 3, "stage_at": "row"})
    assert row["work"] == pytest.approx(c["work"])  # the window restarts in every tile
    strip = _complexity("stencil_chain", f"{W},{H}",
                        {**base, "group": 3, "stage_at": "row", "ty": 0})
    assert strip["work"] == pytest.approx(17 * (1 + 9 + 81 + 70 * (H + 6) / (64 * H)
                                                * (1 + 9 + 81)) * px)


def test_max_filter_complexity_counts_recompute():
    W, H = 1024, 512
    px = W * H
    base = {"tx": 64, "ty": 8, "vec": 8, "vert_at": "root", "vsteps": "inline",
            "hsteps_at": "inline", "par": "y"}
    c = _complexity("max_filter", f"{W},{H}", base)
    assert c["work"] == pytest.approx(32 * px)  # two 16-op trees
    c = _complexity("max_filter", f"{W},{H}",
                    {**base, "vert_at": "tile", "vsteps": "stored", "hsteps_at": "tile"})
    assert c["work"] == pytest.approx((5 * (1 + 15 / 64) + 80 / 64 * 5 * (1 + 15 / 8)) * px)


def test_invalid_placements_are_outside_the_space():
    mf = get("max_filter").space
    s = {"tx": 64, "ty": 8, "vec": 8, "vert_at": "row", "vsteps": "inline",
         "hsteps_at": "tile", "par": "y"}
    assert not mf.valid(s)  # vert per row cannot feed h stages computed per tile
    assert mf.valid({**s, "hsteps_at": "row"})
    hs = get("harris").space
    h = {"tx": 64, "ty": 8, "vec": 8, "grad_at": "tile", "gray_at": "row", "par": "y"}
    assert not hs.valid(h) and hs.valid({**h, "gray_at": "tile"})


@pytest.mark.parametrize("name", ["harris", "stencil_chain", "max_filter", "iir_blur"])
def test_printed_schedule_code_runs_and_matches(name):
    """The readable schedule (as --emit and --print-schedule write it) is runnable code."""
    import halide as hl

    small = {"harris": "256,64", "stencil_chain": "256,256", "max_filter": "256,64",
             "iir_blur": "280,264"}
    p = get(name)
    sched = p.space.sample(1, seed=9)[0]
    ns: dict = {}
    exec(compile(p.schedule_code(sched), "<schedule>", "exec"), ns)  # our own generated code
    sizes = p.parse_size(small[name])
    inputs = p.make_inputs(sizes)
    params = [ns[i.name()] for i in p.build().inputs]
    fn = ns["pipeline"].compile_to_callable(params, hl.get_jit_target_from_environment())
    out = p.make_output(sizes)
    fn(*[hl.Buffer(a) for a in inputs], hl.Buffer(out))
    np.testing.assert_allclose(out, p.reference(inputs), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("name,placements", [
    ("stencil_chain", [{"group": 1, "stage_at": "row"}, {"group": 2, "stage_at": "tile"}]),
    ("max_filter", [{"vert_at": "row", "vsteps": "stored", "hsteps_at": "row"},
                    {"vert_at": "tile", "vsteps": "inline", "hsteps_at": "tile"}]),
    ("harris", [{"grad_at": "row", "gray_at": "tile"}, {"grad_at": "tile", "gray_at": "root"}]),
    ("blur", [{"blur_x_at": "row"}, {"blur_x_at": "tile"}]),
])
def test_column_strips_match_reference(name, placements):
    """``ty == 0``: column strips with producers per strip or as sliding windows down it
    (Mullapudi2016's structure); the code, the schedule knobs and the result agree."""
    from annpred.halide.runtime import compile_schedule
    from annpred.threads import fix_threads

    fix_threads(2)
    p = get(name)
    sizes = p.parse_size("528,272")  # not a multiple of the strip width: shifted last strip
    inputs = p.make_inputs(sizes, seed=1)
    ref = p.reference(inputs)
    for extra in placements:
        s = {"tx": 64, "ty": 0, "vec": 8, "par": "y", **extra}
        assert p.space.valid(s)
        assert not p.space.valid({**s, "par": "tiles"})  # the same schedule as par=y
        assert not p.space.valid({**s, "tx": 0})  # one strip of the whole image
        assert "reorder(xi, y, xo)" in p.schedule_code(s)
        out = compile_schedule(p, s)(*inputs)
        np.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-4, err_msg=str(s))


def test_buffer_feature_sees_strips():
    W, H = 1024, 512
    s = {"tx": 64, "ty": 0, "vec": 8, "group": 1, "stage_at": "tile", "par": "y"}
    assert _complexity("stencil_chain", f"{W},{H}", s)["buffer"] == 4 * 74 * (H + 10)
    assert _complexity("stencil_chain", f"{W},{H}", {**s, "stage_at": "row"})["buffer"] == \
        4 * 3 * 74
    m = {"tx": 64, "ty": 0, "vec": 8, "vert_at": "root", "vsteps": "inline",
         "hsteps_at": "inline", "par": "y"}
    assert _complexity("max_filter", f"{W},{H}", m)["buffer"] == 4 * W * H
    assert _complexity("max_filter", f"{W},{H}", {**m, "ty": 8, "hsteps_at": "tile"})[
        "buffer"] == 4 * W * H + 16 * 79 * 8


def test_conv_layer_reference_is_a_relu_of_a_3x3_convolution():
    """Against a direct loop over every output on a tiny layer (and ReLU clips at 0)."""
    p = get("conv_layer")
    inp, filt, bias = p.make_inputs({"W": 5, "H": 3, "C": 4}, seed=2)
    ref = p.reference([inp, filt, bias])
    n, h, w, c = ref.shape
    assert (n, h, w, c) == (2, 3, 5, 4)
    for b in range(n):
        for y in range(h):
            for x in range(w):
                for co in range(c):
                    v = bias[co] + sum(float(inp[b, y + dy, x + dx, ci]) * filt[dy, dx, ci, co]
                                       for dy in range(3) for dx in range(3) for ci in range(c))
                    assert ref[b, y, x, co] == pytest.approx(max(v, 0.0), abs=1e-5)
    assert (ref == 0).any() and (ref > 0).any()
    assert p.sizes_of([inp, filt, bias]) == {"W": 5, "H": 3, "C": 4}


def test_conv_layer_schedules_and_complexity():
    from annpred.halide.runtime import compile_schedule
    from annpred.threads import fix_threads

    fix_threads(2)
    p = get("conv_layer")
    sizes = p.parse_size("24,6,64")
    inputs = p.make_inputs(sizes, seed=0)
    ref = p.reference(inputs)
    for extra in ({"conv_at": "block", "red": "taps_inner", "par": "y"},
                  {"conv_at": "row", "red": "ci_inner", "par": "co"},
                  {"conv_at": "root", "red": "ci_inner", "par": "y"}):
        s = {"vec": 8, "cb": 2, "xb": 4, "unroll_r": 1, **extra}
        out = compile_schedule(p, s)(*inputs)
        np.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-4, err_msg=str(s))
    assert not p.space.valid({"vec": 8, "cb": 2, "xb": 4, "unroll_r": 2, "conv_at": "row",
                              "red": "taps_inner", "par": "y"})
    s = {"vec": 16, "cb": 2, "xb": 4, "unroll_r": 1, "conv_at": "block", "red": "ci_inner",
         "par": "y"}
    c = _complexity("conv_layer", "32,16,64", s)
    assert c["flops"] == 2 * 9 * 2 * 32 * 16 * 64 * 64
    assert c["acc_bytes"] == 4 * 16 * 2 * 4
    assert _complexity("conv_layer", "32,16,64", {**s, "conv_at": "root"})["acc_bytes"] == \
        4 * 2 * 32 * 16 * 64


def test_size_pool_rounds_small_ranges():
    """Round sizes fall back to a smaller power of two where 256 does not fit the range
    (conv_layer's 16..96 pixels); large ranges keep multiples of 256."""
    from annpred.halide.profile import size_pool

    pool = size_pool(get("conv_layer"), 24, seed=0)
    for s in pool:
        assert get("conv_layer").in_range(s)
    assert all(s["C"] % 64 == 0 for s in pool[12:])
    assert all(s["W"] % 256 == 0 for s in size_pool(get("blur"), 24, seed=0)[12:])


@pytest.mark.parametrize("name", ["blur", "harris", "max_filter", "stencil_chain", "unsharp"])
def test_one_schedule_has_one_encoding(name):
    """Whole-row tiles (tx=0) with par=tiles apply the same directives as par=y: the space
    maps both to one schedule, so they share features and code, and sampling does not
    return both."""
    from annpred.halide.space import key_of

    p = get(name)
    s = next(c for c in p.space.sample(400, seed=3) if c["tx"] == 0)
    a, b = {**s, "par": "tiles"}, {**s, "par": "y"}
    assert p.space.check(a) == p.space.check(b) == b
    size = p.example_size()
    assert p.features(p.parse_size(size), a) == p.features(p.parse_size(size), b)
    assert p.schedule_code(a) == p.schedule_code(b)
    keys = [key_of(c) for c in p.space.sample(400, seed=3)]
    assert len(keys) == len(set(keys))
    assert all(not (c["tx"] == 0 and c["par"] == "tiles") for c in p.space.sample(400, seed=3))
    # a tiled schedule keeps its parallel choice
    t = next(c for c in p.space.sample(400, seed=3) if c["tx"] != 0 and c["par"] == "tiles")
    assert p.space.check(t)["par"] == "tiles"


def test_conv_layer_complexity_counts_blocks_loads_and_spills():
    from annpred.spec.machine import vector_registers

    regs = vector_registers()
    blk = {"vec": 16, "cb": 4, "xb": 4, "conv_at": "block", "red": "ci_inner", "par": "y",
           "unroll_r": 1}
    c = _complexity("conv_layer", "32,32,96", blk)
    # C = 96 in blocks of 64 channels: two blocks, the second shifted inwards (128 computed)
    assert c["flops"] == 36 * 32 * 32 * 96 * 128
    assert _complexity("conv_layer", "32,32,128", blk)["flops"] == 36 * 32 * 32 * 128 * 128
    # 4 filter vectors + 4 broadcasts per 16 multiply-adds of 16 lanes
    assert c["loads"] == pytest.approx(18 * 32 * 32 * 96 * 96 / 16 * 8 / 16)
    narrow = _complexity("conv_layer", "32,32,96", {**blk, "cb": 1, "xb": 8})
    assert narrow["loads"] > c["loads"]  # 9 loads per 8 multiply-adds
    assert c["spill"] == max(0, 16 + 4 + 1 - regs)
    big = _complexity("conv_layer", "32,32,96", {**blk, "xb": 8})  # 32 accumulators
    assert big["spill"] == 32 + 4 + 1 - regs > 0
    # accumulators in memory: no register block to spill, three loads per multiply-add
    row = _complexity("conv_layer", "32,32,96", {**blk, "xb": 8, "conv_at": "row"})
    assert row["spill"] == 0
    assert row["loads"] == pytest.approx(18 * 32 * 32 * 96 * 96 / 16 * 3)


def test_vector_registers_follow_the_isa():
    from annpred.spec.machine import vector_registers

    assert vector_registers({"isa": ["sse4_2", "avx", "avx2", "fma"]}) == 16
    assert vector_registers({"isa": ["avx2", "avx512f"]}) == 32
    assert vector_registers({"arch": "aarch64", "isa": ["asimd"]}) == 32
