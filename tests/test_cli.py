import csv
import json
import signal
import subprocess
import sys
import time

import pytest

from conftest import run_cli


def rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_kernels_json_lists_catalog_and_user_kernel(toy_env):
    r = run_cli(["kernels", "--json"], env=toy_env)
    assert r.returncode == 0, r.stderr
    items = {k["name"]: k for k in json.loads(r.stdout)}
    assert "toy" in items
    for k in items.values():
        assert {"name", "parameters", "complexity", "variants"} <= set(k)
        assert all("name" in v for v in k["variants"])


def test_profile_train_predict_round_trip(toy_env, tmp_path):
    csv_path = tmp_path / "toy.csv"
    r = run_cli(["profile", "toy", "--variant", "cumsum", "--variant", "accumulate",
                 "--samples", "30", "--threads", "1", "--out", csv_path, "--quiet", "--check"],
                env=toy_env)
    assert r.returncode == 0, r.stderr
    data = rows(csv_path)
    assert len(data) == 60
    assert {d["variant"] for d in data} == {"cumsum", "accumulate"}
    assert all(float(d["runtime_s"]) > 0 and int(d["repeats"]) >= 5 for d in data)
    assert data[0]["hardware"].startswith("cpu-") and data[0]["hardware"].endswith("-t1")
    # order is shuffled, not sorted by size
    ns = [int(d["n"]) for d in data]
    assert ns != sorted(ns)

    models = tmp_path / "models"
    r = run_cli(["train", csv_path, "--out", models], env=toy_env)
    assert r.returncode == 0, r.stderr
    assert "val MAPE" in r.stdout and "params" in r.stdout
    files = sorted(models.rglob("*.json"))
    assert len(files) == 2
    r = run_cli(["predict", "toy", "--variant", "cumsum", "--models", models, "--json",
                 "n=100"], env=toy_env)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["seconds"] > 0 and out["in_range"] is True
    r = run_cli(["predict", "toy", "--variant", "cumsum", "--models", models, "--json",
                 "n=4096"], env=toy_env)
    out = json.loads(r.stdout)
    if not out["in_range"]:
        assert "outside the training range" in r.stderr
    # --models repeated: directories searched in order, a kernel's models on one hardware
    # id from the first that holds any (here a copy whose predictions are twice as long)
    import math
    import shutil

    other = tmp_path / "other"
    shutil.copytree(models, other)
    for f in other.rglob("*.json"):
        d = json.loads(f.read_text())
        d["target_scaler"]["mean"] += math.log(2)
        f.write_text(json.dumps(d))

    def seconds(*dirs, variant="cumsum"):
        r = run_cli(["predict", "toy", "--variant", variant, *sum((["--models", d]
                     for d in dirs), []), "--json", "n=100"], env=toy_env)
        assert r.returncode == 0, r.stderr
        return json.loads(r.stdout)["seconds"]

    base = seconds(models)
    assert seconds(models, other) == pytest.approx(base)
    assert seconds(other, models) == pytest.approx(2 * base)
    assert seconds(tmp_path, models) == pytest.approx(base)  # a directory without models
    r = run_cli(["choose", "toy", "--models", other, "--models", models, "--policy",
                 "extrapolate", "--json", "n=100"], env=toy_env)
    assert r.returncode == 0, r.stderr
    assert sorted(json.loads(r.stdout)["predicted"].values())[0] > 1.5 * min(
        seconds(models), seconds(models, variant="accumulate"))
    r = run_cli(["predict", "toy", "--variant", "cumsum", "--models", models, "--models",
                 tmp_path / "missing", "n=100"], env=toy_env)
    assert r.returncode == 2 and "missing does not exist" in r.stderr


