"""``annpred train``: one model per (kernel, variant, hardware) in profiling CSVs."""
from __future__ import annotations

import sys
import warnings

from annpred.cli.common import (add_key_options, add_space_options, add_transfer_option,
                                print_json, show_warnings)
from annpred.errors import ParameterError


def cmd_train(args) -> int:
    from annpred.data import kerneltuner as kt
    from annpred.model.trainer import check_options, train_csvs

    feats = [f.strip() for f in args.features.split(",")] if args.features is not None else None
    steps = _parse_steps(args.steps)
    choice = _parse_choice_rows(args.choice_rows)
    # every option is checked before any CSV is read or anything is written
    check_options(features=feats, target=args.target, n_train=args.n_train, seed=args.seed,
                  steps=steps, kernel=args.kernel, variant=args.variant,
                  hardware=args.hardware, out=args.out)
    kt.space_arguments(args.problem_size, args.constants)

    def show(r):  # with --json the lines are progress on stderr; stdout holds the JSON
        where = sys.stderr if args.json else sys.stdout
        if args.json and args.quiet:
            return
        ho = (f"  holdout MAPE {r.holdout_mape:6.2f}% (n={r.n_holdout}; the training median "
              f"for every point: {r.constant_mape:.2f}%)" if r.holdout_mape is not None else "")
        st = ("  steps " + ", ".join(f"{k}:{v}" for k, v in r.steps.items())
              if getattr(r, "steps", None) else "")
        fit = f" (fit on {r.n_fit})" if r.n_fit is not None and r.n_fit < r.n_train else ""
        if r.n_choice:
            fit += f" (chosen on {r.n_choice})"
        print(f"{r.kernel}/{r.variant}/{r.hardware}: {r.error_label} {r.val_mape:6.2f}%  "
              f"params {r.n_params}  n={r.n_train}{fit}  {r.train_time_s:.2f}s{ho}{st}",
              file=where, flush=True)
        if getattr(r, "auto", False):
            chosen = "; ".join(f"{k} = {v}" for k, v in (r.complexity or {}).items())
            print(f"  complexity (auto): {chosen or 'none (no candidate validated better)'}",
                  file=where, flush=True)

    def progress(msg):
        if not args.quiet:
            print(f"annpred: {msg}", file=sys.stderr, flush=True)

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UserWarning)
        reports = train_csvs(args.csv, args.out, target=args.target, features=feats,
                             complexity=args.complexity, kernel=args.kernel,
                             variant=args.variant, hardware=args.hardware, seed=args.seed,
                             n_train=args.n_train, on_done=show, steps=steps,
                             progress=progress, drift_correct=args.drift_correct,
                             problem_size=args.problem_size, constants=args.constants,
                             transfer=args.transfer, **choice)
    show_warnings(caught)
    if args.json:
        print_json({"out": str(args.out), "models": [report_json(r) for r in reports]})
        return 0
    print(f"trained {len(reports)} model(s) into {args.out}")
    return 0


def report_json(r) -> dict:
    """One :class:`~annpred.model.trainer.TrainReport` as ``train --json`` prints it
    (percentages in ``_pct``, seconds in ``_s``; ``model`` as in ``halide train --json``)."""
    return {"kernel": r.kernel, "variant": r.variant, "hardware": r.hardware,
            "model": None if r.path is None or not r.written else str(r.path),
            "n_train": r.n_train, "n_fit": r.n_fit, "n_val": r.n_val,
            # the training rows that chose features, loss and start (null: every one)
            "n_choice": r.n_choice,
            "n_holdout": r.n_holdout,
            # no validation split (n_val 0, under 20 rows): the training rows' error
            "val_mape_pct": r.val_mape,
            "val_mape_of": "training rows" if r.n_val == 0 else "validation rows",
            "holdout_mape_pct": r.holdout_mape,
            "constant_holdout_mape_pct": r.constant_mape,
            "n_params": r.n_params, "train_time_s": r.train_time_s,
            "complexity": dict(r.complexity or {}), "complexity_auto": bool(r.auto),
            "steps": dict(r.steps) if r.steps else None}


def _parse_steps(text):
    """--steps: auto (detect from 1-D sweeps in the data), none, or param=period,..."""
    if text is None or text == "auto":
        return "auto"
    if text == "none":
        return None
    out = {}
    for item in text.split(","):
        name, eq, period = item.partition("=")
        name = name.strip()
        if not name or not eq:
            raise ParameterError(f"--steps: expected auto, none or param=period,..., "
                                 f"got {text!r}")
        if name in out:
            raise ParameterError(f"--steps: {name!r} is given twice")
        try:
            out[name] = int(period)
        except ValueError:
            raise ParameterError(f"--steps: expected auto, none or param=period,..., "
                                 f"got {text!r}") from None
        if out[name] < 2:
            raise ParameterError(f"--steps: period of {name!r} must be >= 2")
    return out


def _parse_choice_rows(text) -> dict:
    """--choice-rows: a number of rows (>= 8) or all; {} when not given (the default)."""
    if text is None:
        return {}
    if text.strip().lower() == "all":
        return {"choice_rows": None}
    try:
        n = int(text)
    except ValueError:
        n = None
    if n is None or n < 8:
        raise ParameterError(f"--choice-rows: expected a number of rows (at least 8) or all, "
                             f"got {text!r}")
    return {"choice_rows": n}


def register(sub) -> None:
    s = sub.add_parser("train", help="train one model per combination in profiling CSVs")
    s.add_argument("csv", nargs="+", help="profiling CSV(s) (or external CSVs with "
                   "--target/--features), Kernel Tuner cache or T4 results files (.json[.gz])")
    s.add_argument("--out", default="models", help="model directory (default: models)")
    s.add_argument("--target", default="runtime_s", help="runtime column, in seconds "
                   "(default runtime_s)")
    s.add_argument("--drift-correct", action="store_true",
                   help="scale each runtime by the reference kernel timed beside it "
                        "(column ref_s, written by `profile --reference`): runtime * "
                        "median(ref_s) / (running median of ref_s around the point)")
    s.add_argument("--features", help="comma-separated feature columns")
    s.add_argument("--complexity", help="complexity expression over the feature columns, or "
                   "'auto': derive candidates from the columns (and the catalog entry, GPU "
                   "launch structure) and keep those that validate better on a split of the "
                   "training rows")
    add_key_options(s, "train")
    add_space_options(s)
    add_transfer_option(s)
    s.add_argument("--seed", type=int, default=0,
                   help="seed of the network initialisation and the validation split (default 0)")
    s.add_argument("--n-train", type=int, default=None,
                   help="train on this many rows per combination; hold the rest out")
    s.add_argument("--choice-rows", metavar="N|all",
                   help="with more training rows than N, choose features, loss and start on "
                        "N of them drawn at random, then fit the choice further on every "
                        "row (default 2000; all: choose on every row, slower on large "
                        "files)")
    s.add_argument("--steps", default="auto",
                   help="step-aware features: auto (detect from 1-D sweeps, as written by "
                        "--sampler pr), none, or param=period,... (default auto)")
    s.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    s.add_argument("--json", action="store_true",
                   help="print one JSON object at the end: out (the model directory) and "
                   "models, one object per combination (kernel, variant, hardware, model "
                   "file, n_train, n_val, n_holdout, val_mape_pct, holdout_mape_pct, "
                   "n_params, train_time_s, complexity, ...); the per-combination lines go "
                   "to stderr")
    s.set_defaults(func=cmd_train, interrupted="finished combinations are kept in "
                   "{out}/.train_checkpoint.jsonl (the same command resumes); no model "
                   "was written")
