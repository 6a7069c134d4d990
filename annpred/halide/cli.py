"""``annpred halide {tune,profile,train}``: Halide schedule selection from the command line.

Cheap to import: halide, torch and pandas are imported only when a command runs.
"""
from __future__ import annotations

import json
import sys

from annpred.cli.common import print_json


def _names() -> str:
    from .pipelines import PIPELINES

    return ", ".join(sorted(PIPELINES))


def register(subparsers) -> None:
    """Add ``halide`` (with ``tune``, ``profile``, ``train``) to the ``annpred`` subcommands."""
    h = subparsers.add_parser("halide", help="Halide pipelines: pick schedules by prediction")
    hs = h.add_subparsers(dest="halide_command", metavar="SUBCOMMAND")
    hs.required = True
    t = hs.add_parser("tune", help="predict every candidate schedule at a size and compile "
                      "the predicted best")
    t.add_argument("pipeline", help="pipeline name (`annpred halide list` shows them)")
    t.add_argument("--size", required=True,
                   help="input size, comma-separated in the pipeline's size order (one "
                        "number: square/cube)")
    t.add_argument("--candidates", type=int, default=128,
                   help="number of candidate schedules to predict (default 128; at most "
                        "the schedules the space holds: more predicts them all)")
    t.add_argument("--models", default=None,
                   help="model root, hardware folder or .json file (default: your models "
                        "in $ANNPRED_MODELS, then the shipped ones)")
    t.add_argument("--threads", type=int, default=2,
                   help="threads the pipeline runs with (picks the model; default 2)")
    t.add_argument("--compare", action="store_true",
                   help="also autoschedule (Mullapudi2016, Adams2019, Li2018) and compile "
                        "Halide's default schedule, then time them all together here, "
                        "with annpred's predicted time beside its measured time")
    t.add_argument("--rounds", type=int, default=3,
                   help="shuffled timing rounds of --compare (default 3)")
    t.add_argument("--emit", metavar="DIR", default=None,
                   help="write the chosen pipeline as a static library + C header "
                        "(ahead-of-time compiled) and the schedule as readable code into DIR")
    t.add_argument("--print-schedule", action="store_true",
                   help="print the chosen schedule as a runnable Halide Python script")
    t.add_argument("--json", action="store_true", help="print a JSON object")
    t.add_argument("--reprofile", action="store_true",
                   help="when the schedule model was measured on another machine: profile "
                        f"{REPROFILE['n_schedules']} schedules here first (bounded; the time "
                        "is estimated before), train, and select with that model")
    t.set_defaults(func=cmd_tune)

    pr = hs.add_parser("profile", help="measure sampled schedules of a pipeline on this "
                       "machine (resumable: run the same command again to continue)")
    pr.add_argument("pipeline", help="pipeline to profile (see `annpred halide list`)")
    pr.add_argument("--sampler", choices=("random", "pr", "refine"), default="random",
                    help="random schedules x sizes; PR (performance representatives: "
                         "a few schedules swept over sizes where tiles create steps); or "
                         "refine: add --budget points to an existing profile (--out) where "
                         "a model trained on it predicts the fastest schedules")
    pr.add_argument("--schedules", type=int, default=200, help="schedules to sample (default 200)")
    pr.add_argument("--sizes-per-schedule", type=int, default=5,
                    help="image/problem sizes measured per schedule (default 5)")
    pr.add_argument("--budget", type=int, default=None,
                    help="points to measure (PR; default: schedules x sizes-per-schedule; "
                         "refine: points marked refine in the profile when done, default 160)")
    pr.add_argument("--rounds", type=int, default=4,
                    help="refine: rounds, the model retrained before each with another "
                         "network seed (default 4)")
    pr.add_argument("--threads", type=int, default=2,
                    help="Halide threads (HL_NUM_THREADS); part of the hardware id (default 2)")
    pr.add_argument("--seed", type=int, default=0, help="seed of schedules and sizes (default 0)")
    pr.add_argument("--max-seconds", type=float, default=None,
                    help="stop after about this long (the CSV stays valid; rerun resumes)")
    pr.add_argument("--out", default=None,
                    help="profile CSV (default: <your models>/halide/<hardware>/data/"
                         "<pipeline>.csv)")
    pr.set_defaults(func=cmd_profile, interrupted="rows measured so far are kept "
                    "(the same command resumes)")

    tr = hs.add_parser("train", help="train a pipeline's schedule model from a profile")
    tr.add_argument("pipeline", help="pipeline whose schedule model to train")
    tr.add_argument("--data", default=None,
                    help="profile CSV (default: this machine's profile in your models, then "
                         "the shipped one)")
    tr.add_argument("--out", default=None,
                    help="model root (the model goes to OUT/halide/<hardware>/<pipeline>.json;"
                         " default: your models, $ANNPRED_MODELS) or a .json file")
    tr.add_argument("--threads", type=int, default=None,
                    help="train on the profile rows measured with this many threads (its "
                         "threads column); the model is filed under that count's hardware "
                         "id (default: the profile's one thread count; 2 without --data)")
    tr.add_argument("--json", action="store_true", help="print the training report as JSON")
    tr.set_defaults(func=cmd_train)

    ls = hs.add_parser("list", help="list the pipelines, their sizes and schedule knobs")
    ls.set_defaults(func=cmd_list)


