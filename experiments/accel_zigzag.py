"""ZigZag (``zigzag-dse``) estimates for the accelerator study's cases, cached as a CSV.

Runs in the reference environment (see pyproject's ``accel-ref``):
    flock /tmp/annpred-timing.lock /tmp/ssim/bin/python experiments/accel_zigzag.py
Reads experiments/results/accel_cases.csv (written by experiments/accel_cases.py) and appends
to experiments/results/accel_zigzag.csv: case, zigzag_cycles, zigzag_s. ZigZag has no
USER/CALC distinction; it is run once per accelerator and layer, with a description made
from the same numbers: a rows x cols MAC array (spatial unrolling by the dataflow: os =
output pixels x filters, ws = window x filters, is = window x output pixels), one register
per PE and operand, the three on-chip buffers with their sizes, and a DRAM port of the
description's bandwidth; the temporal mapping is searched by ZigZag (LOMA, latency).
"""
from __future__ import annotations

import contextlib
import csv
import io
import logging
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
OUT = RESULTS / "accel_zigzag.csv"

MEM = """  {name}:
    size: {size}
    r_cost: 1
    w_cost: 1
    area: 0
    latency: 1
    operands: [{ops}]
    ports:
{ports}
    served_dimensions: [{served}]
"""


def _ports(ops, bw):
    rd = [f"          - {o}, tl" for o in ops] + ["          - O, th" for o in ops if o == "O"]
    wr = [f"          - {o}, fh" for o in ops] + ["          - O, fl" for o in ops if o == "O"]
    return (f"      - name: r_port_1\n        type: read\n        bandwidth_min: {bw}\n"
            f"        bandwidth_max: {bw}\n        allocation:\n" + "\n".join(rd) + "\n"
            f"      - name: w_port_1\n        type: write\n        bandwidth_min: {bw}\n"
            f"        bandwidth_max: {bw}\n        allocation:\n" + "\n".join(wr))


def hardware_yaml(c: dict) -> str:
    rows, cols = int(c["rows"]), int(c["cols"])
    bits = 8
    mems = [MEM.format(name="reg_w", size=bits, ops="I2", ports=_ports(["I2"], bits), served=""),
            MEM.format(name="reg_i", size=bits, ops="I1", ports=_ports(["I1"], bits), served=""),
            MEM.format(name="reg_o", size=2 * bits, ops="O", ports=_ports(["O"], 2 * bits),
                       served="")]
    # on-chip buffers: one word per array edge per cycle (SCALE-Sim's SRAM bandwidth)
    mems.append(MEM.format(name="sram_i", size=int(c["ifmap_kb"]) * 1024 * bits, ops="I1",
                           ports=_ports(["I1"], max(rows, cols) * bits), served="D1, D2"))
    mems.append(MEM.format(name="sram_w", size=int(c["filter_kb"]) * 1024 * bits, ops="I2",
                           ports=_ports(["I2"], max(rows, cols) * bits), served="D1, D2"))
    mems.append(MEM.format(name="sram_o", size=int(c["ofmap_kb"]) * 1024 * bits, ops="O",
                           ports=_ports(["O"], max(rows, cols) * 2 * bits), served="D1, D2"))
    bw = int(c["bandwidth"]) * bits
    dram = MEM.format(name="dram", size=10**10, ops="I1, I2, O", ports=(
        f"      - name: rw_port_1\n        type: read_write\n        bandwidth_min: {bw}\n"
        f"        bandwidth_max: {bw}\n        allocation:\n" + "\n".join(
            f"          - {o}, {d}" for o in ("I1", "I2", "O") for d in ("fh", "tl")) +
        "\n          - O, fl\n          - O, th"), served="D1, D2")
    mems.append(dram)
    return ("name: annpred_case\n\nmemories:\n" + "\n".join(mems) +
            f"\noperational_array:\n  unit_energy: 0.04\n  unit_area: 1\n"
            f"  dimensions: [D1, D2]\n  sizes: [{rows}, {cols}]\n")


