"""annpred: predict kernel runtimes with tiny complexity-augmented neural networks.

``import annpred`` is cheap: torch is imported only when a model is trained, and halide only
when a Halide variant or pipeline is used.
"""
from __future__ import annotations

__version__ = "0.1.0"

_LAZY = {
    "AugmentedNNRegressor": ("annpred.regressor", "AugmentedNNRegressor"),
    "load_models": ("annpred.predict", "load_models"),
    "Predictor": ("annpred.predict", "Predictor"),
    "choose": ("annpred.select", "choose"),
    "dispatch": ("annpred.select", "dispatch"),
    "Choice": ("annpred.select", "Choice"),
    "get_kernel": ("annpred.catalog", "get_kernel"),
    "register_kernel": ("annpred.catalog", "register_kernel"),
    "Kernel": ("annpred.kernel", "Kernel"),
    "Param": ("annpred.kernel", "Param"),
    "Variant": ("annpred.kernel", "Variant"),
    "AnnpredError": ("annpred.errors", "AnnpredError"),
}

__all__ = sorted(_LAZY)


def __getattr__(name):
    if name in _LAZY:
        import importlib

        mod, attr = _LAZY[name]
        value = getattr(importlib.import_module(mod), attr)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'annpred' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(_LAZY))
