"""``annpred evaluate``: the accuracy study on profiling CSVs (see :mod:`annpred.evaluate`).

Cheap to import: pandas, sklearn and torch are imported when the command runs.
"""
from __future__ import annotations

import shlex
import sys

from annpred.cli.common import (add_key_options, add_space_options, add_transfer_option,
                                print_json)
from annpred.errors import ParameterError


# upper bounds of the numeric options: far above any real study, low enough that a typo is
# refused at once rather than running for ever
MAX_ROWS = 10**8
LIMITS = {"n_train": MAX_ROWS, "n_test": MAX_ROWS, "seeds": 1000, "curve_seeds": 1000,
          "jobs": 4096}


def _ints(text: str, what: str) -> tuple[int, ...]:
    try:
        vals = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise ParameterError(f"{what}: expected comma-separated integers, got {text!r}") from None
    if any(v < 1 or v > MAX_ROWS for v in vals):
        raise ParameterError(f"{what}: sizes must be between 1 and {MAX_ROWS}, got "
                             f"{text if len(text) <= 60 else text[:50] + '...'!r}")
    return vals


MAX_NOTES_BYTES = 1 << 20


def _notes(path) -> str | None:
    """The text of ``--notes`` (a regular UTF-8 file), read before any work."""
    from annpred import validate

    if path is None:
        return None
    if not path.strip():
        raise ParameterError("--notes: no file given")
    data = validate.read_limited(path, "--notes", MAX_NOTES_BYTES, ParameterError)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise ParameterError(f"--notes {path}: not UTF-8 text") from None


def cmd_evaluate(args) -> int:
    from annpred.data import profiles as _data
    from annpred import study as E
    from annpred.study.zoo import DEFAULT_MODELS

    from annpred import validate

    if args.models is not None and not args.models.strip(", "):
        raise ParameterError("--models: no model named (leave it out for the default set)")
    models = (tuple(validate.unique([m.strip() for m in args.models.split(",") if m.strip()],
                                    "--models"))
              if args.models else DEFAULT_MODELS)
    unknown = [m for m in models if m not in E.MODELS]
    if unknown:
        raise ParameterError(f"unknown model(s) {', '.join(unknown)}; models: "
                             f"{', '.join(E.MODELS)}")
    for name, hi in LIMITS.items():  # --seeds 1e22 ran for ever
        validate.integer(getattr(args, name), f"--{name.replace('_', '-')}",
                         0 if name == "curve_seeds" else 1, hi)
    from annpred.spec.machine import cpu_count

    if args.jobs > cpu_count():  # --jobs 1000: a thousand processes, each importing torch
        raise ParameterError(f"--jobs must be at most this machine's {cpu_count()} cores, "
                             f"got {args.jobs}")
    sizes = () if args.no_curves else _ints(args.curve_sizes, "--curve-sizes")

    validate.output_dir(args.out)
    notes = _notes(args.notes)  # before the study: a FIFO blocked, a typo lost the run
    feats = validate.feature_list([f.strip() for f in args.features.split(",")]
                                  if args.features else None, args.target)
    complexity = None
    if args.complexity == "auto":  # the automatic search is a model of its own
        if "NN+C-auto" not in models:
            models = (*models, "NN+C-auto")
    elif args.complexity:  # checked against each combination's parameters
        complexity = {"complexity": args.complexity}
    nn = {}
    if args.max_epochs is not None:
        nn["max_epochs"] = validate.integer(args.max_epochs, "--max-epochs", 1, 10**6)
    df = _data.load_profiles(args.csv, target=args.target, features=feats, kernel=args.kernel,
                             variant=args.variant, hardware=args.hardware,
                             drift_correct=args.drift_correct,
                             problem_size=args.problem_size, constants=args.constants,
                             transfer=args.transfer)
    cfg = E.Config(n_train=args.n_train, n_test=args.n_test, seeds=args.seeds, models=models,
                   curve_sizes=sizes, curve_seeds=0 if args.no_curves else args.curve_seeds,
                   jobs=args.jobs, nn_options=nn)
    from pathlib import Path

    ckpt = Path(args.out) / ".evaluate_checkpoint.jsonl"  # an interrupted run resumes
    res = E.evaluate(df, cfg, features=feats, complexity=complexity,
                     progress=not args.quiet, cost=not args.no_cost, checkpoint=ckpt)
    command = args.command_line or ("annpred " + " ".join(shlex.quote(a) for a in sys.argv[1:]))
    paths = E.write_outputs(res, args.out, plots=not args.no_plots, command=command,
                            notes=notes)
    verdict = None
    if "NN+C" in models:
        v = E.verdicts(res.summary)
        fs = E.floor_summary(res)
        if len(v):
            verdict = {"combinations": len(v), "beats_all": int(v.beats_all.sum()),
                       "median_ratio_to_floor": fs["median_ratio"],
                       "median_floor_pct": fs["median_floor"]}
    ckpt.unlink(missing_ok=True)
    if args.json:
        print_json(_report(res, paths, args.out, models, verdict))
        return 0
    print(E.headline_markdown(res))
    if verdict is not None:
        print(f"\nNN+C at or below every baseline on {verdict['beats_all']} of "
              f"{verdict['combinations']} combinations; NN+C / noise floor: median "
              f"{verdict['median_ratio_to_floor']:.2f}x (median floor "
              f"{verdict['median_floor_pct']:.2f}%)")
    print(f"\nwrote {len(paths)} files into {args.out} in {res.timings['total_s']:.0f} s")
    return 0