def mapping_yaml(c: dict) -> str:
    rows, cols = int(c["rows"]), int(c["cols"])
    d1, d2 = {"os": ("OX", "K"), "ws": ("C", "K"), "is": ("C", "OX")}[c["dataflow"]]
    return (f"- name: default\n  spatial_mapping:\n    D1:\n      - {d1}, {rows}\n"
            f"    D2:\n      - {d2}, {cols}\n  memory_operand_links:\n    O: O\n    W: I2\n"
            f"    I: I1\n")


def workload_yaml(c: dict) -> str:
    """Convolutions as ZigZag convolutions (its own data-reuse model); GEMMs (SCALE-Sim's
    R=1, S=W, C=1 form) as M x K x N loops: OX = rows of A, C = inner dimension, K = N."""
    H, W, R, S, C, M, st = (int(c[k]) for k in ("H", "W", "R", "S", "C", "M", "stride"))
    E, F = -(-(H - R) // st) + 1, -(-(W - S) // st) + 1
    if R == 1 and S == W and C == 1:
        sizes = f"[1, {M}, {S}, 1, {H}, 1, 1]"
        rel = "[ix=1*ox+1*fx, iy=1*oy+1*fy]"
    else:
        sizes = f"[1, {M}, {C}, {E}, {F}, {R}, {S}]"
        rel = f"[ix={st}*ox+1*fx, iy={st}*oy+1*fy]"
    return (f"- id: 0\n  name: layer\n  operator_type: Conv\n"
            f"  equation: O[b][k][oy][ox]+=W[k][c][fy][fx]*I[b][c][iy][ix]\n"
            f"  dimension_relations: {rel}\n"
            f"  loop_dims: [B, K, C, OY, OX, FY, FX]\n"
            f"  loop_sizes: {sizes}\n"
            f"  operand_precision:\n    W: 8\n    I: 8\n    O: 16\n    O_final: 8\n"
            f"  operand_source:\n    I: 0\n    W: 0\n")


def run_case(c: dict) -> tuple[float, float]:
    from zigzag.api import get_hardware_performance_zigzag

    with tempfile.TemporaryDirectory() as tmp:
        t = Path(tmp)
        (t / "hw.yaml").write_text(hardware_yaml(c))
        (t / "map.yaml").write_text(mapping_yaml(c))
        (t / "wl.yaml").write_text(workload_yaml(c))
        t0 = time.process_time()
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            energy, latency, _ = get_hardware_performance_zigzag(
                str(t / "wl.yaml"), str(t / "hw.yaml"), str(t / "map.yaml"), opt="latency",
                dump_folder=str(t / "out"), loma_show_progress_bar=False)
        return float(latency), time.process_time() - t0


def main(argv) -> int:
    logging.disable(logging.CRITICAL)
    cases = [c for c in csv.DictReader(open(RESULTS / "accel_cases.csv"))]
    done = {r["case"] for r in csv.DictReader(open(OUT))} if OUT.exists() else set()
    budget = float(argv[0]) if argv else float("inf")
    t_start = time.time()
    for c in cases:
        key = c["case"].split("|", 1)[0] + "|" + c["case"].split("|", 2)[2]
        if key in done or c["dataflow"] not in ("os", "ws", "is"):
            continue
        if time.time() - t_start > budget:
            print("chunk budget spent; rerun to continue", file=sys.stderr)
            break
        try:
            cycles, secs = run_case(c)
        except Exception as exc:  # ZigZag rejects some mappings: record why
            cycles, secs = float("nan"), 0.0
            print(f"{key}: zigzag failed: {type(exc).__name__}: {exc}"[:300], file=sys.stderr)
        new = not OUT.exists()
        with open(OUT, "a", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=["case", "zigzag_cycles", "zigzag_s"])
            if new:
                w.writeheader()
            w.writerow({"case": key, "zigzag_cycles": cycles, "zigzag_s": round(secs, 3)})
        done.add(key)
        print(f"{key}: {cycles}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
