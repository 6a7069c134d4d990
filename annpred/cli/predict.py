"""``annpred predict``: the predicted runtime of one call."""
from __future__ import annotations

import sys

from annpred.cli.common import fmt_seconds, parse_assignments, print_json
from annpred.errors import AnnpredError


def cmd_predict(args) -> int:
    from annpred.spec.catalog import get_kernel
    from annpred.runtime.predictor import load_models

    params = parse_assignments(args.params)
    models = load_models(args.models)
    try:
        kernel = get_kernel(args.kernel)
        kernel.variant(args.variant)
    except AnnpredError:
        kernel = None  # a model trained from someone else's CSV: no catalog entry
        if not models.hardware_for(args.kernel, args.variant):
            get_kernel(args.kernel).variant(args.variant)  # raises, listing known names
    if kernel is not None:
        params = kernel.check_params(params, args.variant)
    pred = models.predict(args.kernel, args.variant, params, hardware=args.hardware)
    if args.json:
        print_json(pred.to_dict())
    else:
        print(f"{pred.kernel}/{pred.variant} on {pred.hardware}: {fmt_seconds(pred.seconds)}")
    if not pred.in_range:
        parts = ", ".join(f"{p}={v[0]:g} (trained on [{v[1][0]:g}, {v[1][1]:g}])"
                          for p, v in pred.out_of_range.items())
        print(f"warning: outside the training range: {parts}; this is an extrapolation",
              file=sys.stderr)
    return 0


def register(sub) -> None:
    s = sub.add_parser("predict", help="predict the runtime of one call")
    s.add_argument("kernel")
    s.add_argument("--variant", required=True)
    s.add_argument("--hardware")
    s.add_argument("--models", help="model directory (default: calibrated, else shipped)")
    s.add_argument("--json", action="store_true")
    s.add_argument("params", nargs="*", metavar="name=value")
    s.set_defaults(func=cmd_predict)
