"""annpred.halide: schedule spaces, correctness of every sampled schedule, autoscheduler
harness, prediction-based selection and the ``annpred halide tune`` CLI (small and fast)."""
from __future__ import annotations

import argparse
import json

import numpy as np
import pandas as pd
import pytest

hl = pytest.importorskip("halide")

from annpred.errors import AnnpredError, ParameterError  # noqa: E402
from annpred.halide import cli as hcli  # noqa: E402
from annpred.halide.pipelines import PIPELINES, get  # noqa: E402
from annpred.halide.runtime import compile_schedule  # noqa: E402
from annpred.halide.space import key_of  # noqa: E402

SMALL = {"blur": "512,128", "matmul": "128,256,48", "unsharp": "512,128",
         "harris": "256,64", "stencil_chain": "256,256", "max_filter": "256,64",
         "iir_blur": "280,264", "conv_layer": "24,6,64"}


def test_every_pipeline_has_a_small_test_size():
    assert set(SMALL) == set(PIPELINES) and len(PIPELINES) >= 7


@pytest.fixture(scope="module", autouse=True)
def _threads():
    from annpred.threads import fix_threads

    fix_threads(2)


@pytest.mark.parametrize("name", sorted(PIPELINES))
def test_sampling_is_deterministic_and_valid(name):
    p = PIPELINES[name]
    a, b = p.space.sample(20, seed=3), p.space.sample(20, seed=3)
    assert a == b
    assert a != p.space.sample(20, seed=4)
    assert len({key_of(s) for s in a}) == 20
    for s in a:
        assert p.space.check(s) == s
        f = p.features(p.parse_size(SMALL[name]), s)
        assert list(f) == p.feature_names()


@pytest.mark.parametrize("name", sorted(PIPELINES))
def test_sampled_schedules_match_numpy_reference(name):
    p = PIPELINES[name]
    sizes = p.parse_size(SMALL[name])
    inputs = p.make_inputs(sizes, seed=0)
    ref = p.reference(inputs)
    default = [None] if p.default_schedule_ok else []
    for s in default + p.space.sample(4, seed=11):
        c = compile_schedule(p, s)
        out = c(*inputs)
        np.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-4,
                                   err_msg=f"{name} schedule {s}")


def test_printed_schedule_code_runs_and_matches():
    p = PIPELINES["matmul"]
    s = {"vec": 8, "bj": 2, "nbx": 2, "bi": 4, "ty": 16, "prod_at": "block", "par": "y",
         "unroll_k": 2, "pack_b": 1}
    code = p.schedule_code(s)
    assert "prod.compute_at(out, xio)" in code and "B.in_()" in code
    ns: dict = {}
    exec(compile(code, "<schedule>", "exec"), ns)  # our own generated code
    sizes = p.parse_size("128,256,32")
    a, b = p.make_inputs(sizes)
    fn = ns["pipeline"].compile_to_callable([ns["A"], ns["B"]],
                                            hl.get_jit_target_from_environment())
    out = np.empty((128, 256), np.float32)
    fn(hl.Buffer(a), hl.Buffer(b), hl.Buffer(out))
    np.testing.assert_allclose(out, p.reference([a, b]), rtol=1e-4, atol=1e-4)


def test_bad_sizes_and_schedules():
    p = get("blur")
    with pytest.raises(ParameterError, match="W,H"):
        p.parse_size("1,2,3")
    with pytest.raises(ParameterError):
        p.parse_size("abc,5")
    with pytest.raises(ParameterError, match="smallest"):
        p.parse_size("8,8")
    with pytest.raises(ParameterError, match="blur, conv_layer, harris, iir_blur, matmul"):
        get("sobel")
    with pytest.raises(ParameterError):
        p.space.check({"tx": 3})
    assert p.parse_size("1024") == {"W": 1024, "H": 1024}


