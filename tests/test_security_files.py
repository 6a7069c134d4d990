"""Security fixes of files annpred reads or writes beside its models (audit findings 2, 5, 8,
10, 11): accelerator work limits, calibration files, Halide schedule models' train fields,
the modes of atomic writes, and the train/evaluate checkpoint."""
from __future__ import annotations

import json
import os
import stat
import warnings
from dataclasses import dataclass
from pathlib import Path

import pytest

from annpred.errors import AnnpredWarning, ModelFormatError, ParameterError

REPO = Path(__file__).resolve().parents[1]


# -- #10: atomic writes take the mode of a regular file only, never special bits ------------
def test_atomic_write_over_symlink_does_not_copy_target_mode(tmp_path):
    from annpred.files import _umask, atomic_write_text

    victim = tmp_path / "victim"
    victim.write_text("victim\n")
    os.chmod(victim, 0o6777)
    out = tmp_path / "out.h"
    out.symlink_to(victim)
    atomic_write_text(out, "new\n")
    assert not out.is_symlink() and out.read_text() == "new\n"
    assert stat.S_IMODE(out.stat().st_mode) == 0o666 & ~_umask()
    assert victim.read_text() == "victim\n"
    assert stat.S_IMODE(victim.stat().st_mode) == 0o6777


def test_atomic_write_keeps_permissions_but_not_special_bits(tmp_path):
    from annpred.files import atomic_write_text

    f = tmp_path / "model.json"
    f.write_text("old")
    os.chmod(f, 0o4751)
    atomic_write_text(f, "new")
    assert stat.S_IMODE(f.stat().st_mode) == 0o751


# -- #11: the checkpoint ---------------------------------------------------------------------
def test_checkpoint_ignores_unbounded_lines(tmp_path):
    from annpred.files import JsonlCheckpoint

    p = tmp_path / "ck.jsonl"
    good = json.dumps({"key": "k", "x": 1})
    p.write_text("[" * 100_000 + "\n" + '{"key": "k", "x": ' + "9" * 5000 + "}\n"
                 + good + "\n" + '{"key": "k", "x"')       # and a torn last line
    ck = JsonlCheckpoint(p, "k")
    assert ck.load() == [{"key": "k", "x": 1}]
    assert ck.ignored == 2
    ck.append([{"x": 2}])     # ends the torn line first
    assert [d["x"] for d in JsonlCheckpoint(p, "k").load()] == [1, 2]


def test_checkpoint_refuses_a_symlink(tmp_path):
    from annpred.files import JsonlCheckpoint, WriteError

    target = tmp_path / "target"
    target.write_text("precious\n")
    p = tmp_path / "ck.jsonl"
    p.symlink_to(target)
    ck = JsonlCheckpoint(p, "k")
    with pytest.raises(WriteError, match="symbolic link"):
        ck.append([{"x": 1}])
    with pytest.raises(WriteError, match="symbolic link"):
        ck.load()
    assert target.read_text() == "precious\n"


def test_fits_dataclass():
    from annpred.files import fits_dataclass

    @dataclass
    class R:
        name: str
        n: int
        err: float | None
        path: Path | None
        extra: dict | None = None
        ok: bool = True

    assert fits_dataclass({"name": "a", "n": 1, "err": None}, R, skip=("path",))
    assert fits_dataclass({"name": "a", "n": 1, "err": 2, "extra": {"k": 3}, "ok": False}, R,
                          skip=("path",))
    for bad in ({"name": "a", "n": 1}, {"name": "a", "n": 1, "err": 1.0, "evil": 1},
                {"name": "a", "n": True, "err": 1.0}, {"name": "a", "n": 1.5, "err": 1.0},
                {"name": "a", "n": 1, "err": "x"}, {"name": "a", "n": 1, "err": 1, "ok": 1},
                {"name": "a", "n": 1, "err": 1, "extra": {"k": [1]}}, ["name"]):
        assert not fits_dataclass(bad, R, skip=("path",)), bad


def test_train_checkpoint_ignores_records_it_did_not_write(tmp_path):
    import pandas as pd

    from annpred import __version__
    from annpred.files import JsonlCheckpoint, frame_key
    from annpred.model import trainer

    df = pd.DataFrame({"a": [1.0, 2.0]})
    opts = (None, None, 0, None, None, "auto", 100, {})
    ck = JsonlCheckpoint(tmp_path / trainer.CHECKPOINT, frame_key(df, __version__, *opts))
    rep = {"kernel": "k", "variant": "v", "hardware": "h", "n_train": 10, "n_holdout": 2,
           "val_mape": 3.0, "holdout_mape": None, "n_params": 9, "train_time_s": 0.1,
           "path": None, "written": False}
    ck.append([
        {"combo": ["k", "v", "h"], "model": None, "report": {**rep, "evil": 1}},   # unknown
        {"combo": ["k", "v", "h"], "model": None, "report": {**rep, "n_train": "x"}},
        {"combo": ["k", "v", "h2"], "model": None, "report": rep},         # another combo
        {"combo": ["k", "v", "h3"], "model": "[" * 5000,                   # invalid model
         "report": {**rep, "hardware": "h3", "written": True}},
        {"combo": ["k", "v", "h"], "model": None, "report": rep},          # the good one
    ])
    _, done = trainer._checkpoint(tmp_path, df, *opts)
    assert list(done) == [("k", "v", "h")]
    assert done[("k", "v", "h")] == (rep, None)
    assert trainer.TrainReport(**{**done[("k", "v", "h")][0], "path": None}).n_train == 10


