"""The command line as a new user meets it: help texts, --version, usage errors."""
from __future__ import annotations

import argparse
import os
import subprocess
import sys

import pytest

from annpred.cli.app import build_parser
from conftest import run_cli


def _subparsers(parser):
    for a in parser._actions:
        if isinstance(a, argparse._SubParsersAction):
            for name, sub in a.choices.items():
                yield name, sub
                yield from ((f"{name} {n}", s) for n, s in _subparsers(sub))


def test_every_option_and_argument_has_help():
    missing = []
    for name, sub in _subparsers(build_parser()):
        for a in sub._actions:
            if isinstance(a, (argparse._HelpAction, argparse._SubParsersAction)):
                continue
            if not (a.help and a.help.strip()):  # argparse.SUPPRESS (hidden) is deliberate
                missing.append(f"{name}: {'/'.join(a.option_strings) or a.dest}")
    assert not missing, "no help text: " + ", ".join(missing)


def test_help_has_no_markup():
    texts = [build_parser().format_help()]
    texts += [sub.format_help() for _, sub in _subparsers(build_parser())]
    bad = [t.splitlines()[0] for t in texts if "``" in t or ":func:" in t or ":class:" in t]
    assert not bad, bad


def test_version():
    r = run_cli(["--version"])
    assert r.returncode == 0 and r.stdout.strip().startswith("annpred ")


def test_subcommand_errors_print_the_subcommand_usage():
    r = run_cli(["predict", "matmul", "m", "512"])
    assert r.returncode == 2
    assert "usage: annpred predict" in r.stderr
    r = run_cli(["choose", "matmul", "--bogus", "1"])
    assert r.returncode == 2 and "usage: annpred choose" in r.stderr


@pytest.mark.parametrize("budget", ["-5", "0", "nan"])
def test_quickstart_refuses_bad_budgets_before_writing(tmp_path, budget):
    r = run_cli(["quickstart", "--budget", budget, "--out", tmp_path / "m"],
                env={**os.environ, "ANNPRED_MODELS": str(tmp_path / "user")})
    assert r.returncode == 2 and "--budget" in r.stderr
    assert not (tmp_path / "m").exists() and not (tmp_path / "user").exists()


@pytest.mark.parametrize("cmd", [["kernels", "--models"], ["predict", "matmul", "--variant",
                                                           "numpy", "m=8", "n=8", "k=8",
                                                           "--models"],
                                 ["choose", "matmul", "m=8", "n=8", "k=8", "--models"]])
def test_missing_model_directory_is_refused(tmp_path, cmd):
    r = run_cli([*cmd, tmp_path / "no" / "such"])
    assert r.returncode == 2 and "does not exist" in r.stderr


def test_kernels_listing_does_not_import_torch():
    code = ("import sys, io, contextlib; from annpred.cli.app import main\n"
            "with contextlib.redirect_stdout(io.StringIO()): main(['kernels', '--json'])\n"
            "assert 'torch' not in sys.modules and 'halide' not in sys.modules, 'imported'")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_training_warns_below_two_rows_per_parameter(tmp_path):
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(0)
    m = rng.integers(2, 500, 40)
    pd.DataFrame({"m": m, "time": 1e-6 * m}).to_csv(tmp_path / "ext.csv", index=False)
    r = run_cli(["train", tmp_path / "ext.csv", "--target", "time", "--features", "m",
                 "--kernel", "k", "--variant", "v", "--hardware", "h", "--out",
                 tmp_path / "models"])
    assert r.returncode == 0, r.stderr
    assert "fewer than 2 rows per parameter" in r.stderr and "k/v/h" in r.stderr


@pytest.mark.parametrize("n, label", [(12, "train MAPE (no validation split)"),
                                      (40, "val MAPE")])
def test_train_says_which_error_it_prints(tmp_path, n, label):
    """Under 20 rows there is no validation split: the printed error is the training rows'."""
    import json

    import numpy as np
    import pandas as pd

    m = np.random.default_rng(0).integers(2, 500, n)
    pd.DataFrame({"m": m, "time": 1e-6 * m}).to_csv(tmp_path / "ext.csv", index=False)
    r = run_cli(["train", tmp_path / "ext.csv", "--target", "time", "--features", "m",
                 "--kernel", "k", "--variant", "v", "--hardware", "h", "--out",
                 tmp_path / "models"])
    assert r.returncode == 0, r.stderr
    assert f"k/v/h: {label} " in r.stdout
    d = json.loads(next((tmp_path / "models").rglob("*.json")).read_text())
    assert d["train"]["n_val"] == (0 if n < 20 else round(0.2 * n))
