"""Fresh inputs: a measurement's runs rotated through distinct input sets (``annpred
profile --fresh-inputs``), so that no run replays the data of the run before it."""
import csv
import json

import numpy as np
import pytest

from annpred.data.profiles import load_profiles
from annpred.data.rows import columns_for
from annpred.errors import DataError, ParameterError
from annpred.measure import protocol
from annpred.measure.profiler import input_sets_for, profile
from annpred.spec.catalog import get_kernel
from conftest import REPO, experiment_script, run_cli


def _rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_input_sets_hold_the_rotation_bytes_within_bounds():
    assert protocol.input_sets(0) == 1
    assert protocol.input_sets(protocol.ROTATE_BYTES) == 1
    assert protocol.input_sets(10 * protocol.ROTATE_BYTES) == 1
    assert protocol.input_sets(protocol.ROTATE_BYTES - 1) == 2
    assert protocol.input_sets(1) == protocol.MAX_INPUT_SETS
    for b in (3_000, 25_600, 164_268, 700_000):
        k = protocol.input_sets(b)
        assert k * b >= protocol.ROTATE_BYTES > (k - 1) * b  # the fewest that hold it


def test_measure_takes_the_calls_in_turn_and_warms_up_each():
    calls = []
    fns = [lambda i=i: calls.append(i) or i for i in range(3)]
    t = protocol.measure(fns, warmup=1, min_runs=7, min_time=0.0)
    assert calls[:3] == [0, 1, 2]  # the warm-up ran each once
    timed = calls[3:]
    assert len(timed) == t.repeats == 7
    assert timed == [i % 3 for i in range(7)]
    with pytest.raises(ValueError, match="no call"):
        protocol.measure([])


def test_the_first_input_set_is_the_default_one_and_the_others_differ():
    k = get_kernel("maxpool")
    p = {"n": 20, "w": 2, "s": 2, "c": 2}
    one = input_sets_for(k, p, 3, 17, fresh=False)
    many = input_sets_for(k, p, 3, 17, fresh=True)
    assert len(one) == 1
    assert len(many) == protocol.input_sets(one[0]["x"].nbytes) > 1
    np.testing.assert_array_equal(many[0]["x"], one[0]["x"])
    assert not np.array_equal(many[1]["x"], many[0]["x"])
    again = input_sets_for(k, p, 3, 17, fresh=True)  # deterministic: a resumed run agrees
    np.testing.assert_array_equal(again[-1]["x"], many[-1]["x"])


def test_profile_fresh_inputs_records_the_sets_and_checks_results(tmp_path):
    out = tmp_path / "mp.csv"
    res = profile("maxpool", out, variants=["numpy", "torch"], samples=12, progress=False,
                  min_time=1e-3, check=True, fresh_inputs=True)
    assert res.written == 24
    rows = _rows(out)
    sets = [int(r["input_sets"]) for r in rows]
    assert all(s >= 1 for s in sets) and max(sets) > 1
    for r in rows:  # as many as the rule asks for this point's input size
        c, n = int(r["c"]), int(r["n"])
        assert int(r["input_sets"]) == protocol.input_sets(4 * c * n * n)
    df = load_profiles([out])
    assert "input_sets" in df.columns  # bookkeeping, loaded but not a feature
    r = run_cli(["train", out, "--variant", "numpy", "--n-train", "10", "--out",
                 tmp_path / "m", "--quiet"])
    assert r.returncode == 0, r.stderr
    model = json.loads(next((tmp_path / "m").rglob("numpy.json")).read_text())
    assert "input_sets" not in model["parameters"]
    # provenance: how the training rows were measured (predict/choose --json show it)
    sets = [int(r["input_sets"]) for r in rows if r["variant"] == "numpy"]
    assert 1 < model["train"]["measured"]["input_sets_median"] <= max(sets)


def test_same_inputs_leaves_the_column_empty(tmp_path):
    out = tmp_path / "mp.csv"
    profile("maxpool", out, variants=["numpy"], samples=2, progress=False, min_time=1e-3,
            fresh_inputs=False)
    assert [r["input_sets"] for r in _rows(out)] == ["", ""]
    import pandas as pd

    from annpred.model.trainer import _measured  # one input per point: recorded as 1
    assert _measured(pd.read_csv(out))["input_sets_median"] == 1
    assert "input_sets_median" not in _measured(pd.read_csv(out).drop(columns="input_sets"))


