"""``annpred accel list|show|estimate``: output formats and exit code 2 on bad input."""
import ast
import json

import pytest

from annpred.cli import main


def run(capsys, *args):
    rc = main(list(args))
    out, err = capsys.readouterr()
    return rc, out, err


def test_list_json_one_object_per_accelerator(capsys):
    rc, out, _ = run(capsys, "accel", "list", "--json")
    items = json.loads(out)
    assert rc == 0 and isinstance(items, list)
    assert {i["name"] for i in items} >= {"systolic32", "tpu-v1", "eyeriss", "gemmini", "vector64"}
    assert all(i["hardware"] == "sim-" + i["name"] for i in items)


def test_show_and_estimate(capsys):
    rc, out, _ = run(capsys, "accel", "show", "gemmini", "--json")
    d = json.loads(out)
    assert rc == 0 and d["rows"] == 16
    # (the finite-bandwidth text is written without spaces or redundant parentheses, to stay
    # under the length bound)
    compact = ast.unparse(ast.parse(d["complexity"]["conv2d"], mode="eval")).replace(" ", "")
    assert d["complexity"]["conv2d_finite_bandwidth"].startswith(compact + "-1+max(")
    rc, out, _ = run(capsys, "accel", "show", "tpu-v1")
    assert rc == 0 and "stall estimate of conv2d (for --complexity): " in out
    # every number with its unit
    for line in ("dram_bandwidth: 64 words/cycle", "clock_mhz: 700.0 MHz",
                 "filter: 4096 KiB, 1 bank, double-buffered", "dram_latency: 1 cycles"):
        assert f"  {line}\n" in out
    rc, out, _ = run(capsys, "accel", "estimate", "systolic32", "--layer", "gemm:64,64,64")
    head, cols = out.splitlines()[:2]
    assert rc == 0 and head.endswith("user mode, 1000 MHz)")
    assert cols.split() == ["layer", "cycles", "ms", "roofline", "cycles", "iterations",
                            "evaluated/total"]
    rc, out, _ = run(capsys, "accel", "estimate", "systolic32", "--layer",
                     "conv2d:10,10,3,3,4,8,1", "--mode", "calc", "--json")
    d = json.loads(out)
    assert rc == 0
    # output stationary, ideal bandwidth: ceil(64/32) row folds * (36 + 32 + 32 - 2) - 1
    assert d["layers"][0]["cycles"] == 2 * 98 - 1
    rc, out, _ = run(capsys, "accel", "estimate", "tpu-v1", "--network", "bert_base_block",
                     "--json")
    d = json.loads(out)
    assert rc == 0 and len(d["layers"]) == 30
    assert d["total"]["cycles"] == sum(r["cycles"] for r in d["layers"])


@pytest.mark.parametrize("args, words", [
    (("accel", "show", "nope"), "unknown accelerator 'nope'"),
    (("accel", "estimate", "systolic32", "--layer", "conv2d:0,4,3,3,1,1,1"), "H must be positive"),
    (("accel", "estimate", "systolic32", "--layer", "conv2d:9,9,3,3,1,1"), "takes 7 numbers"),
    (("accel", "estimate", "systolic32"), "give --layer"),
    (("accel", "estimate", "systolic32", "--network", "missing.csv"),
     "network table missing.csv does not exist"),
])
def test_bad_input_exit_code_2(capsys, args, words):
    rc, out, err = run(capsys, *args)
    assert rc == 2 and out == ""
    assert err.startswith("annpred: error: ") and words in err
    assert len(err.strip().splitlines()) == 1


def test_bad_description_file_exit_code_2(capsys, tmp_path):
    f = tmp_path / "acc.json"
    f.write_text(json.dumps({"name": "x", "array": {"rows": 4, "cols": 4, "dataflow": "rs"}}))
    rc, _, err = run(capsys, "accel", "show", str(f))
    assert rc == 2 and "dataflow must be one of" in err


@pytest.mark.parametrize("name, text, words", [
    ("acc.yaml", "name: x\narray: {rows: 4, cols: 4, dataflow: rs}\n", "dataflow must be one of"),
    ("acc.yaml", "name: x\narray: [rows: 4\n", "acc.yaml: not valid YAML (line 3"),
    ("acc.yml", "name: x\nname: y\n", "acc.yml: line 2: field 'name' given twice"),
])
def test_bad_yaml_description_exit_code_2(capsys, tmp_path, name, text, words):
    f = tmp_path / name
    f.write_text(text)
    rc, out, err = run(capsys, "accel", "estimate", str(f), "--layer", "gemm:4,4,4")
    assert rc == 2 and out == "" and words in err
    assert len(err.strip().splitlines()) == 1


def test_yaml_description_file_estimates(capsys, tmp_path):
    from annpred.accel.description import SHIPPED

    f = tmp_path / "mine.yaml"
    f.write_text((SHIPPED / "systolic32.yaml").read_text().replace("name: systolic32",
                                                                   "name: mine"))
    rc, out, _ = run(capsys, "accel", "estimate", str(f), "--layer", "conv2d:10,10,3,3,4,8,1",
                     "--mode", "calc", "--json")
    d = json.loads(out)
    assert rc == 0 and d["accel"] == "mine" and d["layers"][0]["cycles"] == 2 * 98 - 1
