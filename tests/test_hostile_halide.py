"""Bad input to ``annpred halide profile/train/tune``: one clear error (exit code 2) before
anything is sampled, compiled, measured or written. Nothing here compiles a schedule: the
measuring and selecting functions are replaced by ones that fail the test if reached."""
from __future__ import annotations

import json

import pandas as pd
import pytest

pytest.importorskip("halide")

from annpred.cli.app import main  # noqa: E402
from annpred.errors import DataError, ParameterError  # noqa: E402
from annpred.halide.pipelines import PIPELINES, get  # noqa: E402
from annpred.halide.space import key_of  # noqa: E402


class Reached(AssertionError):
    pass


def _fail(what):
    def f(*a, **k):
        raise Reached(f"{what} was reached with {a} {k}")
    return f


@pytest.fixture
def no_work(monkeypatch, tmp_path):
    """Profiling, PR planning, refinement, training and selection fail the test if called."""
    from annpred.halide import profile, sampling, select

    monkeypatch.setenv("ANNPRED_MODELS", str(tmp_path / "models"))
    monkeypatch.setattr(profile, "profile_pipeline", _fail("profile_pipeline"))
    monkeypatch.setattr(sampling, "pr_plan", _fail("pr_plan"))
    monkeypatch.setattr(sampling, "refine_profile", _fail("refine_profile"))
    monkeypatch.setattr(select, "select_schedule", _fail("select_schedule"))


# -- 1 + 2: numeric options of `halide profile` ----------------------------------------

