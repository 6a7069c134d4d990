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
    t.set_defaults(func=cmd_tune)


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
    out = {"pipeline": p.name, "size": p.size_label(sizes), "schedule": chosen.schedule,
           "predicted_s": chosen.info["predicted_s"], "in_range": chosen.info["in_range"],
           "candidates": chosen.info["n_candidates"], "tuning_s": chosen.tuning_s,
           "compile_s": chosen.compile_s}
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
