"""Model files: JSON (never pickle), written atomically, validated on load."""
from __future__ import annotations

import copy
import hashlib
import json
import math
import os
import re
from pathlib import Path
from typing import Any

from annpred.data.rows import FINGERPRINT, machine_field_ok
from annpred.errors import AnnpredError, ModelFormatError
from annpred.files import atomic_write_text
from annpred.model.network import ACTIVATIONS, MAX_PARAMS, TRANSFORMS, count_params
from annpred.spec.numbertheory import REVISIONS as FUNCTION_REVISIONS
from annpred.validate import column_name, json_int, read_limited, safe_name

FORMAT = "annpred-model/1"
MAX_FILE_BYTES = 1 << 20  # a model has < 75 weights; real files are a few kB
MAX_DEPTH = 32  # JSON nesting
MAX_WEIGHT = 1e6  # |weight|, |bias| (trained ones stay below ~100)
MAX_SCALE = 1e30  # |scaler mean|, scaler std
MIN_STD = 1e-12  # the estimator replaces smaller standard deviations by 1
MAX_TARGET = 1e6  # |target_scaler mean|, target_scaler std
_VALID: dict[str, dict] = {}  # sha256 of a file's text -> its validated model (bounded)
_VALID_MAX = 1024


def versions() -> dict:
    """The software a model file was written with (its ``versions`` object)."""
    import platform

    import numpy as np

    from annpred.data.rows import version

    out = {"annpred": version(), "python": platform.python_version(), "numpy": np.__version__,
           "functions": dict(FUNCTION_REVISIONS)}
    try:
        import torch
        out["torch"] = torch.__version__
    except ImportError:  # pragma: no cover
        pass
    return out


def to_json(model: dict) -> str:
    """The text of a model file (strict JSON: non-finite numbers are refused)."""
    try:
        return json.dumps(model, indent=1, sort_keys=False, allow_nan=False) + "\n"
    except ValueError:
        raise ModelFormatError("model holds a non-finite number (NaN or infinity); "
                               "refusing to write it") from None
    except TypeError as exc:
        raise ModelFormatError(f"model holds a value JSON cannot store ({exc})") from None


def save_model(model: dict, path: str | os.PathLike) -> Path:
    validate(model, str(path))
    atomic_write_text(path, to_json(model))
    return Path(path)


def _no_constant(name: str):
    raise ValueError(f"{name} is a non-finite number (not allowed in a model file)")


def depth_ok(text: str) -> bool:
    """Whether JSON ``text`` nests at most ``MAX_DEPTH`` levels (counted outside strings)."""
    depth = 0
    in_str = esc = False
    for ch in text:
        if in_str:
            if esc:
                esc = False
            elif ch == "\\":
                esc = True
            elif ch == '"':
                in_str = False
        elif ch == '"':
            in_str = True
        elif ch in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                return False
        elif ch in "]}":
            depth -= 1
    return True


def parse_json(text: str, where: str) -> Any:
    """Strict JSON of a model file: no NaN/Infinity, bounded nesting and integers."""
    if not depth_ok(text):
        raise ModelFormatError(f"{where}: JSON nested more than {MAX_DEPTH} levels deep")
    try:
        return json.loads(text, parse_int=json_int, parse_constant=_no_constant)
    except json.JSONDecodeError as exc:
        raise ModelFormatError(f"{where}: malformed JSON at line {exc.lineno} "
                               f"column {exc.colno}: {exc.msg}") from None
    except (ValueError, RecursionError, MemoryError) as exc:
        raise ModelFormatError(f"{where}: unusable JSON ({str(exc)[:100]})") from None


def load_model(path: str | os.PathLike) -> dict:
    """Read and validate a model file. A file larger than 1 MiB, or not a regular file
    (FIFO, device), is refused before reading; a file whose text was validated before (same
    SHA-256) is not validated again."""
    path = Path(path)
    data = read_limited(path, "model file", MAX_FILE_BYTES, ModelFormatError)
    digest = hashlib.sha256(data).hexdigest()
    hit = _VALID.get(digest)
    if hit is not None:
        return copy.deepcopy(hit)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ModelFormatError(f"model file {path}: not UTF-8 text") from None
    d = validate(parse_json(text, f"model file {path}"), str(path))
    if len(_VALID) >= _VALID_MAX:
        _VALID.clear()
    _VALID[digest] = copy.deepcopy(d)
    return d


def _matrix(x: Any, rows: int, cols: int, what: str, where: str,
            max_abs: float = MAX_WEIGHT) -> None:
    if (not isinstance(x, list) or len(x) != rows
            or any(not isinstance(r, list) or len(r) != cols for r in x)):
        raise ModelFormatError(f"{where}: {what} must be a {rows}x{cols} matrix")
    for r in x:
        _vector(r, cols, what, where, max_abs)


