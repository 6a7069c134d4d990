import os
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).parent
REPO = HERE.parent


@pytest.fixture
def toy_env(tmp_path, monkeypatch):
    """Environment for CLI subprocesses: the toy kernel, an isolated user model dir."""
    env = dict(os.environ)
    env["ANNPRED_KERNELS"] = str(HERE / "toy_kernel.py")
    env["ANNPRED_MODELS"] = str(tmp_path / "user_models")
    env["PYTHONUNBUFFERED"] = "1"
    monkeypatch.setenv("ANNPRED_KERNELS", env["ANNPRED_KERNELS"])
    monkeypatch.setenv("ANNPRED_MODELS", env["ANNPRED_MODELS"])
    return env


def run_cli(args, env=None, cwd=None, timeout=300, **kw):
    return subprocess.run([sys.executable, "-m", "annpred.cli", *map(str, args)], env=env,
                          cwd=cwd, capture_output=True, text=True, timeout=timeout, **kw)


@pytest.fixture
def cli():
    return run_cli


def experiment_script(name):
    """An experiments/ script, loaded from its file as a module (nothing runs until called)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"exp_{name}",
                                                  REPO / "experiments" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod
