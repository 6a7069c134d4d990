"""--transfer FILE: another device's runtimes of the same tuning space as an input."""
from __future__ import annotations

import csv
import gzip
import json
import re
import warnings

import numpy as np
import pytest

from annpred.data import transfer as tr
from annpred.data.profiles import load_profiles
from annpred.errors import DataError
from conftest import run_cli
from test_kerneltuner import _partial, make_cache

PARAMS = ("block_size_x", "block_size_y", "tile_size_x", "tile_size_y", "use_shmem")


def _irregular(p) -> float:
    """A per-configuration factor in [1, 2] that no launch-structure feature explains (both
    devices share it: the kernel's own quirks)."""
    key = sum(int(p[k]) * m for k, m in zip(PARAMS, (7, 131, 1009, 7919, 104729)))
    return 1.0 + np.random.default_rng(key).random()


def _devices(tmp_path, drop: int = 5):
    """A reference device's cache (``drop`` configurations missing) and a target device
    whose runtime is the reference's, scaled by 0.6 and by 1.3 with shared memory."""
    ref, tgt = make_cache(seed=0), make_cache(seed=1)
    ref["device_name"] = "NVIDIA Reference GPU"
    for doc, scale in ((ref, lambda p: 1.0), (tgt, lambda p: 0.6 * (1.3 if p["use_shmem"]
                                                                     else 1.0))):
        for v in doc["cache"].values():
            if isinstance(v["time"], str):
                continue
            f = _irregular(v) * scale(v)
            v["times"] = [t * f for t in v["times"]]
            v["time"] = float(np.mean(v["times"]))
    ok = [k for k, v in ref["cache"].items() if not isinstance(v["time"], str)]
    for k in ok[10:10 + drop]:
        del ref["cache"][k]
    paths = []
    for name, doc in (("ref.json.gz", ref), ("target.json.gz", tgt)):
        paths.append(tmp_path / name)
        paths[-1].write_bytes(gzip.compress(json.dumps(doc).encode()))
    return paths[0], paths[1], ref


def test_the_column_holds_the_reference_runtime_and_counts_the_gaps(tmp_path):
    ref, target, doc = _devices(tmp_path, drop=5)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        df = load_profiles([target], transfer=str(ref))
    gaps = [w for w in caught if issubclass(w.category, tr.TransferWarning)]
    assert len(gaps) == 1 and f"5 of {len(df)} configurations" in str(gaps[0].message)
    known = {tuple(float(v[k]) for k in PARAMS): v["time"] / 1000
             for v in doc["cache"].values() if not isinstance(v["time"], str)}
    keys = [tuple(r) for r in df[list(PARAMS)].to_numpy(dtype=float).tolist()]
    found = np.array([k in known for k in keys])
    assert (~found).sum() == 5
    np.testing.assert_allclose(df[tr.COLUMN].to_numpy()[found],
                               [known[k] for k, f in zip(keys, found) if f], rtol=1e-12)
    assert np.all(df[tr.COLUMN].to_numpy()[~found] > 0)  # predicted, never empty


def test_transfer_cuts_the_error_where_the_structure_cannot_explain_the_runtime(tmp_path):
    from annpred.study import tunespace as T
    from annpred.study.zoo import make_model

    ref, target, _ = _devices(tmp_path, drop=0)
    plain = T.space_combination(load_profiles([target]))
    both = T.space_combination(load_profiles([target], transfer=str(ref)))
    assert tr.COLUMN in both.params and tr.COLUMN not in plain.params
    m = [T.select_on_space(c, make_model("NN+C"), budget=60, top=5, seed=0).mape
         for c in (plain, both)]
    assert m[1] < 0.5 * m[0], m


def test_tune_space_and_train_with_transfer(tmp_path):
    ref, target, _ = _devices(tmp_path)
    r = run_cli(["tune-space", target, "--budget", "40", "--top", "3", "--model", "GBT+C",
                 "--strategy", "random", "--transfer", ref])
    assert r.returncode == 0, r.stderr
    assert "(reference " in r.stdout and "regret" in r.stdout
    assert "transfer_s=" not in r.stdout  # an input, not a tuning parameter to set
    assert r.stderr.count("are not in it") == 1, r.stderr
    models = tmp_path / "m"
    r = run_cli(["train", target, "--out", models, "--n-train", "100", "--transfer", ref])
    assert r.returncode == 0, r.stderr
    f = next(models.rglob("default.json"))
    assert tr.COLUMN in json.loads(f.read_text())["features"]
    point = ["block_size_x=32", "block_size_y=4", "tile_size_x=2", "tile_size_y=1",
             "use_shmem=1"]
    args = ["predict", "conv_kernel_2048x512", "--variant", "default", "--models", models]
    r = run_cli(args + point)
    assert r.returncode == 2 and "transfer_s" in r.stderr, r.stderr
    r = run_cli(args + point + ["transfer_s=0.004"])
    assert r.returncode == 0, r.stderr