def _finite(v: Any, max_abs: float) -> bool:
    return (not isinstance(v, bool) and isinstance(v, (int, float))
            and math.isfinite(v) and abs(v) <= max_abs)


def _vector(x: Any, n: int, what: str, where: str, max_abs: float = MAX_WEIGHT) -> None:
    if not isinstance(x, list) or len(x) != n:
        raise ModelFormatError(f"{where}: {what} must be a list of {n} numbers")
    for v in x:
        if not _finite(v, max_abs):
            raise ModelFormatError(f"{where}: {what} holds {v!r}; expected finite numbers "
                                   f"of magnitude at most {max_abs:g}")




def validate_machine(m: Any, where: str) -> dict:
    """A machine object (:mod:`annpred.spec.machine`): an object with a 12-hex-digit
    ``fingerprint``; every other field a string, a finite number, null, or a list of strings."""
    if not isinstance(m, dict):
        raise ModelFormatError(f"{where} must be an object (a machine description)")
    if not isinstance(m.get("fingerprint"), str) or not FINGERPRINT.match(m["fingerprint"]):
        raise ModelFormatError(f"{where}.fingerprint must be 12 lower-case hex digits")
    for k, v in m.items():
        if not machine_field_ok(v):
            raise ModelFormatError(f"{where}.{k} must be a string, a number, null or a list "
                                   "of strings")
    return m


def _check_revisions(d: dict, where: str) -> None:
    """Refuse a file whose complexity uses a function whose definition changed since the
    file was written (``versions.functions`` against :data:`FUNCTION_REVISIONS`)."""
    ver = d.get("versions")
    rec = ver.get("functions") if isinstance(ver, dict) else None
    if rec is None:  # written before the record: the current definitions are assumed
        return
    if not isinstance(rec, dict):
        raise ModelFormatError(f"{where}: versions.functions must be an object "
                               "function -> revision")
    text = " ".join(str(t) for t in d["complexity"].values())
    for name, cur in FUNCTION_REVISIONS.items():
        if re.search(rf"\b{name}\s*\(", text) and rec.get(name) != cur:
            raise ModelFormatError(
                f"{where}: its complexity uses {name}() as defined in revision "
                f"{str(rec.get(name))[:20]}, and this annpred defines revision {cur}: its "
                "predictions would differ from those it was trained for; retrain it from its "
                "profiling CSV (`annpred train CSV`)")


