"""The study's outputs: CSV tables, the Markdown report and the headline."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from annpred.errors import DataError
from annpred.files import atomic_write_text
from annpred.study.runner import Result
from annpred.study.zoo import BASELINES, DESCRIPTIONS, MODELS


ACCURACY_COLUMNS = ["kernel", "variant", "hardware", "model", "n_train", "n_test", "seeds",
                    "mape_mean", "mape_std", "filtered_mape_mean", "filtered_mape_std",
                    "within10_mean", "within10_std", "spearman_mean", "spearman_std",
                    "noise_floor", "noise_floor_source", "mdape_mean", "mdape_std",
                    "noise_floor_median", "n_params", "train_time_mean_s"]


def _combo_name(row) -> str:
    return f"{row['kernel']}/{row['variant']}/{row['hardware']}"


def _wide(summary: pd.DataFrame, value: str = "mape_mean") -> pd.DataFrame:
    """combination x model table of ``value`` (combinations in summary order)."""
    s = summary.assign(combination=summary.apply(_combo_name, axis=1))
    order = list(dict.fromkeys(s["combination"]))
    w = s.pivot(index="combination", columns="model", values=value)
    return w.reindex(index=order, columns=[m for m in MODELS if m in w.columns])


def headline(summary: pd.DataFrame) -> pd.DataFrame:
    """Per model, over combinations: median and worst MAPE, medians of the other metrics,
    and on how many combinations the model has the lowest mean MAPE."""
    w = _wide(summary)
    best = w.idxmin(axis=1)
    out = []
    for m in w.columns:
        col = w[m].dropna()
        sub = summary[summary.model == m]
        out.append({
            "model": m, "combinations": len(col),
            "median_mape": float(col.median()), "mean_mape": float(col.mean()),
            "worst_mape": float(col.max()), "worst_combination": str(col.idxmax()),
            "median_filtered_mape": float(sub["filtered_mape_mean"].median()),
            "median_within10": float(sub["within10_mean"].median()),
            "median_spearman": float(sub["spearman_mean"].median()),
            "median_mdape": float(sub["mdape_mean"].median()),
            "best_on": int((best == m).sum()),
            "median_params": int(sub["n_params"].median()),
            "median_n_train": int(sub["n_train"].median()),
        })
    return pd.DataFrame(out)


def verdicts(summary: pd.DataFrame, ours: str = "NN+C",
             baselines: Sequence[str] = BASELINES) -> pd.DataFrame:
    """Per combination: does ``ours`` have a mean MAPE at or below every baseline's?"""
    w = _wide(summary)
    std = _wide(summary, "mape_std")
    floors = _wide(summary, "noise_floor")
    rows = []
    if ours not in w.columns:
        return pd.DataFrame()
    base = [b for b in baselines if b in w.columns]
    for combo in w.index:
        o = w.at[combo, ours]
        b = w.loc[combo, base].dropna()
        if b.empty or not np.isfinite(o):
            continue
        winner = b.idxmin()
        floor = floors.loc[combo].dropna()
        rows.append({"combination": combo, "ours": float(o),
                     "ours_std": float(std.at[combo, ours]),
                     "best_baseline": winner, "best_baseline_mape": float(b.min()),
                     "best_baseline_std": float(std.at[combo, winner]),
                     "beats_all": bool(o <= b.min()),
                     "lost_to": ", ".join(f"{k} ({v:.2f}%)" for k, v in b.items() if v < o),
                     "noise_floor": float(floor.iloc[0]) if len(floor) else float("nan")})
    return pd.DataFrame(rows)


def _fmt(v, digits=2, pct=False) -> str:
    if v is None or (isinstance(v, float) and not np.isfinite(v)):
        return "n/a"
    return f"{v:.{digits}f}{'%' if pct else ''}"


def _md_table(df: pd.DataFrame) -> str:
    cols = list(df.columns)
    lines = ["| " + " | ".join(map(str, cols)) + " |",
             "|" + "|".join("---" if i == 0 else "---:" for i in range(len(cols))) + "|"]
    for _, r in df.iterrows():
        lines.append("| " + " | ".join(str(r[c]) for c in cols) + " |")
    return "\n".join(lines)


