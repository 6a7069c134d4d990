"""Transfer study: another device's tuning run as an input (``--transfer``).

For every ordered pair of files of the same kernel on two devices in ``--data`` (Kernel
Tuner cache or T4 files; the kernel is the file name up to its last ``_``, e.g.
``convolution_milo`` in ``convolution_milo_A100.json.gz``), the target's space is fitted
on ``budget`` random configurations (``annpred.study.tunespace``, strategy ``random``) and
judged on all the others, as ``annpred tune-space TARGET --transfer REFERENCE`` does:

- ``NN+C-auto`` and ``GBT+C`` without the reference (once per target, not per pair);
- the same two with the input ``transfer_s``, the reference's runtime of each
  configuration (``annpred.data.transfer``);
- ``scaled``: the reference's runtime times the median ratio target/reference over the
  budget's configurations (transfer without a model).

Writes ``transfer.csv`` (target, reference, model, n_train, seed, mape, regret),
``transfer.md`` into ``--out``; resumes from ``.transfer_checkpoint.jsonl`` there.

    python experiments/transfer.py --data DIR --out experiments/results/transfer
"""
from __future__ import annotations

import argparse
import hashlib
import os
import sys
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MODELS = ("NN+C-auto", "GBT+C")
CHECKPOINT = ".transfer_checkpoint.jsonl"


def _kernel(path: Path) -> str:
    return path.name.split(".json")[0].rsplit("_", 1)[0]


class Scaled:
    """Transfer without a model: the reference's runtime times the median ratio
    target / reference over the measured configurations (the study's zoo interface)."""

    name = "scaled"

    def fit(self, c, rows, seed):
        import numpy as np

        from annpred.data.transfer import COLUMN

        x = c.X[COLUMN].to_numpy()
        self.ratio_ = float(np.exp(np.median(np.log(c.y[rows] / x[rows]))))
        return self

    def predict(self, c, rows):
        from annpred.data.transfer import COLUMN

        return c.X[COLUMN].to_numpy()[rows] * self.ratio_


def _vendors(a: str, b: str) -> str:
    """Whether two hardware ids are both NVIDIA (``cuda-*``), both another vendor's, or
    mixed: all a hardware id tells of the architecture."""
    kinds = {"NVIDIA" if h.startswith("cuda-") else "other" for h in (a, b)}
    return "both " + kinds.pop() if len(kinds) == 1 else "mixed"


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, help="folder of cache/T4 files")
    ap.add_argument("--budgets", default="50,250")
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--only", default="", help="targets whose name contains this")
    ap.add_argument("--out", default=str(ROOT / "experiments" / "results" / "transfer"))
    args = ap.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import pandas as pd

    from annpred.data import profiles
    from annpred.data import transfer as tr
    from annpred.errors import AnnpredWarning
    from annpred.files import JsonlCheckpoint, atomic_write_text, code_revision
    from annpred.study import tunespace as T
    from annpred.study.zoo import make_model

    warnings.simplefilter("ignore", AnnpredWarning)  # small fits, names from file names
    files = sorted(Path(args.data).glob("*.json*"))
    budgets = [int(b) for b in args.budgets.split(",")]
    groups: dict[str, list[Path]] = {}
    for f in files:
        groups.setdefault(_kernel(f), []).append(f)
    pairs = [(t, r) for fs in groups.values() for t in fs for r in fs
             if t != r and args.only in t.name]
    if not pairs:
        print(f"no two files of one kernel in {args.data}", file=sys.stderr)
        return 2
    out = Path(args.out)
    ckpt = JsonlCheckpoint(out / CHECKPOINT, hashlib.sha256(repr(
        (budgets, code_revision())).encode()).hexdigest()[:16])
    done = {tuple(d["task"]): d for d in ckpt.load()}
    if done:
        print(f"resuming: {len(done)} finished runs read from {out / CHECKPOINT}", flush=True)
    sha = {f: hashlib.sha256(f.read_bytes()).hexdigest()[:16] for f in files}
    frames: dict[Path, object] = {}

    def loaded(f: Path):
        if f not in frames:
            frames[f] = profiles.load_profiles([str(f)])
        return frames[f]

    rows, t0 = [], time.time()

    def run(task, fn):
        if task not in done:
            done[task] = {"task": list(task), **fn()}
            ckpt.append([done[task]])
        return done[task]

    for target, ref in pairs:
        base = loaded(target)
        vendors = _vendors(str(base["hardware"].iloc[0]), str(loaded(ref)["hardware"].iloc[0]))
        with_ref = tr.with_transfer(base, str(ref))
        for budget in budgets:
            for seed in range(args.seeds):
                for name in MODELS:
                    for label, frame, key in ((name, base, ""),
                                              (name + " +transfer", with_ref, sha[ref])):
                        def fit(frame=frame, name=name):
                            r = T.select_on_space(T.space_combination(frame), make_model(name),
                                                  budget=budget, top=10, seed=seed,
                                                  strategy="random")
                            return {"mape": r.mape, "regret": r.regret}
                        rec = run((sha[target], key, name, budget, seed), fit)
                        rows.append({"target": target.name.split(".json")[0],
                                     "reference": ref.name.split(".json")[0], "vendors": vendors,
                                     "model": label,
                                     "n_train": budget, "seed": seed, "mape": rec["mape"],
                                     "regret": rec["regret"]})

                def scaled():
                    r = T.select_on_space(T.space_combination(with_ref), Scaled(),
                                          budget=budget, top=10, seed=seed, strategy="random")
                    return {"mape": r.mape, "regret": r.regret}
                rec = run((sha[target], sha[ref], "scaled", budget, seed), scaled)
                rows.append({"target": target.name.split(".json")[0],
                             "reference": ref.name.split(".json")[0], "vendors": vendors,
                             "model": "scaled",
                             "n_train": budget, "seed": seed, "mape": rec["mape"],
                             "regret": rec["regret"]})
        print(f"[{time.time() - t0:6.0f}s] {target.name} <- {ref.name}", flush=True)
    runs = pd.DataFrame(rows)
    atomic_write_text(out / "transfer.csv", runs.to_csv(index=False, float_format="%.5g"))
    atomic_write_text(out / "transfer.md", report(runs, args))
    print(f"wrote transfer.csv and transfer.md into {out} in {time.time() - t0:.0f} s")
    return 0


