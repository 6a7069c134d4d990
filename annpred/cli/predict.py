"""``annpred predict``: the predicted runtime of one call, or of every row of a CSV."""
from __future__ import annotations

import sys

from annpred.cli.common import (add_models_option, fmt_seconds, models_arg, one_input_note,
                                parse_assignments, print_json)
from annpred.errors import AnnpredError, ParameterError


def cmd_predict(args) -> int:
    from annpred.runtime.predictor import load_models
    from annpred.spec.catalog import get_kernel
    from annpred.validate import not_empty

    not_empty(args.hardware, "--hardware")
    not_empty(args.input, "--input")  # '' read the current directory: "CSV . is a directory"
    models = load_models(models_arg(args))
    try:
        kernel = get_kernel(args.kernel)
        kernel.variant(args.variant)
    except AnnpredError:
        kernel = None  # a model trained from someone else's CSV: no catalog entry
        if not models.hardware_for(args.kernel, args.variant):
            get_kernel(args.kernel).variant(args.variant)  # raises, listing known names
    if args.input is not None or args.output is not None:
        return _batch(args, models)
    params = parse_assignments(args.params)
    if kernel is not None:
        params = kernel.check_params(params, args.variant)
    pred = models.predict(args.kernel, args.variant, params, hardware=args.hardware)
    if args.json:
        print_json(pred.to_dict())
    else:
        iv = ""
        if pred.interval is not None:
            cov = pred.provenance.get("interval_coverage") or 0.9
            iv = (f" ({cov:.0%} interval {fmt_seconds(pred.interval[0])} .. "
                  f"{fmt_seconds(pred.interval[1])})")
        src = pred.provenance["source"] if pred.provenance else "?"
        print(f"{pred.kernel}/{pred.variant} on {pred.hardware}: {fmt_seconds(pred.seconds)}"
              f"{iv}  [{src} model {pred.provenance.get('model_file')}]"
              + (" (adapted to this machine by a calibration)" if pred.adapted else ""))
    stale = one_input_note(pred.kernel, {f"{pred.variant}@{pred.hardware}": pred.provenance})
    if stale:
        print(f"note: {stale}", file=sys.stderr)
    if not pred.in_range:
        parts = ", ".join(f"{p}={v[0]:g} (trained on [{v[1][0]:g}, {v[1][1]:g}])"
                          for p, v in pred.out_of_range.items())
        print(f"annpred: warning: outside the training range: {parts}; this is an extrapolation",
              file=sys.stderr)
    return 0


def _batch(args, models) -> int:
    """--input points.csv --output preds.csv: every row predicted in one vectorised pass."""
    import pandas as pd

    from annpred.data.profiles import read_csv
    from annpred.files import atomic_write_text

    if args.input is None or args.output is None:
        raise ParameterError("batch prediction needs both --input and --output")
    if args.params:
        raise ParameterError("give name=value parameters or --input, not both")
    from annpred.cli.common import output_file

    output_file(args.output, "--output", [args.input])
    df = read_csv(args.input)
    cols, text = {}, {}
    for c in df.columns:
        try:
            cols[c] = pd.to_numeric(df[c])
        except (ValueError, TypeError):
            text[c] = df[c]  # names, notes: carried through untouched
    try:
        m = models.get(args.kernel, args.variant,
                       args.hardware or models.default_hardware(args.kernel, args.variant))
        for p in m.params:  # a parameter column with text in it is not "missing"
            if p in text:
                bad = pd.to_numeric(text[p], errors="coerce").isna() & text[p].notna()
                i = int(bad.to_numpy().nonzero()[0][0]) if bad.any() else 0
                raise ParameterError(f"row {i + 2}, column {p!r}: not a number: "
                                     f"{text[p].iloc[i]!r}")
        out = models.predict_many(args.kernel, args.variant, cols, hardware=args.hardware,
                                  first_line=2)
    except ParameterError as exc:
        raise ParameterError(f"{args.input}: {exc}") from None
    except KeyError as exc:
        raise ParameterError(f"{args.input}: missing column {exc.args[0]!r}") from None
    res = df.copy()
    for k, v in out.items():
        res[f"predicted_{k}" if k != "in_range" else "in_range"] = v
    hw_id = args.hardware or models.default_hardware(args.kernel, args.variant)
    res["hardware"] = hw_id
    atomic_write_text(args.output, res.to_csv(index=False))
    outside = int((~out["in_range"]).sum())
    if args.json:  # a summary; the predictions are in the file
        print_json({"kernel": args.kernel, "variant": args.variant, "hardware": hw_id,
                    "output": str(args.output), "n_rows": len(res),
                    "n_out_of_range": outside})
        return 0
    print(f"wrote {len(res)} predictions of {args.kernel}/{args.variant} on {hw_id} to "
          f"{args.output}" + (f"; {outside} rows outside the training range" if outside else ""))
    return 0


def register(sub) -> None:
    s = sub.add_parser("predict", help="predict the runtime of one call (or of a CSV of calls)")
    s.add_argument("kernel", help="kernel name (catalog, or of a model trained from your CSV)")
    s.add_argument("--variant", required=True, help="variant whose runtime to predict")
    s.add_argument("--hardware", help="hardware id (default: calibrated here first, then the "
                   "model for this machine with the most threads)")
    add_models_option(s)
    s.add_argument("--json", action="store_true", help="print a JSON object (seconds, interval, "
                   "in_range, provenance); with --input: kernel, variant, hardware, output, "
                   "n_rows, n_out_of_range")
    s.add_argument("--input", metavar="POINTS.csv", help="batch: a CSV with one column per "
                   "parameter; every row is predicted")
    s.add_argument("--output", metavar="PREDS.csv", help="batch: where to write the input rows "
                   "with predicted_seconds, predicted_low/high and in_range")
    s.add_argument("params", nargs="*", metavar="name=value",
                   help="parameter values of the call, e.g. m=512 n=512 k=512")
    s.set_defaults(func=cmd_predict)
