"""Issue 11, findings 3, 5 and 7 (model files): size cap, non-regular files, strict JSON,
non-finite or absurd numbers, and one broken file costing only its own combination."""
import json
import os
import random
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

from annpred.errors import AnnpredWarning, ModelFormatError, ParameterError, UnknownKernelError
from annpred.model.layout import model_path
from annpred.model.schema import load_model
from annpred.runtime.predictor import LoadedModel, load_models

# appended, not prepended: experiments/halide.py must not shadow the halide package
sys.path.append(str(Path(__file__).resolve().parent.parent / "experiments"))
from fuzz import make_model  # noqa: E402


def _model(**kw):
    return make_model(random.Random(0), ["m", "n"], {"work": "m*n"}, **kw)


def _set(d, dotted, value):
    node = d
    keys = dotted.split(".")
    for k in keys[:-1]:
        node = node[int(k)] if isinstance(node, list) else node[k]
    last = keys[-1]
    if isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value
    return d


BAD_VALUES = {
    "target_scaler NaN": ("target_scaler.mean", float("nan")),
    "target_scaler true": ("target_scaler.mean", True),
    "target_scaler string": ("target_scaler.std", "1"),
    "weight 1e308": ("layers.0.weight.0.0", 1e308),
    "bias 1e300": ("layers.1.bias.0", 1e300),
    "std 1e-308": ("scaler.std.0", 1e-308),
    "parameters a string": ("parameters", "nkm"),
    "parameters null": ("parameters", None),
    "parameters reordered": ("parameters", ["n", "m"]),
    "range of strings": ("train.range.m", ["a", "b"]),
    "range null": ("train.range.m", None),
    "range reversed": ("train.range.m", [5.0, 1.0]),
    "range of a non-parameter": ("train.range.zz", [1.0, 2.0]),
    "kernel with a newline": ("kernel", "mm\n"),
    "hardware with a slash": ("hardware", "cpu/x"),
    "activation a list": ("activation", ["tanh"]),
    "feature with a newline": ("features.0", "m\n"),
    "n_params true": ("n_params", True),
}


@pytest.mark.parametrize("case", list(BAD_VALUES))
def test_absurd_values_are_refused(tmp_path, case):
    where, value = BAD_VALUES[case]
    p = tmp_path / "m.json"
    p.write_text(json.dumps(_set(_model(), where, value)))
    with pytest.raises(ModelFormatError):
        load_model(p)


@pytest.mark.parametrize("text", [
    "[" * 200_000 + "]" * 200_000,
    json.dumps(_model()).replace("-10.0", "1" + "0" * 400),
    json.dumps(_model()).replace("-10.0", "1" + "0" * 5000),
    json.dumps(_model()).replace("2.0", "NaN"),
    json.dumps(_model()).replace("2.0", "Infinity"),
    b"\xff\xfe{}",
])
def test_hostile_json_is_refused(tmp_path, text):
    p = tmp_path / "m.json"
    (p.write_bytes if isinstance(text, bytes) else p.write_text)(text)
    with pytest.raises(ModelFormatError):
        load_model(p)


def test_size_cap_before_reading(tmp_path):
    p = tmp_path / "big.json"
    d = _model()
    d["padding"] = "x" * (2 << 20)
    p.write_text(json.dumps(d))
    with pytest.raises(ModelFormatError, match="limit"):
        load_model(p)


def test_unknown_optional_keys_are_kept(tmp_path):
    d = _model()
    d["written_by"] = {"tool": "x"}  # a key a later version may add
    d["uncertainty"] = {"q90": 0.1}
    p = tmp_path / "m.json"
    p.write_text(json.dumps(d))
    assert load_model(p)["written_by"] == {"tool": "x"}


PROBE = """
import sys, warnings
from annpred.errors import AnnpredError
from annpred.model.schema import load_model
try:
    load_model(sys.argv[1])
except AnnpredError as e:
    print("refused:", e)
"""


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
@pytest.mark.parametrize("kind", ["fifo", "dev_zero", "directory"])
def test_non_regular_model_paths_are_refused_without_hanging(tmp_path, kind):
    p = tmp_path / "m.json"
    if kind == "fifo":
        os.mkfifo(p)
    elif kind == "dev_zero":
        os.symlink("/dev/zero", p)
    else:
        p.mkdir()
    r = subprocess.run([sys.executable, "-c", PROBE, str(p)], capture_output=True, text=True,
                       timeout=60, env={**os.environ, "PYTHONPATH": str(Path.cwd())})
    assert r.returncode == 0 and r.stdout.startswith("refused:"), r.stderr


def _write_dir(root):
    good = _model(kernel="kern", variant="good")
    model_path(root, "kern", "good", "cpu-fuzz-t1").parent.mkdir(parents=True)
    model_path(root, "kern", "good", "cpu-fuzz-t1").write_text(json.dumps(good))
    bad = _model(kernel="kern", variant="bad")
    bad["complexity"]["work"] = "+".join(["sopfr(9007199254740881)"] * 20)
    model_path(root, "kern", "bad", "cpu-fuzz-t1").write_text(json.dumps(bad))
    model_path(root, "kern", "broken", "cpu-fuzz-t1").write_text("{not json")
    os.mkfifo(model_path(root, "kern", "fifo", "cpu-fuzz-t1"))


