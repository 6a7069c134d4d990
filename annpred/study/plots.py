"""The study's figures (matplotlib, Agg backend): labelled axes with units, titles naming
data and models."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from annpred.study.metrics import mape
from annpred.study.report import _fmt, _wide, curve_table
from annpred.study.runner import Result, _study_n
from annpred.study.zoo import MODELS


def _file_labels(paths) -> dict[str, str]:
    """Each path's shortest trailing part (file name, then parent folders) that no other path
    shares: two ``maxpool.csv`` of different folders stay two files."""
    parts = {p: Path(p).parts for p in paths}
    out = {}
    for p, pp in parts.items():
        k = 1
        while k < len(pp) and any(q != p and qq[-k:] == pp[-k:] for q, qq in parts.items()):
            k += 1
        out[p] = "/".join(pp[-k:])
    return out


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def _data_label(res: Result, idx=None, training: str = "") -> str:
    """Which data and training the figure comes from: the CSV files and hardware ids of
    combinations ``idx`` (all by default), their count, and ``training`` (sizes, seeds)."""
    idx = range(len(res.combos)) if idx is None else idx
    combos = [res.combos[i] for i in idx]
    names = _file_labels(sorted({c.source for c in res.combos if c.source}))
    files = sorted({names[c.source] for c in combos if c.source})
    hws = sorted({c.hardware for c in combos})
    f = ", ".join(files[:4]) + (f" (+{len(files) - 4} more)" if len(files) > 4 else "")
    return (f"data: {f or 'profiling CSVs'} on {', '.join(hws)}; "
            f"{_plural(len(combos), 'combination')}; " + (f"{training}; " if training else "")
            + "test points never used in training")


def _study_sizes(res: Result, models, idx=None) -> str:
    """The training sizes of ``models`` in the study (not the learning curves), e.g. "40
    training points" or "40-80 training points" (NN+C-L: a combination's whole pool)."""
    idx = range(len(res.combos)) if idx is None else idx
    ns = sorted({_study_n(res.combos[i], m, res.config) for i in idx for m in models})
    return (f"{ns[0]}" if len(ns) == 1 else f"{ns[0]}-{ns[-1]}") + " training points"


def _param_text(res: Result, model: str, idx) -> str:
    """The parameter count of ``model``'s seed-0 fits on combinations ``idx`` (a range when
    it differs between them)."""
    r = res.runs
    if r.empty or "combo" not in r.columns:
        return "parameters n/a"
    ns = {_study_n(res.combos[i], model, res.config) for i in idx}
    r = r[r["combo"].isin(list(idx)) & (r["model"] == model) & (r["seed"] == 0)
          & r["n_train"].isin(list(ns))]
    if r.empty:
        return "parameters n/a"
    lo, hi = int(r["n_params"].min()), int(r["n_params"].max())
    return f"{lo:,} parameters" if lo == hi else f"{lo:,}-{hi:,} parameters"


def _model_list(models) -> str:
    return ", ".join(f"{m} (ours)" if m == "NN+C" else m for m in models)


def _wrap(text: str, width: int) -> str:
    import textwrap

    return "\n".join(textwrap.wrap(text, max(40, width), break_on_hyphens=False))


def _floor_text(floor: float) -> str:
    """Noise floors over 100% are printed as such, with what they mean."""
    if not np.isfinite(floor):
        return "floor n/a"
    if floor > 100:
        return "floor >100%*"
    return f"floor {_fmt(floor, 1, pct=True)}"


FLOOR_NOTE = ("* floor = MAPE between two measurement passes of the same points; above 100% "
              "a few re-measurements were many times slower (contended thread pools), not the "
              "model")


PCT_TICKS = (0.05, 0.1, 0.2, 0.5, 1, 2, 3, 5, 10, 20, 30, 50, 100, 200, 500, 1000)


def _pct_axis(axis, lo: float, hi: float) -> None:
    """A log-scaled percentage axis labelled with plain numbers over the range [lo, hi]
    (the noise floor included, however low it is)."""
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter

    axis.set_major_locator(FixedLocator([t for t in PCT_TICKS if lo * 0.8 <= t <= hi * 1.25]))
    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    axis.set_minor_formatter(NullFormatter())


