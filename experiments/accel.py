"""Accelerator study: fast == full, SCALE-Sim (CALC, USER), roofline and ZigZag side by side,
whole networks, and NN+C trained on simulated samples (random vs PR sampling).

    flock /tmp/annpred-timing.lock .venv/bin/python experiments/accel.py
    (--layers-only, --nn-only, --nn-configs=tpu-v1/user: parts)

Reads the cached reference runs (experiments/results/accel_scalesim.csv, accel_zigzag.csv;
made by accel_scalesim.py / accel_zigzag.py in SCALE-Sim's own environment) and writes
experiments/results/accel.csv (one row per accelerator, mode, layer; network rows with
layer "ALL" hold the whole-network sums), experiments/results/accel_nn.csv and prints the
summary quoted in experiments/results/accel_notes.md. About 5 minutes on 2 cores.
"""
from __future__ import annotations

import csv
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "experiments"))

import accel_cases as AC  # noqa: E402
from annpred.accel import description as D  # noqa: E402
from annpred.accel.evaluate import fast_layer, full  # noqa: E402
from annpred.accel.layers import parse  # noqa: E402
from annpred.accel.mapping import plan  # noqa: E402
from annpred.accel.roofline import roofline_cycles  # noqa: E402

RESULTS = ROOT / "experiments" / "results"
LARGE = 100_000     # array steps from which a layer counts as large (iteration target)
COLUMNS = ["accel", "dataflow", "mode", "layer", "network", "scalesim_cycles", "full_cycles",
           "fast_cycles", "zigzag_cycles", "roofline_cycles", "iterations_evaluated",
           "iterations_total", "fast_s", "scalesim_s"]


def _cache(name: str, key: str = "case") -> dict:
    path = RESULTS / name
    if not path.exists():
        return {}
    return {r[key]: r for r in csv.DictReader(path.open())}


def _timed_fast(acc, layer, mode, repeats: int = 5):
    """CPU seconds of the fast evaluation (mapping included: ``fast_layer`` maps the layer,
    or takes the ideal-bandwidth closed form from the operand shape), median of ``repeats``
    runs after one warm-up; CPU time like SCALE-Sim's scalesim_s, so both are comparable on
    a busy machine. Nothing is cached between runs."""
    fast_layer(acc, layer, mode)
    times, r = [], None
    for _ in range(repeats):
        t0 = time.process_time()
        r = fast_layer(acc, layer, mode)
        times.append(time.process_time() - t0)
    return r, statistics.median(times)


def layer_rows(with_full: bool = True) -> list[dict]:
    ss, zz = _cache("accel_scalesim.csv"), _cache("accel_zigzag.csv")
    cfg = AC.configs()
    cases = AC.cases()
    extra = [dict(accel="vector64", mode=m, layer=parse(s), network="", case="")
             for m in ("calc", "user") for s in AC.LAYERS]    # no SCALE-Sim equivalent
    cfg["vector64"] = D.get("vector64")
    rows = []
    for i, c in enumerate(cases + extra):
        acc, layer, mode = cfg[c["accel"]], c["layer"], c["mode"]
        g = layer.groups
        r_fast, fast_s = _timed_fast(acc, layer, mode)
        r_full = full(plan(acc, layer, mode)) if with_full else None
        ref = ss.get(c["case"])
        zkey = c["case"].split("|", 1)[0] + "|" + c["case"].split("|", 2)[2] if c["case"] else ""
        z = zz.get(zkey)
        rows.append({
            "accel": c["accel"], "dataflow": acc.dataflow, "mode": mode,
            "layer": layer.name or layer.label(), "network": c["network"],
            "scalesim_cycles": int(ref["scalesim_cycles"]) * g if ref else "",
            "full_cycles": r_full.cycles * g if r_full else "",
            "fast_cycles": r_fast.cycles * g,
            "zigzag_cycles": (round(float(z["zigzag_cycles"])) * g
                              if z and z["zigzag_cycles"] not in ("", "nan") else ""),
            "roofline_cycles": roofline_cycles(acc, layer, mode),
            # depthwise: one channel is evaluated and multiplied (SCALE-Sim runs every channel)
            "iterations_evaluated": r_fast.evaluated, "iterations_total": r_fast.steps * g,
            "fast_s": f"{fast_s:.6g}",
            "scalesim_s": f"{float(ref['scalesim_s']) * g:.6g}" if ref else ""})
        print(f"\r{i + 1}/{len(cases) + len(extra)} layers", end="", file=sys.stderr)
    print(file=sys.stderr)
    for net, name in AC.NETWORKS:
        sub = [r for r in rows if r["network"] == net and r["accel"] == name]
        tot = {"accel": sub[0]["accel"], "dataflow": sub[0]["dataflow"], "mode": sub[0]["mode"],
               "layer": "ALL", "network": net}
        for col in COLUMNS[5:]:
            vals = [r[col] for r in sub]
            tot[col] = "" if any(v == "" for v in vals) else (
                f"{sum(float(v) for v in vals):.6g}" if col.endswith("_s") else sum(vals))
        rows.append(tot)
    return rows


