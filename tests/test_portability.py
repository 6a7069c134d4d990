"""Hardware identity and portability: machine descriptions, mismatch flags and warnings,
corrections (fit, storage, application in predict/choose/C export), calibrate, CSV rows.

Deterministic: models are trained on synthetic runtimes; corrections are fitted on synthetic
"measurements"; the one calibrate() run checks structure, never speed."""
import csv
import json
import shutil
import subprocess
import warnings

import numpy as np
import pandas as pd
import pytest

from annpred import select
from annpred.data.profiles import load_profiles, machine_of
from annpred.data.rows import KEY_COLUMNS, TAIL_COLUMNS, RowWriter, read_machines
from annpred.errors import MachineMismatchWarning, ModelFormatError
from annpred.model import correction as corr
from annpred.model.schema import load_model, save_model, validate
from annpred.runtime import caches
from annpred.runtime import correction as rcorr
from annpred.runtime.choose import choose
from annpred.runtime.export_c import header_text
from annpred.runtime.predictor import LoadedModel, load_models
from annpred.spec import hardware as hw
from annpred.spec import machine as mach

from conftest import run_cli
from synthetic_models import load_toy_kernel, make_toy_models, toy_runtime, log_points, TOY_RANGES

T1 = hw.cpu_id(1)
AMD_INFO = {"vendor_id": "AuthenticAMD", "cpu family": "25", "model": "1", "stepping": "1",
            "model name": "AMD EPYC 7B13", "flags": "fpu sse4_2 avx avx2 fma",
            "siblings": "2", "cpu cores": "1"}
OTHER = mach.describe_cpu(AMD_INFO, {"l2_kb": 512, "l3_kb": 32768}, 2.45, 2, "x86_64")


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("ANNPRED_MODELS", str(tmp_path / "user"))
    rcorr.reset_warnings()
    caches.clear()
    yield
    caches.clear()
    rcorr.reset_warnings()
    select.set_policy("strict")


def _toy():
    return load_toy_kernel("toy_kernel_port")


def _set_machine(path, machine):
    d = load_model(path)
    if machine is None:
        d.pop("machine", None)
    else:
        d["machine"] = machine
    save_model(d, path)


# -- identity ------------------------------------------------------------------------------
def test_machine_description_slug_and_fingerprint():
    assert OTHER["slug"] in ("amd-epyc-7b13-zen3-avx2-2.5ghz", "amd-epyc-7b13-zen3-avx2-2.4ghz")
    assert OTHER["vendor"] == "amd" and OTHER["isa"] == ["sse4_2", "avx", "avx2", "fma"]
    assert OTHER["threads_per_core"] == 2 and OTHER["l3_kb"] == 32768
    assert len(OTHER["fingerprint"]) == 12
    # the core count is not identity; the ISA and the caches are
    same = mach.describe_cpu(AMD_INFO, {"l2_kb": 512, "l3_kb": 32768}, 2.45, 64, "x86_64")
    assert same["fingerprint"] == OTHER["fingerprint"]
    wider = mach.describe_cpu({**AMD_INFO, "flags": AMD_INFO["flags"] + " avx512f"},
                              {"l2_kb": 512, "l3_kb": 32768}, 2.45, 2, "x86_64")
    assert wider["fingerprint"] != OTHER["fingerprint"] and "avx512" in wider["slug"]
    bigger = mach.describe_cpu(AMD_INFO, {"l2_kb": 1024, "l3_kb": 32768}, 2.45, 2, "x86_64")
    assert bigger["fingerprint"] != OTHER["fingerprint"]
    here = hw.machine()
    assert T1 == f"cpu-{here['slug']}-t1" and validate_machine_ok(here)


def validate_machine_ok(m):
    from annpred.model.schema import validate_machine

    return validate_machine(m, "m") is m


