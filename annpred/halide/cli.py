"""``annpred halide tune PIPELINE --size ...``: pick a Halide schedule by prediction.

Cheap to import: halide, torch and pandas are imported only when the command runs.
"""
from __future__ import annotations

import json
import sys


def register(subparsers) -> None:
    """Add ``halide`` (with ``tune``) to the ``annpred`` subcommands."""
    h = subparsers.add_parser("halide", help="Halide pipelines: pick schedules by prediction")
    hs = h.add_subparsers(dest="halide_command", metavar="SUBCOMMAND")
    hs.required = True
    t = hs.add_parser("tune", help="predict every candidate schedule at a size and compile "
                      "the predicted best (blur, matmul, unsharp)")
    t.add_argument("pipeline", help="pipeline name: blur, matmul or unsharp")
    t.add_argument("--size", required=True,
                   help="input size: W,H for blur/unsharp, M,N,K for matmul (one number: "
                        "square/cube)")
    t.add_argument("--candidates", type=int, default=128,
                   help="number of candidate schedules to predict (default 128, as in "
                        "experiments/halide.py)")
    t.add_argument("--models", default=None,
                   help="model directory (default: the shipped trained/)")
    t.add_argument("--threads", type=int, default=2,
                   help="threads the pipeline runs with (picks the model; default 2)")
    t.add_argument("--compare", action="store_true",
                   help="also autoschedule (Mullapudi2016, Adams2019, Li2018) and compile "
                        "Halide's default schedule, then time them all here")
    t.add_argument("--print-schedule", action="store_true",
                   help="print the chosen schedule as a runnable Halide Python script")
    t.add_argument("--json", action="store_true", help="print a JSON object")
    t.add_argument("--reprofile", action="store_true",
                   help="when the schedule model was measured on another machine: profile "
                        f"{REPROFILE['n_schedules']} schedules here first (bounded; the time "
                        "is estimated before), train, and select with that model")
    t.set_defaults(func=cmd_tune)


# bounded re-profile on a mismatched machine: random schedules x sizes (the Halide profiler's
# sampler), then a model trained on them; saved as the user's model of this machine
REPROFILE = {"n_schedules": 40, "sizes_per_schedule": 3, "n_sizes": 10}


def _reprofile_estimate(p, model_path, compile_here: float | None = None) -> float | None:
    """Seconds a bounded re-profile should take (before training): compiling each schedule
    (as long as the chosen one took here, else as recorded in the profile the model was
    trained on) and timing each point (as recorded there; None without that profile)."""
    import csv
    from pathlib import Path
    from statistics import median

    data = Path(model_path).parent.parent / "data" / f"halide_{p.name}.csv"
    try:
        with open(data, newline="") as f:
            rows = list(csv.DictReader(f))
        comp = compile_here or median(float(r["compile_s"]) for r in rows)
        run = median(max(float(r["runtime_s"]) * float(r["repeats"]), 0.02) for r in rows)
    except (OSError, KeyError, ValueError):
        return None
    n_points = REPROFILE["n_schedules"] * REPROFILE["sizes_per_schedule"] * 1.1
    return REPROFILE["n_schedules"] * comp + n_points * run


def _reprofile(p, threads, out_root):
    from ..model.layout import user_root
    from .profile import profile_pipeline
    from .select import save_schedule_model, train_model
    from ..spec import hardware as hw

    root = out_root or user_root()
    hw_dir = root / hw.cpu_id(threads)
    df = profile_pipeline(p, threads=threads, out=hw_dir / "data" / f"halide_{p.name}.csv",
                          **REPROFILE)
    model = train_model(p, df)
    path = save_schedule_model(model, p, hw_dir / "halide" / f"{p.name}.json", threads,
                               extra={"reprofile": dict(REPROFILE)})
    print(f"re-profiled {len(df)} points of {REPROFILE['n_schedules']} schedules; model "
          f"saved to {path}", file=sys.stderr)
    return root


