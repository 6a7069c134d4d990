"""annpred: predict kernel runtimes with tiny complexity-augmented neural networks.

``import annpred`` is cheap: torch is imported only when a model is trained, and halide only
when a Halide variant or pipeline is used. The package follows the data line (see
ARCHITECTURE.md): ``spec`` -> ``measure`` -> ``data`` -> ``model`` -> ``runtime``, with
``study``, ``halide`` and ``cli`` on top.
"""
from __future__ import annotations

from pathlib import Path as _Path

__version__ = "0.1.0"

# In a source checkout the kernel catalog lives in the top-level ``kernels/`` folder, which an
# installed wheel maps to ``annpred.kernels``; make the same name work from the checkout.
_here = _Path(__file__).resolve().parent
if not (_here / "kernels").is_dir() and (_here.parent / "kernels" / "__init__.py").is_file():
    __path__.append(str(_here.parent))  # noqa: F821 - the package's own __path__
del _here

_LAZY = {
    "AugmentedNNRegressor": ("annpred.model.estimator", "AugmentedNNRegressor"),
    "load_models": ("annpred.runtime.predictor", "load_models"),
    "Predictor": ("annpred.runtime.predictor", "Predictor"),
    "choose": ("annpred.runtime.choose", "choose"),
    "dispatch": ("annpred.runtime.dispatch", "dispatch"),
    "Choice": ("annpred.runtime.choice", "Choice"),
    "get_kernel": ("annpred.spec.catalog", "get_kernel"),
    "register_kernel": ("annpred.spec.catalog", "register_kernel"),
    "Kernel": ("annpred.spec.kernel", "Kernel"),
    "Param": ("annpred.spec.kernel", "Param"),
    "Variant": ("annpred.spec.kernel", "Variant"),
    "AnnpredError": ("annpred.errors", "AnnpredError"),
    "calibrate": ("annpred.measure.calibrate", "calibrate"),
    "MachineMismatchWarning": ("annpred.errors", "MachineMismatchWarning"),
}
_SUBMODULES = ("spec", "measure", "data", "model", "runtime", "study", "halide", "cli",
               "select", "errors", "files", "threads", "kernels")

__all__ = sorted(_LAZY)


def __getattr__(name):
    import importlib

    if name in _LAZY:
        mod, attr = _LAZY[name]
        value = getattr(importlib.import_module(mod), attr)
        globals()[name] = value
        return value
    if name in _SUBMODULES:
        return importlib.import_module(f"annpred.{name}")
    raise AttributeError(f"module 'annpred' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(_LAZY))
