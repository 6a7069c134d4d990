"""Hostile input to ``annpred accel``: descriptions with NaN, deep nesting, huge integers,
unknown fields; FIFOs and devices in place of files; network tables with duplicated columns,
long rows, a byte-order mark, no pad column, or layers too large. Each is one error line
naming the file (and field, or line and column), exit code 2, never a traceback or a hang."""
import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from annpred.accel import description as D
from annpred.accel.layers import read_network
from annpred.cli import main
from annpred.errors import AnnpredWarning, DataError, ParameterError

REPO = Path(__file__).resolve().parent.parent
SYSTOLIC = (D.SHIPPED / "systolic32.yaml").read_text()
HEAD = "name,kind,H,W,R,S,C,M,stride,pad,K,N\n"
CONV = "c1,conv2d,56,56,3,3,64,64,1,1,,\n"


def run(capsys, *args):
    rc = main(list(args))
    out, err = capsys.readouterr()
    return rc, out, err


def refused(capsys, *args) -> str:
    """The one error line of a refused command (exit code 2, nothing on stdout)."""
    rc, out, err = run(capsys, "accel", *args)
    assert rc == 2 and out == "", err
    assert err.startswith("annpred: error: ") and len(err.strip().splitlines()) == 1, err
    return err


from test_accel_description import _desc  # noqa: E402


# -- 1. NaN and infinity ---------------------------------------------------------------

@pytest.mark.parametrize("old, new, field", [
    ("    kb: 64\n", "    kb: .nan\n", "buffers.ifmap: kb must be an integer, got nan"),
    ("    kb: 64\n", "    kb: .inf\n", "buffers.ifmap: kb must be an integer, got inf"),
    ("  rows: 32\n", "  rows: -.inf\n", "array: rows must be an integer, got -inf"),
    ("  bandwidth: 10\n", "  bandwidth: .nan\n", "dram: bandwidth must be an integer"),
    ("  mac: 1\n", "  mac: .inf\n", "latency: mac must be an integer"),
    ("clock_mhz: 1000\n", "clock_mhz: .inf\n", "clock_mhz must be a positive number (finite"),
    ("clock_mhz: 1000\n", "clock_mhz: .nan\n", "clock_mhz must be a positive number (finite"),
])
def test_nan_and_infinity_in_yaml_name_the_field(capsys, tmp_path, old, new, field):
    f = tmp_path / "acc.yaml"
    f.write_text(SYSTOLIC.replace(old, new, 1))
    for args in (("show", str(f)), ("estimate", str(f), "--layer", "gemm:64,64,64")):
        err = refused(capsys, *args)
        assert "acc.yaml (systolic32): " + field in err


@pytest.mark.parametrize("text, field", [
    ('"rows": NaN', "array: rows must be an integer, got nan"),
    ('"rows": Infinity', "array: rows must be an integer, got inf"),
    ('"rows": 1e400', "array: rows must be an integer, got inf"),
])
def test_nan_and_infinity_in_json_name_the_field(capsys, tmp_path, text, field):
    f = tmp_path / "acc.json"
    f.write_text(json.dumps(_desc()).replace('"rows": 32', text))
    assert "acc.json (systolic32): " + field in refused(capsys, "show", str(f))


# -- 2. parser bombs, FIFOs, devices, oversized files -----------------------------------

@pytest.mark.parametrize("name, text, words", [
    ("deep.json", "[" * 100_000 + "]" * 100_000, "not valid JSON (nested more than"),
    ("big.json", '{"name": "x", "word_bytes": ' + "9" * 5000 + "}", "not valid JSON (an integer"),
    ("deep.yaml", "[" * 100_000 + "]" * 100_000, "not valid YAML (nested too deeply)"),
    ("big.yaml", "name: x\nword_bytes: " + "9" * 5000 + "\n", "not valid YAML (an integer of"),
    ("twice.json", '{"name": "a", "name": "b"}', "twice.json: field 'name' given twice"),
    ("key.yaml", "name: x\n[a, b]: 1\n", "key.yaml: line 2: a field name must be text"),
])
def test_parser_bombs_are_one_clear_error(capsys, tmp_path, name, text, words):
    f = tmp_path / name
    f.write_text(text)
    assert words in refused(capsys, "show", str(f))


