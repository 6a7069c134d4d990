"""Tiny models trained on synthetic runtimes, written as model directories for tests of
annpred.select and annpred.export_c (no dependence on shipped models or on measuring)."""
from __future__ import annotations


import numpy as np
import pandas as pd

from annpred.model.estimator import AugmentedNNRegressor
from annpred.model.schema import save_model
from annpred.model.layout import model_path

FAST = dict(max_epochs=150, patience=50, n_init=1)


def load_toy_kernel(module_name: str = "toy_kernel_for_tests"):
    """Register the test toy kernel (``tests/toy_kernel.py``), replacing any earlier one."""
    import importlib.util
    from pathlib import Path

    from annpred.spec.catalog import register_kernel

    spec = importlib.util.spec_from_file_location(
        module_name, Path(__file__).resolve().parent / "toy_kernel.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return register_kernel(mod.KERNEL, replace=True)


def log_points(ranges: dict, n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    cols = {}
    for name, (lo, hi, kind) in ranges.items():
        v = np.exp(rng.uniform(np.log(lo), np.log(hi), n))
        v[:2] = lo, hi  # the training range covers the whole domain
        cols[name] = np.round(v) if kind == "int" else v
    return pd.DataFrame(cols)


def train_save(root, kernel, variant, hardware, X, y, complexity=None, seed=0, **kw):
    params = {**FAST, **kw}
    m = AugmentedNNRegressor(complexity=complexity, parameters=list(X.columns), seed=seed,
                             **params).fit(X, y)
    path = model_path(root, kernel, variant, hardware)
    save_model(m.to_dict(kernel, variant, hardware), path)
    return m, path


TOY_RANGES = {"n": (16, 4096, "int")}


def toy_runtime(variant: str, n, threads: int = 1) -> np.ndarray:
    """cumsum is cheap to start and slow per element, accumulate the opposite: the fastest
    variant changes near n = 1100; two threads add overhead; sleepy is never the fastest."""
    n = np.asarray(n, dtype=float)
    base = {"cumsum": 1e-6 + 2e-9 * n, "accumulate": 3e-6 + 0.2e-9 * n,
            "sleepy": 2e-4 + 1e-9 * n}[variant]
    return base * (1.0 if threads == 1 else 1.3)


def make_toy_models(root, hardware_ids, seed=0, variants=("cumsum", "accumulate", "sleepy"),
                    n: int = 60, **kw) -> dict:
    """One model per (variant, hardware) for the toy kernel; ``hardware_ids`` maps an id to
    its thread count."""
    X = log_points(TOY_RANGES, n, seed)
    out = {}
    for hw_id, threads in hardware_ids.items():
        for v in variants:
            y = toy_runtime(v, X["n"], threads)
            out[(v, hw_id)] = train_save(root, "toy", v, hw_id, X, y, complexity={"work": "n"},
                                         seed=seed, **kw)
    return out


MATVEC_RANGES = {"m": (16, 4096, "int"), "n": (16, 4096, "int"),
                 "density": (0.001, 1.0, "float")}


def matvec_runtime(variant: str, X: pd.DataFrame) -> np.ndarray:
    m, n, d = (X[c].to_numpy(dtype=float) for c in ("m", "n", "density"))
    if variant == "numpy":
        return 2e-6 + 4e-10 * m * n
    return 4e-6 + 2e-9 * m * n * d + 1e-9 * m  # sparse


def make_matvec_models(root, hardware_ids, seed=0, variants=("numpy", "sparse")) -> dict:
    from annpred.spec.catalog import get_kernel

    k = get_kernel("matvec")
    X = log_points(MATVEC_RANGES, 80, seed)
    out = {}
    for hw_id, threads in hardware_ids.items():
        for v in variants:
            y = matvec_runtime(v, X) * (1.0 if threads == 1 else 1.1)
            out[(v, hw_id)] = train_save(root, "matvec", v, hw_id, X, y,
                                         complexity=k.complexity_for(v), seed=seed)
    return out