def cmd_tune(args) -> int:
    from ..errors import ParameterError
    from ..threads import fix_threads
    from .pipelines import get

    p = get(args.pipeline)  # ParameterError listing the known pipelines
    sizes = p.parse_size(args.size)
    if args.candidates < 1:
        raise ParameterError(f"--candidates must be >= 1, got {args.candidates}")
    if args.threads < 1:
        raise ParameterError(f"--threads must be >= 1, got {args.threads}")
    fix_threads(args.threads)
    from .select import select_schedule

    chosen = select_schedule(p, sizes, candidates=args.candidates, models=args.models,
                             threads=args.threads)
    if not chosen.info.get("machine_match", True):
        from .select import model_path

        est = _reprofile_estimate(p, model_path(p.name, args.models, args.threads),
                                  chosen.compile_s or None)
        took = "" if est is None else f", about {est:.0f} s plus training"
        if args.reprofile:
            import time
            from pathlib import Path

            t0 = time.perf_counter()
            print(f"re-profiling {p.name} on this machine ({REPROFILE['n_schedules']} "
                  f"schedules x {REPROFILE['sizes_per_schedule']} sizes{took})",
                  file=sys.stderr)
            root = _reprofile(p, args.threads, Path(args.models) if args.models else None)
            chosen = select_schedule(p, sizes, candidates=args.candidates, models=root,
                                     threads=args.threads)
            print(f"re-profile took {time.perf_counter() - t0:.0f} s", file=sys.stderr)
        else:
            print(f"note: the {p.name} schedule model was measured on another machine; a "
                  "scale factor cannot fix a ranking: re-profile here with --reprofile "
                  f"({REPROFILE['n_schedules']} schedules x "
                  f"{REPROFILE['sizes_per_schedule']} sizes{took})", file=sys.stderr)
    out = {"pipeline": p.name, "size": p.size_label(sizes), "schedule": chosen.schedule,
           "predicted_s": chosen.info["predicted_s"], "in_range": chosen.info["in_range"],
           "candidates": chosen.info["n_candidates"], "tuning_s": chosen.tuning_s,
           "compile_s": chosen.compile_s,
           "machine_match": chosen.info.get("machine_match", True)}
    if args.compare:
        out["compare"] = _compare(p, sizes, chosen, args.threads)
    if args.print_schedule or args.json:
        out["code"] = p.schedule_code(chosen.schedule)
    if args.json:
        print(json.dumps(out, indent=1, default=float))
        return 0
    print(f"pipeline {p.name} at {out['size']}: chose {json.dumps(chosen.schedule)}")
    print(f"  predicted {out['predicted_s'] * 1e3:.3f} ms among {out['candidates']} candidates "
          f"(selection {out['tuning_s'] * 1e3:.2f} ms, compile {out['compile_s']:.2f} s)"
          + ("" if out["in_range"] else "  [size outside the training range]"))
    if args.compare:
        print(f"  {'method':<16}{'runtime ms':>12}{'tuning s':>11}")
        for r in out["compare"]:
            rt = "failed" if r["runtime_s"] is None else f"{r['runtime_s'] * 1e3:.3f}"
            print(f"  {r['method']:<16}{rt:>12}{r['tuning_s']:>11.4f}")
    if args.print_schedule:
        print()
        sys.stdout.write(out["code"])
    return 0


def _compare(p, sizes, chosen, threads) -> list[dict]:
    from ..measure.protocol import measure
    from .autoschedule import CPU_AUTOSCHEDULERS, AutoschedulerError, autoschedule
    from .profile import MEASURE
    from .runtime import compile_schedule

    compiled = [("annpred", chosen)]
    for m in CPU_AUTOSCHEDULERS:
        try:
            compiled.append((m, autoschedule(p, sizes, m, parallelism=threads)))
        except AutoschedulerError as exc:
            print(f"annpred: warning: {exc}", file=sys.stderr)
            compiled.append((m, None))
    compiled.append(("default", compile_schedule(p, None)))
    inputs, outbuf = p.make_inputs(sizes), p.make_output(sizes)
    rows = []
    for name, c in compiled:
        if c is None:
            rows.append({"method": name, "runtime_s": None, "tuning_s": float("nan")})
            continue
        t = measure(c.bind(inputs, outbuf), **MEASURE)
        rows.append({"method": name, "runtime_s": t.median_s, "tuning_s": c.tuning_s,
                     "compile_s": c.compile_s})
    return rows
