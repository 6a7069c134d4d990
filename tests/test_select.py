"""annpred.select: choose (vectorised, cached, guarded), dispatch, feedback, CLI.

Deterministic and fast: the models are tiny networks trained on synthetic runtimes into
temporary directories; nothing here times anything (latency lives in experiments/)."""
import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from annpred.spec import hardware as hw
from annpred import select
from annpred.runtime import choice as _choice
from annpred.runtime import choose as _choose
from annpred.spec.catalog import get_kernel
from annpred.errors import AnnpredError, ParameterError, UnknownKernelError
from annpred.runtime.predictor import Predictor, load_models, resolve_models
from annpred.select import Candidate, Choice, Feedback, choose, dispatch

from conftest import HERE, run_cli
from synthetic_models import (load_toy_kernel, log_points, make_matvec_models, make_toy_models, toy_runtime,
                              train_save)

T1, T2 = hw.cpu_id(1), hw.cpu_id(2)
FOREIGN = "cpu-some-other-cpu-t1"
GPU = "cuda-fake-gpu"


def _load_toy():
    return load_toy_kernel("toy_kernel_for_select")


@pytest.fixture(scope="module")
def toy_models(tmp_path_factory):
    _load_toy()
    root = tmp_path_factory.mktemp("toy_models")
    hws = {T1: 1, FOREIGN: 1}
    if hw.cpu_count() >= 2:
        hws[T2] = 2
    make_toy_models(root, hws)
    return root


@pytest.fixture(scope="module")
def matvec_models(tmp_path_factory):
    root = tmp_path_factory.mktemp("matvec_models")
    hws = {T1: 1}
    if hw.cpu_count() >= 2:
        hws[T2] = 2
    make_matvec_models(root, hws)
    return root


@pytest.fixture(autouse=True)
def _clean_config():
    yield
    _choice._DEFAULTS.clear()
    select.set_policy("strict")


def test_choice_matches_each_models_own_prediction(toy_models):
    pred = load_models(toy_models)
    for n in (16, 100, 1000, 1999, 2500, 4096):
        c = choose("toy", {"n": n}, models=toy_models)
        assert isinstance(c, Choice)
        assert not c.fallback and c.all_in_range
        for cand, s in c.predicted.items():
            ref = pred.predict("toy", cand.variant, {"n": n}, hardware=cand.hardware).seconds
            assert s == pytest.approx(ref, rel=1e-9)
        assert c.seconds == min(c.predicted.values())
        assert c.best == min(c.predicted, key=c.predicted.get)


def test_choice_follows_the_crossover_and_thread_count(toy_models):
    small = choose("toy", {"n": 64}, models=toy_models)
    large = choose("toy", {"n": 4000}, models=toy_models)
    assert small.variant == "cumsum" and large.variant == "accumulate"
    assert small.hardware == T1 and small.threads == 1  # two threads only add overhead here


def test_default_candidates_are_present_hardware_only(toy_models):
    c = choose("toy", {"n": 500}, models=toy_models)
    hws = {cand.hardware for cand in c.predicted}
    assert FOREIGN not in hws
    assert T1 in hws
    if hw.cpu_count() >= 2:
        assert T2 in hws
    assert {cand.variant for cand in c.predicted} == {"cumsum", "accumulate", "sleepy"}


def test_explicit_candidates_and_string_forms(toy_models):
    c = choose("toy", {"n": 3000}, candidates=[f"cumsum@{T1}", ("sleepy", T1)],
               models=toy_models)
    assert list(c.predicted) == [Candidate("cumsum", T1), Candidate("sleepy", T1)]
    assert c.best == ("cumsum", T1)
    # a foreign machine's models can be asked explicitly (e.g. to plan for another node);
    # measured elsewhere, they are trusted only on request (issue 13)
    foreign = [("cumsum", FOREIGN), ("accumulate", FOREIGN)]
    c = choose("toy", {"n": 3000}, candidates=foreign, models=toy_models)
    assert c.fallback and "another machine" in c.reason
    c = choose("toy", {"n": 3000}, candidates=foreign, models=toy_models, trust_machine=True)
    assert c.variant == "accumulate" and c.hardware == FOREIGN


