"""Cheaper calibration of Halide schedule models: PR sampling vs random at the same budget.

    python experiments/halide_sampling.py [--pipelines blur,harris,stencil_chain] [--budget 150]

For each pipeline, two profiles of ``--budget`` points are measured on this machine (both
resumable, kept under experiments/results/data/halide_sampling/<hardware>/,
``<pipeline>_<method>_<budget>.csv``):
- ``random``: budget/4 random schedules at 4 random sizes each (the shipped profiles' design,
  another seed),
- ``pr``: the PR plan of annpred.halide.sampling (width sweeps of tiled schedules for step
  detection, then k-means representatives of the schedule x size space).
Models are trained on each (``pr_steps``: the PR profile with the step-aware complexity when
its sweeps show tile steps) with 3 model seeds, and tested on the shipped random profile of
the same pipeline, restricted to schedules that neither training set contains (all its
first-pass points: MAPE over all of them, and Spearman's rho). ``profiling_s`` is the wall
time of measuring each profile, compiles included.

Writes experiments/results/halide_sampling.csv.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]  # `import halide`
sys.path.insert(0, str(ROOT))

from annpred.spec import hardware as hw  # noqa: E402
from annpred.threads import fix_threads  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pipelines", default="blur,harris,stencil_chain")
    ap.add_argument("--budget", type=int, default=150)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seeds", type=int, default=3, help="model seeds per training set")
    ap.add_argument("--out", default=str(ROOT / "experiments" / "results"))
    args = ap.parse_args(argv)
    fix_threads(args.threads)
    from scipy.stats import spearmanr

    from annpred.halide.pipelines import get
    from annpred.halide.profile import load_profile, profile_pipeline, random_plan
    from annpred.halide.sampling import detect_tile_steps, pr_plan
    from annpred.halide.select import data_path, predict_schedules, train_model
    from annpred.halide.space import from_key

    hw_id = hw.cpu_id(args.threads)
    data = Path(args.out) / "data" / "halide_sampling" / hw_id
    data.mkdir(parents=True, exist_ok=True)
    times_path = data / "profiling_seconds.json"
    times = json.loads(times_path.read_text()) if times_path.exists() else {}
    rows = []
    for name in [n.strip() for n in args.pipelines.split(",") if n.strip()]:
        p = get(name)
        plans = {"random": random_plan(p, max(1, args.budget // 4), 4, seed=1,
                                       noise_fraction=0.0),
                 "pr": pr_plan(p, args.budget, seed=0)}
        dfs = {}
        for method, plan in plans.items():
            path = data / f"{name}_{method}_{args.budget}.csv"
            key = f"{name}_{method}_{args.budget}"
            t0 = time.perf_counter()
            dfs[method] = profile_pipeline(p, threads=args.threads, out=path, plan=plan,
                                           sampler=method, progress=True)
            spent = time.perf_counter() - t0
            if len(dfs[method]) >= len(plan) and key not in times:
                times[key] = spent  # a resumed run records only the run that finished it
                times_path.write_text(json.dumps(times, indent=1))
            elif key not in times:
                times[key] = spent
        test = load_profile(data_path(name, ROOT / "trained", args.threads), p)
        test = test[test["pass"] == 1]
        seen = set(dfs["random"]["variant"]) | set(dfs["pr"]["variant"])
        test = test[~test["variant"].isin(seen)]
        sizes = [{n: int(r[n]) for n in p.size_names} for r in test.to_dict("records")]
        steps = detect_tile_steps(p, dfs["pr"])
        variants = {"random": ("random", False), "pr": ("pr", False),
                    "pr_steps": ("pr", steps["steps"])}
        for method, (src, use_steps) in variants.items():
            mapes, rhos = [], []
            for seed in range(args.seeds):
                model = train_model(p, dfs[src], seed=seed, steps=use_steps)
                pred = np.array([predict_schedules(model, p, sz, [from_key(v)])[0]
                                 for sz, v in zip(sizes, test["variant"])])
                y = test["runtime_min_s"].to_numpy(float)
                mapes.append(float(np.mean(np.abs(pred - y) / y) * 100))
                rhos.append(float(spearmanr(pred, y)[0]))
            rows.append({"pipeline": name, "method": method, "n_measured": len(dfs[src]),
                         "profiling_s": round(times[f"{name}_{src}_{args.budget}"], 1),
                         "mape": round(float(np.mean(mapes)), 2),
                         "mape_seeds": " ".join(f"{m:.1f}" for m in mapes),
                         "spearman": round(float(np.mean(rhos)), 3),
                         "tile_steps": bool(use_steps),
                         "steps_detected": bool(steps["steps"]),
                         "sweeps_on_tile_lattice": sum(f["on_tile_lattice"]
                                                       for f in steps["fits"]),
                         "sweeps": len(steps["fits"]), "n_test": len(test),
                         "hardware": hw_id, "loadavg_1min": round(os.getloadavg()[0], 2)})
            print(json.dumps(rows[-1]))
    out = Path(args.out) / "halide_sampling.csv"
    old = pd.read_csv(out) if out.exists() else pd.DataFrame()
    new = pd.DataFrame(rows)
    if not old.empty:
        old = old[~old["pipeline"].isin(new["pipeline"])]
    pd.concat([old, new], ignore_index=True).to_csv(out, index=False)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
