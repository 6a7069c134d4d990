"""``annpred profile``: measure a kernel's variants on this machine into a CSV."""
from __future__ import annotations

from annpred.errors import ParameterError


def cmd_profile(args) -> int:
    from annpred.measure.profiler import profile

    if args.samples < 1:
        raise ParameterError(f"--samples must be >= 1, got {args.samples}")
    res = profile(args.kernel, args.out, variants=args.variant, n_threads=args.threads,
                  samples=args.samples, sampler=args.sampler, seed=args.seed,
                  pass_id=args.pass_id, progress=not args.quiet, check=args.check,
                  first=args.first, time_budget=args.time_budget,
                  min_time=args.min_time_ms / 1e3)
    print(f"{res.path}: {res.written} rows measured, {res.skipped} already there "
          f"({res.total} in all)")
    return 0


def register(sub) -> None:
    s = sub.add_parser("profile", help="measure a kernel's variants on this machine")
    s.add_argument("kernel")
    s.add_argument("--variant", action="append", help="variant to measure (repeatable; "
                   "default: all that run here)")
    s.add_argument("--threads", type=int, default=1)
    s.add_argument("--samples", type=int, default=300)
    s.add_argument("--sampler", default="random", help="random or pr")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--pass", dest="pass_id", type=int, default=0,
                   help="measurement pass (re-measure the same points with --pass 1)")
    s.add_argument("--first", type=int, default=None,
                   help="measure only the first N sampled points (for re-measurement passes)")
    s.add_argument("--time-budget", type=float, default=None,
                   help="stop (cleanly) after this many seconds")
    s.add_argument("--min-time-ms", type=float, default=20.0,
                   help="repeat each measurement for at least this long (default 20)")
    s.add_argument("--check", action="store_true", help="check results against the reference")
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    s.add_argument("--out", required=True, help="CSV to write (appended to / resumed)")
    s.set_defaults(func=cmd_profile)
