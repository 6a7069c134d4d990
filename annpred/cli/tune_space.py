"""``annpred tune-space``: measure a few configurations of a tuning space, predict the rest,
and name the best candidates."""
from __future__ import annotations

from annpred.cli.common import fmt_seconds
from annpred.errors import ParameterError


def cmd_tune_space(args) -> int:
    from annpred.data import profiles as _data
    from annpred.study import tunespace as T
    from annpred.study.zoo import make_model, MODELS

    if args.budget < 8:
        raise ParameterError(f"--budget must be >= 8, got {args.budget}")
    if args.top < 1:
        raise ParameterError(f"--top must be >= 1, got {args.top}")
    if args.strategy not in T.STRATEGIES:
        raise ParameterError(f"--strategy: unknown strategy {args.strategy!r}; strategies: "
                             f"{', '.join(T.STRATEGIES)}")
    if args.model not in MODELS:
        raise ParameterError(f"--model: unknown model {args.model!r}; models: "
                             f"{', '.join(MODELS)}")
    df = _data.load_profiles([args.space])
    c = T.space_combination(df)
    r = T.select_on_space(c, make_model(args.model), budget=args.budget, top=args.top,
                          seed=args.seed, name=args.model, strategy=args.strategy)
    print(f"{c.name}: {len(c.y)} configurations; {args.model} fitted on {args.budget} "
          f"measured ({args.strategy}, seed {args.seed}); complexity: "
          + (", ".join(f"{k} = {v}" for k, v in _chosen(r, c).items()) or "none"))
    best = T.predicted_table(c, [r.best_row], r.predicted)[0]
    print("predicted best: " + _fmt(best, c.params))
    print(f"top {args.top} predicted (of the {len(c.y) - args.budget} not measured):")
    for i, row in enumerate(T.predicted_table(c, r.top_rows, r.predicted), 1):
        print(f" {i:3d}. " + _fmt(row, c.params))
    fastest = int(r.measured[c.y[r.measured].argmin()])
    row = T.predicted_table(c, [fastest], r.predicted)[0]
    print(f"best measured of the {args.budget}: {_params(row, c.params)}  "
          f"{fmt_seconds(row['measured_s'])}")
    print(f"the file holds every measurement, so the pick can be judged: MAPE {r.mape:.2f}% "
          f"over the {len(c.y) - args.budget} unmeasured configurations; regret (best of "
          f"{args.budget} measured + top {args.top}) / optimum = {r.regret:.3f}; random "
          f"sampling of as many ({args.budget} + {args.top}): {r.random_regret:.3f}")
    return 0


def _chosen(r, c):
    return c.complexity if r.complexity is None else r.complexity


def _params(row: dict, params) -> str:
    return " ".join(f"{p}={row[p]:g}" for p in params)


def _fmt(row: dict, params) -> str:
    return (f"{_params(row, params)}  predicted {fmt_seconds(row['predicted_s'])}  "
            f"(measured {fmt_seconds(row['measured_s'])})")


def register(sub) -> None:
    s = sub.add_parser("tune-space", help="fit on a few measured configurations of a tuning "
                       "space and predict the best",
                       description="Fit a model on --budget configurations of a tuning "
                       "space (a Kernel Tuner cache file, or a profiling CSV with one kernel "
                       "on one device), measured as --strategy says, predict every "
                       "configuration, and "
                       "print the predicted best and the top k. The file holds every "
                       "measurement, so the pick is judged: MAPE, and the regret of the best "
                       "of (budget measured + top k predicted) beside random sampling with "
                       "the same number of measurements.")
    s.add_argument("space", help="Kernel Tuner cache file (.json/.json.gz) or profiling CSV")
    s.add_argument("--budget", type=int, default=250, help="measured configurations "
                   "(default 250)")
    s.add_argument("--top", type=int, default=10, help="predicted candidates (default 10)")
    s.add_argument("--model", default="NN+C-auto", help="model from the study's zoo "
                   "(default NN+C-auto)")
    s.add_argument("--strategy", default="guided",
                   help="how the budget is measured: guided (default: half at random, then "
                        "rounds of the best predicted neighbours of the fastest measured "
                        "and the fastest predicted) or random (all at random, one fit)")
    s.add_argument("--seed", type=int, default=0,
                   help="seed of the draw of measured configurations and of the fit (default 0)")
    s.set_defaults(func=cmd_tune_space)