def validate(d: Any, where: str = "model") -> dict:
    """Check a model dict against the schema; returns it or raises ModelFormatError."""
    if not isinstance(d, dict):
        raise ModelFormatError(f"{where}: a model file must hold a JSON object")
    fmt = d.get("format")
    if fmt != FORMAT:
        raise ModelFormatError(f"{where}: unsupported format {fmt!r} (expected {FORMAT!r})")
    for key in ("kernel", "variant", "hardware", "features", "complexity", "input_transform",
                "target_transform", "scaler", "target_scaler", "layers", "activation",
                "n_params", "train"):
        if key not in d:
            raise ModelFormatError(f"{where}: missing field {key!r}")
    for key in ("kernel", "variant", "hardware"):
        if not isinstance(d[key], str) or not d[key]:
            raise ModelFormatError(f"{where}: {key} must be a non-empty string")
        safe_name(d[key], f"{where}: {key}", ModelFormatError)
    feats = d["features"]
    if not isinstance(feats, list) or not feats or not all(isinstance(f, str) for f in feats):
        raise ModelFormatError(f"{where}: features must be a non-empty list of names")
    for f in feats:
        column_name(f, f"{where}: feature", ModelFormatError)
    if len(set(feats)) != len(feats):
        raise ModelFormatError(f"{where}: features lists a name twice")
    n = len(feats)
    if not isinstance(d["complexity"], dict):
        raise ModelFormatError(f"{where}: complexity must be an object name -> expression")
    from annpred.spec import expr as _expr
    params = d.get("parameters", [f for f in feats if f not in d["complexity"]])
    if (not isinstance(params, list) or not all(isinstance(p, str) for p in params)
            or params != [f for f in feats if f not in d["complexity"]]):
        raise ModelFormatError(f"{where}: parameters must be the list of feature names that "
                               "are not complexity features, in the same order")
    for name, text in d["complexity"].items():
        if name not in feats:
            raise ModelFormatError(f"{where}: complexity {name!r} is not among the features")
        try:
            _expr.parse(text, params)
        except AnnpredError as exc:
            raise ModelFormatError(f"{where}: complexity {name!r}: {exc}") from None
    steps = d.get("steps")
    if steps is not None:  # optional: detected step periods {param: period}
        if not isinstance(steps, dict):
            raise ModelFormatError(f"{where}: steps must be an object parameter -> period")
        for name, s in steps.items():
            if name not in params:
                raise ModelFormatError(f"{where}: steps name {name!r}, which is not a parameter")
            if isinstance(s, bool) or not isinstance(s, int) or s < 2:
                raise ModelFormatError(f"{where}: steps[{name!r}] must be an integer >= 2")
    _check_revisions(d, where)
    if "machine" in d:  # optional: the machine the training data were measured on
        validate_machine(d["machine"], f"{where}: machine")
    iv = d.get("interval")
    if iv is not None:  # optional: conformal interval on log runtime
        ok = (isinstance(iv, dict) and all(
            isinstance(iv.get(k), (int, float)) and not isinstance(iv.get(k), bool)
            and math.isfinite(iv[k]) for k in ("nominal", "lo", "hi"))
            and 0 < iv["nominal"] < 1 and iv["lo"] <= iv["hi"] and iv["hi"] - iv["lo"] < 50)
        if not ok:
            raise ModelFormatError(f"{where}: interval must be an object with finite nominal "
                                   "(0..1), lo <= hi (log-runtime offsets)")
    it = d["input_transform"]
    if isinstance(it, str):
        it = d["input_transform"] = [it] * n
    if (not isinstance(it, list) or len(it) != n
            or any(not isinstance(t, str) or t not in TRANSFORMS for t in it)):
        raise ModelFormatError(f"{where}: input_transform must be {n} of {TRANSFORMS}")
    if not isinstance(d["target_transform"], str) or d["target_transform"] not in (
            "log", "identity"):
        raise ModelFormatError(f"{where}: target_transform must be 'log' or 'identity'")
    if not isinstance(d["activation"], str) or d["activation"] not in ACTIVATIONS:
        raise ModelFormatError(f"{where}: activation must be one of {sorted(ACTIVATIONS)}")
    sc = d["scaler"]
    if not isinstance(sc, dict):
        raise ModelFormatError(f"{where}: scaler must be an object with mean and std")
    _vector(sc.get("mean"), n, "scaler.mean", where, MAX_SCALE)
    _vector(sc.get("std"), n, "scaler.std", where, MAX_SCALE)
    if any(s < MIN_STD for s in sc["std"]):
        raise ModelFormatError(f"{where}: scaler.std must be at least {MIN_STD:g}")
    ts = d["target_scaler"]
    if (not isinstance(ts, dict) or not all(_finite(ts.get(k), MAX_TARGET)
                                             for k in ("mean", "std"))
            or ts["std"] < MIN_STD):
        raise ModelFormatError(f"{where}: target_scaler must hold finite numbers mean and "
                               f"std (std >= {MIN_STD:g}, both at most {MAX_TARGET:g})")
    layers = d["layers"]
    if not isinstance(layers, list) or not layers:
        raise ModelFormatError(f"{where}: layers must be a non-empty list")
    fan_in = n
    hidden = []
    for i, layer in enumerate(layers):
        if not isinstance(layer, dict):
            raise ModelFormatError(f"{where}: layers[{i}] must be an object")
        w, b = layer.get("weight"), layer.get("bias")
        rows = len(w) if isinstance(w, list) else -1
        if rows < 1:
            raise ModelFormatError(f"{where}: layers[{i}].weight must be a non-empty matrix")
        _matrix(w, rows, fan_in, f"layers[{i}].weight", where)
        _vector(b, rows, f"layers[{i}].bias", where)
        fan_in = rows
        hidden.append(rows)
    if hidden[-1] != 1:
        raise ModelFormatError(f"{where}: the last layer must have one output")
    skip = d.get("skip")
    if skip is not None:
        if not isinstance(skip, dict):
            raise ModelFormatError(f"{where}: skip must be an object with weight")
        _matrix(skip.get("weight"), 1, n, "skip.weight", where)
    expected = count_params(n, tuple(hidden[:-1]), skip=skip is not None)
    if isinstance(d["n_params"], bool) or d["n_params"] != expected:
        raise ModelFormatError(f"{where}: n_params is {d['n_params']!r} but the weights hold "
                               f"{expected}")
    if expected >= MAX_PARAMS:
        raise ModelFormatError(f"{where}: {expected} trainable parameters; the limit is "
                               f"fewer than {MAX_PARAMS}")
    tr = d["train"]
    if not isinstance(tr, dict):
        raise ModelFormatError(f"{where}: train must be an object")
    rng = tr.get("range", {})
    if not isinstance(rng, dict) or any(
            not isinstance(v, list) or len(v) != 2 or not all(_finite(x, 1e300) for x in v)
            or v[0] > v[1] for v in rng.values()):
        raise ModelFormatError(f"{where}: train.range must map parameter names to "
                               "[min, max] with finite numbers min <= max")
    unknown = [k for k in rng if k not in params]
    if unknown:
        raise ModelFormatError(f"{where}: train.range names {unknown[0]!r}, which is not a "
                               "parameter")
    return d
