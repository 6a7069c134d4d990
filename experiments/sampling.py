"""Study: performance-representative (PR) sampling against random sampling.

For each (kernel, variant) below, on this machine (1 thread), MAPE on one fixed held-out test
set of random points against the number of *measured* points (sweep points count):

* ``random``: the first n of 250 random points (the kernel's own sampling rule);
* ``pr``: an independent ``annpred profile --sampler pr --samples N`` run per budget N
  (sweeps + plateau representatives), trained on the kernel's complexity features;
* ``pr_steps``: the same PR data, trained on step-aware features (the periods detected from
  the PR sweeps; x -> ceiling(x/s)*s in the complexity).

Kernels: matmul_small (study sub-kernel: dense m, n, k uniform in [1, 128], see
experiments/study_kernels.py) with the Halide schedule (vector x row tiles) and numpy
(small BLAS products); blur_plain/halide_tiled (the 256 x 32-tile Halide blur with only the
generic complexity w*h, so the steps must be discovered); blur/halide_tiled with the
catalog's hand-written tile features; and blur/scipy, where there are no steps. The noise floor is the MAPE between two measurement passes over 100 test points.

Measurements are cached as profiling CSVs under <--out>/data/<hardware>/ (default --out:
experiments/results) and reused by reruns (resumable, Ctrl-C included; ``--remeasure``
deletes them first). Results, written atomically: <--out>/sampling.csv (kernel, variant,
hardware, method, n_measured, mape, ...), sampling_summary.csv (points needed per method to
match 250 random points) and sampling.png (``--replot`` redraws it from sampling.csv).

    python experiments/sampling.py            # ~10 minutes on 2 cores, measuring included
"""
from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
# experiments/ holds scripts named like packages (halide.py): keep it off the import path
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
sys.path.insert(0, str(HERE.parent))

from annpred.files import atomic_write_many  # noqa: E402
from annpred.spec import hardware as hw  # noqa: E402
from annpred.spec.catalog import get_kernel, register_kernel  # noqa: E402
from annpred.data.profiles import load_profiles  # noqa: E402
from annpred.measure.profiler import profile  # noqa: E402
from annpred.model.estimator import AugmentedNNRegressor  # noqa: E402
from annpred.measure.pr import PLANNER_VERSION  # noqa: E402
from annpred.model.steps import detect_steps  # noqa: E402


