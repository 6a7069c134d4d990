"""Study: shipped models on another machine, adapted by a quick calibration, or retrained.

Source machine: the shipped models ``trained/cpu-amd-epyc-t1`` (1 thread; their files carry
no machine description, so they count as an unknown machine). Target machine: this one.
For every catalog kernel and every CPU variant with a shipped 1-thread model:

* a held-out test set: ``--test`` random points of the kernel's domain (seed 4242) inside the
  shipped model's training range, measured here twice (two passes in different orders; the
  first is the truth, the MAPE between the two is the noise floor);
* ``shipped``: the shipped model's predictions as they are;
* ``adapted``: ``annpred.measure.calibrate.calibrate`` on that kernel with a 10 s budget (all
  variants of the kernel together, as ``annpred calibrate --quick KERNEL`` does), then the
  shipped model with the fitted correction. ``seconds_measured`` is the variant's probe
  measuring time (one untimed first run per variant, imports and JIT compiles, is excluded
  for every method alike and reported as ``setup_s``);
* ``retrained``: a model trained from scratch (the kernel's complexity features, default
  estimator) on random points (seed 99) measured here for the same time as that variant's
  probes (at least 8 points, so it can be trained at all; the real time is reported);
* ``retrained_10s``: the same with 10 s of measuring for the variant alone (context only).

All measurements use the protocol (warm-up, >= 5 runs, median) at 1 thread; points and
variants in shuffled order. Results: experiments/results/portability.csv (one row per
kernel x variant x method) and portability.md (summary, targets). Resumable per kernel:
kernels already in the CSV are skipped (``--redo`` starts over).

    flock /tmp/annpred-timing.lock python experiments/portability.py [--kernels matmul,blur]
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
sys.path.insert(0, str(HERE.parent))
ROOT = HERE.parent
OUT = HERE / "results"
# isolate from the user's calibrations: only this study's corrections count
os.environ["ANNPRED_MODELS"] = tempfile.mkdtemp(prefix="annpred-portability-")

from annpred import threads  # noqa: E402
from annpred.measure import protocol  # noqa: E402
from annpred.measure.calibrate import calibrate  # noqa: E402
from annpred.model.correction import apply_log  # noqa: E402
from annpred.model.estimator import AugmentedNNRegressor  # noqa: E402
from annpred.model.network import predict_seconds, transform_inputs  # noqa: E402
from annpred.runtime.predictor import Predictor  # noqa: E402
from annpred.spec import hardware as hw  # noqa: E402
from annpred.spec.catalog import get_kernel, kernels as catalog  # noqa: E402

SOURCE = "cpu-amd-epyc-t1"
TEST_SEED, TRAIN_SEED = 4242, 99
MIN_TIME = 0.01
COLUMNS = ["kernel", "variant", "source_machine", "target_machine", "method", "n_measured",
           "seconds_measured", "mape", "median_ape", "n_test", "noise_floor", "setup_s",
           "form", "load_1min", "fingerprint"]


def mape(pred, truth) -> float:
    return float(np.mean(np.abs(pred - truth) / truth) * 100)


def _time(kernel, v, point, seed) -> float:
    inputs = kernel.make_inputs(point, np.random.default_rng(seed))
    state = v.prepare(inputs, point)
    threads.ensure_torch_threads()
    return protocol.measure(lambda: v.run(state), sync=v.sync, min_time=MIN_TIME).median_s


def test_set(kernel, models, n, log) -> tuple[dict, dict, dict]:
    """Per variant: points, first-pass and second-pass seconds (shuffled order)."""
    pool = kernel.sample_points(4 * n, TEST_SEED)
    pts, first, second = {}, {}, {}
    for v, m in models.items():
        pts[v] = [p for p in pool if kernel.variant(v).supports_point(p)
                  and not m.out_of_range(p)][:n]
        first[v], second[v] = np.full(len(pts[v]), np.nan), np.full(len(pts[v]), np.nan)
    rng = np.random.default_rng(TEST_SEED)
    for rnd, store in ((0, first), (1, second)):
        tasks = [(v, i) for v in pts for i in range(len(pts[v]))]
        for j in rng.permutation(len(tasks)):
            v, i = tasks[j]
            store[v][i] = _time(kernel, kernel.variant(v), pts[v][i], [TEST_SEED, i])
        log(f"  test pass {rnd + 1}: {len(tasks)} measurements")
    return pts, first, second


def retrain(kernel, vname, seconds, seed_offset=0):
    """Random points measured for ``seconds`` (at least 8), a model trained on them."""
    v = kernel.variant(vname)
    pool = [p for p in kernel.sample_points(400, TRAIN_SEED + seed_offset, vname)
            if v.supports_point(p)]
    X, y = [], []
    t0 = time.perf_counter()
    for i, p in enumerate(pool):
        if len(X) >= 8 and time.perf_counter() - t0 > seconds:
            break
        y.append(_time(kernel, v, p, [TRAIN_SEED, i]))
        X.append(p)
    spent = time.perf_counter() - t0
    df = pd.DataFrame(X, columns=kernel.param_names)
    model = AugmentedNNRegressor(complexity=kernel.complexity_for(vname),
                                 parameters=kernel.param_names, seed=0).fit(df, np.array(y))
    return model, len(X), spent


def run_kernel(name, args, log) -> list[dict]:
    kernel = get_kernel(name)
    shipped = Predictor([ROOT / "trained"])
    models = {v: shipped.models[(name, v, SOURCE)] for (_, v, h) in shipped.combinations(name)
              if h == SOURCE and kernel.variant(v).device == "cpu"}
    here = hw.machine()
    load = lambda: round(os.getloadavg()[0], 2)  # noqa: E731
    # warm every variant (imports, JIT) before anything is timed
    setup = {}
    for v in models:
        t0 = time.perf_counter()
        p = kernel.sample_points(1, 0, v)[0]
        _time(kernel, kernel.variant(v), p, 0)
        setup[v] = time.perf_counter() - t0
    pts, truth, again = test_set(kernel, models, args.test, log)
    with tempfile.TemporaryDirectory() as cal_dir:
        res = calibrate([name], models=[ROOT / "trained"], out=cal_dir, budget=args.budget,
                        threads=1, progress=False)
    cal = {t.variant: t for t in res.targets if t.hardware == SOURCE}
    rows = []
    for v, m in models.items():
        cols = {p: np.asarray([float(q[p]) for q in pts[v]]) for p in m.params}
        raw = predict_seconds(m.features(cols), m.compiled)
        y = truth[v]
        base = dict(kernel=name, variant=v, source_machine=f"{SOURCE} (unknown machine)",
                    target_machine=f"cpu-{here['slug']}-t1", n_test=len(y),
                    noise_floor=round(mape(again[v], y), 2), setup_s=round(setup[v], 2),
                    fingerprint=here["fingerprint"])
        ape = lambda pr: (round(mape(pr, y), 2), round(float(np.median(np.abs(pr - y) / y)) * 100, 2))  # noqa: E731
        mp, md = ape(raw)
        rows.append({**base, "method": "shipped", "n_measured": 0, "seconds_measured": 0.0,
                     "mape": mp, "median_ape": md, "form": "", "load_1min": load()})
        t = cal.get(v)
        if t is not None and t.correction is not None:
            x = transform_inputs(m.features(cols), m.compiled["input_transform"])
            fixed = np.exp(apply_log(np.log(raw), t.correction, x))
            mp, md = ape(fixed)
            rows.append({**base, "method": "adapted", "n_measured": len(t.probes),
                         "seconds_measured": round(t.seconds, 3), "mape": mp, "median_ape": md,
                         "form": t.correction["form"], "load_1min": load()})
            secs = t.seconds
        else:
            rows.append({**base, "method": "adapted", "n_measured": 0 if t is None else
                         len(t.probes), "seconds_measured": 0.0 if t is None else t.seconds,
                         "mape": np.nan, "median_ape": np.nan,
                         "form": "none" if t is None else t.note, "load_1min": load()})
            secs = 0.0 if t is None else t.seconds
        for method, s, off in (("retrained", secs, 0), ("retrained_10s", 10.0, 1)):
            model, n, spent = retrain(kernel, v, s, off)
            X = pd.DataFrame(pts[v], columns=kernel.param_names)
            mp, md = ape(model.predict(X))
            rows.append({**base, "method": method, "n_measured": n,
                         "seconds_measured": round(spent, 3), "mape": mp, "median_ape": md,
                         "form": "", "load_1min": load()})
        log("  " + "  ".join(f"{r['method']} {r['mape']:.1f}%" for r in rows[-4:])
            + f"  ({v}, floor {base['noise_floor']:.1f}%)")
    return rows


def summarize(df: pd.DataFrame) -> str:
    """The table and the targets; a variant whose probes showed no correction helps keeps
    its model as it is (``adapted`` = ``shipped`` in the statistics)."""
    piv = df.pivot_table(index=["kernel", "variant"], columns="method", values="mape")
    sec = df.pivot_table(index=["kernel", "variant"], columns="method",
                         values="seconds_measured")
    floor = df.groupby(["kernel", "variant"])["noise_floor"].first()
    nprobe = df[df.method == "adapted"].set_index(["kernel", "variant"])["n_measured"]
    eff = piv["adapted"].fillna(piv["shipped"])
    lines = ["| kernel/variant | shipped | adapted (s, probes) | retrained same time (s) | "
             "retrained 10 s | noise floor |", "|---|---:|---:|---:|---:|---:|"]
    for key, r in piv.iterrows():
        ad = (f"{r['adapted']:.1f}%" if r["adapted"] == r["adapted"]
              else f"kept as is ({r['shipped']:.1f}%)")
        lines.append(f"| {key[0]}/{key[1]} | {r['shipped']:.1f}% | {ad} "
                     f"({sec.loc[key, 'adapted']:.2f} s, {nprobe.loc[key]}) | "
                     f"{r['retrained']:.1f}% ({sec.loc[key, 'retrained']:.2f} s) | "
                     f"{r['retrained_10s']:.1f}% | {floor.loc[key]:.1f}% |")
    ratio = eff / piv["retrained"]
    high = piv["shipped"] >= 40
    worse = list(eff[eff > piv["shipped"]].index)
    lines += ["", f"Median MAPE over {len(piv)} combinations: shipped "
              f"{piv['shipped'].median():.1f}%, adapted {eff.median():.1f}% "
              f"({int(piv['adapted'].isna().sum())} kept as is), retrained (same time) "
              f"{piv['retrained'].median():.1f}%, retrained 10 s "
              f"{piv['retrained_10s'].median():.1f}%, noise floor {floor.median():.1f}%.",
              f"Target 1 (adapted within 1.5x of retrained with the same measuring time, "
              f"<= 10 s): met on {int((ratio <= 1.5).sum())}/{len(ratio)} combinations "
              f"(median ratio {ratio.median():.2f}; worst {ratio.max():.2f}); probe measuring "
              f"per kernel "
              f"{df[df.method == 'adapted'].groupby('kernel')['seconds_measured'].sum().max():.1f}"
              f" s at most. Against models retrained on up to 10 s per variant the median "
              f"ratio is {(eff / piv['retrained_10s']).median():.2f}.",
              f"Target 2 (<= 10% median MAPE where shipped >= 40%): {int(high.sum())} "
              f"combinations with shipped >= 40%; their median adapted MAPE "
              + (f"{eff[high].median():.2f}%" if high.any() else "n/a") + ".",
              "Adapted worse than shipped on held-out points: "
              + (", ".join("/".join(k) for k in worse) if worse else "none") + "."]
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kernels", default=",".join(sorted(catalog())))
    ap.add_argument("--test", type=int, default=50, help="held-out points per variant")
    ap.add_argument("--budget", type=float, default=10.0, help="calibration seconds per kernel")
    ap.add_argument("--redo", action="store_true")
    ap.add_argument("--out", default=str(OUT / "portability.csv"))
    ap.add_argument("--summary", action="store_true",
                    help="only rewrite portability.md from the CSV (no measuring)")
    args = ap.parse_args(argv)
    out = Path(args.out)
    if args.summary:
        out.with_suffix(".md").write_text(summarize(pd.read_csv(out)) + "\n")
        print(summarize(pd.read_csv(out)))
        return 0
    threads.fix_threads(1)
    done = pd.read_csv(out) if out.exists() and not args.redo else pd.DataFrame(columns=COLUMNS)
    log = lambda s: print(s, flush=True)  # noqa: E731
    log(f"target machine: {hw.machine()['slug']} ({hw.machine()['fingerprint']}); load "
        f"{os.getloadavg()[0]:.2f}")
    for name in args.kernels.split(","):
        if name in set(done["kernel"]):
            log(f"{name}: already in {out}, skipped")
            continue
        t0 = time.perf_counter()
        log(f"{name}:")
        rows = run_kernel(name, args, log)
        done = pd.concat([done, pd.DataFrame(rows, columns=COLUMNS)], ignore_index=True)
        tmp = out.with_suffix(".tmp")
        done.to_csv(tmp, index=False)
        tmp.replace(out)
        log(f"{name}: {time.perf_counter() - t0:.0f} s")
    (out.with_suffix(".md")).write_text(summarize(done) + "\n")
    print(summarize(done))
    return 0


if __name__ == "__main__":
    sys.exit(main())
