"""``annpred quickstart``: calibrate this machine briefly, train, report, decide.

0. adapts the models that were not measured on this machine (the shipped ones) with a quick
   calibration (``annpred calibrate --quick``: a few probes per kernel variant, 10 s);
1. measures the catalog's ``matmul`` and ``blur`` variants on this machine at 1 thread and
   at all cores (the hardware ids ``predict`` and ``choose`` use by default) for a small
   time budget, with the measurement protocol, each thread count in its own process
   (Halide fixes its thread pool once per process);
2. trains one model per combination on 75% of the points, in seconds;
3. prints the held-out accuracy of each model next to the measurement noise;
4. for a few call shapes, shows the variant the models choose next to the variant that is
   really fastest when all of them are measured.
The models are saved as the user's calibrated models (``annpred predict`` and ``choose`` use
them by default), or under ``--out`` (then pass ``--models DIR`` or set ``ANNPRED_MODELS``).
"""
from __future__ import annotations

import time
import warnings
from pathlib import Path

import numpy as np

from annpred.cli.common import show_warnings
from annpred.spec import hardware as hw

KERNELS = ("matmul", "blur")
SHAPES = {
    "matmul": [dict(m=32, n=32, k=32, da=1.0, db=1.0),
               dict(m=384, n=384, k=384, da=1.0, db=1.0),
               dict(m=384, n=384, k=384, da=0.005, db=1.0),
               dict(m=16, n=640, k=16, da=0.2, db=1.0)],
    "blur": [dict(w=64, h=64), dict(w=1024, h=768), dict(w=1536, h=32)],
}


def _profile_process(kernel: str, path: Path, threads: int, budget: float, seed: int) -> None:
    """``annpred profile`` in a fresh process (thread counts are fixed per process)."""
    import subprocess
    import sys

    from annpred.errors import AnnpredError

    cmd = [sys.executable, "-m", "annpred.cli", "profile", kernel, "--threads", str(threads),
           "--samples", "4000", "--seed", str(seed), "--time-budget", f"{budget:.3f}",
           "--min-time-ms", "5", "--out", str(path)]
    from annpred.cli.app import QUIET_INTERRUPT

    from annpred.spec.hardware import child_env

    r = subprocess.run(cmd, stdout=subprocess.PIPE, text=True,
                       env={**child_env(), QUIET_INTERRUPT: "1"})
    if r.returncode == 130:  # Ctrl-C reached the child alone: stop here as well
        raise KeyboardInterrupt
    if r.returncode != 0:
        raise AnnpredError(f"profiling {kernel} at {threads} thread(s) failed (exit "
                           f"{r.returncode}); rows measured so far are kept in {path}")
    print(f"  {kernel} t{threads}: {r.stdout.strip()}")


def _table(rows, headers):
    widths = [max(len(str(h)), *(len(str(r[i])) for r in rows)) for i, h in enumerate(headers)]
    line = "  ".join(str(h).ljust(w) for h, w in zip(headers, widths))
    print(line)
    print("  ".join("-" * w for w in widths))
    for r in rows:
        print("  ".join(str(c).ljust(w) for c, w in zip(r, widths)))


MAX_BUDGET = 1e7  # seconds (about 4 months), as `calibrate --budget`


