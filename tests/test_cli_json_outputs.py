"""``--json`` of ``train``, ``tune-space`` and ``evaluate``: one strict JSON document on stdout
with the documented fields, numbers that agree with the human report, and errors that exit
2 with nothing on stdout."""
from __future__ import annotations

import csv
import gzip
import json
import random
import re

import numpy as np
import pandas as pd
import pytest

from annpred.cli.app import main
from test_evaluate import synthetic_csv
from test_kerneltuner import make_cache


def strict(text: str):
    """``json.loads`` as any other JSON parser reads: NaN and Infinity are not JSON."""
    def refuse(token):
        raise ValueError(f"not JSON: {token}")
    return json.loads(text, parse_constant=refuse)


def run(args, capsys):
    rc = main([str(a) for a in args])
    cap = capsys.readouterr()
    return rc, cap.out, cap.err


def number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


@pytest.fixture
def ext_csv(tmp_path):
    rng = np.random.default_rng(0)
    m = rng.integers(2, 500, 40)
    p = tmp_path / "ext.csv"
    pd.DataFrame({"m": m, "time": 1e-6 * m * (1 + 0.05 * rng.standard_normal(40))}).to_csv(
        p, index=False)
    return p


TRAIN = ["--target", "time", "--features", "m", "--kernel", "k", "--variant", "v",
         "--hardware", "h", "--n-train", "30"]
MODEL_FIELDS = {"kernel": str, "variant": str, "hardware": str, "model": str, "n_train": int,
                "n_fit": int, "n_val": int, "n_holdout": int, "val_mape_pct": float,
                "val_mape_of": str, "holdout_mape_pct": float,
                "constant_holdout_mape_pct": float, "n_params": int, "train_time_s": float,
                "complexity": dict, "complexity_auto": bool}


def test_train_json_reports_every_combination_and_agrees_with_the_human_lines(
        tmp_path, ext_csv, capsys):
    rc, text, err = run(["train", ext_csv, *TRAIN, "--out", tmp_path / "a"], capsys)
    assert rc == 0, err
    human = re.search(r"k/v/h: val MAPE +([\d.]+)%  params (\d+)  n=30 .*holdout MAPE +"
                      r"([\d.]+)% \(n=10", text)
    assert human, text
    rc, out, err = run(["train", ext_csv, *TRAIN, "--out", tmp_path / "b", "--json"], capsys)
    assert rc == 0, err
    d = strict(out)  # stdout is the one document: no human line on it
    assert set(d) == {"out", "models"} and d["out"] == str(tmp_path / "b")
    (m,) = d["models"]
    for k, t in MODEL_FIELDS.items():
        assert isinstance(m[k], t), (k, m[k])
    assert m["steps"] is None or isinstance(m["steps"], dict)
    assert (m["kernel"], m["variant"], m["hardware"]) == ("k", "v", "h")
    assert (m["n_train"], m["n_holdout"], m["val_mape_of"]) == (30, 10, "validation rows")
    assert m["complexity_auto"] is False
    # the same seed, the same fit: the printed numbers
    assert f"{m['val_mape_pct']:.2f}" == human.group(1)
    assert m["n_params"] == int(human.group(2))
    assert f"{m['holdout_mape_pct']:.2f}" == human.group(3)
    saved = json.loads(open(m["model"]).read())  # the file was written, where it says
    assert saved["train"]["n_val"] == m["n_val"]
    assert "k/v/h: val MAPE" in err  # the per-combination line went to stderr
    # --quiet: nothing but warnings on stderr
    rc, out, err = run(["train", ext_csv, *TRAIN, "--out", tmp_path / "c", "--json",
                        "--quiet"], capsys)
    assert rc == 0 and strict(out)["models"] and "val MAPE" not in err


def test_train_json_without_holdout_or_validation_split_gives_nulls(tmp_path, capsys):
    m = np.random.default_rng(1).integers(2, 500, 12)
    p = tmp_path / "few.csv"
    pd.DataFrame({"m": m, "time": 1e-6 * m}).to_csv(p, index=False)
    rc, out, err = run(["train", p, *TRAIN[:-2], "--out", tmp_path / "m", "--json",
                        "--quiet"], capsys)
    assert rc == 0, err
    (r,) = strict(out)["models"]
    assert r["n_val"] == 0 and r["val_mape_of"] == "training rows"
    assert r["n_holdout"] == 0 and r["holdout_mape_pct"] is None
    assert r["constant_holdout_mape_pct"] is None and number(r["val_mape_pct"])