def test_autoscheduler_harness_runs():
    from annpred.halide.autoschedule import autoschedule

    p = get("blur")
    sizes = p.parse_size("512,128")
    inputs = p.make_inputs(sizes)
    c = autoschedule(p, sizes, "mullapudi2016", parallelism=2)
    assert c.method == "mullapudi2016" and c.tuning_s >= 0 and c.source
    np.testing.assert_allclose(c(*inputs), p.reference(inputs), rtol=1e-4, atol=1e-4)
    with pytest.raises(ParameterError, match="adams2019"):
        autoschedule(p, sizes, "nope")


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    """A small model on synthetic runtimes (fast): work x a per-knob factor."""
    from annpred.halide.select import save_schedule_model, train_model

    p = get("blur")
    rng = np.random.default_rng(0)
    rows = []
    for s in p.space.sample(40, seed=1):
        for sz in p.sample_sizes(3, seed=len(rows)):
            t = 1e-9 * sz["W"] * sz["H"] * (3.0 if s["par"] == "none" else 1.0) \
                * (16 / s["vec"]) ** 0.5 * (1 + 0.05 * rng.standard_normal())
            rows.append({"variant": key_of(s), **sz, "runtime_s": abs(t), "pass": 1})
    model = train_model(p, pd.DataFrame(rows), max_epochs=300, patience=50, n_init=1)
    d = tmp_path_factory.mktemp("models")
    save_schedule_model(model, p, d / "blur.json")
    return d


def test_select_schedule_returns_compiled_runnable(tiny_model):
    from annpred.halide.select import select_schedule

    p = get("blur")
    c = select_schedule("blur", "512,128", candidates=16, models=tiny_model)
    assert c.method == "annpred" and c.schedule is not None and c.callable is not None
    assert len(c.info["candidates"]) == 16
    preds = [x["predicted_s"] for x in c.info["candidates"]]
    assert c.info["predicted_s"] == min(preds)
    # the synthetic truth penalises serial schedules; the model learned that
    assert c.schedule["par"] != "none"
    inputs = p.make_inputs(p.parse_size("512,128"))
    np.testing.assert_allclose(c(*inputs), p.reference(inputs), rtol=1e-4, atol=1e-4)


def _run_cli(argv):
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="command")
    hcli.register(sub)
    args = ap.parse_args(argv)
    return args.func(args)


def test_cli_tune_prints_schedule(tiny_model, capsys):
    rc = _run_cli(["halide", "tune", "blur", "--size", "512,128", "--candidates", "8",
                   "--models", str(tiny_model), "--json"])
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    assert out["pipeline"] == "blur" and out["size"] == "512x128"
    assert "blur_y.tile(" in out["code"]
    rc = _run_cli(["halide", "tune", "blur", "--size", "512,128", "--candidates", "8",
                   "--models", str(tiny_model), "--print-schedule"])
    assert rc == 0 and "import halide as hl" in capsys.readouterr().out


def test_cli_errors(tiny_model):
    with pytest.raises(ParameterError, match="known pipelines: blur, conv_layer, harris, iir_blur"):
        _run_cli(["halide", "tune", "sobel", "--size", "512,512"])
    with pytest.raises(ParameterError, match="W,H"):
        _run_cli(["halide", "tune", "blur", "--size", "1,2,3", "--models", str(tiny_model)])
    with pytest.raises(AnnpredError, match="no schedule model"):
        _run_cli(["halide", "tune", "unsharp", "--size", "512,512", "--models",
                  str(tiny_model)])