def run(budget: float = 120.0, out: str | None = None, seed: int = 0) -> int:
    import math

    from annpred.errors import ParameterError

    if not (isinstance(budget, (int, float)) and math.isfinite(budget) and budget > 0):
        raise ParameterError(f"--budget must be a positive number of seconds, got {budget}")
    if budget > MAX_BUDGET:  # 1e300 was taken: measuring for ever, a 300-digit plan line
        raise ParameterError(f"--budget must be at most {MAX_BUDGET:g} seconds, got {budget:g}")
    from annpred.spec.catalog import get_kernel
    from annpred.data.profiles import load_profiles
    from annpred.measure.protocol import measure
    from annpred.model.layout import user_root
    from annpred.runtime.choose import choose
    from annpred.runtime.predictor import load_models
    from annpred.model.trainer import train_frame

    t_all = time.perf_counter()
    out_dir = Path(out) if out else user_root()
    threads = [1] + ([hw.cpu_count()] if hw.cpu_count() > 1 else [])
    hw_ids = [hw.cpu_id(t) for t in threads]
    hw_id = hw_ids[0]
    print(f"annpred quickstart on {hw.cpu_model()} ({hw.cpu_count()} cores) as "
          f"{' and '.join(hw_ids)}")
    share = budget / (len(KERNELS) * len(threads))
    _adapt(out_dir, seed)
    print(f"step 1/4: measuring {', '.join(KERNELS)} for about {budget:.0f} s "
          f"({' and '.join(map(str, threads))} thread(s), {share:.0f} s each; warm-up, "
          ">=5 repeats, median; shuffled order)")
    csvs = []
    for t, h in zip(threads, hw_ids):
        for name in KERNELS:
            path = out_dir / h / "data" / f"quickstart_{name}.csv"
            _profile_process(name, path, t, share, seed)
            csvs.append(path)

    print("step 2/4: training one network per combination (75% of the points)")
    df = load_profiles([p for p in csvs if p.exists()])
    df = df[df["hardware"].isin(hw_ids)]
    from annpred.data.profiles import MIN_ROWS
    from annpred.errors import DataError

    counts = df.groupby(["kernel", "variant", "hardware"]).size()
    few = counts[counts < MIN_ROWS]
    for (k, v, h), n in few.items():
        print(f"  skipped {k}/{v} on {h}: {n} rows measured (at least {MIN_ROWS} needed; "
              "a larger --budget measures more)")
    keep = set(counts[counts >= MIN_ROWS].index)
    df = df[[key in keep for key in zip(df.kernel, df.variant, df.hardware)]]
    if df.empty:
        raise DataError(f"no combination has {MIN_ROWS} measured rows after {budget:g} s; "
                        "rerun with a larger --budget (rows measured so far are kept)")
    # a model worse on its held-out points than a constant would mislead predict and choose:
    # it is not installed (the models it would have replaced stay in use)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UserWarning)
        reports = train_frame(df, out_dir, seed=seed,
                              n_train=None if len(df) < 40 else "auto", keep_only_better=True)
    show_warnings(caught)
    print()
    print("step 3/4: held-out accuracy (points never used in training)")
    rows = []
    for r in reports:
        g = df[(df.kernel == r.kernel) & (df.variant == r.variant)
               & (df.hardware == r.hardware)]
        noise = g["runtime_cv"].median() * 100 if "runtime_cv" in g else float("nan")
        rows.append([f"{r.kernel}/{r.variant}@t{hw.parse_id(r.hardware)['threads']}",
                     r.n_train, r.n_holdout,
                     (f"{r.holdout_mape:.1f}%" if r.holdout_mape is not None else "-")
                     + ("" if r.written else f" (not installed: worse than a constant, "
                        f"{r.constant_mape:.1f}%)"),
                     f"{noise:.1f}%", r.n_params, f"{r.train_time_s:.1f}s"])
    _table(rows, ["combination", "train", "test", "test MAPE", "repeat CV", "params", "fit"])
    mapes = [r.holdout_mape for r in reports if r.holdout_mape is not None]
    if mapes:
        print(f"median held-out MAPE {np.median(mapes):.1f}% over {len(mapes)} models "
              "(a short calibration; `annpred profile` with more samples does better)")

    print()
    print("step 4/4: decisions at 1 thread: predicted fastest variant vs measured fastest")
    models = load_models([out_dir], reload=True)
    rows = []
    hits = 0
    total = 0
    for name in KERNELS:
        kernel = get_kernel(name)
        for shape in SHAPES[name]:
            params = kernel.check_params(shape)
            variants = [v for v in kernel.variants if v.device == "cpu"
                        and (v.name in {vv for _, vv, h in models.combinations(name)
                                        if h == hw_id})]
            choice = choose(name, params, candidates=[(v.name, hw_id) for v in variants],
                            models=models, policy="extrapolate", memo=False)
            preds = {c.variant: s for c, s in choice.predicted.items()}
            inputs = kernel.make_inputs(params, np.random.default_rng(seed))
            measured = {}
            for v in variants:
                state = v.prepare(inputs, params)
                measured[v.name] = measure(lambda: v.run(state), min_time=0.01).median_s
            chosen = choice.variant
            best = min(measured, key=measured.get)
            hits += chosen == best
            total += 1
            shape_txt = " ".join(f"{k}={v:g}" for k, v in shape.items())
            rows.append([name, shape_txt, chosen, f"{preds[chosen] * 1e6:.0f}us", best,
                         f"{measured[best] * 1e6:.0f}us",
                         f"{measured[chosen] / measured[best]:.2f}x"])
    _table(rows, ["kernel", "shape", "chosen", "predicted", "fastest", "measured", "regret"])
    print(f"chose the measured-fastest variant in {hits}/{total} cases; regret = runtime of "
          "the chosen variant / runtime of the fastest")
    if out is None or out_dir.resolve() == user_root().resolve():
        print(f"models for {', '.join(hw_ids)} saved under {out_dir}: `annpred predict` and "
              "`annpred choose` use them by default (over the shipped models)")
    else:
        print(f"models for {', '.join(hw_ids)} saved under {out_dir}: pass `--models {out_dir}`"
              f" to `annpred predict`/`choose`, or set ANNPRED_MODELS={out_dir}")
    print(f"quickstart took {time.perf_counter() - t_all:.0f} s")
    return 0


def _adapt(out_dir: Path, seed: int, budget: float = 10.0) -> None:
    """Step 0: adapt the models of other machines (the shipped ones) to this one."""
    from annpred.cli.calibrate import _line
    from annpred.measure.calibrate import calibrate

    print(f"step 0: adapting models measured on other machines to this one "
          f"({hw.machine()['slug']}; annpred calibrate --quick, {budget:.0f} s of probes)")
    res = calibrate(None, out=out_dir, budget=budget, progress=True)
    done = [t for t in res.targets if t.correction is not None]
    for t in done:
        print(_line(t))
    if not res.targets:
        print("  nothing to adapt: the models here were measured on this machine")
    else:
        before = np.median([t.correction["probe_mape_before"] for t in done]) if done else 0
        after = np.median([t.correction["probe_mape_after"] for t in done]) if done else 0
        print(f"  adapted {len(done)}/{len(res.targets)} models in {res.seconds:.0f} s; median "
              f"probe MAPE {before:.0f}% -> {after:.0f}%")


def cmd_quickstart(args) -> int:
    from annpred import validate

    if args.out is not None:
        validate.output_dir(args.out)
    validate.seed(args.seed)
    return run(budget=args.budget, out=args.out, seed=args.seed)


def register(sub) -> None:
    s = sub.add_parser("quickstart", help="calibrate this machine briefly, train, report")
    s.add_argument("--budget", type=float, default=120.0,
                   help="seconds of measuring matmul and blur (default 120; the short "
                   "calibrate --quick before it and one-time set-up such as Halide's "
                   "compilation not counted)")
    s.add_argument("--out", default=None, help="model directory (default: user models)")
    s.add_argument("--seed", type=int, default=0, help="seed of sampling and training (default 0)")
    s.set_defaults(func=cmd_quickstart, interrupted="rows measured so far are kept "
                   "(a rerun adds to them)")
