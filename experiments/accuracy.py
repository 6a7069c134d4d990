"""The accuracy study on the shipped profiling data (issue 3).

    python experiments/accuracy.py            # about 10 minutes on 2 cores
    python experiments/accuracy.py --machine amd-epyc-zen5-avx512-2.6ghz   # another CPU's
                                                                         # two-pass profiles

Runs ``annpred evaluate`` on the catalog kernels' CSVs under ``trained/*/data/`` (the
Halide-schedule CSVs there, ``halide_*.csv``, belong to the schedule-selection study and are
left out) and writes everything into ``experiments/results/``: accuracy.csv, accuracy.md,
accuracy_runs.csv, learning_curves.csv/.png, cost.csv, pred_vs_measured_*.png,
mape_by_combination.png. Extra arguments are passed on to ``annpred evaluate``.

``--machine SLUG`` runs the same study on the profiles of another machine,
``trained/cpu-SLUG-t*/data/`` (made by ``experiments/reprofile_catalog.sh`` with a second
pass, see its header), into ``experiments/results/machines/SLUG/`` (without the hand-written
notes of the main study).
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "experiments" / "results"
NOTES = ROOT / "experiments" / "accuracy_notes.md"


def is_machine_slug(text: str) -> bool:
    """Letters, digits, dots and dashes only: safe inside a folder name and a glob."""
    return text.replace("-", "").replace(".", "").isalnum()


def csvs(machine: str | None = None) -> list[str]:
    from annpred.spec.catalog import kernels

    names = set(kernels())
    # the main study's data: the 48 combinations profiled in two passes on the AMD EPYC,
    # legacy ids only (the Intel Xeon profiles, one pass of 350 points, carry no noise floor;
    # their held-out errors are in the training reports and experiments/results/
    # uncertainty.csv); with ``machine``, that machine's profiles
    pattern = f"cpu-{machine}-t[0-9]*" if machine else "cpu-amd-epyc-t[0-9]*"
    found = sorted(p for p in (ROOT / "trained").glob(f"{pattern}/data/*.csv")
                   if p.stem in names)
    return [str(p.relative_to(ROOT)) for p in found]


def main(argv: list[str]) -> int:
    from annpred.cli.app import main as cli

    os.chdir(ROOT)
    machine, out, line = None, OUT, "python experiments/accuracy.py"
    if argv[:1] == ["--machine"] and len(argv) >= 2:
        machine, argv = argv[1], argv[2:]
        if not is_machine_slug(machine):
            print(f"--machine {machine!r}: not a machine slug", file=sys.stderr)
            return 2
        out = OUT / "machines" / machine
        line += f" --machine {machine}"
    files = csvs(machine)
    if not files:
        print(f"no catalog CSVs under trained/{'cpu-' + machine + '-t*' if machine else '*'}"
              "/data/", file=sys.stderr)
        return 2
    jobs = str(min(2, os.cpu_count() or 1))
    # one seed per learning-curve size keeps the whole run well under 15 minutes on 2 cores
    # (the curves are medians over 48 combinations); the main table uses 5 seeds
    args = ["evaluate", *files, "--out", str(out.relative_to(ROOT)), "--jobs", jobs,
            "--curve-seeds", "1", "--command-line", line]
    if NOTES.exists() and machine is None:
        args += ["--notes", str(NOTES.relative_to(ROOT))]
    return cli(args + argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
