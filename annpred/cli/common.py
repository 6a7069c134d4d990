"""Helpers shared by the command modules: ``name=value`` parsing, JSON and time output."""
from __future__ import annotations

import json
import math
import sys
from typing import Sequence

from annpred.errors import ParameterError


def parse_assignments(items: Sequence[str]) -> dict[str, float]:
    out = {}
    for item in items:
        if "=" not in item:
            raise ParameterError(f"expected name=value, got {item!r}")
        name, value = item.split("=", 1)
        name = name.strip()
        if not name:
            raise ParameterError(f"expected name=value, got {item!r}")
        if name in out:
            raise ParameterError(f"parameter {name!r} given twice")
        try:
            out[name] = float(value)
        except ValueError:
            raise ParameterError(f"parameter {name}: {value!r} is not a number") from None
    return out


def show_warnings(caught, file=None, most: int = 3) -> None:
    """Print caught library warnings (``warnings.catch_warnings(record=True)``) as
    ``annpred: warning:`` lines. Where one kind names more than ``most`` models (a short
    calibration fits many on few rows), its first message is printed in full and the rest
    as one line naming the other models."""
    file = file or sys.stderr
    groups: dict = {}
    for w in caught:
        if issubclass(w.category, UserWarning):
            groups.setdefault(w.category, []).append(str(w.message))
    for category, messages in groups.items():
        shown = messages if len(messages) <= most else messages[:1]
        for m in shown:
            print(f"annpred: warning: {m}", file=file)
        if len(messages) > most:
            others = [m.split(": ", 1)[0] for m in messages[1:]]
            print(f"annpred: warning: the same ({category.__name__}) for {len(others)} more "
                  f"models: {', '.join(others)}", file=file)


def output_file(output, what: str, inputs: Sequence = ()):
    """:func:`annpred.validate.output_file`, and not one of the command's ``inputs``:
    writing it would destroy the input."""
    import os

    from annpred.validate import output_file as usable

    p = usable(output, what)
    for src in inputs:
        try:
            same = p.exists() and os.path.samefile(p, src)
        except OSError:
            same = False
        if same:
            raise ParameterError(f"{what} {p} is the input file {src}: writing it would "
                                 "destroy the input; choose another name")
    return p


def json_safe(obj):
    """``obj`` as strict JSON values: a float that is not finite (the bound of an interval
    past float's range, a NaN) becomes None (``null``), numpy scalars and arrays become
    Python numbers and lists. ``json.dumps`` would write NaN/Infinity, which no JSON parser
    but Python's accepts."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, (str, int, type(None))):  # bool is an int
        return obj
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if type(obj).__module__ == "numpy" and hasattr(obj, "tolist"):
        return json_safe(obj.tolist())
    return obj


def print_json(obj) -> None:
    """One strict JSON document on stdout (``--json``): never NaN/Infinity tokens."""
    print(json.dumps(json_safe(obj), indent=1, allow_nan=False, default=float))


def one_input_note(kernel: str, provenance: dict) -> str | None:
    """A note when ``kernel`` branches on its data (``Kernel.fresh_inputs``) and some of the
    models in ``provenance`` (label -> provenance dict) were trained on rows that repeated
    one input per point (``train.measured.input_sets_median`` 1 or not recorded) and are not
    adapted by a calibration whose probes ran on new data: their predictions are the times
    a branch predictor replays, which new data does not get."""
    from annpred.runtime.predictor import catalog_kernel

    k = catalog_kernel(kernel)
    if k is None or not k.fresh_inputs:
        return None

    def one_input(d: dict | None) -> bool:
        return ((d or {}).get("input_sets_median") or 1) <= 1

    stale = [str(c) for c, p in provenance.items()
             if p and one_input(p.get("measured")) and (
                 p.get("calibration") is None or one_input(p["calibration"]))]
    if not stale:
        return None
    return (f"{', '.join(stale)}: trained on one repeated input per point; {kernel}'s "
            "variants branch on the data, so calls on new data can run slower than predicted "
            f"(up to 3x on small calls; `annpred profile {kernel}` measures new data)")


def fmt_seconds(s: float | None) -> str:
    """A runtime for people: us below a millisecond, ms below a second."""
    if s is None:
        return "no model"
    if s < 1e-3:
        return f"{s * 1e6:.1f} us"
    if s < 1:
        return f"{s * 1e3:.3f} ms"
    return f"{s:.3f} s"


def add_models_option(s) -> None:
    """``--models DIR`` of ``predict`` and ``choose``: repeatable, searched in order."""
    s.add_argument("--models", action="append", metavar="DIR",
                   help="model directory; repeat it to search several in order: a kernel's "
                   "models on one hardware id come from the first that holds any (e.g. "
                   "--models my_models --models trained; default: your calibrated models, "
                   "else the shipped ones)")


def models_arg(args):
    """The ``models`` argument of the runtime API from ``--models``: None, one directory or
    a list of them."""
    m = args.models
    return None if not m else m[0] if len(m) == 1 else list(m)


def add_key_options(s, verb: str) -> None:
    """``--kernel``, ``--variant``, ``--hardware``: fill the key columns of external CSVs,
    or select the rows of one value where a CSV holds several (``load_profiles``)."""
    for key, what in (("kernel", "kernel name"), ("variant", "variant name"),
                      ("hardware", "hardware id")):
        s.add_argument(f"--{key}", help=f"{what} for rows without a {key} column (external "
                       f"CSVs); with a CSV of several, {verb} only this one")


def add_space_options(s) -> None:
    """``--problem-size``, ``--constants``: what a GPU tuning space's launch structure needs
    and T4 files or other tools' CSVs do not record (``load_profiles``)."""
    s.add_argument("--problem-size", metavar="NxM",
                   help="problem size of a GPU tuning space, e.g. 4096x4096 (blocks in the "
                   "grid; Kernel Tuner caches record it, T4 files and other CSVs do not)")
    s.add_argument("--constants", metavar="NAME=V,...",
                   help="constant parameters of the space, e.g. filter_width=15,"
                   "filter_height=15 (the stencil halo)")


def given(text: str) -> str:
    """An argparse ``type``: option text that is not empty (``--transfer ''`` is no file, not
    "not given"; argparse names the option in its error, exit code 2)."""
    from annpred.validate import not_empty

    try:
        return not_empty(text, "value")
    except ParameterError as exc:
        import argparse

        raise argparse.ArgumentTypeError(str(exc).removeprefix("value: ")) from None


def add_transfer_option(s) -> None:
    """``--transfer FILE``: the same tuning space measured on another device, whose runtimes
    become an input (``annpred.data.transfer``)."""
    s.add_argument("--transfer", metavar="FILE", type=given,
                   help="the same tuning space measured on another device (Kernel Tuner "
                   "cache, T4 file or profiling CSV): each configuration's runtime there "
                   "becomes the input column transfer_s, so far fewer measurements are "
                   "needed here")