def test_missing_model_falls_back_to_configured_default(toy_models):
    cands = [("cumsum", T1), ("accumulate", "cpu-nowhere-t8")]
    c = choose("toy", {"n": 3000}, candidates=cands, models=toy_models)
    assert c.fallback
    assert "no model for accumulate@cpu-nowhere-t8" in c.reason
    assert c.predicted[Candidate("accumulate", "cpu-nowhere-t8")] is None
    assert c.best == ("cumsum", T1)  # the kernel's first variant, on the candidates' hardware
    select.set_default("toy", "sleepy")
    c = choose("toy", {"n": 3000}, candidates=cands, models=toy_models)
    assert c.fallback and c.variant == "sleepy"
    c = choose("toy", {"n": 3000}, candidates=cands, models=toy_models,
               default=f"accumulate@{T1}")
    assert c.best == ("accumulate", T1)
    # the "trusted" policy takes the best candidate that has a model
    c = choose("toy", {"n": 3000}, candidates=cands, models=toy_models, policy="trusted")
    assert not c.fallback and c.best == ("cumsum", T1) and "no model" in c.reason


def test_out_of_training_range_is_reported_and_not_trusted(tmp_path):
    _load_toy()
    X = pd.DataFrame({"n": np.round(np.exp(np.linspace(np.log(16), np.log(1000), 40)))})
    for v in ("cumsum", "accumulate"):
        train_save(tmp_path, "toy", v, T1, X, toy_runtime(v, X["n"]), complexity={"work": "n"})
    inside = choose("toy", {"n": 500}, models=tmp_path)
    assert not inside.fallback and inside.all_in_range
    c = choose("toy", {"n": 3000}, models=tmp_path)  # valid for the kernel, beyond training
    assert c.fallback and not any(c.in_range.values())
    assert "n=3000 outside [" in c.reason
    assert c.best == ("cumsum", T1)
    assert c.predicted_best is not None  # the extrapolation is still shown
    oor = c.out_of_range()
    (v, (lo, hi)), = oor[Candidate("cumsum", T1)].values()
    assert v == 3000 and lo < 16 and 1000 < hi < 1300  # the range widened by the margin
    # the margin: just beyond the sampled range is trusted, far beyond is not; 0 is strict
    assert not choose("toy", {"n": 1100}, models=tmp_path).fallback
    select.set_margin(0)
    try:
        c0 = choose("toy", {"n": 1100}, models=tmp_path)
        assert c0.fallback and "n=1100 outside [16, 1000]" in c0.reason
    finally:
        select.set_margin(_choice.DEFAULT_MARGIN)
    ex = choose("toy", {"n": 3000}, models=tmp_path, policy="extrapolate")
    assert not ex.fallback and ex.best == ex.predicted_best


def test_unknown_kernel_and_bad_parameters_give_clear_errors(toy_models):
    with pytest.raises(UnknownKernelError, match="unknown kernel 'nope'.*known kernels"):
        choose("nope", {"n": 1}, models=toy_models)
    with pytest.raises(ParameterError, match="invalid"):
        choose("toy", {"n": 0}, models=toy_models)
    # beyond the catalog domain is valid: flagged as outside the training range, policy decides
    far = choose("toy", {"n": 10 ** 6}, models=toy_models)
    assert far.fallback and "outside" in far.reason and not any(far.in_range.values())
    assert not choose("toy", {"n": 10 ** 6}, models=toy_models, policy="extrapolate").fallback
    with pytest.raises(ParameterError, match="unknown parameter"):
        choose("toy", {"n": 100, "q": 1}, models=toy_models)
    with pytest.raises(ParameterError, match="missing parameter 'n'"):
        choose("toy", {}, models=toy_models)
    with pytest.raises(ParameterError, match="not a number"):
        choose("toy", {"n": "many"}, models=toy_models)
    with pytest.raises(UnknownKernelError, match="no variant 'gpu'"):
        choose("toy", {"n": 100}, candidates=[("gpu", T1)], models=toy_models)
    with pytest.raises(ParameterError, match="policy"):
        choose("toy", {"n": 100}, models=toy_models, policy="yolo")
    with pytest.raises(ParameterError, match="variant@hardware"):
        choose("toy", {"n": 100}, candidates=["cumsum"], models=toy_models)


