"""Regret study of annpred.choose on fresh, held-out call shapes.

    python experiments/choice.py                     # ~500 calls over all kernels, < 10 min
    python experiments/choice.py --calls 60 --kernels matvec fft --out /tmp/choice  # quick

For every kernel with models for this machine, sample new call shapes over the kernel's
domain (seed 2024, not the training seed; shapes equal to a profiled point are dropped), then
run every candidate (each variant with a model, at 1 and at 2 threads) with the measurement
protocol, one worker process per thread count (Halide fixes its thread pool once per
process). Then ask annpred.choose (in this process, torch-free) for each call and compare:
regret = runtime of the chosen candidate / runtime of the truly fastest one.

Each candidate is measured in two rounds (all calls in shuffled order, then again in another
order); its runtime is the lower of the two medians.

Writes to --out (default experiments/results/):
  choice.csv           one row per call: kernel, params, chosen, best, regret, ...
  choice_measured.csv  every measured (call, candidate) runtime
  choice_summary.csv   per kernel and overall: regret mean/p95/max, speedup over the best
                       single fixed candidate, fallbacks
  choice_summary.md    the same as a markdown table
  choice.json          settings, machine, timings
"""
from __future__ import annotations

import argparse
import csv
import json
import math
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
# experiments/halide.py would shadow the halide package: drop this folder from the path
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(ROOT))


# -- worker: measure every candidate variant of every point at one thread count -----------
def worker(threads: int, points_path: Path, raw_path: Path, models: Path, min_time: float,
           budget: float, rounds: int = 2) -> None:
    from annpred import threads as th

    th.fix_threads(threads)  # before torch or halide is loaded
    from annpred.spec import hardware as hw
    from annpred.measure import protocol as measure
    from annpred.spec.catalog import get_kernel
    from annpred.runtime.predictor import load_models

    pred = load_models(models)
    hw_id = hw.cpu_id(threads)
    points = json.loads(points_path.read_text())
    t_start = time.perf_counter()
    torch_fixed = False
    with open(raw_path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["call", "round", "kernel", "variant", "hardware", "runtime_s",
                    "runtime_cv", "repeats"])
        for rnd in range(rounds):
            order = np.random.default_rng([threads, 99, rnd]).permutation(len(points))
            for n_done, i in enumerate(order):
                if time.perf_counter() - t_start > budget * (rnd + 1) / rounds:
                    print(f"t{threads}: time budget of round {rnd} reached after {n_done} "
                          "calls", flush=True)
                    break
                rec = points[i]
                k = get_kernel(rec["kernel"])
                p = rec["params"]
                variants = [v for k_, v, h in pred.combinations(k.name) if h == hw_id]
                inputs = k.make_inputs(p, np.random.default_rng([7, rec["call"]]))
                vs = [k.variant(v) for v in variants]
                for j in np.random.default_rng([threads, rnd, rec["call"]]).permutation(len(vs)):
                    v = vs[j]
                    if v.device != "cpu" or not v.supports_point(p):
                        continue
                    state = None
                    try:
                        state = v.prepare(inputs, p)
                        if not torch_fixed and "torch" in sys.modules:
                            th.ensure_torch_threads()
                            torch_fixed = True
                        t = measure.measure(lambda: v.run(state), sync=v.sync, min_runs=5,
                                            min_time=min_time)
                        row = [rec["call"], rnd, k.name, v.name, hw_id, repr(t.median_s),
                               f"{t.cv:.4f}", t.repeats]
                    except Exception as exc:  # a failing variant is reported, not fatal
                        print(f"t{threads}: {k.name}/{v.name} failed at {p}: {exc}", flush=True)
                        row = [rec["call"], rnd, k.name, v.name, hw_id, "nan", "", 0]
                    w.writerow(row)
                    state = None
                f.flush()
                if n_done % 100 == 0:
                    print(f"t{threads} round {rnd}: {n_done}/{len(points)} calls, "
                          f"{time.perf_counter() - t_start:.0f} s", flush=True)


# -- driver ---------------------------------------------------------------------------------
def sample_calls(kernels, per_kernel: int, seed: int, models: Path) -> list[dict]:
    from annpred.spec.catalog import get_kernel
    from annpred.measure.sampling import random_points

    calls = []
    for name in kernels:
        k = get_kernel(name)
        seen = set()
        for csv_path in sorted(models.glob(f"*/data/{name}.csv")):
            df = pd.read_csv(csv_path, usecols=k.param_names)
            seen |= {tuple(np.round(r, 9)) for r in df.to_numpy(dtype=float)}
        pts = random_points(k, per_kernel * 2, seed=seed)
        kept = 0
        for rec in pts.to_dict("records"):
            key = tuple(np.round([float(rec[p]) for p in k.param_names], 9))
            if key in seen:
                continue  # a profiled (possibly training) point: not held out
            seen.add(key)
            rec = {p: (int(v) if k.param(p).kind == "int" else float(v)) for p, v in rec.items()}
            calls.append({"call": len(calls), "kernel": name, "params": rec})
            kept += 1
            if kept == per_kernel:
                break
    return calls


