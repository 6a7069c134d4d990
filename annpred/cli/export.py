"""``annpred export``: a model as a self-contained C header."""
from __future__ import annotations

from annpred.errors import ParameterError


def cmd_export(args) -> int:
    from annpred.runtime.export_c import export_c
    from annpred.model.schema import load_model

    if args.format != "c":
        raise ParameterError(f"unsupported export format {args.format!r} (supported: c)")
    model = load_model(args.model)
    path = export_c(model, args.output, name=args.name)
    print(f"wrote {path}")
    return 0


def register(sub) -> None:
    s = sub.add_parser("export", help="export a model for use outside Python (C header)")
    s.add_argument("model", metavar="MODEL.json")
    s.add_argument("--format", default="c", help="output format (c)")
    s.add_argument("-o", "--output", required=True, metavar="FILE.h")
    s.add_argument("--name", help="C identifier prefix (default: from kernel and variant)")
    s.set_defaults(func=cmd_export)
