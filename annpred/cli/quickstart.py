"""``annpred quickstart``: calibrate this machine briefly, train, report, decide.

1. measures the catalog's ``matmul`` and ``blur`` variants on this machine (1 thread) for a
   small time budget, with the measurement protocol;
2. trains one model per combination on 75% of the points, in seconds;
3. prints the held-out accuracy of each model next to the measurement noise;
4. for a few call shapes, shows the variant the models choose next to the variant that is
   really fastest when all of them are measured.
The models are saved as the user's calibrated models (``annpred predict`` uses them).
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from annpred.spec import hardware as hw

KERNELS = ("matmul", "blur")
SHAPES = {
    "matmul": [dict(m=32, n=32, k=32, da=1.0, db=1.0),
               dict(m=384, n=384, k=384, da=1.0, db=1.0),
               dict(m=384, n=384, k=384, da=0.005, db=1.0),
               dict(m=16, n=640, k=16, da=0.2, db=1.0)],
    "blur": [dict(w=64, h=64), dict(w=1024, h=768), dict(w=1536, h=32)],
}


def _table(rows, headers):
    widths = [max(len(str(h)), *(len(str(r[i])) for r in rows)) for i, h in enumerate(headers)]
    line = "  ".join(str(h).ljust(w) for h, w in zip(headers, widths))
    print(line)
    print("  ".join("-" * w for w in widths))
    for r in rows:
        print("  ".join(str(c).ljust(w) for c, w in zip(r, widths)))


def run(budget: float = 120.0, out: str | None = None, seed: int = 0) -> int:
    import math

    from annpred.errors import ParameterError

    if not (isinstance(budget, (int, float)) and math.isfinite(budget) and budget > 0):
        raise ParameterError(f"--budget must be a positive number of seconds, got {budget}")
    from annpred.spec.catalog import get_kernel
    from annpred.data.profiles import load_profiles
    from annpred.measure.protocol import measure
    from annpred.model.layout import user_root
    from annpred.runtime.choose import choose
    from annpred.runtime.predictor import load_models
    from annpred.measure.profiler import profile
    from annpred.model.trainer import train_frame

    t_all = time.perf_counter()
    out_dir = Path(out) if out else user_root()
    hw_id = hw.cpu_id(1)
    data_dir = out_dir / hw_id / "data"
    print(f"annpred quickstart on {hw.cpu_model()} ({hw.cpu_count()} cores) as {hw_id}")
    print(f"step 1/4: measuring {', '.join(KERNELS)} for about {budget:.0f} s "
          f"(1 thread; warm-up, >=5 repeats, median; shuffled order)")
    csvs = []
    for name in KERNELS:
        path = data_dir / f"quickstart_{name}.csv"
        res = profile(name, path, n_threads=1, samples=4000, seed=seed,
                      time_budget=budget / len(KERNELS), min_time=0.005)
        print(f"  {name}: {res.written} new rows in {path}")
        csvs.append(path)

    print("step 2/4: training one network per combination (75% of the points)")
    df = load_profiles(csvs)
    df = df[df["hardware"] == hw_id]
    reports = train_frame(df, out_dir, seed=seed, n_train=None if len(df) < 40 else "auto")
    print()
    print("step 3/4: held-out accuracy (points never used in training)")
    rows = []
    for r in reports:
        g = df[(df.kernel == r.kernel) & (df.variant == r.variant)]
        noise = g["runtime_cv"].median() * 100 if "runtime_cv" in g else float("nan")
        rows.append([f"{r.kernel}/{r.variant}", r.n_train, r.n_holdout,
                     f"{r.holdout_mape:.1f}%" if r.holdout_mape is not None else "-",
                     f"{noise:.1f}%", r.n_params, f"{r.train_time_s:.1f}s"])
    _table(rows, ["combination", "train", "test", "test MAPE", "repeat CV", "params", "fit"])
    mapes = [r.holdout_mape for r in reports if r.holdout_mape is not None]
    if mapes:
        print(f"median held-out MAPE {np.median(mapes):.1f}% over {len(mapes)} models "
              "(a short calibration; `annpred profile` with more samples does better)")

    print()
    print("step 4/4: decisions: predicted fastest variant vs measured fastest")
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
    print(f"models saved under {out_dir} (used by `annpred predict` and `annpred choose`)")
    print(f"quickstart took {time.perf_counter() - t_all:.0f} s")
    return 0


def cmd_quickstart(args) -> int:
    from annpred import validate

    if args.out is not None:
        validate.output_dir(args.out)
    validate.seed(args.seed)
    return run(budget=args.budget, out=args.out, seed=args.seed)


def register(sub) -> None:
    s = sub.add_parser("quickstart", help="calibrate this machine briefly, train, report")
    s.add_argument("--budget", type=float, default=120.0, help="seconds of measuring")
    s.add_argument("--out", default=None, help="model directory (default: user models)")
    s.add_argument("--seed", type=int, default=0, help="seed of sampling and training (default 0)")
    s.set_defaults(func=cmd_quickstart)
