"""The cost benchmark: training time and prediction latency of ours against the trees."""
from __future__ import annotations

import time
import warnings

import numpy as np
import pandas as pd

from annpred.errors import FewRowsWarning
from annpred.study.combos import Combination
from annpred.study.zoo import make_model
from annpred.threads import pool_limits


def cost_combination(combos: list[Combination]) -> Combination:
    """The combination the cost benchmark uses: a matmul one if present (the most features),
    else the one with the most features."""
    with_c = [c for c in combos if c.complexity] or combos
    return max(with_c, key=lambda c: (c.kernel == "matmul", c.F.shape[1], -len(c.test)))


def _time(fn, repeat: int, number: int = 1) -> float:
    """Median seconds of one call of ``fn`` over ``repeat`` timings of ``number`` calls."""
    fn()
    ts = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        for _ in range(number):
            fn()
        ts.append((time.perf_counter() - t0) / number)
    return float(np.median(ts))


def cost_benchmark(c: Combination, n_train: int = 250, nn_options: dict | None = None,
                   n_batch: int = 10_000, seed: int = 0) -> pd.DataFrame:
    """Parameter count, training time and prediction latency (one point; ``n_batch``
    points) of NN+C (numpy path and torch forward), RF+C and GBT+C, on one combination, in
    one process, one thread."""
    limits = pool_limits(1)
    try:
        with warnings.catch_warnings():  # its fits are timed, not used: the study notes
            warnings.simplefilter("ignore", FewRowsWarning)  # few rows per parameter once
            return _cost(c, n_train, nn_options, n_batch, seed)
    finally:
        if limits is not None:
            limits.restore_original_limits()


def _cost(c, n_train, nn_options, n_batch, seed):
    rows = c.train_rows(seed, n_train)
    rng = np.random.default_rng(seed)
    big = rng.choice(len(c.y), n_batch, replace=True)
    F1, Fb = c.F[c.test[:1]], c.F[big]
    out = []
    models = {m: make_model(m, nn_options) for m in ("NN+C", "RF+C", "GBT+C")}
    fit_s = {}
    for name in models:  # warm-up: imports and first-call costs are not training time
        if name != "NN+C" or c.complexity:
            make_model(name, nn_options).fit(c, rows[:40], seed)
    for name, m in models.items():
        if name == "NN+C" and not c.complexity:
            continue
        t0 = time.perf_counter()
        m.fit(c, rows, seed)
        fit_s[name] = time.perf_counter() - t0
    base = {"kernel": c.kernel, "variant": c.variant, "hardware": c.hardware,
            "n_train": len(rows)}
    if "NN+C" in fit_s:
        from annpred.model import network
        from annpred.runtime.predictor import LoadedModel

        reg = models["NN+C"].model_
        # the fitted network may keep fewer complexity features than the combination has
        F1 = reg.features_matrix(c.X.iloc[c.test[:1]])
        Fb = reg.features_matrix(c.X.iloc[big])
        d = reg.to_dict(c.kernel, c.variant, c.hardware)
        compiled = network.compile_model(d)
        out.append({**base, "model": "NN+C (numpy path)", "n_params": reg.n_params_,
                    "train_time_s": fit_s["NN+C"],
                    "predict_1_us": _time(lambda: network.predict_seconds(F1, compiled),
                                          200, 20) * 1e6,
                    "predict_10k_ms": _time(lambda: network.predict_seconds(Fb, compiled),
                                            20) * 1e3,
                    "note": "network.predict_seconds on the feature row(s)"})
        lm = LoadedModel(d)
        cols1 = {p: c.X[p].to_numpy(float)[c.test[:1]] for p in c.params}
        colsb = {p: c.X[p].to_numpy(float)[big] for p in c.params}
        out.append({**base, "model": "NN+C (numpy, from parameters)", "n_params": reg.n_params_,
                    "train_time_s": fit_s["NN+C"],
                    "predict_1_us": _time(lambda: lm.predict(cols1), 200, 20) * 1e6,
                    "predict_10k_ms": _time(lambda: lm.predict(colsb), 20) * 1e3,
                    "note": "annpred.load_models path: parameters -> complexity features "
                            "-> network"})
        import torch

        from annpred.model.fit import torch_predictor

        torch_predict = torch_predictor(d)
        assert np.allclose(torch_predict(Fb), network.predict_seconds(Fb, compiled),
                           rtol=1e-9)
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            out.append({**base, "model": "NN+C (torch forward)", "n_params": reg.n_params_,
                        "train_time_s": fit_s["NN+C"],
                        "predict_1_us": _time(lambda: torch_predict(F1), 200, 20) * 1e6,
                        "predict_10k_ms": _time(lambda: torch_predict(Fb), 20) * 1e3,
                        "note": "torch module on the feature row(s), no_grad, 1 thread"})
        finally:
            torch.set_num_threads(threads)
    F1, Fb = c.F[c.test[:1]], c.F[big]
    for name in ("RF+C", "GBT+C"):
        est = models[name].model_
        out.append({**base, "model": name, "n_params": models[name].n_params,
                    "train_time_s": fit_s[name],
                    "predict_1_us": _time(lambda: est.predict(F1), 50, 4) * 1e6,
                    "predict_10k_ms": _time(lambda: est.predict(Fb), 5) * 1e3,
                    "note": "sklearn predict on the feature row(s) (n_params = tree nodes), "
                            "log target"})
    return pd.DataFrame(out)