@pytest.mark.parametrize("args", [
    ["train", "{tmp}/missing.csv", "--out", "{tmp}/m", "--json"],
    ["train", "{ext}", *TRAIN, "--steps", "m=1", "--out", "{tmp}/m", "--json"],
    ["tune-space", "{cache}", "--budget", "5", "--json"],
    ["tune-space", "{cache}", "--budget", "8", "--model", "XGB", "--json"],
    ["tune-space", "{cache}", "--space", "product", "--next", "0", "--json"],
    ["evaluate", "{ext}", "--out", "{tmp}/ev", "--models", "Cons,XGB", "--json"],
])
def test_json_errors_exit_2_with_one_line_and_nothing_on_stdout(tmp_path, ext_csv, capsys,
                                                                 args):
    cache = tmp_path / "c.json.gz"
    cache.write_bytes(gzip.compress(json.dumps(make_cache()).encode()))
    args = [a.format(tmp=tmp_path, ext=ext_csv, cache=cache) for a in args]
    rc, out, err = run(args, capsys)
    assert rc == 2 and out == ""
    assert err.count("annpred: error:") == 1 and err.endswith("\n"), err
    assert "Traceback" not in err


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    p = tmp_path_factory.mktemp("ts") / "conv.json.gz"
    p.write_bytes(gzip.compress(json.dumps(make_cache()).encode()))
    return p


CONFIG = {"rank", "params", "reference_s", "predicted_s", "low_s", "high_s", "expected_s",
          "expected_low_s", "expected_high_s", "measured_s"}
PARAMS = {"block_size_x", "block_size_y", "tile_size_x", "tile_size_y", "use_shmem"}


def test_tune_space_json_cache_agrees_with_the_report_and_keeps_out(cache, tmp_path, capsys):
    args = ["tune-space", cache, "--budget", "30", "--top", "3", "--model", "LR+C",
            "--strategy", "random", "--quiet"]
    rc, text, _ = run(args, capsys)
    assert rc == 0
    out_csv = tmp_path / "ranked.csv"
    rc, out, err = run([*args, "--json", "--out", out_csv], capsys)
    assert rc == 0, err
    d = strict(out)
    assert d["space"] == "cache" and d["model"] == "LR+C" and d["strategy"] == "random"
    assert (d["budget"], d["n_configurations"], d["n_unmeasured"]) == (30, 317, 287)
    assert d["hardware"] == "cuda-test-gpu" and isinstance(d["complexity"], dict)
    assert len(d["top"]) == 3 and [c["rank"] for c in d["top"]] == [1, 2, 3]
    assert d["best"] == d["top"][0]
    for c in d["top"] + [d["best_measured"]]:
        assert set(c) == CONFIG and set(c["params"]) == PARAMS
        assert all(isinstance(v, int) for v in c["params"].values())  # whole values
        assert number(c["measured_s"])  # the cache measured every configuration
    assert all(number(c["predicted_s"]) for c in d["top"])
    pred = [c["predicted_s"] for c in d["top"]]
    assert pred == sorted(pred)
    # the numbers the human report prints
    m = re.search(r"MAPE ([\d.]+)% over the 287 unmeasured configurations; regret .* = "
                  r"([\d.]+); random sampling of as many \(30 \+ 3\): ([\d.]+)", text)
    assert m, text
    assert f"{d['mape_pct']:.2f}" == m.group(1)
    assert f"{d['regret']:.3f}" == m.group(2) and f"{d['random_regret']:.3f}" == m.group(3)
    best = dict(kv.split("=") for kv in
                re.search(r"predicted best: (.*?)  predicted", text).group(1).split())
    assert {k: int(v) for k, v in best.items()} == d["best"]["params"]
    assert set(d["judged"]) >= {"top", "over_predicted", "net_covered",
                                "net_covered_unmeasured", "picks_covered"}
    assert d["picks"] is None and d["notes"] == []
    # --out: the same CSV as without --json, and the JSON says so
    assert d["out"] == str(out_csv) and d["n_written"] == 287
    with open(out_csv) as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 287 and float(rows[0]["predicted_s"]) == pytest.approx(pred[0],
                                                                                rel=1e-5)


def test_tune_space_json_guided_notes(cache, capsys):
    rc, out, err = run(["tune-space", cache, "--budget", "30", "--top", "2", "--model",
                        "LR+C", "--quiet", "--json"], capsys)
    assert rc == 0, err
    d = strict(out)
    assert d["strategy"] == "guided" and d["picks"] is None
    assert any("picked too few" in n for n in d["notes"])
    assert d["out"] is None and d["n_written"] is None


def _partial(tmp_path, n):
    doc = make_cache()
    keys = list(doc["cache"])
    random.Random(0).shuffle(keys)
    doc["cache"] = {k: doc["cache"][k] for k in keys[:n]}
    p = tmp_path / "partial.json"
    p.write_text(json.dumps(doc))
    return p