def test_product_space_candidates_get_the_column(tmp_path):
    ref, _, _ = _devices(tmp_path, drop=0)
    partial, _ = _partial(tmp_path, 60)
    out = tmp_path / "ranked.csv"
    r = run_cli(["tune-space", partial, "--space", "product", "--model", "GBT+C", "--top",
                 "3", "--transfer", ref, "--out", out])
    assert r.returncode == 0, r.stderr
    with open(out) as f:
        rows = list(csv.DictReader(f))
    assert rows and all(float(row[tr.COLUMN]) > 0 for row in rows)
    # --previous matches by the tuning parameters, not by the reference's runtime (which
    # the file rounds): measure 20 of the ranked candidates, and all 20 are found
    part, full = json.loads(partial.read_text()), make_cache()
    keys = part["tune_params_keys"]
    for row in rows[:20]:
        rec = {k: int(float(row[k])) if k in row else 15 for k in keys}
        key = ",".join(str(rec[k]) for k in keys)
        part["cache"][key] = full["cache"][key]
    partial.write_text(json.dumps(part))
    r = run_cli(["tune-space", partial, "--space", "product", "--model", "GBT+C", "--top",
                 "3", "--transfer", ref, "--previous", out])
    assert r.returncode == 0, r.stderr
    assert re.search(r"the 20 configurations of \S*ranked.csv measured since ran a median", r.stdout)


@pytest.mark.parametrize("change, words", [
    (lambda d: [v.pop("use_shmem") for v in d["cache"].values()] and
     d["tune_params"].pop("use_shmem") and d["tune_params_keys"].remove("use_shmem"),
     ["no parameter 'use_shmem'", "same tuning space"]),
    (lambda d: [v.update(block_size_x=v["block_size_x"] + 1000) for v in d["cache"].values()],
     ["shares no configuration"]),
    (lambda d: [v.update(filter_width=7) for v in d["cache"].values()]
     and d["tune_params"].update(filter_width=[7]), ["filter_width=7", "filter_width=15"]),
])
def test_a_reference_of_another_space_is_one_clear_error(tmp_path, change, words):
    _, target, _ = _devices(tmp_path)
    doc = make_cache(seed=2)
    change(doc)
    bad = tmp_path / "other.json"
    bad.write_text(json.dumps(doc))
    with pytest.raises(DataError) as e:
        load_profiles([target], transfer=str(bad))
    assert all(w in str(e.value) for w in words), str(e.value)
    out = tmp_path / "m"
    r = run_cli(["train", target, "--out", out, "--transfer", bad])
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert str(bad) in r.stderr and not out.exists()


def test_a_converted_csv_or_another_tools_csv_serves_as_the_reference(tmp_path):
    ref, target, _ = _devices(tmp_path)
    want = load_profiles([target], transfer=str(ref))[tr.COLUMN].to_numpy()
    converted = tmp_path / "ref.csv"
    assert run_cli(["convert", ref, "-o", converted]).returncode == 0
    got = load_profiles([target], transfer=str(converted))[tr.COLUMN].to_numpy()
    np.testing.assert_allclose(got, want, rtol=1e-9)
    # another tool's CSV: no key columns, its own runtime column name is not needed
    with open(converted) as f:
        rows = list(csv.DictReader(f))
    bare = tmp_path / "bare.csv"
    with open(bare, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow([*PARAMS, "runtime_s"])
        for r in rows:
            w.writerow([r[p] for p in PARAMS] + [r["runtime_s"]])
    got = load_profiles([target], transfer=str(bare), kernel="conv_kernel_2048x512",
                        variant="default")[tr.COLUMN].to_numpy()
    np.testing.assert_allclose(got, want, rtol=1e-9)


def test_the_transfer_study_runs_and_resumes(tmp_path):
    """experiments/transfer.py on two synthetic devices of one kernel: both ordered pairs,
    every model, and a rerun that fits nothing again."""
    import subprocess
    import sys
    from pathlib import Path

    ref, target, _ = _devices(tmp_path)
    data = tmp_path / "data"
    data.mkdir()
    ref.rename(data / "conv_ref.json.gz")
    target.rename(data / "conv_target.json.gz")
    script = Path(__file__).resolve().parent.parent / "experiments" / "transfer.py"
    out = tmp_path / "out"
    cmd = [sys.executable, str(script), "--data", str(data), "--budgets", "40", "--seeds",
           "1", "--out", str(out)]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    with open(out / "transfer.csv") as f:
        rows = list(csv.DictReader(f))
    assert {(x["target"], x["reference"]) for x in rows} == {("conv_ref", "conv_target"),
                                                             ("conv_target", "conv_ref")}
    assert {x["model"] for x in rows} == {"NN+C-auto", "NN+C-auto +transfer", "GBT+C",
                                          "GBT+C +transfer", "scaled"}
    assert all(float(x["mape"]) > 0 and float(x["regret"]) >= 1 for x in rows)
    report = (out / "transfer.md").read_text()
    assert "## By vendor pair" in report and "both NVIDIA" in report
    before = (out / ".transfer_checkpoint.jsonl").read_text()
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0 and (out / ".transfer_checkpoint.jsonl").read_text() == before