# -- #8: Halide schedule models' train fields -------------------------------------------------
@pytest.mark.parametrize("field,value", [("median_over_min", "abc"), ("median_over_min", [1]),
                                         ("median_over_min", -5), ("median_over_min", 0.5),
                                         ("median_over_min", 1e308), ("median_over_min", True),
                                         ("tile_steps", 1), ("ragged", "yes")])
def test_schedule_model_train_fields_are_validated(field, value):
    from annpred.halide.store import train_fields

    with pytest.raises(ModelFormatError, match=rf"m\.json: train\.{field}"):
        train_fields({"train": {field: value}}, "m.json")


def test_schedule_model_train_fields_defaults_and_shipped():
    from annpred.halide.store import train_fields

    assert train_fields({"train": {}}, "m") == (False, False, 1.0)
    for p in sorted((REPO / "trained" / "halide").glob("**/*.json")):
        train_fields(json.loads(p.read_text()), p)


def test_load_schedule_model_refuses_bad_median_over_min(tmp_path):
    from annpred.halide.store import load_schedule_model

    src = sorted((REPO / "trained" / "halide").glob("*/blur.json"))
    if not src:
        pytest.skip("no shipped blur schedule model")
    d = json.loads(src[0].read_text())
    d["train"]["median_over_min"] = "abc"
    p = tmp_path / "blur.json"
    p.write_text(json.dumps(d))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(ModelFormatError, match="median_over_min"):
            load_schedule_model("blur", p)


# -- #5: calibration files ------------------------------------------------------------------
def _foreign_model(root: Path) -> tuple[dict, Path]:
    """A shipped model under hardware id ``hw1`` (no machine: never this machine's)."""
    from annpred.model.schema import load_model, save_model

    src = sorted((REPO / "trained").glob("cpu-*-t1/matmul/*.json"))[0]
    meta = load_model(src)
    meta["hardware"] = "hw1"
    meta.pop("machine", None)
    path = root / "hw1" / meta["kernel"] / f"{meta['variant']}.json"
    save_model(meta, path)
    return load_model(path), path


def _calibration(root: Path, meta: dict, **fields) -> Path:
    from annpred.model import correction as C
    from annpred.spec import machine as M

    fp = M.this_cpu()["fingerprint"]
    c = {"kernel": meta["kernel"], "variant": meta["variant"], "hardware": "hw1",
         "model_digest": C.model_digest(meta), "offset": 0.5, "slope": 0.0, "ref": 0.0,
         "lo": -30.0, "hi": 0.0, "n_probes": 5, "form": "features", **fields}
    p = C.path_for(root, fp)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(json.dumps({"format": C.FORMAT, "machine": {"fingerprint": fp},
                             "corrections": [c]}))
    return p


@pytest.mark.parametrize("text", ["[" * 100_000 + "]" * 100_000,
                                  '{"format": 1, "x": ' + "9" * 5000 + "}"])
def test_calibration_file_parse_is_bounded(tmp_path, text):
    from annpred.model import correction as C
    from annpred.runtime import correction as RC

    p = tmp_path / "calibration" / "x.json"
    p.parent.mkdir()
    p.write_text(text)
    with pytest.raises(ModelFormatError, match="calibration file"):
        C.load(p)
    meta, path = _foreign_model(tmp_path)
    p.rename(_calibration(tmp_path, meta))        # the file of this machine, broken
    RC.reset_warnings()
    with pytest.warns(AnnpredWarning, match="its corrections are not used"):
        assert RC.correction_of(meta, path) is None


@pytest.mark.parametrize("n", [1, 99])
def test_mismatched_features_correction_is_skipped_and_never_exported(tmp_path, n):
    from annpred.runtime import correction as RC
    from annpred.runtime.export_c import header_text

    meta, path = _foreign_model(tmp_path)
    _calibration(tmp_path, meta, weights=[0.1] * n, center=[0.0] * n, x_lo=[-1.0] * n,
                 x_hi=[1.0] * n)
    RC.reset_warnings()
    with pytest.warns(AnnpredWarning, match="does not fit model"):
        assert RC.correction_of(meta, path) is None
    bad = {"offset": 0.5, "slope": 0.0, "ref": 0.0, "lo": -30.0, "hi": 0.0, "kernel": "k",
           "variant": "v", "hardware": "hw1", "model_digest": "0" * 16,
           "weights": [0.1] * n, "center": [0.0] * n, "x_lo": [-1.0] * n, "x_hi": [1.0] * n}
    with pytest.raises(ModelFormatError, match="does not fit"):
        header_text(meta, correction=bad)


