"""Issue 11, finding 6: two profilers on one CSV cannot duplicate rows. The second one fails
at once with one clear line (it does not wait); train refuses duplicate keys
(tests/test_hostile_csv.py)."""
import csv
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from annpred.data.rows import RowWriter, lock_path
from annpred.errors import DataError

REPO = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="flock is POSIX")


def test_second_writer_on_one_csv_is_refused(tmp_path):
    out = tmp_path / "p.csv"
    a, b = RowWriter(out, ["n"]), RowWriter(out, ["n"])
    assert a.existing() == []
    with pytest.raises(DataError, match="another annpred process"):
        b.existing()
    with pytest.raises(DataError, match="another annpred process"):
        b.__enter__()
    with a:
        a.write("toy", "cumsum", "cpu-x-t1", {"n": 5}, runtime_s=1e-3, point_id=0)
    with b:  # free again once the first writer is done
        b.write("toy", "cumsum", "cpu-x-t1", {"n": 6}, runtime_s=1e-3, point_id=1)
    assert len(b.existing()) == 2
    b.release()
    assert lock_path(out).exists()


HOLDER = """
import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)
fcntl.flock(fd, fcntl.LOCK_EX)
print("locked", flush=True)
time.sleep(120)
"""


def test_cli_profile_refuses_a_locked_csv(tmp_path, cli, toy_env):
    out = tmp_path / "p.csv"
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(lock_path(out))],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        r = cli(["profile", "toy", "--samples", "3", "--out", out, "--quiet",
                 "--min-time-ms", "1"], env=toy_env)
        assert r.returncode == 2
        lines = r.stderr.strip().splitlines()
        assert lines[-1].startswith("annpred: error:") and "another annpred process" in lines[-1]
        assert not out.exists() or out.stat().st_size == 0
    finally:
        holder.kill()
        holder.wait()
    r = cli(["profile", "toy", "--samples", "3", "--out", out, "--quiet", "--min-time-ms", "1"],
            env=toy_env)
    assert r.returncode == 0, r.stderr


def test_two_concurrent_profilers_never_duplicate_keys(tmp_path, toy_env):
    out = tmp_path / "p.csv"
    cmd = [sys.executable, "-m", "annpred.cli", "profile", "toy", "--samples", "40",
           "--out", str(out), "--quiet", "--min-time-ms", "2"]
    procs = [subprocess.Popen(cmd, env=toy_env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = [(p.wait(timeout=300), p.stderr.read()) for p in procs]
    for p in procs:
        p.stdout.close()
        p.stderr.close()
    assert all(rc in (0, 2) for rc, _ in results), results
    assert any(rc == 0 for rc, _ in results)
    for rc, err in results:
        if rc == 2:
            assert "another annpred process" in err
    with open(out, newline="") as f:
        rows = list(csv.DictReader(f))
    keys = Counter((r["variant"], r["hardware"], r["sampler"], r["seed"], r["point"], r["pass"])
                   for r in rows)
    assert keys and max(keys.values()) == 1


def test_halide_profile_refuses_a_csv_another_writer_holds(tmp_path):
    """Two ``annpred halide profile`` runs on one --out: the second is refused before it
    measures (it rewrote the whole file from memory, so one run's rows were lost)."""
    pytest.importorskip("halide")
    from annpred.data.rows import CsvLock
    from annpred.halide.profile import profile_pipeline

    out = tmp_path / "blur.csv"
    with CsvLock(out):
        with pytest.raises(DataError, match="another annpred process"):
            profile_pipeline("blur", n_schedules=1, sizes_per_schedule=1, threads=1, out=out,
                             progress=False)
    assert not out.exists()



def test_a_refused_csv_is_left_as_it_was_without_a_lock_file(tmp_path):
    """A foreign header or an untrainable row: refused, and no <csv>.lock left beside it
    (profile appended to a CSV with a runtime 'fast' in it)."""
    foreign = tmp_path / "f.csv"
    foreign.write_text("hello,world\n1,2\n")
    with pytest.raises(DataError, match="do not match"):
        RowWriter(foreign, ["n"]).existing()
    assert not lock_path(foreign).exists() and foreign.read_text() == "hello,world\n1,2\n"
    bad = tmp_path / "b.csv"
    w = RowWriter(bad, ["n"])
    with w:
        w.write("toy", "cumsum", "cpu-x-t1", {"n": 5}, runtime_s=1e-3, point_id=0)
    w.release()
    text = bad.read_text().replace(repr(1e-3), "fast")
    bad.write_text(text)
    lock_path(bad).unlink()
    with pytest.raises(DataError, match="row 2, column 'runtime_s': 'fast'"):
        RowWriter(bad, ["n"]).existing()
    assert not lock_path(bad).exists() and bad.read_text() == text
