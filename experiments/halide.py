"""Compile-time Halide schedule selection vs Halide's autoschedulers, on this machine.

    python experiments/halide.py                 # every pipeline, resumable (see below)
    python experiments/halide.py --pipelines blur,harris --sizes 4

For each pipeline and each of its comparison sizes, in one run:
- ``annpred``: the predicted best of N candidate schedules (``select_schedule``),
- ``mullapudi2016``, ``adams2019``, ``li2018``: Halide's autoschedulers, with the estimates of
  every input and the output set to the size and ``parallelism`` = the thread count,
- ``default``: Halide's default schedule (everything inlined into a serial root loop; skipped
  where that is impractical, e.g. stencil_chain),
- ``empirical_best``: the fastest of the same N candidates after benchmarking all of them.
All methods are then timed again together (``--rounds`` rounds, shuffled order, median of the
per-round medians) so that no method's number carries the selection bias of the sweep.

``predicted_s`` is the model's prediction (annpred's pick, and the empirical best, which is
in the same candidate set); ``tuning_s`` is the cost of *deciding* the schedule: annpred =
features + prediction of all candidates; empirical_best = compiling and benchmarking all
candidates at that size; autoschedulers = ``apply_autoscheduler``; default = 0. The final JIT
compile of the chosen schedule (~0.1 s, every method pays it) is ``compile_s``.

Models come from this machine's profiles, ``trained/halide/<hardware>/data/<pipeline>.csv``
(``annpred halide profile PIPELINE`` measures one), and are retrained when missing or older
than their CSV. The run is resumable: finished (pipeline, size) pairs are kept in
``<--out>/halide_partial.csv`` (default ``experiments/results/``), the settings they were
made with (--candidates, --rounds, --threads, the machine) in ``halide_partial_settings.json``
beside it; a rerun with other settings stops with a message instead of mixing them.
``--max-minutes`` stops after the size that crosses it, Ctrl-C at once (run the same command
again to continue; ``--fresh`` starts over). When every pair is done it writes, atomically,
``<--out>/halide.csv`` (one row per pipeline x size x method), halide_candidates.csv
(predicted and measured seconds of every candidate, its compile and sweep time), halide.md
and halide.png.
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

from annpred.files import atomic_write_text  # noqa: E402
from annpred.spec import hardware as hw  # noqa: E402
from annpred.threads import fix_threads  # noqa: E402

METHODS = ["annpred", "mullapudi2016", "adams2019", "li2018", "default", "empirical_best"]
AUTOS = ["mullapudi2016", "adams2019", "li2018"]


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pipelines", default=None, help="comma-separated (default: all)")
    ap.add_argument("--retrain", action="store_true", help="retrain models even if present")
    ap.add_argument("--candidates", type=int, default=128)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=5, help="head-to-head timing rounds")
    ap.add_argument("--sizes", type=int, default=None,
                    help="use only the first N comparison sizes per pipeline")
    ap.add_argument("--max-minutes", type=float, default=None,
                    help="stop after the size that crosses this (rerun to continue)")
    ap.add_argument("--fresh", action="store_true", help="discard finished sizes, start over")
    ap.add_argument("--report", action="store_true",
                    help="only write the report from the finished sizes")
    ap.add_argument("--trained", default=str(ROOT / "trained"))
    ap.add_argument("--out", default=str(ROOT / "experiments" / "results"))
    ap.add_argument("--quiet", action="store_true", help="no progress bars")
    ap.add_argument("--gpu", action="store_true",
                    help="also compare on CUDA (Anderson2021) when a GPU is present; writes "
                         "halide_gpu.csv (skipped, with a message, without a GPU)")
    return ap.parse_args(argv)


def _busy_seconds(timestamps, gap: float = 120.0) -> float:
    """Time spent measuring: the sum of the intervals between consecutive rows, leaving out
    breaks longer than ``gap`` seconds (a profile resumed hours later, or extended by
    refinement in another session)."""
    if len(timestamps) < 2:
        return 0.0
    ts = np.sort(pd.to_datetime(timestamps).to_numpy()).astype("datetime64[s]").astype(float)
    d = np.diff(ts)
    return float(d[d <= gap].sum())


def ensure_model(name, args, log):
    from annpred.halide import select as sel
    from annpred.halide.pipelines import get
    from annpred.halide.profile import load_profile, noise_floor

    p = get(name)
    data = sel.data_path(name, args.trained, args.threads)
    mpath = sel.halide_root(args.trained) / hw.cpu_id(args.threads) / f"{name}.json"
    if not data.exists():
        raise SystemExit(f"no profile of {name} for this machine at {data}: run "
                         f"`annpred halide profile {name} --out {data}` first")
    df = load_profile(data, p)
    csv_sha = hashlib.sha256(data.read_bytes()).hexdigest()
    stale = True
    if mpath.exists():
        stale = json.loads(mpath.read_text())["train"].get("csv_sha256") != csv_sha
    info = {"noise_floor_pct": noise_floor(df, p.size_names),
            "n_rows": int((df["pass"] == 1).sum()), "n_schedules": int(df["variant"].nunique())}
    info["profile_s"] = _busy_seconds(df["timestamp"])
    refine = df["sampler"] == "refine" if "sampler" in df.columns else df["pass"] < 0
    info["refine_s"] = _busy_seconds(df.loc[refine, "timestamp"])
    info["n_refine"] = int(refine.sum())
    if args.retrain or stale:
        t0 = time.perf_counter()
        model, _ = sel.train_pipeline(p, data, mpath, threads=args.threads)
        info["train_s"] = time.perf_counter() - t0
        log(f"[{name}] trained {mpath} ({model.n_params_} parameters, val MAPE "
            f"{model.val_mape_:.1f}%) in {info['train_s']:.0f} s")
    model = sel.load_schedule_model(p, mpath, args.threads)
    info["val_mape_pct"] = model.val_mape_
    info["n_params"] = model.n_params_
    info["tile_steps"] = bool(model.tile_steps_)
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
    if p.default_schedule_ok:
        methods["default"] = compile_schedule(p, None)

    # empirical: benchmark every candidate (compile cost counted once per candidate)
    t0 = time.perf_counter()
    sweep = []
    pred = chosen.info["candidates"]
    order = np.random.default_rng(hash(label) % 2**32).permutation(len(cands))
    bench_each = np.zeros(len(cands))
    for i in order:
        c = compiled_cands[i]
        t1 = time.perf_counter()
        t = measure(c.bind(inputs, out), **MEASURE)
        bench_each[i] = time.perf_counter() - t1
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

    for m, c in methods.items():  # every method runs, and computes the same result
        if c is None:
            continue
        try:
            c.bind(inputs, out)()
        except Exception as exc:  # noqa: BLE001 - an autoscheduler's schedule may fail here
            print(f"warning: {p.name} {label}: {m} failed to run: {exc}", file=sys.stderr)
            methods[m] = None
            continue
        if ref is not None and not np.allclose(out, ref, rtol=1e-3, atol=1e-3):
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
            "predicted_s": (chosen.info["predicted_s"] if m == "annpred" else
                            pred[best_i]["predicted_s"] if m == "empirical_best" else
                            float("nan")),
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
                  "chosen": i == pick_i, "index": i,
                  "compile_s": compiled_cands[i].compile_s, "bench_s": bench_each[i]}
                 for i in range(len(cands))]
    return rows, cand_rows


def main(argv=None) -> int:
    args = parse_args(argv)
    fix_threads(args.threads)
    from tqdm import tqdm

    from annpred.halide.pipelines import PIPELINES, get
    from annpred.halide.runtime import compile_schedule
    from annpred.halide.select import candidates_for

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    part, part_c = out / "halide_partial.csv", out / "halide_candidates_partial.csv"
    if args.fresh:
        for f in (part, part_c, _settings_path(part)):
            f.unlink(missing_ok=True)
    check_settings(part, args)
    done = pd.read_csv(part) if part.exists() else pd.DataFrame()
    t_start = time.perf_counter()
    names = ([n.strip() for n in args.pipelines.split(",") if n.strip()] if args.pipelines
             else sorted(PIPELINES))
    log = (lambda s: None) if args.quiet else (lambda s: tqdm.write(s))
    model_info = {}
    stopped = False
    for name in names:
        p = get(name)
        model, info = ensure_model(name, args, log)
        model_info[name] = info
        sizes = [p.parse_size(s) for s in p.compare_sizes[:args.sizes]]
        todo = [sz for sz in sizes if done.empty or not (
            (done["pipeline"] == name) & (done["size"] == p.size_label(sz))).any()]
        if args.report or not todo:
            continue
        if args.max_minutes is not None and time.perf_counter() - t_start > 60 * args.max_minutes:
            stopped = True
            break
        cands = candidates_for(p, args.candidates)
        compiled = [compile_schedule(p, c) for c in tqdm(cands, desc=f"compile {name}",
                                                          disable=args.quiet, leave=False)]
        bar = tqdm(total=len(todo) * len(cands), desc=f"compare {name}", disable=args.quiet,
                   leave=False)
        for sz in todo:
            r, cr = run_size(p, sz, model, cands, compiled, args, bar)
            _append(part, pd.DataFrame(r))
            _append(part_c, pd.DataFrame(cr))
            best_auto = min(x["runtime_s"] for x in r if x["method"] in AUTOS)
            ours = next(x for x in r if x["method"] == "annpred")
            log(f"[{name}] {p.size_label(sz)}: annpred {ours['runtime_s'] * 1e3:.3f} ms "
                f"(predicted {ours['predicted_s'] * 1e3:.3f}), best autoscheduler "
                f"{best_auto * 1e3:.3f} ms, speedup {best_auto / ours['runtime_s']:.2f}x")
            if args.max_minutes is not None and \
                    time.perf_counter() - t_start > 60 * args.max_minutes:
                stopped = True
                break
        bar.close()
        if stopped:
            break
    if stopped:
        log("stopped at --max-minutes; run the same command again to continue")
        return 0
    df = pd.read_csv(part)
    df = df[df["pipeline"].isin(names)]
    cands_df = pd.read_csv(part_c)
    cands_df = cands_df[cands_df["pipeline"].isin(names)]
    lead = ["pipeline", "size", "method", "runtime_s", "predicted_s", "tuning_s"]
    df = df[lead + [c for c in df.columns if c not in lead]]
    atomic_write_text(out / "halide.csv", df.to_csv(index=False))
    atomic_write_text(out / "halide_candidates.csv", cands_df.to_csv(index=False))
    write_report(df, cands_df, model_info, args, out)
    plot(df, out / "halide.png")
    if args.gpu:
        run_gpu(names, args, out, log)
    log(f"wrote {out / 'halide.csv'}, halide.md, halide.png")
    return 0


SETTINGS = {"candidates": "--candidates", "rounds": "--rounds", "threads": "--threads",
            "hardware": "machine"}  # what the partial results were made with


def _settings_path(part: Path) -> Path:
    return part.with_name(part.stem + "_settings.json")


def _settings(args) -> dict:
    return {"candidates": args.candidates, "rounds": args.rounds, "threads": args.threads,
            "hardware": hw.cpu_id(args.threads)}


def _settings_of_rows(rows: pd.DataFrame, args) -> dict:
    """The settings partial results written before they were stored with them say
    themselves (not the rounds): every pipeline's candidate count is what ``--candidates``
    gives it (fewer where its schedule space is smaller)."""
    from annpred.halide.select import candidates_for

    def one(col):
        vals = sorted(set(rows[col].astype(str))) if col in rows.columns else []
        return "/".join(vals) if vals else None

    was = {"threads": one("threads"), "hardware": one("hardware")}
    if was["threads"] == str(args.threads):
        was["threads"] = args.threads
    was["candidates"] = args.candidates
    for name, g in rows.groupby("pipeline"):
        if set(g["n_candidates"]) != {len(candidates_for(name, args.candidates))}:
            was["candidates"] = "/".join(map(str, sorted(set(rows["n_candidates"]))))
    return {k: v for k, v in was.items() if v is not None}


def check_settings(part: Path, args) -> None:
    """Resume only results made with this run's settings: without partial results, store
    the settings beside them; with some, stop (SystemExit, one message) when they differ."""
    meta, now = _settings_path(part), _settings(args)
    if not part.exists():
        atomic_write_text(meta, json.dumps(now, indent=1) + "\n")
        return
    if meta.exists():
        was = json.loads(meta.read_text())
    else:
        was = _settings_of_rows(pd.read_csv(part), args)
    diff = [f"{SETTINGS[k]} {was[k]} (this run: {now[k]})" for k in now
            if k in was and was[k] != now[k]]
    if diff:
        raise SystemExit(f"halide.py: {part} holds results made with {'; '.join(diff)}: rerun "
                         "with the same settings, or start over with --fresh or another --out")
    if not meta.exists():
        atomic_write_text(meta, json.dumps(now, indent=1) + "\n")


def _append(path: Path, df: pd.DataFrame) -> None:
    """Add finished rows to a partial CSV (rewritten whole, atomically)."""
    old = pd.read_csv(path) if path.exists() else None
    new = df if old is None else pd.concat([old, df], ignore_index=True)
    atomic_write_text(path, new.to_csv(index=False))


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
            atomic_write_text(Path(args.trained) / "data" / f"halide_{name}_{hw.cuda_id()}.csv",
                              df.to_csv(index=False))
            model = train_gpu(p, df)
            for sz in p.compare_sizes[:args.sizes]:
                rows += compare_size(p, p.parse_size(sz), candidates=args.candidates,
                                     rounds=args.rounds, model=model)
        except NoCudaError as exc:
            log(f"GPU comparison skipped: {exc}")
            return
    atomic_write_text(out / "halide_gpu.csv", pd.DataFrame(rows).to_csv(index=False))
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


def candidate_text(df: pd.DataFrame) -> str:
    """How many candidates the rows of ``df`` had: "256 candidates", and the pipelines with
    fewer (a schedule space smaller than --candidates)."""
    n = df.groupby("pipeline", sort=False)["n_candidates"].max().astype(int)
    fewer = n[n < n.max()]
    return f"{n.max()} candidates" + (
        " (" + ", ".join(f"{k} {v}" for k, v in fewer.items()) + ": its whole schedule space)"
        if len(fewer) else "")


def gmean(x) -> float:
    x = np.asarray(list(x), float)
    return float(np.exp(np.mean(np.log(x))))


def write_report(df, cands, model_info, args, out):
    from scipy.stats import spearmanr

    w = summarize(df)
    tun = df.pivot_table(index=["pipeline", "size"], columns="method", values="tuning_s",
                         sort=False).reset_index()
    ours = df[df["method"] == "annpred"].set_index(["pipeline", "size"])
    err = (ours["predicted_s"] - ours["runtime_s"]).abs() / ours["runtime_s"]
    comp = ours["compile_s"]
    cost = (tun.set_index(["pipeline", "size"])["empirical_best"]
            / (tun.set_index(["pipeline", "size"])["annpred"] + comp))
    load = df["loadavg_1min"]
    L = ["# Halide schedule selection vs Halide's autoschedulers", ""]
    L.append(f"Machine `{df['hardware'].iloc[0]}`, {args.threads} threads (HL_NUM_THREADS, "
             f"autoscheduler parallelism={args.threads}), host JIT target. "
             f"{candidate_text(df)} per pipeline (schedules sampled from its schedule "
             "space with a seed different from the profiling seed). Runtimes: median of "
             f"{args.rounds} shuffled head-to-head rounds, each the protocol's median. "
             f"1-minute load average during the runs: {load.min():.2f}-{load.max():.2f}.")
    L.append("")
    L.append("## Headline")
    L.append("")
    L.append("| pipeline | geomean speedup of annpred over best autoscheduler | max | min | "
             "geomean speedup of empirical best | geomean annpred / empirical best | "
             "median abs(predicted - measured) / measured (annpred's picks) |")
    L.append("|---|---|---|---|---|---|---|")
    for name, g in w.groupby("pipeline", sort=False):
        L.append(f"| {name} | **{gmean(g['speedup']):.2f}x** | {g['speedup'].max():.2f}x | "
                 f"{g['speedup'].min():.2f}x | {gmean(g['emp_speedup']):.2f}x | "
                 f"{gmean(g['gap']):.3f} | {100 * err.loc[name].median():.0f}% |")
    L.append(f"| all | **{gmean(w['speedup']):.2f}x** | {w['speedup'].max():.2f}x | "
             f"{w['speedup'].min():.2f}x | {gmean(w['emp_speedup']):.2f}x | "
             f"{gmean(w['gap']):.3f} | {100 * err.median():.0f}% |")
    per_pipe = w.groupby("pipeline", sort=False)["speedup"].apply(gmean)
    L.append("")
    L.append("Targets: annpred above 1.0x the best autoscheduler on every pipeline: "
             f"{'met' if (per_pipe > 1.0).all() else 'missed'} "
             f"({', '.join(f'{k} {v:.2f}x' for k, v in per_pipe.items())}); at least 1.15x "
             f"geomean over all: {'met' if gmean(w['speedup']) >= 1.15 else 'missed'} "
             f"({gmean(w['speedup']):.2f}x); at least 1.7x at its best: "
             f"{'met' if w['speedup'].max() >= 1.7 else 'missed'} ({w['speedup'].max():.2f}x); "
             "median prediction error on the chosen schedules at most 15%: "
             f"{'met' if err.median() <= 0.15 else 'missed'} ({100 * err.median():.1f}%); "
             "selection (prediction + one compile) at least 100x cheaper than benchmarking "
             f"the candidates: {'met' if cost.min() >= 100 else 'missed'} (min "
             f"{cost.min():,.0f}x, geomean {gmean(cost):,.0f}x).")
    L.append("")
    L.append("## Runtimes (ms), predicted next to measured, and speedups")
    L.append("")
    L.append("| pipeline | size | annpred predicted | annpred measured | pred/meas | "
             "mullapudi2016 | adams2019 | li2018 | default | empirical best | "
             "best autoscheduler | speedup vs best auto | annpred / emp. best | "
             "pick's rank in sweep |")
    L.append("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    ranks = ours["sweep_rank"]

    def ms(v):
        return "n/a" if not np.isfinite(v) else f"{v * 1e3:.3f}"
    for r in w.itertuples():
        pr = ours.loc[(r.pipeline, r.size), "predicted_s"]
        L.append(f"| {r.pipeline} | {r.size} | {ms(pr)} | {ms(r.annpred)} | "
                 f"{pr / r.annpred:.2f} | {ms(r.mullapudi2016)} | {ms(r.adams2019)} | "
                 f"{ms(r.li2018)} | {ms(getattr(r, 'default', float('nan')))} | "
                 f"{ms(r.empirical_best)} | {r.best_auto_name} | **{r.speedup:.2f}x** | "
                 f"{r.gap:.2f} | {ranks[(r.pipeline, r.size)]}/"
                 f"{int(ours.loc[(r.pipeline, r.size), 'n_candidates'])} |")
    L.append("")
    L.append("## Tuning time (s): cost of deciding the schedule")
    L.append("")
    L.append("| pipeline | size | annpred (predict all) | annpred + one compile | empirical "
             "(compile + benchmark all) | mullapudi2016 | adams2019 | li2018 | empirical / "
             "(annpred + compile) |")
    L.append("|---|---|---|---|---|---|---|---|---|")
    for r in tun.itertuples():
        c = comp.loc[(r.pipeline, r.size)]
        L.append(f"| {r.pipeline} | {r.size} | {r.annpred:.4f} | {r.annpred + c:.3f} | "
                 f"{r.empirical_best:.1f} | {r.mullapudi2016:.3f} | {r.adams2019:.2f} | "
                 f"{r.li2018:.4f} | {(r.empirical_best / (r.annpred + c)):,.0f}x |")
    ratio = tun["empirical_best"] / tun["annpred"]
    L.append("")
    L.append(f"Prediction alone is {gmean(ratio):,.0f}x cheaper (geomean) than benchmarking the "
             f"candidates; counting the one JIT compile of the chosen schedule (median "
             f"{comp.median():.2f} s) {gmean(cost):,.0f}x (min {cost.min():,.0f}x). Geomean "
             "tuning time per autoscheduler: "
             + ", ".join(f"{m} {gmean(tun[m]):.3g} s" for m in AUTOS)
             + f"; annpred {gmean(tun['annpred']) * 1e3:.2f} ms.")
    L += candidate_count_section(df, cands, comp, tun, args)
    L.append("")
    L.append("## Models")
    L.append("")
    L.append("| pipeline | profiled points (refinement) | schedules | profiling time "
             "(refinement) | parameters | "
             "val MAPE | noise floor | tile-step features | Spearman rho of predicted vs "
             "measured candidates (median over sizes) | median pred/meas over all candidates |")
    L.append("|---|---|---|---|---|---|---|---|---|---|")
    for name, info in model_info.items():
        c = cands[cands["pipeline"] == name]
        if c.empty:
            continue
        rhos = [spearmanr(g["predicted_s"], g["measured_s"])[0] for _, g in c.groupby("size")]
        nf = info.get("noise_floor_pct")
        L.append(f"| {name} | {info['n_rows']} ({info.get('n_refine', 0)}) | "
                 f"{info['n_schedules']} | {info['profile_s'] / 60:.1f} min "
                 f"({info.get('refine_s', 0.0) / 60:.1f} min) | {info['n_params']} | "
                 f"{info['val_mape_pct']:.1f}% | {'n/a' if nf is None else f'{nf:.1f}%'} | "
                 f"{'yes' if info.get('tile_steps') else 'no'} | {np.median(rhos):.2f} | "
                 f"{np.median(c['predicted_s'] / c['measured_s']):.2f} |")
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
    L.append("Discussion: `halide_notes.md` (written by hand after the run this table came "
             "from). Rerun: `python experiments/halide.py` (resumable; `--fresh` starts over).")
    atomic_write_text(out / "halide.md", "\n".join(L) + "\n")


def candidate_count_section(df, cands, comp, tun, args) -> list[str]:
    """How selection cost and quality depend on the number of candidates N: the first N of
    the sampled candidates (the sampler is sequential, so they are the set a run with N
    would use). Benchmarking N candidates costs the sum of their compile and sweep times;
    annpred costs predicting them (the measured time for all candidates, an upper bound)
    plus one compile. Quality: the pick among the first N (lowest prediction) against the
    fastest of them, and against the best autoscheduler's head-to-head time; candidates are
    timed by the sweep (one protocol measurement each, not the head-to-head rounds)."""
    if not {"compile_s", "bench_s", "index"} <= set(cands.columns):
        return []
    w = summarize(df).set_index(["pipeline", "size"])
    t = tun.set_index(["pipeline", "size"])
    ns = [n for n in (8, 16, 32, 64, 128, 256) if n <= args.candidates]
    if args.candidates not in ns:
        ns.append(args.candidates)
    rows = []
    for (pipe, size), g in cands.groupby(["pipeline", "size"], sort=False):
        g = g.sort_values("index")
        sel_cost = t.loc[(pipe, size), "annpred"] + comp.loc[(pipe, size)]
        for n in ns:
            h = g.iloc[:n]
            pick = h.iloc[int(np.argmin(h["predicted_s"].to_numpy()))]
            rows.append({"n": n, "cost": (h["compile_s"] + h["bench_s"]).sum() / sel_cost,
                         "gap": pick["measured_s"] / h["measured_s"].min(),
                         "speedup": w.loc[(pipe, size), "best_auto"] / pick["measured_s"],
                         "emp": w.loc[(pipe, size), "best_auto"] / h["measured_s"].min()})
    r = pd.DataFrame(rows)
    L = ["", "## Selection cost and quality vs number of candidates", "",
         "The first N of the sampled candidates at every pipeline and size (the sampler is "
         "sequential: a run with N candidates gets these). Cost ratio: compiling and "
         "benchmarking the N candidates against annpred's prediction of all "
         f"{args.candidates} plus one compile. Pick quality from the sweep (one protocol "
         "measurement per candidate, not the head-to-head rounds).", "",
         "| N | empirical / (annpred + compile): geomean | min | annpred's pick / fastest of "
         "the N (geomean) | speedup of the pick over best autoscheduler (geomean, sweep) | "
         "speedup of the fastest of the N (geomean, sweep) |",
         "|---|---|---|---|---|---|"]
    for n, g in r.groupby("n"):
        L.append(f"| {n} | {gmean(g['cost']):,.0f}x | {g['cost'].min():,.0f}x | "
                 f"{gmean(g['gap']):.3f} | {gmean(g['speedup']):.2f}x | "
                 f"{gmean(g['emp']):.2f}x |")
    return L


def plot(df, path):
    """The speedups and tuning times of ``df`` (read from halide.csv beside ``path``) as
    ``path``, a PNG written atomically."""
    import textwrap

    from annpred.study.plots import save_png, shown_path

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    w = summarize(df)
    tun = df.pivot_table(index=["pipeline", "size"], columns="method", values="tuning_s",
                         sort=False).reset_index()
    names = list(dict.fromkeys(w["pipeline"]))
    n = len(names) + 1
    ncols = min(n, 4)
    nrows = (n + ncols - 1) // ncols
    fig, axes = plt.subplots(nrows, ncols, figsize=(5 * ncols, 4.2 * nrows + 0.6),
                             squeeze=False)
    axes = list(axes.ravel())
    for ax in axes[n:]:
        ax.set_visible(False)
    axes = axes[:n]
    colors = {"annpred": "C3", "empirical_best": "C2", "mullapudi2016": "C0",
              "adams2019": "C1", "li2018": "C4", "default": "C7"}
    for ax, name in zip(axes, names):
        g = w[w["pipeline"] == name]
        x = np.arange(len(g))
        width = 0.14
        for j, m in enumerate(METHODS):
            if m not in g.columns:
                continue
            ax.bar(x + (j - 2.5) * width, g["best_auto"] / g[m], width, label=m,
                   color=colors[m])
        ax.axhline(1.0, color="k", lw=0.8)
        ax.set_yscale("log")
        ax.set_xticks(x, g["size"], rotation=30, fontsize=8)
        ax.set_xlabel("input size (W x H pixels; matmul M x N x K; conv_layer W x H x C)",
                      fontsize=7)
        ax.set_ylabel("speedup over best autoscheduler (x, log)")
        ax.set_title(f"{name}")
    ax = axes[-1]
    for m in ["annpred", "empirical_best"] + AUTOS:
        ax.scatter(np.arange(len(tun)), tun[m].clip(lower=1e-5), label=m, color=colors[m], s=14)
    ax.set_yscale("log")
    ax.set_ylabel("tuning time per decision (s, log)")
    ax.set_xlabel("pipeline and size")
    ax.set_xticks(np.arange(len(tun)), tun["pipeline"] + " " + tun["size"], rotation=90,
                  fontsize=6)
    ax.set_title("tuning time per decision")
    # one legend for every panel, below them (it covers no bar or point)
    handles = [plt.Rectangle((0, 0), 1, 1, color=colors[m]) for m in METHODS]
    fig.legend(handles, METHODS, loc="lower center", ncol=len(METHODS), fontsize=9,
               frameon=False)
    n_c = candidate_text(df)
    title = (f"Halide schedules on {df['hardware'].iloc[0]}, {int(df['threads'].iloc[0])} "
             f"threads ({shown_path(Path(path).with_name('halide.csv'), ROOT)}): annpred's pick of "
             f"{n_c} (schedule models profiled on this machine) vs Mullapudi2016, "
             "Adams2019, Li2018, Halide's default and the empirical best of the candidates, "
             "timed together")
    # wrapped to the figure's width (about 12 characters an inch at this size)
    fig.suptitle(textwrap.fill(title, int(5 * ncols * 12), break_on_hyphens=False),
                 fontsize=10)
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    save_png(fig, path)
    plt.close(fig)


if __name__ == "__main__":
    from annpred.cli.app import run_script

    # every finished size is in the partial results (written atomically)
    sys.exit(run_script(main))
