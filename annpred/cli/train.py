"""``annpred train``: one model per (kernel, variant, hardware) in profiling CSVs."""
from __future__ import annotations

from annpred.errors import ParameterError


def cmd_train(args) -> int:
    from annpred.model.trainer import train_csvs

    feats = [f.strip() for f in args.features.split(",") if f.strip()] if args.features else None
    def show(r):
        ho = f"  holdout MAPE {r.holdout_mape:6.2f}% (n={r.n_holdout})" if r.holdout_mape is not None else ""
        st = ("  steps " + ", ".join(f"{k}:{v}" for k, v in r.steps.items())
              if getattr(r, "steps", None) else "")
        print(f"{r.kernel}/{r.variant}/{r.hardware}: val MAPE {r.val_mape:6.2f}%  "
              f"params {r.n_params}  n={r.n_train}  {r.train_time_s:.2f}s{ho}{st}", flush=True)

    reports = train_csvs(args.csv, args.out, target=args.target, features=feats,
                         complexity=args.complexity, kernel=args.kernel, variant=args.variant,
                         hardware=args.hardware, seed=args.seed, n_train=args.n_train,
                         on_done=show, steps=_parse_steps(args.steps))
    print(f"trained {len(reports)} model(s) into {args.out}")
    return 0


def _parse_steps(text):
    """--steps: auto (detect from 1-D sweeps in the data), none, or param=period,..."""
    if text is None or text == "auto":
        return "auto"
    if text == "none":
        return None
    out = {}
    for item in text.split(","):
        name, _, period = item.partition("=")
        try:
            out[name.strip()] = int(period)
        except ValueError:
            raise ParameterError(f"--steps: expected auto, none or param=period,..., "
                                 f"got {text!r}") from None
        if out[name.strip()] < 2:
            raise ParameterError(f"--steps: period of {name.strip()!r} must be >= 2")
    return out


def register(sub) -> None:
    s = sub.add_parser("train", help="train one model per combination in profiling CSVs")
    s.add_argument("csv", nargs="+")
    s.add_argument("--out", default="models", help="model directory (default: models)")
    s.add_argument("--target", default="runtime_s", help="runtime column (seconds)")
    s.add_argument("--features", help="comma-separated feature columns")
    s.add_argument("--complexity", help="complexity expression over the feature columns")
    s.add_argument("--kernel")
    s.add_argument("--variant")
    s.add_argument("--hardware")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--n-train", type=int, default=None,
                   help="train on this many rows per combination; hold the rest out")
    s.add_argument("--steps", default="auto",
                   help="step-aware features: auto (detect from 1-D sweeps, as written by "
                        "--sampler pr), none, or param=period,... (default auto)")
    s.set_defaults(func=cmd_train)
