"""Write a large synthetic profiling CSV (one matmul-like combination) for scale tests.

    python experiments/big_csv.py /tmp/big.csv --rows 2000000

The runtimes follow 2*m*n*k flops at ~10 GFLOP/s plus an overhead, with 5% log-normal
noise; columns are the profiling-CSV format of annpred.data.rows. Never commit the output.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from annpred.data.rows import columns_for  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--rows", type=int, default=2_000_000)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    rng = np.random.default_rng(a.seed)
    cols = columns_for(["m", "n", "k"])
    chunk = 200_000
    with open(a.out, "w", encoding="utf-8") as f:
        f.write(",".join(cols) + "\n")
        for start in range(0, a.rows, chunk):
            n = min(chunk, a.rows - start)
            m, nn, k = (rng.integers(8, 1024, n) for _ in range(3))
            t = (2.0 * m * nn * k / 1e10 + 2e-6) * np.exp(rng.normal(0, 0.05, n))
            ids = np.arange(start, start + n)
            lines = [f"matmul,numpy,cpu-big-t1,{a},{b},{c},{r!r},0.01000,5,{r!r},1,random,0,"
                     f"{i},0,2026-11-29T00:00:00,0.1.0"
                     for a, b, c, r, i in zip(m.tolist(), nn.tolist(), k.tolist(), t.tolist(),
                                              ids.tolist())]
            f.write("\n".join(lines) + "\n")
    print(f"wrote {a.rows} rows to {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
