"""The study's figures (matplotlib, Agg backend): labelled axes with units, titles naming
data and models."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from annpred.study.metrics import mape
from annpred.study.report import _fmt, _wide, curve_table
from annpred.study.runner import Result
from annpred.study.zoo import MODELS


def plots(res: Result, out: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    written = []
    ours = "NN+C" if "NN+C" in res.config.models else res.config.models[0]
    by_hw: dict[str, list[int]] = {}
    for i, c in enumerate(res.combos):
        by_hw.setdefault(c.hardware, []).append(i)
    for hw_id, idx in by_hw.items():
        n = len(idx)
        cols = min(6, max(1, math.ceil(math.sqrt(n))))
        rows = math.ceil(n / cols)
        fig, axes = plt.subplots(rows, cols, figsize=(2.6 * cols, 2.5 * rows), squeeze=False)
        for ax in axes.ravel()[n:]:
            ax.axis("off")
        for ax, i in zip(axes.ravel(), idx):
            c = res.combos[i]
            pred = res.predictions.get((i, ours))
            y = c.y[c.test]
            if pred is None:
                ax.axis("off")
                continue
            lo, hi = float(min(y.min(), pred.min())), float(max(y.max(), pred.max()))
            g = np.array([lo, hi])
            ax.loglog(g, g, color="k", lw=0.8)
            ax.fill_between(g, g / 1.1, g * 1.1, color="0.85", lw=0)
            ax.loglog(y, pred, ".", ms=2.5, alpha=0.7)
            m = mape(y, pred)
            ax.set_title(f"{c.kernel}/{c.variant}\n{ours} {m:.1f}% (floor "
                         f"{_fmt(c.floor, 1, pct=True)})", fontsize=7)
            ax.tick_params(labelsize=6)
        fig.suptitle(f"{ours}: predicted vs measured runtime (s), test points, seed 0, "
                     f"{hw_id}; band = +-10%", fontsize=9)
        fig.tight_layout()
        p = out / f"pred_vs_measured_{_slug(hw_id)}.png"
        _save(fig, p)
        plt.close(fig)
        written.append(p)
    ct = curve_table(res)
    if not ct.empty:
        from matplotlib.ticker import NullFormatter, ScalarFormatter

        hws = sorted(res.curves["hardware"].unique())
        panels = [("all combinations", None)] + ([(h, h) for h in hws] if len(hws) > 1 else [])
        fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 4.2),
                                 squeeze=False, sharey=True)
        for ax, (title, hw_id) in zip(axes[0], panels):
            cur = res.curves if hw_id is None else res.curves[res.curves.hardware == hw_id]
            t = cur.groupby(["model", "n_train"], observed=True)["mape_mean"].median()
            t = t.unstack("n_train").reindex([m for m in MODELS if m in ct.index])
            for m in t.index:
                sr = t.loc[m].dropna()
                ax.plot(sr.index, sr.values, "o-", label=m, lw=2.4 if m == "NN+C" else 1.2)
            fs = [c.floor for c in res.combos if np.isfinite(c.floor)
                  and (hw_id is None or c.hardware == hw_id)]
            if fs:
                ax.axhline(float(np.median(fs)), color="k", ls=":",
                           label="noise floor (median)")
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_xticks(list(t.columns))
            ax.xaxis.set_major_formatter(ScalarFormatter())
            ax.xaxis.set_minor_formatter(NullFormatter())
            ax.yaxis.set_major_formatter(ScalarFormatter())
            ax.yaxis.set_minor_formatter(NullFormatter())
            ax.set_yticks([3, 5, 10, 20, 30, 50])
            ax.set_xlabel("training points")
            ax.set_title(f"Sample efficiency: {title}", fontsize=9)
            ax.grid(True, which="both", alpha=0.3)
        axes[0][0].set_ylabel("test MAPE (%), median over combinations")
        axes[0][0].legend(fontsize=7)
        fig.tight_layout()
        p = out / "learning_curves.png"
        _save(fig, p)
        plt.close(fig)
        written.append(p)
    w = _wide(res.summary)
    if len(w):
        fig, ax = plt.subplots(figsize=(max(6, 0.28 * len(w) + 2), 4.5))
        x = np.arange(len(w))
        for m in w.columns:
            ax.plot(x, w[m].values, "o" if m == "NN+C" else ".", label=m,
                    ms=6 if m == "NN+C" else 4)
        fl = _wide(res.summary, "noise_floor").max(axis=1)
        ax.plot(x, fl.values, "k_", ms=10, label="noise floor")
        ax.set_yscale("log")
        ax.set_xticks(x)
        ax.set_xticklabels(w.index, rotation=90, fontsize=6)
        ax.set_ylabel("test MAPE (%)")
        ax.legend(fontsize=7, ncol=4)
        ax.grid(True, axis="y", which="both", alpha=0.3)
        fig.tight_layout()
        p = out / "mape_by_combination.png"
        _save(fig, p)
        plt.close(fig)
        written.append(p)
    return written


def _slug(s: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in s)


def _save(fig, path) -> None:
    """A figure as PNG, written atomically (annpred.files)."""
    import io

    from annpred.files import atomic_write_bytes

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    atomic_write_bytes(path, buf.getvalue())
