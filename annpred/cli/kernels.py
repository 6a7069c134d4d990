"""``annpred kernels``: the catalog, its parameters, complexity, variants and steps."""
from __future__ import annotations

from pathlib import Path

from annpred.cli.common import print_json
from annpred.errors import ModelFormatError


def cmd_kernels(args) -> int:
    from annpred.spec.catalog import kernels
    from annpred.validate import not_empty

    not_empty(args.models, "--models")
    items = []
    steps = _model_steps(args.models)
    for k in kernels().values():
        d = k.to_dict()
        for v, vd in zip(k.variants, d["variants"]):
            vd["available_here"] = bool(v.available())
            found = steps.get((k.name, v.name))
            if found:
                vd["steps"] = found  # hardware -> {param: period} of trained models
        items.append(d)
    if args.json:
        print_json(items)
        return 0
    for d in items:
        print(f"{d['name']}: {d['description']}")
        for p in d["parameters"]:
            lo, hi = p["range"]
            print(f"  param {p['name']:<8} {p['kind']:<5} [{lo:g}, {hi:g}] {p['sampling']}")
        for name, text in d["complexity"].items():
            print(f"  complexity {name} = {text}")
        if d["fresh_inputs"]:
            print("  profiled on distinct input sets by default (its variants branch on the "
                  "data; profile --same-inputs to repeat one)")
        for v in d["variants"]:
            here = "runs here" if v["available_here"] else "not available here"
            extra = ("  complexity " + ", ".join(f"{a}={b}" for a, b in v["complexity"].items())
                     if "complexity" in v else "")
            print(f"  variant {v['name']:<14} {v['device']:<5} {here}{extra}")
            for hw_id, st in v.get("steps", {}).items():
                print(f"    steps on {hw_id}: " + ", ".join(f"{a} every {b}" for a, b in st.items()))
    return 0


def _model_steps(models) -> dict:
    """(kernel, variant) -> {hardware: steps} from the model files that record steps."""
    from annpred.errors import AnnpredError
    from annpred.model.layout import model_files, shipped_root, user_root
    from annpred.model.schema import MAX_FILE_BYTES, parse_json
    from annpred.validate import read_limited

    if models and not Path(models).is_dir():
        raise ModelFormatError(f"model directory {models} " + (
            "is a file, not a directory" if Path(models).exists() else "does not exist"))
    roots = [Path(models)] if models else [shipped_root(), user_root()]
    out: dict = {}
    for root in roots:
        for p in model_files(root):
            try:  # size-capped, regular files only, strict JSON
                d = parse_json(read_limited(p, "model file", MAX_FILE_BYTES).decode("utf-8"),
                               str(p))
                st = d.get("steps")
                if isinstance(st, dict) and st:
                    out.setdefault((d["kernel"], d["variant"]), {})[d["hardware"]] = st
            except (AnnpredError, UnicodeDecodeError, KeyError, TypeError, AttributeError):
                continue  # a broken model file is reported by predict, not by the listing
    return out


def register(sub) -> None:
    s = sub.add_parser("kernels", help="list the kernel catalog")
    s.add_argument("--json", action="store_true", help="print a JSON list, one object per kernel")
    s.add_argument("--models", help="model directory whose detected steps to show "
                   "(default: calibrated and shipped models)")
    s.set_defaults(func=cmd_kernels)
