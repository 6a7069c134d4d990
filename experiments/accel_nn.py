"""NN+C on simulated samples of one accelerator: random vs PR sampling (part of accel.py).

The kernel is a convolution layer with a domain that covers ResNet-18's layers: n (input
side, padded) 7..230, k 1..7, c 3..512, f 16..512, stride 1..2, at most 2.5e8 MACs. The
"measurement" is the fast model (exact against SCALE-Sim, see accel.csv). Test: 300 random
points of the same domain never used in training; MAPE over all of them. Whole network:
the sum of NN+C's predictions over ResNet-18's 20 convolutions against the sum of the
model's cycles (= SCALE-Sim's run of the network on tpu-v1, see accel.csv).
"""
from __future__ import annotations

import sys

import numpy as np
import pandas as pd

from annpred import AugmentedNNRegressor
from annpred.accel import description as D
from annpred.accel.evaluate import estimate
from annpred.accel.layers import make, read_network
from annpred.accel.mapping import cycles_expression, dma_expression
from annpred.accel.stalls import stall_expressions
from annpred.spec.kernel import Kernel, Param, Variant
from annpred.measure import sampling
from annpred.measure.pr import Measurement, PRPlanner
from annpred.model.steps import detect_steps

OUT_SIDE = "(floor((n-k)/s)+1)"
COMPLEXITY = {"macs": f"f*c*k**2*{OUT_SIDE}**2",
              "memory": f"c*n**2 + f*c*k**2 + f*{OUT_SIDE}**2"}
MAX_MACS = 2.5e8
CONFIGS = (("tpu-v1", "user"), ("tpu-v1", "calc"), ("gemmini", "user"))
BUDGETS = (100, 250, 500)


def _macs(p) -> float:
    o = (p["n"] - p["k"]) // p["s"] + 1
    return p["f"] * p["c"] * p["k"] ** 2 * o * o


KERNEL = Kernel(
    name="accel_conv",
    params=[Param("n", "int", 7, 230, "log", description="input side (padded)"),
            Param("k", "int", 1, 7, "uniform", description="filter side"),
            Param("c", "int", 3, 512, "log", description="input channels"),
            Param("f", "int", 16, 512, "log", description="filters"),
            Param("s", "int", 1, 2, "uniform", description="stride")],
    complexity=COMPLEXITY,
    make_inputs=lambda p, rng: {},
    reference=lambda inputs, p: np.zeros(1),
    variants=[Variant("sim", run=lambda state: None)],
    constraint=lambda p: p["k"] <= p["n"] and _macs(p) <= MAX_MACS,
    description="convolution layer on a modelled accelerator (experiments/accel_nn.py)")
FEATURES = [p.name for p in KERNEL.params]


def _seconds(acc, p, mode="user") -> float:
    layer = make("conv2d", dict(H=int(p["n"]), W=int(p["n"]), R=int(p["k"]), S=int(p["k"]),
                                C=int(p["c"]), M=int(p["f"]), stride=int(p["s"])))
    return estimate(acc, layer, mode)["seconds"]


def _frame(acc, pts, mode) -> pd.DataFrame:
    df = pd.DataFrame(pts)[FEATURES].astype(int)
    df["runtime_s"] = [_seconds(acc, r, mode) for r in df.to_dict("records")]
    df["runtime_cv"] = 0.0
    return df


def _pr(acc, budget: int, seed: int, mode: str) -> pd.DataFrame:
    rows = []

    def measure(point, role):
        t = _seconds(acc, point, mode)
        rows.append({**{k: int(point[k]) for k in FEATURES}, "runtime_s": t, "runtime_cv": 0.0})
        return Measurement(t, 0.0, 1, t)

    PRPlanner(KERNEL, budget, seed=seed, variant="sim").run(measure)
    return pd.DataFrame(rows)


