"""experiments/reprofile_catalog.sh: the commands it runs for the catalog's protocols (a
stub stands in for Python, so nothing is measured)."""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "experiments" / "reprofile_catalog.sh"


def _run(tmp_path, env_extra, *args):
    log = tmp_path / "calls.log"
    stub = tmp_path / "py"
    # `-c ...` asks for the hardware id; every other call is logged, one line per call
    stub.write_text("#!/usr/bin/env bash\n"
                    'if [ "$1" = "-c" ]; then echo cpu-test-t1; exit 0; fi\n'
                    f'echo "$*" >> "{log}"\n')
    stub.chmod(0o755)
    env = {**os.environ, "PYTHON": str(stub), "THREADS": "1", **env_extra}
    r = subprocess.run(["bash", str(SCRIPT), "60", *args], env=env, capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return log.read_text().splitlines() if log.exists() else []


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_pool_and_test_points_in_one_run_then_the_test_points_again(tmp_path):
    """Stop 45's protocol: 650 points in one shuffled run (test points 0..349 and the pool),
    then the first 350 again, into a scratch folder, without training."""
    root = tmp_path / "scratch"
    first = _run(tmp_path, {"DATA_ROOT": str(root), "SAMPLES": "650", "TRAIN": "0"},
                 "matvec", "fft")
    second = _run(tmp_path, {"DATA_ROOT": str(root), "SAMPLES": "650", "FIRST": "350",
                             "PASS": "1", "TRAIN": "0"}, "matvec")[len(first):]
    assert len(first) == 2 and len(second) == 1
    for line, kernel in zip(first, ("matvec", "fft")):
        assert f"profile {kernel} " in line and "--samples 650" in line
        assert "--first" not in line and "--pass" not in line
        assert f"--out {root}/cpu-test-t1/data/{kernel}.csv" in line
    assert "--pass 1 --first 350" in second[0] and "--samples 650" in second[0]
    assert (root / "cpu-test-t1" / "data").is_dir()
    assert not any(" train " in f" {c} " for c in first + second)


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_the_default_still_measures_350_points_and_trains(tmp_path):
    root = tmp_path / "t"
    calls = _run(tmp_path, {"DATA_ROOT": str(root)}, "matmul")
    assert "--samples 350" in calls[0] and "--first" not in calls[0]
    # the models go beside the data they were trained on
    assert calls[1].startswith(f"-m annpred.cli train {root}/cpu-test-t1/data/matmul.csv")
    assert f"--out {root} " in calls[1]
