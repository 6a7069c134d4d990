"""Batch prediction throughput: ``Predictor.predict_many`` (what ``annpred predict --input``
uses) on N random valid points of one model, one thread, median of 7 runs.

    python experiments/batch_throughput.py [--models DIR] [--n 100000]

Writes experiments/results/batch_throughput.md.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_v] = "1"

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", default=str(ROOT / "trained"))
    ap.add_argument("--kernel", default="matmul")
    ap.add_argument("--variant", default="numpy")
    ap.add_argument("--n", type=int, default=100_000)
    a = ap.parse_args(argv)
    import annpred
    from annpred.spec import hardware as hw

    pred = annpred.load_models(a.models)
    k = annpred.get_kernel(a.kernel)
    h = sorted(pred.hardware_for(a.kernel, a.variant))[0]
    pts = k.sample_points(a.n, seed=0)
    cols = {p: np.array([q[p] for q in pts], dtype=float) for p in k.param_names}
    pred.predict_many(a.kernel, a.variant, cols, h)  # warm-up (compiles the expressions)
    ts = []
    for _ in range(7):
        t0 = time.perf_counter()
        out = pred.predict_many(a.kernel, a.variant, cols, h)
        ts.append(time.perf_counter() - t0)
    t = float(np.median(ts))
    load = os.getloadavg()[0]
    text = (f"# Batch prediction throughput\n\n`predict_many` ({a.kernel}/{a.variant} on {h}, "
            f"{a.n:,} random valid points, every row validated, interval and range flags "
            f"computed), 1 thread, median of 7 runs on {hw.cpu_model()} (load average "
            f"{load:.2f}): **{t * 1e3:.1f} ms, {a.n / t:,.0f} predictions per second** "
            f"(p10-p90 of runs {np.percentile(ts, 10) * 1e3:.1f}-"
            f"{np.percentile(ts, 90) * 1e3:.1f} ms). Target: >= 10,000 per second.\n")
    assert len(out["seconds"]) == a.n
    (ROOT / "experiments" / "results" / "batch_throughput.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
