"""Where Halide schedule models live (their own root, apart from kernel models), training
them from the command line and Python, and the machine check on loading."""
from __future__ import annotations

import argparse
import json

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("halide")

from annpred.spec import hardware as hw  # noqa: E402
from annpred.errors import AnnpredError, DataError  # noqa: E402
from annpred.halide import cli as hcli  # noqa: E402
from annpred.halide import store  # noqa: E402
from annpred.halide.pipelines import get  # noqa: E402
from annpred.halide.space import key_of  # noqa: E402


def _run_cli(argv):
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="command")
    hcli.register(sub)
    args = ap.parse_args(argv)
    return args.func(args)


def _profile(path, n=40, threads=None):
    """A synthetic blur profile; ``threads``: values cycled into a threads column."""
    p = get("blur")
    rng = np.random.default_rng(0)
    rows = []
    for s in p.space.sample(n, seed=1):
        for sz in p.sample_sizes(2, seed=len(rows)):
            t = 1e-9 * sz["W"] * sz["H"] * (3.0 if s["par"] == "none" else 1.0)
            rows.append({"variant": key_of(s), **sz, "runtime_s": t * (1 + 0.02 *
                         rng.standard_normal()), "pass": 1})
    path.parent.mkdir(parents=True, exist_ok=True)
    df = pd.DataFrame(rows)
    if threads is not None:
        df["threads"] = [threads[i % len(threads)] for i in range(len(df))]
    df.to_csv(path, index=False)
    return path


def test_paths_are_under_their_own_root(tmp_path, monkeypatch):
    monkeypatch.setenv("ANNPRED_MODELS", str(tmp_path / "user"))
    hw_id = hw.cpu_id(2)
    assert store.halide_root(tmp_path) == tmp_path / "halide"
    assert store.data_path("blur", tmp_path) == tmp_path / "halide" / hw_id / "data" / "blur.csv"
    assert store.model_path("blur", tmp_path) == tmp_path / "halide" / hw_id / "blur.json"
    # default: the user's model wins over the shipped one once it exists
    mine = tmp_path / "user" / "halide" / hw_id / "blur.json"
    mine.parent.mkdir(parents=True)
    mine.write_text("{}")
    assert store.model_path("blur") == mine


def test_a_new_machine_uses_another_cpus_model_of_the_same_threads(tmp_path, monkeypatch):
    """Shipped models are named by the CPU they were profiled on; a machine with another id
    takes one of them (its legacy id's first) rather than failing, and its own once made."""
    monkeypatch.setenv("ANNPRED_MODELS", str(tmp_path / "user"))
    monkeypatch.setattr(store, "shipped_root", lambda: tmp_path / "shipped")
    here, legacy = hw.cpu_id(2), f"cpu-{hw.legacy_cpu_slug()}-t2"

    def put(root, hw_id):
        f = tmp_path / root / "halide" / hw_id / "blur.json"
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text("{}")
        return f

    assert store.model_path("blur") == tmp_path / "shipped" / "halide" / here / "blur.json"
    other = put("shipped", "cpu-aaa-other-t2")
    put("shipped", "cpu-aaa-other-t1")  # another thread count never serves
    assert store.model_path("blur") == other
    assert store.model_path("blur", threads=1).parent.name == "cpu-aaa-other-t1"
    if legacy != here:  # the same vendor and model name before another one
        f = put("shipped", legacy)
        assert store.model_path("blur") == f
    fallback = store.model_path("blur")
    assert store.model_path("blur", tmp_path / "shipped") == fallback  # an explicit root too
    for root, hw_id in (("user", "cpu-zzz-other-t2"),  # the user's root before the shipped
                        ("shipped", here),  # this machine's own before any other
                        ("user", here)):
        f = put(root, hw_id)
        assert store.model_path("blur") == f, (root, hw_id)


def test_shipped_schedule_models_are_not_in_kernel_folders():
    root = store.shipped_root()
    assert not list(root.glob("cpu-*/halide/*.json")) and not list(root.glob("*/data/halide_*"))
    for f in (root / "halide").glob("*/*.json"):
        d = json.loads(f.read_text())
        assert d["kernel"] == f"halide_{f.stem}"
        assert (f.parent / "data" / d["train"]["csv"]).exists()


