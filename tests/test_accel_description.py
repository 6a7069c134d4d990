"""Accelerator descriptions, layers and network tables: shipped files load; bad input gives
one clear ParameterError/DataError naming the problem."""
import json

import pytest
import yaml

from annpred.accel import description as D
from annpred.accel.layers import make, parse, read_network
from annpred.accel.mapping import plan
from annpred.errors import DataError, ParameterError


def test_shipped_descriptions_cover_the_required_kinds():
    s = D.shipped()
    assert {"systolic32", "tpu-v1", "eyeriss", "gemmini", "vector64"} <= set(s)
    assert (s["tpu-v1"].rows, s["tpu-v1"].cols) == (256, 256)
    assert (s["eyeriss"].rows, s["eyeriss"].cols) == (12, 14)
    assert (s["gemmini"].rows, s["gemmini"].dataflow) == (16, "ws")
    assert s["vector64"].dataflow == "vector"
    for acc in s.values():   # round trip through the flat dict
        assert D.from_dict(acc.to_dict()) == acc


def _desc(**over):
    d = yaml.safe_load((D.SHIPPED / "systolic32.yaml").read_text())
    for k, v in over.items():
        cur = d
        *path, last = k.split(".")
        for part in path:
            cur = cur[part]
        cur[last] = v
    return d


@pytest.mark.parametrize("field, value, words", [
    ("array.rows", 0, "rows must be >= 1"),
    ("array.cols", -3, "cols must be >= 1"),
    ("array.dataflow", "rs", "dataflow must be one of"),
    ("buffers.ifmap.kb", 0, "buffers.ifmap: kb must be >= 1"),
    ("buffers.filter.kb", "big", "kb must be an integer"),
    ("dram.bandwidth", 0, "bandwidth must be >= 1"),
    ("clock_mhz", -1, "clock_mhz must be a positive number"),
])
def test_bad_descriptions_name_the_field(field, value, words):
    with pytest.raises(ParameterError, match=words):
        D.from_dict(_desc(**{field: value}), source="x.json")


def test_buffer_too_small_for_one_tile():
    d = _desc(**{"array.rows": 128, "array.cols": 128})
    d["buffers"]["ofmap"]["kb"] = 1   # 1024 words < 2 x 1024
    d["array"]["rows"], d["array"]["cols"] = 1024, 1024
    with pytest.raises(ParameterError, match="too small for one tile"):
        D.from_dict(d)


def test_unknown_accelerator_and_bad_files(tmp_path):
    with pytest.raises(ParameterError, match="unknown accelerator 'nope'"):
        D.get("nope")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ParameterError, match="bad.json: not valid JSON"):
        D.load(bad)
    assert D.get("sim-gemmini").name == "gemmini"


def test_yaml_and_json_files_load_the_same(tmp_path):
    d = _desc()
    d["name"] = "mine"
    js, ym = tmp_path / "mine.json", tmp_path / "mine.yaml"
    js.write_text(json.dumps(d))
    ym.write_text(yaml.safe_dump(d))
    a, b = D.get(str(js)), D.get(str(ym))
    assert a == b and a.name == "mine" and (a.rows, a.cols) == (32, 32)
    yml = tmp_path / "flow.yml"   # flow style (JSON-like) YAML with a comment
    yml.write_text("# mine\n" + json.dumps(d, indent=1))
    assert D.load(yml) == a


@pytest.mark.parametrize("text, words", [
    ("array: [rows: 3\n", "bad.yaml: not valid YAML \\(line 2, column 1: expected"),
    ("name: a\narray:\n  rows: 2\n\tcols: 3\n", "bad.yaml: not valid YAML \\(line 4"),
    ("- 1\n- 2\n", "bad.yaml: expected a mapping of fields"),
    ("", "bad.yaml: expected a mapping of fields"),
    ("name: a\nname: b\n", "bad.yaml: line 2: field 'name' given twice"),
    ("!!python/object:os.system {}\n", "bad.yaml: not valid YAML"),
])
def test_bad_yaml_is_one_clear_error(tmp_path, text, words):
    bad = tmp_path / "bad.yaml"
    bad.write_text(text)
    with pytest.raises(ParameterError, match=words):
        D.load(bad)