# upper bounds of the numeric options: far above any real use, low enough that a typo
# (an extra zero or three) is refused before hours of profiling or an exhausted memory
MAX_POINTS = 100_000  # points one profile command plans (--budget, schedules x sizes)
MAX_ROUNDS = 1000  # --rounds


def _check_threads(threads: int) -> int:
    from ..validate import integer
    from .select import MAX_THREADS

    return integer(threads, "--threads", 1, MAX_THREADS)


def _check_profile_args(args) -> None:
    """Every numeric option of ``halide profile``, before anything is sampled or measured
    (``--seed -1`` reached numpy, ``--budget 0`` was taken for "unset")."""
    from ..errors import ParameterError
    from ..validate import integer, number, seed

    _check_threads(args.threads)
    seed(args.seed)
    integer(args.schedules, "--schedules", 1, MAX_POINTS)
    integer(args.sizes_per_schedule, "--sizes-per-schedule", 1, MAX_POINTS)
    integer(args.rounds, "--rounds", 1, MAX_ROUNDS)
    if args.budget is not None:
        integer(args.budget, "--budget", 1, MAX_POINTS)
    elif args.sampler != "refine" and args.schedules * args.sizes_per_schedule > MAX_POINTS:
        raise ParameterError(f"--schedules {args.schedules} x --sizes-per-schedule "
                             f"{args.sizes_per_schedule} is more than {MAX_POINTS:,} points")
    if args.max_seconds is not None:
        number(args.max_seconds, "--max-seconds", positive=True)


def cmd_list(args) -> int:
    from .pipelines import PIPELINES

    for name, p in sorted(PIPELINES.items()):
        print(f"{name:<16} sizes {','.join(p.size_names):<8} {p.description}")
        print(f"{'':<16} knobs: {', '.join(p.space.names)}")
    return 0


def cmd_profile(args) -> int:
    from .pipelines import get
    from .store import data_path, user_root

    p = get(args.pipeline)
    _check_profile_args(args)
    if args.out is not None:  # '' was taken for "the default", a FIFO blocked the resume
        from ..validate import output_file

        output_file(args.out, "--out")
    out = args.out or data_path(p.name, user_root(), args.threads)
    from .profile import profile_pipeline

    if args.sampler == "refine":
        from .sampling import refine_profile

        budget = 160 if args.budget is None else args.budget
        df = refine_profile(p, out, budget, rounds=args.rounds, seed=args.seed,
                            threads=args.threads, max_seconds=args.max_seconds)
        n_ref = int((df["sampler"] == "refine").sum()) if "sampler" in df.columns else 0
        short = (f"; --max-seconds ended it: the same command adds the other "
                 f"{budget - n_ref}" if args.max_seconds is not None and n_ref < budget else "")
        print(f"{len(df)} points of {p.name} in {out} ({n_ref} refinement points{short}); "
              f"train with `annpred halide train {p.name} --data {out}`")
        return 0
    plan = None
    if args.sampler == "pr":
        from .sampling import pr_plan

        budget = (args.schedules * args.sizes_per_schedule if args.budget is None
                  else args.budget)
        plan = pr_plan(p, budget, seed=args.seed)
    df = profile_pipeline(p, n_schedules=args.schedules,
                          sizes_per_schedule=args.sizes_per_schedule, seed=args.seed,
                          threads=args.threads, out=out, plan=plan, sampler=args.sampler,
                          max_seconds=args.max_seconds)
    left = df.attrs.get("left", 0)
    short = (f" ({left} of {df.attrs['planned']} planned points left: --max-seconds ended "
             "the run; the same command continues)" if left else "")
    print(f"{len(df)} points of {p.name} in {out}{short}; train with "
          f"`annpred halide train {p.name} --data {out}`")
    return 0


