"""``annpred profile KERNEL --hardware sim-<name>``: profiling rows from the fast model."""
import csv

from annpred.accel import description as D
from annpred.accel.evaluate import estimate
from annpred.accel.layers import make
from annpred.cli import main


def test_profile_writes_model_rows_and_resumes(tmp_path, capsys):
    out = tmp_path / "sim.csv"
    args = ["profile", "matmul", "--hardware", "sim-gemmini", "--samples", "12", "--quiet",
            "--out", str(out)]
    assert main(args) == 0
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 12
    acc = D.get("gemmini")
    for r in rows:
        assert (r["variant"], r["hardware"], r["repeats"]) == ("sim", "sim-gemmini", "1")
        layer = make("gemm", dict(M=int(r["m"]), K=int(r["k"]), N=int(r["n"])))
        want = estimate(acc, layer, "user")["seconds"]
        assert float(r["runtime_s"]) == want
    assert main(args) == 0          # same command again: nothing new
    assert len(list(csv.DictReader(out.open()))) == 12
    assert "0 rows measured, 12 already there" in capsys.readouterr().out


def test_profile_bad_hardware_exit_code_2(tmp_path, capsys):
    out = tmp_path / "x.csv"
    assert main(["profile", "fft", "--hardware", "sim-gemmini", "--samples", "3",
                 "--out", str(out)]) == 2
    assert "no accelerator mapping" in capsys.readouterr().err
    assert main(["profile", "conv2d", "--hardware", "cpu-x", "--samples", "3",
                 "--out", str(out)]) == 2
    assert not out.exists()


def test_choose_weighs_a_modelled_accelerator_against_cpu(tmp_path, capsys):
    import json
    import shutil
    from pathlib import Path

    csv_path, models = tmp_path / "tpu.csv", tmp_path / "models"
    assert main(["profile", "matmul", "--hardware", "sim-tpu-v1", "--samples", "40",
                 "--quiet", "--out", str(csv_path)]) == 0
    assert main(["train", str(csv_path), "--out", str(models)]) == 0
    cpu = sorted(Path("trained").glob("cpu-*-t1/matmul/numpy.json"))
    if not cpu:
        import pytest
        pytest.skip("no shipped CPU matmul model")
    dest = models / cpu[0].parent.parent.name / "matmul"
    dest.mkdir(parents=True)
    shutil.copy(cpu[0], dest / "numpy.json")
    capsys.readouterr()
    assert main(["choose", "matmul", "--models", str(models), "--candidate",
                 f"numpy@{cpu[0].parent.parent.name}", "--candidate", "sim@sim-tpu-v1",
                 "m=512", "n=512", "k=512", "da=0.5", "db=0.5", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert set(d["predicted"]) == {f"numpy@{cpu[0].parent.parent.name}", "sim@sim-tpu-v1"}
    # a 256x256 array at 700 MHz beats one CPU core on a 512^3 product by orders of magnitude
    # (the shipped CPU model may come from another machine: then choose falls back, but its
    # prediction still ranks the accelerator first)
    assert d["predicted_best"] == "sim@sim-tpu-v1"
    assert d["predicted"]["sim@sim-tpu-v1"] * 10 < d["predicted"][f"numpy@{cpu[0].parent.parent.name}"]


def test_profile_says_what_its_time_budget_left(tmp_path, capsys):
    """A run that the time budget ends says how many planned rows are left (it read as if
    the CSV held them all); a run that finishes says nothing of the kind."""
    import re

    out = tmp_path / "tb.csv"
    # at least 300 rows x 5 ms planned: far beyond the 0.3 s budget on any machine
    assert main(["profile", "matvec", "--samples", "100", "--threads", "1", "--time-budget",
                 "0.3", "--min-time-ms", "5", "--quiet", "--out", str(out)]) == 0
    line = capsys.readouterr().out
    m = re.search(r"(\d+) rows measured, 0 already there; the time budget ended the run "
                  r"\((\d+) of (\d+) planned rows left: the same command continues\)", line)
    assert m, line
    written, left, total = map(int, m.groups())
    assert written + left == total and left > 0
    assert len(list(csv.DictReader(out.open()))) == written
    sim = tmp_path / "sim.csv"
    assert main(["profile", "matmul", "--hardware", "sim-gemmini", "--samples", "4",
                 "--quiet", "--out", str(sim)]) == 0
    assert capsys.readouterr().out.endswith(
        "4 rows measured, 0 already there (of 4 rows this run planned)\n")
