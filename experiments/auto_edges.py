"""Does ``--complexity auto`` find the GEMM edges on a matrix-product CSV it knows nothing of?

    python experiments/auto_edges.py [--profiles 'cpu-*-t1'] [--seeds 2] [--out CSV]

A user's own profile of ``C = A @ B`` with columns m, n, k and a runtime, no catalog entry:
``AugmentedNNRegressor(complexity="auto")`` on the sizes alone, with the edge candidates of
before stop 44 (groups of 4 and a one-by-one remainder) and with the binary GEMM edges
added (blocks of 8 or 16, then halving chunks; ``annpred.model.autocomplexity``), side by
side on the same split. Data: the shipped 1-thread matmul profiles of every machine
(``trained/cpu-*-t1/data/matmul.csv``, variants torch and numpy, first pass): 300 points of
the second draw (seed 1) train, the first draw's points are held out (where a profile has
one draw only: a fixed shuffle, 300 train and up to 350 held out). MAPE over all held-out
points, mean of fit seeds 0 and 1 (``--seeds``). CPU only (about 3 minutes); writes
``experiments/results/auto_edges.csv`` and prints it.
"""
from __future__ import annotations

import sys
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "experiments" / "results" / "auto_edges.csv"
SETS = {"edge4 only": (), "edge4 + binary": None}  # None: the library's BINARY_BLOCKS


def split(g):
    if "seed" in g and g["seed"].nunique() > 1:
        return g[g["seed"] == 1].iloc[:300], g[g["seed"] == 0]
    g = g.sample(frac=1, random_state=0)
    return g.iloc[:300], g.iloc[300:650]


def main(argv=None) -> int:
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--profiles", default="cpu-*-t1",
                    help="hardware folders under trained/ (a glob; default cpu-*-t1)")
    ap.add_argument("--seeds", type=int, default=2, help="fit seeds (default 2)")
    ap.add_argument("--out", default=str(OUT), help=f"CSV to write (default {OUT.name})")
    a = ap.parse_args(argv)
    files = sorted((ROOT / "trained").glob(f"{a.profiles}/data/matmul.csv"))
    if a.seeds < 1 or not files:
        print("--seeds must be at least 1" if a.seeds < 1 else
              f"no matmul profiles under trained/{a.profiles}/data", file=sys.stderr)
        return 2
    import numpy as np
    import pandas as pd

    import annpred.model.autocomplexity as A
    from annpred.files import atomic_write_text
    from annpred.model.estimator import AugmentedNNRegressor

    warnings.filterwarnings("ignore")  # few-rows and feature-name warnings of the fits
    rows, library = [], A.BINARY_BLOCKS
    try:
        for f in files:
            d = pd.read_csv(f)
            for v in ("torch", "numpy"):
                tr, te = split(d[(d["variant"] == v) & (d["pass"] == 0)])
                for label, blocks in SETS.items():
                    A.BINARY_BLOCKS = library if blocks is None else blocks
                    errs, chosen = [], []
                    for seed in range(a.seeds):
                        m = AugmentedNNRegressor(complexity="auto", seed=seed).fit(
                            tr[["m", "n", "k"]], tr["runtime_s"].to_numpy(float))
                        pred = m.predict(te[["m", "n", "k"]])
                        errs.append(float(np.mean(np.abs(pred / te["runtime_s"] - 1)) * 100))
                        chosen.append(" + ".join(m.complexity_))
                    rows.append({"hardware": f.parent.parent.name, "variant": v,
                                 "candidates": label, "n_train": len(tr), "n_test": len(te),
                                 "mape": round(float(np.mean(errs)), 3),
                                 "chosen": " | ".join(chosen)})
                    print(rows[-1], flush=True)
    finally:
        A.BINARY_BLOCKS = library
    atomic_write_text(a.out, pd.DataFrame(rows).to_csv(index=False))
    return 0


if __name__ == "__main__":
    sys.path[0] = str(ROOT)
    sys.exit(main())
