"""Whole-pipeline estimation: a sequence of kernels predicted as the sum of its stages.

A small CNN block -- conv2d (c -> f channels, k x k filter) -> maxpool (2 x 2, stride 2) ->
dense layer applied to each channel's pooled features (matmul: A = the f x p*p pooled
activations, B = a p*p x units weight matrix) -- with random shapes inside the models'
ranges. Each stage runs one catalog variant (``--variants``: numpy, halide, torch; one
pipeline per variant family and shape). The data flow is real: each stage's inputs are the
previous stage's output.

Measured: the end-to-end runtime of running the three stages in sequence, with the
measurement protocol (annpred.measure: warm-up, >= 5 runs and >= 20 ms, median), in
shuffled order, one thread. Predicted: the sum of the three stage models' predictions.
Each stage is also measured on its own (``stage_sum_s``) to separate model error from
interaction between stages (caches).

Models: the trained models under ``trained/<hardware>/`` where present; otherwise models
trained here, on the same data, from ``trained/<hardware>/data/<kernel>.csv`` (pass 0) into
experiments/results/pipeline_models/ (reused by reruns; ``--retrain`` refits).

Output: experiments/results/pipeline.csv (one row per sequence: shapes, predicted_s,
measured_s, per-stage predictions and measurements) and the MAPE printed at the end.

    python experiments/pipeline.py            # 60 sequences x 2 variant families, ~2 min
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
# experiments/ holds scripts named like packages (halide.py): keep it off the import path
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
sys.path.insert(0, str(REPO))

from annpred.spec import hardware as hw  # noqa: E402
from annpred.measure import protocol as _measure  # noqa: E402
from annpred import threads  # noqa: E402
from annpred.spec.catalog import get_kernel  # noqa: E402
from annpred.runtime.predictor import load_models  # noqa: E402

STAGES = ("conv2d", "maxpool", "matmul")
# at least min_time per measurement, as the protocol says (annpred.measure caps at 200 runs)
MAX_RUNS = 100_000


def random_shapes(rng: np.random.Generator) -> dict:
    """One CNN block inside the catalog ranges: conv n in [8, 64], k in [1, 7], c in [1, 16],
    f in [8, 16] (matmul rows >= 8); pooled side p in [3, 27] (p*p in [9, 729]); units
    log-uniform in [8, 768]."""
    while True:
        n = int(rng.integers(8, 65))
        k = int(rng.integers(1, 8))
        c = int(np.round(np.exp(rng.uniform(0, np.log(16)))))
        f = int(rng.integers(8, 17))
        o = n - k + 1
        p = (o - 2) // 2 + 1 if o >= 2 else 0
        units = int(np.round(np.exp(rng.uniform(np.log(8), np.log(768)))))
        if k <= n and o >= 8 and 3 <= p <= 27:
            return {"conv2d": {"n": n, "k": k, "c": c, "f": f},
                    "maxpool": {"n": o, "w": 2, "s": 2, "c": f},
                    "matmul": {"m": f, "n": units, "k": p * p, "da": 1.0, "db": 1.0}}


def build_states(shapes: dict, variant: str, rng: np.random.Generator):
    """Prepared states of the three stages, each fed with the previous stage's output."""
    conv, pool, mm = (get_kernel(k) for k in STAGES)
    states = []
    inp = conv.make_inputs(shapes["conv2d"], rng)
    v = conv.variant(variant)
    s = v.prepare(inp, shapes["conv2d"])
    y = np.ascontiguousarray(v.to_numpy(v.run(s)), dtype=np.float32)
    states.append((v, s))
    v = pool.variant(variant)
    s = v.prepare({"x": y}, shapes["maxpool"])
    z = np.ascontiguousarray(v.to_numpy(v.run(s)), dtype=np.float32)
    states.append((v, s))
    f, p, _ = z.shape
    units = shapes["matmul"]["n"]
    B = rng.uniform(-1, 1, (p * p, units)).astype(np.float32)
    v = mm.variant(variant)
    s = v.prepare({"A": np.ascontiguousarray(z.reshape(f, p * p)), "B": B}, shapes["matmul"])
    states.append((v, s))
    return states


def run_sequence(states):
    out = None
    for v, s in states:
        out = v.run(s)
        if v.sync is not None:
            v.sync()
    return out


