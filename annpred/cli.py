"""The ``annpred`` command line."""
from __future__ import annotations

import argparse
import importlib
import json
import sys
from typing import Sequence

from .errors import AnnpredError, ParameterError

# Modules that add their own subcommands with ``register(subparsers)``; each must be cheap
# to import (no torch, no halide at module level).
EXTENSIONS = ("annpred.choice_cli", "annpred.evaluate_cli", "annpred.sampling_cli",
              "annpred.halide.cli", "annpred.accel.cli")


def parse_assignments(items: Sequence[str]) -> dict[str, float]:
    out = {}
    for item in items:
        if "=" not in item:
            raise ParameterError(f"expected name=value, got {item!r}")
        name, value = item.split("=", 1)
        name = name.strip()
        if not name:
            raise ParameterError(f"expected name=value, got {item!r}")
        if name in out:
            raise ParameterError(f"parameter {name!r} given twice")
        try:
            out[name] = float(value)
        except ValueError:
            raise ParameterError(f"parameter {name}: {value!r} is not a number") from None
    return out


def _print_json(obj) -> None:
    print(json.dumps(obj, indent=1, default=float))


# -- kernels --------------------------------------------------------------------------------
def cmd_kernels(args) -> int:
    from .catalog import kernels

    items = []
    steps = _model_steps(args.models)
    for k in kernels().values():
        d = k.to_dict()
        for v, vd in zip(k.variants, d["variants"]):
            vd["available_here"] = bool(v.available())
            found = steps.get((k.name, v.name))
            if found:
                vd["steps"] = found  # hardware -> {param: period} of trained models
        items.append(d)
    if args.json:
        _print_json(items)
        return 0
    for d in items:
        print(f"{d['name']}: {d['description']}")
        for p in d["parameters"]:
            lo, hi = p["range"]
            print(f"  param {p['name']:<8} {p['kind']:<5} [{lo:g}, {hi:g}] {p['sampling']}")
        for name, text in d["complexity"].items():
            print(f"  complexity {name} = {text}")
        for v in d["variants"]:
            here = "runs here" if v["available_here"] else "not available here"
            extra = ("  complexity " + ", ".join(f"{a}={b}" for a, b in v["complexity"].items())
                     if "complexity" in v else "")
            print(f"  variant {v['name']:<14} {v['device']:<5} {here}{extra}")
            for hw_id, st in v.get("steps", {}).items():
                print(f"    steps on {hw_id}: " + ", ".join(f"{a} every {b}" for a, b in st.items()))
    return 0


def _model_steps(models) -> dict:
    """(kernel, variant) -> {hardware: steps} from the model files that record steps."""
    import json as _json
    from pathlib import Path

    from .predict import shipped_dir, user_dir

    roots = [Path(models)] if models else [shipped_dir(), user_dir()]
    out: dict = {}
    for root in roots:
        for p in sorted(root.glob("*/*/*.json")) if root.is_dir() else []:
            try:
                d = _json.loads(p.read_text(encoding="utf-8"))
                st = d.get("steps")
                if isinstance(st, dict) and st:
                    out.setdefault((d["kernel"], d["variant"]), {})[d["hardware"]] = st
            except (OSError, ValueError, KeyError, TypeError, AttributeError):
                continue  # a broken model file is reported by predict, not by the listing
    return out


# -- profile --------------------------------------------------------------------------------
def cmd_profile(args) -> int:
    from .profile import profile

    if args.samples < 1:
        raise ParameterError(f"--samples must be >= 1, got {args.samples}")
    res = profile(args.kernel, args.out, variants=args.variant, n_threads=args.threads,
                  samples=args.samples, sampler=args.sampler, seed=args.seed,
                  pass_id=args.pass_id, progress=not args.quiet, check=args.check,
                  first=args.first, time_budget=args.time_budget,
                  min_time=args.min_time_ms / 1e3, hardware=args.hardware,
                  accel_mode=args.accel_mode)
    print(f"{res.path}: {res.written} rows measured, {res.skipped} already there "
          f"({res.total} in all)")
    return 0