def test_tune_space_json_product_agrees_with_the_report(tmp_path, capsys):
    p = _partial(tmp_path, 60)
    args = ["tune-space", p, "--space", "product", "--model", "LR+C", "--top", "3",
            "--next", "2", "--restrict", "block_size_x*block_size_y<=512", "--quiet"]
    rc, text, _ = run(args, capsys)
    assert rc == 0
    rc, out, err = run([*args, "--json"], capsys)
    assert rc == 0, err
    d = strict(out)
    assert d["space"] == "product" and d["n_fit"] == d["n_measured"]
    pr = d["product"]
    assert set(pr) == {"n_product", "n_restricted", "n_failed", "n_measured", "n_candidates"}
    assert pr["n_product"] == 320 and pr["n_restricted"] > 0
    m = re.search(r"(\d+) break a restriction, (\d+) failed, (\d+) measured, (\d+) to predict",
                  text)
    assert [int(g) for g in m.groups()] == [pr["n_restricted"], pr["n_failed"],
                                            pr["n_measured"], pr["n_candidates"]]
    assert len(d["top"]) == 3 and d["best"] == d["top"][0] and len(d["next"]) == 2
    for c in d["top"]:
        assert set(c) == CONFIG | {"predicted_speedup"} and c["measured_s"] is None
        assert c["predicted_speedup"] == pytest.approx(
            d["best_measured"]["measured_s"] / c["predicted_s"])
        assert c["params"]["block_size_x"] * c["params"]["block_size_y"] <= 512
    speedups = re.findall(r"  ([\d.]+)x\n", text)
    assert speedups == [f"{c['predicted_speedup']:.2f}" for c in d["top"]]
    assert d["interval_coverage"] is None and d["previous"] is None
    assert d["held"] == {} and isinstance(d["n_outside"], int)


def test_tune_space_json_product_previous(tmp_path, capsys):
    """--previous: how many of its configurations are measured since, the picks'
    calibration from them, and each top pick's expected runtime, as the report prints."""
    p = _partial(tmp_path, 60)
    first = tmp_path / "round1.csv"
    args = ["tune-space", p, "--space", "product", "--model", "LR+C", "--quiet"]
    assert main([*map(str, args), "--out", str(first), "--json"]) == 0
    assert strict(capsys.readouterr().out)["n_written"] == 260
    rc, out, _ = run([*args, "--previous", first, "--json"], capsys)
    assert rc == 0
    assert strict(out)["previous"] == {"file": str(first), "n_measured_since": 0,
                                       "picks": None}
    doc, full = json.loads(p.read_text()), make_cache()["cache"]
    for k in [k for k in full if k not in doc["cache"]
              and not isinstance(full[k]["time"], str)][:25]:  # measure 25 more
        doc["cache"][k] = full[k]
    p.write_text(json.dumps(doc))
    rc, text, _ = run([*args, "--top", "2", "--previous", first], capsys)
    assert rc == 0
    rc, out, err = run([*args, "--top", "2", "--previous", first, "--json"], capsys)
    assert rc == 0, err
    d = strict(out)
    picks = d["previous"]["picks"]
    assert d["previous"]["n_measured_since"] == picks["n"] == 25
    assert f"ran a median {picks['median_ratio']:.2f}x" in text and number(picks["nominal"])
    for c in d["top"]:
        assert c["expected_low_s"] <= c["expected_s"] <= c["expected_high_s"]
        # of the slower of this prediction and the earlier one
        assert c["expected_s"] >= c["predicted_s"] * picks["median_ratio"] * (1 - 1e-9)
    assert len(re.findall(r"  expected \S+ \S+ \[", text)) == 2


def test_evaluate_json_summarises_the_files_and_the_headline(tmp_path, capsys):
    csv_path = synthetic_csv(tmp_path / "s.csv")
    args = ["evaluate", csv_path, "--n-train", 40, "--seeds", 1, "--no-curves", "--no-cost",
            "--no-plots", "--models", "Cons,NN+C", "--max-epochs", 40, "--features", "m,k",
            "--complexity", "m*k*log(k, 2)", "--quiet"]
    rc, text, _ = run([*args, "--out", tmp_path / "h"], capsys)
    assert rc == 0
    rc, out, err = run([*args, "--out", tmp_path / "j", "--json"], capsys)
    assert rc == 0, err
    d = strict(out)
    assert d["out"] == str(tmp_path / "j") and d["models"] == ["Cons", "NN+C"]
    assert d["n_combinations"] == 2 and number(d["total_s"])
    assert {p.rsplit("/", 1)[-1] for p in d["files"]} == {"accuracy.csv", "accuracy_runs.csv",
                                                         "accuracy.md"}
    assert all((tmp_path / "j" / p.rsplit("/", 1)[-1]).is_file() for p in d["files"])
    rows = {r["model"]: r for r in d["headline"]}
    assert set(rows) == {"Cons", "NN+C"}
    for r in rows.values():
        assert {"median_mape_pct", "worst_mape_pct", "median_within10_pct", "best_on",
                "median_params", "median_n_train"} <= set(r)
    # the same splits and seeds: the table the human output prints
    for model, r in rows.items():
        line = next(l for l in text.splitlines() if l.startswith(f"| {model} "))
        assert f"{r['median_mape_pct']:.2f}%" == line.split("|")[2].strip()
    v = d["nn_c_verdict"]
    assert set(v) == {"combinations", "beats_all", "median_ratio_to_floor", "median_floor_pct"}
    assert f"on {v['beats_all']} of {v['combinations']} combinations" in text
