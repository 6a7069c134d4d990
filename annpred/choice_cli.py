"""``annpred choose`` and ``annpred export``: the command-line faces of
:func:`annpred.select.choose` and :mod:`annpred.export_c` (cheap to import: no torch)."""
from __future__ import annotations

import json
import sys

from .errors import ParameterError


def _fmt(s) -> str:
    if s is None:
        return "no model"
    if s < 1e-3:
        return f"{s * 1e6:.1f} us"
    if s < 1:
        return f"{s * 1e3:.3f} ms"
    return f"{s:.3f} s"


def cmd_choose(args) -> int:
    from .cli import parse_assignments
    from .select import choose

    params = parse_assignments(args.params)
    choice = choose(args.kernel, params, candidates=args.candidate or None,
                    models=args.models, default=args.default, policy=args.policy)
    if args.json:
        print(json.dumps(choice.to_dict(), indent=1))
    else:
        print(f"{choice.kernel} {' '.join(f'{k}={v:g}' for k, v in choice.params.items())}")
        for c, s, ok in choice.ranking():
            mark = "->" if c == choice.best else "  "
            note = "" if ok or s is None else "  (outside the training range)"
            if c in choice.unsupported:
                note = "  (does not support this point)"
            print(f" {mark} {str(c):<40} {_fmt(s):>12}{note}")
        print(f"choice: {choice.variant} on {choice.hardware}"
              + (" (fallback default)" if choice.fallback else ""))
    if choice.fallback:
        print(f"warning: not trusting the predictions ({choice.reason}); chose the default "
              f"{choice.variant}@{choice.hardware}", file=sys.stderr)
    elif choice.reason:
        print(f"note: {choice.reason}", file=sys.stderr)
    return 0


def cmd_export(args) -> int:
    from .export_c import export_c
    from .store import load_model

    if args.format != "c":
        raise ParameterError(f"unsupported export format {args.format!r} (supported: c)")
    model = load_model(args.model)
    path = export_c(model, args.output, name=args.name)
    print(f"wrote {path}")
    return 0


def register(sub) -> None:
    s = sub.add_parser("choose", help="choose the fastest variant and hardware for one call")
    s.add_argument("kernel")
    s.add_argument("--models", help="model directory (default: calibrated, else shipped)")
    s.add_argument("--candidate", action="append", metavar="VARIANT@HARDWARE",
                   help="restrict the candidates (repeatable; default: every variant with a "
                        "model for hardware present here)")
    s.add_argument("--default", metavar="VARIANT[@HARDWARE]",
                   help="fallback when the predictions are not trusted")
    s.add_argument("--policy", choices=("strict", "trusted", "extrapolate"), default=None,
                   help="strict (default): fall back unless every candidate is trusted; "
                        "trusted: best trusted candidate; extrapolate: trust every model")
    s.add_argument("--json", action="store_true")
    s.add_argument("params", nargs="*", metavar="name=value")
    s.set_defaults(func=cmd_choose)

    s = sub.add_parser("export", help="export a model for use outside Python (C header)")
    s.add_argument("model", metavar="MODEL.json")
    s.add_argument("--format", default="c", help="output format (c)")
    s.add_argument("-o", "--output", required=True, metavar="FILE.h")
    s.add_argument("--name", help="C identifier prefix (default: from kernel and variant)")
    s.set_defaults(func=cmd_export)
