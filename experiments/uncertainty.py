"""Coverage of the prediction intervals on held-out data.

    python experiments/uncertainty.py            # writes experiments/results/uncertainty.csv

Every model carries a split-conformal interval on log runtime (nominal 90%), calibrated on the
validation split carved from its training data. Here each interval is judged on points no
model saw:
- shipped catalog combinations: the held-out test points of trained/<hw>/data/<kernel>.csv
  (pass 0): for the AMD models points 0..299 (they trained on 250 of points 300..799), for
  models trained with `--n-train` the rows that training held out (its seeded split);
- Kernel Tuner cache files (../shared/data/kernel_tuner/*.json.gz, when annpred can read them):
  a model trained on 250 random configurations, judged on all other configurations; mean
  over 10 seeds (draws and initialisations). Also judged on the 10 configurations it
  predicts fastest, the ones a tuner would pick: their coverage and the median of measured /
  predicted (above 1: the picks are slower than predicted; selection from thousands finds
  the configurations the model errs low on). The guided search's calibration of its picks
  (`tune-space`'s expected runtime and picks' interval) is judged by `experiments/foreign.py`
  (`experiments/results/foreign_picks.csv`).
Columns: kernel, variant, hardware, nominal, coverage, median_width (median of
(high - low) / predicted, percent), n_test, dataset, seeds, top10_coverage,
top10_measured_over_predicted (median over the picks and seeds).
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
OUT = ROOT / "experiments" / "results" / "uncertainty.csv"
N_TEST = 300


def _row(dataset, kernel, variant, hardware, nominal, y, s, lo, hi):
    cover = float(np.mean((y >= lo) & (y <= hi)) * 100)
    width = float(np.median((hi - lo) / s) * 100)
    return {"dataset": dataset, "kernel": kernel, "variant": variant, "hardware": hardware,
            "nominal": nominal, "coverage": round(cover, 2), "median_width": round(width, 2),
            "n_test": int(len(y))}


def shipped() -> list[dict]:
    from annpred.data.profiles import load_profiles
    from annpred.model.trainer import split_rows
    from annpred.runtime.predictor import load_models

    models = load_models([ROOT / "trained"])
    rows = []
    for csv in sorted(p for p in (ROOT / "trained").glob("cpu-*/data/*.csv")
                      if not p.name.startswith("halide_")):  # schedule data: halide.py
        df = load_profiles([csv])
        first = df[df["pass"] == 0]
        for (k, v, h), g in first.groupby(["kernel", "variant", "hardware"], sort=True):
            if (k, v, h) not in models.models:
                continue
            m = models.get(k, v, h)
            tr = m.meta.get("train", {})
            if tr.get("n_holdout"):  # trained with --n-train: its own held-out rows
                g = g.iloc[split_rows(len(g), tr["n_train_rows"], tr.get("seed", 0))[1]]
            else:  # the AMD models: trained on points 300..799, points < 300 held out
                g = g[g["point"] < N_TEST]
            out = models.predict_many(k, v, {p: g[p].to_numpy() for p in m.params}, h)
            rows.append(_row("shipped", k, v, h, m.interval[2] if m.interval else np.nan,
                             g["runtime_s"].to_numpy(), out["seconds"], out["low"],
                             out["high"]))
            print(f"{k}/{v}/{h}: coverage {rows[-1]['coverage']:.1f}%  median width "
                  f"{rows[-1]['median_width']:.1f}%", flush=True)
    return rows


def cache_files(seeds: int = 10, top: int = 10) -> list[dict]:
    """Kernel Tuner cache files: train on 250 random configurations as ``annpred train
    --n-train 250`` does (seeds 0..seeds-1), judge the interval on every other
    configuration and on the ``top`` predicted fastest of them."""
    import tempfile

    from annpred.data.kerneltuner import load_frame
    from annpred.model.trainer import split_rows, train_frame
    from annpred.runtime.predictor import load_models

    data = ROOT.parent / "shared" / "data" / "kernel_tuner"
    rows = []
    for f in sorted(data.glob("*.json*")):
        df = load_frame(f)
        per, picks, ratios = [], [], []
        for seed in range(seeds):
            with tempfile.TemporaryDirectory() as tmp:
                rep = train_frame(df, tmp, n_train=250, seed=seed)[0]
                pred = load_models(tmp, reload=True)
                m = pred.get(rep.kernel, rep.variant, rep.hardware)
                _, ho = split_rows(len(df), 250, seed)
                g = df.iloc[ho]
                out = pred.predict_many(rep.kernel, rep.variant, {p: g[p].to_numpy()
                                                                  for p in m.params},
                                        rep.hardware)
            y = g["runtime_s"].to_numpy()
            per.append(_row(f.name, rep.kernel, rep.variant, rep.hardware,
                            m.interval[2] if m.interval else np.nan, y, out["seconds"],
                            out["low"], out["high"]))
            best = np.argsort(out["seconds"], kind="stable")[:top]
            picks.append(np.mean((y[best] >= out["low"][best]) & (y[best] <= out["high"][best])))
            ratios.extend((y[best] / out["seconds"][best]).tolist())
        row = dict(per[0])
        for k in ("coverage", "median_width"):
            row[k] = round(float(np.mean([r[k] for r in per])), 2)
        row.update(seeds=seeds, top10_coverage=round(float(np.mean(picks)) * 100, 1),
                   top10_measured_over_predicted=round(float(np.median(ratios)), 3))
        rows.append(row)
        print(f"{f.name}: coverage {row['coverage']:.1f}%  median width "
              f"{row['median_width']:.1f}%  top {top}: coverage {row['top10_coverage']:.0f}%, "
              f"measured / predicted {row['top10_measured_over_predicted']:.2f}", flush=True)
    return rows


def main() -> int:
    rows = shipped() + cache_files()
    df = pd.DataFrame(rows, columns=["kernel", "variant", "hardware", "nominal", "coverage",
                                     "median_width", "n_test", "dataset", "seeds",
                                     "top10_coverage", "top10_measured_over_predicted"])
    df["seeds"] = df["seeds"].fillna(1).astype(int)
    from annpred.files import atomic_write_text

    OUT.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(OUT, df.to_csv(index=False))
    s = df[df.dataset == "shipped"]
    print(f"shipped: median coverage {s.coverage.median():.1f}% (nominal 90%), "
          f"{(s.coverage >= 85).mean() * 100:.0f}% of combinations at >= 85%; "
          f"median width {s.median_width.median():.1f}%")
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