def cmd_train(args) -> int:
    from .pipelines import get
    from .select import train_pipeline
    from .store import data_path, user_root

    p = get(args.pipeline)
    threads = None if args.threads is None else _check_threads(args.threads)
    _check_train_paths(args)
    data = args.data
    if data is None:
        mine = data_path(p.name, user_root(), threads or 2)
        data = mine if mine.exists() else data_path(p.name, threads=threads or 2)
    model, path = train_pipeline(p, data, args.out, threads=threads)
    out = {"pipeline": p.name, "model": str(path), "data": str(data),
           "threads": int(model.threads_), "n_params": int(model.n_params_),
           "val_mape_pct": float(model.val_mape_),
           "tile_steps": bool(model.tile_steps_), "ragged": bool(model.ragged_),
           "form_cv": model.form_cv_}
    if args.json:
        print_json(out)
    else:
        what = ("validation MAPE" if getattr(model, "n_val_", 1)
                else "MAPE on the training rows (too few for a validation split)")
        print(f"trained {path} from {data} (rows at {out['threads']} "
              f"thread{'s' if out['threads'] != 1 else ''}): "
              f"{out['n_params']} parameters, {what} "
              f"{out['val_mape_pct']:.1f}%")
        if out["form_cv"]:
            tried = ", ".join(f"{_form(r)} {r['cv_mape_pct']:.1f}%" for r in out["form_cv"])
            print(f"complexity form {_form(out)} (cross-validated over schedules: {tried})")
    return 0


def _check_train_paths(args) -> None:
    """``--data`` and ``--out`` of ``halide train``, before the minutes of fitting: an
    empty ``--data`` read the current directory, an empty ``--out`` wrote into it, and a
    file where the model root must be a directory failed only after training."""
    from pathlib import Path

    from ..errors import ParameterError
    from ..validate import output_dir, output_file

    if args.data is not None and not args.data.strip():
        raise ParameterError("--data: no file given")
    if args.out is not None:
        if Path(args.out).suffix == ".json":
            output_file(args.out, "--out")
        else:
            output_dir(args.out, "--out")


def _form(r) -> str:
    """A complexity form as text: ``plain``, ``steps``, ``ragged`` or ``steps+ragged``."""
    return "+".join(n for n, on in (("steps", r["tile_steps"]), ("ragged", r["ragged"]))
                    if on) or "plain"


# bounded re-profile on a mismatched machine: random schedules x sizes (the Halide profiler's
# sampler), refined (below), then a model trained on them; saved as the user's model here
REPROFILE = {"n_schedules": 40, "sizes_per_schedule": 3, "n_sizes": 10}
# then points where the model of that profile predicts the fastest schedules (sampling.py)
REPROFILE_REFINE = {"budget": 40, "rounds": 2}


def _reprofile_estimate(p, model_path, compile_here: float | None = None) -> float | None:
    """Seconds a bounded re-profile should take (before training): compiling each schedule
    (as long as the chosen one took here, else as recorded in the profile the model was
    trained on) and timing each point (as recorded there; None without that profile)."""
    import csv
    from statistics import median

    from .store import data_beside

    data = data_beside(model_path, p.name)
    try:
        with open(data, newline="") as f:
            rows = list(csv.DictReader(f))
        comp = compile_here or median(float(r["compile_s"]) for r in rows)
        run = median(max(float(r["runtime_s"]) * float(r["repeats"]), 0.02) for r in rows)
    except (OSError, KeyError, ValueError):
        return None
    n_points = REPROFILE["n_schedules"] * REPROFILE["sizes_per_schedule"] * 1.1
    # refinement points are mostly schedules not compiled yet: one compile each, at most
    n_refine = REPROFILE_REFINE["budget"]
    return (REPROFILE["n_schedules"] + n_refine) * comp + (n_points + n_refine) * run


def _reprofile(p, threads, out_root):
    """Profile ``p`` here (bounded: ``REPROFILE``), refine the profile where its model
    predicts the fastest schedules (``REPROFILE_REFINE`` points), train, and save the model
    where ``select_schedule(models=root)`` finds it. Returns the model root."""
    from ..model.layout import user_root
    from .profile import profile_pipeline
    from .sampling import refine_profile
    from .select import train_pipeline
    from .store import data_path

    root = out_root or user_root()
    data = data_path(p.name, root, threads)
    profile_pipeline(p, threads=threads, out=data, **REPROFILE)
    df = refine_profile(p, data, REPROFILE_REFINE["budget"], rounds=REPROFILE_REFINE["rounds"],
                        threads=threads)
    _, path = train_pipeline(p, data, root, threads=threads)
    print(f"re-profiled {len(df)} points of {p.name} ({REPROFILE['n_schedules']} schedules, "
          f"{REPROFILE_REFINE['budget']} refinement points); model saved to {path}",
          file=sys.stderr)
    return root