@pytest.mark.parametrize("argv, message", [
    (["--seed", "-1", "--schedules", "1"], "--seed"),
    (["--seed", str(2**32)], "--seed"),
    (["--budget", "0", "--sampler", "pr"], "--budget"),
    (["--budget", "-3", "--sampler", "pr"], "--budget"),
    (["--budget", "0", "--sampler", "refine"], "--budget"),
    (["--max-seconds", "0", "--schedules", "1"], "--max-seconds"),
    (["--max-seconds", "-5", "--schedules", "1"], "--max-seconds"),
    (["--max-seconds", "nan", "--schedules", "1"], "--max-seconds"),
    (["--max-seconds", "inf", "--schedules", "1"], "--max-seconds"),
    (["--schedules", "0"], "--schedules"),
    (["--schedules", str(10**12)], "--schedules"),
    (["--sizes-per-schedule", "0"], "--sizes-per-schedule"),
    (["--schedules", "1000", "--sizes-per-schedule", "1000"], "points"),
    (["--rounds", "0", "--sampler", "refine"], "--rounds"),
    (["--threads", "0"], "--threads"),
    (["--threads", str(10**9)], "--threads"),
])
def test_halide_profile_refuses_bad_numbers_before_any_work(no_work, tmp_path, capsys, argv,
                                                            message):
    out = tmp_path / "hp.csv"
    assert main(["halide", "profile", "blur", *argv, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and err.count("\n") == 1
    assert not out.exists()


def test_halide_profile_budget_zero_is_not_unset(monkeypatch, tmp_path):
    """``--budget 0`` was read as "no budget" (``args.budget or ...``): a full profile."""
    from annpred.halide import cli as hcli

    args = type("A", (), dict(threads=2, seed=0, schedules=200, sizes_per_schedule=5,
                              rounds=4, budget=0, sampler="pr", max_seconds=None))()
    with pytest.raises(ParameterError, match="--budget must be between 1"):
        hcli._check_profile_args(args)


# -- 3: `halide train` uses only the rows at --threads ---------------------------------

def _profile(path, threads, n=5):
    from test_halide_store import _profile as profile

    return profile(path, n, threads)


def test_halide_train_refuses_a_profile_without_rows_at_threads(tmp_path, capsys):
    data = _profile(tmp_path / "t2.csv", [2])
    out = tmp_path / "models"
    assert main(["halide", "train", "blur", "--data", str(data), "--out", str(out),
                 "--threads", "1"]) == 2
    err = capsys.readouterr().err
    assert str(data) in err and "no rows measured with 1 thread" in err and "holds 2" in err
    assert not out.exists()


def test_halide_train_refuses_mixed_threads_without_a_choice(tmp_path, capsys):
    data = _profile(tmp_path / "mixed.csv", [1, 2])
    out = tmp_path / "models"
    assert main(["halide", "train", "blur", "--data", str(data), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert str(data) in err and "1 and 2 threads" in err and "--threads" in err
    assert not out.exists()


def test_rows_at_threads_never_pools_thread_counts(tmp_path):
    from annpred.halide.select import rows_at_threads

    df = pd.read_csv(_profile(tmp_path / "mixed.csv", [1, 2]))
    one, t = rows_at_threads(df, "mixed.csv", 1)
    assert t == 1 and len(one) == (df["threads"] == 1).sum() and set(one["threads"]) == {1}
    with pytest.raises(ParameterError, match="1 and 2 threads"):
        rows_at_threads(df, "mixed.csv")
    with pytest.raises(DataError, match="no rows measured with 4 threads"):
        rows_at_threads(df, "mixed.csv", 4)
    only1 = df[df["threads"] == 1]
    assert rows_at_threads(only1, "t1.csv")[1] == 1  # the profile's one count by default
    bad = df.astype({"threads": object})
    bad.loc[3, "threads"] = "two"
    with pytest.raises(DataError, match="row 5, column threads"):
        rows_at_threads(bad, "bad.csv", 2)
    # profiles without a threads column (older files): every row, the given count
    assert rows_at_threads(df.drop(columns="threads"), "old.csv")[1] == 2


def test_halide_train_defaults_to_the_profiles_thread_count(tmp_path, capsys):
    """A profile measured with 1 thread trained a ``-t1`` model, not ``-t2``."""
    from annpred.spec import hardware as hw

    data = _profile(tmp_path / "t1.csv", [1])
    out = tmp_path / "models"
    assert main(["halide", "train", "blur", "--data", str(data), "--out", str(out),
                 "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["threads"] == 1
    assert rep["model"] == str(out / "halide" / hw.cpu_id(1) / "blur.json")
    assert not (out / "halide" / hw.cpu_id(2)).exists()


# -- 4: `halide tune` sizes and candidates ---------------------------------------------

@pytest.mark.parametrize("size, message", [
    ("1920,,1080", "empty field"),
    (",1920,1080", "empty field"),
    ("1920,1080,", "empty field"),
    ("1920x", "empty field"),
    ("3000000000,1080", "W=3000000000"),
    ("99999999999999999999,1080", "W=99999999999999999999"),
    ("1920,3000000000", "H=3000000000"),
    ("60000,60000", "byte input buffer"),
])
def test_halide_tune_refuses_bad_sizes_before_selecting(no_work, capsys, size, message):
    assert main(["halide", "tune", "blur", "--size", size]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_check_sizes_accepts_real_sizes_and_bounds_every_pipelines_buffers():
    from annpred.halide.select import check_sizes, _buffer_elements

    assert check_sizes("blur", "1920,1080") == {"W": 1920, "H": 1080}
    assert check_sizes("blur", "1920x1080") == {"W": 1920, "H": 1080}
    assert check_sizes("matmul", "2048,2048,2048") == {"M": 2048, "N": 2048, "K": 2048}
    for name, p in PIPELINES.items():  # the extrapolated shapes are the allocated ones
        sz = p.parse_size(p.example_size())
        real = [a.size for a in p.make_inputs(sz)] + [p.make_output(sz).size]
        assert _buffer_elements(p, sz) == real, name
    with pytest.raises(ParameterError, match="output buffer|input buffer"):
        check_sizes("matmul", "50000,50000,256")
    with pytest.raises(ParameterError, match="empty field"):
        check_sizes("blur", "1920,,1080")


def test_select_schedule_checks_sizes_before_loading_a_model(tmp_path):
    from annpred.halide.select import select_schedule

    with pytest.raises(ParameterError, match="32-bit"):
        select_schedule("blur", "3000000000,1080", models=tmp_path / "none.json")


def test_halide_tune_caps_candidates_at_the_space(monkeypatch, tmp_path, capsys):
    """``--candidates 1000000`` ran for minutes on a space of 1056 schedules."""
    from annpred.halide import select

    seen = {}

    def fake(p, sizes, candidates, **kw):
        seen["candidates"] = candidates
        raise Reached("selection")
    monkeypatch.setattr(select, "select_schedule", fake)
    with pytest.raises(Reached):
        main(["halide", "tune", "blur", "--size", "1920,1080", "--candidates", "1000000"])
    n = get("blur").space.count()
    assert seen["candidates"] == n == 1056
    assert f"predicting all {n}" in capsys.readouterr().err


def test_space_sample_stops_at_the_space_size():
    sp = get("iir_blur").space
    n = sp.count()
    everything = sp.sample(10**9, seed=3)  # returns at once: the space holds n schedules
    assert len(everything) == n == len({key_of(s) for s in everything})
    assert sp.sample(n - 1, seed=3) == everything[:n - 1]  # the same draws, stopped earlier
