"""Figure of the accelerator study (reads experiments/results/accel.csv and accel_nn.csv):

    python experiments/accel_plots.py                # -> experiments/results/accel.png
    python experiments/accel_plots.py --out DIR      # -> DIR/accel.png (the same CSVs)

Left: CPU time of the fast evaluation against SCALE-Sim's per layer (both CPU seconds, same
machine), with the 10,000x target line. Middle: iterations evaluated against total array
steps per layer, with the 1,000x target line. Right: NN+C test MAPE against training points
per accelerator/mode and sampler, with the 0.1 % target line.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
sys.path.insert(0, str(RESULTS.parents[1]))  # annpred, from a checkout too


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=str(RESULTS),
                    help="folder to write accel.png into (default: %(default)s)")
    args = ap.parse_args(argv)
    d = pd.read_csv(RESULTS / "accel.csv")
    d = d[d["layer"] != "ALL"]
    nn = pd.read_csv(RESULTS / "accel_nn.csv")
    fig, ax = plt.subplots(1, 3, figsize=(16, 5))
    colours = {"calc": "tab:blue", "user": "tab:red"}
    ref = d.dropna(subset=["scalesim_s"])
    for mode, sub in ref.groupby("mode"):
        ax[0].scatter(sub["scalesim_s"], sub["fast_s"], s=14, c=colours[mode],
                      label=f"{mode.upper()} ({len(sub)} layers)")
    lo, hi = ref["scalesim_s"].min() / 2, ref["scalesim_s"].max() * 2
    ax[0].plot([lo, hi], [lo / 1e4, hi / 1e4], "k--", lw=1, label="10,000x faster (target)")
    ax[0].plot([lo, hi], [lo / 1e3, hi / 1e3], "k:", lw=1, label="1,000x faster")
    ax[0].set(xscale="log", yscale="log", xlabel="SCALE-Sim 3.0.0 CPU time per layer (s)",
              ylabel="annpred fast evaluation CPU time per layer (s)",
              title="Time per layer: fast model vs SCALE-Sim")
    ax[0].legend(fontsize=8)
    for mode, sub in d.groupby("mode"):
        ax[1].scatter(sub["iterations_total"], sub["iterations_evaluated"], s=14,
                      c=colours[mode], label=f"{mode.upper()} ({len(sub)} layers)")
    lo, hi = d["iterations_total"].min() / 2, d["iterations_total"].max() * 2
    ax[1].plot([lo, hi], [lo / 1e3, hi / 1e3], "k--", lw=1, label="1,000x fewer (target)")
    ax[1].axvline(1e5, color="grey", lw=0.8, ls=":", label="large layer: >= 100,000 steps")
    ax[1].set(xscale="log", yscale="log", xlabel="array steps of the layer (iterations)",
              ylabel="iterations evaluated by the fast model",
              title="Iterations evaluated vs total")
    ax[1].legend(fontsize=8)
    layer = nn[nn["kernel"] == "accel_conv"]
    for (acc, sampler), sub in layer.groupby(["accel", "sampler"]):
        ax[2].plot(sub["n_measured"], sub["mape"], marker="o" if sampler == "pr" else "s",
                   ls="-" if sampler == "pr" else "--", label=f"{acc} {sampler}")
    ax[2].axhline(0.1, color="k", lw=1, ls="--", label="0.1 % target")
    ax[2].set(yscale="log", xlabel="training points (simulated layers)",
              ylabel="single-layer MAPE on 300 held-out layers (%)",
              title="NN+C (< 75 parameters) on simulated samples")
    ax[2].set_ylim(top=ax[2].get_ylim()[1] * 30)  # head room: the legend covers no line
    ax[2].legend(fontsize=8, loc="upper center", ncol=2)
    fig.suptitle("Accelerator study: annpred.accel (full/fast dependency-graph evaluation, "
                 "NN+C) against SCALE-Sim 3.0.0 runs (experiments/results/accel*.csv)")
    fig.tight_layout()
    from annpred.study.plots import save_png

    out = Path(args.out) / "accel.png"
    save_png(fig, out)  # atomic: never half a PNG
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
