"""``annpred export``: a model as a self-contained C header."""
from __future__ import annotations

from annpred.errors import ParameterError


def cmd_export(args) -> int:
    from annpred.runtime.export_c import export_c
    from annpred.model.schema import load_model

    if args.format != "c":
        raise ParameterError(f"unsupported export format {args.format!r} (supported: c)")
    from annpred.cli.common import output_file

    output_file(args.output, "-o/--output", [args.model])
    from pathlib import Path

    from annpred.runtime.correction import correction_of

    model = load_model(args.model)
    corr = None if args.no_correction else correction_of(model, Path(args.model))
    path = export_c(model, args.output, name=args.name, correction=corr)
    print(f"wrote {path}" + (f" (with this machine's calibration: {corr['form']}, "
                             f"{corr['n_probes']} probes)" if corr else ""))
    return 0


def register(sub) -> None:
    s = sub.add_parser("export", help="export a model for use outside Python (C header)")
    s.add_argument("model", metavar="MODEL.json", help="model file to export")
    s.add_argument("--format", default="c", help="output format: c, a C header "
                   "(the only one, and the default)")
    s.add_argument("-o", "--output", required=True, metavar="FILE.h", help="header file to write")
    s.add_argument("--name", help="C identifier prefix (default: from kernel and variant)")
    s.add_argument("--no-correction", action="store_true",
                   help="leave out this machine's calibration of the model (annpred "
                        "calibrate), which is compiled in by default")
    s.set_defaults(func=cmd_export)