def test_no_models_here_says_where_it_looked(tmp_path):
    _load_toy()
    X = log_points({"n": (16, 4096, "int")}, 20, 0)
    too_many = f"cpu-some-other-cpu-t{hw.cpu_count() + 1}"  # more threads than cores here
    train_save(tmp_path, "toy", "cumsum", too_many, X, toy_runtime("cumsum", X["n"]))
    with pytest.raises(select.NoCandidatesError, match=f"models exist for: {too_many}"):
        choose("toy", {"n": 100}, models=tmp_path)
    # another processor's model can run here: a candidate, flagged and untrusted (issue 13)
    train_save(tmp_path, "toy", "cumsum", FOREIGN, X, toy_runtime("cumsum", X["n"]))
    c = choose("toy", {"n": 100}, models=Predictor([tmp_path]))
    assert list(c.predicted) == [Candidate("cumsum", FOREIGN)] and c.fallback
    assert c.machine_match[Candidate("cumsum", FOREIGN)] is False


def test_mixed_architectures_are_stacked_exactly(tmp_path):
    """Different widths, depths, activations, skip paths, input transforms and complexity
    features (same name, different text) in one candidate set."""
    _load_toy()
    X = log_points({"n": (16, 4096, "int")}, 50, 1)
    specs = {
        "cumsum": dict(complexity={"work": "n", "factors": "n*sopfr(n) + lpf(n)"}, hidden=(3,)),
        "accumulate": dict(complexity={"work": "n*log(n, 2)", "root": "sqrt(n)"},
                           hidden=(2, 2), skip=False),
        "sleepy": dict(complexity={"work": "max(n, 100)"}, hidden=(4,), activation="relu",
                       input_transform="identity"),
    }
    for v, kw in specs.items():
        train_save(tmp_path, "toy", v, T1, X, toy_runtime(v, X["n"]), **kw)
    pred = Predictor([tmp_path])
    for n in (16, 77, 640, 4096):
        c = choose("toy", {"n": n}, models=pred)
        assert len(c.predicted) == 3
        for cand, s in c.predicted.items():
            ref = pred.predict("toy", cand.variant, {"n": n}, hardware=cand.hardware).seconds
            assert s == pytest.approx(ref, rel=1e-9), cand


def test_plans_are_cached_per_models_kernel_and_candidates(toy_models):
    pred = resolve_models(toy_models)
    spec = get_kernel("toy")
    p1 = _choose._plan(pred, "toy", spec, None)
    assert _choose._plan(pred, "toy", spec, None) is p1
    p2 = _choose._plan(pred, "toy", spec, [("cumsum", T1)])
    assert p2 is not p1 and _choose._plan(pred, "toy", spec, [("cumsum", T1)]) is p2
    assert resolve_models(toy_models) is pred


