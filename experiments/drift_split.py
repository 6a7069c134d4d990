"""How much of a two-pass study's error is drift between the training pool and the test set.

    python experiments/drift_split.py amd-epyc-zen5-avx512-2.6ghz

The Zen 5 catalog study (``accuracy.py --machine ...``) trains on a pool measured about 20
minutes after its test points, while the test points' two passes lie 6 minutes apart: a
model can then pay for drift that the two-pass floor does not see. This splits each
combination's test points (first pass) at random into 100 to score and 250 to train on, and
fits NN+C (the study's model and options) two ways on the same 100:

- ``pool``: 250 points of the study's pool (``Combination.train_rows``), as the study does;
- ``same_pass``: the other 250 test points, measured in the same pass as the scored ones.

Both are scored by MAPE over all 100 points, next to the two-pass floor of the same 100 and
the median ratio of prediction to measurement (``bias``). Seeds 0-2 (split and fit). Writes
``experiments/results/machines/<slug>/drift_split.csv`` and prints the medians per thread
count. CPU work only, no timing.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
N_SCORE, N_TRAIN, SEEDS = 100, 250, (0, 1, 2)


def main(argv: list[str]) -> int:
    from annpred.data.profiles import load_profiles
    from annpred.study.combos import prepare
    from annpred.study.metrics import mape, noise_floor
    from annpred.study.zoo import make_model

    from accuracy import csvs, is_machine_slug  # this folder: the catalog study's files

    if len(argv) != 1 or not is_machine_slug(argv[0]):
        print("usage: python experiments/drift_split.py MACHINE_SLUG", file=sys.stderr)
        return 2
    slug = argv[0]
    files = [str(ROOT / p) for p in csvs(slug)]
    if not files:
        print(f"no catalog CSVs under trained/cpu-{slug}-t*/data", file=sys.stderr)
        return 2
    rows = []
    for c in prepare(load_profiles(files)):
        if c.y_repeat is None or len(c.test) < N_SCORE + N_TRAIN:
            print(f"{c.name}: fewer than {N_SCORE + N_TRAIN} two-pass points; skipped",
                  file=sys.stderr)
            continue
        for seed in SEEDS:
            perm = np.random.default_rng([seed, 31]).permutation(len(c.test))
            at, rest = np.sort(perm[:N_SCORE]), np.sort(perm[N_SCORE:N_SCORE + N_TRAIN])
            score = c.test[at]
            row = {"combination": c.name, "seed": seed, "n_score": N_SCORE,
                   "floor": noise_floor(c.y[score], c.y_repeat[at])}
            for name, train in (("pool", c.train_rows(seed, N_TRAIN)),
                                ("same_pass", c.test[rest])):
                pred = make_model("NN+C").fit(c, train, seed).predict(c, score)
                row[name] = mape(c.y[score], pred)
                row[name + "_bias"] = float(np.median(pred / c.y[score]))
            rows.append(row)
        print(c.name, flush=True)
    out = pd.DataFrame(rows)
    dest = ROOT / "experiments" / "results" / "machines" / slug / "drift_split.csv"
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_suffix(".csv.tmp")
    out.round(4).to_csv(tmp, index=False)
    tmp.replace(dest)
    per = out.groupby("combination")[["floor", "pool", "same_pass"]].mean()
    per["threads"] = [n.rsplit("-t", 1)[-1] for n in per.index]
    for t, g in per.groupby("threads"):
        within = lambda col: int((g[col] <= 1.2 * g["floor"]).sum())
        print(f"{t} thread(s), {len(g)} combinations, medians of the seed means: floor "
              f"{g['floor'].median():.2f}%, pool {g['pool'].median():.2f}%, same pass "
              f"{g['same_pass'].median():.2f}%; within 1.2x of the floor: pool "
              f"{within('pool')}, same pass {within('same_pass')}")
    print(f"wrote {dest.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