def test_fitting_features_correction_is_used(tmp_path):
    from annpred.runtime import correction as RC
    from annpred.runtime.export_c import header_text

    meta, path = _foreign_model(tmp_path)
    n = len(meta["features"])
    _calibration(tmp_path, meta, weights=[0.1] * n, center=[0.0] * n, x_lo=[-1.0] * n,
                 x_hi=[1.0] * n)
    with warnings.catch_warnings():
        warnings.simplefilter("error", AnnpredWarning)
        c = RC.correction_of(meta, path)
    assert c is not None and len(c["weights"]) == n
    assert "_corr_weights" in header_text(meta, correction=c)


def test_predict_with_broken_calibration_warns_and_works(tmp_path, capsys):
    from annpred.cli import main

    meta, _ = _foreign_model(tmp_path)
    _calibration(tmp_path, meta, weights=[1.0], center=[0.0], x_lo=[-1.0], x_hi=[1.0])
    from annpred.runtime import correction as RC
    RC.reset_warnings()
    args = [f"{p}={lo}" for p, (lo, _) in meta["train"]["range"].items()]
    rc = main(["predict", meta["kernel"], "--variant", meta["variant"], "--hardware", "hw1",
               "--models", str(tmp_path), *args])
    assert rc == 0, capsys.readouterr()
    assert "does not fit model" in capsys.readouterr().err


# -- #2: accelerator work limits ------------------------------------------------------------
TINY = """format: annpred-accel/1
name: t
array: {rows: 1, cols: 1, dataflow: os}
buffers:
  ifmap: {kb: 1}
  filter: {kb: 1}
  ofmap: {kb: 1}
dram: {bandwidth: 1, latency: LAT}
clock_mhz: 200
"""


def test_tiny_accelerator_layer_is_refused_before_work(tmp_path, capsys):
    from annpred.accel import evaluate as E
    from annpred.accel.description import get
    from annpred.accel.layers import parse
    from annpred.cli import main

    p = tmp_path / "s1.yaml"
    p.write_text(TINY.replace("LAT", "1"))
    layer = parse("conv2d:224,224,3,3,64,64,1")
    with pytest.raises(ParameterError, match=r"conv2d:224,224,3,3,64,64,1 on accelerator t"
                                             r".*3,154,176 folds.*131,072"):
        E.estimate(get(str(p)), layer)
    assert main(["accel", "estimate", str(p), "--layer", "conv2d:224,224,3,3,64,64,1"]) == 2
    assert "more than the limit" in capsys.readouterr().err
    # --full: its own limit on the steps
    small = parse("conv2d:16,16,3,3,8,8,1")
    E.check_work(get("systolic32"), parse("conv2d:56,56,3,3,64,64,1"), "user", "full")
    with pytest.raises(ParameterError, match="a full evaluation"):
        E.check_work(get(str(p)), parse("conv2d:100,100,3,3,32,32,1"), "user", "full")
    assert E.estimate(get(str(p)), small)["cycles"] > 0


def test_accelerator_description_fields_are_bounded(tmp_path):
    from annpred.accel.description import get

    p = tmp_path / "s2.yaml"
    p.write_text(TINY.replace("LAT", "1000000000000000000"))
    with pytest.raises(ParameterError, match="latency must be at most 1,000,000"):
        get(str(p))
    p.write_text(TINY.replace("LAT", "1").replace("rows: 1, cols: 1", "rows: 1, cols: 100000"))
    with pytest.raises(ParameterError, match="cols must be at most 4,096"):
        get(str(p))


def test_work_limits_accept_every_shipped_case():
    """Every layer of experiments/results/accel_cases.csv and of the shipped networks, on
    every shipped description: within the limits (fast and full)."""
    import csv

    from annpred.accel import evaluate as E
    from annpred.accel.description import shipped
    from annpred.accel.layers import NETWORKS, make, read_network
    from annpred.accel.mapping import layer_folds

    layers = [layer for p in sorted(NETWORKS.glob("*.csv")) for layer in read_network(p)]
    cases = REPO / "experiments" / "results" / "accel_cases.csv"
    if cases.is_file():
        with open(cases) as f:
            layers += [make("conv2d", {k: int(r[k]) for k in "H W R S C M stride".split()})
                       for r in csv.DictReader(f)]
    most = 0
    for acc in shipped().values():
        for layer in layers:
            for mode in ("user", "calc"):
                try:
                    E.check_work(acc, layer, mode, "fast")
                except ParameterError as exc:
                    assert "addresses per operand" in str(exc)   # not the work limits
                    continue
                E.check_work(acc, layer, mode, "full")
                most = max(most, layer_folds(acc, layer))
    assert 0 < most <= E.MAX_FOLDS // 8


def test_limits_in_cli_help_match():
    from annpred.accel import cli, evaluate as E

    text = open(cli.__file__).read()
    for n in (E.MAX_FOLDS, E.MAX_STEPS, E.MAX_FULL_STEPS):
        assert f"{n:,}" in text