def plots(res: Result, out: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    written = []
    ours = "NN+C" if "NN+C" in res.config.models else res.config.models[0]
    by_hw: dict[str, list[int]] = {}
    for i, c in enumerate(res.combos):
        by_hw.setdefault(c.hardware, []).append(i)
    seeds = _plural(res.config.seeds, "seed")
    for hw_id, idx in by_hw.items():
        idx = [i for i in idx if (i, ours) in res.predictions]  # the panels it shows
        if not idx:
            continue
        n = len(idx)
        cols = min(6, max(1, math.ceil(math.sqrt(n))))
        rows = math.ceil(n / cols)
        # at least 6.5 in wide, so that the title and the data note fit over one or two
        # panels; the note's lines get room of their own below the x labels
        width_in = max(6.5, 2.9 * cols)
        training = (f"{ours} trained on {_study_sizes(res, [ours], idx)}, the fit of seed 0 "
                    f"of {seeds}")
        note = _wrap(_data_label(res, idx, training) + ". " + FLOOR_NOTE, int(width_in * 17))
        note_in = 0.11 * (note.count("\n") + 1) + 0.1
        height_in = 2.8 * rows + 0.6 + note_in
        fig, axes = plt.subplots(rows, cols, figsize=(width_in, height_in), squeeze=False)
        for ax in axes.ravel()[n:]:
            ax.axis("off")
        for k, (ax, i) in enumerate(zip(axes.ravel(), idx)):
            c = res.combos[i]
            pred = res.predictions[(i, ours)]
            y = c.y[c.test]
            lo, hi = float(min(y.min(), pred.min())), float(max(y.max(), pred.max()))
            g = np.array([lo, hi])
            ax.loglog(g, g, color="k", lw=0.8)
            ax.fill_between(g, g / 1.1, g * 1.1, color="0.85", lw=0)
            ax.loglog(y, pred, ".", ms=2.5, alpha=0.7)
            m = mape(y, pred)
            ax.set_title(f"{c.kernel}/{c.variant}\nMAPE {m:.1f}%, {_floor_text(c.floor)}",
                         fontsize=7)
            ax.tick_params(labelsize=6)
            if k % cols == 0:
                ax.set_ylabel("predicted runtime (s)", fontsize=7)
            if k >= n - cols:
                ax.set_xlabel("measured runtime (s)", fontsize=7)
        fig.suptitle(f"{ours} ({_param_text(res, ours, idx)}, seed 0): predicted vs "
                     f"measured runtime\n"
                     f"on {hw_id}; grey band = +-10%", fontsize=9)
        fig.text(0.5, 0.005, note, ha="center", va="bottom", fontsize=6)
        fig.tight_layout(rect=(0, note_in / height_in, 1, 1 - 0.45 / height_in))
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
            ax.set_xlabel("training points")
            ax.set_title(f"Test MAPE vs training points: {title}", fontsize=9)
            ax.grid(True, which="both", alpha=0.3)
        for ax in axes[0]:  # after every panel: they share the y range
            _pct_axis(ax.yaxis, *axes[0][0].get_ylim())
        axes[0][0].set_ylabel("test MAPE (%), median over combinations")
        axes[0][0].legend(fontsize=7)
        training = (f"training sizes {', '.join(map(str, t.columns))}, mean over "
                    f"{_plural(res.config.curve_seeds, 'seed')} per size")
        fig.text(0.5, 0.005, _wrap(_data_label(res, training=training)
                                   + f"; models: {_model_list(t.index)}",
                                   int(5.2 * len(panels) * 17)),
                 ha="center", va="bottom", fontsize=6)
        fig.tight_layout(rect=(0, 0.04, 1, 1))
        p = out / "learning_curves.png"
        _save(fig, p)
        plt.close(fig)
        written.append(p)
    w = _wide(res.summary)
    if len(w):
        # one row per combination (readable names), MAPE on a log axis, legend outside
        fig, ax = plt.subplots(figsize=(9, max(4.0, 0.22 * len(w) + 1.8)))
        y = np.arange(len(w))[::-1]
        markers = {"NN+C": "o", "NN": "s", "GBT+C": "^", "RF+C": "v", "LR+C": "x",
                   "Cons": "+", "NN+C-L": "D"}
        for m in w.columns:
            ax.plot(w[m].values, y, markers.get(m, "."), label=m, ms=6 if m == "NN+C" else 4,
                    alpha=0.9, mfc="none" if m not in ("NN+C",) else None)
        fl = _wide(res.summary, "noise_floor").max(axis=1)
        cap = 100.0
        shown = np.minimum(fl.values, cap)
        ax.plot(shown, y, "k|", ms=10, mew=2, label="noise floor (2 passes)")
        for yy, f in zip(y, fl.values):
            if np.isfinite(f) and f > cap:
                ax.annotate(f"floor {f:.0f}%*", (cap, yy), xytext=(3, -3),
                            textcoords="offset points", fontsize=6)
        ax.set_xscale("log")
        _pct_axis(ax.xaxis, np.nanmin([np.nanmin(w.values), np.nanmin(shown)]),
                  np.nanmax([np.nanmax(w.values), np.nanmax(shown)]))
        ax.set_yticks(y)
        ax.set_yticklabels(w.index, fontsize=7)
        ax.set_xlabel("test MAPE (%), all held-out points, mean over seeds (log scale)")
        ax.set_ylabel("combination (kernel/variant/hardware)")
        ax.set_title(f"Test MAPE per combination: {_model_list(w.columns)}", fontsize=10)
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
        ax.grid(True, axis="x", which="both", alpha=0.3)
        small = [m for m in w.columns if m != "NN+C-L"]
        training = (f"models trained on {_study_sizes(res, small or w.columns)}"
                    + ("; NN+C-L on the whole pool" if small and "NN+C-L" in w.columns else "")
                    + f"; mean over {seeds}")
        fig.text(0.01, 0.005, _wrap(_data_label(res, training=training) + ". " + FLOOR_NOTE,
                                    150), ha="left",
                 va="bottom", fontsize=6)
        fig.tight_layout(rect=(0, 0.05, 1, 1))
        p = out / "mape_by_combination.png"
        _save(fig, p)
        plt.close(fig)
        written.append(p)
    return written


def _slug(s: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in s)


def shown_path(path, root) -> str:
    """``path`` as a figure names it: relative to ``root`` (the repository) when inside it."""
    path = Path(path).resolve()
    return str(path.relative_to(root)) if path.is_relative_to(root) else str(path)


def save_png(fig, path, dpi: int = 110) -> None:
    """A matplotlib figure as PNG, written atomically (annpred.files): a reader, or an
    interrupted run, never leaves half a PNG. Also for the experiments' figures."""
    import io

    from annpred.files import atomic_write_bytes

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    atomic_write_bytes(path, buf.getvalue())


def _save(fig, path) -> None:
    """The study's figures go through here (tests replace it to inspect them)."""
    save_png(fig, path)
