"""Training time and held-out error on whole Kernel Tuner cache files: choices on a subset of
2,000 training rows (``choice_rows``, the default) against choices on every row
(``choice_rows=None``, the behaviour before it), side by side in one run.

    flock /tmp/annpred-timing.lock python experiments/choice_rows.py [--seeds 0,1,2,3]

For each file of ``../shared/data/kernel_tuner/`` and seed: ``annpred train`` as a user runs
it (``--complexity auto``, 80% of the configurations train, the other 20% are held out, MAPE
over all of them), once per setting, the two in an order shuffled per (file, seed); then
each file trained whole (every configuration, no hold-out) once per setting. Times are the
estimator's fit time (``train_time_s``, wall) and the process's CPU seconds, one thread.
Writes ``experiments/results/choice_rows.csv`` and prints a summary; run it on an idle
machine, alone (it is a timing job)."""
from __future__ import annotations

import argparse
import os
import random
import sys
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from annpred.data.kerneltuner import read_cache  # noqa: E402
from annpred.files import atomic_write_text  # noqa: E402
from annpred.model.trainer import train_csvs  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "kernel_tuner"
SETTINGS = {"subset 2000": 2000, "every row": None}


def _one(path: Path, seed: int, n_train: int | None, choice_rows, out: Path) -> dict:
    c0 = time.process_time()
    (r,) = train_csvs([str(path)], str(out), complexity="auto", seed=seed, n_train=n_train,
                      choice_rows=choice_rows)
    return {"holdout_mape": r.holdout_mape, "val_mape": r.val_mape,
            "train_s": r.train_time_s, "cpu_s": time.process_time() - c0,
            "n_train": r.n_train, "n_choice": r.n_choice}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", default="0,1,2,3")
    ap.add_argument("--out", default=str(ROOT / "experiments" / "results" / "choice_rows.csv"))
    a = ap.parse_args(argv)
    seeds = [int(s) for s in a.seeds.split(",")]
    files = sorted(DATA.glob("*.json.gz"))
    if not files:
        print(f"no cache files in {DATA}", file=sys.stderr)
        return 2
    tmp = Path(os.environ.get("TMPDIR", "/tmp")) / "annpred_choice_rows"
    rows = []
    load = os.getloadavg()[0]
    for path in files:
        n = len(read_cache(path).rows)
        for seed in [*seeds, None]:  # None: the whole file, no hold-out
            order = list(SETTINGS.items())
            random.Random(f"{path.name}{seed}").shuffle(order)
            for label, value in order:
                r = _one(path, 0 if seed is None else seed,
                         None if seed is None else round(0.8 * n), value, tmp / label)
                rows.append({"file": path.name.split(".")[0], "seed": seed,
                             "setting": label, **r})
                print(rows[-1], flush=True)
    df = pd.DataFrame(rows)
    atomic_write_text(Path(a.out), df.to_csv(index=False))
    split = df[df.seed.notna()]
    print(f"load average at the start {load:.2f}, at the end {os.getloadavg()[0]:.2f}")
    print("80/20 splits, mean over seeds:")
    print(split.groupby(["file", "setting"])[["holdout_mape", "train_s", "cpu_s"]]
          .mean().round(2).to_string())
    print("whole files:")
    print(df[df.seed.isna()].set_index(["file", "setting"])[["train_s", "cpu_s"]]
          .round(2).to_string())
    return 0


if __name__ == "__main__":
    sys.exit(main())