def test_cli_train_writes_model_and_tune_uses_it(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("ANNPRED_MODELS", str(tmp_path / "user"))
    data = _profile(tmp_path / "blur.csv")
    assert _run_cli(["halide", "train", "blur", "--data", str(data), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    path = tmp_path / "user" / "halide" / hw.cpu_id(2) / "blur.json"
    assert out["model"] == str(path) and path.exists() and out["n_params"] < 75
    d = json.loads(path.read_text())
    assert d["machine"]["fingerprint"] == store.machine()["fingerprint"]
    assert _run_cli(["halide", "tune", "blur", "--size", "512,128", "--candidates", "8",
                     "--json"]) == 0
    tuned = json.loads(capsys.readouterr().out)
    assert tuned["machine_match"] is True and tuned["schedule"]["par"] != "none"
    assert _run_cli(["halide", "tune", "blur", "--size", "512,128", "--candidates", "8",
                     "--emit", str(tmp_path / "lib")]) == 0
    text = capsys.readouterr().out
    assert "predicted" in text and "blur_annpred.a" in text
    assert (tmp_path / "lib" / "blur_annpred.h").exists()


def test_train_api_errors_name_the_problem(tmp_path):
    from annpred.halide.select import train_pipeline

    with pytest.raises(DataError, match="annpred halide profile blur"):
        train_pipeline("blur", tmp_path / "missing.csv", tmp_path)
    bad = tmp_path / "bad.csv"
    pd.DataFrame({"variant": ["x"], "W": [512], "H": [512]}).to_csv(bad, index=False)
    with pytest.raises(DataError, match="runtime_s"):
        train_pipeline("blur", bad, tmp_path)
    data = _profile(tmp_path / "ok.csv", n=5)
    df = pd.read_csv(data)
    df.loc[3, "runtime_s"] = -1
    df.to_csv(data, index=False)
    with pytest.raises(DataError, match="row 5, column runtime_s"):
        train_pipeline("blur", data, tmp_path)
    assert not (tmp_path / "halide").exists()  # nothing written


def test_model_from_another_machine_is_flagged_once(tmp_path):
    import warnings

    from annpred.errors import MachineMismatchWarning
    from annpred.halide.select import train_pipeline
    from annpred.runtime.correction import reset_warnings

    data = _profile(tmp_path / "blur.csv")
    _, path = train_pipeline("blur", data, tmp_path / "m.json")
    d = json.loads(path.read_text())
    d["machine"] = {**d["machine"], "model": 999, "fingerprint": "0123456789ab"}
    path.write_text(json.dumps(d))
    reset_warnings()
    with pytest.warns(MachineMismatchWarning, match="another|not on this machine"):
        m = store.load_schedule_model("blur", path)
    assert m.machine_match_ is False
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # one warning per source machine and process
        store.load_schedule_model("blur", path)
    # older files without a machine description: compared by hardware id
    del d["machine"]
    d["hardware"] = "cpu-other-t2"
    old = tmp_path / "old.json"
    old.write_text(json.dumps(d))
    with pytest.warns(MachineMismatchWarning, match="cpu-other-t2"):
        assert store.load_schedule_model("blur", old).machine_match_ is False
    d["hardware"] = hw.cpu_id(2)
    old.write_text(json.dumps(d))
    assert store.load_schedule_model("blur", old).machine_match_ is True


def test_missing_model_message_points_to_the_cli(tmp_path):
    with pytest.raises(AnnpredError, match="annpred halide profile unsharp"):
        store.load_schedule_model("unsharp", tmp_path)


def test_compare_table_shows_predicted_measured_and_ratio():
    rows = [{"method": "annpred", "runtime_s": 2e-3, "predicted_s": 1.5e-3, "tuning_s": 0.004},
            {"method": "adams2019", "runtime_s": 3e-3, "predicted_s": None, "tuning_s": 0.5},
            {"method": "li2018", "runtime_s": None, "predicted_s": None, "tuning_s": 0.0}]
    text = hcli.format_compare(rows)
    line = next(ln for ln in text.splitlines() if "annpred" in ln and "1.500" in ln)
    assert "2.000" in line and "0.75" in line
    assert "1.50x" in next(ln for ln in text.splitlines() if "adams2019" in ln)
    assert "failed" in next(ln for ln in text.splitlines() if "li2018" in ln)


def test_predictions_estimate_the_protocols_median(tmp_path):
    """Fitted on the fastest repeat, predictions are scaled by the profile's median/min."""
    from annpred.halide.select import predict_schedules, train_model

    p = get("blur")
    df = pd.read_csv(_profile(tmp_path / "blur.csv"))
    df["runtime_min_s"] = df["runtime_s"] / 1.25
    model = train_model(p, df, max_epochs=50, n_init=1)
    assert model.protocol_factor_ == pytest.approx(1.25)
    s = p.space.sample(1, seed=0)
    raw = model.predict(pd.DataFrame([p.features({"W": 1024, "H": 512}, s[0])],
                                     columns=p.feature_names()))
    assert predict_schedules(model, p, {"W": 1024, "H": 512}, s)[0] == pytest.approx(1.25 * raw[0])
    store.save_schedule_model(model, p, tmp_path / "m.json")
    assert store.load_schedule_model(p, tmp_path / "m.json").protocol_factor_ == pytest.approx(1.25)