def test_import_annpred_does_not_import_halide():
    import subprocess
    import sys

    code = ("import sys, annpred, annpred.halide.cli; "
            "print('halide' in sys.modules, 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.split()
    assert out == ["False", "False"]


@pytest.mark.cuda
def test_cuda_autoscheduler_anderson2021():
    from annpred.spec import hardware

    if not hardware.cuda_available():
        pytest.skip("no CUDA GPU")
    from annpred.halide.gpu import compare_size

    rows = compare_size("blur", {"W": 1024, "H": 1024}, candidates=4, rounds=1)
    assert {r["method"] for r in rows} >= {"annpred", "anderson2021"}


@pytest.mark.parametrize("name", ["blur", "matmul", "unsharp"])
def test_gpu_schedules_lower_for_cuda_without_a_gpu(name, tmp_path):
    """GPU schedule spaces generate PTX on any machine; running them needs CUDA."""
    from annpred.halide.gpu import gpu_space, lower_gpu

    s = gpu_space(name).sample(2, seed=0)
    assert s == gpu_space(name).sample(2, seed=0)
    for i, sched in enumerate(s):
        path = tmp_path / f"{name}{i}.stmt"
        lower_gpu(name, sched, str(path))
        assert "gpu_block" in path.read_text() or "cuda" in path.read_text()


def _complexity_values(name, sizes, schedule):
    from annpred.spec import expr

    p = get(name)
    f = p.features(p.parse_size(sizes), schedule)
    vals = {k: np.array([v]) for k, v in f.items()}
    return {n: float(expr.evaluate(e, vals)[0]) for n, e in p.complexity.items()}


def test_unsharp_complexity_counts_what_the_schedule_recomputes():
    """work = pixels x flops per output pixel, with recompute of inline / tiled stages."""
    base = {"tx": 64, "ty": 8, "vec": 8, "gray_at": "root", "blur_y_at": "root",
            "ratio_at": "tile", "ratio_chunk": 0, "par": "y"}
    W, H = 1024, 512
    px = W * H
    # every stage once per pixel: gray 5 + blur_y 13 + ratio 16 + output 3 flops
    c = _complexity_values("unsharp", f"{W},{H}", base)
    assert c["pixels"] == px
    assert c["work"] == pytest.approx(37 * px)
    assert c["traffic"] == pytest.approx((24 + 16) * px)  # two stages stored at root
    # gray inlined: evaluated per y-tap of blur_y (7) and once more for ratio
    c = _complexity_values("unsharp", f"{W},{H}", {**base, "gray_at": "inline"})
    assert c["work"] == pytest.approx((5 * 8 + 13 + 16 + 3) * px)
    assert c["traffic"] == pytest.approx((24 + 8) * px)
    # per tile: blur_y covers the x-halo of blur_x, gray the halo in both directions
    tiled = {**base, "gray_at": "tile", "blur_y_at": "tile"}
    c = _complexity_values("unsharp", f"{W},{H}", tiled)
    b, g = 70 / 64, 70 * 14 / (64 * 8)
    assert c["work"] == pytest.approx((5 * g + 13 * b + 16 + 3) * px)
    assert c["traffic"] == pytest.approx(24 * px)
    # whole-row strips (tx = 0): the halo is relative to the image width
    c = _complexity_values("unsharp", f"{W},{H}", {**tiled, "tx": 0})
    b, g = (W + 6) / W, (W + 6) * 14 / (W * 8)
    assert c["work"] == pytest.approx((5 * g + 13 * b + 16 + 3) * px)
    # ratio inlined into the output: its own work is redone per channel (3x); the stages it
    # reads stay stored per tile
    c = _complexity_values("unsharp", f"{W},{H}", {**tiled, "ratio_at": "inline"})
    b, g = 70 / 64, 70 * 14 / (64 * 8)
    assert c["work"] == pytest.approx((5 * g + 13 * b + 3 * 16 + 3) * px)


def test_schedule_model_with_another_complexity_is_refused(tiny_model, tmp_path):
    """A model trained before the pipeline's complexity changed must be retrained."""
    from annpred.errors import ModelFormatError
    from annpred.halide.select import load_schedule_model

    d = json.loads((tiny_model / "blur.json").read_text())
    load_schedule_model("blur", tiny_model / "blur.json")  # matches: loads
    d["complexity"] = {k: f"2*({v})" for k, v in d["complexity"].items()}  # same names
    bad = tmp_path / "blur.json"
    bad.write_text(json.dumps(d))
    with pytest.raises(ModelFormatError, match="retrain"):
        load_schedule_model("blur", bad)


def test_reprofile_profiles_refines_trains_and_selects_here(tmp_path, monkeypatch):
    """`halide tune --reprofile`: a bounded profile on this machine, refined, trained and
    saved where selection finds it (it used to save where no lookup looked)."""
    from annpred.halide.select import select_schedule
    from annpred.halide.store import data_path, model_path

    monkeypatch.setattr(hcli, "REPROFILE", {"n_schedules": 5, "sizes_per_schedule": 2,
                                            "n_sizes": 3})
    monkeypatch.setattr(hcli, "REPROFILE_REFINE", {"budget": 3, "rounds": 1})
    p = get("blur")
    root = hcli._reprofile(p, 2, tmp_path)
    data = data_path("blur", root, 2)
    df = pd.read_csv(data)
    assert (df["sampler"] == "refine").sum() == 3 and (df["sampler"] == "random").sum() >= 10
    assert model_path("blur", root, 2).exists()
    c = select_schedule(p, "512,512", candidates=8, models=root, threads=2, compile=False)
    assert c.info["n_candidates"] == 8 and c.info["predicted_s"] > 0
    # the estimate reads the profile beside a model (here: the one just made)
    est = hcli._reprofile_estimate(p, model_path("blur", root, 2))
    assert est is not None and est > 0
    assert hcli._reprofile_estimate(p, tmp_path / "elsewhere" / "blur.json") is None