def p95(x) -> float:
    return float(np.percentile(np.asarray(x, dtype=float), 95))


def summarise(g: pd.DataFrame, meas: pd.DataFrame, col: str = "regret") -> dict:
    r = g[col].to_numpy(dtype=float)
    out = {"calls": len(g), "regret_mean": float(np.mean(r)), "regret_p95": p95(r),
           "regret_max": float(np.max(r)), "chosen_is_best": float(np.mean(g["chosen"] ==
                                                                           g["best"])),
           "fallbacks": int(g["fallback"].sum())}
    # best single fixed candidate of each kernel: least total time over that kernel's calls
    fixed_total = 0.0
    fixed_names = []
    geo = []
    for kernel, gk in g.groupby("kernel"):
        wide = meas[meas["call"].isin(gk["call"])].pivot_table(
            index="call", columns="candidate", values="runtime_s", aggfunc="first")
        wide = wide.dropna(axis=1)  # candidates measured on every call
        totals = wide.sum()
        fx = totals.idxmin()
        fixed_names.append(f"{kernel}:{fx}")
        fixed_total += float(totals[fx])
        chosen = gk.set_index("call")["chosen_s"]
        geo.extend((wide.loc[chosen.index, fx] / chosen).tolist())
    out["chosen_total_s"] = float(g["chosen_s"].sum())
    out["best_total_s"] = float(g["best_s"].sum())
    out["fixed_total_s"] = fixed_total
    out["speedup_vs_fixed"] = fixed_total / out["chosen_total_s"]
    out["speedup_vs_fixed_geomean"] = float(np.exp(np.mean(np.log(geo))))
    out["oracle_vs_fixed"] = fixed_total / out["best_total_s"]
    out["best_fixed"] = " ".join(fixed_names)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", default=str(ROOT / "trained"))
    ap.add_argument("--kernels", nargs="*", default=None)
    ap.add_argument("--calls", type=int, default=504, help="total calls (split over kernels)")
    ap.add_argument("--seed", type=int, default=2024)
    ap.add_argument("--threads", type=int, nargs="*", default=[1, 2])
    ap.add_argument("--min-time-ms", type=float, default=10.0)
    ap.add_argument("--budget", type=float, default=240.0,
                    help="seconds of measuring per thread count")
    ap.add_argument("--out", default=str(ROOT / "experiments" / "results"))
    ap.add_argument("--work", default=None, help="where raw measurements go (default: --out)")
    ap.add_argument("--reuse", action="store_true", help="reuse measurements in --work")
    ap.add_argument("--worker", type=int, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--points", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--raw", default=None, help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    models = Path(a.models)
    if a.worker is not None:
        worker(a.worker, Path(a.points), Path(a.raw), models, a.min_time_ms / 1e3, a.budget)
        return 0

    from annpred.spec import hardware as hw
    from annpred.runtime.predictor import load_models

    out = Path(a.out)
    work = Path(a.work) if a.work else out
    out.mkdir(parents=True, exist_ok=True)
    work.mkdir(parents=True, exist_ok=True)
    pred = load_models(models)
    here = {hw.cpu_id(t) for t in a.threads}
    from annpred.spec.catalog import kernels as catalog

    kernels = a.kernels or sorted({k for k, v, h in pred.combinations()
                                   if h in here and k in catalog()})
    if not kernels:
        have = sorted({h for _, _, h in pred.combinations()})
        print(f"choice.py: {models} holds no catalog models of this machine "
              f"({', '.join(sorted(here))}); it has {', '.join(have) or 'none'}. "
              "Train models on this machine first "
              "(`annpred quickstart` trains matmul and blur; `annpred profile KERNEL` and "
              "`annpred train` any kernel) and pass their directory with --models",
              file=sys.stderr)
        return 2
    per_kernel = math.ceil(a.calls / len(kernels))
    t0 = time.time()
    points_path = work / "choice_points.json"
    if a.reuse and points_path.exists():
        calls = json.loads(points_path.read_text())
    else:
        calls = sample_calls(kernels, per_kernel, a.seed, models)
        points_path.write_text(json.dumps(calls))
    print(f"{len(calls)} held-out calls over {', '.join(kernels)}", flush=True)
    raws = []
    for t in a.threads:
        raw = work / f"choice_raw_t{t}.csv"
        raws.append(raw)
        if a.reuse and raw.exists():
            continue
        cmd = [sys.executable, __file__, "--worker", str(t), "--points", str(points_path),
               "--raw", str(raw), "--models", str(models), "--min-time-ms",
               str(a.min_time_ms), "--budget", str(a.budget)]
        subprocess.run(cmd, check=True)
    t_measure = time.time() - t0
    if a.reuse and (out / "choice.json").exists():  # keep the time the measuring took
        t_measure = json.loads((out / "choice.json").read_text()).get("measure_s", t_measure)

    frames = [f for f in (pd.read_csv(r) for r in raws) if len(f)]  # no models: no rows
    raw_all = pd.concat(frames, ignore_index=True)
    raw_all["runtime_s"] = pd.to_numeric(raw_all["runtime_s"], errors="coerce")
    raw_all = raw_all[np.isfinite(raw_all["runtime_s"])]
    # the runtime of a (call, candidate): the lower of the medians of the separate rounds
    # (other load on a shared machine only ever slows a run down); calls measured in every
    # round only
    n_rounds = raw_all["round"].nunique()
    meas = (raw_all.groupby(["call", "kernel", "variant", "hardware"])
            .agg(runtime_s=("runtime_s", "min"), rounds=("runtime_s", "size"),
                 round_spread=("runtime_s", lambda r: float(r.max() / r.min())))
            .reset_index())
    meas = meas[meas["rounds"] == n_rounds]
    meas["candidate"] = meas["variant"] + "@" + meas["hardware"]
    measured = {c: g.set_index("candidate")["runtime_s"].to_dict()
                for c, g in meas.groupby("call")}

    import annpred  # choose in this process: numpy only

    rows = []
    for rec in calls:
        m = measured.get(rec["call"])
        if not m:
            continue  # not measured (time budget)
        c = annpred.choose(rec["kernel"], rec["params"], models=pred)
        ts = []
        for _ in range(5):
            s = time.perf_counter()
            annpred.choose(rec["kernel"], rec["params"], models=pred, memo=False)
            ts.append(time.perf_counter() - s)
        ex = annpred.choose(rec["kernel"], rec["params"], models=pred, policy="extrapolate")
        cands = [str(x) for x in c.predicted]
        if any(x not in m for x in cands):
            print(f"call {rec['call']}: candidates not all measured, skipped", flush=True)
            continue
        best = min(cands, key=lambda x: m[x])
        chosen, model_pick = str(c.best), str(ex.best)
        rows.append({
            "call": rec["call"], "kernel": rec["kernel"],
            "params": json.dumps(rec["params"], sort_keys=False),
            "chosen": chosen, "best": best, "regret": m[chosen] / m[best],
            "chosen_s": m[chosen], "best_s": m[best], "predicted_s": c.seconds,
            "fallback": c.fallback, "in_range": c.all_in_range,
            "model_pick": model_pick, "model_regret": m[model_pick] / m[best],
            "decision_us": float(np.median(ts) * 1e6), "n_candidates": len(cands),
            # a new shape is decided from scratch (memo=False above); a repeated one costs
            # a dictionary lookup (see choice_latency.py)
            "regret_with_decision": (m[chosen] + float(np.median(ts))) / m[best],
        })
    df = pd.DataFrame(rows)
    df.to_csv(out / "choice.csv", index=False)
    meas.to_csv(out / "choice_measured.csv", index=False)

    summary = []
    for kernel, g in df.groupby("kernel"):
        summary.append({"kernel": kernel, **summarise(g, meas)})
    summary.append({"kernel": "all", **summarise(df, meas)})
    sm = pd.DataFrame(summary)
    for extra, col in (("model_regret_mean", "model_regret"),
                       ("regret_with_decision_mean", "regret_with_decision")):
        sm[extra] = [float(df[df.kernel == k][col].mean()) if k != "all"
                     else float(df[col].mean()) for k in sm["kernel"]]
    sm["decision_us_median"] = [float(df[df.kernel == k]["decision_us"].median()) if k != "all"
                                else float(df["decision_us"].median()) for k in sm["kernel"]]
    sm.to_csv(out / "choice_summary.csv", index=False)
    lines = ["| kernel | calls | regret mean | p95 | max | chosen = best | fallbacks | "
             "speedup vs best fixed (total) | (geomean/call) | oracle vs fixed | "
             "decision (us) |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in sm.to_dict("records"):
        lines.append(f"| {r['kernel']} | {r['calls']} | {r['regret_mean']:.3f} | "
                     f"{r['regret_p95']:.3f} | {r['regret_max']:.2f} | "
                     f"{100 * r['chosen_is_best']:.0f}% | {r['fallbacks']} | "
                     f"{r['speedup_vs_fixed']:.2f}x | {r['speedup_vs_fixed_geomean']:.2f}x | "
                     f"{r['oracle_vs_fixed']:.2f}x | {r['decision_us_median']:.1f} |")
    (out / "choice_summary.md").write_text("\n".join(lines) + "\n")
    meta = {"models": (str(models.resolve().relative_to(ROOT)) if models.resolve().is_relative_to(ROOT)
                       else str(models)), "seed": a.seed, "calls": len(df), "kernels": kernels,
            "rounds": int(n_rounds),
            "round_spread_median": float(meas["round_spread"].median()),
            "round_spread_p95": p95(meas["round_spread"]),
            "threads": a.threads, "min_time_ms": a.min_time_ms, "machine": hw.cpu_model(),
            "hardware": sorted(meas["hardware"].unique()), "measure_s": t_measure,
            "total_s": time.time() - t0, "policy": "strict (default)",
            "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S")}
    (out / "choice.json").write_text(json.dumps(meta, indent=1) + "\n")
    print("\n".join(lines))
    print(f"measured in {t_measure:.0f} s, total {time.time() - t0:.0f} s; "
          f"results in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