def test_broken_file_costs_only_its_combination(tmp_path):
    _write_dir(tmp_path)
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        pred = load_models(tmp_path, reload=True)
    msgs = [str(x.message) for x in w if issubclass(x.category, AnnpredWarning)]
    assert len(msgs) == 3
    assert any("bad.json" in m for m in msgs) and any("broken.json" in m for m in msgs)
    assert pred.combinations() == [("kern", "good", "cpu-fuzz-t1")]
    s = pred.predict("kern", "good", {"m": 3.0, "n": 4.0}, hardware="cpu-fuzz-t1").seconds
    assert np.isfinite(s) and s > 0
    with pytest.raises(UnknownKernelError, match="skipped"):
        pred.predict("kern", "bad", {"m": 3.0, "n": 4.0}, hardware="cpu-fuzz-t1")


def test_cli_predict_and_choose_survive_a_broken_neighbour(tmp_path, cli):
    _write_dir(tmp_path)
    r = cli(["predict", "kern", "--variant", "good", "--hardware", "cpu-fuzz-t1",
             "--models", tmp_path, "m=3", "n=4"])
    assert r.returncode == 0, r.stderr
    assert r.stderr.count("annpred: warning: skipping model file") == 3
    assert "Traceback" not in r.stderr
    r = cli(["choose", "kern", "--models", tmp_path, "--candidate", "good@cpu-fuzz-t1",
             "--policy", "extrapolate", "m=3", "n=4"])
    assert r.returncode == 0, r.stderr
    assert "choice: good on cpu-fuzz-t1" in r.stdout


@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
def test_non_finite_parameters_are_refused(value):
    m = LoadedModel(_model())
    with pytest.raises(ParameterError):
        m.predict({"m": np.array([float(value)]), "n": np.array([4.0])})


def test_non_representable_point_gives_an_error_not_nan():
    m = LoadedModel(_model())  # log inputs: m <= 0 has no prediction
    for bad in (0.0, -5.0):
        with pytest.raises(ParameterError, match="no finite prediction"):
            m.predict({"m": np.array([bad]), "n": np.array([4.0])})


def test_a_runtime_at_or_below_zero_is_refused_and_never_chosen(tmp_path, cli):
    """An identity-target network (the schema allows it) is not bounded below: a negative
    prediction is an error in predict, and choose passes over that candidate."""
    neg = _model(kernel="kern", variant="neg")
    neg["target_transform"] = "identity"
    neg["target_scaler"] = {"mean": -1.0, "std": 1e-9}  # predicts about -1 s everywhere
    with pytest.raises(ParameterError, match="runtime <= 0"):
        LoadedModel(neg).predict({"m": np.array([3.0]), "n": np.array([4.0])})
    _write_dir(tmp_path)
    model_path(tmp_path, "kern", "neg", "cpu-fuzz-t1").write_text(json.dumps(neg))
    r = cli(["choose", "kern", "--models", tmp_path, "--candidate", "good@cpu-fuzz-t1",
             "--candidate", "neg@cpu-fuzz-t1", "--policy", "extrapolate", "m=3", "n=4"])
    assert r.returncode == 0, r.stderr
    assert "choice: good on cpu-fuzz-t1" in r.stdout
    assert "neg@cpu-fuzz-t1 predicts no usable runtime here" in r.stderr


def test_cli_predict_nan_parameter_is_one_line(tmp_path, cli):
    _write_dir(tmp_path)
    r = cli(["predict", "kern", "--variant", "good", "--hardware", "cpu-fuzz-t1",
             "--models", tmp_path, "m=nan", "n=4"])
    assert r.returncode == 2
    errors = [ln for ln in r.stderr.splitlines() if ln.startswith("annpred: error:")]
    assert len(errors) == 1 and "Traceback" not in r.stderr


def test_kernels_listing_skips_a_fifo_without_hanging(tmp_path, cli, toy_env):
    _write_dir(tmp_path)
    r = cli(["kernels", "--models", tmp_path], env=toy_env, timeout=120)
    assert r.returncode == 0 and "toy" in r.stdout


def test_non_finite_numbers_never_reach_a_model_file(tmp_path):
    from annpred.model.schema import save_model, to_json

    d = _model()
    d["train"]["val_mape"] = float("inf")
    with pytest.raises(ModelFormatError, match="non-finite"):
        to_json(d)
    with pytest.raises(ModelFormatError):
        save_model(d, tmp_path / "m.json")
    assert not (tmp_path / "m.json").exists()


def test_a_model_whose_contents_disagree_with_its_path_is_skipped(tmp_path):
    """A model saying hardware cpu-other under cpu-fuzz-t1/ was used as on cpu-other."""
    _write_dir(tmp_path)
    moved = _model(kernel="kern", variant="good2", hardware="cpu-other-t1")
    model_path(tmp_path, "kern", "good2", "cpu-fuzz-t1").write_text(json.dumps(moved))
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        pred = load_models(tmp_path, reload=True)
    assert any("its path says kern/good2/cpu-fuzz-t1" in str(x.message) for x in w)
    assert ("kern", "good2", "cpu-other-t1") not in pred.models


def test_models_option_naming_a_file_or_an_empty_folder_says_so(tmp_path):
    (tmp_path / "f.csv").write_text("x")
    with pytest.raises(ModelFormatError, match="is a file, not a directory"):
        load_models(tmp_path / "f.csv", reload=True)
    (tmp_path / "empty").mkdir()
    with pytest.raises(UnknownKernelError, match="no model files .* in .*empty"):
        load_models(tmp_path / "empty", reload=True).default_hardware("kern", "good")