def test_profile_interrupt_leaves_valid_csv_and_resumes(toy_env, tmp_path):
    csv_path = tmp_path / "sleepy.csv"
    # 100 ms per point: the run lasts seconds, so the interrupt lands inside it even when a
    # busy machine delays this test process
    args = [sys.executable, "-m", "annpred.cli", "profile", "toy", "--variant", "sleepy",
            "--samples", "40", "--min-time-ms", "100", "--out", str(csv_path), "--quiet"]
    # a shell that starts jobs in the background ignores SIGINT for them, and Python keeps an
    # ignored SIGINT: restore the default so Ctrl-C is what this test sends
    p = subprocess.Popen(args, env=toy_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True,
                         preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 60
    while time.time() < deadline:
        if csv_path.exists() and len(csv_path.read_text().splitlines()) > 6:
            break
        time.sleep(0.05)
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=60)
    assert p.returncode == 130, err
    assert "interrupted" in err
    first = rows(csv_path)
    assert 5 <= len(first) < 40
    assert csv_path.read_text().endswith("\n")
    # simulate a torn line from a hard kill: it is cut off on resume
    with open(csv_path, "a") as f:
        f.write("toy,sleepy,cpu-x")
    r = run_cli(args[3:], env=toy_env)
    assert r.returncode == 0, r.stderr
    assert f"{len(first)} already there" in r.stdout
    final = rows(csv_path)
    assert len(final) == 40
    assert len({d["point"] for d in final}) == 40


def test_retrain_from_external_csv(toy_env, tmp_path):
    ext = tmp_path / "their.csv"
    lines = ["m,n,k,time,comment"]
    import random
    rnd = random.Random(0)
    for _ in range(60):
        m, n, k = (rnd.randint(8, 512) for _ in range(3))
        lines.append(f"{m},{n},{k},{2e-10 * m * n * k + 1e-6},x")
    ext.write_text("\n".join(lines) + "\n")
    models = tmp_path / "models"
    r = run_cli(["train", ext, "--target", "time", "--features", "m,n,k", "--complexity",
                 "m*n*k", "--kernel", "matmul", "--variant", "blas", "--hardware", "theirbox",
                 "--out", models], env=toy_env)
    assert r.returncode == 0, r.stderr
    path = models / "theirbox" / "matmul" / "blas.json"
    d = json.loads(path.read_text())
    assert d["complexity"] == {"complexity": "m*n*k"} and d["n_params"] < 75
    r = run_cli(["predict", "matmul", "--variant", "blas", "--hardware", "theirbox",
                 "--models", models, "--json", "m=64", "n=64", "k=64", "da=1", "db=1"],
                env=toy_env)
    assert r.returncode == 0, r.stderr
    sec = json.loads(r.stdout)["seconds"]
    assert sec == pytest.approx(2e-10 * 64 ** 3 + 1e-6, rel=0.2)


@pytest.mark.parametrize("args,fragment", [
    (["profile", "nokernel", "--out", "{tmp}/x.csv"], "known kernels"),
    (["profile", "toy", "--variant", "nope", "--out", "{tmp}/x.csv"], "variants: cumsum"),
    (["profile", "toy", "--samples", "0", "--out", "{tmp}/x.csv"], "--samples"),
    (["predict", "toy", "--variant", "cumsum", "--models", "{tmp}", "n=0"], "invalid"),
    (["predict", "toy", "--variant", "cumsum", "--models", "{tmp}"], "missing parameter 'n'"),
    (["predict", "toy", "--variant", "cumsum", "--models", "{tmp}", "n=abc"], "not a number"),
    (["predict", "toy", "--variant", "cumsum", "--models", "{tmp}", "q=3", "n=5"], "unknown"),
    (["predict", "toy", "--variant", "cumsum", "--models", "{tmp}", "n=64"], "no model"),
    (["train", "{tmp}/missing.csv", "--out", "{tmp}/m"], "does not exist"),
    (["train", "{tmp}/ext.csv", "--target", "time", "--features", "m", "--complexity",
      "__import__('os')", "--kernel", "a", "--variant", "b", "--hardware", "c",
      "--out", "{tmp}/m"], "not allowed"),
    (["train", "{tmp}/ext.csv", "--target", "time", "--features", "m", "--complexity",
      "m*zz", "--kernel", "a", "--variant", "b", "--hardware", "c", "--out", "{tmp}/m"],
     "unknown symbol 'zz'"),
    (["train", "{tmp}/ext.csv", "--target", "nope", "--features", "m", "--kernel", "a",
      "--variant", "b", "--hardware", "c", "--out", "{tmp}/m"], "missing column 'nope'"),
    (["train", "{tmp}/ext.csv", "--target", "time", "--features", "m", "--kernel", "a",
      "--variant", "b", "--hardware", "c", "--out", "{tmp}/m"], "at least 8"),
])
def test_bad_input_exits_nonzero_and_writes_nothing(toy_env, tmp_path, args, fragment):
    (tmp_path / "ext.csv").write_text("m,time\n1,1e-3\n2,2e-3\n")
    before = set(tmp_path.rglob("*"))
    r = run_cli([a.replace("{tmp}", str(tmp_path)) for a in args], env=toy_env)
    assert r.returncode != 0
    assert fragment in r.stderr, r.stderr
    assert "Traceback" not in r.stderr
    assert set(tmp_path.rglob("*")) == before


