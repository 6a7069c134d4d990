"""Issue 11, findings 3, 5 and 6 (CSVs and options): one clear DataError/ParameterError for
each careless input, checked before anything is trained or written."""
import random

import numpy as np
import pytest

from annpred.data.profiles import load_profiles, read_csv
from annpred.errors import DataError, ParameterError
from annpred.model.trainer import check_options, duplicate_keys, train_frame

HEAD = ("kernel,variant,hardware,m,n,runtime_s,runtime_cv,repeats,runtime_min_s,threads,"
        "sampler,seed,point,pass,timestamp,annpred_version")


def _rows(n=12, seed=0, kernel="toy", variant="v1", hw="cpu-x-t1", start=0):
    rng = random.Random(seed)
    out = []
    for i in range(start, start + n):
        m, k = rng.randint(1, 300), rng.randint(1, 300)
        t = 1e-6 * m * k * (1 + rng.random() / 20)
        out.append(f"{kernel},{variant},{hw},{m},{k},{t!r},0.01,5,{t!r},1,random,0,{i},0,"
                   "2026-11-29T00:00:00,0.1.0")
    return out


def _csv(tmp_path, lines, name="d.csv", bom=False):
    p = tmp_path / name
    p.write_text(("\ufeff" if bom else "") + "\n".join(lines) + "\n", encoding="utf-8")
    return p


def test_bom_header_is_read(tmp_path):
    df = load_profiles([_csv(tmp_path, [HEAD, *_rows()], bom=True)])
    assert "kernel" in df.columns and len(df) == 12


def test_only_a_bom_is_an_empty_file(tmp_path):
    p = tmp_path / "b.csv"
    p.write_bytes(b"\xef\xbb\xbf\n")
    with pytest.raises(DataError, match="empty"):
        read_csv(p)


def test_header_split_like_pandas(tmp_path):
    p = _csv(tmp_path, ['m, "n,x",k,time', "1,2,3,4e-3", "2,3,4,5e-3"])
    df = read_csv(p)
    assert list(df.columns) == ["m", "n,x", "k", "time"]
    assert df["n,x"].tolist() == [2, 3]


@pytest.mark.parametrize("row, what", [("toy,v1,cpu-x-t1,5,6,1e-3", "row 3 has 6 fields"),
                                       ("toy,v1,cpu-x-t1,5,6,1e-3,0.01,5,1e-3,1,random,0,99,0,"
                                        "2026,0.1.0,extra", "malformed|fields")])
def test_short_and_long_rows_are_refused(tmp_path, row, what):
    rows = _rows()
    p = _csv(tmp_path, [HEAD, rows[0], row, *rows[1:]])
    with pytest.raises(DataError, match=what):
        load_profiles([p])


@pytest.mark.parametrize("cell, match", [("x" * 300, "file name"), ("a/b", "file name"),
                                         ("mm ", "file name")])
def test_key_cells_must_be_safe_names(tmp_path, cell, match):
    rows = _rows()
    rows[3] = rows[3].replace("cpu-x-t1", cell)
    with pytest.raises(DataError, match=match):
        load_profiles([_csv(tmp_path, [HEAD, *rows])])


@pytest.mark.parametrize("value", ["1e-320", "0", "-1", "1e12", "1" + "0" * 400])
def test_absurd_runtimes_are_refused(tmp_path, value):
    rows = _rows()
    cells = rows[2].split(",")
    cells[5] = value
    rows[2] = ",".join(cells)
    with pytest.raises(DataError, match="row 4, column 'runtime_s'"):
        load_profiles([_csv(tmp_path, [HEAD, *rows])])


def test_huge_integer_feature_cell_is_a_data_error(tmp_path):
    rows = _rows()
    cells = rows[1].split(",")
    cells[3] = "9" * 400
    rows[1] = ",".join(cells)
    with pytest.raises(DataError, match="row 3, column 'm'"):
        load_profiles([_csv(tmp_path, [HEAD, *rows])])