def cmd_tune(args) -> int:
    from ..threads import fix_threads
    from ..validate import integer, not_empty, output_dir
    from .pipelines import get
    from .select import check_sizes

    p = get(args.pipeline)  # ParameterError listing the known pipelines
    sizes = check_sizes(p, args.size)  # empty fields, int32 extents, Halide's buffer limit
    integer(args.candidates, "--candidates", 1)
    integer(args.rounds, "--rounds", 1, MAX_ROUNDS)
    _check_threads(args.threads)
    not_empty(args.models, "--models")
    if args.emit is not None:  # before the compile; '' was taken for "no --emit"
        output_dir(args.emit, "--emit")
    if args.candidates > p.space.count():
        print(f"note: --candidates {args.candidates} is more than the {p.space.count()} "
              f"schedules of {p.name}'s space; predicting all {p.space.count()}",
              file=sys.stderr)
        args.candidates = p.space.count()
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
           "machine_match": chosen.info["machine_match"],
           "candidates": chosen.info["n_candidates"], "tuning_s": chosen.tuning_s,
           "compile_s": chosen.compile_s}
    if args.emit is not None:
        from .aot import emit

        out["emitted"] = {k: str(v) for k, v in emit(p, chosen.schedule, args.emit,
                                                      sizes=sizes).items()}
    if args.compare:
        out["compare"] = compare(p, sizes, chosen, args.threads, args.rounds)
    if args.print_schedule or args.json:
        out["code"] = p.schedule_code(chosen.schedule)
    if args.json:
        print_json(out)
        return 0
    notes = ("" if out["in_range"] else "  [size outside the training range]") + \
        ("" if out["machine_match"] else "  [model profiled on another machine]")
    print(f"pipeline {p.name} at {out['size']}: chose {json.dumps(chosen.schedule)}")
    print(f"  predicted {out['predicted_s'] * 1e3:.3f} ms among {out['candidates']} candidates "
          f"(selection {out['tuning_s'] * 1e3:.2f} ms, compile {out['compile_s']:.2f} s)"
          + notes)
    if args.compare:
        print(format_compare(out["compare"]))
    if args.emit is not None:
        for what, path in out["emitted"].items():
            print(f"  wrote {what}: {path}")
    if args.print_schedule:
        print()
        sys.stdout.write(out["code"])
    return 0


def format_compare(rows: list[dict]) -> str:
    """The --compare table: predicted and measured time side by side, and their ratio."""
    lines = [f"  {'method':<16}{'predicted ms':>13}{'measured ms':>13}{'pred/meas':>11}"
             f"{'vs annpred':>12}{'tuning s':>11}"]
    ours = next((r["runtime_s"] for r in rows if r["method"] == "annpred"), None)
    for r in rows:
        m, pr = r["runtime_s"], r.get("predicted_s")
        meas = "failed" if m is None else f"{m * 1e3:.3f}"
        pred = "-" if pr is None else f"{pr * 1e3:.3f}"
        ratio = "-" if pr is None or m is None else f"{pr / m:.2f}"
        rel = "-" if m is None or ours is None else f"{m / ours:.2f}x"
        lines.append(f"  {r['method']:<16}{pred:>13}{meas:>13}{ratio:>11}{rel:>12}"
                     f"{r['tuning_s']:>11.4f}")
    lines.append("  (vs annpred: the method's measured time over annpred's; above 1x annpred "
                 "is faster)")
    return "\n".join(lines)


def compare(p, sizes, chosen, threads: int, rounds: int = 3) -> list[dict]:
    """Autoschedule, compile the default, and time every method together in ``rounds``
    shuffled rounds (median of the per-round medians)."""
    import numpy as np

    from ..measure.protocol import measure
    from .autoschedule import CPU_AUTOSCHEDULERS, AutoschedulerError, autoschedule
    from .profile import MEASURE
    from .runtime import compile_schedule

    compiled = {"annpred": chosen}
    for m in CPU_AUTOSCHEDULERS:
        try:
            compiled[m] = autoschedule(p, sizes, m, parallelism=threads)
        except AutoschedulerError as exc:
            print(f"annpred: warning: {exc}", file=sys.stderr)
            compiled[m] = None
    compiled["default"] = compile_schedule(p, None) if p.default_schedule_ok else None
    inputs, outbuf = p.make_inputs(sizes), p.make_output(sizes)
    runs = {m: c.bind(inputs, outbuf) for m, c in compiled.items() if c is not None}
    times: dict[str, list] = {m: [] for m in runs}
    rng = np.random.default_rng(0)
    for _ in range(rounds):
        for m in rng.permutation(list(runs)):
            times[m].append(measure(runs[m], **MEASURE).median_s)
    rows = []
    for m, c in compiled.items():
        if m == "default" and not p.default_schedule_ok:
            continue  # impractical for this pipeline (see HalidePipeline.default_schedule_ok)
        rows.append({"method": m,
                     "runtime_s": float(np.median(times[m])) if m in times else None,
                     "predicted_s": chosen.info["predicted_s"] if m == "annpred" else None,
                     "tuning_s": c.tuning_s if c is not None else float("nan"),
                     "compile_s": c.compile_s if c is not None else float("nan")})
    return rows