def test_busy_machine_warning():
    from annpred.spec.hardware import busy_warning

    # 2 cores, 1 measuring thread: one core is free for others, plus one core of slack
    assert busy_warning(1, load=1.9, cores=2) is None
    msg = busy_warning(1, load=2.6, cores=2)
    assert msg and "busy" in msg and "2.60" in msg and "1 thread" in msg
    # all cores measuring: any load above one core is contention
    assert busy_warning(2, load=0.8, cores=2) is None
    assert "busy" in busy_warning(2, load=1.4, cores=2)
    assert busy_warning(1, load=3.0, cores=16) is None
    # the load average lags: with nothing else runnable now, the load is work that has ended
    assert busy_warning(2, load=1.4, cores=2, now=0.0) is None
    assert busy_warning(1, load=2.6, cores=2, now=1.0) is None
    msg = busy_warning(1, load=2.6, cores=2, now=2.2)
    assert "busy" in msg and "2.2 other task(s) runnable now" in msg


def test_a_script_s_previous_profile_step_is_not_contention(monkeypatch):
    """A shell script profiles one kernel after another, each in a fresh process: the load
    average still holds the previous step's work for a minute, but nothing else runs."""
    from annpred.spec import hardware as hw

    monkeypatch.setattr(hw.os, "getloadavg", lambda: (1.9, 1.2, 0.6))
    monkeypatch.setattr(hw, "own_load", lambda: 0.0)  # a fresh process: no work of its own
    monkeypatch.setattr(hw, "runnable_now", lambda: 0.0)
    assert hw.busy_warning(2) is None
    monkeypatch.setattr(hw, "runnable_now", lambda: 1.8)  # a neighbour still running
    assert "1.8 other task(s) runnable now" in hw.busy_warning(2)
    monkeypatch.setattr(hw, "runnable_now", lambda: None)  # no /proc: the load alone decides
    assert "busy" in hw.busy_warning(2)


def test_runnable_now_counts_other_running_tasks():
    from annpred.spec import hardware as hw

    if hw.runnable_now() is None:
        pytest.skip("no /proc/loadavg on this platform")
    spin = "import time\nt = time.time()\nwhile time.time() - t < 30: pass"
    procs = [subprocess.Popen([sys.executable, "-c", spin]) for _ in range(3)]
    try:
        time.sleep(1.0)  # started and spinning
        assert hw.runnable_now() >= 2.5  # always runnable, whether on a core or waiting
    finally:
        for q in procs:
            q.kill()
            q.wait()