def test_a_new_file_follows_the_kernels_declaration(tmp_path, toy_env):
    assert get_kernel("maxpool").fresh_inputs and not get_kernel("matmul").fresh_inputs
    listed = {d["name"]: d for d in json.loads(run_cli(["kernels", "--json"]).stdout)}
    assert listed["maxpool"]["fresh_inputs"] is True
    assert listed["matmul"]["fresh_inputs"] is False
    mp = tmp_path / "mp.csv"
    res = profile("maxpool", mp, variants=["numpy"], samples=2, progress=False,
                  min_time=1e-3)
    assert res.fresh_inputs and "distinct input sets" in res.summary()
    assert all(int(r["input_sets"]) >= 1 for r in _rows(mp))
    toy = tmp_path / "toy.csv"  # a kernel that declares nothing: one input per point
    r = run_cli(["profile", "toy", "--variant", "cumsum", "--samples", "2", "--out", toy,
                 "--quiet", "--min-time-ms", "1"], env=toy_env)
    assert r.returncode == 0, r.stderr
    assert "distinct input sets" not in r.stdout
    assert [row["input_sets"] for row in _rows(toy)] == ["", ""]


@pytest.mark.parametrize("first, other", [("--same-inputs", "--fresh-inputs"),
                                          ("--fresh-inputs", "--same-inputs")])
def test_a_file_keeps_one_input_protocol(tmp_path, first, other):
    out = tmp_path / "mp.csv"
    base = ["profile", "maxpool", "--variant", "numpy", "--out", out, "--quiet",
            "--min-time-ms", "1"]
    assert run_cli(base + ["--samples", "2", first]).returncode == 0
    before = out.read_text()
    r = run_cli(base + ["--samples", "3", other])  # the other protocol: refused, unchanged
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert str(out) in r.stderr and other in r.stderr and "one protocol" in r.stderr
    assert out.read_text() == before
    r = run_cli(base + ["--samples", "3"])  # no flag: the file's own protocol, resumed
    assert r.returncode == 0, r.stderr
    rows = _rows(out)
    assert len(rows) == 3 and "2 already there" in r.stdout
    assert len({bool(row["input_sets"]) for row in rows}) == 1
    assert bool(rows[-1]["input_sets"]) == (first == "--fresh-inputs")


def test_fresh_inputs_into_an_older_file_is_refused_before_measuring(tmp_path, toy_env):
    out = tmp_path / "old.csv"
    header = columns_for(["n"], optional=False) + ["load_avg", "machine", "ref_s"]
    out.write_text(",".join(header) + "\n")
    r = run_cli(["profile", "toy", "--variant", "cumsum", "--samples", "3", "--fresh-inputs",
                 "--out", out, "--quiet"], env=toy_env)
    assert r.returncode == 2
    assert "input_sets" in r.stderr and "--fresh-inputs" in r.stderr
    assert "Traceback" not in r.stderr
    assert out.read_text().count("\n") == 1  # nothing measured
    # the same older file is still resumed without the flag, in its own format
    r = run_cli(["profile", "toy", "--variant", "cumsum", "--samples", "3", "--out", out,
                 "--quiet", "--min-time-ms", "1"], env=toy_env)
    assert r.returncode == 0, r.stderr
    assert list(_rows(out)[0]) == header


def test_fresh_inputs_on_a_modelled_accelerator_is_refused(tmp_path):
    with pytest.raises(ParameterError, match="--fresh-inputs"):
        profile("conv2d", tmp_path / "a.csv", samples=2, progress=False,
                hardware="sim-tpu-v1", fresh_inputs=True)
    assert not (tmp_path / "a.csv").exists()


def test_input_reuse_study_writes_both_timings_and_refuses_bad_counts(tmp_path, capsys):
    mod = experiment_script("input_reuse")
    assert mod.main(["--points", "0", "--out", str(tmp_path)]) == 2
    assert "--points" in capsys.readouterr().err
    assert mod.main(["--report-only", "--out", str(tmp_path)]) == 2
    mod.EXTRA = {}
    mod.variants = lambda: {"maxpool": ("numpy",)}
    assert mod.main(["--points", "1", "--out", str(tmp_path)]) == 0
    rows = _rows(tmp_path / "input_reuse.csv")
    assert len(rows) == 1 and rows[0]["variant"] == "numpy"
    r = rows[0]
    assert float(r["same_s"]) > 0 and float(r["fresh_s"]) > 0
    assert float(r["ratio"]) == pytest.approx(float(r["fresh_s"]) / float(r["same_s"]),
                                              rel=1e-3)
    text = (tmp_path / "input_reuse.md").read_text()
    assert "| maxpool | numpy | 1 |" in text
    assert mod.main(["--points", "1", "--out", str(tmp_path)]) == 0  # resumes: nothing new
    assert len(_rows(tmp_path / "input_reuse.csv")) == 1