def headline_markdown(res: Result) -> str:
    """The headline table (also what the README shows)."""
    h = headline(res.summary)
    t = pd.DataFrame({
        "model": h["model"],
        "median MAPE": h["median_mape"].map(lambda v: _fmt(v, pct=True)),
        "worst MAPE": [f"{_fmt(v, pct=True)} ({c})" for v, c in
                       zip(h["worst_mape"], h["worst_combination"])],
        "filtered MAPE (papers', median)": h["median_filtered_mape"].map(
            lambda v: _fmt(v, pct=True)),
        "within +-10% (median)": h["median_within10"].map(lambda v: _fmt(v, 1, pct=True)),
        "Spearman (median)": h["median_spearman"].map(lambda v: _fmt(v, 3)),
        "MdAPE (median)": h["median_mdape"].map(lambda v: _fmt(v, pct=True)),
        "best on": h["best_on"].map(str) + f"/{len(res.combos)}",
        "params (median)": h["median_params"],
        "n train": h["median_n_train"],
    })
    return _md_table(t)


def hardware_table(summary: pd.DataFrame, value: str = "mape_mean") -> pd.DataFrame:
    """Median over each hardware's combinations of ``value``, per model; plus the floor."""
    floor = "noise_floor_median" if value == "mdape_mean" else "noise_floor"
    t = summary.groupby(["model", "hardware"], observed=True)[value].median().unstack()
    t = t.reindex([m for m in MODELS if m in t.index])
    f = summary.groupby("hardware")[floor].median()
    t.loc["noise floor"] = f.reindex(t.columns)
    return t


def floor_summary(res: Result, ours: str = "NN+C") -> dict:
    s = res.summary[res.summary.model == ours]
    f = s["noise_floor"].to_numpy(float)
    m = s["mape_mean"].to_numpy(float)
    ok = np.isfinite(f)
    two = s["noise_floor_source"].str.startswith("two passes").to_numpy()
    return {"combinations": int(len(s)), "with_floor": int(ok.sum()),
            "two_pass": int(two.sum()),
            "median_floor": float(np.median(f[ok])) if ok.any() else float("nan"),
            "median_ratio": float(np.median(m[ok] / f[ok])) if ok.any() else float("nan"),
            "at_or_below_floor": int(np.sum(m[ok] <= f[ok])),
            "within_1_5x_floor": int(np.sum(m[ok] <= 1.5 * f[ok])),
            "median_ours": float(np.median(m)) if len(m) else float("nan")}


def write_outputs(res: Result, out: str | os.PathLike, *, plots: bool = True,
                  command: str | None = None, notes: str | None = None) -> list[Path]:
    """Write accuracy.csv, accuracy_runs.csv, learning_curves.csv, cost.csv, accuracy.md and
    PNGs into ``out``; returns the paths written."""
    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(f"cannot create output directory {out}: {exc}") from None
    written = []
    summ = res.summary[[c for c in ACCURACY_COLUMNS if c in res.summary.columns]]
    p = out / "accuracy.csv"
    atomic_write_text(p, summ.to_csv(index=False, float_format="%.6g"))
    written.append(p)
    p = out / "accuracy_runs.csv"
    atomic_write_text(p, res.runs.drop(columns="combo").to_csv(index=False, float_format="%.6g"))
    written.append(p)
    if not res.curves.empty:
        p = out / "learning_curves.csv"
        atomic_write_text(p, res.curves.to_csv(index=False, float_format="%.6g"))
        written.append(p)
    if res.cost is not None:
        p = out / "cost.csv"
        atomic_write_text(p, res.cost.to_csv(index=False, float_format="%.6g"))
        written.append(p)
    pngs = []
    if plots:
        from annpred.study.plots import plots as _plots

        pngs = _plots(res, out)
        written.extend(pngs)
    p = out / "accuracy.md"
    atomic_write_text(p, _markdown(res, pngs, command, notes))
    written.append(p)
    return written


def curve_table(res: Result) -> pd.DataFrame:
    """Median over combinations of the mean MAPE, per model (rows) and training size."""
    if res.curves.empty:
        return pd.DataFrame()
    t = res.curves.groupby(["model", "n_train"], observed=True)["mape_mean"].median()
    t = t.unstack("n_train")
    return t.reindex([m for m in MODELS if m in t.index])