# headline columns (annpred.study.report.headline) in percent: ``_pct`` in --json
_PCT = ("median_mape", "mean_mape", "worst_mape", "median_filtered_mape", "median_within10",
        "median_mdape")


def _report(res, paths, out, models, verdict) -> dict:
    """``evaluate --json``: what was written, and the headline table (one row per model)."""
    from annpred import study as E

    rows = E.headline(res.summary).to_dict(orient="records")
    return {"out": str(out), "files": [str(p) for p in paths],
            "total_s": res.timings["total_s"], "models": list(models),
            "n_combinations": len(res.combos),
            "headline": [{(f"{k}_pct" if k in _PCT else k): v for k, v in r.items()}
                         for r in rows],
            "nn_c_verdict": verdict}


def register(sub) -> None:
    s = sub.add_parser(
        "evaluate", help="accuracy study: every model on the same splits, per combination",
        description="For every kernel/variant/hardware combination in the CSVs: train Cons, "
        "LR+C, RF+C, GBT+C, NN, NN+C and NN+C-L on the same training draws and score them "
        "on held-out points (the points re-measured in a second pass when present, which "
        "also gives the noise floor). Writes accuracy.csv, accuracy.md, learning curves, "
        "a cost table and plots into --out.")
    s.add_argument("csv", nargs="+", help="profiling CSV(s), Kernel Tuner cache or T4 "
                   "results files (.json[.gz])")
    s.add_argument("--out", required=True, help="output directory")
    s.add_argument("--n-train", type=int, default=250, help="training points (default 250)")
    s.add_argument("--n-test", type=int, default=250,
                   help="held-out points when the CSV has no second pass (default 250)")
    s.add_argument("--seeds", type=int, default=5, help="training draws (default 5)")
    s.add_argument("--models", help="comma-separated subset of Cons,LR+C,RF+C,GBT+C,NN,NN+C,"
                   "NN+C-L,NN+C-auto (default: all but NN+C-auto)")
    s.add_argument("--curve-sizes", default="25,50,100,250,500,1000",
                   help="comma-separated training sizes of the learning curves (those the pool "
                   "can supply; default 25,50,100,250,500,1000)")
    s.add_argument("--curve-seeds", type=int, default=2, help="seeds per learning-curve size "
                   "(default 2)")
    s.add_argument("--no-curves", action="store_true", help="skip the learning curves")
    s.add_argument("--no-cost", action="store_true", help="skip the cost benchmark")
    s.add_argument("--no-plots", action="store_true", help="skip the PNGs")
    s.add_argument("--jobs", type=int, default=1, help="worker processes (default 1; at most this "
                   "machine's cores)")
    s.add_argument("--max-epochs", type=int, default=None,
                   help="override the networks' maximum epochs (faster, less accurate)")
    s.add_argument("--target", default="runtime_s", help="runtime column, in seconds "
                   "(default runtime_s)")
    s.add_argument("--drift-correct", action="store_true",
                   help="scale each runtime by the reference kernel timed beside it "
                        "(column ref_s, written by `profile --reference`): runtime * "
                        "median(ref_s) / (running median of ref_s around the point)")
    s.add_argument("--features", help="comma-separated feature columns (external CSVs)")
    s.add_argument("--complexity", help="complexity expression over --features, or 'auto' "
                   "(adds the NN+C-auto model)")
    add_key_options(s, "evaluate")
    add_space_options(s)
    add_transfer_option(s)
    s.add_argument("--notes", help="Markdown file appended to accuracy.md")
    s.add_argument("--command-line", help=argparse_suppress(), default=None)
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    s.add_argument("--json", action="store_true",
                   help="print a JSON summary instead of the tables: out, files written, "
                   "total_s, models, n_combinations, headline (one object per model, MAPEs "
                   "in _pct) and nn_c_verdict")
    s.set_defaults(func=cmd_evaluate, interrupted="finished fits are kept in "
                   "{out}/.evaluate_checkpoint.jsonl (the same command resumes)")


def argparse_suppress():
    import argparse

    return argparse.SUPPRESS
