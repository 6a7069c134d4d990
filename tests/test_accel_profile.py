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