def complexity(acc, mode: str = "user") -> dict:
    """The generic complexities plus four from the accelerator's description: the fold-cycle
    expression (folds of ceiling(window/rows) etc. times steps per fold), the DRAM time of
    the operand streams, and the memory bound of the read buffers (``annpred.accel.stalls``:
    DRAM cycles of the prefetches after the first windows, and a first-order stall
    estimate). The first is the main one for the mode (the stall estimate with finite
    bandwidth, the fold expression with ideal bandwidth); the estimator also fits it alone
    and keeps whichever validates better on its validation rows (select_complexity)."""
    args = (acc, f"{OUT_SIDE}**2", "k**2*c", "f")
    folds = cycles_expression(*args)
    stalls = stall_expressions(*args, folds, overlap="min(max(k - s, 0), 1)",
                               copy_rows="s*k*c")
    out = {"stall": stalls["user"]} if mode == "user" else {}
    out.update({"folds": folds, **COMPLEXITY, "dma": dma_expression(*args),
                "prefetch": stalls["prefetch"]})
    if mode != "user":
        out["stall"] = stalls["user"]
    return out


LOSSES = ("huber", "l1")


def _fit(df: pd.DataFrame, steps, comp):
    """NN+C with the choices made on validation rows carved from the training points only
    (the estimator's split): loss (huber, l1) x features (the main complexity alone, all of
    them); the lowest validation MAPE wins. The test points never take part."""
    first = next(iter(comp))
    best = None
    for loss in LOSSES:
        for keys in ([first], list(comp)):
            model = AugmentedNNRegressor(complexity={k: comp[k] for k in keys},
                                         parameters=FEATURES, seed=0, steps=steps or None,
                                         loss=loss, select_complexity=False)
            model.fit(df[FEATURES], df["runtime_s"].to_numpy())
            if best is None or model.val_mape_ < best.val_mape_:
                best = model
    return best


def nn_study(configs=CONFIGS):
    rows, notes = [], []
    nets = [lay for lay in read_network("resnet18") if lay.kind == "conv2d"]
    net_pts = pd.DataFrame([{"n": lay.H, "k": lay.R, "c": lay.C, "f": lay.M, "s": lay.stride}
                            for lay in nets])
    for name, mode in configs:
        acc = D.get(name)
        comp = complexity(acc, mode)
        test = _frame(acc, sampling.sample(KERNEL, 300, sampler="random", seed=99)
                      .to_dict("records"), mode)
        net_true = sum(_seconds(acc, r, mode) for r in net_pts.to_dict("records"))
        rand_all = _frame(acc, sampling.sample(KERNEL, max(BUDGETS), sampler="random", seed=1)
                          .to_dict("records"), mode)
        for budget in BUDGETS:
            for sampler in ("random", "pr"):
                if sampler == "random":
                    train, steps = rand_all.iloc[:budget], None
                else:
                    train = _pr(acc, budget, seed=0, mode=mode)
                    steps, _ = detect_steps(train, FEATURES, comp)
                model = _fit(train, steps, comp)
                pred = model.predict(test[FEATURES])
                mape = float(np.mean(np.abs(pred - test["runtime_s"]) / test["runtime_s"]) * 100)
                net_pred = float(np.sum(model.predict(net_pts[FEATURES])))
                net_mape = abs(net_pred - net_true) / net_true * 100
                label = f"{name}/{mode}"
                rows.append({"accel": label, "kernel": "accel_conv", "sampler": sampler,
                             "n_measured": len(train), "mape": f"{mape:.4f}"})
                rows.append({"accel": label, "kernel": "resnet18_network", "sampler": sampler,
                             "n_measured": len(train), "mape": f"{net_mape:.4f}"})
                notes.append(f"{label} {sampler:>6} n={len(train):>3}: single-layer MAPE "
                             f"{mape:6.3f}%, ResNet-18 network {net_mape:6.3f}% (loss "
                             f"{model.loss}, features {', '.join(model.complexity_)}, "
                             f"{model.n_params_} parameters)"
                             + (f", steps {steps}" if steps else ""))
                print(notes[-1], file=sys.stderr)
    return rows, notes