def test_the_busy_check_leaves_out_this_process_s_own_recent_work(monkeypatch):
    """quickstart measures 2 threads right after a minute of 1-thread measuring: the load
    average then holds about one core of annpred's own work, which is no contention."""
    import math
    import time

    from annpred.spec import hardware as hw

    now = time.monotonic()
    monkeypatch.setattr(hw, "_OWN", [(now - 70.0, 5.0), (now - 60.0, 5.0)])
    monkeypatch.setattr(hw, "_own_cpu", lambda: 65.0)  # one core busy for the last 60 s
    monkeypatch.setattr(hw.os, "getloadavg", lambda: (1.5, 1.0, 0.5))
    monkeypatch.setattr(hw, "runnable_now", lambda: 2.5)  # others are running now
    own = hw.own_load()
    assert abs(own - (1 - math.exp(-1))) < 0.01  # what 60 s at one core adds to the average
    assert hw.busy_warning(2, cores=2) is None  # 1.5 - 0.63 others: one core of slack
    monkeypatch.setattr(hw.os, "getloadavg", lambda: (2.5, 1.0, 0.5))
    msg = hw.busy_warning(2, cores=2)
    assert "load average 2.50" in msg and "of it this process's own work" in msg
    monkeypatch.setattr(hw, "_OWN", [(now - 70.0, 5.0), (now - 60.0, 5.0)])
    monkeypatch.setattr(hw, "_own_cpu", lambda: 5.0)  # idle: nothing to leave out
    monkeypatch.setattr(hw.os, "getloadavg", lambda: (1.5, 1.0, 0.5))
    assert "busy" in hw.busy_warning(2, cores=2)


def test_a_child_annpred_process_leaves_out_its_parent_s_recent_work(monkeypatch):
    """quickstart runs each profile in a fresh process: the child is told the parent's
    recent CPU use (hardware.child_env), so its busy check leaves it out too."""
    import os
    import subprocess
    import sys
    import time

    from annpred.spec import hardware as hw

    now = time.monotonic()
    monkeypatch.setattr(hw, "_OWN", [(now - 70.0, 5.0), (now - 60.0, 5.0)])
    monkeypatch.setattr(hw, "_own_cpu", lambda: 65.0)  # one core busy for the last 60 s
    code = "from annpred.spec import hardware as hw; print(hw.own_load())"
    for env, lo, hi in ((hw.child_env(), 0.55, 0.70),
                        ({**os.environ, hw.OWN_ENV: "1:2,x"}, 0.0, 0.05),  # unparsable
                        ({**os.environ, hw.OWN_ENV: "5:9,4:10"}, 0.0, 0.05)):  # time reversed
        r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           env=env, timeout=120)
        assert r.returncode == 0, r.stderr
        assert lo <= float(r.stdout) <= hi, (env.get(hw.OWN_ENV), r.stdout)


def test_a_busy_machine_is_an_annpred_warning_not_a_print(monkeypatch, capsys):
    import warnings

    from annpred.errors import AnnpredWarning
    from annpred.spec import hardware as hw

    monkeypatch.setattr(hw.os, "getloadavg", lambda: (99.0, 99.0, 99.0))
    monkeypatch.setattr(hw, "runnable_now", lambda: 99.0)
    with pytest.warns(AnnpredWarning, match="this machine is busy .*load average 99.00"):
        hw.warn_if_busy(1)
    assert capsys.readouterr().err == ""  # the library does not print; the CLI shows warnings
    monkeypatch.setattr(hw.os, "getloadavg", lambda: (0.0, 0.0, 0.0))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        hw.warn_if_busy(1)


def test_many_models_with_the_same_warning_print_it_once_and_name_the_others(capsys):
    import warnings

    from annpred.cli.common import show_warnings
    from annpred.errors import FewRowsWarning, MachineMismatchWarning

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for i in range(5):
            warnings.warn(f"k/v{i}/hw: {40 + i} training rows for 71 parameters", FewRowsWarning)
        warnings.warn("models of hw were measured elsewhere", MachineMismatchWarning)
        warnings.warn("k/v9/hw: 8 training rows", FewRowsWarning)
    show_warnings(caught)
    lines = capsys.readouterr().err.splitlines()
    assert lines == ["annpred: warning: k/v0/hw: 40 training rows for 71 parameters",
                     "annpred: warning: the same (FewRowsWarning) for 5 more models: k/v1/hw, "
                     "k/v2/hw, k/v3/hw, k/v4/hw, k/v9/hw",
                     "annpred: warning: models of hw were measured elsewhere"]
    with warnings.catch_warnings(record=True) as few:
        warnings.simplefilter("always")
        for i in range(3):
            warnings.warn(f"k/v{i}/hw: rows", FewRowsWarning)
    show_warnings(few)
    assert len(capsys.readouterr().err.splitlines()) == 3  # up to 3 are printed in full