@pytest.mark.parametrize("kw, match", [
    (dict(features=["m", "m", "n"]), "twice"),
    (dict(features=["m", "runtime_s"]), "target"),
    (dict(features=["m\n"]), "control"),
    (dict(n_train=-5), "n-train"),
    (dict(n_train=3), "n-train"),
    (dict(seed=-1), "seed"),
    (dict(steps={"": 5}), "name"),
    (dict(steps={"zz": 5}, features=["m", "n"]), "zz"),
    (dict(steps={"m": 1}), "period"),
    (dict(kernel="k" * 300), "kernel"),
    (dict(kernel="mm\n"), "kernel"),
])
def test_bad_training_options_are_refused(kw, match):
    with pytest.raises(ParameterError, match=match):
        check_options(**kw)


def test_steps_naming_an_unknown_feature_are_refused_by_train_frame(tmp_path):
    df = load_profiles([_csv(tmp_path, [HEAD, *_rows()])])
    with pytest.raises(ParameterError, match="zz"):
        train_frame(df, None, steps={"zz": 5}, max_epochs=5, n_init=1)


def test_duplicate_measurement_keys_are_refused(tmp_path):
    rows = _rows()
    p = _csv(tmp_path, [HEAD, *rows, rows[4]])
    df = load_profiles([p])
    with pytest.raises(DataError, match="row 14 repeats the measurement key .* row 6"):
        duplicate_keys(df)
    with pytest.raises(DataError, match="repeats the measurement key"):
        train_frame(df, tmp_path / "out", max_epochs=5, n_init=1)
    assert not (tmp_path / "out").exists()
    # the same CSV given twice is caught too
    q = _csv(tmp_path, [HEAD, *rows], name="e.csv")
    with pytest.raises(DataError, match="repeats"):
        duplicate_keys(load_profiles([q, q]))


def _cli_error(r):
    assert r.returncode == 2, (r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("annpred: error:"), r.stderr
    return lines[0]


@pytest.mark.parametrize("args, match", [
    (["--features", "m,m,n"], "twice"),
    (["--features", "m,runtime_s"], "target"),
    (["--n-train", "-5"], "n-train"),
    (["--steps", "zz=5", "--features", "m,n"], "zz"),
    (["--steps", "=5"], "steps"),
    (["--seed", "-1"], "seed"),
    (["--kernel", "k" * 300], "kernel"),
])
def test_cli_train_refuses_bad_options_before_training(tmp_path, cli, args, match):
    p = _csv(tmp_path, [HEAD, *_rows()])
    out = tmp_path / "models"
    line = _cli_error(cli(["train", p, "--out", out, *args]))
    assert __import__("re").search(match, line)
    assert not out.exists()


def test_cli_train_out_blocked_by_a_file_or_under_proc(tmp_path, cli):
    p = _csv(tmp_path, [HEAD, *_rows()])
    (tmp_path / "blocker").write_text("x")
    _cli_error(cli(["train", p, "--out", tmp_path / "blocker"]))
    _cli_error(cli(["train", p, "--out", tmp_path / "blocker" / "sub"]))
    _cli_error(cli(["train", p, "--out", "/proc/annpred-models"]))


def test_cli_train_bom_csv_and_short_row(tmp_path, cli):
    rows = _rows()
    p = _csv(tmp_path, [HEAD, rows[0], "toy,v1,cpu-x-t1,5,6,1e-3", *rows[1:]])
    line = _cli_error(cli(["train", p, "--out", tmp_path / "m"]))
    assert "row 3" in line


@pytest.mark.parametrize("args", [["--seed", "-1"], ["--pass", "-3"], ["--samples", "0"]])
def test_cli_profile_refuses_negative_numbers(tmp_path, cli, toy_env, args):
    out = tmp_path / "p.csv"
    r = cli(["profile", "toy", "--out", out, "--quiet", *args], env=toy_env)
    _cli_error(r)
    assert not out.exists()


def test_features_option_shapes_the_frame(tmp_path):
    df = load_profiles([_csv(tmp_path, [HEAD, *_rows()])], features=["m"])
    assert "m" in df.columns and "n" not in df.columns
    assert np.all(df["runtime_s"] > 0)


def test_duplicate_keys_with_empty_key_cells_are_named(tmp_path):
    rows = _rows()
    cells = rows[4].split(",")
    cells[11] = ""  # an empty seed: NaN in both copies (found by experiments/fuzz.py)
    rows[4] = ",".join(cells)
    p = _csv(tmp_path, [HEAD, *rows, rows[4]])
    with pytest.raises(DataError, match="row 14 repeats the measurement key .* row 6"):
        duplicate_keys(load_profiles([p]))