def _markdown(res: Result, pngs: list[Path], command: str | None, notes: str | None) -> str:
    cfg, S = res.config, res.summary
    L = ["# Accuracy study", ""]
    if command:
        L += [f"Regenerate with `{command}`.", ""]
    fs = floor_summary(res) if "NN+C" in set(S.model) else None
    v = verdicts(S)
    L += ["## Headline", "",
          f"{len(res.combos)} kernel-variant-hardware combinations; MAPE over **all** test "
          "points, mean over seeds, then median / worst over combinations. "
          "\"filtered MAPE\" is the papers' metric (smallest 30% of measured runtimes "
          "dropped), shown for comparison only.", "", headline_markdown(res), ""]
    if fs is not None and len(v):
        gap = v.ours - v.best_baseline_mape
        spread = np.maximum(v.ours_std, v.best_baseline_std)
        clear = int(((gap > 0) & (gap >= spread)).sum())
        L += [f"- NN+C has a mean MAPE at or below every baseline "
              f"({', '.join(b for b in BASELINES if b in set(S.model))}) on "
              f"**{int(v.beats_all.sum())} of {len(v)}** combinations; it is worse than the "
              f"best baseline by more than the seed spread on {clear}.",
              f"- Noise floor (MAPE between two measurement passes over the test points): "
              f"median {_fmt(fs['median_floor'], pct=True)} over {fs['with_floor']} "
              f"combinations ({fs['two_pass']} from two passes). NN+C MAPE / floor: median "
              f"{_fmt(fs['median_ratio'])}x; NN+C is at or below the floor on "
              f"{fs['at_or_below_floor']} and within 1.5x of it on "
              f"{fs['within_1_5x_floor']} of them.",
              "- A model that predicted the noise-free runtime exactly would score about "
              "floor / sqrt(2) against one pass (the floor compares two noisy passes).", ""]
    if S["hardware"].nunique() > 1 or "mdape_mean" in S.columns:
        L += ["### By hardware", "",
              "Median over the hardware's combinations of the mean MAPE over all test points, "
              "and of the median absolute percentage error (MdAPE, which a few spoiled "
              "measurements cannot dominate); the last row is the median noise floor "
              "(MAPE, resp. median |pass 1 - pass 0| / pass 0).", ""]
        a, b = hardware_table(S), hardware_table(S, "mdape_mean")
        t = pd.DataFrame({"model": a.index})
        for hw_id in a.columns:
            t[f"MAPE {hw_id}"] = [_fmt(v, pct=True) for v in a[hw_id]]
        for hw_id in b.columns:
            t[f"MdAPE {hw_id}"] = [_fmt(v, pct=True) for v in b[hw_id]]
        L += [_md_table(t), ""]
    L += ["## Protocol", "",
          f"- Test set: the points measured in both passes (pass-0 runtime is the truth), "
          f"else a fixed random hold-out of up to {cfg.n_test} points. Never used in "
          "training; scalers are fitted on training rows only.",
          f"- Training: {cfg.n_train} points drawn from the remaining points, {cfg.seeds} "
          "seeds (different draws and initialisations); every model gets the same rows per "
          "seed. Validation data (early stopping, number of trees) is carved out of the "
          "training rows. NN+C-L trains on the whole pool (\"more data\").",
          "- All models are fitted on log runtime.", ""]
    L += ["| model | definition |", "|---|---|"]
    L += [f"| {m} | {DESCRIPTIONS[m]} |" for m in MODELS if m in set(S.model)]
    L += ["", "## Per combination", "",
          "Mean MAPE over seeds in % (+- std, in percentage points); **bold** = lowest. "
          "Floor = noise floor (%).", ""]
    w, sd = _wide(S), _wide(S, "mape_std")
    fl = _wide(S, "noise_floor")
    tab = []
    for combo in w.index:
        r = {"combination": combo,
             "n test": int(S[S.apply(_combo_name, axis=1) == combo]["n_test"].iloc[0]),
             "floor": _fmt(fl.loc[combo].dropna().iloc[0] if fl.loc[combo].notna().any()
                           else float("nan"), pct=True)}
        lo = w.loc[combo].min()
        for m in w.columns:
            val = w.at[combo, m]
            cell = f"{_fmt(val)} +- {_fmt(sd.at[combo, m])}" if np.isfinite(val) else "n/a"
            r[m] = f"**{cell}**" if np.isfinite(val) and val == lo else cell
        if "NN+C" in w.columns:
            md, fm = _wide(S, "mdape_mean"), _wide(S, "noise_floor_median")
            r["NN+C MdAPE / floor MdAPE (%)"] = (f"{_fmt(md.at[combo, 'NN+C'])} / "
                                             f"{_fmt(fm.at[combo, 'NN+C'])}")
        if len(v) and combo in set(v.combination):
            vv = v[v.combination == combo].iloc[0]
            r["NN+C vs baselines"] = ("beats all" if vv.beats_all
                                      else f"loses to {vv.lost_to}")
        tab.append(r)
    L += [_md_table(pd.DataFrame(tab)), ""]
    if len(v):
        lost = v[~v.beats_all]
        L += ["## Where NN+C loses", ""]
        if lost.empty:
            L += ["Nowhere: NN+C's mean MAPE is at or below every baseline's on every "
                  "combination.", ""]
        else:
            L += [f"NN+C loses to at least one baseline on {len(lost)} of {len(v)} "
                  "combinations. Gap = NN+C minus the best baseline (percentage points); "
                  "\"within spread\" = the gap is smaller than the larger of the two seed "
                  "standard deviations.", ""]
            t = pd.DataFrame({
                "combination": lost.combination,
                "NN+C": lost.ours.map(lambda x: _fmt(x, pct=True)),
                "best baseline": [f"{b} {_fmt(x, pct=True)}" for b, x in
                                  zip(lost.best_baseline, lost.best_baseline_mape)],
                "gap": (lost.ours - lost.best_baseline_mape).map(lambda x: _fmt(x)),
                "within spread": np.where(
                    (lost.ours - lost.best_baseline_mape)
                    < np.maximum(lost.ours_std, lost.best_baseline_std), "yes", "no"),
                "floor": lost.noise_floor.map(lambda x: _fmt(x, pct=True)),
            })
            L += [_md_table(t), ""]
    ct = curve_table(res)
    if not ct.empty:
        L += ["## Sample efficiency", "",
              f"Median over combinations of the mean test MAPE ({cfg.curve_seeds} seed(s) per size, "
              "nested training sets drawn from the pool; a size appears where the pool "
              "holds that many points). NN+C-L here is the 32x32 network at each size.", ""]
        t = ct.map(lambda x: _fmt(x, pct=True)).reset_index()
        t.columns = ["model"] + [f"n={c}" for c in ct.columns]
        L += [_md_table(t), ""]
    if res.cost is not None and len(res.cost):
        c = res.cost
        L += ["## Cost", "",
              f"One run, one thread, on {c.kernel.iloc[0]}/{c.variant.iloc[0]}/"
              f"{c.hardware.iloc[0]} with {int(c.n_train.iloc[0])} training points. "
              "Parameters of tree models = tree nodes. Latencies are medians.", ""]
        t = pd.DataFrame({"model": c.model, "parameters": c.n_params,
                          "training": c.train_time_s.map(lambda x: f"{x:.2f} s"),
                          "1 prediction": c.predict_1_us.map(lambda x: f"{x:.1f} us"),
                          "10,000 predictions": c.predict_10k_ms.map(
                              lambda x: f"{x:.2f} ms"),
                          "what is timed": c.note})
        L += [_md_table(t), ""]
    tt = (S.groupby("model", observed=True)["train_time_mean_s"].median()
          .reindex([m for m in MODELS if m in set(S.model)]))
    resumed = res.timings.get("n_resumed", 0)
    L += ["## Timings", "",
          f"{res.timings.get('n_fits', 0) - resumed} fits in {res.timings.get('fits_s', 0):.0f} s "
          f"with {cfg.jobs} worker(s)"
          + (f" ({resumed} more read back from an interrupted run's checkpoint)" if resumed
             else "")
          + f"; whole run {res.timings.get('total_s', 0):.0f} s. "
          "Median training time of one fit at the study size: "
          + ", ".join(f"{m} {x:.2f} s" for m, x in tt.items()) + ".", ""]
    if res.skipped:
        L += ["## Skipped", ""] + [f"- {s}" for s in res.skipped] + [""]
    if notes:
        L += [notes.rstrip(), ""]
    if pngs:
        L += ["## Plots", ""] + [f"![{p.stem}]({p.name})" for p in pngs] + [""]
    return "\n".join(L)