# -- train ----------------------------------------------------------------------------------
def cmd_train(args) -> int:
    from .trainer import train_csvs

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


# -- predict --------------------------------------------------------------------------------
def cmd_predict(args) -> int:
    from .catalog import get_kernel
    from .predict import load_models

    params = parse_assignments(args.params)
    models = load_models(args.models)
    try:
        kernel = get_kernel(args.kernel)
        kernel.variant(args.variant)
    except AnnpredError:
        kernel = None  # a model trained from someone else's CSV: no catalog entry
        if not models.hardware_for(args.kernel, args.variant):
            get_kernel(args.kernel).variant(args.variant)  # raises, listing known names
    if kernel is not None:
        params = kernel.check_params(params, args.variant)
    pred = models.predict(args.kernel, args.variant, params, hardware=args.hardware)
    if args.json:
        _print_json(pred.to_dict())
    else:
        print(f"{pred.kernel}/{pred.variant} on {pred.hardware}: {_fmt_seconds(pred.seconds)}")
    if not pred.in_range:
        parts = ", ".join(f"{p}={v[0]:g} (trained on [{v[1][0]:g}, {v[1][1]:g}])"
                          for p, v in pred.out_of_range.items())
        print(f"warning: outside the training range: {parts}; this is an extrapolation",
              file=sys.stderr)
    return 0


def _fmt_seconds(s: float) -> str:
    if s < 1e-3:
        return f"{s * 1e6:.1f} us"
    if s < 1:
        return f"{s * 1e3:.3f} ms"
    return f"{s:.3f} s"


# -- quickstart -----------------------------------------------------------------------------
def cmd_quickstart(args) -> int:
    from .quickstart import run

    return run(budget=args.budget, out=args.out, seed=args.seed)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="annpred", description=__doc__.strip() + " "
                                "Predict kernel runtimes with tiny complexity-augmented networks.")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    s = sub.add_parser("kernels", help="list the kernel catalog")
    s.add_argument("--json", action="store_true")
    s.add_argument("--models", help="model directory whose detected steps to show "
                   "(default: calibrated and shipped models)")
    s.set_defaults(func=cmd_kernels)

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
    s.add_argument("--hardware", default=None,
                   help="sim-<name>: rows from a modelled accelerator's fast model (annpred "
                        "accel list) instead of measuring this machine (conv2d, matmul)")
    s.add_argument("--accel-mode", choices=("user", "calc"), default="user",
                   help="with --hardware sim-*: finite (user, default) or ideal (calc) DRAM "
                        "bandwidth")
    s.set_defaults(func=cmd_profile)

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

    s = sub.add_parser("predict", help="predict the runtime of one call")
    s.add_argument("kernel")
    s.add_argument("--variant", required=True)
    s.add_argument("--hardware")
    s.add_argument("--models", help="model directory (default: calibrated, else shipped)")
    s.add_argument("--json", action="store_true")
    s.add_argument("params", nargs="*", metavar="name=value")
    s.set_defaults(func=cmd_predict)

    s = sub.add_parser("quickstart", help="calibrate this machine briefly, train, report")
    s.add_argument("--budget", type=float, default=120.0, help="seconds of measuring")
    s.add_argument("--out", default=None, help="model directory (default: user models)")
    s.add_argument("--seed", type=int, default=0)
    s.set_defaults(func=cmd_quickstart)

    for name in EXTENSIONS:
        try:
            mod = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:
                continue
            raise
        mod.register(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    # name=value pairs may come after options (argparse stops positionals at an option)
    if extra and isinstance(getattr(args, "params", None), list):
        stray = [e for e in extra if e.startswith("-") or "=" not in e]
        if not stray:
            args.params = args.params + extra
            extra = []
    if extra:
        parser.error("unrecognized arguments: " + " ".join(extra))
    try:
        return int(args.func(args) or 0)
    except AnnpredError as exc:
        print(f"annpred: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("annpred: interrupted; rows written so far are kept (rerun to resume)",
              file=sys.stderr)
        return 130
    except BrokenPipeError:  # pragma: no cover
        return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
