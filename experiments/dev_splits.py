"""Development splits of the catalog: how model choices are made without the test points.

    python experiments/dev_splits.py --options '{"refit_iter": 0}' --hardware cpu-amd-epyc-t1
    python experiments/dev_splits.py --options '{"refit_iter": 80}' --hardware cpu-amd-epyc-t1

For every combination of ``trained/<hardware>/data/*.csv`` (the accuracy study's data) and
seeds 0-2 (``--seeds``): 250 training points and 250 scoring points, disjoint, both drawn
from the training pool (points 300..799; a pool of fewer than 500 points is halved); the study's test points (0..299, the ones
measured twice) never take part. NN+C (``--model``) is fitted with the estimator options
``--options`` (JSON, passed to ``AugmentedNNRegressor``) and scored by MAPE on the scoring
points. Prints each fit, then the median and mean over combinations of the mean over seeds.
CPU work only, no timing (run it under ``nice`` beside other work).

``--complexity`` replaces the catalog's complexity terms with a JSON object of name ->
expression (the whitelisted syntax), for every combination selected: compare candidate terms
of one variant with ``--kernels K --variants V``, e.g. conv2d/scipy's FFT estimate at the
padded lengths (``experiments/accuracy_notes.md``, stop 42)::

    python experiments/dev_splits.py --hardware cpu-amd-epyc-t1 --kernels conv2d \
        --variants scipy --seeds 5 --complexity '{"work": "f*c*k**2*(n-k+1)**2"}'
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main(argv) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hardware", default="cpu-amd-epyc-t1")
    ap.add_argument("--options", default="{}", help="estimator options, JSON")
    ap.add_argument("--model", default="NN+C")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--kernels", default="", help="comma-separated (default: all)")
    ap.add_argument("--variants", default="", help="comma-separated (default: all)")
    ap.add_argument("--complexity", default="",
                    help="JSON object name -> expression replacing the catalog's terms")
    args = ap.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import numpy as np

    from annpred.data import profiles as _data
    from annpred.errors import AnnpredError
    from annpred.study.combos import prepare
    from annpred.study.metrics import mape
    from annpred.study.zoo import make_model

    options = json.loads(args.options)
    try:
        complexity = json.loads(args.complexity) if args.complexity else None
    except json.JSONDecodeError:
        complexity = []  # refused below, like any other JSON that is not an object
    if complexity is not None and (not isinstance(complexity, dict) or not complexity):
        print(f"--complexity: not a JSON object of name -> expression ({args.complexity!r})",
              file=sys.stderr)
        return 2
    variants = {v for v in args.variants.split(",") if v}
    wanted = {k for k in args.kernels.split(",") if k}
    files = sorted((ROOT / "trained" / args.hardware / "data").glob("*.csv"))
    files = [f for f in files if not wanted or f.stem in wanted]
    if not files:
        print(f"no profiling CSVs for {args.hardware}", file=sys.stderr)
        return 2
    means = {}
    for f in files:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            df = _data.load_profiles([str(f)])
            if variants:
                df = df[df["variant"].isin(variants)]
            try:
                combos = prepare(df, complexity=complexity) if len(df) else []
            except AnnpredError as e:
                print(e, file=sys.stderr)
                return 2
        for c in combos:
            errs = []
            for seed in range(args.seeds):
                order = np.random.default_rng([seed, 31337]).permutation(c.pool)
                n = min(250, len(order) // 2)  # small pools (the Intel profiles): halves
                train, score = order[:n], order[n:2 * n]
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    m = make_model(args.model, options).fit(c, train, seed)
                errs.append(mape(c.y[score], m.predict(c, score)))
                print(f"{c.name:44s} seed {seed}  MAPE {errs[-1]:6.2f}%", flush=True)
            means[c.name] = float(np.mean(errs))
    if not means:
        print(f"no combinations of {args.hardware} match --kernels/--variants", file=sys.stderr)
        return 2
    v = list(means.values())
    print(f"{args.model} {options}: median {np.median(v):.2f}%, mean {np.mean(v):.2f}% over "
          f"{len(v)} combinations (mean of {args.seeds} seeds each)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