def test_cuda_candidates_pay_the_transfer(toy_models, tmp_path):
    X = log_points({"n": (16, 4096, "int")}, 30, 2)
    for v in ("cumsum", "accumulate"):
        train_save(tmp_path, "toy", v, T1, X, toy_runtime(v, X["n"]))
    train_save(tmp_path, "toy", "accumulate", GPU, X, 1e-7 + 0 * toy_runtime(v, X["n"]))
    cands = [("cumsum", T1), ("accumulate", GPU)]
    # the fake GPU is not installed here: its model is trusted only on request (issue 13)
    assert choose("toy", {"n": 64}, candidates=cands, models=tmp_path).fallback
    no_copy = choose("toy", {"n": 64}, candidates=cands, models=tmp_path, trust_machine=True)
    assert no_copy.hardware == GPU
    nbytes = 1e9
    c = choose("toy", {"n": 64}, candidates=cands, models=tmp_path, transfer_bytes=nbytes,
               trust_machine=True)
    t = select.TRANSFER.seconds(nbytes)
    assert c.transfer_s == {Candidate("accumulate", GPU): t}
    assert c.predicted[Candidate("accumulate", GPU)] == pytest.approx(
        no_copy.predicted[Candidate("accumulate", GPU)] + t)
    assert c.hardware == T1  # moving a gigabyte costs more than computing on the CPU


def test_repeated_shapes_are_memoised_until_the_configuration_changes(toy_models):
    a = choose("toy", {"n": 321}, models=toy_models)
    assert choose("toy", {"n": 321}, models=toy_models) is a
    fresh = choose("toy", {"n": 321}, models=toy_models, memo=False)
    assert fresh is not a and fresh == a
    assert choose("toy", {"n": 321}, models=toy_models, policy="trusted") is not a
    select.set_default("toy", "sleepy")
    assert choose("toy", {"n": 321}, models=toy_models) is not a


def test_to_dict_is_json(toy_models):
    d = choose("toy", {"n": 123}, models=toy_models).to_dict()
    d2 = json.loads(json.dumps(d))
    assert {"variant", "hardware", "predicted", "in_range"} <= set(d2)
    assert all(isinstance(k, str) and "@" in k for k in d2["predicted"])


# -- dispatch --------------------------------------------------------------------------------
def test_dispatch_runs_the_choice_and_equals_the_reference(matvec_models):
    import scipy.sparse as sp

    k = get_kernel("matvec")
    rng = np.random.default_rng(0)
    for p in ({"m": 300, "n": 200, "density": 1.0}, {"m": 2000, "n": 1500, "density": 0.002}):
        inputs = k.make_inputs(p, rng)
        ref = k.reference(inputs, p)
        out, choice = dispatch("matvec", inputs["A"], inputs["x"], models=matvec_models,
                               return_choice=True)
        assert isinstance(out, np.ndarray)
        np.testing.assert_allclose(out, ref, rtol=1e-3, atol=1e-3)
        assert choice.params["m"] == p["m"] and choice.params["n"] == p["n"]
        assert choice.params["density"] == pytest.approx(p["density"], rel=0.05)
    assert choice.variant == "sparse"  # 0.2% dense: the synthetic sparse model wins
    # scipy sparse and float64 operands, keyword operands
    A = sp.random(400, 300, density=0.01, format="csr", random_state=1, dtype=np.float64)
    x = rng.standard_normal(300)
    out, c = dispatch("matvec", A, x=x, models=matvec_models, return_choice=True)
    np.testing.assert_allclose(out, A @ x, rtol=1e-4, atol=1e-4)
    assert c.params["density"] == pytest.approx(0.01, rel=0.01)
    # forcing a dense variant densifies the sparse operand
    out = dispatch("matvec", A, x, models=matvec_models, candidates=[("numpy", T1)])
    np.testing.assert_allclose(out, A @ x, rtol=1e-4, atol=1e-4)


