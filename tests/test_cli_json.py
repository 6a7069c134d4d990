"""The command line as scripts use it: ``--json`` prints one strict JSON document on stdout
(no NaN/Infinity tokens), errors exit 2 with nothing on stdout, outputs never replace
inputs."""
from __future__ import annotations

import gzip
import itertools
import json
import math
import warnings

import numpy as np
import pytest

from annpred.cli.app import main
from annpred.cli.common import json_safe


def strict(text: str):
    """``json.loads`` as any other JSON parser reads: NaN and Infinity are not JSON."""
    def refuse(token):
        raise ValueError(f"not JSON: {token}")
    return json.loads(text, parse_constant=refuse)


@pytest.fixture
def wide_interval_models(tmp_path, monkeypatch):
    """A copy of a shipped matmul model whose interval's upper offset is near float's
    limit: a large prediction times exp(hi) overflows to inf."""
    from annpred.model.layout import shipped_root

    monkeypatch.setenv("ANNPRED_MODELS", str(tmp_path / "user_models"))
    src = sorted(shipped_root().glob("*/matmul/numpy.json"))[0]
    d = json.loads(src.read_text())
    d["hardware"] = "cpu-test-t1"
    d.pop("machine", None)
    d["interval"] = {"nominal": 0.9, "lo": 660.0, "hi": 709.7, "n": 50, "method": "test"}
    out = tmp_path / "models" / "cpu-test-t1" / "matmul" / "numpy.json"
    out.parent.mkdir(parents=True)
    out.write_text(json.dumps(d))
    return tmp_path / "models"


def test_json_safe_makes_non_finite_numbers_null_and_numpy_plain():
    got = json_safe({"a": float("nan"), "b": (1.5, float("inf")), "c": np.float32("-inf"),
                     "d": np.int64(3), "e": np.array([1.0, np.nan]), "f": True, "g": None})
    assert got == {"a": None, "b": [1.5, None], "c": None, "d": 3, "e": [1.0, None],
                   "f": True, "g": None}
    assert strict(json.dumps(got, allow_nan=False)) == got


@pytest.mark.parametrize("command", [
    ["predict", "matmul", "--variant", "numpy", "m=20000", "n=20000", "k=20000"],
    ["choose", "matmul", "m=20000", "n=20000", "k=20000", "da=0.01", "--candidate",
     "numpy@cpu-test-t1", "--trust-machine", "--policy", "extrapolate"],
])
def test_an_interval_past_floats_range_is_null_not_infinity(command, wide_interval_models,
                                                            capsys):
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # the overflow is expected, not warned
        rc = main([*command, "--models", str(wide_interval_models), "--json"])
    out = capsys.readouterr().out
    assert rc == 0
    doc = strict(out)  # one document, strict JSON
    iv = doc["interval"] if command[0] == "predict" else doc["intervals"]["numpy@cpu-test-t1"]
    assert math.isfinite(doc["seconds"]) and doc["seconds"] > 1.1  # so seconds*e^709.7 = inf
    assert iv[0] > 0 and iv[1] is None


def test_batch_predict_with_json_prints_one_summary_object(wide_interval_models, tmp_path,
                                                           capsys):
    pts, preds = tmp_path / "pts.csv", tmp_path / "preds.csv"
    pts.write_text("m,n,k\n512,512,512\n64,64,64\n5000,64,64\n")
    rc = main(["predict", "matmul", "--variant", "numpy", "--models",
               str(wide_interval_models), "--input", str(pts), "--output", str(preds),
               "--json"])
    assert rc == 0
    doc = strict(capsys.readouterr().out)
    assert doc == {"kernel": "matmul", "variant": "numpy", "hardware": "cpu-test-t1",
                   "output": str(preds), "n_rows": 3, "n_out_of_range": 1}
    assert preds.read_text().count("\n") == 4


def test_json_error_exits_2_with_one_line_and_nothing_on_stdout(wide_interval_models, capsys):
    rc = main(["predict", "matmul", "--variant", "numpy", "m=abc", "n=1", "k=1", "--json",
               "--models", str(wide_interval_models)])
    cap = capsys.readouterr()
    assert rc == 2 and cap.out == ""
    assert cap.err.count("\n") == 1 and cap.err.startswith("annpred: error: ")


def _tiny_cache(path):
    tune = {"block_size_x": [16, 32, 64, 128], "block_size_y": [1, 2, 4, 8]}
    cache = {}
    for i, (bx, by) in enumerate(itertools.product(*tune.values())):
        if i % 4 == 0:
            continue  # a partial run: --space product has configurations to predict
        t = 1.0 + 100.0 / (bx * by)
        cache[f"{bx},{by}"] = {"block_size_x": bx, "block_size_y": by, "time": t,
                               "times": [t] * 3}
    doc = {"device_name": "Test GPU", "kernel_name": "k", "problem_size": [1024, 1024],
           "tune_params_keys": list(tune), "tune_params": tune, "objective": "time",
           "cache": cache}
    path.write_bytes(gzip.compress(json.dumps(doc).encode()))


@pytest.mark.parametrize("space", ["cache", "product"])
def test_tune_space_out_never_replaces_its_input_and_is_checked_first(tmp_path, capsys,
                                                                      space):
    cache = tmp_path / "run.json.gz"
    _tiny_cache(cache)
    before = cache.read_bytes()
    args = ["tune-space", str(cache), "--space", space, "--model", "LR+C", "--quiet"]
    if space == "cache":
        args += ["--budget", "8", "--strategy", "random"]
    rc = main([*args, "--out", str(cache)])
    cap = capsys.readouterr()
    assert rc == 2 and cap.out == "", cap.out  # refused before any fit or report
    assert "--out" in cap.err and "input" in cap.err and cap.err.count("\n") == 1
    assert cache.read_bytes() == before
    (tmp_path / "adir").mkdir()
    rc = main([*args, "--out", str(tmp_path / "adir")])
    cap = capsys.readouterr()
    assert rc == 2 and cap.out == "" and "directory" in cap.err


def test_kernels_models_naming_a_file_says_so(tmp_path, capsys):
    f = tmp_path / "models.txt"
    f.write_text("x")
    assert main(["kernels", "--json", "--models", str(f)]) == 2
    cap = capsys.readouterr()
    assert cap.out == "" and "is a file, not a directory" in cap.err


def test_ctrl_c_while_the_parser_is_built_exits_130_without_traceback(monkeypatch, capsys):
    from annpred.cli import app

    def interrupted():
        raise KeyboardInterrupt
    monkeypatch.setattr(app, "build_parser", interrupted)
    try:
        rc = app.main(["kernels", "--json"])
    except KeyboardInterrupt:  # would end the test session, not only this test
        pytest.fail("KeyboardInterrupt escaped main()")
    assert rc == 130
    cap = capsys.readouterr()
    assert cap.out == "" and cap.err == "annpred: interrupted\n"