def _study_kernels():
    import importlib.util

    spec = importlib.util.spec_from_file_location("annpred_study_kernels",
                                                  HERE / "study_kernels.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod

STUDY = [  # kernel, variant, steps expected
    ("matmul_small", "halide", True),
    ("matmul_small", "numpy", True),
    ("blur_plain", "halide_tiled", True),  # tile steps to be discovered (generic complexity)
    ("blur", "halide_tiled", True),  # catalog complexity already holds the tile features
    ("blur", "scipy", False),  # no steps
]
N_TEST = 200
N_FLOOR = 100
N_RANDOM = 250
RANDOM_NS = (50, 100, 150, 250)
PR_NS = (50, 75, 100, 150)
TEST_SEED = 1000


def mape(pred, y) -> float:
    return float(np.mean(np.abs(pred - y) / y) * 100)


def load(path: Path, kernel, variant: str, pass_id: int = 0) -> pd.DataFrame:
    df = load_profiles([path])
    df = df[(df["variant"] == variant) & (df["pass"].fillna(0) == pass_id)]
    return df.sort_values("point").reset_index(drop=True)


def measure_all(kernel_name: str, variant: str, data: Path, threads: int, log) -> dict:
    get_kernel(kernel_name)  # an unknown name fails before anything is measured
    base = data / f"{kernel_name}__{variant}"
    paths = {"test": base.with_name(base.name + "__test.csv"),
             "random": base.with_name(base.name + "__random.csv")}
    t0 = time.perf_counter()
    common = dict(variants=[variant], n_threads=threads, progress=False)
    profile(kernel_name, paths["test"], samples=N_TEST, seed=TEST_SEED, **common)
    profile(kernel_name, paths["test"], samples=N_TEST, seed=TEST_SEED, first=N_FLOOR,
            pass_id=1, **common)
    profile(kernel_name, paths["random"], samples=N_RANDOM, seed=0, **common)
    for n in PR_NS:
        paths[f"pr{n}"] = base.with_name(base.name + f"__pr{n}_v{PLANNER_VERSION}.csv")
        profile(kernel_name, paths[f"pr{n}"], samples=n, sampler="pr", seed=0, **common)
    log(f"  measured {kernel_name}/{variant} in {time.perf_counter() - t0:.0f}s")
    return paths


def fit_predict(train: pd.DataFrame, test: pd.DataFrame, params, complexity, steps, seed):
    m = AugmentedNNRegressor(complexity=complexity, parameters=params, seed=seed,
                             steps=steps or None)
    m.fit(train[params], train["runtime_s"].to_numpy())
    return m.predict(test[params]), m


def study(kernel_name, variant, paths, seeds, hw_id, log) -> list[dict]:
    k = get_kernel(kernel_name)
    params = k.param_names
    comp = k.complexity_for(variant)
    test = load(paths["test"], k, variant)
    again = load(paths["test"], k, variant, pass_id=1)
    both = test.merge(again[["point", "runtime_s"]], on="point", suffixes=("", "_2"))
    floor = mape(both["runtime_s_2"].to_numpy(), both["runtime_s"].to_numpy())
    y = test["runtime_s"].to_numpy()
    rows = []

    def record(method, n, train, steps, fits=()):
        scores = []
        for s in seeds:
            pred, _ = fit_predict(train, test, params, comp, steps, s)
            scores.append(mape(pred, y))
        rows.append({"kernel": kernel_name, "variant": variant, "hardware": hw_id,
                     "method": method, "n_measured": int(n), "mape": float(np.mean(scores)),
                     "mape_std": float(np.std(scores)), "seeds": len(seeds),
                     "steps": ";".join(f"{a}:{b}" for a, b in (steps or {}).items()),
                     "noise_floor": floor, "n_test": len(test)})
        log(f"  {kernel_name}/{variant} {method:<8} n={n:<4} MAPE {np.mean(scores):6.2f}% "
            f"(+-{np.std(scores):.2f}) steps={steps or {}}  floor {floor:.2f}%")

    rnd = load(paths["random"], k, variant)
    for n in RANDOM_NS:
        record("random", n, rnd.iloc[:n], None)
    for n in PR_NS:
        pr = load(paths[f"pr{n}"], k, variant)
        sweepable = [p.name for p in k.params if p.kind == "int"]
        steps, fits = detect_steps(pr, params, comp, sweepable)
        record("pr", len(pr), pr, None)
        record("pr_steps", len(pr), pr, steps, fits)
    return rows


def summary(df: pd.DataFrame) -> pd.DataFrame:
    out = []
    for (k, v, h), g in df.groupby(["kernel", "variant", "hardware"], sort=False):
        bar = float(g[(g.method == "random") & (g.n_measured == N_RANDOM)]["mape"].iloc[0])
        row = {"kernel": k, "variant": v, "hardware": h, "random250_mape": bar,
               "noise_floor": float(g["noise_floor"].iloc[0])}
        for method in ("random", "pr", "pr_steps"):
            gm = g[g.method == method].sort_values("n_measured")
            ok = gm[gm["mape"] <= bar]
            row[f"{method}_points_needed"] = int(ok["n_measured"].min()) if len(ok) else None
            at100 = gm[gm["n_measured"] <= 100]
            row[f"{method}_best_mape_le100"] = float(at100["mape"].min()) if len(at100) else None
        steps = g[g.method == "pr_steps"]["steps"]
        row["steps_detected"] = steps.iloc[-1] if len(steps) else ""
        out.append(row)
    return pd.DataFrame(out)


def _counts(df: pd.DataFrame, col: str, what: str) -> str:
    """``what`` with the number(s) in column ``col`` of ``df``: "3 training seeds"."""
    vals = sorted(set(df[col].astype(int))) if col in df.columns else []
    return f"{'/'.join(map(str, vals)) or 'n/a'} {what}"


def plot(df: pd.DataFrame, path: Path, csv: Path | None = None) -> None:
    """The figure of ``df`` (the rows of ``csv``, by default sampling.csv beside ``path``)
    as ``path``, a PNG written atomically; the measurements are named as cached under
    ``data/<hardware>/`` beside the CSV (where main() keeps them)."""
    from annpred.study.plots import save_png, shown_path

    import textwrap

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    combos = list(df.groupby(["kernel", "variant"], sort=False).groups)
    width = max(6.5, 4.2 * len(combos))  # inches: room for the title and the paths below
    fig, axes = plt.subplots(1, len(combos), figsize=(width, 4.3), squeeze=False)
    for ax, (k, v) in zip(axes[0], combos):
        g = df[(df.kernel == k) & (df.variant == v)]
        for method, style in (("random", "o-"), ("pr", "s-"), ("pr_steps", "^-")):
            gm = g[g.method == method].sort_values("n_measured")
            ax.errorbar(gm["n_measured"], gm["mape"], yerr=gm["mape_std"], fmt=style,
                        label=method, capsize=2)
        bar = g[(g.method == "random") & (g.n_measured == N_RANDOM)]["mape"].iloc[0]
        ax.axhline(bar, color="grey", ls="--", lw=0.8, label="random @250")
        ax.axhline(g["noise_floor"].iloc[0], color="black", ls=":", lw=0.8, label="noise floor")
        ax.set_title(f"{k}/{v}", fontsize=10)
        ax.set_xlabel("measured points (sweeps included)")
        ax.set_ylabel("test MAPE (%)")
        ax.set_ylim(bottom=0)
    hws = sorted(df["hardware"].unique()) if "hardware" in df else []
    csv = Path(csv) if csv is not None else Path(path).with_name("sampling.csv")
    title = (f"Test MAPE of NN+C (< 75 parameters, mean +- std of "
             f"{_counts(df, 'seeds', 'training seeds')}) on {_counts(df, 'n_test', 'held-out')} "
             "random points against measured points: random sampling vs performance "
             "representatives (pr) vs pr with step-aware features; "
             f"{', '.join(hws) or 'this machine'}")
    # about 12 characters an inch at this size (18 in the note's); paths kept whole
    fig.suptitle(textwrap.fill(title, max(40, int(width * 12)), break_on_hyphens=False),
                 fontsize=10)
    handles, labels = axes[0][0].get_legend_handles_labels()
    data = ", ".join(f"{shown_path(csv.parent / 'data' / h, HERE.parent)}/" for h in hws) or "n/a"
    note = textwrap.fill(f"data: {data} (cached measurements); results: {shown_path(csv, HERE.parent)}",
                         max(40, int(width * 18)), break_on_hyphens=False,
                         break_long_words=False)
    note_in = 0.1 * (note.count("\n") + 1) + 0.05  # inches at the bottom: the note, then
    ncol = min(len(labels), max(2, len(combos)))  # the legend (one row under a wide figure)
    legend_in = 0.2 * -(-len(labels) // ncol) + 0.15
    h = fig.get_figheight()
    fig.text(0.5, 0.01, note, ha="center", va="bottom", fontsize=6)
    fig.legend(handles, labels, loc="lower center", ncol=ncol, fontsize=8,
               bbox_to_anchor=(0.5, note_in / h))
    fig.tight_layout(rect=(0, (note_in + legend_in) / h, 1, 1))

    save_png(fig, path, dpi=120)
    plt.close(fig)


def _protocol_min_time(max_runs: int = 100_000) -> None:
    """Make every measurement last at least min_time, as the protocol says. annpred.measure
    stops at max_runs=200 runs, so a 1 us kernel is timed for only 0.2 ms, which one
    preemption on a busy 2-core machine spoils; the study lifts that cap."""
    import functools

    from annpred.measure import protocol as _m

    if not getattr(_m.measure, "_study", False):
        wrapped = functools.partial(_m.measure, max_runs=max_runs)
        wrapped._study = True
        _m.measure = wrapped


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--remeasure", action="store_true", help="delete cached measurements")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seeds", type=int, default=3, help="training seeds per point")
    ap.add_argument("--only", help="kernel/variant to run (repeatable, comma-separated)")
    ap.add_argument("--out", default=str(HERE / "results"))
    ap.add_argument("--replot", action="store_true",
                    help="only redraw sampling.png from the sampling.csv in --out")
    args = ap.parse_args(argv)
    if args.replot:
        out = Path(args.out)
        if not (out / "sampling.csv").is_file():
            raise SystemExit(f"sampling.py: no {out / 'sampling.csv'} to replot (run the "
                             "study first, or give the --out that holds it)")
        plot(pd.read_csv(out / "sampling.csv"), out / "sampling.png")
        return 0
    _protocol_min_time()
    for kern in _study_kernels().KERNELS:
        register_kernel(kern, replace=True)
    hw_id = hw.cpu_id(args.threads)
    out = Path(args.out)
    data = out / "data" / hw_id
    if args.remeasure and data.exists():
        shutil.rmtree(data)
    data.mkdir(parents=True, exist_ok=True)
    only = set(args.only.split(",")) if args.only else None
    t0 = time.perf_counter()

    def log(msg):
        print(f"[{time.perf_counter() - t0:6.0f}s] {msg}", flush=True)

    rows = []
    for kernel_name, variant, _ in STUDY:
        if only and f"{kernel_name}/{variant}" not in only:
            continue
        paths = measure_all(kernel_name, variant, data, args.threads, log)
        rows += study(kernel_name, variant, paths, list(range(args.seeds)), hw_id, log)
    df = pd.DataFrame(rows)
    suffix = "" if not only else "_partial"
    summ = summary(df)
    atomic_write_many({out / f"sampling{suffix}.csv": df.to_csv(index=False, float_format="%.4g"),
                       out / f"sampling_summary{suffix}.csv":
                           summ.to_csv(index=False, float_format="%.4g")})
    plot(df, out / f"sampling{suffix}.png", out / f"sampling{suffix}.csv")
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(summ.to_string(index=False))
    log(f"wrote {out / f'sampling{suffix}.csv'}")
    return 0


if __name__ == "__main__":
    from annpred.cli.app import run_script

    # the measurements are cached as they are made (the fits are redone)
    sys.exit(run_script(main, interrupted="rerun the same command to resume (measurements "
                        "so far are kept)"))