def test_legacy_and_new_ids_parse_and_are_present():
    assert hw.parse_id("cpu-amd-epyc-t1") == {"device": "cpu", "model": "amd-epyc", "threads": 1}
    assert hw.parse_id(T1)["threads"] == 1
    assert hw.present("cpu-amd-epyc-t1") and hw.present("cpu-some-other-cpu-t1")
    assert not hw.present(f"cpu-amd-epyc-t{hw.cpu_count() + 1}")
    # whether it was measured here is another question
    assert not hw.machine_match("cpu-amd-epyc-t1", None)  # legacy id: unknown machine
    assert hw.machine_match(T1, None)  # this machine's new id
    assert hw.machine_match("cpu-whatever-t1", hw.machine())  # the fingerprint decides
    assert not hw.machine_match(T1, OTHER)


# -- mismatch: flags, warning, choose policy -------------------------------------------------
@pytest.fixture
def foreign_models(tmp_path):
    """Toy models: one id from another (described) machine, one with a legacy id."""
    _toy()
    root = tmp_path / "models"
    out = make_toy_models(root, {"cpu-amd-epyc-zen3-t1": 1, "cpu-legacybox-t1": 1},
                          variants=("cumsum", "accumulate"))
    for (v, h), (_, path) in out.items():
        _set_machine(path, OTHER if h == "cpu-amd-epyc-zen3-t1" else None)
    return root


def test_models_from_another_machine_are_flagged_and_warned_once(foreign_models):
    pred = load_models(foreign_models)
    for key, m in pred.models.items():
        assert m.machine_match is False and not m.trusted_machine
    assert len(pred.mismatched()) == 4
    with pytest.warns(MachineMismatchWarning) as rec:
        p = pred.predict("toy", "cumsum", {"n": 100}, hardware="cpu-amd-epyc-zen3-t1")
    assert len(rec) == 1
    msg = str(rec[0].message)
    assert OTHER["slug"] in msg and hw.machine()["slug"] in msg  # names both machines
    assert p.machine_match is False and p.adapted is False
    assert p.to_dict()["machine_match"] is False
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the same source machine again: no second warning
        pred.predict("toy", "accumulate", {"n": 100}, hardware="cpu-amd-epyc-zen3-t1")
    with pytest.warns(MachineMismatchWarning, match="unknown machine"):
        pred.predict("toy", "cumsum", {"n": 100}, hardware="cpu-legacybox-t1")


def test_models_of_a_device_not_installed_here_get_a_warning_that_fits(tmp_path, monkeypatch):
    """A GPU model (e.g. trained from a Kernel Tuner cache file) on a machine without that
    GPU: the warning says so and does not suggest a calibration that cannot run here."""
    monkeypatch.setenv("ANNPRED_NO_CUDA", "1")
    hw.present.cache_clear()
    make_toy_models(tmp_path / "m", {"cuda-rtx-a4000": 1}, variants=("cumsum",))
    pred = load_models(tmp_path / "m")
    with pytest.warns(MachineMismatchWarning) as rec:
        pred.predict("toy", "cumsum", {"n": 100}, hardware="cuda-rtx-a4000")
    msg = str(rec[0].message)
    assert "cuda-rtx-a4000 is not installed here" in msg and "calibrate --quick" not in msg
    hw.present.cache_clear()


def test_choose_distrusts_unadapted_models_unless_the_user_opts_in(foreign_models):
    with pytest.warns(MachineMismatchWarning):
        c = choose("toy", {"n": 3000}, models=foreign_models)
    # one candidate per variant and thread count, even with two foreign ids
    assert len(c.predicted) == 2
    assert c.fallback and "another machine" in c.reason and "calibrate" in c.reason
    assert set(c.machine_match.values()) == {False}
    assert c.to_dict()["machine_match"] and not any(c.to_dict()["machine_match"].values())
    c2 = choose("toy", {"n": 3000}, models=foreign_models, trust_machine=True)
    assert not c2.fallback and c2.variant == "accumulate"
    c3 = choose("toy", {"n": 3000}, models=foreign_models, policy="extrapolate")
    assert not c3.fallback


