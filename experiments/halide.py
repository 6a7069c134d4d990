"""Compile-time Halide schedule selection vs Halide's autoschedulers, on this machine.

    python experiments/halide.py            # reuse committed profiles + models
    python experiments/halide.py --profile  # re-profile, retrain, compare

For each pipeline (blur, matmul, unsharp) and each of its comparison sizes, in one run:
- ``annpred``: the predicted best of N candidate schedules (``select_schedule``),
- ``mullapudi2016``, ``adams2019``, ``li2018``: Halide's autoschedulers, with the estimates of
  every input and the output set to the size and ``parallelism`` = the thread count,
- ``default``: Halide's default schedule (everything inlined into a serial root loop),
- ``empirical_best``: the fastest of the same N candidates after benchmarking all of them.
All methods are then timed again together (``--rounds`` rounds, shuffled order, median of the
per-round medians) so that no method's number carries the selection bias of the sweep.

``tuning_s`` is the cost of *deciding* the schedule: annpred = features + prediction of all
candidates; empirical_best = compiling and benchmarking all candidates at that size;
autoschedulers = ``apply_autoscheduler``; default = 0. The final JIT compile of the chosen
schedule (the same for every method, ~0.1 s) is reported separately as ``compile_s``.

Writes experiments/results/halide.csv (one row per pipeline x size x method),
halide_candidates.csv (the sweep: predicted and measured seconds of every candidate),
halide.md and halide.png. Profiles live in trained/<hw>/data/halide_<pipeline>.csv and models
in trained/<hw>/halide/<pipeline>.json.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
# this script is named halide.py: keep its folder off sys.path so `import halide` finds Halide
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(ROOT))

from annpred.spec import hardware as hw  # noqa: E402
from annpred.threads import fix_threads  # noqa: E402

METHODS = ["annpred", "mullapudi2016", "adams2019", "li2018", "default", "empirical_best"]
AUTOS = ["mullapudi2016", "adams2019", "li2018"]


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pipelines", default="blur,matmul,unsharp")
    ap.add_argument("--profile", action="store_true",
                    help="re-profile the training data (otherwise reuse committed CSVs)")
    ap.add_argument("--retrain", action="store_true", help="retrain models even if present")
    ap.add_argument("--candidates", type=int, default=128)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=5, help="head-to-head timing rounds")
    ap.add_argument("--sizes", type=int, default=None,
                    help="use only the first N comparison sizes per pipeline")
    ap.add_argument("--trained", default=str(ROOT / "trained"))
    ap.add_argument("--out", default=str(ROOT / "experiments" / "results"))
    ap.add_argument("--quiet", action="store_true", help="no progress bars")
    ap.add_argument("--gpu", action="store_true",
                    help="also compare on CUDA (Anderson2021) when a GPU is present; writes "
                         "halide_gpu.csv (skipped, with a message, without a GPU)")
    return ap.parse_args(argv)


def ensure_model(name, args, log):
    from annpred.halide import select as sel
    from annpred.halide.pipelines import get
    from annpred.halide.profile import noise_floor, profile_pipeline

    p = get(name)
    data = sel.data_path(name, args.trained, args.threads)
    mpath = Path(args.trained) / hw.cpu_id(args.threads) / "halide" / f"{name}.json"
    info = {}
    if args.profile or not data.exists():
        t0 = time.perf_counter()
        profile_pipeline(p, threads=args.threads, out=data, progress=not args.quiet)
        info["profile_s"] = time.perf_counter() - t0
        log(f"[{name}] profiled into {data} in {info['profile_s']:.0f} s")
    df = pd.read_csv(data)
    csv_sha = hashlib.sha256(data.read_bytes()).hexdigest()
    stale = True
    if mpath.exists():
        stale = json.loads(mpath.read_text())["train"].get("csv_sha256") != csv_sha
    info["noise_floor_pct"] = noise_floor(df, p.size_names)
    info["n_rows"] = int((df["pass"] == 1).sum())
    info["n_schedules"] = int(df["variant"].nunique())
    if args.profile or args.retrain or stale:
        t0 = time.perf_counter()
        model = sel.train_model(p, df)
        info["train_s"] = time.perf_counter() - t0
        sel.save_schedule_model(model, p, mpath, args.threads,
                                extra={"noise_floor_pct": info["noise_floor_pct"],
                                       "csv": data.name, "csv_sha256": csv_sha})
        log(f"[{name}] trained {mpath} ({model.n_params_} parameters, val MAPE "
            f"{model.val_mape_:.1f}%) in {info['train_s']:.0f} s")
    model = sel.load_schedule_model(p, mpath, args.threads)
    info["val_mape_pct"] = model.val_mape_
    info["n_params"] = model.n_params_
    return model, info


def run_size(p, sizes, model, cands, compiled_cands, args, bar):
    """All methods at one size; returns (method rows, candidate rows)."""
    from annpred.halide.autoschedule import AutoschedulerError, autoschedule
    from annpred.halide.profile import MEASURE
    from annpred.halide.runtime import compile_schedule
    from annpred.halide.select import select_schedule
    from annpred.halide.space import key_of
    from annpred.measure.protocol import measure

    label = p.size_label(sizes)
    inputs, out = p.make_inputs(sizes, seed=1), p.make_output(sizes)
    ref = p.reference(inputs) if math.prod(sizes.values()) <= 2048 ** 2 else None
    methods = {}

    chosen = select_schedule(p, sizes, cands, model=model, threads=args.threads)
    methods["annpred"] = chosen
    for m in AUTOS:
        try:
            methods[m] = autoschedule(p, sizes, m, parallelism=args.threads)
        except AutoschedulerError as exc:
            print(f"warning: {exc}", file=sys.stderr)
            methods[m] = None
    methods["default"] = compile_schedule(p, None)

    # empirical: benchmark every candidate (compile cost counted once per candidate)
    t0 = time.perf_counter()
    sweep = []
    pred = chosen.info["candidates"]
    order = np.random.default_rng(hash(label) % 2**32).permutation(len(cands))
    for i in order:
        c = compiled_cands[i]
        t = measure(c.bind(inputs, out), **MEASURE)
        sweep.append((int(i), t.median_s))
        bar.update(1)
    bench_s = time.perf_counter() - t0
    compile_all_s = sum(c.compile_s for c in compiled_cands)
    sweep.sort()
    measured = np.array([s for _, s in sweep])
    best_i = int(np.argmin(measured))
    emp = compiled_cands[best_i]
    methods["empirical_best"] = emp
    emp_tuning = compile_all_s + bench_s
    pick_i = next(i for i, c in enumerate(cands) if key_of(c) == key_of(chosen.schedule))

    if ref is not None:  # every method computes the same result
        for m, c in methods.items():
            if c is not None:
                c.bind(inputs, out)()
                if not np.allclose(out, ref, rtol=1e-3, atol=1e-3):
                    raise AssertionError(f"{p.name} {label}: {m} computes a wrong result")

    # head-to-head: all methods together, shuffled, several rounds
    rng = np.random.default_rng(7)
    times = {m: [] for m in methods if methods[m] is not None}
    cvs = {m: [] for m in times}
    for _ in range(args.rounds):
        for m in rng.permutation(list(times)):
            t = measure(methods[m].bind(inputs, out), **MEASURE)
            times[m].append(t.median_s)
            cvs[m].append(t.cv)
    rows = []
    for m in METHODS:
        c = methods.get(m)
        tuning = {"annpred": chosen.tuning_s, "empirical_best": emp_tuning,
                  "default": 0.0}.get(m, c.tuning_s if c is not None else float("nan"))
        rows.append({
            "pipeline": p.name, "size": label, "method": m,
            "runtime_s": float(np.median(times[m])) if m in times else float("nan"),
            "tuning_s": tuning,
            "compile_s": c.compile_s if c is not None else float("nan"),
            "runtime_cv": float(np.median(cvs[m])) if m in cvs else float("nan"),
            "schedule": (key_of(c.schedule) if c is not None and c.schedule is not None
                         else m),
            "predicted_s": chosen.info["predicted_s"] if m == "annpred" else float("nan"),
            "sweep_s": (measured[pick_i] if m == "annpred" else
                        measured[best_i] if m == "empirical_best" else float("nan")),
            "sweep_rank": (int(np.sum(measured < measured[pick_i])) + 1 if m == "annpred"
                           else 1 if m == "empirical_best" else -1),
            "in_range": chosen.info["in_range"],
            "n_candidates": len(cands), "threads": args.threads,
            "loadavg_1min": os.getloadavg()[0],
            "hardware": hw.cpu_id(args.threads),
        })
    cand_rows = [{"pipeline": p.name, "size": label, "schedule": key_of(cands[i]),
                  "predicted_s": pred[i]["predicted_s"], "measured_s": measured[i],
                  "chosen": i == pick_i} for i in range(len(cands))]
    return rows, cand_rows


def main(argv=None) -> int:
    args = parse_args(argv)
    fix_threads(args.threads)
    from tqdm import tqdm

    from annpred.halide.pipelines import get
    from annpred.halide.runtime import compile_schedule
    from annpred.halide.select import candidates_for

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    names = [n.strip() for n in args.pipelines.split(",") if n.strip()]
    log = (lambda s: None) if args.quiet else (lambda s: tqdm.write(s))
    rows, cand_rows, model_info = [], [], {}
    for name in names:
        p = get(name)
        model, info = ensure_model(name, args, log)
        model_info[name] = info
        cands = candidates_for(p, args.candidates)
        compiled = [compile_schedule(p, c) for c in tqdm(cands, desc=f"compile {name}",
                                                          disable=args.quiet, leave=False)]
        sizes = [p.parse_size(s) for s in p.compare_sizes[:args.sizes]]
        bar = tqdm(total=len(sizes) * len(cands), desc=f"compare {name}", disable=args.quiet,
                   leave=False)
        for sz in sizes:
            r, cr = run_size(p, sz, model, cands, compiled, args, bar)
            rows += r
            cand_rows += cr
            best_auto = min(x["runtime_s"] for x in r if x["method"] in AUTOS)
            ours = next(x for x in r if x["method"] == "annpred")
            log(f"[{name}] {p.size_label(sz)}: annpred {ours['runtime_s'] * 1e3:.3f} ms, best "
                f"autoscheduler {best_auto * 1e3:.3f} ms, speedup "
                f"{best_auto / ours['runtime_s']:.2f}x")
        bar.close()
    df = pd.DataFrame(rows)
    df.to_csv(out / "halide.csv", index=False)
    pd.DataFrame(cand_rows).to_csv(out / "halide_candidates.csv", index=False)
    total = time.perf_counter() - t_start
    write_report(df, pd.DataFrame(cand_rows), model_info, args, total, out)
    plot(df, out / "halide.png")
    if args.gpu:
        run_gpu(names, args, out, log)
    log(f"wrote {out / 'halide.csv'}, halide.md, halide.png in {total:.0f} s")
    return 0


def run_gpu(names, args, out, log):
    from annpred.halide.gpu import NoCudaError, compare_size, profile_gpu, train_gpu
    from annpred.halide.pipelines import get

    if not hw.cuda_available():
        log("no CUDA GPU here: skipping the GPU comparison (Anderson2021)")
        return
    rows = []
    for name in names:
        p = get(name)
        try:
            df = profile_gpu(p, progress=not args.quiet)
            df.to_csv(Path(args.trained) / "data" / f"halide_{name}_{hw.cuda_id()}.csv",
                      index=False)
            model = train_gpu(p, df)
            for sz in p.compare_sizes[:args.sizes]:
                rows += compare_size(p, p.parse_size(sz), candidates=args.candidates,
                                     rounds=args.rounds, model=model)
        except NoCudaError as exc:
            log(f"GPU comparison skipped: {exc}")
            return
    pd.DataFrame(rows).to_csv(out / "halide_gpu.csv", index=False)
    log(f"wrote {out / 'halide_gpu.csv'}")


# -- report -------------------------------------------------------------------------------

def summarize(df: pd.DataFrame) -> pd.DataFrame:
    """One row per pipeline x size: runtimes per method, best autoscheduler, speedups."""
    wide = df.pivot_table(index=["pipeline", "size"], columns="method", values="runtime_s",
                          sort=False)
    wide["best_auto"] = wide[AUTOS].min(axis=1)
    wide["best_auto_name"] = wide[AUTOS].idxmin(axis=1)
    wide["speedup"] = wide["best_auto"] / wide["annpred"]
    wide["emp_speedup"] = wide["best_auto"] / wide["empirical_best"]
    wide["gap"] = wide["annpred"] / wide["empirical_best"]
    return wide.reset_index()


def gmean(x) -> float:
    x = np.asarray(list(x), float)
    return float(np.exp(np.mean(np.log(x))))


def write_report(df, cands, model_info, args, total_s, out):
    from scipy.stats import spearmanr

    w = summarize(df)
    tun = df.pivot_table(index=["pipeline", "size"], columns="method", values="tuning_s",
                         sort=False).reset_index()
    L = ["# Halide schedule selection vs Halide's autoschedulers", ""]
    L.append(f"Machine `{df['hardware'].iloc[0]}`, {args.threads} threads (HL_NUM_THREADS, "
             f"autoscheduler parallelism={args.threads}), host JIT target, one run of "
             f"`experiments/halide.py` ({total_s / 60:.1f} min). {args.candidates} candidate "
             "schedules per pipeline (sampled from its schedule space with a seed different "
             "from the profiling seed). Runtimes: median of "
             f"{args.rounds} shuffled head-to-head rounds, each the protocol's median.")
    L.append("")
    L.append("## Headline")
    L.append("")
    L.append("| pipeline | geomean speedup of annpred over best autoscheduler | max | min | "
             "geomean speedup of empirical best | geomean annpred / empirical best | "
             "annpred picks within 10% of empirical best |")
    L.append("|---|---|---|---|---|---|---|")
    for name, g in w.groupby("pipeline", sort=False):
        L.append(f"| {name} | **{gmean(g['speedup']):.2f}x** | {g['speedup'].max():.2f}x | "
                 f"{g['speedup'].min():.2f}x | {gmean(g['emp_speedup']):.2f}x | "
                 f"{gmean(g['gap']):.3f} | {int((g['gap'] <= 1.10).sum())}/{len(g)} |")
    L.append(f"| all | **{gmean(w['speedup']):.2f}x** | {w['speedup'].max():.2f}x | "
             f"{w['speedup'].min():.2f}x | {gmean(w['emp_speedup']):.2f}x | "
             f"{gmean(w['gap']):.3f} | {int((w['gap'] <= 1.10).sum())}/{len(w)} |")
    L.append("")
    L.append("## Runtimes (ms) and speedups")
    L.append("")
    L.append("| pipeline | size | annpred | mullapudi2016 | adams2019 | li2018 | default | "
             "empirical best | best autoscheduler | speedup vs best auto | annpred / emp. best "
             "| pick's rank in sweep |")
    L.append("|---|---|---|---|---|---|---|---|---|---|---|---|")
    ranks = df[df["method"] == "annpred"].set_index(["pipeline", "size"])["sweep_rank"]
    for r in w.itertuples():
        def ms(v):
            return "n/a" if not np.isfinite(v) else f"{v * 1e3:.3f}"
        L.append(f"| {r.pipeline} | {r.size} | {ms(r.annpred)} | {ms(r.mullapudi2016)} | "
                 f"{ms(r.adams2019)} | {ms(r.li2018)} | {ms(r.default)} | "
                 f"{ms(r.empirical_best)} | {r.best_auto_name} | **{r.speedup:.2f}x** | "
                 f"{r.gap:.2f} | {ranks[(r.pipeline, r.size)]}/{args.candidates} |")
    L.append("")
    L.append("## Tuning time (s): cost of deciding the schedule")
    L.append("")
    L.append("| pipeline | size | annpred (predict all) | empirical (compile + benchmark all) "
             "| mullapudi2016 | adams2019 | li2018 | empirical / annpred |")
    L.append("|---|---|---|---|---|---|---|---|")
    for r in tun.itertuples():
        L.append(f"| {r.pipeline} | {r.size} | {r.annpred:.4f} | {r.empirical_best:.1f} | "
                 f"{r.mullapudi2016:.3f} | {r.adams2019:.2f} | {r.li2018:.4f} | "
                 f"{r.empirical_best / r.annpred:,.0f}x |")
    ratio = tun["empirical_best"] / tun["annpred"]
    comp = df[df["method"] == "annpred"]["compile_s"]
    L.append("")
    L.append(f"Prediction-based selection is {ratio.min():,.0f}x to {ratio.max():,.0f}x "
             f"(geomean {gmean(ratio):,.0f}x) cheaper than benchmarking the candidates. "
             "Counting the one JIT compile of the chosen schedule (median "
             f"{comp.median():.2f} s, paid by every method) in annpred's cost, the ratio is "
             f"{gmean(tun['empirical_best'] / (tun['annpred'] + comp.to_numpy())):,.0f}x "
             "(geomean). Per autoscheduler, geomean tuning time: "
             + ", ".join(f"{m} {gmean(tun[m]):.3g} s" for m in AUTOS)
             + f"; annpred {gmean(tun['annpred']) * 1e3:.2f} ms.")
    L.append("")
    L.append("## Models")
    L.append("")
    L.append("| pipeline | profiled points | schedules | parameters | val MAPE | noise floor "
             "| Spearman rho of predicted vs measured candidates (median over sizes) |")
    L.append("|---|---|---|---|---|---|---|")
    for name, info in model_info.items():
        c = cands[cands["pipeline"] == name]
        rhos = [spearmanr(g["predicted_s"], g["measured_s"])[0] for _, g in c.groupby("size")]
        nf = info.get("noise_floor_pct")
        L.append(f"| {name} | {info['n_rows']} | {info['n_schedules']} | {info['n_params']} | "
                 f"{info['val_mape_pct']:.1f}% | {'n/a' if nf is None else f'{nf:.1f}%'} | "
                 f"{np.median(rhos):.2f} |")
    L.append("")
    L.append("## Where annpred loses, and why")
    L.append("")
    lost = w[w["speedup"] < 1.0]
    if lost.empty:
        L.append("annpred's pick is at least as fast as the best autoscheduler everywhere.")
    for r in lost.itertuples():
        why = ("the model mis-ranked the candidates: the empirical best of the same set beats "
               f"{r.best_auto_name} ({r.emp_speedup:.2f}x), annpred's pick is "
               f"{r.gap:.2f}x slower than it" if r.emp_speedup >= 1.0 else
               f"no candidate in the set beats {r.best_auto_name} (empirical best "
               f"{r.emp_speedup:.2f}x): the schedule space / candidate count is the limit")
        L.append(f"- **{r.pipeline} {r.size}**: {r.speedup:.2f}x vs {r.best_auto_name}; {why}.")
    L.append("")
    L.append("Discussion: see the closing notes in `halide_notes.md` (written by hand after the "
             "run this table came from).")
    L.append("")
    L.append("Rerun: `python experiments/halide.py` (add `--profile` to "
             "re-profile and retrain).")
    (out / "halide.md").write_text("\n".join(L) + "\n")


def plot(df, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    w = summarize(df)
    tun = df.pivot_table(index=["pipeline", "size"], columns="method", values="tuning_s",
                         sort=False).reset_index()
    names = list(dict.fromkeys(w["pipeline"]))
    fig, axes = plt.subplots(1, len(names) + 1, figsize=(5 * (len(names) + 1), 4.2))
    colors = {"annpred": "C3", "empirical_best": "C2", "mullapudi2016": "C0",
              "adams2019": "C1", "li2018": "C4", "default": "C7"}
    for ax, name in zip(axes, names):
        g = w[w["pipeline"] == name]
        x = np.arange(len(g))
        width = 0.14
        for j, m in enumerate(METHODS):
            ax.bar(x + (j - 2.5) * width, g["best_auto"] / g[m], width, label=m,
                   color=colors[m])
        ax.axhline(1.0, color="k", lw=0.8)
        ax.set_yscale("log")
        ax.set_xticks(x, g["size"], rotation=30, fontsize=8)
        ax.set_title(f"{name}: speedup over best autoscheduler")
    axes[0].legend(fontsize=7)
    ax = axes[-1]
    for m in ["annpred", "empirical_best"] + AUTOS:
        ax.scatter(np.arange(len(tun)), tun[m].clip(lower=1e-5), label=m, color=colors[m], s=14)
    ax.set_yscale("log")
    ax.set_ylabel("tuning time (s)")
    ax.set_xticks(np.arange(len(tun)), tun["pipeline"] + " " + tun["size"], rotation=90,
                  fontsize=6)
    ax.set_title("tuning time per decision")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    sys.exit(main())