def ensure_models(variants, hw_id: str, retrain: bool, log) -> tuple[object, str]:
    shipped = REPO / "trained"
    need = [(k, v) for v in variants for k in STAGES]
    if all((shipped / hw_id / k / f"{v}.json").exists() for k, v in need) and not retrain:
        return load_models(shipped), str(shipped.relative_to(REPO))
    out = HERE / "results" / "pipeline_models"
    from annpred.data.profiles import load_profiles
    from annpred.model.layout import model_path
    from annpred.model.trainer import train_frame

    for k, v in need:
        path = model_path(out, k, v, hw_id)
        if path.exists() and not retrain:
            continue
        csv = shipped / hw_id / "data" / f"{k}.csv"
        if not csv.exists():
            csv = HERE / "results" / "data" / hw_id / f"pipeline_{k}.csv"
            if not csv.exists():
                from annpred.measure.profiler import profile

                log(f"  measuring 250 random points of {k}/{v} for its model")
                profile(k, csv, variants=[v], samples=250, seed=0, progress=False)
        df = load_profiles([csv])
        df = df[(df["variant"] == v) & (df["hardware"] == hw_id)]
        reps = train_frame(df, out, seed=0)
        log(f"  trained {k}/{v} on {reps[0].n_train} rows of {csv.relative_to(REPO)}: "
            f"val MAPE {reps[0].val_mape:.2f}%")
    return load_models(out, reload=True), str(out.relative_to(REPO))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sequences", type=int, default=60, help="sequences per variant family")
    ap.add_argument("--variants", default="numpy,halide")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--retrain", action="store_true")
    ap.add_argument("--min-time-ms", type=float, default=20.0)
    ap.add_argument("--out", default=str(HERE / "results" / "pipeline.csv"))
    args = ap.parse_args(argv)
    threads.fix_threads(1)
    hw_id = hw.cpu_id(1)
    t0 = time.perf_counter()

    def log(msg):
        print(f"[{time.perf_counter() - t0:6.0f}s] {msg}", flush=True)

    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    models, model_dir = ensure_models(variants, hw_id, args.retrain, log)
    rng = np.random.default_rng(args.seed)
    jobs = [(i, v, random_shapes(rng)) for v in variants for i in range(args.sequences)]
    order = rng.permutation(len(jobs))  # shuffled, as the protocol asks
    rows = []
    min_time = args.min_time_ms / 1e3
    for j in order:
        i, variant, shapes = jobs[j]
        states = build_states(shapes, variant, np.random.default_rng([args.seed, i]))
        if "torch" in sys.modules:
            threads.ensure_torch_threads()
        whole = _measure.measure(lambda: run_sequence(states), min_time=min_time,
                                 max_runs=MAX_RUNS)
        row = {"sequence": i, "variant": variant, "hardware": hw_id, "models": model_dir}
        pred_sum = stage_sum = 0.0
        in_range = True
        for (v, s), k in zip(states, STAGES):
            pr = models.predict(k, variant, shapes[k], hardware=hw_id)
            t = _measure.measure(lambda v=v, s=s: v.run(s), sync=v.sync, min_time=min_time,
                                 max_runs=MAX_RUNS)
            for name, val in shapes[k].items():
                row[f"{k}_{name}"] = val
            row[f"{k}_predicted_s"] = pr.seconds
            row[f"{k}_measured_s"] = t.median_s
            pred_sum += pr.seconds
            stage_sum += t.median_s
            in_range &= pr.in_range
        row.update({"predicted_s": pred_sum, "measured_s": whole.median_s,
                    "measured_cv": whole.cv, "stage_sum_s": stage_sum, "in_range": in_range})
        rows.append(row)
    df = pd.DataFrame(rows).sort_values(["variant", "sequence"]).reset_index(drop=True)
    df["ape"] = (df["predicted_s"] - df["measured_s"]).abs() / df["measured_s"] * 100
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(args.out, index=False, float_format="%.6g")
    lines = []
    for variant, g in list(df.groupby("variant", sort=False)) + [("all", df)]:
        stage = {k: float(np.mean(np.abs(g[f"{k}_predicted_s"] - g[f"{k}_measured_s"])
                                  / g[f"{k}_measured_s"]) * 100) for k in STAGES}
        interact = float(np.mean(np.abs(g["stage_sum_s"] - g["measured_s"]) / g["measured_s"])
                         * 100)
        lines.append({"variant": variant, "sequences": len(g), "pipeline_mape": g["ape"].mean(),
                      "within_10pct": float((g["ape"] <= 10).mean() * 100),
                      **{f"{k}_mape": v for k, v in stage.items()},
                      "stage_sum_vs_end_to_end_mape": interact})
    summ = pd.DataFrame(lines)
    summ.to_csv(Path(args.out).with_name("pipeline_summary.csv"), index=False,
                float_format="%.3g")
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(summ.to_string(index=False, float_format=lambda x: f"{x:.2f}"))
    log(f"wrote {args.out} ({len(df)} sequences, models from {model_dir})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