def test_this_machines_models_win_over_foreign_ones(tmp_path):
    _toy()
    root = tmp_path / "models"
    make_toy_models(root, {T1: 1, "cpu-amd-epyc-t1": 1})
    c = choose("toy", {"n": 500}, models=root)
    assert {x.hardware for x in c.predicted} == {T1}
    assert not c.fallback and all(c.machine_match.values())


def test_cli_choose_json_flags_machine_and_trust_option(foreign_models, toy_env):
    r = run_cli(["choose", "toy", "n=3000", "--models", foreign_models, "--json"], env=toy_env)
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert d["fallback"] and d["machine_match"] and not any(d["machine_match"].values())
    assert r.stderr.count("annpred: warning: models of") == 1
    r = run_cli(["choose", "toy", "n=3000", "--models", foreign_models, "--trust-machine",
                 "--json"], env=toy_env)
    assert r.returncode == 0 and not json.loads(r.stdout)["fallback"]
    r = run_cli(["calibrate", "toy"], env=toy_env)
    assert r.returncode == 2 and "--quick" in r.stderr


# -- corrections ---------------------------------------------------------------------------
def test_fit_correction_picks_the_form_the_data_support():
    rng = np.random.default_rng(0)
    p = np.exp(rng.uniform(np.log(1e-6), np.log(1e-2), 30))
    noise = np.exp(rng.normal(0, 0.02, 30))
    c = corr.fit_correction(p, 2.0 * p * noise)
    assert c["form"] == "factor" and np.exp(c["offset"]) == pytest.approx(2.0, rel=0.03)
    assert c["probe_mape_before"] > 45 and c["probe_mape_after"] < 5
    drift = p * np.exp(0.2 * (np.log(p) - np.log(p).mean())) * noise  # the error grows
    c = corr.fit_correction(p, drift)
    assert c["form"] == "factor+slope" and c["slope"] == pytest.approx(0.2, abs=0.03)
    # beyond the probed runtimes the correction stays at its edge value
    edge = corr.apply_log(np.log([1e-2, 1.0]), c)
    assert edge[1] - np.log(1.0) == pytest.approx(edge[0] - np.log(1e-2), abs=1e-12)
    x = np.column_stack([np.log(p), rng.uniform(0, 3, 30)])  # inputs: runtime, and another
    shifted = p * np.exp(0.5 * x[:, 1]) * noise  # the error depends on the second input
    c = corr.fit_correction(p, shifted, x)
    assert c["form"] == "features" and c["probe_mape_after"] < 10
    with pytest.raises(ModelFormatError):
        corr.fit_correction([1e-3], [-1.0])


@pytest.mark.parametrize("sets, ok", [(None, True), (1, True), (64, True), (0, False),
                                      (2.5, False), (True, False), ("64", False)])
def test_a_correction_records_its_probes_input_sets_as_a_positive_integer(sets, ok):
    p = np.geomspace(1e-6, 1e-2, 12)
    c = {**corr.fit_correction(p, 2.0 * p), "kernel": "k", "variant": "v", "hardware": "h",
         "model_digest": "d"}
    if sets is not None:
        c["input_sets_median"] = sets
    if ok:
        assert corr.check_one(c, "c") is c
    else:
        with pytest.raises(ModelFormatError, match="c.input_sets_median"):
            corr.check_one(c, "c")


def _adapt(root, key, factor):
    """A calibration file of this machine correcting model ``key`` by ``factor``."""
    pred = load_models(root, reload=True)
    m = pred.models[key]
    c = {"kernel": key[0], "variant": key[1], "hardware": key[2],
         "model_digest": corr.model_digest(m.meta), "form": "factor",
         "offset": float(np.log(factor)), "slope": 0.0, "ref": -9.0, "lo": -12.0, "hi": -4.0,
         "n_probes": 3}
    path = corr.save(root, hw.machine(), [c])
    caches.clear()
    return path


