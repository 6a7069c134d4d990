"""``annpred profile``: measure a kernel's variants on this machine into a CSV."""
from __future__ import annotations



def cmd_profile(args) -> int:
    from annpred.measure.profiler import profile

    from annpred import validate as v

    v.integer(args.samples, "--samples", 1, 10**8)
    v.seed(args.seed)
    v.integer(args.pass_id, "--pass", 0, 10**6)
    if args.first is not None:
        v.integer(args.first, "--first", 1)
    if args.time_budget is not None:
        v.number(args.time_budget, "--time-budget", positive=True)
    v.number(args.min_time_ms, "--min-time-ms", positive=True, max_abs=1e6)
    v.output_file(args.out, "--out")
    res = profile(args.kernel, args.out, variants=args.variant, n_threads=args.threads,
                  samples=args.samples, sampler=args.sampler, seed=args.seed,
                  pass_id=args.pass_id, progress=not args.quiet, check=args.check,
                  first=args.first, time_budget=args.time_budget,
                  min_time=args.min_time_ms / 1e3, hardware=args.hardware,
                  accel_mode=args.accel_mode, reference=args.reference,
                  fresh_inputs=args.fresh_inputs)
    print(res.summary())
    return 0


def register(sub) -> None:
    s = sub.add_parser("profile", help="measure a kernel's variants on this machine")
    s.add_argument("kernel", help="catalog kernel to measure (see `annpred kernels`)")
    s.add_argument("--variant", action="append", help="variant to measure (repeatable; "
                   "default: all that run here)")
    s.add_argument("--threads", type=int, default=1,
                   help="threads for every library that spawns them; part of the hardware id "
                        "(default 1)")
    s.add_argument("--samples", type=int, default=300,
                   help="points to measure per variant (with --sampler pr: the budget, sweeps "
                        "included; default 300)")
    s.add_argument("--sampler", default="random", help="random (default) or pr (performance "
                   "representatives: 1-D sweeps of each integer parameter first, whose steps "
                   "train --steps auto detects)")
    s.add_argument("--seed", type=int, default=0,
                   help="seed of the sampler and of the inputs (default 0)")
    s.add_argument("--pass", dest="pass_id", type=int, default=0,
                   help="measurement pass (re-measure the same points with --pass 1)")
    s.add_argument("--first", type=int, default=None,
                   help="measure only the first N sampled points (for re-measurement passes)")
    s.add_argument("--time-budget", type=float, default=None,
                   help="stop (cleanly) after this many seconds")
    s.add_argument("--min-time-ms", type=float, default=20.0,
                   help="repeat each measurement for at least this long (default 20)")
    s.add_argument("--check", action="store_true", help="check results against the reference")
    s.add_argument("--reference", action="store_true",
                   help="time a fixed reference kernel after every point and record it "
                        "(column ref_s) for drift correction (train --drift-correct)")
    inputs = s.add_mutually_exclusive_group()
    inputs.add_argument("--fresh-inputs", action="store_true", default=None,
                        help="rotate each point's runs through distinct input sets (column "
                             "input_sets), so that no run replays the data of the one before: "
                             "repeating one input lets the branch predictor learn it, which "
                             "makes small kernels with data-dependent branches (max pooling) "
                             "run up to 3.5x faster than on new data. Default: as the rows "
                             "already in --out were measured; in a new file, as the kernel "
                             "declares (on for maxpool)")
    inputs.add_argument("--same-inputs", dest="fresh_inputs", action="store_false",
                        default=None,
                        help="time every run of a point on the same input (the opposite of "
                             "--fresh-inputs)")
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    s.add_argument("--out", required=True, help="CSV to write (appended to / resumed)")
    s.add_argument("--hardware", default=None,
                   help="sim-<name>: rows from a modelled accelerator's fast model (annpred "
                        "accel list) instead of measuring this machine (conv2d, matmul)")
    s.add_argument("--accel-mode", choices=("user", "calc"), default="user",
                   help="with --hardware sim-*: finite (user, default) or ideal (calc) DRAM "
                        "bandwidth")
    s.set_defaults(func=cmd_profile, interrupted="rows measured so far are kept in {out} (the same command resumes)")
