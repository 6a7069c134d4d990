"""How many bytes of distinct inputs a measurement must rotate through.

    flock /tmp/annpred-timing.lock python experiments/rotation_bytes.py [--rounds 4]

``annpred profile --fresh-inputs`` (the default for kernels that declare ``fresh_inputs``,
e.g. maxpool) rotates each point's runs through distinct input sets that together hold
``annpred.measure.protocol.ROTATE_BYTES`` (2 MiB), so that the branch predictor cannot
replay the outcomes of a repeated input. Too little and the predictor still learns the
inputs; too much and the inputs come from a farther cache level. This study times max
pooling on fixed points (from 64 outputs to 10,000) with every run on one input and with
rotations of 128 KiB, 512 KiB and 2 MiB, side by side: 1 thread, ``--rounds`` rounds, each
over the points, variants and amounts in a new random order; the median over rounds and
the spread (max - min over the median) per cell. It writes ``rotation_bytes.csv`` (one row
per timing) and ``rotation_bytes.md`` into ``--out`` (default ``experiments/results``).
"""
from __future__ import annotations

import argparse
import csv
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "experiments" / "results"
POINTS = [dict(n=8, w=2, s=2, c=1), dict(n=12, w=3, s=1, c=2), dict(n=24, w=2, s=2, c=3),
          dict(n=40, w=2, s=2, c=4), dict(n=117, w=2, s=2, c=3), dict(n=64, w=3, s=2, c=8)]
VARIANTS = ("torch", "scipy", "numpy", "halide")
AMOUNTS = (0, 128 << 10, 512 << 10, 2 << 20)  # bytes rotated; 0: every run on one input
HEAD = ["hardware", "variant", "point", "n", "w", "s", "c", "rotate_bytes", "input_sets", "round",
        "runtime_s", "runtime_cv", "load1"]


def measure(rounds: int, path: Path) -> None:
    import numpy as np

    from annpred import threads
    from annpred.measure.profiler import input_sets_for, measure_point
    from annpred.spec.catalog import get_kernel
    from annpred.spec.hardware import cpu_id

    threads.fix_threads(1)
    hw = cpu_id(1)
    kernel = get_kernel("maxpool")
    variants = VARIANTS
    rng = np.random.default_rng(11)
    tmp = path.with_suffix(".csv.part")
    with open(tmp, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(HEAD)
        for rnd in range(rounds):
            print(f"round {rnd + 1} of {rounds}", file=sys.stderr)
            for pi in rng.permutation(len(POINTS)):
                p = POINTS[pi]
                for vi in rng.permutation(len(variants)):
                    v = kernel.variant(variants[vi])
                    for ai in rng.permutation(len(AMOUNTS)):
                        amount = AMOUNTS[ai]
                        sets = input_sets_for(kernel, p, 0, int(pi), fresh=amount > 0,
                                              rotate_bytes=max(amount, 1))
                        t = measure_point(kernel, v, sets, p, min_runs=5, min_time=0.02)
                        w.writerow([hw, v.name, int(pi), *p.values(), amount, len(sets), rnd,
                                    f"{t.median_s:.9g}", f"{t.cv:.5f}",
                                    f"{os.getloadavg()[0]:.2f}"])
    os.replace(tmp, path)  # whole or not at all: a rerun starts over (a minute)


def report(path: Path, out: Path) -> str:
    import pandas as pd

    df = pd.read_csv(path)
    cells = df.groupby(["point", "variant", "rotate_bytes"]).runtime_s
    med, spread = cells.median(), (cells.max() - cells.min()) / cells.median()
    sets = df.groupby(["point", "rotate_bytes"]).input_sets.first()
    names = {0: "one input", **{a: f"{a >> 20} MiB" if a >= 1 << 20 else f"{a >> 10} KiB"
                                for a in AMOUNTS if a}}
    lines = ["# How many bytes of new inputs defeat the branch predictor",
             "",
             "Max pooling timed side by side with every run on one input and with each "
             "point's runs rotating through distinct input sets that hold 128 KiB, 512 KiB or "
             "2 MiB together (the protocol's `ROTATE_BYTES` is 2 MiB). Median over "
             f"{df['round'].nunique()} rounds, in microseconds (range: max - min over the "
             "median). Hardware: `" + ", ".join(sorted(df.hardware.unique())) + "`; command: "
             "`python experiments/rotation_bytes.py`; data: `rotation_bytes.csv`; load "
             f"average {df.load1.median():.2f} (median).",
             "",
             "| point (n, w, s, c) | outputs | variant | " +
             " | ".join(names[a] for a in AMOUNTS) + " | 2 MiB / one input |",
             "|---|---:|---|" + "---:|" * (len(AMOUNTS) + 1)]
    for pi, p in enumerate(POINTS):
        outs = p["c"] * ((p["n"] - p["w"]) // p["s"] + 1) ** 2
        for v in sorted(df[df.point == pi].variant.unique()):
            row = [f"{med[(pi, v, a)] * 1e6:.2f} (range {spread[(pi, v, a)] * 100:.0f}%, "
                   f"{sets[(pi, a)]} sets)" for a in AMOUNTS]
            ratio = med[(pi, v, AMOUNTS[-1])] / med[(pi, v, 0)]
            lines.append(f"| {p['n']}, {p['w']}, {p['s']}, {p['c']} | {outs} | {v} | "
                         + " | ".join(row) + f" | {ratio:.2f}x |")
    text = "\n".join(lines) + "\n"
    tmp = out.with_suffix(".md.part")
    tmp.write_text(text)
    os.replace(tmp, out)
    return text


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--out", default=str(OUT), help="results folder")
    ap.add_argument("--report-only", action="store_true")
    a = ap.parse_args(argv)
    if a.rounds < 1:
        print(f"--rounds must be at least 1, got {a.rounds}", file=sys.stderr)
        return 2
    out = Path(a.out)
    path = out / "rotation_bytes.csv"
    if a.report_only and not path.exists():
        print(f"{path} does not exist: measure first (without --report-only)", file=sys.stderr)
        return 2
    if not a.report_only:
        out.mkdir(parents=True, exist_ok=True)
        measure(a.rounds, path)
    print(report(path, out / "rotation_bytes.md"))
    return 0


if __name__ == "__main__":
    sys.path[0] = str(ROOT)  # not experiments/: its halide.py would shadow the halide package
    sys.exit(main())
