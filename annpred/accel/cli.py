"""``annpred accel list|show|estimate``: accelerator performance models from a description.

Cheap to import: nothing beyond the standard library is loaded before a command runs.
"""
from __future__ import annotations

import sys

from annpred.cli.common import print_json


def register(subparsers) -> None:
    """Add ``accel`` (list, show, estimate) to the ``annpred`` subcommands."""
    a = subparsers.add_parser("accel", help="modelled accelerators (hardware sim-<name>): "
                              "list, show, estimate layer and network cycles")
    s = a.add_subparsers(dest="accel_command", metavar="SUBCOMMAND")
    s.required = True
    ls = s.add_parser("list", help="the shipped accelerator descriptions")
    ls.add_argument("--json", action="store_true", help="print a JSON list, one object each")
    ls.set_defaults(func=cmd_list)
    sh = s.add_parser("show", help="one accelerator's description")
    sh.add_argument("name", help="shipped name (systolic32, tpu-v1, ...) or a description "
                    "file NAME.yaml or NAME.json")
    sh.add_argument("--json", action="store_true", help="print the description as JSON")
    sh.set_defaults(func=cmd_show)
    e = s.add_parser("estimate", help="cycles and seconds of layers on an accelerator",
                     description="Cycles and seconds of layers on an accelerator. The work of "
                     "one layer is bounded: a layer whose evaluation needs more than "
                     "131,072 folds (row folds x column folds) or 268,435,456 array steps "
                     "(--full: 8,388,608 steps) is refused with exit code 2 before any "
                     "work (layers the stall-free closed form covers have no limit).")
    e.add_argument("name", help="shipped name or a description file NAME.yaml or "
                   "NAME.json")
    e.add_argument("--layer", action="append", default=[],
                   help="conv2d:H,W,R,S,C,M,stride | dwconv:H,W,R,S,C,stride | gemm:M,K,N "
                        "(H, W padded, as SCALE-Sim reads them); repeatable")
    e.add_argument("--network", default=None,
                   help="layer table CSV (name, kind, H, W, R, S, C, M, stride, pad, K, N) or "
                        "a shipped one: resnet18, mobilenet_v1, bert_base_block")
    e.add_argument("--mode", choices=("user", "calc"), default="user",
                   help="user: finite DRAM bandwidth (default); calc: ideal bandwidth")
    e.add_argument("--full", action="store_true",
                   help="evaluate every step of the dependency graph (slow reference) "
                        "instead of the fast evaluation; at most 8,388,608 steps per "
                        "layer)")
    e.add_argument("--json", action="store_true", help="print a JSON object")
    e.set_defaults(func=cmd_estimate)


def _summary(acc) -> dict:
    return {"name": acc.name, "hardware": acc.hardware_id(), "dataflow": acc.dataflow,
            "rows": acc.rows, "cols": acc.cols, "ifmap_kb": acc.ifmap.kb,
            "filter_kb": acc.filter.kb, "ofmap_kb": acc.ofmap.kb,
            "dram_bandwidth": acc.dram_bandwidth, "clock_mhz": acc.clock_mhz,
            "description": acc.description}


def cmd_list(args) -> int:
    from .description import shipped

    items = [_summary(a) for a in shipped().values()]
    if args.json:
        print_json(items)
        return 0
    for d in items:
        print(f"{d['hardware']:<18} {d['rows']:>4}x{d['cols']:<4} {d['dataflow']:<7} "
              f"buffers {d['ifmap_kb']}/{d['filter_kb']}/{d['ofmap_kb']} KiB, DRAM "
              f"{d['dram_bandwidth']} words/cycle, {d['clock_mhz']:g} MHz")
    return 0


# the unit of each number in a description, as `accel show` prints it
UNITS = {"rows": "PEs", "cols": "PEs", "dram_bandwidth": "words/cycle",
         "dram_latency": "cycles", "clock_mhz": "MHz", "word_bytes": "bytes",
         "mac_latency": "cycles", "sram_latency": "cycles", "address_space_words": "words"}


