"""``annpred calibrate --quick``: adapt models from another machine to this one in seconds."""
from __future__ import annotations


from annpred.cli.common import print_json
from annpred.errors import ParameterError


def _line(t) -> str:
    name = f"{t.kernel}/{t.variant}@{t.hardware}"
    if t.correction is None:
        return f"  {name}: {t.note or 'no probe fitted the budget'}"
    c = t.correction
    factor = float(__import__("math").exp(c["offset"]))
    return (f"  {name}: {c['n_probes']} probes in {t.seconds:.2f} s"
            + (f" (+{t.setup_s:.1f} s first run)" if t.setup_s >= 0.1 else "") + "; this machine runs "
            f"{factor:.2f}x the model's prediction ({c['form']}"
            + (f", slope {c['slope']:+.2f}" if c["form"] == "factor+slope" else "")
            + (f", {len(c['weights'])} inputs" if c["form"] == "features" else "")
            + f"); probe MAPE {c['probe_mape_before']:.1f}% -> {c['probe_mape_after']:.1f}%")


def cmd_calibrate(args) -> int:
    from annpred.measure.calibrate import calibrate
    from annpred.spec import hardware as hw

    if not args.quick:
        raise ParameterError("only the quick calibration exists: pass --quick (for a full "
                             "one, profile and train here: annpred quickstart)")
    from annpred import validate

    validate.number(args.budget, "--budget", positive=True, max_abs=1e7)
    # before the banner line, so that a bad value is the one line the user sees
    validate.integer(args.threads, "--threads", 1, hw.cpu_count())
    validate.not_empty(args.models, "--models")
    if args.out is not None:
        validate.output_dir(args.out, "--out")
    m = hw.machine()
    if not args.json:
        print(f"calibrating models for this machine: {m['slug']} (fingerprint "
              f"{m['fingerprint']}), {args.threads} thread(s), budget {args.budget:g} s")
    res = calibrate(args.kernel or None, models=args.models, out=args.out,
                    budget=args.budget, threads=args.threads, variants=args.variant,
                    force=args.force, progress=not args.quiet and not args.json,
                    on_target=None if args.json else lambda t: print(_line(t), flush=True))
    if args.json:
        print_json({"machine": res.machine, "path": None if res.path is None else str(res.path),
                    "seconds": res.seconds,
                    "targets": [{"kernel": t.kernel, "variant": t.variant,
                                 "hardware": t.hardware, "seconds": t.seconds,
                                 "setup_s": t.setup_s,
                                 "n_probes": len(t.probes), "correction": t.correction,
                                 "note": t.note} for t in res.targets]})
        return 0
    if not res.targets:
        print("nothing to adapt: every model of these kernels at this thread count was "
              "measured on this machine (--force re-probes them)")
    elif res.path is None:
        print("no correction fitted (raise --budget)")
    else:
        n = sum(t.correction is not None for t in res.targets)
        print(f"adapted {n} model(s) in {res.seconds:.1f} s; corrections in {res.path} "
              "(used by predict, choose, dispatch and export)")
    return 0


def register(sub) -> None:
    s = sub.add_parser("calibrate", help="adapt models measured on another machine to this "
                       "one (a few probe measurements per kernel variant)")
    s.add_argument("kernel", nargs="*", help="kernels (default: every kernel with models)")
    s.add_argument("--quick", action="store_true", help="a short probe (the only mode)")
    s.add_argument("--budget", type=float, default=10.0,
                   help="seconds of measuring in all (default 10)")
    s.add_argument("--threads", type=int, default=1,
                   help="adapt the models of this thread count (default 1)")
    s.add_argument("--variant", action="append", help="only these variants (repeatable)")
    s.add_argument("--models", help="model directory to adapt (default: calibrated, else "
                   "shipped)")
    s.add_argument("--out", help="where the calibration file goes (default: the user's model "
                   "directory)")
    s.add_argument("--force", action="store_true",
                   help="also probe models measured on this machine")
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    s.add_argument("--json", action="store_true", help="print the calibration report as JSON")
    s.set_defaults(func=cmd_calibrate, interrupted="nothing was saved (the corrections "
                   "are written at the end); the same command starts over")