def test_yaml_field_errors_name_the_file_and_field(tmp_path):
    d = _desc(**{"array.dataflow": "rs"})
    p = tmp_path / "x.yaml"
    p.write_text(yaml.safe_dump(d))
    with pytest.raises(ParameterError, match=r"x.yaml \(systolic32\): array.dataflow must be"):
        D.load(p)
    d = _desc(**{"buffers.ifmap.kb": "1e3"})
    p.write_text(yaml.safe_dump(d))
    with pytest.raises(ParameterError, match=r"x.yaml \(systolic32\): buffers.ifmap: kb must be"):
        D.load(p)


@pytest.mark.parametrize("spec, words", [
    ("conv2d:0,5,3,3,1,1,1", "H must be positive"),
    ("conv2d:8,8,3,3,4,-2,1", "M must be positive"),
    ("conv2d:8,8,3,3,4", "takes 7 numbers"),
    ("pool:1,2", "unknown kind 'pool'"),
    ("gemm:4,x,4", "is not an integer"),
    ("conv2d:4,4,5,5,1,1,1", "larger than the"),
])
def test_bad_layers(spec, words):
    with pytest.raises(ParameterError, match=words):
        parse(spec)


def test_layer_larger_than_the_description_allows():
    acc = D.get("systolic32")
    with pytest.raises(ParameterError, match="more than systolic32 addresses"):
        plan(acc, parse("gemm:100000,1000,10"), "user")


def test_padding_gives_the_frameworks_output_size():
    layer = make("conv2d", dict(H=56, W=56, R=3, S=3, C=64, M=128, stride=2), pad=1)
    assert (layer.E, layer.F) == (28, 28)
    assert make("conv2d", dict(H=224, W=224, R=7, S=7, C=3, M=64, stride=2), pad=3).E == 112


def test_network_tables(tmp_path):
    r18 = read_network("resnet18")
    assert len(r18) == 21 and sum(layer.macs() for layer in r18) == pytest.approx(1.81e9, rel=0.01)
    mb = read_network("mobilenet_v1")
    assert sum(layer.macs() for layer in mb) == pytest.approx(5.69e8, rel=0.01)
    assert len(read_network("bert_base_block")) == 30
    bad = tmp_path / "net.csv"
    bad.write_text("name,kind,H,W,R,S,C,M,stride,pad\nc1,conv2d,8,8,3,3,4,x,1,0\n")
    with pytest.raises(DataError, match="net.csv, line 2, column .M.: .x. is not an integer"):
        read_network(bad)
    dup = tmp_path / "dup.csv"
    dup.write_text("name,kind,H,W,R,S,C,M,stride,pad\nc1,conv2d,8,8,3,3,4,8,1,0\n"
                   "c2,conv2d,8,8,3,3,4,8,1,0\nc1,conv2d,8,8,3,3,8,8,1,0\n")
    with pytest.raises(DataError, match="dup.csv, line 4: layer name 'c1' is already used at "
                                        "line 2"):
        read_network(dup)
    dup.write_text("name,kind,H,W,R,S,C,M,stride,pad\n,conv2d,8,8,3,3,4,8,1,0\n"
                   ",conv2d,8,8,3,3,4,8,1,0\n")
    assert len(read_network(dup)) == 2  # unnamed rows are labelled by their shapes


def test_accel_imports_no_torch_halide_or_measurement_code():
    import subprocess
    import sys

    code = ("import sys, annpred.accel, annpred.accel.cli, annpred.accel.profile; "
            "print([m for m in ('torch', 'halide', 'annpred.measure', 'annpred.profile') "
            "if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == "[]"