def report(runs, args) -> str:
    import numpy as np

    pair = (runs.groupby(["target", "reference", "model", "n_train"], sort=False)
            [["mape", "regret"]].mean().reset_index())
    lines = ["# Transfer: another device's tuning run as an input",
             "",
             f"Regenerate with `python experiments/transfer.py --data DIR` ({args.seeds} "
             "seeds, budgets " + args.budgets + "; DIR holds the files of SOURCES.md). "
             "Every ordered pair of devices of one kernel; random configurations measured "
             "on the target, MAPE over all the others, regret = best of (measured + 10 "
             "predicted) / optimum. Models without `+transfer` do not see the reference "
             "(the same numbers for every reference of a target).",
             "",
             "## Median over pairs (mean over seeds per pair)",
             "",
             "| kernel | n_train | model | median MAPE % | pairs better than without | "
             "median regret |",
             "|---|---:|---|---:|---:|---:|"]
    pair["kernel"] = pair["target"].map(lambda t: t.rsplit("_", 1)[0])
    for (kernel, n), g in pair.groupby(["kernel", "n_train"], sort=False):
        for model in g["model"].unique():
            m = g[g.model == model].set_index(["target", "reference"])
            plain = model.replace(" +transfer", "")
            better = ""
            if model.endswith("+transfer"):
                p = g[g.model == plain].set_index(["target", "reference"])["mape"]
                better = f"{int((m['mape'] < p.reindex(m.index)).sum())} of {len(m)}"
            lines.append(f"| {kernel} | {n} | {model} | {np.median(m['mape']):.2f} | "
                         f"{better} | {np.median(m['regret']):.4f} |")
    lines += ["", "## By vendor pair", "",
              "The same medians over the pairs whose two hardware ids are both NVIDIA "
              "(`cuda-*`), both another vendor's, or mixed.", "",
              "| kernel | n_train | vendors | pairs | " + " | ".join(pair["model"].unique())
              + " | +transfer better (NN+C-auto) |",
              "|---|---:|---|---:|" + "---:|" * (pair["model"].nunique() + 1)]
    pair["vendors"] = pair.set_index(["target", "reference"]).index.map(
        runs.drop_duplicates(["target", "reference"]).set_index(["target", "reference"])
        ["vendors"])
    for (kernel, n, v), g in pair.groupby(["kernel", "n_train", "vendors"]):
        med = g.groupby("model")["mape"].median()
        w = g.pivot_table(index=["target", "reference"], columns="model", values="mape")
        better = int((w["NN+C-auto +transfer"] < w["NN+C-auto"]).sum())
        lines.append(f"| {kernel} | {n} | {v} | {len(w)} | " + " | ".join(
            f"{med[m]:.2f}" for m in pair["model"].unique()) + f" | {better} of {len(w)} |")
    lines += ["", "## Every pair", "", "| target | reference | n_train | " +
              " | ".join(pair["model"].unique()) + " |",
              "|---|---|---:|" + "---:|" * pair["model"].nunique()]
    for (t, r, n), g in pair.groupby(["target", "reference", "n_train"], sort=False):
        v = g.set_index("model")["mape"]
        best = v.idxmin()
        lines.append(f"| {t} | {r} | {n} | " + " | ".join(
            (f"**{v[m]:.2f}**" if m == best else f"{v[m]:.2f}") for m in pair["model"].unique())
            + " |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    from annpred.cli.app import run_script

    sys.exit(run_script(main, sys.argv[1:],
                        interrupted="finished runs are kept; the same command resumes"))
