"""``annpred choose``: the fastest variant and hardware for one call (no torch import)."""
from __future__ import annotations

import sys

from annpred.cli.common import (add_models_option, fmt_seconds, given, models_arg,
                                one_input_note, parse_assignments, print_json)


def cmd_choose(args) -> int:
    from annpred.runtime.choose import choose

    params = parse_assignments(args.params)
    choice = choose(args.kernel, params, candidates=args.candidate or None,
                    models=models_arg(args), default=args.default, policy=args.policy,
                    trust_machine=args.trust_machine)
    if args.json:
        print_json(choice.to_dict())
    else:
        print(f"{choice.kernel} {' '.join(f'{k}={v:g}' for k, v in choice.params.items())}")
        for c, s, ok in choice.ranking():
            mark = "->" if c == choice.best else "  "
            note = "" if ok or s is None else "  (outside the training range)"
            if c in choice.unsupported:
                note = "  (does not support this point)"
            elif choice.machine_match.get(c) is False:
                note += ("  (another machine; adapted)" if choice.adapted.get(c)
                         else "  (another machine)")
            print(f" {mark} {str(c):<40} {fmt_seconds(s):>12}{note}")
        print(f"choice: {choice.variant} on {choice.hardware}"
              + (" (fallback default)" if choice.fallback else ""))
    stale = one_input_note(choice.kernel, choice.provenance)
    if stale:
        print(f"note: {stale}", file=sys.stderr)
    if choice.fallback:
        print(f"annpred: warning: not trusting the predictions ({choice.reason}); chose the "
              f"default {choice.variant}@{choice.hardware}", file=sys.stderr)
    elif choice.reason:
        print(f"note: {choice.reason}", file=sys.stderr)
    return 0


def register(sub) -> None:
    s = sub.add_parser("choose", help="choose the fastest variant and hardware for one call")
    s.add_argument("kernel", help="kernel name (see `annpred kernels`)")
    add_models_option(s)
    s.add_argument("--candidate", action="append", metavar="VARIANT@HARDWARE",
                   help="restrict the candidates (repeatable; default: every variant with a "
                        "model for hardware present here)")
    s.add_argument("--default", metavar="VARIANT[@HARDWARE]", type=given,
                   help="fallback when the predictions are not trusted")
    s.add_argument("--policy", choices=("strict", "trusted", "extrapolate"), default=None,
                   help="strict (default): fall back unless every candidate is trusted; "
                        "trusted: best trusted candidate; extrapolate: trust every model")
    s.add_argument("--trust-machine", action="store_true",
                   help="trust models measured on another machine that no calibration has "
                        "adapted to this one (default: they are untrusted)")
    s.add_argument("--json", action="store_true", help="print a JSON object (variant, hardware, "
                   "predicted, in_range, ...)")
    s.add_argument("params", nargs="*", metavar="name=value",
                   help="parameter values of the call, e.g. m=512 n=64 k=512 da=0.01 db=1")
    s.set_defaults(func=cmd_choose)
