"""The accelerator/layer/mode cases of the accelerator study (experiments/accel.py), and the
SCALE-Sim inputs they correspond to.

``python experiments/accel_cases.py`` writes experiments/results/accel_cases.csv, which
experiments/accel_scalesim.py (SCALE-Sim's own environment) runs.
"""
from __future__ import annotations

import csv
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from annpred.accel import description as D  # noqa: E402
from annpred.accel.layers import parse, read_network  # noqa: E402

RESULTS = ROOT / "experiments" / "results"

LAYERS = ["conv2d:16,16,3,3,16,32,1", "conv2d:30,30,3,3,32,32,1", "conv2d:17,17,3,3,64,64,2",
          "conv2d:28,28,1,1,64,128,1", "gemm:64,256,128", "gemm:128,64,128",
          "dwconv:30,30,3,3,32,1", "conv2d:23,23,5,5,16,24,2"]
LARGE = ["conv2d:58,58,3,3,64,64,1"]          # ResNet-18 layer1 conv (padded 56x56)
NETWORKS = [("resnet18", "tpu-v1"), ("mobilenet_v1", "tpu-v1"), ("bert_base_block", "tpu-v1"),
            ("resnet18", "systolic32")]


def configs() -> dict:
    """Accelerators of the study: the shipped systolic ones and three small-buffer variants
    that put SCALE-Sim's USER mode into its stall regimes."""
    s = D.shipped()
    out = {k: s[k] for k in ("systolic32", "eyeriss", "gemmini", "tpu-v1")}
    out["os32-small"] = s["systolic32"].with_(name="os32-small", ifmap={"kb": 4},
                                               filter={"kb": 4}, ofmap={"kb": 4},
                                               dram_bandwidth=2)
    out["ws16-small"] = s["gemmini"].with_(name="ws16-small", ifmap={"kb": 8},
                                            filter={"kb": 8}, ofmap={"kb": 8}, dram_bandwidth=4)
    out["is16-small"] = s["gemmini"].with_(name="is16-small", dataflow="is", ifmap={"kb": 8},
                                            filter={"kb": 8}, ofmap={"kb": 8}, dram_bandwidth=4)
    return out


def scalesim_layer(layer):
    """The layer SCALE-Sim runs: depthwise layers run one channel (SCALE-Sim runs each
    channel as its own identical layer), so the cycles are multiplied by the channels."""
    if layer.kind == "dwconv":
        return layer.H, layer.W, layer.R, layer.S, 1, 1, layer.stride
    return layer.H, layer.W, layer.R, layer.S, layer.C, layer.M, layer.stride


def cases() -> list[dict]:
    """Every (accelerator, mode, layer, network) of the study, with its SCALE-Sim case id."""
    cfg = configs()
    out = []
    for name, acc in cfg.items():
        for mode in ("calc", "user"):
            for spec in LAYERS + (LARGE if name == "systolic32" else []):
                out.append(dict(accel=name, mode=mode, layer=parse(spec), network=""))
    for net, name in NETWORKS:
        for layer in read_network(net):
            out.append(dict(accel=name, mode="user", layer=layer, network=net))
    for c in out:
        H, W, R, S, C, M, st = scalesim_layer(c["layer"])
        c["case"] = f"{c['accel']}|{c['mode']}|{H},{W},{R},{S},{C},{M},{st}"
    return out


def write_cases(path: Path) -> int:
    cfg = configs()
    seen = set()
    rows = []
    for c in cases():
        if c["case"] in seen:
            continue
        seen.add(c["case"])
        acc = cfg[c["accel"]]
        H, W, R, S, C, M, st = scalesim_layer(c["layer"])
        rows.append(dict(case=c["case"], dataflow=acc.dataflow, rows=acc.rows, cols=acc.cols,
                         ifmap_kb=acc.ifmap.kb, filter_kb=acc.filter.kb, ofmap_kb=acc.ofmap.kb,
                         bandwidth=acc.dram_bandwidth, mode=c["mode"].upper(), H=H, W=W, R=R,
                         S=S, C=C, M=M, stride=st))
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return len(rows)


if __name__ == "__main__":
    print(write_cases(RESULTS / "accel_cases.csv"), "SCALE-Sim cases")