def test_a_correction_adapts_predict_choose_and_c_export(foreign_models, tmp_path):
    key = ("toy", "cumsum", "cpu-amd-epyc-zen3-t1")
    before = LoadedModel(load_model(foreign_models / key[2] / "toy" / "cumsum.json"))
    raw = float(before.predict({"n": np.array([700.0])})[0])
    path = _adapt(foreign_models, key, 3.0)
    assert path.parent.name == "calibration" and path.stem == hw.machine()["fingerprint"]
    pred = load_models(foreign_models)
    m = pred.models[key]
    assert m.correction is not None and m.trusted_machine and not m.machine_match
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an adapted model raises no warning
        p = pred.predict("toy", "cumsum", {"n": 700}, hardware=key[2])
    assert p.adapted and p.seconds == pytest.approx(3.0 * raw, rel=1e-9)
    # choose: the adapted candidate stands alone in its slot, trusted, stacked == single
    c = choose("toy", {"n": 700}, models=foreign_models, memo=False)
    assert list(c.predicted) == [select.Candidate("cumsum", key[2])]
    assert not c.fallback and c.adapted[select.Candidate("cumsum", key[2])]
    assert c.seconds == pytest.approx(p.seconds, rel=1e-9)
    # a changed model file is not corrected with the old numbers
    d = load_model(foreign_models / key[2] / "toy" / "cumsum.json")
    d["train"]["seed"] = 12345
    save_model(d, foreign_models / key[2] / "toy" / "cumsum.json")
    caches.clear()
    assert load_models(foreign_models).models[key].correction is None
    # another machine's calibration file does not apply here
    other = corr.path_for(foreign_models, OTHER["fingerprint"])
    shutil.copy(path, other)
    caches.clear()
    assert load_models(foreign_models).models[key].correction is None


CC = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")