def test_alias_bomb_is_not_expanded_in_messages(tmp_path):
    """A YAML alias makes a list of 10**8 elements out of a few lines: the message names its
    type, it does not print it."""
    s = "description: [&l0 [1,1,1,1,1,1,1,1,1,1]"
    for i in range(1, 9):
        s += f", &l{i} [{','.join([f'*l{i - 1}'] * 10)}]"
    f = tmp_path / "lol.yaml"
    f.write_text(s + "]\nname: *l8\n")
    with pytest.raises(ParameterError, match="name must be .*, got a list$"):
        D.load(f)
    bomb = "[&l0 [1,1,1,1,1,1,1,1,1,1]" + "".join(
        f", &l{i} [{','.join([f'*l{i - 1}'] * 10)}]" for i in range(1, 6)) + "]"
    lines = [ln for ln in SYSTOLIC.splitlines() if not ln.startswith(("description", "  change"))]
    f.write_text("\n".join(lines) + f"\ndescription: {bomb}\n")
    with pytest.raises(ParameterError, match=r"\(systolic32\): description must be text, got "
                                             r"a list$"):
        D.load(f)


def test_oversized_description_is_refused_before_reading(capsys, tmp_path):
    f = tmp_path / "big.yaml"
    f.write_text(SYSTOLIC + "#" * D.MAX_BYTES)
    assert "big.yaml is " in refused(capsys, "show", str(f))