def _mape(pairs) -> tuple[float, float, int]:
    errs = [abs(a - b) / b * 100 for a, b in pairs]
    return (statistics.mean(errs), max(errs), len(errs)) if errs else (float("nan"),) * 2 + (0,)


def summarise(rows) -> list[str]:
    lines = []
    per = [r for r in rows if r["layer"] != "ALL"]
    same = sum(1 for r in per if r["full_cycles"] == "" or r["fast_cycles"] == r["full_cycles"])
    lines.append(f"fast == full on {same} of {len(per)} layer rows")
    for mode in ("calc", "user"):
        sub = [r for r in per if r["mode"] == mode and r["scalesim_cycles"] != ""]
        m, w, n = _mape((r["fast_cycles"], r["scalesim_cycles"]) for r in sub)
        rm, rw, _ = _mape((r["roofline_cycles"], r["scalesim_cycles"]) for r in sub)
        zsub = [r for r in sub if r["zigzag_cycles"] != ""]
        zm, zw, zn = _mape((r["zigzag_cycles"], r["scalesim_cycles"]) for r in zsub)
        lines.append(f"{mode.upper()}: ours MAPE {m:.4f}% (worst {w:.4f}%, n={n}); roofline "
                     f"{rm:.1f}% (worst {rw:.1f}%); ZigZag {zm:.1f}% (worst {zw:.1f}%, n={zn})")
    # "large layer": at least LARGE array steps (fixed before the results, as in the first
    # study); whole-network rows are reported separately
    big = [r for r in per if r["iterations_total"] >= LARGE]
    if big:
        ratios = [r["iterations_total"] / r["iterations_evaluated"] for r in big]
        lines.append(f"layers with >= {LARGE:,} steps: {len(big)}; total/evaluated iterations "
                     f"median {statistics.median(ratios):,.0f}x, min {min(ratios):,.0f}x; "
                     f">= 1,000x on {sum(x >= 1000 for x in ratios)} of {len(big)}")
        for mode in ("calc", "user"):
            sub = [x for r, x in zip(big, ratios) if r["mode"] == mode]
            if sub:
                lines.append(f"  {mode}: {len(sub)} large layers, median "
                             f"{statistics.median(sub):,.0f}x, min {min(sub):,.0f}x")
    sp = [float(r["scalesim_s"]) / float(r["fast_s"]) for r in per if r["scalesim_s"] != ""]
    if sp:
        lines.append(f"speed-up over SCALE-Sim per layer: median {statistics.median(sp):,.0f}x, "
                     f"min {min(sp):,.0f}x, max {max(sp):,.0f}x; >= 10,000x on "
                     f"{sum(s >= 1e4 for s in sp)} of {len(sp)}")
        for mode in ("calc", "user"):
            sub = [float(r["scalesim_s"]) / float(r["fast_s"]) for r in per
                   if r["scalesim_s"] != "" and r["mode"] == mode]
            if sub:
                lines.append(f"  {mode}: median {statistics.median(sub):,.0f}x, >= 10,000x on "
                             f"{sum(s >= 1e4 for s in sub)} of {len(sub)}")
    for r in rows:
        if r["layer"] == "ALL" and r["scalesim_cycles"] != "":
            e = (r["fast_cycles"] - r["scalesim_cycles"]) / r["scalesim_cycles"] * 100
            lines.append(f"network {r['network']} on {r['accel']} ({r['mode']}): ours "
                         f"{r['fast_cycles']:,} vs SCALE-Sim {r['scalesim_cycles']:,} cycles "
                         f"({e:+.4f}%), model {float(r['fast_s']):.3f} s vs SCALE-Sim "
                         f"{float(r['scalesim_s']):.0f} s")
    return lines


def write_csv(path: Path, rows, cols) -> None:
    tmp = path.with_suffix(".tmp")
    with tmp.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=cols)
        w.writeheader()
        w.writerows(rows)
    os.replace(tmp, path)


def main(argv) -> int:
    print(f"load average {os.getloadavg()}", file=sys.stderr)
    if "--nn-only" not in argv:
        rows = layer_rows(with_full="--no-full" not in argv)
        write_csv(RESULTS / "accel.csv", rows, COLUMNS)
        for line in summarise(rows):
            print(line)
    if "--layers-only" not in argv:
        from accel_nn import nn_study

        configs = [tuple(a.split("=", 1)[1].split("/")) for a in argv
                   if a.startswith("--nn-configs=")]
        nn_rows, notes = nn_study(*([[tuple(c) for c in configs]] if configs else []))
        write_csv(RESULTS / "accel_nn.csv", nn_rows,
                  ["accel", "kernel", "sampler", "n_measured", "mape"])
        for line in notes:
            print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