@pytest.mark.skipif(CC is None, reason="no C compiler")
@pytest.mark.parametrize("form", ["factor+slope", "features"])
def test_c_header_includes_the_correction(foreign_models, tmp_path, form):
    path = foreign_models / "cpu-amd-epyc-zen3-t1" / "toy" / "cumsum.json"
    model = load_model(path)
    lm = LoadedModel(model)
    X = log_points(TOY_RANGES, 40, 3)
    cols = {"n": X["n"].to_numpy(float)}
    raw = lm.predict(cols)
    from annpred.model.network import transform_inputs

    x = transform_inputs(lm.features(cols), lm.compiled["input_transform"])
    meas = raw * np.exp(0.3 + 0.1 * (np.log(raw) - np.log(raw).mean()) + 0.05 * x[:, 0] ** 0.5)
    c = corr.fit_correction(raw[:30], meas[:30])
    if form == "features":  # a features correction over the model's inputs (n, work)
        k = x.shape[1]
        c = {**c, "form": "features", "slope": 0.0, "weights": [0.1, -0.05][:k] + [0.0] * (k - 2),
             "center": x[:30].mean(axis=0).tolist(), "x_lo": x[:30].min(axis=0).tolist(),
             "x_hi": x[:30].max(axis=0).tolist()}
    corr.validate({"format": corr.FORMAT, "machine": hw.machine(), "corrections": [
        {**c, "kernel": "toy", "variant": "cumsum", "hardware": "h", "model_digest": "d"}]},
        "c")
    lm.correction = c
    want = lm.predict(cols)
    assert not np.allclose(want, raw)
    (tmp_path / "model.h").write_text(header_text(model, name="name", correction=c))
    (tmp_path / "main.c").write_text(
        '#include <stdio.h>\n#include <stdlib.h>\n#include "model.h"\n'
        "int main(int argc, char **argv) { int i; double p[1]; for (i = 1; i < argc; i++) "
        '{ p[0] = strtod(argv[i], NULL); printf("%.17g\\n", name_predict(p)); } return 0; }\n')
    exe = tmp_path / "main"
    r = subprocess.run([CC, "-std=c99", "-O2", "-Wall", "-Werror", "-o", str(exe),
                        str(tmp_path / "main.c"), "-lm"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    r = subprocess.run([str(exe), *map(repr, cols["n"].tolist())], capture_output=True,
                       text=True, timeout=60)
    got = np.array([float(t) for t in r.stdout.split()])
    np.testing.assert_allclose(got, want, rtol=1e-9)


def test_calibration_files_are_validated(tmp_path):
    bad = {"format": corr.FORMAT, "machine": hw.machine(),
           "corrections": [{"kernel": "k", "variant": "v", "hardware": "h",
                            "model_digest": "x", "offset": float("nan"), "slope": 0,
                            "ref": 0, "lo": 0, "hi": 1}]}
    p = tmp_path / "c.json"
    p.write_text(json.dumps(bad).replace("NaN", '"x"'))
    with pytest.raises(ModelFormatError, match="offset"):
        corr.load(p)
    p.write_text("{")
    with pytest.raises(ModelFormatError, match="malformed JSON"):
        corr.load(p)


def test_calibrate_measures_probes_and_adapts(foreign_models, tmp_path):
    from annpred.measure.calibrate import calibrate

    res = calibrate(["toy"], models=[foreign_models], out=tmp_path / "user", budget=1.0,
                    progress=False)
    assert {t.variant for t in res.targets} == {"cumsum", "accumulate"}
    for t in res.targets:  # the synthetic models are far from real runtimes: adapted,
        # unless the probes show no correction helps (then the note says so)
        assert len(t.probes) >= 2 and t.seconds > 0
        assert t.correction is not None or "not adapted" in t.note
        if t.correction is not None:
            assert t.correction["model_digest"] == corr.model_digest(
                load_models(foreign_models).models[(t.kernel, t.variant, t.hardware)].meta)
    adapted = [t for t in res.targets if t.correction is not None]
    if adapted:
        assert res.path.exists() and corr.load(res.path)["machine"]["fingerprint"] == \
            hw.machine()["fingerprint"]
    caches.clear()
    pred = load_models([foreign_models])
    for t in res.targets:
        assert (pred.models[(t.kernel, t.variant, t.hardware)].correction is not None) == \
            (t.correction is not None)


def test_calibrate_refuses_bad_input_before_measuring(foreign_models, tmp_path, monkeypatch):
    """A misspelt variant, a folder without models, a non-finite budget and an unusable
    --out are errors before any probe (they read as "nothing to adapt", or came after the
    whole budget was spent)."""
    from annpred.errors import AnnpredError
    from annpred.measure import calibrate as C

    def no_probe(*a, **k):
        raise AssertionError("measured before refusing")

    monkeypatch.setattr(C, "_probe", no_probe)
    kw = dict(models=[foreign_models], out=tmp_path / "user", progress=False)
    with pytest.raises(AnnpredError, match="'nosuch' is not a CPU variant of toy"):
        C.calibrate(["toy"], variants=["nosuch"], **kw)
    (tmp_path / "empty").mkdir()
    with pytest.raises(AnnpredError, match="no model files in"):
        C.calibrate(["toy"], models=[tmp_path / "empty"], out=tmp_path / "user",
                    progress=False)
    for budget in (float("nan"), float("inf")):
        with pytest.raises(AnnpredError, match="budget must be a finite number"):
            C.calibrate(["toy"], budget=budget, **kw)
    (tmp_path / "afile").write_text("x")
    with pytest.raises(AnnpredError, match="is a file, not a directory"):
        C.calibrate(["toy"], models=[foreign_models], out=tmp_path / "afile" / "sub",
                    progress=False)


def test_calibrate_keeps_to_its_budget_when_inputs_are_slow_to_build(foreign_models, tmp_path,
                                                                    monkeypatch):
    """Building a probe's inputs counts in the budget and can dwarf its run (matvec: 4.5 s
    for a 19 ms run): probes climb from the cheap end and stop where the next would not fit,
    and a variant's untimed first run does not take the budget of those after it."""
    import time

    from annpred.measure import calibrate as C
    from annpred.spec.catalog import get_kernel

    k = get_kernel("toy")
    make, first = k.make_inputs, {}

    def slow(params, rng):  # 1 s for the largest n (4096), 4 ms for the smallest (16)
        time.sleep(1.0 * params["n"] / 4096 + (0.0 if first else 0.4))
        first["seen"] = True  # 0.4 s more the first time: like an import or a JIT compile
        return make(params, rng)

    monkeypatch.setattr(k, "make_inputs", slow)
    budget = 0.6
    t0 = time.perf_counter()
    res = C.calibrate(["toy"], variants=["cumsum"], models=[foreign_models], budget=budget,
                      out=tmp_path / "user", progress=False, save=False)
    assert res.targets
    share = budget / len(res.targets)
    for t in res.targets:
        assert len(t.probes) >= C.MIN_PROBES, t.note
        # the share, plus what one estimate may miss (at most one step up the ladder)
        assert t.seconds < share + 0.15, (t.seconds, [p["n"] for p, _, _ in t.probes])
        assert max(p["n"] for p, _, _ in t.probes) < 4096 * share / 1.0
    assert time.perf_counter() - t0 < budget + 2.0  # setup runs are outside the budget


@pytest.mark.parametrize("fresh", [False, True])
def test_calibrate_probes_on_new_data_where_the_kernel_asks(foreign_models, tmp_path,
                                                            monkeypatch, fresh):
    """A kernel whose variants branch on the data (Kernel.fresh_inputs) is profiled on new
    data; its calibration probes must measure the same way, or they would pull a model back
    to the times of a repeated input."""
    from annpred.measure import calibrate as C
    from annpred.spec.catalog import get_kernel

    monkeypatch.setattr(get_kernel("toy"), "fresh_inputs", fresh)
    calls, measure = [], C.protocol.measure

    def counting(fn, **kw):
        calls.append(len(fn))
        return measure(fn, **kw)

    monkeypatch.setattr(C.protocol, "measure", counting)
    res = C.calibrate(["toy"], variants=["cumsum"], models=[foreign_models], budget=0.5,
                      out=tmp_path / "user", progress=False, save=False)
    assert res.targets and len(calls) == sum(len(t.probes) for t in res.targets) >= 2
    # toy inputs are n float64 values: as many sets as hold 2 MiB, at most 1,024
    assert (min(calls) > 1) if fresh else (set(calls) == {1})
    # and the correction records it, as a model file records how its rows were measured
    adapted = [t.correction for t in res.targets if t.correction is not None]
    assert adapted, [t.note for t in res.targets]
    assert all((c["input_sets_median"] > 1) == fresh for c in adapted)


# -- profiling rows and model files ----------------------------------------------------------
def test_rows_record_the_machine_and_models_carry_it(tmp_path):
    _toy()
    csv_path = tmp_path / "toy.csv"
    with RowWriter(csv_path, ["n"]) as w:
        for i, n in enumerate(np.round(np.exp(np.linspace(np.log(16), np.log(4096), 12)))):
            w.write("toy", "cumsum", T1, {"n": int(n)}, runtime_s=float(toy_runtime(
                "cumsum", n)), threads=1, point_id=i)
    header = next(csv.reader(open(csv_path)))
    assert "machine" in header and header[-1] == "input_sets"  # the newest optional column
    fp = hw.machine()["fingerprint"]
    assert read_machines(csv_path)[fp]["slug"] == hw.machine()["slug"]
    df = load_profiles([csv_path])
    assert machine_of(df)["fingerprint"] == fp
    from annpred.model.trainer import train_frame

    rep = train_frame(df, tmp_path / "models", max_epochs=50, n_init=1)[0]
    d = load_model(rep.path)
    assert d["machine"]["fingerprint"] == fp
    assert load_models(tmp_path / "models").models[("toy", "cumsum", T1)].machine_match


def test_legacy_csv_without_machine_column_loads_and_resumes(tmp_path):
    path = tmp_path / "old.csv"
    cols = [*KEY_COLUMNS, "n", *TAIL_COLUMNS]  # no load_avg, no machine
    path.write_text(",".join(cols) + "\n" + ",".join(
        ["toy", "cumsum", "cpu-amd-epyc-t1", "64", "1e-6", "0.01", "5", "1e-6", "1",
         "random", "0", "0", "0", "2026-01-01T00:00:00", "0.1.0"]) + "\n")
    w = RowWriter(path, ["n"])
    assert len(w.existing()) == 1
    with w:
        w.write("toy", "cumsum", "cpu-amd-epyc-t1", {"n": 65}, runtime_s=1e-6)
    rows = list(csv.reader(open(path)))
    assert rows[0] == cols and all(len(r) == len(cols) for r in rows)
    assert machine_of(load_profiles([path])) is None


def test_model_machine_key_is_optional_and_strict(foreign_models):
    path = foreign_models / "cpu-legacybox-t1" / "toy" / "cumsum.json"
    d = load_model(path)
    assert "machine" not in d  # old files without it keep loading
    for bad in ({"fingerprint": "xyz"}, {"fingerprint": "0123456789ab", "isa": [1]}, "amd"):
        with pytest.raises(ModelFormatError, match="machine"):
            validate({**d, "machine": bad}, "m.json")
    validate({**d, "machine": {"fingerprint": "0123456789ab"}}, "m.json")


def test_shipped_legacy_models_are_candidates_but_untrusted_here():
    """The shipped models (legacy ids, no machine) load and still give candidates."""
    import os

    from annpred.model.layout import shipped_root

    if not (shipped_root() / "cpu-amd-epyc-t1").is_dir() or hw.machine_match(
            "cpu-amd-epyc-t1", None):
        pytest.skip("no shipped legacy models")
    with pytest.warns(MachineMismatchWarning):
        c = choose("matmul", {"m": 64, "n": 64, "k": 64, "da": 1, "db": 1},
                   candidates=["numpy@cpu-amd-epyc-t1", "torch@cpu-amd-epyc-t1"])
    assert c.predicted and c.fallback and not any(c.machine_match.values())
    assert os.environ["ANNPRED_MODELS"]  # isolated from the developer's calibrations


def test_shipped_models_of_this_machine_decide_a_2048_product_in_range():
    """Where the shipped models include this kind of machine (profiled on the widened
    domain, sides up to 2048), the default configuration decides a 2048^3 product from
    trusted models inside their training range, using no other machine's model."""
    from annpred.model.layout import shipped_root
    from annpred.runtime.predictor import load_models

    pred = load_models(str(shipped_root()), reload=True)
    mine = {h for k, v, h in pred.combinations("matmul") if pred.models[(k, v, h)].machine_match}
    if not mine:
        pytest.skip("no shipped models of this machine")
    c = choose("matmul", {"m": 2048, "n": 2048, "k": 2048, "da": 1, "db": 1},
               models=str(shipped_root()))
    assert not c.fallback, c.reason
    assert all(c.in_range.values()) and all(c.machine_match.values())
    assert {cand.hardware for cand in c.predicted} <= mine and c.hardware in mine


def test_halide_schedule_model_from_another_machine_is_flagged(tmp_path):
    pytest.importorskip("halide")
    from annpred.halide.pipelines import get
    from annpred.halide.select import save_schedule_model, select_schedule, train_model
    from annpred.halide.space import key_of

    p = get("blur")
    rows = [{"variant": key_of(s), **sz, "runtime_s": 1e-9 * sz["W"] * sz["H"], "pass": 1}
            for s in p.space.sample(12, seed=1) for sz in p.sample_sizes(2, seed=3)]
    model = train_model(p, pd.DataFrame(rows), max_epochs=50, patience=20, n_init=1)
    path = save_schedule_model(model, p, tmp_path / "blur.json")
    assert load_model(path)["machine"]["fingerprint"] == hw.machine()["fingerprint"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # profiled here: no warning
        here = select_schedule("blur", "640,512", candidates=4, models=path, compile=False)
    assert here.info["machine_match"] is True
    _set_machine(path, OTHER)
    with pytest.warns(MachineMismatchWarning, match="re-profile"):
        c = select_schedule("blur", "640,512", candidates=4, models=path, compile=False)
    assert c.info["machine_match"] is False
