"""Run SCALE-Sim v3 (``scalesim`` 3.0.0) on accelerator/layer cases and cache the cycle counts.

Runs in its own environment (SCALE-Sim needs ``numpy<2.4``), not annpred's::

    python3 -m venv /tmp/ssim && /tmp/ssim/bin/pip install -c constraints-accel.txt scalesim
    flock /tmp/annpred-timing.lock /tmp/ssim/bin/python experiments/accel_scalesim.py CASES.csv

CASES.csv columns: case, dataflow, rows, cols, ifmap_kb, filter_kb, ofmap_kb, bandwidth, mode,
H, W, R, S, C, M, stride (conv layer as SCALE-Sim reads it: H, W already padded).
Appends one row per case to ``experiments/results/accel_scalesim.csv`` (the cache read by the
study and the tests): case, scalesim_cycles (SCALE-Sim's "Total Cycles"), stall_cycles,
overall_cycles (incl. prefetch), scalesim_s (CPU seconds of the run), scalesim_version.
Cases already in the cache are skipped, so an interrupted run resumes.
"""
from __future__ import annotations

import csv
import io
import os
import sys
import tempfile
import time
import contextlib
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results" / "accel_scalesim.csv"
FIELDS = ["case", "scalesim_cycles", "stall_cycles", "overall_cycles", "scalesim_s",
          "scalesim_version"]

CONFIG = """[general]
run_name = annpred
[architecture_presets]
ArrayHeight: {rows}
ArrayWidth: {cols}
IfmapSramSzkB: {ifmap_kb}
FilterSramSzkB: {filter_kb}
OfmapSramSzkB: {ofmap_kb}
IfmapOffset: 0
FilterOffset: 10000000
OfmapOffset: 20000000
Dataflow: {dataflow}
Bandwidth: {bandwidth}
ReadRequestBuffer: 32
WriteRequestBuffer: 32
[layout]
IfmapCustomLayout: False
FilterCustomLayout: False
IfmapSRAMBankBandwidth: {bandwidth}
IfmapSRAMBankNum: 1
IfmapSRAMBankPort: 2
FilterSRAMBankBandwidth: {bandwidth}
FilterSRAMBankNum: 1
FilterSRAMBankPort: 2
[sparsity]
SparsitySupport: false
SparseRep: ellpack_block
OptimizedMapping: false
BlockSize: 8
RandomNumberGeneratorSeed: 40
[run_presets]
InterfaceBandwidth: {mode}
UseRamulatorTrace: False
"""


def run_case(case: dict) -> dict:
    from scalesim.scale_sim import scalesim

    with tempfile.TemporaryDirectory() as tmp:
        cfg = Path(tmp) / "cfg.cfg"
        cfg.write_text(CONFIG.format(**case))
        topo = Path(tmp) / "layer.csv"
        topo.write_text("Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, "
                        "Channels, Num Filter, Strides,\n"
                        "L0, {H}, {W}, {R}, {S}, {C}, {M}, {stride},\n".format(**case))
        layout = Path(tmp) / "layout.csv"  # required by the parser; unused (no custom layout)
        layout.write_text("Layer name," + ",".join(f"f{i}" for i in range(20)) + ",\n"
                          "L0," + ",".join(["1"] * 6 + ["0", "1", "2"] * 2 + ["0", "1", "2", "3"] * 2)
                          + ",\n")
        t0 = time.process_time()
        with contextlib.redirect_stdout(io.StringIO()):
            sim = scalesim(save_disk_space=True, verbose=False, config=str(cfg),
                           topology=str(topo), layout=str(layout))
            sim.run_scale(top_path=tmp)
        cpu = time.process_time() - t0
        reports = list(Path(tmp).rglob("COMPUTE_REPORT.csv"))
        with open(reports[0]) as fh:
            row = next(csv.DictReader(fh, skipinitialspace=True))
    row = {k.strip(): v for k, v in row.items() if k}
    from importlib.metadata import version
    return {"case": case["case"], "scalesim_cycles": int(float(row["Total Cycles"])),
            "stall_cycles": int(float(row["Stall Cycles"])),
            "overall_cycles": int(float(row["Total Cycles (incl. prefetch)"])),
            "scalesim_s": round(cpu, 3), "scalesim_version": version("scalesim")}


def main(argv: list[str]) -> int:
    cases = list(csv.DictReader(open(argv[0])))
    done = set()
    if RESULTS.exists():
        done = {r["case"] for r in csv.DictReader(open(RESULTS))}
    budget = float(argv[1]) if len(argv) > 1 else float("inf")  # seconds for this chunk
    t_start = time.time()
    print(f"load average {os.getloadavg()}", file=sys.stderr)
    for case in cases:
        if case["case"] in done:
            continue
        if time.time() - t_start > budget:
            print("chunk budget spent; rerun to continue", file=sys.stderr)
            break
        out = run_case(case)
        new = not RESULTS.exists()
        with open(RESULTS, "a", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=FIELDS)
            if new:
                w.writeheader()
            w.writerow(out)
        print(f"{out['case']}: {out['scalesim_cycles']} cycles, {out['scalesim_s']} s",
              file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