@pytest.mark.parametrize("value, match", [("0", "below 1"), ("2.5", "not an integer"),
                                          ("many", "not a finite number")])
def test_a_bad_input_sets_cell_is_refused_by_row_and_column(tmp_path, value, match):
    out = tmp_path / "mp.csv"
    profile("maxpool", out, variants=["numpy"], samples=3, progress=False, min_time=1e-3,
            fresh_inputs=True)
    rows = _rows(out)
    rows[1]["input_sets"] = value
    with open(out, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    with pytest.raises(DataError, match=match) as e:
        load_profiles([out])
    assert f"row 3, column 'input_sets': {value!r}" in str(e.value)


def test_rotation_bytes_study_times_every_amount_and_reports(tmp_path, capsys):
    mod = experiment_script("rotation_bytes")
    assert mod.main(["--rounds", "0", "--out", str(tmp_path)]) == 2
    assert "--rounds" in capsys.readouterr().err
    assert mod.main(["--report-only", "--out", str(tmp_path)]) == 2
    mod.POINTS, mod.VARIANTS = [dict(n=8, w=2, s=2, c=1)], ("numpy",)
    assert mod.main(["--rounds", "2", "--out", str(tmp_path)]) == 0
    rows = _rows(tmp_path / "rotation_bytes.csv")
    assert len(rows) == 2 * len(mod.AMOUNTS)
    for r in rows:  # one input when nothing rotates, else as many sets as the amount asks
        amount = int(r["rotate_bytes"])
        assert int(r["input_sets"]) == (protocol.input_sets(4 * 8 * 8, amount) if amount
                                        else 1)
        assert float(r["runtime_s"]) > 0
    assert not list(tmp_path.glob("*.part"))
    text = (tmp_path / "rotation_bytes.md").read_text()
    assert "| 8, 2, 2, 1 | 16 | numpy |" in text and "2 MiB" in text


@pytest.mark.parametrize("kernel, params, hardware, noted", [
    ("maxpool", ["n=64", "w=2", "s=2", "c=3"], "cpu-amd-epyc-t1", True),  # one-input data
    ("maxpool", ["n=64", "w=2", "s=2", "c=3"], "cpu-amd-epyc-zen5-avx512-2.6ghz-t1", False),
    ("matmul", ["m=64", "n=64", "k=64", "da=1", "db=1"], "cpu-amd-epyc-t1", False)])
def test_predict_notes_models_trained_on_one_repeated_input(kernel, params, hardware, noted):
    """The shipped legacy maxpool models were trained on one input per point; a kernel that
    branches on its data gets a note saying so, one measured on new data or a kernel that
    does not branch gets none."""
    r = run_cli(["predict", kernel, *params, "--variant", "torch", "--hardware", hardware,
                 "--models", REPO / "trained"])
    assert r.returncode == 0, r.stderr
    assert ("trained on one repeated input per point" in r.stderr) == noted, r.stderr
    assert "Traceback" not in r.stderr


def test_choose_notes_the_candidates_trained_on_one_repeated_input():
    r = run_cli(["choose", "maxpool", "n=64", "w=2", "s=2", "c=3", "--models", REPO / "trained",
                 "--candidate", "torch@cpu-amd-epyc-t1", "--candidate",
                 "numpy@cpu-amd-epyc-zen5-avx512-2.6ghz-t1", "--trust-machine"])
    assert r.returncode == 0, r.stderr
    note = next(line for line in r.stderr.splitlines() if "repeated input" in line)
    assert "torch@cpu-amd-epyc-t1" in note and "zen5" not in note


@pytest.mark.parametrize("measured, calibration, noted", [
    ({"input_sets_median": 1}, None, True),
    (None, None, True),  # trained before the column existed
    ({"input_sets_median": 37}, None, False),
    ({"input_sets_median": 1}, {"input_sets_median": 37}, False),  # adapted on new data
    ({"input_sets_median": 1}, {"input_sets_median": 1}, True),
    ({"input_sets_median": 1}, {"input_sets_median": None}, True)])  # an older calibration
def test_a_calibration_on_new_data_lifts_the_one_input_note(measured, calibration, noted):
    """A one-input model adapted by probes that ran on new data predicts new data; the note
    is for the models whose predictions still come from one repeated input."""
    from annpred.cli.common import one_input_note

    prov = {"torch@x": {"measured": measured, "calibration": calibration}}
    assert (one_input_note("maxpool", prov) is not None) == noted
    assert one_input_note("matmul", prov) is None  # a kernel that does not branch on data
