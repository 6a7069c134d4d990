"""Argument lists found by fuzzing every subcommand's options (hostile values: empty text,
FIFOs, directories, files where a directory belongs): each must end in one
``annpred: error:`` line with exit code 2, no traceback, no hang, and nothing written."""
import os
import subprocess
from pathlib import Path

import pytest

from annpred.cli.app import main

ROOT = Path(__file__).resolve().parent.parent
HALIDE_CSV = ROOT / "trained" / "halide" / "cpu-amd-epyc-t2" / "data" / "blur.csv"


def _one_error(rc, err) -> str:
    assert rc == 2, err
    lines = [ln for ln in err.strip().splitlines() if not ln.startswith("annpred: warning:")]
    assert len(lines) == 1 and lines[0].startswith("annpred: error:"), err
    assert "Traceback" not in err
    return lines[0]


def _in_process(argv, capsys) -> str:
    rc = main([str(a) for a in argv])
    return _one_error(rc, capsys.readouterr().err)


def _subprocess(argv, env, cwd) -> str:
    """A FIFO would block forever without the fix: the timeout makes that a failure."""
    try:
        r = subprocess.run([os.sys.executable, "-m", "annpred.cli", *map(str, argv)],
                           env=env, cwd=cwd, capture_output=True, text=True, timeout=60,
                           stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        pytest.fail(f"annpred {' '.join(map(str, argv))} hung")
    return _one_error(r.returncode, r.stderr)


def _listing(d: Path) -> list:
    return sorted(str(p.relative_to(d)) for p in d.rglob("*"))


@pytest.fixture
def env(tmp_path, monkeypatch):
    monkeypatch.setenv("ANNPRED_MODELS", str(tmp_path / "user_models"))
    e = dict(os.environ, ANNPRED_MODELS=str(tmp_path / "user_models"))
    return e


def test_halide_train_data_fifo_is_refused_not_read(tmp_path, env):
    pytest.importorskip("halide")
    os.mkfifo(tmp_path / "fifo")
    before = _listing(tmp_path)
    line = _subprocess(["halide", "train", "blur", "--data", tmp_path / "fifo",
                        "--out", tmp_path / "h"], env, tmp_path)
    assert "fifo" in line and "not a regular file" in line
    assert _listing(tmp_path) == before


def test_halide_profile_out_fifo_is_refused_before_measuring(tmp_path, env):
    pytest.importorskip("halide")
    os.mkfifo(tmp_path / "fifo")
    before = _listing(tmp_path)
    line = _subprocess(["halide", "profile", "blur", "--schedules", "1",
                        "--sizes-per-schedule", "1", "--max-seconds", "1",
                        "--out", tmp_path / "fifo"], env, tmp_path)
    assert "--out" in line and "not a regular file" in line
    assert _listing(tmp_path) == before  # no fifo.lock beside it


@pytest.mark.parametrize("argv, match", [
    (["halide", "profile", "blur", "--schedules", "1", "--out", ""], "--out"),
    (["halide", "profile", "blur", "--schedules", "1", "--out", "{d}/adir"], "directory"),
    (["halide", "train", "blur", "--data", "", "--out", "{d}/h"], "--data"),
    (["halide", "train", "blur", "--data", HALIDE_CSV, "--out", ""], "--out"),
    (["halide", "train", "blur", "--data", HALIDE_CSV, "--out", "{d}/afile"], "--out"),
    (["halide", "train", "blur", "--data", HALIDE_CSV, "--out", "{d}/afile/m.json"], "--out"),
    (["halide", "tune", "blur", "--size", "512", "--candidates", "4", "--emit", ""], "--emit"),
    (["halide", "tune", "blur", "--size", "512", "--candidates", "4", "--emit", "{d}/afile"],
     "--emit"),
])
def test_halide_paths_are_checked_before_any_work(argv, match, tmp_path, env, capsys,
                                                   monkeypatch):
    pytest.importorskip("halide")
    (tmp_path / "adir").mkdir()
    (tmp_path / "afile").write_text("x")
    monkeypatch.chdir(tmp_path)  # an empty --out wrote into the current directory
    before = _listing(tmp_path)
    line = _in_process([str(a).replace("{d}", str(tmp_path)) for a in argv], capsys)
    assert match in line
    assert _listing(tmp_path) == before


def test_quickstart_refuses_a_budget_past_any_use(tmp_path, env):
    """--budget 1e300 was taken: the run measured for ever (a subprocess, so that the old
    behaviour is a failure, not a hung test)."""
    line = _subprocess(["quickstart", "--budget", "1e300", "--out", tmp_path / "q"], env,
                       tmp_path)
    assert "--budget" in line and "at most" in line
    assert not (tmp_path / "q").exists() and not (tmp_path / "user_models").exists()


@pytest.mark.parametrize("extra, match", [
    (["--threads", "0"], "--threads"),
    (["--threads", "-1"], "--threads"),
    (["--out", "{d}/afile"], "--out"),
])
def test_calibrate_refuses_before_its_banner(extra, match, tmp_path, env, capsys):
    """These were refused only after the 'calibrating models for this machine' line (on
    stdout), and --threads was not named."""
    (tmp_path / "afile").write_text("x")
    before = _listing(tmp_path)
    argv = ["calibrate", "--quick", "matmul", "--budget", "0.3", "--quiet",
            *[a.replace("{d}", str(tmp_path)) for a in extra]]
    rc = main(argv)
    cap = capsys.readouterr()
    assert match in _one_error(rc, cap.err)
    assert cap.out == ""
    assert _listing(tmp_path) == before


def _small_profile(tmp_path) -> Path:
    rows = (ROOT / "trained" / "cpu-amd-epyc-t1" / "data" / "matmul.csv").read_text()
    lines = rows.splitlines()
    keep = [ln for ln in lines[1:] if ",numpy," in ln][:60]
    p = tmp_path / "small.csv"
    p.write_text("\n".join([lines[0], *keep]) + "\n")
    return p


EVALUATE = ["--n-train", "16", "--n-test", "10", "--seeds", "1", "--no-curves", "--no-cost",
            "--no-plots", "--quiet", "--max-epochs", "3", "--models", "Cons,LR+C"]


def test_evaluate_refuses_seeds_past_any_use(tmp_path, env):
    """--seeds 99999999999999999999999 (the last of a repeated option wins) was taken:
    the study ran for ever. A subprocess, so that the old behaviour fails, not hangs."""
    csv = _small_profile(tmp_path)
    line = _subprocess(["evaluate", csv, "--out", tmp_path / "ev", *EVALUATE,
                        "--seeds", "99999999999999999999999"], env, tmp_path)
    assert "--seeds" in line
    assert not (tmp_path / "ev").exists()


@pytest.mark.parametrize("extra, match", [
    (["--jobs", "100000"], "--jobs"),
    (["--jobs", str(os.cpu_count() * 64 + 1)], "cores"),
    (["--curve-seeds", "99999999999"], "--curve-seeds"),
    (["--n-test", "99999999999999999999999"], "--n-test"),
    (["--curve-sizes", "5,99999999999999"], "--curve-sizes"),
])
def test_evaluate_bounds_its_numbers(extra, match, tmp_path, capsys):
    csv = _small_profile(tmp_path)
    argv = ["evaluate", csv, "--out", tmp_path / "ev", *EVALUATE, *extra]
    if "--curve-sizes" in extra:
        argv.remove("--no-curves")
    line = _in_process(argv, capsys)
    assert match in line
    assert not (tmp_path / "ev").exists()


def test_evaluate_notes_fifo_is_refused_before_the_study(tmp_path, env):
    """--notes was opened after the study: a FIFO blocked for ever."""
    csv = _small_profile(tmp_path)
    os.mkfifo(tmp_path / "fifo")
    line = _subprocess(["evaluate", csv, "--out", tmp_path / "ev", *EVALUATE,
                        "--notes", tmp_path / "fifo"], env, tmp_path)
    assert "--notes" in line and "not a regular file" in line
    assert not (tmp_path / "ev").exists()


@pytest.mark.parametrize("notes, match", [("{d}/missing.md", "does not exist"),
                                          ("{d}", "directory"), ("", "no file given")])
def test_evaluate_bad_notes_write_nothing(notes, match, tmp_path, capsys):
    """--notes that cannot be read was found only after the study had written its
    checkpoint into --out (and '' was ignored)."""
    csv = _small_profile(tmp_path)
    line = _in_process(["evaluate", csv, "--out", tmp_path / "ev", *EVALUATE,
                        "--notes", notes.replace("{d}", str(tmp_path))], capsys)
    assert "--notes" in line and match in line
    assert not (tmp_path / "ev").exists()


def _small_cache(tmp_path) -> Path:
    """A Kernel Tuner cache of 120 configurations of the shared convolution space."""
    import gzip
    import json
    import random

    src = ROOT.parent / "shared" / "data" / "kernel_tuner" / "convolution_A100.json.gz"
    if not src.exists():
        pytest.skip("shared Kernel Tuner data not present")
    d = json.loads(gzip.open(src).read())
    items = list(d["cache"].items())
    random.Random(0).shuffle(items)
    d["cache"] = dict(items[:120])
    p = tmp_path / "small_kt.json"
    p.write_text(json.dumps(d))
    return p


def test_tune_space_previous_fifo_is_refused(tmp_path, env):
    """--previous was handed to pandas unchecked: a FIFO blocked for ever."""
    cache = _small_cache(tmp_path)
    os.mkfifo(tmp_path / "fifo")
    line = _subprocess(["tune-space", cache, "--space", "product", "--top", "3", "--model",
                        "LR+C", "--quiet", "--out", tmp_path / "r.csv",
                        "--previous", tmp_path / "fifo"], env, tmp_path)
    assert "--previous" in line and "not a regular file" in line
    assert not (tmp_path / "r.csv").exists()


@pytest.mark.parametrize("content", [b"x", b"my notes\nline two, no newline"])
def test_profile_out_of_another_kind_is_left_as_it_was(content, tmp_path, capsys):
    """profile --out on a file that is not a profile of this kernel: refused, and the
    file is untouched (its 'torn last line' was cut before the header was checked: a
    one-line file without a newline was emptied)."""
    out = tmp_path / "mine.txt"
    out.write_bytes(content)
    line = _in_process(["profile", "matmul", "--hardware", "sim-systolic32", "--samples", "3",
                        "--quiet", "--out", out], capsys)
    assert "do not match" in line
    assert out.read_bytes() == content
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine.txt"]


@pytest.mark.parametrize("argv, option", [
    (["predict", "matmul", "--variant", "numpy", "m=64", "n=64", "k=64", "--hardware", ""],
     "--hardware"),
    (["kernels", "--models", " "], "--models"),
    (["predict", "matmul", "--variant", "numpy", "--input", "", "--output", "p.csv"],
     "--input"),
    (["accel", "estimate", "systolic32", "--layer", "gemm:64,64,64", "--network", ""],
     "--network"),
    (["calibrate", "--quick", "matmul", "--budget", "0.3", "--quiet", "--models", ""],
     "--models"),
    (["halide", "tune", "blur", "--size", "512", "--candidates", "4", "--models", ""],
     "--models"),
])
def test_an_empty_option_value_is_refused_not_ignored(argv, option, tmp_path, capsys,
                                                      monkeypatch):
    """These ran with the default (exit 0) as if the option had not been given."""
    if argv[0] == "halide":
        pytest.importorskip("halide")
    monkeypatch.setenv("ANNPRED_MODELS", str(tmp_path / "user_models"))
    rc = main(argv)
    cap = capsys.readouterr()
    assert option in _one_error(rc, cap.err) and "empty" in cap.err
    assert cap.out == ""
    assert not (tmp_path / "user_models").exists()


def _options(parser, path=()):
    import argparse

    for a in parser._actions:
        if isinstance(a, argparse._SubParsersAction):
            for name, sub in a.choices.items():
                yield from _options(sub, (*path, name))
        elif not isinstance(a, (argparse._HelpAction, argparse._VersionAction)):
            yield path, a


def test_every_option_has_help_and_names_its_default():
    """`annpred <cmd> --help` documents every option; one whose default is a value (not
    None/False/[]) and has no fixed choices says what the default is (profile --sampler,
    train/evaluate --target, export --format, evaluate --curve-sizes, quickstart --budget
    and halide profile --schedules did not)."""
    import argparse

    from annpred.cli.app import build_parser

    missing = []
    for path, a in _options(build_parser()):
        if a.help == argparse.SUPPRESS:
            continue
        name = " ".join((*path, a.option_strings[0] if a.option_strings else a.dest))
        if not (a.help or "").strip():
            missing.append(f"{name}: no help")
        elif (a.option_strings and a.choices is None and a.default not in (None, False, [])
              and "default" not in a.help.lower()):
            missing.append(f"{name}: default {a.default!r} not named")
    assert not missing, missing


def test_profile_out_symlink_loop_leaves_no_lock_file(tmp_path, capsys):
    """--out on a symlink loop passed the check (exists() is False) and failed at the open,
    after the lock file had been created beside it."""
    os.symlink("l2", tmp_path / "l1")
    os.symlink("l1", tmp_path / "l2")
    line = _in_process(["profile", "matmul", "--hardware", "sim-systolic32", "--samples", "3",
                        "--quiet", "--out", tmp_path / "l1"], capsys)
    assert "--out" in line and "symbolic links" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["l1", "l2"]


@pytest.mark.parametrize("argv", [
    ["choose", "matmul", "m=5", "n=5", "k=5", "da=1", "db=1", "--default", ""],
    ["train", "x.csv", "--transfer", ""],
    ["tune-space", "x.json", "--transfer", " "],
])
def test_an_empty_default_or_transfer_names_the_option(argv, capsys):
    """`--transfer ''` said "CSV . is a directory" and `--default ''` "default @None"; both
    are now a usage error naming the option."""
    with pytest.raises(SystemExit) as exc:
        main(argv)
    err = capsys.readouterr().err
    assert exc.value.code == 2 and "Traceback" not in err
    assert f"argument {argv[-2]}: empty value" in err


def test_an_error_line_repeating_a_huge_argument_is_bounded(tmp_path, capsys):
    """A 5,000-character path gave a 5,000-character error line; the line now keeps its
    start and end within MAX_ERROR_CHARS and says how much it left out."""
    from annpred.cli.app import MAX_ERROR_CHARS

    long = str(tmp_path / ("x" * 5000))
    rc = main(["predict", "matmul", "--variant", "numpy", "m=5", "n=5", "k=5",
               "--models", long])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and err.startswith("annpred: error: ") and "\n" not in err
    assert len(err) <= MAX_ERROR_CHARS + 80 and "characters left out" in err


@pytest.mark.parametrize("argv", [
    ["convert", "CACHE", "-o", "-"],
    ["export", "MODEL", "--format", "c", "-o", "-"],
])
def test_dash_as_an_output_is_refused_not_a_file_named_dash(argv, tmp_path, monkeypatch,
                                                             capsys):
    """`-o -` wrote a file literally named `-` into the current directory."""
    from annpred.model.layout import shipped_root

    monkeypatch.chdir(tmp_path)
    cache = sorted((Path(__file__).resolve().parents[2] / "shared" / "data" /
                    "kernel_tuner").glob("*.json.gz"))
    model = sorted(shipped_root().glob("*/matmul/numpy.json"))
    if not cache or not model:
        pytest.skip("no cache file or shipped model here")
    argv = [str(cache[0]) if a == "CACHE" else str(model[0]) if a == "MODEL" else a
            for a in argv]
    line = _in_process(argv, capsys)
    assert "standard output is not an output here" in line
    assert not (tmp_path / "-").exists()