def cmd_show(args) -> int:
    from .description import get

    from .mapping import cycles_expression
    from .stalls import stall_expressions

    acc = get(args.name)
    d = acc.to_dict()
    conv = ("(n-k+1)**2", "k**2*c", "f")
    d["complexity"] = {"conv2d": cycles_expression(acc, *conv),
                       "matmul": cycles_expression(acc, "m", "k", "n")}
    # stride 1: windows overlap where k > 1; every word of window rows k*c on has a copy
    d["complexity"]["conv2d_finite_bandwidth"] = stall_expressions(
        acc, *conv, d["complexity"]["conv2d"], overlap="min(max(k-1,0),1)",
        copy_rows="k*c")["user"]
    if args.json:
        print_json(d)
        return 0
    print(f"{acc.hardware_id()}: {acc.description}")
    for k, v in d.items():
        if k in ("name", "description", "format", "complexity"):
            continue
        if isinstance(v, dict) and "kb" in v:  # a buffer
            v = (f"{v['kb']:g} KiB, {v['banks']} bank{'s' * (v['banks'] != 1)}"
                 + (", double-buffered" if v.get("double_buffered") else ""))
        print(f"  {k}: {v}" + (f" {UNITS[k]}" if k in UNITS else ""))
    for k, v in d["complexity"].items():
        what = "stall estimate of" if k.endswith("_finite_bandwidth") else \
            "ideal-bandwidth cycles of"
        print(f"  {what} {k.removesuffix('_finite_bandwidth')} (for --complexity): {v}")
    return 0


def cmd_estimate(args) -> int:
    from ..errors import AnnpredError, ParameterError
    from .description import get
    from .evaluate import check_work, estimate
    from .layers import parse, read_network_lines
    from .roofline import roofline_cycles
    from ..validate import not_empty

    not_empty(args.network, "--network")
    acc = get(args.name)
    # (where, layer): a network row's errors name its file and line
    located = [("", parse(s)) for s in args.layer]
    if args.network is not None:
        located += read_network_lines(args.network)
    if not located:
        raise ParameterError("give --layer KIND:N,... and/or --network FILE.csv")

    def named(where, exc):
        return type(exc)(f"{where}: {exc}") if where else exc

    for where, layer in located:   # every layer fits the description and the work limits,
        try:                         # before any work
            check_work(acc, layer, args.mode, "full" if args.full else "fast")
        except AnnpredError as exc:
            raise named(where, exc) from None
    rows = []
    from tqdm import tqdm

    # a network's full evaluation takes seconds to minutes, and one huge layer can too (even
    # fast): bars on stderr, shown only for work that has run 2 s (tqdm's delay)
    for where, layer in tqdm(located, desc=f"{acc.name} layers", unit="layer", leave=False,
                             disable=len(located) < 2, file=sys.stderr, delay=2):
        bar = tqdm(desc=f"  {layer.name or layer.label()}", unit="column fold", leave=False,
                   file=sys.stderr, delay=2)

        def progress(done, total, bar=bar):
            bar.total = total
            bar.update(done - bar.n)
        try:
            r = estimate(acc, layer, args.mode, "full" if args.full else "fast", progress)
            r["roofline_cycles"] = roofline_cycles(acc, layer, args.mode)
        except AnnpredError as exc:
            raise named(where, exc) from None
        finally:
            bar.close()
        rows.append(r)
    total = {"cycles": sum(r["cycles"] for r in rows),
             "seconds": sum(r["seconds"] for r in rows),
             "iterations_total": sum(r["iterations_total"] for r in rows),
             "iterations_evaluated": sum(r["iterations_evaluated"] for r in rows),
             "elapsed_s": sum(r["elapsed_s"] for r in rows)}
    out = {"accel": acc.name, "hardware": acc.hardware_id(), "mode": args.mode,
           "layers": rows, "total": total}
    if args.json:
        print_json(out)
        return 0
    print(f"{acc.hardware_id()} ({acc.rows}x{acc.cols} {acc.dataflow}, {args.mode} mode, "
          f"{acc.clock_mhz:g} MHz)")
    print(f"  {'layer':<34}{'cycles':>14}{'ms':>11}{'roofline cycles':>17}"
          f"{'iterations evaluated/total':>30}")
    for r in rows:
        print(f"  {r['layer']:<34}{r['cycles']:>14,}{r['seconds'] * 1e3:>11.4f}"
              f"{r['roofline_cycles']:>17,}{r['iterations_evaluated']:>19,}/"
              f"{r['iterations_total']:<10,}")
    if len(rows) > 1:
        print(f"  {'total':<34}{total['cycles']:>14,}{total['seconds'] * 1e3:>11.4f}")
    print(f"  (ms: cycles at the clock; annpred's own evaluation took "
          f"{total['elapsed_s'] * 1e3:.2f} ms)")
    return 0
