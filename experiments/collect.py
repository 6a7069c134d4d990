"""Collect the shipped profiling data and train the shipped models.

    python experiments/collect.py            # measure (resumable), then train
    python experiments/collect.py --train-only

For every catalog kernel and 1 and 2 threads: pass 0 measures 800 random points (seed 0) of
every CPU variant; after all pass-0 runs, pass 1 re-measures points 0..299 (the held-out test
points) for the noise floor. Each (kernel, threads) runs in its own process (Halide reads its
thread count once per process). Data: trained/<hardware>/data/<kernel>.csv.
Shipped models are trained on 250 points drawn from the pool (points 300..799) and evaluated
on the 300 held-out points; a summary goes to experiments/results/shipped_models.csv.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
KERNELS = ["matmul", "matvec", "conv2d", "maxpool", "blur", "fft"]
THREADS = [1, 2]
N_POINTS, N_TEST, N_TRAIN = 800, 300, 250


def data_path(kernel: str, threads: int) -> Path:
    from annpred.spec import hardware as hw

    return ROOT / "trained" / hw.cpu_id(threads) / "data" / f"{kernel}.csv"


def measure_all(kernels, min_time_ms: float, threads=THREADS) -> None:
    # all passes of one thread count before the next: 2-thread runs are the most sensitive
    # to other load on a shared 2-core machine, so they can be run when it is quiet
    for t in threads:
        for pass_id, extra in ((0, []), (1, ["--first", str(N_TEST)])):
            for kernel in kernels:
                out = data_path(kernel, t)
                cmd = [sys.executable, "-m", "annpred.cli", "profile", kernel, "--threads",
                       str(t), "--samples", str(N_POINTS), "--seed", "0", "--pass",
                       str(pass_id), "--min-time-ms", str(min_time_ms), "--out", str(out),
                       *extra]
                print("$", " ".join(cmd[2:]), flush=True)
                t0 = time.time()
                subprocess.run(cmd, check=True)
                print(f"  {time.time() - t0:.0f} s", flush=True)


def train_all(kernels, variants=None) -> pd.DataFrame:
    from annpred.data.profiles import load_profiles
    from annpred.runtime.predictor import load_models
    from annpred.model.trainer import train_frame

    rows = []
    # every machine's shipped data (the ids of machines other than this one included)
    csvs = sorted(p for k in kernels for p in (ROOT / "trained").glob(f"cpu-*/data/{k}.csv"))
    df = load_profiles(csvs)
    p0 = df[df["pass"] == 0]
    p1 = df[df["pass"] == 1]
    for (kernel, variant, hw_id), g in p0.groupby(["kernel", "variant", "hardware"]):
        if variants and variant not in variants:
            continue
        pool = g[g["point"] >= N_TEST]
        if len(pool) < N_TRAIN:  # not this script's protocol (e.g. reprofile_catalog.sh's)
            print(f"{kernel}/{variant}/{hw_id}: skipped, {len(pool)} pool points beyond the "
                  f"{N_TEST} test points (profiled by experiments/reprofile_catalog.sh; "
                  "retrain it with `annpred train CSV --n-train 250`)", flush=True)
            continue
        train = pool.sample(n=min(N_TRAIN, len(pool)), random_state=0)
        rep = train_frame(train, ROOT / "trained", seed=0)[0]
        test = g[g["point"] < N_TEST].set_index("point")
        model = load_models([ROOT / "trained"], reload=True).get(kernel, variant, hw_id)
        pred = model.predict({c: test[c].to_numpy() for c in model.params})
        y = test["runtime_s"].to_numpy()
        mape = float(np.mean(np.abs(pred - y) / y) * 100)
        again = p1[(p1.kernel == kernel) & (p1.variant == variant)
                   & (p1.hardware == hw_id)].set_index("point")["runtime_s"]
        common = test.index.intersection(again.index)
        noise = (float(np.mean(np.abs(again[common] - test.loc[common, "runtime_s"])
                               / test.loc[common, "runtime_s"]) * 100)
                 if len(common) else float("nan"))
        rows.append(dict(kernel=kernel, variant=variant, hardware=hw_id, n_train=rep.n_train,
                         n_test=len(test), val_mape=round(rep.val_mape, 3),
                         test_mape=round(mape, 3), noise_floor=round(noise, 3),
                         n_params=rep.n_params, train_time_s=round(rep.train_time_s, 3)))
        print(f"{kernel}/{variant}/{hw_id}: val {rep.val_mape:.2f}%  test {mape:.2f}%  "
              f"noise floor {noise:.2f}%  params {rep.n_params}  {rep.train_time_s:.2f}s",
              flush=True)
    out = pd.DataFrame(rows)
    dest = ROOT / "experiments" / "results" / "shipped_models.csv"
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.exists():  # keep the rows of combinations not retrained now
        old = pd.read_csv(dest)
        keys = set(zip(out.kernel, out.variant, out.hardware))
        old = old[[k not in keys for k in zip(old.kernel, old.variant, old.hardware)]]
        out = pd.concat([old, out], ignore_index=True)
    out = out.sort_values(["hardware", "kernel", "variant"]).reset_index(drop=True)
    out.to_csv(dest, index=False)
    print(out.describe().to_string())
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--train-only", action="store_true")
    ap.add_argument("--kernels", default=",".join(KERNELS))
    ap.add_argument("--min-time-ms", type=float, default=10.0)
    ap.add_argument("--threads", default="1,2", help="thread counts to measure (default 1,2)")
    ap.add_argument("--variants", default="", help="with --train-only: retrain only these "
                    "variants (comma-separated; default all)")
    args = ap.parse_args(argv)
    kernels = args.kernels.split(",")
    if not args.train_only:
        measure_all(kernels, args.min_time_ms, [int(t) for t in args.threads.split(",")])
    train_all(kernels, [v for v in args.variants.split(",") if v])
    return 0


if __name__ == "__main__":
    sys.exit(main())
