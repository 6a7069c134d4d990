"""Where model files live: ``<root>/<hardware>/<kernel>/<variant>.json``, with the CSVs they
were trained on under ``<root>/<hardware>/data/``. Halide schedule models live under their own
root (``<root>/halide/...``) and are not kernel models.

Roots: the user's calibrated models (``$ANNPRED_MODELS``, else
``$XDG_DATA_HOME/annpred/models``, else ``~/.local/share/annpred/models``) over the shipped
ones (``$ANNPRED_TRAINED``, else the ``trained`` folder shipped inside the package, else the
repository's top-level ``trained/`` in a source checkout).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

from annpred.validate import safe_name  # noqa: F401  (one place for path-safe names)

RESERVED = ("data", "halide", "calibration")  # folders under a root that are not hardware ids


def shipped_root() -> Path:
    """The shipped models: ``$ANNPRED_TRAINED``, the wheel's package data, or the checkout's."""
    env = os.environ.get("ANNPRED_TRAINED")
    if env:
        return Path(env)
    pkg = Path(__file__).resolve().parent.parent
    inside = pkg / "trained"
    if inside.is_dir():
        return inside
    return pkg.parent / "trained"


def user_root() -> Path:
    """The user's calibrated models (written by ``annpred quickstart`` and ``calibrate``)."""
    env = os.environ.get("ANNPRED_MODELS")
    if env:
        return Path(env)
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local",
                                                             "share")
    return Path(base) / "annpred" / "models"


def model_path(root: str | os.PathLike, kernel: str, variant: str, hardware: str) -> Path:
    return (Path(root) / safe_name(hardware, "hardware") / safe_name(kernel, "kernel")
            / f"{safe_name(variant, 'variant')}.json")


def data_dir(root: str | os.PathLike, hardware: str) -> Path:
    return Path(root) / safe_name(hardware, "hardware") / "data"


def model_files(root: str | os.PathLike) -> Iterator[Path]:
    """Every kernel model file under ``root`` (Halide schedule models and data excluded)."""
    root = Path(root)
    if not root.is_dir():
        return
    for hw_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        if hw_dir.name in RESERVED:
            continue
        for k_dir in sorted(p for p in hw_dir.iterdir() if p.is_dir()):
            if k_dir.name in RESERVED:
                continue
            yield from sorted(k_dir.glob("*.json"))
