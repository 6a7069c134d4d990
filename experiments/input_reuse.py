"""Same data or new data: how much repeating one input flatters a measurement.

    flock /tmp/annpred-timing.lock python experiments/input_reuse.py [--points 40]

annpred's protocol repeats a call until it has at least 5 runs and 20 ms. By default every
run gets the same input; a branch predictor then learns the outcomes of the data-dependent
branches (a max-pooling window's comparisons) and replays them, which
a program that calls the kernel on new data never sees. ``annpred profile --fresh-inputs``
rotates the runs through distinct input sets instead
(:func:`annpred.measure.protocol.input_sets`).

This study times both side by side, on the first ``--points`` test points of every kernel of
the paper protocol (``experiments/paper_protocol.py``: its distributions and variants, and
matmul/sparse), 1 thread: for each point (shuffled) and variant (shuffled), same data and
fresh data twice each in alternating order (which first: at random), the mean of each pair.
It writes ``experiments/results/input_reuse.csv`` (``kernel, variant, hardware, point``, the
parameters, ``same_s, fresh_s, input_sets, ratio`` = fresh / same) and ``input_reuse.md``. Rows
are appended as they are measured; the same command resumes. ``--out`` moves both (and
``--report-only`` rewrites the report from the CSV).
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "experiments"))  # paper_protocol, its points and variants
OUT = ROOT / "experiments" / "results"
EXTRA = {"matmul": ("sparse",)}  # catalog variants beside the paper protocol's
PAIRS, SEED = 2, 31


def variants() -> dict:
    import paper_protocol as pp

    return {k: (*v, *EXTRA.get(k, ())) for k, v in pp.VARIANTS.items()}


def measure(n_points: int, path: Path) -> int:
    import numpy as np

    import paper_protocol as pp
    from annpred import threads
    from annpred.measure import protocol
    from annpred.measure.profiler import input_sets_for
    from annpred.spec.catalog import get_kernel
    from annpred.spec.hardware import cpu_id

    threads.fix_threads(1)
    hw = cpu_id(1)
    head = ["kernel", "variant", "hardware", "point", "params", "same_s", "fresh_s",
            "input_sets", "ratio", "load1"]
    done = set()
    if path.exists() and path.stat().st_size:
        with open(path, newline="") as f:
            done = {(r["kernel"], r["variant"], int(r["point"])) for r in csv.DictReader(f)}
    rng = np.random.default_rng(SEED)
    vmap = variants()
    todo = [(k, i) for k in vmap for i in range(pp.N_TRAIN, pp.N_TRAIN + n_points)]
    new = not path.exists() or path.stat().st_size == 0
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", newline="") as f:
        w = csv.writer(f)
        if new:
            w.writerow(head)
        for n, j in enumerate(rng.permutation(len(todo))):
            kname, i = todo[j]
            vs = [v for v in vmap[kname] if (kname, v, i) not in done]
            order = rng.permutation(len(vmap[kname]))  # drawn always: same order on resume
            firsts = rng.integers(0, 2, size=(len(order), PAIRS))
            if not vs:
                continue
            K = get_kernel(kname)
            p = pp.points(kname)[i]
            sets = input_sets_for(K, p, pp.SEED, i, True)
            for o, vname in zip(firsts, np.asarray(vmap[kname])[order]):
                if vname not in vs:
                    continue
                v = K.variant(str(vname))
                states = [v.prepare(x, p) for x in sets]
                if "torch" in sys.modules:
                    threads.ensure_torch_threads()
                runs = {"same": [lambda s=states[0]: v.run(s)],
                        "fresh": [lambda s=s: v.run(s) for s in states]}
                t = {"same": [], "fresh": []}
                for first in o:
                    for mode in (("same", "fresh") if first else ("fresh", "same")):
                        t[mode].append(protocol.measure(runs[mode], sync=v.sync).median_s)
                same, fresh = float(np.mean(t["same"])), float(np.mean(t["fresh"]))
                w.writerow([kname, vname, hw, i, json.dumps(p, sort_keys=True), repr(same),
                            repr(fresh), len(sets), f"{fresh / same:.4f}",
                            f"{os.getloadavg()[0]:.2f}"])
                f.flush()
            if n % 20 == 0:
                print(f"{n + 1}/{len(todo)} points (load {os.getloadavg()[0]:.2f})", flush=True)
    return 0


def report(path: Path) -> str:
    import numpy as np
    import pandas as pd

    df = pd.read_csv(path)
    L = ["# Same data or new data: what repeating one input does to a measurement", "",
         "Each point timed with annpred's protocol twice side by side: every run on the same "
         "input (the default of `annpred profile`), and the runs rotated through distinct input "
         "sets (`annpred profile --fresh-inputs`, as many as hold 2 MiB, at most 1,024). Ratio "
         "= fresh / same (above 1: the repeated input ran faster). Points: the first test "
         "points of the paper protocol's distributions (`experiments/paper_protocol.py`), 1 "
         "thread, two alternating pairs per point, the mean of each pair.", "",
         f"Hardware: {', '.join(f'`{h}`' for h in sorted(df.hardware.unique()))}; data: "
         f"`{path.name}`; command: `python experiments/input_reuse.py`; load average "
         f"{df.load1.median():.2f} (median).", "",
         "| kernel | variant | points | median ratio | 10th pct | 90th pct | max | points "
         "with ratio > 1.1 | median ratio, same run < 100 us | input sets (median) |",
         "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for (k, v), g in df.groupby(["kernel", "variant"], sort=True):
        r = g.ratio.to_numpy()
        small = g.ratio[g.same_s < 1e-4]
        L.append(f"| {k} | {v} | {len(g)} | {np.median(r):.3f} | {np.percentile(r, 10):.3f} | "
                 f"{np.percentile(r, 90):.3f} | {r.max():.3f} | {(r > 1.1).sum()} | "
                 f"{f'{small.median():.3f} ({len(small)})' if len(small) else '-'} | "
                 f"{int(g.input_sets.median())} |")
    return "\n".join(L) + "\n"


def main(argv) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--points", type=int, default=40, help="test points per kernel (1-150)")
    ap.add_argument("--out", default=str(OUT), help="results folder")
    ap.add_argument("--report-only", action="store_true")
    a = ap.parse_args(argv)
    if not 1 <= a.points <= 150:
        print(f"--points must be between 1 and 150, got {a.points}", file=sys.stderr)
        return 2
    out = Path(a.out)
    path = out / "input_reuse.csv"
    if not a.report_only:
        t0 = time.time()
        rc = measure(a.points, path)
        if rc:
            return rc
        print(f"measured in {time.time() - t0:.0f} s", flush=True)
    if not path.exists():
        print(f"{path}: no measurements; run without --report-only first", file=sys.stderr)
        return 2
    from annpred.files import atomic_write_text

    text = report(path)
    atomic_write_text(out / "input_reuse.md", text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    from annpred.cli.app import run_script

    sys.exit(run_script(main, sys.argv[1:],
                        interrupted="measured points are kept; the same command resumes"))