def test_dispatch_reads_options_and_defaults_for_what_operands_do_not_say(tmp_path):
    from synthetic_models import train_save as ts

    k = get_kernel("maxpool")
    X = pd.DataFrame([{"n": n, "w": w, "s": s, "c": c} for n in (8, 32, 128, 256)
                      for w in (1, 2, 3, 5) for s in (1, 2, 4) for c in (1, 4, 16)])
    y = 1e-6 + 1e-9 * X.c * X.n ** 2 * X.w
    ts(tmp_path, "maxpool", "numpy", T1, X, y.to_numpy(), complexity=k.complexity_for("numpy"))
    x = np.random.default_rng(0).standard_normal((3, 40, 40)).astype(np.float32)
    for kw, (w, s) in (({}, (2, 2)), ({"w": 3}, (3, 2)), ({"w": 3, "s": 1}, (3, 1))):
        out, c = dispatch("maxpool", x, models=tmp_path, return_choice=True, **kw)
        assert (c.params["w"], c.params["s"]) == (w, s)
        np.testing.assert_array_equal(out, k.reference({"x": x}, c.params))
    with pytest.raises(ParameterError, match="maxpool"):
        dispatch("maxpool", np.zeros((3, 40, 41), np.float32), models=tmp_path)


def test_dispatch_errors(matvec_models):
    with pytest.raises(ParameterError, match="inner|entries|cannot infer"):
        dispatch("matvec", np.zeros((4, 5), np.float32), np.zeros(6, np.float32),
                 models=matvec_models)
    with pytest.raises(ParameterError, match="dispatch"):
        dispatch("matvec", np.zeros((40, 50), np.float32), models=matvec_models)
    with pytest.raises(UnknownKernelError):
        dispatch("nope", np.zeros(3), models=matvec_models)


def test_feedback_records_reports_and_writes_a_trainable_csv(matvec_models, tmp_path):
    from annpred.data.profiles import load_profiles

    k = get_kernel("matvec")
    fb = Feedback(threshold=0.25)
    rng = np.random.default_rng(3)
    for i in range(10):
        p = {"m": int(rng.integers(100, 800)), "n": int(rng.integers(100, 800)),
             "density": 1.0}
        inp = k.make_inputs(p, rng)
        dispatch("matvec", inp["A"], inp["x"], models=matvec_models, feedback=fb)
    assert len(fb.records) == 10
    r = fb.records[0]
    assert r.measured_s > 0 and r.predicted_s > 0 and r.ratio == r.measured_s / r.predicted_s
    rep = fb.report()
    assert rep["calls"] == 10 and rep["off"] == len(fb.off())
    assert all(abs(x.ratio - 1) > 0.25 for x in fb.off())
    assert len(fb.off(threshold=1e9)) == 0
    path = fb.to_csv(tmp_path / "fb.csv")
    df = load_profiles([path])
    assert len(df) == 10 and set(df["kernel"]) == {"matvec"}
    assert np.allclose(sorted(df["runtime_s"]), sorted(x.measured_s for x in fb.records))


def test_feedback_refit_trains_models_from_the_recorded_calls(matvec_models, tmp_path):
    k = get_kernel("matvec")
    fb = Feedback()
    rng = np.random.default_rng(4)
    for i in range(12):
        p = {"m": int(rng.integers(16, 600)), "n": int(rng.integers(16, 600)), "density": 1.0}
        inp = k.make_inputs(p, rng)
        dispatch("matvec", inp["A"], inp["x"], models=matvec_models, feedback=fb,
                 candidates=[("numpy", T1)])
    reports = fb.refit(tmp_path / "refit", max_epochs=100, n_init=1)
    assert [(r.kernel, r.variant, r.hardware) for r in reports] == [("matvec", "numpy", T1)]
    c = choose("matvec", {"m": 100, "n": 100, "density": 1.0}, models=tmp_path / "refit",
               policy="extrapolate")
    assert c.best == ("numpy", T1) and c.seconds > 0
    with pytest.raises(AnnpredError, match="nothing to refit"):
        Feedback().refit(tmp_path / "none")


# -- CLI and import hygiene -------------------------------------------------------------------
def _env(**extra):
    env = dict(os.environ)
    env["ANNPRED_KERNELS"] = str(HERE / "toy_kernel.py")
    env.update(extra)
    return env


