"""Export a model as a self-contained C header (C99, needs only ``<math.h>``, link ``-lm``).

The header holds the weights, the input scaler, the complexity expressions as C code and
``<name>_predict(const double *params)`` returning seconds, with the parameters in the
order of ``<name>_param_names``. Everything is ``static`` (functions ``static inline``), so several headers can be included
in one translation unit. Numbers are written with 17 significant digits (they round-trip
exactly), so the C prediction equals the numpy one up to floating-point summation order.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

from annpred.errors import ModelFormatError
from annpred.model.network import compile_model
from annpred.files import atomic_write_text
from annpred.model.schema import validate
from annpred.runtime.ranges import RANGE_MARGIN, widen_range

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _c_ident(text: str) -> str:
    s = re.sub(r"[^A-Za-z0-9_]", "_", text)
    if not s or s[0].isdigit():
        s = "_" + s
    return s


def _num(v: float) -> str:
    v = float(v)
    if not np.isfinite(v):
        raise ModelFormatError(f"cannot export a non-finite number ({v})")
    r = repr(v)
    if "e" not in r and "." not in r and "inf" not in r:
        r += ".0"
    return r


def _vec(values) -> str:
    return "{" + ", ".join(_num(v) for v in values) + "}"


def _mat(rows) -> str:
    return "{\n    " + ",\n    ".join(_vec(r) for r in rows) + "\n}"


# User text (kernel, variant, hardware, parameter, feature names, expressions) reaches C only
# through these two functions. Characters outside a small safe set are escaped, so no name
# can end a comment ("*/"), splice a line (backslash-newline), form a trigraph ("??/") or
# close a string: nothing of it can become code.
_COMMENT_SAFE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
                          " _.,=+-*()")
_STRING_SAFE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
                         " _.,=+-")


def _c_string(s: str) -> str:
    """A C string literal of ``s``: safe characters as they are, every other byte of its
    UTF-8 as a three-digit octal escape (``?``, quotes, backslashes and newlines included)."""
    out = []
    for b in str(s).encode("utf-8"):
        ch = chr(b)
        out.append(ch if ch in _STRING_SAFE else f"\\{b:03o}")
    return '"' + "".join(out) + '"'


def _comment(s: str) -> str:
    """Text for a C comment: safe characters as they are, '/' as ' / ' (so neither "*/"
    nor "/*" can form), everything else as <U+XXXX>."""
    out = []
    for ch in str(s):
        if ch in _COMMENT_SAFE:
            out.append(ch)
        elif ch == "/":
            out.append(" / ")
        else:
            out.append(f"<U+{ord(ch):04X}>")
    return "".join(out)


def complexity_to_c(text: str, params: list[str], cname: dict[str, str]) -> str:
    """C code of a complexity expression over ``params``, symbols renamed by ``cname``."""
    import sympy as sp

    from annpred.spec import expr as _expr

    e = _expr.parse(text, params)
    repl = {sp.Symbol(p, positive=True): sp.Symbol(cname[p], positive=True) for p in params}
    e = e.xreplace(repl)
    return _expr.ccode(e) if hasattr(_expr, "ccode") else sp.ccode(e)


def _support(texts, params) -> list[str]:
    """C definitions of annpred.expr's own functions the expressions call (guarded, so that
    several headers can share a translation unit)."""
    from annpred.spec import expr as _expr

    if not hasattr(_expr, "c_support"):
        return []
    out = []
    for name, code in getattr(_expr, "C_SUPPORT", {}).items():
        if any(_expr.c_support(_expr.parse(t, params)).find(code) >= 0 for t in texts):
            guard = f"ANNPRED_HAVE_{name.upper()}"
            code = code.replace("static double", "static inline double")
            out += [f"#ifndef {guard}", f"#define {guard}", code, "#endif"]
    return out


def header_text(model: dict, name: str | None = None, correction: dict | None = None) -> str:
    """The C header of a (validated) model dict; ``correction`` (a machine correction of
    :mod:`annpred.model.correction`) is compiled into ``<name>_predict``."""
    d = validate(model)
    if correction is not None:  # a stale or foreign correction is never compiled in
        from annpred.model.correction import check_fits
        check_fits(correction, d, "correction")
    c = compile_model(d)
    feats = list(d["features"])
    comp = dict(d["complexity"])
    params = list(d.get("parameters", [f for f in feats if f not in comp]))
    if feats[:len(params)] != params:
        raise ModelFormatError("features must list the parameters first")
    if name is not None and (not isinstance(name, str) or not _IDENT.match(name)
                             or len(name) > 64):
        raise ModelFormatError(f"--name {str(name)[:80]!r} is not a C identifier "
                               "(letters, digits, '_'; not starting with a digit; at most 64)")
    name = _c_ident(name or f"annpred_{d['kernel']}_{d['variant']}")[:64]
    if not _IDENT.match(name):
        raise ModelFormatError(f"{name!r} is not a C identifier")
    guard = name.upper() + "_H"
    cname = {p: f"p{i}" for i, p in enumerate(params)}  # never user text in code
    rng = d["train"].get("range", {})
    act = d["activation"]
    F = len(feats)
    L = []
    w = L.append
    w(f"/* {name}: runtime model for {_comment(d['kernel'])} {_comment(d['variant'])} on "
      f"{_comment(d['hardware'])}.")
    w(f" * Generated by annpred (format {d['format']}); {d['n_params']} trainable parameters,")
    w(f" * trained on {d['train'].get('n_samples', '?')} samples.")
    w(f" * double {name}_predict(const double params[{name.upper()}_N_PARAMS]) -> seconds;")
    w(f" * parameters in this order: {_comment(', '.join(params))}.")
    for fname, text in comp.items():
        w(f" * complexity {_comment(fname)} = {_comment(text)}")
    if correction is not None:
        w(f" * Corrected for machine {_comment(str(correction.get('machine', '?')))} by annpred "
          f"calibrate ({_comment(str(correction.get('form', '')))}, "
          f"{correction.get('n_probes', '?')} probes).")
    w(" * Self-contained C99: include it, link with -lm. */")
    w(f"#ifndef {guard}")
    w(f"#define {guard}")
    w("")
    w("#include <math.h>")
    w("")
    for const, val in (("M_LN2", "0.693147180559945309417232121458176568"),
                       ("M_LN10", "2.30258509299404568401799145468436421"),
                       ("M_PI", "3.14159265358979323846264338327950288"),
                       ("M_E", "2.71828182845904523536028747135266250")):
        w(f"#ifndef {const}")
        w(f"#define {const} {val}")
        w("#endif")
    w("")
    L.extend(_support(list(comp.values()), params))
    w("")
    N = name.upper()
    w(f"#define {N}_N_PARAMS {len(params)}")
    w(f"#define {N}_N_FEATURES {F}")
    w(f"static const char *const {name}_param_names[{N}_N_PARAMS] = "
      "{" + ", ".join(_c_string(p) for p in params) + "};")
    # the same widened range as annpred.runtime.ranges (Python's in_range), so C and Python
    # agree on every point
    wide = {p: widen_range(float(v[0]), float(v[1]), RANGE_MARGIN) for p, v in rng.items()}
    lo = [wide.get(p, (-np.inf, np.inf))[0] for p in params]
    hi = [wide.get(p, (-np.inf, np.inf))[1] for p in params]
    w(f"/* training range of each parameter, widened by {RANGE_MARGIN:g} of its width (log "
      "scale for positive ranges) as annpred's in_range does (-HUGE_VAL/HUGE_VAL: unknown) */")
    w(f"static const double {name}_range_lo[{N}_N_PARAMS] = "
      + "{" + ", ".join(_num(v) if np.isfinite(v) else "-HUGE_VAL" for v in lo) + "};")
    w(f"static const double {name}_range_hi[{N}_N_PARAMS] = "
      + "{" + ", ".join(_num(v) if np.isfinite(v) else "HUGE_VAL" for v in hi) + "};")
    w(f"static const int {name}_log_input[{N}_N_FEATURES] = "
      + "{" + ", ".join("1" if t == "log" else "0" for t in c["input_transform"]) + "};")
    w(f"static const double {name}_mean[{N}_N_FEATURES] = {_vec(c['mean'])};")
    w(f"static const double {name}_std[{N}_N_FEATURES] = {_vec(c['std'])};")
    sizes = [F]
    for i, (W, b) in enumerate(c["layers"]):
        rows, cols = W.shape
        w(f"static const double {name}_w{i}[{rows}][{cols}] = {_mat(W)};")
        w(f"static const double {name}_b{i}[{rows}] = {_vec(b)};")
        sizes.append(rows)
    if c["skip"] is not None:
        w(f"static const double {name}_skip[{N}_N_FEATURES] = {_vec(c['skip'][0])};")
    w(f"static const double {name}_y_mean = {_num(c['y_mean'])};")
    w(f"static const double {name}_y_std = {_num(c['y_std'])};")
    if correction is not None:  # log s' = log s + offset + slope * (clip(log s) - ref)
        for k in ("offset", "slope", "ref", "lo", "hi"):
            w(f"static const double {name}_corr_{k} = {_num(correction[k])};")
        if correction.get("weights"):  # + sum w_j (clip(x_j) - center_j), x transformed
            for k in ("weights", "center", "x_lo", "x_hi"):
                w(f"static const double {name}_corr_{k}[{N}_N_FEATURES] = "
                  f"{_vec(correction[k])};")
    w("")
    # features
    w("/* raw network inputs: the parameters, then the complexity features */")
    w(f"static inline void {name}_features(const double *params, double *x)")
    w("{")
    for i, p in enumerate(params):
        w(f"    const double {cname[p]} = params[{i}];")
    for i, p in enumerate(params):
        w(f"    x[{i}] = {cname[p]};")
    for j, (fname, text) in enumerate(comp.items()):
        w(f"    x[{len(params) + j}] = {complexity_to_c(text, params, cname)};"
          f"  /* {_comment(fname)} */")
    for p in params:
        w(f"    (void){cname[p]};")
    w("}")
    w("")
    w(f"static inline int {name}_in_range(const double *params)")
    w("{")
    w("    int i;")
    w(f"    for (i = 0; i < {N}_N_PARAMS; i++)")
    w(f"        if (!(params[i] >= {name}_range_lo[i] && params[i] <= {name}_range_hi[i]))")
    w("            return 0;")
    w("    return 1;")
    w("}")
    w("")
    w(f"static inline double {name}_act(double a)")
    w("{")
    if act == "tanh":
        w("    return tanh(a);")
    elif act == "relu":
        w("    return a > 0.0 ? a : 0.0;")
    else:
        w("    return a;")
    w("}")
    w("")
    w("/* predicted runtime in seconds */")
    w(f"static inline double {name}_predict(const double *params)")
    w("{")
    w(f"    double x[{N}_N_FEATURES], z[{N}_N_FEATURES];")
    widest = max(sizes[1:-1], default=1)
    w(f"    double h[2][{widest}];")
    w("    double out, acc;")
    w("    int i, j;")
    w(f"    {name}_features(params, x);")
    w(f"    for (i = 0; i < {N}_N_FEATURES; i++)")
    w(f"        z[i] = ({name}_log_input[i] ? log(x[i]) : x[i]);")
    feat_corr = correction is not None and bool(correction.get("weights"))
    if feat_corr:
        w("    double cx = 0.0, xi;")
        w(f"    for (i = 0; i < {N}_N_FEATURES; i++) {{")
        w(f"        xi = z[i] < {name}_corr_x_lo[i] ? {name}_corr_x_lo[i] : "
          f"(z[i] > {name}_corr_x_hi[i] ? {name}_corr_x_hi[i] : z[i]);")
        w(f"        cx += {name}_corr_weights[i] * (xi - {name}_corr_center[i]);")
        w("    }")
    w(f"    for (i = 0; i < {N}_N_FEATURES; i++)")
    w(f"        z[i] = (z[i] - {name}_mean[i]) / {name}_std[i];")
    n_layers = len(c["layers"])
    prev, prev_n = "z", F
    for li in range(n_layers):
        rows = sizes[li + 1]
        last = li == n_layers - 1
        w(f"    for (i = 0; i < {rows}; i++) {{")
        w(f"        acc = {name}_b{li}[i];")
        w(f"        for (j = 0; j < {prev_n}; j++)")
        w(f"            acc += {name}_w{li}[i][j] * {prev}[j];")
        if last:
            w("        out = acc;")
        else:
            w(f"        h[{li % 2}][i] = {name}_act(acc);")
        w("    }")
        prev, prev_n = f"h[{li % 2}]", rows
    if c["skip"] is not None:
        w(f"    for (j = 0; j < {N}_N_FEATURES; j++)")
        w(f"        out += {name}_skip[j] * z[j];")
    w(f"    out = out * {name}_y_std + {name}_y_mean;")
    if correction is not None:
        if c["target_transform"] != "log":
            w("    out = log(out);")
        w(f"    acc = out < {name}_corr_lo ? {name}_corr_lo : "
          f"(out > {name}_corr_hi ? {name}_corr_hi : out);")
        w(f"    out += {name}_corr_offset + {name}_corr_slope * (acc - {name}_corr_ref)"
          + (" + cx;" if feat_corr else ";"))
        w("    return exp(out);")
    else:
        w(f"    return {'exp(out)' if c['target_transform'] == 'log' else 'out'};")
    w("}")
    iv = d.get("interval")
    if iv:  # the model's prediction interval (split conformal on log runtime), as in Python
        w("")
        w(f"/* {float(iv['nominal']):.0%} prediction interval: low = predict * exp(lo), high = "
          "predict * exp(hi) */")
        w(f"#define {N}_INTERVAL_NOMINAL {_num(iv['nominal'])}")
        w(f"static const double {name}_interval_lo = {_num(iv['lo'])};")
        w(f"static const double {name}_interval_hi = {_num(iv['hi'])};")
        w(f"static inline double {name}_predict_interval(const double *params, double *low, "
          "double *high)")
        w("{")
        w(f"    double s = {name}_predict(params);")
        w(f"    *low = s * exp({name}_interval_lo);")
        w(f"    *high = s * exp({name}_interval_hi);")
        w("    return s;")
        w("}")
    w("")
    w(f"#endif /* {guard} */")
    return "\n".join(L) + "\n"


def export_c(model: dict, path: str | os.PathLike, name: str | None = None,
             correction: dict | None = None) -> Path:
    """Write the C header of ``model`` (a model dict) to ``path``."""
    from annpred.validate import output_file

    output_file(path, "export path")
    text = header_text(model, name, correction)
    atomic_write_text(path, text)
    return Path(path)