PROBE = """
import resource, sys
resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))  # an old reader of /dev/zero dies
from annpred.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
@pytest.mark.parametrize("kind", ["fifo", "device"])
@pytest.mark.parametrize("what", ["description", "network"])
def test_non_regular_files_are_refused_without_hanging(tmp_path, kind, what):
    p = tmp_path / ("acc.yaml" if what == "description" else "net.csv")
    if kind == "fifo":
        os.mkfifo(p)
    else:
        os.symlink("/dev/zero", p)
    args = (["accel", "show", str(p)] if what == "description" else
            ["accel", "estimate", "systolic32", "--network", str(p)])
    try:
        r = subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True, text=True,
                           timeout=60, env={**os.environ, "PYTHONPATH": str(REPO)})
    except subprocess.TimeoutExpired:
        pytest.fail(f"annpred {' '.join(args)} hangs")
    assert r.returncode == 2 and "is not a regular file" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr


# -- 3. unknown fields ------------------------------------------------------------------

@pytest.mark.parametrize("old, new, words", [
    ("    double_buffered: true\n", "    double_bufferd: false\n",
     "buffers.ifmap: unknown field 'double_bufferd' (did you mean 'double_buffered'?); "
     "allowed: kb, banks, double_buffered"),
    ("latency:\n", "latncy:\n", "unknown field 'latncy' (did you mean 'latency'?)"),
    ("  rows: 32\n", "  rows: 32\n  depth: 3\n", "array: unknown field 'depth'; allowed: rows"),
    ("  bandwidth: 10\n", "  bandwith: 10\n", "dram: unknown field 'bandwith'"),
    ("  sram: 1\n", "  sram: 1\n  io: 2\n", "latency: unknown field 'io'; allowed: mac, sram"),
    ("  ofmap:\n", "  psum:\n    kb: 64\n  ofmap:\n", "buffers: unknown field 'psum'"),
    ("clock_mhz: 1000\n", "clock_MHz: 1000\n", "unknown field 'clock_MHz'"),
])
def test_unknown_fields_are_refused_at_every_level(capsys, tmp_path, old, new, words):
    f = tmp_path / "acc.yaml"
    assert old in SYSTOLIC
    f.write_text(SYSTOLIC.replace(old, new, 1))
    assert words in refused(capsys, "estimate", str(f), "--layer", "gemm:64,64,64")


def test_every_shipped_description_and_show_json_still_load(capsys, tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("error")   # shipped descriptions set nothing without effect
        for name, acc in D.shipped().items():
            rc, out, _ = run(capsys, "accel", "show", name, "--json")
            f = tmp_path / f"{name}.json"
            f.write_text(out)   # `accel show --json` is a description too (flat form)
            assert rc == 0 and D.load(f) == acc
    d = json.loads(out)
    d["mac_latncy"] = 2
    f.write_text(json.dumps(d))
    with pytest.raises(ParameterError, match="unknown field 'mac_latncy' \\(did you mean "
                                             "'mac_latency'\\?\\)"):
        D.load(f)


def test_latency_without_effect_warns(tmp_path):
    f = tmp_path / "acc.yaml"
    f.write_text(SYSTOLIC.replace("  mac: 1\n", "  mac: 8\n"))
    with pytest.warns(AnnpredWarning, match="latency.mac = 8 has no effect with "
                                            "array.dataflow os"):
        D.load(f)
    f.write_text(SYSTOLIC.replace("  sram: 1\n", "  sram: 3\n"))
    with pytest.warns(AnnpredWarning, match="latency.sram = 3 has no effect"):
        D.load(f)
    with warnings.catch_warnings():   # the vector dataflow models it: no warning
        warnings.simplefilter("error")
        assert D.get("vector64").with_(mac_latency=8).mac_latency == 8


# -- 4. network tables ------------------------------------------------------------------

def _net(tmp_path, text, name="net.csv"):
    f = tmp_path / name
    f.write_bytes(text.encode())
    return str(f)


@pytest.mark.parametrize("text, words", [
    (HEAD.replace("\n", ",H\n") + CONV.replace("\n", ",7\n"),
     "net.csv: duplicate column 'H' in the header"),
    (HEAD + CONV.replace("\n", ",,,9\n"), "net.csv, line 2 has 15 fields; the header names 12"),
    (HEAD + "\n" + CONV.replace(",,\n", "\n"), "net.csv, line 3 has 10 fields"),
    ("name,kind,H,W,R,S,C,M,stride\nc1,conv2d,56,56,3,3,64,64,1\n",
     "net.csv, line 2: a conv2d layer needs column 'pad' (0 for no padding)"),
    (HEAD + "c1,conv2d,56,56,3,3,64,64,1,,,\n", "net.csv, line 2, column 'pad': empty"),
    (HEAD + "c1,conv2d,56,56,3,3,64,64,1,x,,\n", "net.csv, line 2, column 'pad': 'x' is not"),
    (HEAD + "g1,gemm,56,,,,,64,,,64,64\n", "net.csv, line 2, column 'H': a gemm layer has no H"),
    (HEAD + "d1,dwconv,56,56,3,3,64,32,1,1,,\n",
     "net.csv, line 2, column 'M': a dwconv layer has no M (its M is C = 64)"),
    (HEAD.replace(",N", ",N,groups") + CONV.replace("\n", ",2\n"),
     "net.csv: unknown column 'groups'"),
    (HEAD + "c1,conv2d," + "9" * 30 + ",56,3,3,64,64,1,1,,\n", "column 'H': '999"),
    (HEAD + CONV.replace("c1", "c\x1b[2J"), "net.csv, line 2: layer name"),
])
def test_bad_network_tables_name_file_line_and_column(capsys, tmp_path, text, words):
    assert words in refused(capsys, "estimate", "systolic32", "--network", _net(tmp_path, text))


def test_errors_of_a_too_large_layer_name_the_file_and_line(capsys, tmp_path):
    f = _net(tmp_path, HEAD + CONV + CONV.replace("c1", "c2").replace("1,1,,", "1,100000,,"))
    err = refused(capsys, "estimate", "systolic32", "--network", f)
    assert "net.csv, line 3: layer c2: ifmap needs" in err


def test_network_with_byte_order_mark_reads_as_without(tmp_path):
    plain = read_network(_net(tmp_path, HEAD + CONV))
    assert read_network(_net(tmp_path, "\ufeff" + HEAD + CONV, "bom.csv")) == plain
    assert read_network(_net(tmp_path, HEAD + "\n" + CONV + "\n", "blank.csv")) == plain
    dw = HEAD + "d1,dwconv,56,56,3,3,64,64,1,1,,\n"   # M given as C: allowed
    assert read_network(_net(tmp_path, dw, "dw.csv"))[0].M == 64


def test_shipped_network_tables_still_load():
    assert [len(read_network(n)) for n in ("resnet18", "mobilenet_v1", "bert_base_block")] \
        == [21, 28, 30]
    with pytest.raises(DataError, match="network table .* does not exist"):
        read_network("no/such/net.csv")


# -- 5. a directory ---------------------------------------------------------------------

def test_directory_is_not_an_unknown_accelerator(capsys, tmp_path):
    assert "is a directory, not a file" in refused(capsys, "show", str(tmp_path))
    assert "is a directory, not a file" in refused(capsys, "estimate", "systolic32",
                                                   "--network", str(tmp_path))
    assert "does not exist" in refused(capsys, "show", str(tmp_path / "mine"))
    assert "unknown accelerator 'nope'" in refused(capsys, "show", "nope")