def test_cli_choose_json_and_text(toy_models):
    r = run_cli(["choose", "toy", "--models", toy_models, "--json", "n=3000"], env=_env())
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert d["variant"] == "accumulate" and d["hardware"] == T1
    assert all(d["in_range"].values()) and f"cumsum@{T1}" in d["predicted"]
    r = run_cli(["choose", "toy", "n=100", "--models", toy_models], env=_env())
    assert r.returncode == 0 and "choice: cumsum" in r.stdout
    r = run_cli(["choose", "toy", "--models", toy_models, "n=10000000"], env=_env())
    assert r.returncode == 0 and "fallback" in r.stdout and "outside" in r.stderr
    r = run_cli(["choose", "toy", "--models", toy_models, "n=-3"], env=_env())
    assert r.returncode == 2 and "invalid" in r.stderr
    r = run_cli(["choose", "nokernel", "--models", toy_models, "n=1"], env=_env())
    assert r.returncode == 2 and "unknown kernel" in r.stderr
    r = run_cli(["choose", "toy", "--models", toy_models, "--candidate", f"cumsum@{T1}",
                 "--candidate", "accumulate@cpu-elsewhere-t4", "n=100"], env=_env())
    assert r.returncode == 0 and "fallback" in r.stdout and "no model" in r.stderr


def test_choose_never_imports_torch_or_halide(toy_models, matvec_models):
    code = (
        "import sys, annpred\n"
        f"c = annpred.choose('toy', {{'n': 100}}, models={str(toy_models)!r})\n"
        f"d = annpred.choose('matvec', {{'m': 100, 'n': 50, 'density': 0.1}}, "
        f"models={str(matvec_models)!r})\n"
        "bad = [m for m in ('torch', 'halide', 'sklearn') if m in sys.modules]\n"
        "print(c.variant, d.variant, bad)\n"
        "sys.exit(1 if bad else 0)\n")
    r = subprocess.run([sys.executable, "-c", code], env=_env(), capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr


def test_dispatch_beyond_the_catalog_domain_runs_and_flags_the_extrapolation():
    """A 1024x1024 product once raised 'outside its domain [8, 768]' even with extrapolate."""
    from annpred.model.layout import shipped_root

    rng = np.random.default_rng(0)
    A = rng.random((1024, 1024), dtype=np.float32)
    B = rng.random((1024, 1024), dtype=np.float32)
    cands = ["numpy@cpu-amd-epyc-t1", "torch@cpu-amd-epyc-t1"]
    C, c = dispatch("matmul", A, B, models=str(shipped_root()), candidates=cands,
                    return_choice=True)
    np.testing.assert_allclose(C, A @ B, rtol=1e-3, atol=1e-2)
    if c.params["m"] > max(1024 / 1.5, 1):  # the shipped models were trained up to 768
        assert c.fallback and "outside" in c.reason
    _, ex = dispatch("matmul", A, B, models=str(shipped_root()), candidates=cands,
                     policy="extrapolate", return_choice=True)
    assert not ex.fallback and ex.seconds > 0


def test_a_bad_default_is_refused_at_once_even_when_not_needed(toy_models):
    cands = [("cumsum", T1), ("accumulate", T1)]
    ok = choose("toy", {"n": 3000}, candidates=cands, models=toy_models)
    assert not ok.fallback  # the default is not needed here, and still checked:
    with pytest.raises(ParameterError, match="hardware 'nohw' is neither a candidate's"):
        choose("toy", {"n": 3000}, candidates=cands, models=toy_models, default="cumsum@nohw")
    with pytest.raises(UnknownKernelError, match="no variant 'nosuch'"):
        choose("toy", {"n": 3000}, candidates=cands, models=toy_models, default=f"nosuch@{T1}")
    # a candidate's hardware, or one present here, is a valid fallback
    assert choose("toy", {"n": 3000}, candidates=cands, models=toy_models,
                  default=f"accumulate@{T1}").best == ok.best
